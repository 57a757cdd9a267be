//! Where the PostgreSQL server binaries are.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Result, bail};

/// The directory holding `initdb` and `postgres`; the clients of the same installation
/// (`pg_isready`, `createdb`, `psql`) sit beside them.
#[derive(Debug)]
pub(crate) struct BinDir(PathBuf);

impl BinDir {
    /// The first directory with both server binaries, of: Debian's `/usr/lib/postgresql/<major>/bin`
    /// (the highest major), `pg_config --bindir`, the directories of `PATH`.
    pub(crate) fn find() -> Result<BinDir> {
        let candidates = debian_bin_dirs().into_iter().chain(pg_config_bin_dir()).chain(path_dirs());
        for dir in candidates {
            if is_executable(&dir.join("initdb")) && is_executable(&dir.join("postgres")) {
                return Ok(BinDir(dir));
            }
        }
        bail!(
            "PostgreSQL server binaries (initdb, postgres) not found: run scripts/setup --test-tools \
             (installs Debian's postgresql) or install PostgreSQL"
        )
    }

    /// A command running the binary `name` of this installation.
    pub(crate) fn command(&self, name: &str) -> Command {
        Command::new(self.0.join(name))
    }
}

/// `/usr/lib/postgresql/<major>/bin`, highest major first (`9.6` sorts below `10`).
fn debian_bin_dirs() -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir("/usr/lib/postgresql") else {
        return Vec::new();
    };
    let mut versions: Vec<(Vec<u32>, PathBuf)> = entries
        .filter_map(|entry| {
            let entry = entry.ok()?;
            let name = entry.file_name();
            let version = name.to_str()?.split('.').map(|part| part.parse().ok()).collect::<Option<Vec<u32>>>()?;
            Some((version, entry.path().join("bin")))
        })
        .collect();
    versions.sort_by(|a, b| b.0.cmp(&a.0));
    versions.into_iter().map(|(_, dir)| dir).collect()
}

fn pg_config_bin_dir() -> Option<PathBuf> {
    let output = Command::new("pg_config").arg("--bindir").output().ok()?;
    let dir = String::from_utf8(output.stdout).ok()?;
    (output.status.success() && !dir.trim().is_empty()).then(|| PathBuf::from(dir.trim()))
}

fn path_dirs() -> Vec<PathBuf> {
    std::env::var_os("PATH").map(|path| std::env::split_paths(&path).collect()).unwrap_or_default()
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    path.metadata().is_ok_and(|meta| meta.is_file() && meta.permissions().mode() & 0o111 != 0)
}

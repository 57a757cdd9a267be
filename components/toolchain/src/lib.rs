//! Builds waedge guest crates into WebAssembly components, for the build scripts of the host
//! (the built-in components) and of the tests (test and example components).
//!
//! A guest crate is one whose `Cargo.toml` declares `crate-type = ["cdylib"]` and that is a
//! member of the workspace. The guests are compiled for `wasm32-unknown-unknown` by a nested
//! `cargo build` into one shared target directory (`target/guests`), then each core module is
//! wrapped into a component with `wit-component`. Two toolchains can do the compiling:
//!
//! 1. **rustup** — the current toolchain with the `wasm32-unknown-unknown` target installed
//!    (`rustup target add wasm32-unknown-unknown`);
//! 2. **Debian** — `rustc-web` + `rust-web-src` (`/usr/bin/rustc` with its std sources),
//!    rebuilding std with `-Zbuild-std` and linking with rustup's bundled `rust-lld`.
//!
//! The first that is available wins; `WAEDGE_GUEST_TOOLCHAIN=rustup|debian` forces one. When
//! neither is available the build fails with one line naming the command that installs one.

use std::env;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

const WASM_TARGET: &str = "wasm32-unknown-unknown";
const GUEST_PROFILE: &str = "guest";
const DEBIAN_RUSTC: &str = "/usr/bin/rustc";
const DEBIAN_STD_SOURCES: &str = "/usr/lib/rustlib/src/rust/library/std";
/// The libraries guests depend on (relative to the workspace), wherever the guests are: a
/// change to one is a change to every guest.
const GUEST_LIBRARIES: &[&str] = &["components/sdk", "components/jid"];
const INSTALL_HINT: &str = "no Wasm toolchain for the guest components: run `rustup target add wasm32-unknown-unknown` \
     (or, without rustup downloads, `apt-get install rustc-web rust-web-src`), or just `scripts/setup`";

/// One built guest: its package name and its component file.
pub struct Guest {
    /// The package name, e.g. `devices-api`.
    pub name: String,
    /// The component, written into the build script's `OUT_DIR`.
    pub component: PathBuf,
}

/// Builds every guest crate directly under each of `dirs` (paths relative to `workspace`)
/// into a component in `out_dir`, sorted by name; tells cargo to rerun the build script
/// when any of them, the libraries they share (the SDK, the JID library), the WIT, the
/// lock file or the workspace manifest (the guest profile) changes. Fails the build with a
/// clear line on any error.
pub fn build(workspace: &Path, dirs: &[&str], out_dir: &Path) -> Vec<Guest> {
    println!("cargo:rerun-if-changed={}", workspace.join("wit").display());
    println!("cargo:rerun-if-changed={}", workspace.join("Cargo.lock").display());
    // The guest profile is in the workspace manifest.
    println!("cargo:rerun-if-changed={}", workspace.join("Cargo.toml").display());
    println!("cargo:rerun-if-env-changed=WAEDGE_GUEST_TOOLCHAIN");
    for library in GUEST_LIBRARIES {
        println!("cargo:rerun-if-changed={}", workspace.join(library).display());
    }
    let mut guests = Vec::new();
    for dir in dirs {
        let dir = workspace.join(dir);
        println!("cargo:rerun-if-changed={}", dir.display());
        guests.extend(guest_crates(&dir));
    }
    guests.sort();
    let toolchain = Toolchain::detect().unwrap_or_else(|| fail(INSTALL_HINT));
    let target_dir =
        env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| workspace.join("target")).join("guests");
    toolchain.build(workspace, &target_dir, &guests);
    guests
        .into_iter()
        .map(|name| {
            let core =
                target_dir.join(WASM_TARGET).join(GUEST_PROFILE).join(format!("{}.wasm", name.replace('-', "_")));
            let module = fs::read(&core).unwrap_or_else(|e| fail(&format!("reading {}: {e}", core.display())));
            let component = wit_component::ComponentEncoder::default()
                .module(&module)
                .and_then(|encoder| encoder.validate(true).encode())
                .unwrap_or_else(|e| fail(&format!("turning {name} into a component: {e:#}")));
            let path = out_dir.join(format!("{name}.component.wasm"));
            fs::write(&path, component).unwrap_or_else(|e| fail(&format!("writing {}: {e}", path.display())));
            Guest { name, component: path }
        })
        .collect()
}

/// The package names of the guest crates: directories under `dir` whose manifest builds a
/// `cdylib`.
fn guest_crates(dir: &Path) -> Vec<String> {
    let mut guests: Vec<String> = fs::read_dir(dir)
        .unwrap_or_else(|e| fail(&format!("reading {}: {e}", dir.display())))
        .filter_map(|entry| {
            let path = entry.ok()?.path().join("Cargo.toml");
            let manifest = fs::read_to_string(&path).ok()?;
            let manifest: toml::Table =
                toml::from_str(&manifest).unwrap_or_else(|e| fail(&format!("reading {}: {e}", path.display())));
            guest_name(&manifest)
        })
        .collect();
    guests.sort();
    guests
}

/// The package name in `manifest` if it builds a `cdylib`.
fn guest_name(manifest: &toml::Table) -> Option<String> {
    let crate_types = manifest.get("lib")?.get("crate-type")?.as_array()?;
    crate_types.iter().any(|kind| kind.as_str() == Some("cdylib")).then_some(())?;
    Some(manifest.get("package")?.get("name")?.as_str()?.to_string())
}

/// A way to compile Rust for `wasm32-unknown-unknown`.
enum Toolchain {
    /// The rustup toolchain running this build, with the target's std installed.
    Rustup,
    /// Debian's `rustc-web`, rebuilding std from `rust-web-src`, linking with `rust-lld`.
    Debian { linker: PathBuf },
}

impl Toolchain {
    fn detect() -> Option<Toolchain> {
        let forced = env::var("WAEDGE_GUEST_TOOLCHAIN").ok();
        let sysroot = rustc_sysroot();
        let rustup = || sysroot.join("lib/rustlib").join(WASM_TARGET).join("lib").is_dir();
        let debian = || {
            let linker = sysroot.join("lib/rustlib").join(host_triple()).join("bin/rust-lld");
            (Path::new(DEBIAN_RUSTC).is_file() && Path::new(DEBIAN_STD_SOURCES).is_dir() && linker.is_file())
                .then_some(Toolchain::Debian { linker })
        };
        match forced.as_deref() {
            Some("rustup") => rustup().then_some(Toolchain::Rustup),
            Some("debian") => debian(),
            Some(other) => fail(&format!("WAEDGE_GUEST_TOOLCHAIN={other}: use `rustup` or `debian`")),
            None if rustup() => Some(Toolchain::Rustup),
            None => debian(),
        }
    }

    fn build(&self, workspace: &Path, target_dir: &Path, guests: &[String]) {
        let cargo = env::var("CARGO").unwrap_or_else(|_| "cargo".to_string());
        let mut command = Command::new(cargo);
        // Start from a clean slate: the outer build's flags, wrappers (clippy) and target
        // directory must not leak into the guest build.
        for (key, _) in env::vars_os() {
            let key = key.to_string_lossy().into_owned();
            let keep = matches!(key.as_str(), "CARGO_HOME" | "CARGO_MAKEFLAGS")
                || key.starts_with("CARGO_NET_")
                || key.starts_with("CARGO_HTTP_")
                || key.starts_with("CARGO_REGISTRIES_");
            if (key.starts_with("CARGO_") && !keep) || key.starts_with("RUSTC") || key == "RUSTFLAGS" {
                command.env_remove(&key);
            }
        }
        command
            .current_dir(workspace)
            .args(["build", "--profile", GUEST_PROFILE, "--target", WASM_TARGET, "--target-dir"])
            .arg(target_dir);
        for guest in guests {
            command.args(["--package", guest]);
        }
        if let Toolchain::Debian { linker } = self {
            command
                .env("RUSTC", DEBIAN_RUSTC)
                .env("RUSTC_BOOTSTRAP", "1")
                .env("CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_LINKER", linker)
                .args(["-Zbuild-std=std,panic_abort"]);
        }
        let status = command.status().unwrap_or_else(|e| fail(&format!("running cargo for the guests: {e}")));
        if !status.success() {
            fail("building the guest components failed (see the cargo output above)");
        }
    }
}

fn rustc_sysroot() -> PathBuf {
    let rustc = env::var("RUSTC").unwrap_or_else(|_| "rustc".to_string());
    let output = Command::new(rustc).args(["--print", "sysroot"]).output();
    match output {
        Ok(output) if output.status.success() => {
            PathBuf::from(String::from_utf8_lossy(&output.stdout).trim().to_string())
        }
        _ => fail("could not ask rustc for its sysroot"),
    }
}

fn host_triple() -> String {
    env::var("HOST").expect("set by cargo")
}

fn fail(message: &str) -> ! {
    eprintln!("error: {message}");
    println!("cargo::error={message}");
    std::process::exit(1);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest(text: &str) -> toml::Table {
        toml::from_str(text).unwrap()
    }

    #[test]
    fn a_guest_is_a_package_that_builds_a_cdylib() {
        let guest = "[package]\nname = \"devices-api\" # the built-in\n[lib]\ncrate-type = [\"rlib\", \"cdylib\"]\n";
        assert_eq!(guest_name(&manifest(guest)), Some("devices-api".to_string()));
        let library = "[package]\nname = \"waedge-sdk\"\n[dependencies]\nname = \"cdylib\"\n";
        assert_eq!(guest_name(&manifest(library)), None, "words in the wrong place do not count");
        let binary = "[package]\nname = \"tool\"\n[lib]\ncrate-type = [\"rlib\"]\n";
        assert_eq!(guest_name(&manifest(binary)), None);
    }
}

//! Builds every guest crate under `components/` into a WebAssembly component and embeds the
//! result in the host, so `cargo build` is the only step.
//!
//! A guest crate is one whose `Cargo.toml` declares `crate-type = ["cdylib"]`. The guests are
//! compiled for `wasm32-unknown-unknown` by a nested `cargo build` into one shared target
//! directory (`target/guests`), then each core module is wrapped into a component with
//! `wit-component`. Two toolchains can do the compiling:
//!
//! 1. **rustup** — the current toolchain with the `wasm32-unknown-unknown` target installed
//!    (`rustup target add wasm32-unknown-unknown`);
//! 2. **Debian** — `rustc-web` + `rust-web-src` (`/usr/bin/rustc` with its std sources),
//!    rebuilding std with `-Zbuild-std` and linking with rustup's bundled `rust-lld`.
//!
//! The first that is available wins; `WAEDGE_GUEST_TOOLCHAIN=rustup|debian` forces one. When
//! neither is available the build fails with one line naming the command that installs one.

use std::env;
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

const WASM_TARGET: &str = "wasm32-unknown-unknown";
const GUEST_PROFILE: &str = "guest";
const DEBIAN_RUSTC: &str = "/usr/bin/rustc";
const DEBIAN_STD_SOURCES: &str = "/usr/lib/rustlib/src/rust/library/std";
const INSTALL_HINT: &str = "no Wasm toolchain for the guest components: run `rustup target add wasm32-unknown-unknown` \
     (or, without rustup downloads, `apt-get install rustc-web rust-web-src`), or just `scripts/setup`";

fn main() {
    let manifest_dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let workspace = manifest_dir.parent().expect("host/ lives in the workspace").to_path_buf();
    let out_dir = PathBuf::from(env::var("OUT_DIR").expect("set by cargo"));
    println!("cargo:rerun-if-changed={}", workspace.join("wit").display());
    println!("cargo:rerun-if-changed={}", workspace.join("components").display());
    println!("cargo:rerun-if-changed={}", workspace.join("Cargo.lock").display());
    println!("cargo:rerun-if-env-changed=WAEDGE_GUEST_TOOLCHAIN");

    let guests = guest_crates(&workspace.join("components"));
    let toolchain = Toolchain::detect().unwrap_or_else(|| fail(INSTALL_HINT));
    let target_dir = env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace.join("target"))
        .join("guests");
    toolchain.build(&workspace, &target_dir, &guests);

    let mut table = String::from("/// Every built-in component: (name, component bytes).\n");
    table.push_str("pub(crate) static BUILTIN_COMPONENTS: &[(&str, &[u8])] = &[\n");
    for guest in &guests {
        let core = target_dir
            .join(WASM_TARGET)
            .join(GUEST_PROFILE)
            .join(format!("{}.wasm", guest.replace('-', "_")));
        let module = fs::read(&core).unwrap_or_else(|e| fail(&format!("reading {}: {e}", core.display())));
        let component = wit_component::ComponentEncoder::default()
            .module(&module)
            .and_then(|encoder| encoder.validate(true).encode())
            .unwrap_or_else(|e| fail(&format!("turning {guest} into a component: {e:#}")));
        let path = out_dir.join(format!("{guest}.component.wasm"));
        fs::write(&path, component).unwrap_or_else(|e| fail(&format!("writing {}: {e}", path.display())));
        writeln!(table, "    ({guest:?}, include_bytes!({:?})),", path.display().to_string()).unwrap();
    }
    table.push_str("];\n");
    fs::write(out_dir.join("builtin_components.rs"), table).expect("OUT_DIR is writable");
}

/// The package names of the guest crates: directories under `components/` whose manifest
/// builds a `cdylib`.
fn guest_crates(components: &Path) -> Vec<String> {
    let mut guests: Vec<String> = fs::read_dir(components)
        .unwrap_or_else(|e| fail(&format!("reading {}: {e}", components.display())))
        .filter_map(|entry| {
            let manifest = fs::read_to_string(entry.ok()?.path().join("Cargo.toml")).ok()?;
            manifest.contains("\"cdylib\"").then(|| package_name(&manifest))?
        })
        .collect();
    guests.sort();
    guests
}

fn package_name(manifest: &str) -> Option<String> {
    manifest
        .lines()
        .find_map(|line| line.trim().strip_prefix("name = "))
        .map(|name| name.trim_matches('"').to_string())
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

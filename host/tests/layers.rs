//! The host's modules depend on each other in one direction only, down the request path, as
//! the README's architecture section draws them: every `crate::module` a source file names
//! (in code or in a doc link) is in a layer below its own, or in the same module. Below the
//! host's modules, its crates point one way too: `waedge` → `waedge-device` → `waedge-store`
//! → `waedge-contract`.

use std::collections::BTreeSet;
use std::path::Path;

/// The layers, top to bottom: a module may name the modules of the layers below its own.
const LAYERS: &[&[&str]] = &[
    &["main", "cli"],
    &["app"],
    &["admin", "bench"],
    &["webhooks", "forward"],
    &["server"],
    &["gateway"],
    &["tenancy"],
    &["runtime"],
    &["capability"],
    &["config"],
    &["bearer", "body", "limits", "memory", "qr", "rate", "telemetry"],
];

/// The layer of a top-level module.
fn layer(module: &str) -> usize {
    LAYERS
        .iter()
        .position(|layer| layer.contains(&module))
        .unwrap_or_else(|| panic!("module `{module}` is in no layer: add it to LAYERS and to the README"))
}

/// The top-level module a file of `src/` belongs to (`lib` for lib.rs).
fn module_of(relative: &Path) -> String {
    let first = relative.components().next().expect("a path inside src").as_os_str().to_string_lossy();
    first.trim_end_matches(".rs").to_string()
}

/// Every top-level module `text` names as `crate::module` (`crate::Gateway` is the gateway's).
fn named_modules(text: &str) -> BTreeSet<String> {
    let mut named = BTreeSet::new();
    for (at, _) in text.match_indices("crate::") {
        let rest = &text[at + "crate::".len()..];
        let name: String = rest.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
        match name.as_str() {
            "Gateway" => named.insert("gateway".to_string()),
            "" => false,
            lower if lower.chars().next().is_some_and(char::is_lowercase) => named.insert(lower.to_string()),
            _ => false,
        };
    }
    // `use crate::{a, b::c}` names several.
    for (at, _) in text.match_indices("use crate::{") {
        let list = &text[at + "use crate::{".len()..];
        let list = &list[..list.find("};").unwrap_or(list.len())];
        for item in list.split(',') {
            let name: String = item.trim().chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
            if name == "Gateway" {
                named.insert("gateway".to_string());
            } else if !name.is_empty() && name.chars().next().is_some_and(char::is_lowercase) {
                named.insert(name);
            }
        }
    }
    named
}

fn sources(dir: &Path, found: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("src is readable") {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            sources(&path, found);
        } else if path.extension().is_some_and(|e| e == "rs") {
            found.push(path);
        }
    }
}

#[test]
fn modules_depend_only_on_the_layers_below_them() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&src, &mut files);
    let mut upward = Vec::new();
    for file in files {
        let relative = file.strip_prefix(&src).unwrap();
        let module = module_of(relative);
        if module == "lib" {
            continue; // The crate root declares every module.
        }
        let text = std::fs::read_to_string(&file).unwrap();
        for named in named_modules(&text) {
            if named != module && layer(&named) <= layer(&module) {
                upward.push(format!("{} names `crate::{named}`", relative.display()));
            }
        }
    }
    assert!(upward.is_empty(), "dependencies against the layers:\n{}", upward.join("\n"));
}

#[test]
fn the_checker_sees_uses_paths_and_lists() {
    let text = "use crate::store::Store;\nlet x = crate::runtime::engine::EPOCH_TICK;\n\
                use crate::{Gateway, app, server};\n/// [`x`](crate::device::DeviceSession)";
    let named: Vec<String> = named_modules(text).into_iter().collect();
    assert_eq!(named, ["app", "device", "gateway", "runtime", "server", "store"]);
}

/// The host's crates, top to bottom, with their directories and which crates of this list
/// each depends on: only ever on crates further down, so dependencies point one way.
const CRATES: &[(&str, &str, &[&str])] = &[
    ("waedge", "host", &["waedge-device", "waedge-store", "waedge-contract"]),
    ("waedge-device", "crates/device", &["waedge-store", "waedge-contract", "waedge-device-pg"]),
    ("waedge-store", "crates/store", &["waedge-contract", "waedge-pg"]),
    ("waedge-contract", "crates/contract", &[]),
    ("waedge-device-pg", "crates/device-pg", &["waedge-pg"]),
    ("waedge-pg", "crates/pg", &[]),
];

fn manifest(path: &Path) -> toml::Table {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    text.parse().unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The crates of `CRATES` that `manifest` names as dependencies of any kind.
fn waedge_dependencies(manifest: &toml::Table) -> BTreeSet<String> {
    ["dependencies", "dev-dependencies", "build-dependencies"]
        .iter()
        .filter_map(|kind| manifest.get(*kind).and_then(toml::Value::as_table))
        .flat_map(|dependencies| dependencies.keys())
        .filter(|name| CRATES.iter().any(|(known, _, _)| known == name))
        .cloned()
        .collect()
}

#[test]
fn the_crate_graph_points_down() {
    for (at, (name, _, below)) in CRATES.iter().enumerate() {
        for dependency in *below {
            let position = CRATES.iter().position(|(known, _, _)| known == dependency);
            assert!(position > Some(at), "{name} is listed as depending on {dependency}, which is not below it");
        }
    }
}

#[test]
fn crates_depend_on_exactly_the_crates_the_graph_says() {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("the workspace root");
    for (name, dir, below) in CRATES {
        let manifest = manifest(&workspace.join(dir).join("Cargo.toml"));
        let package = manifest["package"]["name"].as_str();
        assert_eq!(package, Some(*name), "{dir}/Cargo.toml is not {name}'s");
        let expected: BTreeSet<String> = below.iter().map(|crate_name| crate_name.to_string()).collect();
        assert_eq!(
            waedge_dependencies(&manifest),
            expected,
            "{name}'s dependencies are not the crate graph's: update CRATES and the README"
        );
    }
}

#[test]
fn every_crate_of_the_host_is_in_the_graph() {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("the workspace root");
    let root = manifest(&workspace.join("Cargo.toml"));
    let members = root["workspace"]["members"].as_array().expect("workspace members");
    for member in members.iter().filter_map(toml::Value::as_str).filter(|m| m.starts_with("crates/")) {
        assert!(
            CRATES.iter().any(|(_, dir, _)| dir == &member),
            "{member} is not in CRATES: place it in the crate graph here and in the README"
        );
    }
}

#[test]
fn the_crate_checker_sees_every_kind_of_dependency() {
    let manifest: toml::Table = "[dependencies]\nwaedge-store = { workspace = true }\nserde = \"1\"\n\
                                 [dev-dependencies]\nwaedge = { path = \"../../host\" }"
        .parse()
        .unwrap();
    let named: Vec<String> = waedge_dependencies(&manifest).into_iter().collect();
    assert_eq!(named, ["waedge", "waedge-store"]);
}

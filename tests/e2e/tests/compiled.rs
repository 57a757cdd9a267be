//! The code the gateway runs is the code that was deployed: compiled versions are told apart
//! by their whole hash, and compiled artefacts on disk are checked before they are loaded and
//! removed when nothing uses them any more.

use std::path::{Path, PathBuf};

use waedge::runtime::Runtime;
use waedge_e2e::fixture::World;
use waedge_e2e::guests;
use waedge_e2e::host::{Answer, Host};
use waedge_e2e::server::{TestGateway, fixtures};
use waedge_e2e::tenants::{EVE, config};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn versions_sharing_a_hash_prefix_are_compiled_apart() {
    let world = World::load(&fixtures().join("world.toml")).expect("fixture world");
    let gw = TestGateway::start(&config(None), &world).await;
    let gateway = gw.gateway();
    // Two versions whose hashes share their first 12 hex digits (the display name's).
    let (probe, hello) = (format!("5a5a5a5a5a5a{}", "0".repeat(52)), format!("5a5a5a5a5a5a{}", "1".repeat(52)));
    gateway.prepare_component("globex", "x", &probe, guests::get("probe")).expect("probe compiles");
    gateway.prepare_component("globex", "x", &hello, guests::get("hello")).expect("hello compiles");
    let (status, body) = gateway.smoke("globex", "x", &probe, "/x/hello").await.unwrap();
    assert_eq!((status, body.as_str()), (200, r#"{"probe":"hello"}"#));
    let (status, body) = gateway.smoke("globex", "x", &hello, "/x/hello").await.unwrap();
    assert!(status != 200 && !body.contains("probe"), "the second version ran the first's code: {status} {body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_version_compiled_for_a_deploy_survives_reloads_until_it_is_stored() {
    let world = World::load(&fixtures().join("world.toml")).expect("fixture world");
    let gw = TestGateway::start(&config(None), &world).await;
    let gateway = gw.gateway();
    let sha256 = "7b".repeat(32);
    // Deploys compile outside the lock other reloads need: a reload (another operator's
    // change) may run before this deploy has stored its version.
    gateway.prepare_component("globex", "y", &sha256, guests::get("probe")).expect("probe compiles");
    gateway.reload(gw.store()).expect("the store reads");
    let (status, body) = gateway.smoke("globex", "y", &sha256, "/y/hello").await.expect("still prepared");
    assert_eq!((status, body.as_str()), (200, r#"{"probe":"hello"}"#));
}

/// A runtime caching compiled components in `cache`: a fresh one, as after a restart.
fn cached(cache: &Path) -> Runtime {
    Runtime::new().expect("the runtime starts").with_cache(cache.to_path_buf())
}

/// The cached artefact of the component whose hash is `sha256`, if there is one.
fn artefact(cache: &Path, sha256: &str) -> Option<PathBuf> {
    let mut found = std::fs::read_dir(cache).unwrap().map(|e| e.unwrap().path()).filter(|path| {
        path.file_name().unwrap().to_str().unwrap().starts_with(&format!("{sha256}-"))
            && path.extension().is_some_and(|e| e == "cwasm")
    });
    let first = found.next();
    assert!(found.next().is_none(), "one artefact per component");
    first
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tampered_artefact_is_compiled_again_and_an_unused_one_removed() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("compiled");
    let hello = Answer { status: 200, text: r#"{"probe":"hello"}"#.to_string() };

    let first = Host::new(cached(&cache));
    let probe = first.deploy("globex", "probe", guests::get("probe"));
    assert_eq!(first.get("/probe/hello", EVE).await, hello);
    let store = first.store.clone();
    drop(first);

    // Someone flips one byte in the middle of the artefact (its code) while the gateway is down.
    let path = artefact(&cache, &probe).expect("the deploy cached its artefact");
    let mut tampered = std::fs::read(&path).unwrap();
    let middle = tampered.len() / 2;
    tampered[middle] ^= 0x10;
    std::fs::write(&path, &tampered).unwrap();

    let second = Host::over(store, cached(&cache));
    assert!(std::fs::read(&path).unwrap() != tampered, "the tampered artefact was loaded");
    assert_eq!(second.get("/probe/hello", EVE).await, hello);

    // A new version replaces it; once the old version is deleted, its artefact goes.
    let replacement = second.deploy("globex", "probe", guests::get("hello"));
    assert!(artefact(&cache, &probe).is_some(), "a stored version keeps its artefact for a rollback");
    second.store.delete_component_version("globex", "probe", &probe).unwrap();
    second.reload();
    assert_eq!(artefact(&cache, &probe), None, "the deleted version's artefact is still there");
    assert!(artefact(&cache, &replacement).is_some());
}

//! A tenant's own component through the real binary: `waedge component deploy` with a route,
//! served at once; still active after a restart, from the first request on; and
//! `waedge serve --watch DIR` redeploying it when its file changes.

mod support;

use std::path::Path;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use support::{Waedge, admin_token, cli_ok, write_config};

/// The built-in devices API's bytes with a custom section `note`: a distinct version that
/// behaves the same.
fn version(note: &str) -> Vec<u8> {
    let mut bytes = waedge::runtime::builtin::get("devices-api").expect("the built-in").to_vec();
    let payload = [&[4u8][..], b"note", note.as_bytes()].concat();
    bytes.extend_from_slice(&[0, payload.len() as u8]);
    bytes.extend_from_slice(&payload);
    bytes
}

fn served_as(bytes: &[u8]) -> String {
    format!("acme/api@{}", &hex::encode(Sha256::digest(bytes))[..12])
}

async fn served_by(waedge: &Waedge, token: &str) -> String {
    let reply = waedge.api("/devices/main/groups", token).await;
    assert_eq!(reply.status, 503, "the device is not linked, but the component ran: {}", reply.text);
    reply.headers.get("x-waedge-component").map(|v| v.to_str().unwrap().to_string()).unwrap_or_default()
}

fn write(path: &Path, bytes: &[u8]) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, bytes).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deployed_component_survives_restarts_and_follows_its_file_under_watch() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let config = write_config(dir.path(), "");
    let admin_token = admin_token(&config);
    let waedge = Waedge::start(&config);
    let admin = (waedge.admin.as_str(), admin_token.as_str());
    cli_ok(&["tenant", "create", "acme"], Some(admin));
    cli_ok(&["device", "create", "acme", "main"], Some(admin));
    let user: serde_json::Value =
        serde_json::from_str(&cli_ok(&["user", "create", "acme", "--device", "main", "--json"], Some(admin))).unwrap();
    let token = cli_ok(&["token", "create", "acme", user["id"].as_str().unwrap()], Some(admin)).trim().to_string();

    let first = version("first");
    let file = dir.path().join("api.wasm");
    write(&file, &first);
    let deployed = cli_ok(
        &["component", "deploy", file.to_str().unwrap(), "--tenant", "acme", "--route", "/devices"],
        Some(admin),
    );
    assert!(deployed.contains(&hex::encode(Sha256::digest(&first))), "{deployed}");
    assert_eq!(served_by(&waedge, &token).await, served_as(&first));

    // Restored before the listener opens: the very first request is served by it.
    waedge.stop();
    let watched = dir.path().join("plugins");
    let waedge = Waedge::start_with(&config, &["--watch", watched.to_str().unwrap()]);
    assert_eq!(served_by(&waedge, &token).await, served_as(&first));

    // The dev loop: drop a new build into DIR/TENANT/NAME.wasm and it is live.
    let second = version("second");
    write(&watched.join("acme/api.wasm"), &second);
    let deadline = Instant::now() + Duration::from_secs(15);
    while served_by(&waedge, &token).await != served_as(&second) {
        assert!(Instant::now() < deadline, "the watched file was not redeployed:\n{}", waedge.log());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // A broken build is refused and the last good version keeps serving.
    write(&watched.join("acme/api.wasm"), b"\0asm\x01\0\0\0");
    let deadline = Instant::now() + Duration::from_secs(15);
    while !waedge.log().contains("not deployed") {
        assert!(Instant::now() < deadline, "the broken file was not noticed:\n{}", waedge.log());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(served_by(&waedge, &token).await, served_as(&second));
    let admin = (waedge.admin.as_str(), admin_token.as_str());
    let listed = cli_ok(&["component", "list", "--tenant", "acme"], Some(admin));
    assert_eq!(listed.lines().count(), 3, "a header and two versions:\n{listed}");
    assert!(listed.contains("watch:"), "the watcher is recorded as the author:\n{listed}");
}

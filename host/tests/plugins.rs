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

/// Appends `value` to `out` as unsigned LEB128.
fn leb(out: &mut Vec<u8>, mut value: usize) {
    loop {
        let byte = (value & 0x7f) as u8;
        value >>= 7;
        if value == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

/// Appends section `id` holding `content` to `out`.
fn section(out: &mut Vec<u8>, id: u8, content: &[u8]) {
    out.push(id);
    leb(out, content.len());
    out.extend_from_slice(content);
}

/// A component instantiating one core module made to take Cranelift long to compile (over
/// a minute of CPU time on a 2-core CI machine; 2 MB): three exported functions of 10,000
/// locals, each a chain of 50,000 steps `c = a * b + param` over locals far apart, returning
/// the sum of all locals (so nothing folds to a constant or is dead).
fn slow_to_compile() -> Vec<u8> {
    const FUNCTIONS: u8 = 3;
    const LOCALS: usize = 10_000;
    let mut body = Vec::new();
    leb(&mut body, 1);
    leb(&mut body, LOCALS);
    body.push(0x7e); // i64
    for i in 0..50_000 {
        // local.get a, local.get b, i64.mul, local.get 0 (the parameter), i64.add, local.set c
        body.push(0x20);
        leb(&mut body, i * 7_919 % LOCALS);
        body.push(0x20);
        leb(&mut body, (i * 104_729 + 1) % LOCALS);
        body.extend_from_slice(&[0x7e, 0x20, 0, 0x7c, 0x21]);
        leb(&mut body, i % LOCALS + 1);
    }
    for local in 0..LOCALS {
        body.push(0x20);
        leb(&mut body, local);
        if local > 0 {
            body.push(0x7c); // i64.add
        }
    }
    body.push(0x0b); // end
    let mut functions = vec![FUNCTIONS];
    functions.extend(std::iter::repeat_n(0u8, FUNCTIONS.into()));
    let mut exports = vec![FUNCTIONS];
    let mut code = vec![FUNCTIONS];
    for function in 0..FUNCTIONS {
        exports.extend_from_slice(&[2, b'f', b'0' + function, 0, function]);
        leb(&mut code, body.len());
        code.extend_from_slice(&body);
    }
    let mut module = b"\0asm\x01\0\0\0".to_vec();
    section(&mut module, 1, &[1, 0x60, 1, 0x7e, 1, 0x7e]); // one type: [i64] -> [i64]
    section(&mut module, 3, &functions);
    section(&mut module, 7, &exports);
    section(&mut module, 10, &code);
    let mut component = b"\0asm\x0d\0\x01\0".to_vec();
    section(&mut component, 1, &module); // the core module
    section(&mut component, 2, &[1, 0, 0, 0]); // one core instance of it, without imports
    component
}

/// Deploys [`slow_to_compile`] to a gateway whose configuration has `compile` as its
/// `[compile]` table: an ordinary component deploys before and after, the slow one is refused
/// with `400 INVALID_COMPONENT` and stored nowhere; returns the refusal's message.
async fn refusal_of_slow_component(compile: &str) -> String {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let config = write_config(dir.path(), &format!("[compile]\n{compile}"));
    let admin_token = admin_token(&config);
    let waedge = Waedge::start(&config);
    cli_ok(&["tenant", "create", "acme"], Some((waedge.admin.as_str(), admin_token.as_str())));
    // An ordinary component compiles (in the child process) well within the budget.
    waedge.deploy(&admin_token, "acme", "api", version("fits")).await;

    let path = format!("{}/v1/tenants/acme/components/slow", waedge.admin);
    let refused = reqwest::Client::new()
        .post(path)
        .bearer_auth(&admin_token)
        .header("content-type", "application/wasm")
        .body(slow_to_compile())
        .send()
        .await
        .expect("waedge answers");
    let status = refused.status().as_u16();
    let body: serde_json::Value = serde_json::from_str(&refused.text().await.expect("a body")).expect("a JSON error");
    assert_eq!((status, &body["error"]["code"]), (400, &serde_json::json!("INVALID_COMPONENT")), "{body}");

    // Nothing was stored, and the gateway goes on: the next deploy works.
    let components = waedge
        .admin_expect(reqwest::Method::GET, "/v1/tenants/acme/components", &admin_token, serde_json::Value::Null, 200)
        .await;
    assert!(!components.to_string().contains("\"slow\""), "{components}");
    waedge.deploy(&admin_token, "acme", "api", version("after")).await;
    body["error"]["message"].as_str().expect("a message").to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_component_that_takes_too_long_to_compile_is_refused_at_the_budget() {
    let message = refusal_of_slow_component("cpu_seconds = 1").await;
    assert!(
        message.contains("more than the 1 s of CPU time") && message.contains("[compile] cpu_seconds"),
        "{message}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_component_that_takes_too_much_memory_to_compile_is_refused_at_the_budget() {
    let message = refusal_of_slow_component("memory_mib = 160\ncpu_seconds = 600").await;
    assert!(
        message.contains("more than the 160 MiB of memory") && message.contains("[compile] memory_mib"),
        "{message}"
    );
}

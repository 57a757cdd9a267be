//! The real `waedge` binary with its store in PostgreSQL (`store = "postgres://…"`): the
//! tenants, users, tokens and routes it serves from, and its devices' WhatsApp state, live in
//! the database, so a node that crashes comes back with its linked devices connected again
//! without pairing; and `waedge store migrate` moves a SQLite store there.
//!
//! Each test gets a database of its own on one PostgreSQL server per test process; they are
//! ignored where PostgreSQL's server binaries are missing (`scripts/test` runs them where
//! `scripts/setup --test-tools` installed them). Needs a test build (`wa-sim` feature).

mod support;

use std::time::Duration;

use serde_json::{Value, json};
use support::{Reply, SELF_PHONE, Waedge, admin_token, cli, cli_ok, device_nodes, read_events, world, write_config};
use wa_sim::{SimConfig, WaSim};
use waedge_e2e::guests::with_note;
use waedge_test_postgres::Postgres;

/// A password in the store URL: the test server trusts every connection and ignores it,
/// so it only shows whether the URL's password leaks into a log.
const PASSWORD: &str = "pg-s3cret-never-logged";

/// A new, empty database on the test process's PostgreSQL server, its URL with [`PASSWORD`].
fn database() -> String {
    let server = Postgres::shared().expect("a PostgreSQL server for the tests");
    let url = server.create_database().expect("a database for the test");
    url.replacen("://waedge@", &format!("://waedge:{PASSWORD}@"), 1)
}

/// John Doe in the world: his phone number, and his chat's JID.
const JOHN: &str = "6281234567890";
const JOHN_JID: &str = "6281234567890@s.whatsapp.net";

/// Creates tenant `acme` serving the devices API.
async fn acme(waedge: &Waedge, admin: &str) {
    waedge.admin_expect(reqwest::Method::POST, "/v1/tenants", admin, json!({ "id": "acme" }), 201).await;
    let route = json!({ "prefix": "/devices", "component": "builtin:devices-api" });
    waedge.admin_expect(reqwest::Method::PUT, "/v1/tenants/acme/routes", admin, route, 200).await;
}

/// The devices API's answers about `main` that a restart must not change.
async fn main_as_served(waedge: &Waedge, token: &str) -> Vec<Value> {
    let mut answers = Vec::new();
    for path in ["/devices/main/groups", "/devices/main/profile?jid=6281234567890"] {
        let reply = waedge.api(path, token).await;
        assert_eq!(reply.status, 200, "GET {path}: {}", reply.text);
        answers.push(reply.json);
    }
    answers
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL's server binaries: scripts/test runs it where scripts/setup --test-tools installed them"]
async fn a_node_on_postgres_comes_back_from_a_crash_with_its_device_connected_without_pairing() {
    let url = database();
    let sim = WaSim::start(SimConfig::new(world())).await.expect("wa-sim starts");
    let dir = tempfile::tempdir().unwrap();
    let extra = format!(
        "whatsapp_server = \"{}\"\nstore = \"{url}\"\n[cluster]\nnode = \"node-1\"\nlease_ms = 6000",
        sim.ws_url()
    );
    let config = write_config(dir.path(), &extra);
    let admin = admin_token(&config);
    let waedge = Waedge::start(&config);
    acme(&waedge, &admin).await;
    waedge.link_new_device(&admin, &sim, ("acme", "main", SELF_PHONE), Duration::from_secs(30)).await;
    let token = waedge.new_user_token(&admin, "acme", &["main"]).await;
    let before = main_as_served(&waedge, &token).await;
    assert!(before.iter().all(|answer| answer["data"].is_object() || answer["data"].is_array()), "{before:?}");

    // Nothing of it is in the data directory: a node started on an empty one serves the same.
    waedge.kill();
    std::fs::remove_dir_all(dir.path().join("data")).unwrap();
    let waedge = Waedge::start(&config);
    // The crashed node's lease (6 s) must run out first; no QR code is scanned again.
    waedge.wait_for_device(&admin, "acme", "main", "connected", Duration::from_secs(30)).await;
    assert_eq!(main_as_served(&waedge, &token).await, before, "the same answers after the crash");
    assert_eq!(sim.connections_of(SELF_PHONE), 1, "one client of the account, never two");
    let log = waedge.stop();
    assert!(!log.contains(&token) && !log.contains(&admin), "no token in the log");
    assert!(!log.contains(PASSWORD), "no database password in the log:\n{log}");
    assert!(log.contains(":***@127.0.0.1"), "the store is named without its password:\n{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL's server binaries: scripts/test runs it where scripts/setup --test-tools installed them"]
async fn store_migrate_moves_a_sqlite_store_into_postgres_once() {
    let dir = tempfile::tempdir().unwrap();
    let sqlite = write_config(dir.path(), "");
    let admin = admin_token(&sqlite);
    let waedge = Waedge::start(&sqlite);
    acme(&waedge, &admin).await;
    waedge.admin_expect(reqwest::Method::POST, "/v1/tenants/acme/devices", &admin, json!({ "id": "main" }), 201).await;
    let token = waedge.new_user_token(&admin, "acme", &["main"]).await;
    let not_linked = waedge.api("/devices/main/groups", &token).await;
    assert_eq!(not_linked.json["error"]["code"], "DEVICE_NOT_CONNECTED", "{}", not_linked.text);
    let users = waedge.admin_expect(reqwest::Method::GET, "/v1/tenants/acme/users", &admin, Value::Null, 200).await;
    let migrate = ["store", "migrate", "--config", sqlite.to_str().unwrap()];

    // Without a PostgreSQL store in the configuration, there is nowhere to copy to.
    let nowhere = cli(&migrate, None);
    let said = String::from_utf8_lossy(&nowhere.stderr);
    assert!(!nowhere.status.success() && said.contains("names no PostgreSQL store"), "{said}");

    // While the gateway runs on the data directory, nothing is copied.
    let url = database();
    let postgres = write_config(dir.path(), &format!("store = \"{url}\""));
    let migrate = ["store", "migrate", "--config", postgres.to_str().unwrap()];
    let busy = cli(&migrate, None);
    let said = String::from_utf8_lossy(&busy.stderr);
    assert!(!busy.status.success() && said.contains("is in use by process"), "{said}");
    assert_eq!(tenants_in(&url).await, None, "nothing was copied, not even the schema");
    waedge.stop();

    let copied = cli(&migrate, None);
    let said = String::from_utf8_lossy(&copied.stderr);
    assert!(copied.status.success(), "{said}");
    assert!(!said.contains(PASSWORD), "the URL's password is not printed: {said}");
    for table in ["tenants", "devices", "users", "tokens", "routes", "admin_tokens"] {
        assert!(said.lines().any(|line| line.trim_start().starts_with(table) && line.ends_with("1 row(s)")), "{said}");
    }
    assert!(dir.path().join("data/waedge.db").exists(), "the SQLite store is left as a backup");

    // The gateway on PostgreSQL serves what the SQLite one did, to the same tokens.
    let waedge = Waedge::start(&postgres);
    let answer = waedge.api("/devices/main/groups", &token).await;
    assert_eq!(
        (answer.status, &answer.json["error"]["code"]),
        (503, &json!("DEVICE_NOT_CONNECTED")),
        "{}",
        answer.text
    );
    let moved = waedge.admin_expect(reqwest::Method::GET, "/v1/tenants/acme/users", &admin, Value::Null, 200).await;
    assert_eq!(moved, users);
    waedge.stop();

    // A second copy would mix two stores: refused, and the first is untouched.
    let again = cli(&migrate, None);
    let said = String::from_utf8_lossy(&again.stderr);
    assert!(!again.status.success() && said.contains("the target store is not empty"), "{said}");
    let waedge = Waedge::start(&postgres);
    assert_eq!(waedge.api("/devices/main/groups", &token).await.status, 503);
    waedge.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL's server binaries: scripts/test runs it where scripts/setup --test-tools installed them"]
async fn store_migrate_moves_the_sessions_of_linked_devices_so_they_connect_without_linking_again() {
    let sim = WaSim::start(SimConfig::new(world())).await.expect("wa-sim starts");
    let dir = tempfile::tempdir().unwrap();
    let server = format!("whatsapp_server = \"{}\"", sim.ws_url());
    let sqlite = write_config(dir.path(), &server);
    let admin = admin_token(&sqlite);
    let waedge = Waedge::start(&sqlite);
    acme(&waedge, &admin).await;
    waedge.link_new_device(&admin, &sim, ("acme", "main", SELF_PHONE), Duration::from_secs(30)).await;
    waedge.link_new_device(&admin, &sim, ("acme", "spare", JOHN), Duration::from_secs(30)).await;
    let token = waedge.new_user_token(&admin, "acme", &["main"]).await;
    let before = main_as_served(&waedge, &token).await;
    let linked =
        waedge.admin_expect(reqwest::Method::GET, "/v1/tenants/acme/devices/main", &admin, Value::Null, 200).await;
    waedge.stop();
    // The session file of `spare` is lost (a data directory restored without it, say).
    let files = dir.path().join("data/devices/acme");
    for file in std::fs::read_dir(&files).unwrap() {
        let file = file.unwrap().path();
        if file.file_name().unwrap().to_string_lossy().starts_with("spare.db") {
            std::fs::remove_file(file).unwrap();
        }
    }

    let url = database();
    let postgres = write_config(dir.path(), &format!("{server}\nstore = \"{url}\""));
    let config = postgres.to_str().unwrap();
    let migrate = cli(&["store", "migrate", "--config", config], None);
    let said = String::from_utf8_lossy(&migrate.stderr);
    assert!(migrate.status.success(), "{said}");
    assert!(migrate.stdout.is_empty(), "progress goes to standard error");
    let moved = said.lines().find(|line| line.trim_start().starts_with("acme/main")).expect("main's session moved");
    assert!(moved.ends_with(" row(s)") && !moved.contains(" 0 row(s)"), "{said}");
    assert!(said.contains("acme/spare") && said.contains("no session in the data directory"), "{said}");
    assert!(said.contains("Link these devices again: acme/spare."), "{said}");
    assert!(!said.contains(PASSWORD), "the URL's password is not printed: {said}");
    assert_eq!(tenants_in(&url).await, Some(1));

    // On PostgreSQL, `main` connects on the session it had — nobody links it again — and
    // serves what it served; `spare` waits to be linked.
    let waedge = Waedge::start(&postgres);
    waedge.wait_for_device(&admin, "acme", "main", "connected", Duration::from_secs(30)).await;
    assert_eq!(main_as_served(&waedge, &token).await, before, "the same answers after the move");
    let device =
        waedge.admin_expect(reqwest::Method::GET, "/v1/tenants/acme/devices/main", &admin, Value::Null, 200).await;
    assert_eq!((&device["jid"], &device["lid"]), (&linked["jid"], &linked["lid"]), "the same account: {device}");
    assert_eq!(sim.connections_of(SELF_PHONE), 1, "one client of the account");
    waedge.wait_for_device(&admin, "acme", "spare", "unlinked", Duration::from_secs(10)).await;
    let spare =
        waedge.admin_expect(reqwest::Method::GET, "/v1/tenants/acme/devices/spare", &admin, Value::Null, 200).await;
    assert_eq!(spare["jid"], Value::Null, "{spare}");
    waedge.stop();

    // A second run would mix two stores: refused before a session is moved.
    let again = cli(&["store", "migrate", "--config", config], None);
    let said = String::from_utf8_lossy(&again.stderr);
    assert!(!again.status.success() && said.contains("the target store is not empty"), "{said}");
    assert!(!said.contains("Moving the WhatsApp sessions"), "{said}");
}

/// How many tenants the PostgreSQL store at `url` has; `None` while it has no tables.
async fn tenants_in(url: &str) -> Option<i64> {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls).await.expect("connecting");
    tokio::spawn(connection);
    match client.query_one("SELECT count(*) FROM tenants", &[]).await {
        Ok(row) => Some(row.get(0)),
        Err(e) if e.code() == Some(&tokio_postgres::error::SqlState::UNDEFINED_TABLE) => None,
        Err(e) => panic!("counting the tenants: {e}"),
    }
}

/// A configuration for the node `node` of a cluster on the PostgreSQL store at `url`, in
/// `dir`.
fn node_config(dir: &std::path::Path, url: &str, node: &str) -> std::path::PathBuf {
    write_config(dir, &format!("store = \"{url}\"\n[cluster]\nnode = \"{node}\"\nlease_ms = 6000"))
}

/// Two nodes on one new PostgreSQL store, with tenant `acme` serving the devices API, its
/// device `main` (not linked) and a user who may use it.
struct TwoNodes {
    _dirs: [tempfile::TempDir; 2],
    configs: [std::path::PathBuf; 2],
    admin: String,
    nodes: [Waedge; 2],
    /// The user's API token.
    token: String,
    /// The admin API's path of that token.
    token_path: String,
}

impl TwoNodes {
    async fn start() -> TwoNodes {
        let url = database();
        TwoNodes::start_on([url.clone(), url]).await
    }

    /// Two nodes connecting to the store at `urls` (one database, as the users they name).
    async fn start_on(urls: [String; 2]) -> TwoNodes {
        let dirs = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
        let configs =
            [node_config(dirs[0].path(), &urls[0], "node-1"), node_config(dirs[1].path(), &urls[1], "node-2")];
        let admin = admin_token(&configs[0]);
        let nodes = [Waedge::start(&configs[0]), Waedge::start(&configs[1])];
        acme(&nodes[0], &admin).await;
        let device = json!({ "id": "main" });
        nodes[0].admin_expect(reqwest::Method::POST, "/v1/tenants/acme/devices", &admin, device, 201).await;
        let user = json!({ "devices": ["main"] });
        let user = nodes[0].admin_expect(reqwest::Method::POST, "/v1/tenants/acme/users", &admin, user, 201).await;
        let tokens = format!("/v1/tenants/acme/users/{}/tokens", user["id"].as_str().unwrap());
        let created = nodes[0].admin_expect(reqwest::Method::POST, &tokens, &admin, Value::Null, 201).await;
        let token = created["token"].as_str().expect("the new token").to_owned();
        let token_path = format!("{tokens}/{}", created["id"].as_str().unwrap());
        TwoNodes { _dirs: dirs, configs, admin, nodes, token, token_path }
    }

    /// Revokes the user's token on node `on`, expecting 200.
    async fn revoke(&self, on: usize) {
        let revoked = self.nodes[on].admin(reqwest::Method::DELETE, &self.token_path, &self.admin, Value::Null).await;
        assert_eq!(revoked.status, 200, "{}", revoked.text);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL's server binaries: scripts/test runs it where scripts/setup --test-tools installed them"]
async fn an_admin_change_on_one_node_is_served_by_every_node_when_its_call_returns() {
    let cluster = TwoNodes::start().await;
    let (nodes, admin, token) = (&cluster.nodes, &cluster.admin, &cluster.token);

    // Made on node 1, served by node 2 as soon as the calls returned.
    for node in nodes {
        let answer = node.api("/devices/main/groups", token).await;
        assert_eq!(answer.json["error"]["code"], "DEVICE_NOT_CONNECTED", "{}", answer.text);
    }

    // Both nodes are alive, and one of them takes the device's lease at its next turn.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let status = loop {
        let status = cli_ok(&["cluster", "status", "--config", cluster.configs[1].to_str().unwrap()], None);
        let device = status.lines().find(|line| line.starts_with("acme/main")).unwrap_or_else(|| panic!("{status}"));
        if device.split_whitespace().nth(1).is_some_and(|owner| owner.starts_with("node-")) {
            break status;
        }
        assert!(std::time::Instant::now() < deadline, "no node took the device: {status}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    for name in ["node-1#", "node-2#"] {
        let line = status.lines().find(|line| line.starts_with(name)).unwrap_or_else(|| panic!("{name}: {status}"));
        assert_eq!(line.split_whitespace().nth(1), Some("yes"), "{line}");
    }
    // A node goes by one name: the device's owner is one of the nodes listed.
    let device = status.lines().find(|line| line.starts_with("acme/main")).expect("the device");
    let owner = device.split_whitespace().nth(1).expect("its owner");
    assert!(status.lines().any(|line| line.split_whitespace().next() == Some(owner)), "{status}");
    assert!(status.contains(&format!("Devices per node: {owner}: 1")), "{status}");

    // A component deployed on node 2 serves on node 1.
    nodes[1].deploy(admin, "acme", "hello", waedge_e2e::guests::get("hello-http").to_vec()).await;
    let route = json!({ "prefix": "/hello", "component": "component:hello" });
    nodes[1].admin_expect(reqwest::Method::PUT, "/v1/tenants/acme/routes", admin, route, 200).await;
    let hello = nodes[0].api("/hello", token).await;
    assert_eq!((hello.status, hello.text.as_str()), (200, "Hello, world!\n"));

    // A token revoked on node 2 is refused by node 1 when the call returns.
    cluster.revoke(1).await;
    for node in nodes {
        let refused = node.api("/devices/main/groups", token).await;
        assert_eq!(refused.status, 401, "{}", refused.text);
    }

    // A node that stopped is not waited for: the next change answers at once.
    let TwoNodes { nodes: [one, two], admin, .. } = cluster;
    two.stop();
    let started = std::time::Instant::now();
    let route = json!({ "prefix": "/contacts", "component": "builtin:contacts-api" });
    one.admin_expect(reqwest::Method::PUT, "/v1/tenants/acme/routes", &admin, route, 200).await;
    assert!(started.elapsed() < Duration::from_secs(2), "waited {:?} for a node that left", started.elapsed());
    one.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL's server binaries: scripts/test runs it where scripts/setup --test-tools installed them"]
async fn a_hot_swap_made_on_one_node_fails_no_request_on_another_and_switches_cleanly() {
    let cluster = TwoNodes::start().await;
    let (nodes, admin, token) = (&cluster.nodes, &cluster.admin, &cluster.token);
    let hello = waedge_e2e::guests::get("hello-http");
    let versions = [with_note(hello, "v1"), with_note(hello, "v2")];
    // Both deployed on node 2, v1 last: v1 serves.
    let mut served = Vec::new();
    for version in versions.iter().rev() {
        let deployed = nodes[1].deploy(admin, "acme", "hello", version.clone()).await;
        served.push(deployed["sha256"].as_str().expect("the version's SHA-256").to_owned());
    }
    served.reverse();
    let route = json!({ "prefix": "/hello", "component": "component:hello" });
    nodes[1].admin_expect(reqwest::Method::PUT, "/v1/tenants/acme/routes", admin, route, 200).await;
    let served_by = |reply: &reqwest::header::HeaderMap| {
        let header = reply.get("x-waedge-component").and_then(|v| v.to_str().ok()).unwrap_or("none");
        served.iter().position(|sha| header == format!("acme/hello@{}", &sha[..12]))
    };

    // Requests to node 1 all along, while node 2 swaps the version back and forth.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let clients: Vec<_> = (0..3)
        .map(|_| {
            let (url, token, stop) = (format!("{}/hello", nodes[0].api), token.clone(), stop.clone());
            tokio::spawn(async move {
                let http = reqwest::Client::new();
                let mut replies = Vec::new();
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let reply = http.get(&url).bearer_auth(&token).send().await.expect("node 1 answers");
                    let (status, headers) = (reply.status().as_u16(), reply.headers().clone());
                    replies.push((status, headers, reply.text().await.expect("a body")));
                }
                replies
            })
        })
        .collect();
    for swap in 0..10 {
        let next = (swap + 1) % 2;
        let activate = format!("/v1/tenants/acme/components/hello/versions/{}/activate", served[next]);
        nodes[1].admin_expect(reqwest::Method::POST, &activate, admin, Value::Null, 200).await;
        // Served on node 1 once the swap made on node 2 answered.
        let after = reqwest::Client::new()
            .get(format!("{}/hello", nodes[0].api))
            .bearer_auth(token)
            .send()
            .await
            .expect("node 1 answers");
        assert_eq!(served_by(after.headers()), Some(next), "swap {swap}: {:?}", after.headers());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut seen = [0usize; 2];
    for client in clients {
        for (status, headers, body) in client.await.expect("a client") {
            assert_eq!((status, body.as_str()), (200, "Hello, world!\n"), "a request failed");
            seen[served_by(&headers).unwrap_or_else(|| panic!("served by {headers:?}"))] += 1;
        }
    }
    assert!(seen[0] > 0 && seen[1] > 0, "both versions served under load: {seen:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL's server binaries: scripts/test runs it where scripts/setup --test-tools installed them"]
async fn a_node_paused_past_the_wait_serves_nothing_until_it_has_caught_up() {
    let cluster = TwoNodes::start().await;
    let paused = cluster.nodes[1].pid();
    signal("-STOP", paused);
    // Node 1 waits for node 2 until it counts as gone (3 s), then answers.
    let started = std::time::Instant::now();
    cluster.revoke(0).await;
    let waited = started.elapsed();
    signal("-CONT", paused);
    assert!(waited >= Duration::from_secs(1), "the revocation waited for the paused node: {waited:?}");

    // Resumed, node 2 never accepts the revoked token: it refuses everything until it has
    // heard from the store again, then refuses the token.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let answer = cluster.nodes[1].api("/devices/main/groups", &cluster.token).await;
        match (answer.status, answer.json["error"]["code"].as_str()) {
            (401, _) => break,
            (503, Some("NODE_BEHIND")) => assert_eq!(answer.headers["retry-after"], "1"),
            _ => panic!("the paused node served a revoked token: {} {}", answer.status, answer.text),
        }
        assert!(std::time::Instant::now() < deadline, "node 2 never caught up");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Sends `signal` (`-STOP`, `-CONT`) to the process `pid`.
fn signal(signal: &str, pid: u32) {
    let status = std::process::Command::new("kill").args([signal, &pid.to_string()]).status().expect("kill runs");
    assert!(status.success());
}

/// Runs `sql` on the database at `url` (as its superuser).
async fn run_sql(url: &str, sql: &str) {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls).await.expect("connecting");
    tokio::spawn(connection);
    client.batch_execute(sql).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
}

/// The lease and epoch `acme`'s `main` device's status was last recorded under, and those of
/// its lease now.
async fn status_and_lease_epochs(url: &str) -> ((i64, i64), (i64, i64)) {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls).await.expect("connecting");
    tokio::spawn(connection);
    let row = client
        .query_one(
            "SELECT d.status_lease, d.status_epoch, w.id, w.epoch
             FROM devices d JOIN wa_devices w ON w.tenant = d.tenant_id AND w.device = d.id
             WHERE d.tenant_id = 'acme' AND d.id = 'main'",
            &[],
        )
        .await
        .expect("the device and its lease");
    ((row.get(0), row.get(1)), (row.get(2), row.get(3)))
}

/// Waits until `node`'s `/readyz` answers `status` (within `seconds`).
async fn wait_for_readiness(node: &Waedge, status: u16, seconds: u64) -> Value {
    let deadline = std::time::Instant::now() + Duration::from_secs(seconds);
    loop {
        let ready = reqwest::get(format!("{}/readyz", node.admin)).await.expect("GET /readyz");
        let code = ready.status().as_u16();
        let body: Value = serde_json::from_str(&ready.text().await.unwrap_or_default()).unwrap_or(Value::Null);
        if code == status {
            return body;
        }
        assert!(std::time::Instant::now() < deadline, "/readyz still {code}: {body}\n{}", node.log());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL's server binaries: scripts/test runs it where scripts/setup --test-tools installed them"]
async fn a_node_cut_off_from_the_database_serves_nothing_until_it_is_back_and_caught_up() {
    // Node 2 connects as a role of its own, which the test can lock out.
    let url = database();
    let role = format!("node2_{}", url.rsplit('/').next().unwrap());
    run_sql(&url, &format!("CREATE ROLE {role} LOGIN SUPERUSER")).await;
    let second = url.replacen(&format!("://waedge:{PASSWORD}@"), &format!("://{role}@"), 1);
    let cluster = TwoNodes::start_on([url.clone(), second]).await;
    assert_eq!(wait_for_readiness(&cluster.nodes[1], 200, 10).await["status"], "ready");

    // Cut off: its role may no longer log in, its connections are ended.
    run_sql(
        &url,
        &format!(
            "ALTER ROLE {role} NOLOGIN; \
             SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = '{role}'"
        ),
    )
    .await;
    assert_eq!(wait_for_readiness(&cluster.nodes[1], 503, 10).await["status"], "behind");
    let refused = cluster.nodes[1].api("/devices/main/groups", &cluster.token).await;
    assert_eq!(
        (refused.status, refused.json["error"]["code"].as_str()),
        (503, Some("NODE_BEHIND")),
        "{}",
        refused.text
    );
    // Meanwhile a token is revoked: node 1 answers once node 2 counts as gone.
    cluster.revoke(0).await;

    // Back: node 2 reconnects, catches up, and refuses the revoked token.
    run_sql(&url, &format!("ALTER ROLE {role} LOGIN")).await;
    assert_eq!(wait_for_readiness(&cluster.nodes[1], 200, 20).await["status"], "ready");
    let answer = cluster.nodes[1].api("/devices/main/groups", &cluster.token).await;
    assert_eq!(answer.status, 401, "{}", answer.text);
}

/// The delivery log of `acme`'s webhook `webhook`, as node `node` lists it.
async fn deliveries(node: &Waedge, admin: &str, webhook: &str) -> Vec<Value> {
    let path = format!("/v1/tenants/acme/webhooks/{webhook}/deliveries");
    let log = node.admin_expect(reqwest::Method::GET, &path, admin, Value::Null, 200).await;
    log["deliveries"].as_array().expect("a list of deliveries").clone()
}

/// Waits until the delivery log holds `count` deliveries (within `seconds`), then returns it.
async fn delivered(node: &Waedge, admin: &str, webhook: &str, count: usize, seconds: u64) -> Vec<Value> {
    let deadline = std::time::Instant::now() + Duration::from_secs(seconds);
    loop {
        let log = deliveries(node, admin, webhook).await;
        if log.len() >= count || std::time::Instant::now() > deadline {
            return log;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL's server binaries: scripts/test runs it where scripts/setup --test-tools installed them"]
async fn one_node_delivers_the_webhooks_and_another_takes_over_when_it_dies() {
    let url = database();
    let sim = WaSim::start(SimConfig::new(world())).await.expect("wa-sim starts");
    let dirs = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
    let config = |dir: &tempfile::TempDir, node: &str| {
        let extra = format!(
            "whatsapp_server = \"{}\"\npublic_test_addresses = [\"127.0.0.1\"]\nstore = \"{url}\"\n\
             [cluster]\nnode = \"{node}\"\nlease_ms = 6000",
            sim.ws_url()
        );
        write_config(dir.path(), &extra)
    };
    let configs = [config(&dirs[0], "node-1"), config(&dirs[1], "node-2")];
    let admin = admin_token(&configs[0]);
    let first = Waedge::start(&configs[0]);
    acme(&first, &admin).await;
    first.link_new_device(&admin, &sim, ("acme", "main", SELF_PHONE), Duration::from_secs(30)).await;
    // Slower than a worker's own look at the outbox (every 5 s): a second node delivering too
    // would send the event again while the first waits for its answer.
    let localhost = std::net::IpAddr::from([127, 0, 0, 1]);
    let endpoint = waedge_e2e::stub::listen_answering_after(localhost, 0, "{}", Duration::from_secs(7)).await.unwrap();
    let hook = json!({ "url": format!("http://127.0.0.1:{}/hook", endpoint.port), "events": ["message.received"] });
    let created = first.admin_expect(reqwest::Method::POST, "/v1/tenants/acme/webhooks", &admin, hook, 201).await;
    let webhook = created["id"].as_str().expect("a webhook id").to_owned();
    let second = Waedge::start(&configs[1]);

    // Node 2 streams the events node 1 records, woken by their announcement (not by its own
    // look at the outbox, every 5 s).
    let recorded = second.admin_expect(reqwest::Method::GET, "/v1/tenants/acme/events", &admin, Value::Null, 200).await;
    let stream = reqwest::Client::new().get(format!("{}/v1/tenants/acme/events/stream", second.admin));
    let mut stream = stream.bearer_auth(&admin).send().await.expect("the stream opens");
    read_events(&mut stream, recorded["events"].as_array().expect("events").len()).await;

    // Node 1 runs the device and delivers; node 2 delivers nothing.
    let sent = std::time::Instant::now();
    sim.send_text(JOHN, SELF_PHONE, "hi").await.expect("John Doe sends a text");
    let streamed = read_events(&mut stream, 1).await;
    assert_eq!((streamed[0].1.as_str(), sent.elapsed() < Duration::from_secs(4)), ("message.received", true));
    assert_eq!(delivered(&first, &admin, &webhook, 1, 20).await.len(), 1);
    let log = deliveries(&second, &admin, &webhook).await;
    assert_eq!(log.len(), 1, "one delivery of the event: {log:?}");
    assert_eq!((&log[0]["attempt"], &log[0]["status"]), (&json!(1), &json!(200)));
    assert_eq!(endpoint.connections(), 1, "the endpoint was called once");

    // Node 1 dies: node 2 takes the device over (its lease runs out) and the delivery.
    first.kill();
    second.wait_for_device(&admin, "acme", "main", "connected", Duration::from_secs(30)).await;
    sim.send_text(JOHN, SELF_PHONE, "still there?").await.expect("another text");
    let log = delivered(&second, &admin, &webhook, 2, 30).await;
    assert_eq!(log.len(), 2, "the second event delivered by node 2: {log:?}");
    assert_eq!(endpoint.connections(), 2);
    assert_ne!(log[0]["event_id"], log[1]["event_id"]);
    assert_eq!(sim.connections_of(SELF_PHONE), 1, "one client of the account, never two");
    second.stop();
}

/// The secret the nodes of the forwarding test share.
const CLUSTER_SECRET: &str = "forwarding-test-secret-0123456789abcdef";

/// The configuration of node `node` on the store at `url`, its devices connecting to `sim`,
/// with a cluster listener on a free port.
fn forwarding_node(dir: &std::path::Path, url: &str, sim: &WaSim, node: &str) -> std::path::PathBuf {
    let cluster =
        format!("node = \"{node}\"\nlease_ms = 6000\nlisten = \"127.0.0.1:0\"\nsecret = \"{CLUSTER_SECRET}\"");
    write_config(dir, &format!("whatsapp_server = \"{}\"\nstore = \"{url}\"\n[cluster]\n{cluster}", sim.ws_url()))
}

/// Two nodes' configurations with cluster listeners on one new store, their devices
/// connecting to a new wa-sim, and node 1 started alone with acme's device `main` linked.
struct LinkedOnNodeOne {
    url: String,
    sim: WaSim,
    _dirs: [tempfile::TempDir; 2],
    configs: [std::path::PathBuf; 2],
    admin: String,
    one: Waedge,
}

impl LinkedOnNodeOne {
    async fn start() -> LinkedOnNodeOne {
        let url = database();
        let sim = WaSim::start(SimConfig::new(world())).await.expect("wa-sim starts");
        let dirs = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
        let configs = [
            forwarding_node(dirs[0].path(), &url, &sim, "node-1"),
            forwarding_node(dirs[1].path(), &url, &sim, "node-2"),
        ];
        let admin = admin_token(&configs[0]);
        let one = Waedge::start(&configs[0]);
        acme(&one, &admin).await;
        one.link_new_device(&admin, &sim, ("acme", "main", SELF_PHONE), Duration::from_secs(30)).await;
        LinkedOnNodeOne { url, sim, _dirs: dirs, configs, admin, one }
    }
}

/// How many device calls `node` forwarded and got answered, by its `/metrics`, and the page.
async fn forwarded(node: &Waedge) -> (u64, String) {
    let metrics = reqwest::get(format!("{}/metrics", node.admin)).await.unwrap().text().await.unwrap();
    let count = "waedge_forwarded_call_duration_seconds_count{outcome=\"answered\"} ";
    let answered = metrics.lines().find_map(|line| line.strip_prefix(count)?.parse::<u64>().ok());
    (answered.unwrap_or(0), metrics)
}

/// Each device of `acme`'s admin list on `node`, in the list's order: its `field`.
async fn listed(node: &Waedge, admin: &str, field: &str) -> Vec<Value> {
    let listed = node.admin(reqwest::Method::GET, "/v1/tenants/acme/devices", admin, Value::Null).await;
    assert_eq!(listed.status, 200, "{}", listed.text);
    let devices = listed.json["devices"].as_array().unwrap_or_else(|| panic!("a device list: {}", listed.text));
    devices.iter().map(|device| device[field].clone()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL's server binaries: scripts/test runs it where scripts/setup --test-tools installed them"]
async fn the_admin_api_of_any_node_logs_out_links_and_removes_a_device_another_node_runs() {
    let LinkedOnNodeOne { sim, _dirs, configs, admin, one, .. } = LinkedOnNodeOne::start().await;
    let two = Waedge::start(&configs[1]);
    two.wait_for_device(&admin, "acme", "main", "connected", Duration::from_secs(10)).await;
    assert_eq!(device_nodes(&configs[1], "acme").get("main").map(String::as_str), Some("node-1"));
    let device = "/v1/tenants/acme/devices/main";
    async fn post(node: &Waedge, admin: &str, path: &str) -> Reply {
        node.admin(reqwest::Method::POST, &format!("/v1/tenants/acme/devices/main{path}"), admin, Value::Null).await
    }

    // Refused as node 1 refuses it, with node 1's words.
    let (on_one, on_two) = (post(&one, &admin, "/reconnect").await, post(&two, &admin, "/reconnect").await);
    assert_eq!((on_two.status, &on_two.json), (on_one.status, &on_one.json), "{}", on_two.text);
    assert_eq!(on_two.status, 409, "a connected device is not reconnected: {}", on_two.text);

    // Logged out through node 2: node 1's client logs out, and node 2 answers with the state.
    let logged_out = post(&two, &admin, "/logout").await;
    assert_eq!((logged_out.status, &logged_out.json["state"]), (200, &json!("logged-out")), "{}", logged_out.text);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while sim.connections_of(SELF_PHONE) != 0 {
        assert!(std::time::Instant::now() < deadline, "node 1's client is still connected");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    one.wait_for_device(&admin, "acme", "main", "logged-out", Duration::from_secs(5)).await;

    // Linked again through node 2: its QR code is node 1's linking, shown on node 2 as it goes.
    let link = post(&two, &admin, "/link").await;
    let code = link.json["code"].as_str().unwrap_or_else(|| panic!("a QR code through node 2: {}", link.text));
    // Both nodes' device lists show it being linked: node 1 its own linking, node 2 its mirror.
    for (n, node) in [(1, &one), (2, &two)] {
        assert_eq!(listed(node, &admin, "linking").await, [json!(true)], "node {n}");
    }
    sim.scan_qr(code, SELF_PHONE).await.expect("the phone scans the code node 2 shows");
    two.wait_for_device(&admin, "acme", "main", "connected", Duration::from_secs(30)).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let linking = two.admin(reqwest::Method::GET, &format!("{device}/link"), &admin, Value::Null).await;
        if linking.json["state"] == "linked" {
            assert_eq!(linking.json["jid"], json!(format!("{SELF_PHONE}@s.whatsapp.net")), "{}", linking.text);
            break;
        }
        assert!(std::time::Instant::now() < deadline, "node 2 does not show the linking's end: {}", linking.text);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(device_nodes(&configs[1], "acme").get("main").map(String::as_str), Some("node-1"), "node 1 links it");
    // Node 2 lists it as node 1 runs it: connected, to the account, no longer being linked.
    for (n, node) in [(1, &one), (2, &two)] {
        assert_eq!(listed(node, &admin, "linking").await, [json!(false)], "node {n}: the linking is over");
        assert_eq!(listed(node, &admin, "state").await, [json!("connected")], "node {n}");
        assert_eq!(listed(node, &admin, "jid").await, [json!(format!("{SELF_PHONE}@s.whatsapp.net"))], "node {n}");
    }
    assert_eq!(sim.peak_connections_of(SELF_PHONE), 1, "one client of the account, never two");

    // Removed through node 2: node 1 logs it out and stops its client; no node keeps it.
    two.admin_expect(reqwest::Method::DELETE, device, &admin, Value::Null, 204).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while sim.connections_of(SELF_PHONE) != 0 {
        assert!(std::time::Instant::now() < deadline, "node 1's client outlived its device");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for node in [&one, &two] {
        let gone = node.admin(reqwest::Method::GET, device, &admin, Value::Null).await;
        assert_eq!(gone.status, 404, "{}", gone.text);
    }
    assert_eq!(device_nodes(&configs[1], "acme").get("main"), None, "its lease is gone");
    let log = two.stop();
    assert!(!log.contains("not logged out of WhatsApp"), "node 1 logged it out, not node 2:\n{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL's server binaries: scripts/test runs it where scripts/setup --test-tools installed them"]
async fn a_device_removed_while_its_node_is_dead_leaves_no_state_and_no_client_behind() {
    let LinkedOnNodeOne { sim, _dirs, configs, admin, one, .. } = LinkedOnNodeOne::start().await;
    let two = Waedge::start(&configs[1]);
    two.wait_for_device(&admin, "acme", "main", "connected", Duration::from_secs(10)).await;

    // Node 1, running the device, dies; before its lease runs out, the device is deleted on
    // node 2, which cannot ask node 1 to log it out: it deletes its state and lease itself.
    one.kill();
    two.admin_expect(reqwest::Method::DELETE, "/v1/tenants/acme/devices/main", &admin, Value::Null, 204).await;
    assert_eq!(device_nodes(&configs[1], "acme").get("main"), None, "no lease left");
    // Past the dead node's lease, nobody runs it: no node takes a device that is gone.
    tokio::time::sleep(Duration::from_secs(8)).await;
    assert_eq!(sim.connections_of(SELF_PHONE), 0, "no client of the deleted device");
    let log = two.stop();
    assert!(log.contains("it is not logged out of WhatsApp"), "the log says what is left to do:\n{log}");
}

/// [`main_as_served`] once `node` answers them all, within `seconds`; until then every answer
/// that is not one of them is `DEVICE_NOT_CONNECTED`.
async fn main_once_served(node: &Waedge, token: &str, seconds: u64) -> Vec<Value> {
    let deadline = std::time::Instant::now() + Duration::from_secs(seconds);
    'again: loop {
        let mut answers = Vec::new();
        for path in ["/devices/main/groups", "/devices/main/profile?jid=6281234567890"] {
            let reply = node.api(path, token).await;
            if reply.status != 200 {
                assert_eq!(reply.json["error"]["code"], "DEVICE_NOT_CONNECTED", "never another error: {}", reply.text);
                assert!(std::time::Instant::now() < deadline, "not served within {seconds}s: {}", reply.text);
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue 'again;
            }
            answers.push(reply.json);
        }
        return answers;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL's server binaries: scripts/test runs it where scripts/setup --test-tools installed them"]
async fn a_node_forwards_calls_on_a_device_another_node_runs_and_answers_as_that_node() {
    let LinkedOnNodeOne { url, mut sim, _dirs, configs, admin, one } = LinkedOnNodeOne::start().await;
    let token = one.new_user_token(&admin, "acme", &["main"]).await;
    let direct = main_as_served(&one, &token).await;

    // Node 2 joins; node 1 keeps the device (its fair share of one), and node 2 forwards the
    // calls on it: the same answers, with one client of the account.
    let two = Waedge::start(&configs[1]);
    let status = cli_ok(&["cluster", "status", "--config", configs[1].to_str().unwrap()], None);
    let device = status.lines().find(|line| line.starts_with("acme/main")).unwrap_or_else(|| panic!("{status}"));
    assert!(device.split_whitespace().nth(1).is_some_and(|owner| owner.starts_with("node-1#")), "{status}");
    // Node 2's admin API shows the device as its node recorded it.
    two.wait_for_device(&admin, "acme", "main", "connected", Duration::from_secs(5)).await;
    assert_eq!(main_as_served(&two, &token).await, direct, "node 2 answers as node 1 does");
    let (first_forwarded, metrics) = forwarded(&two).await;
    assert!(first_forwarded >= 2, "node 2 counts the calls it forwarded:\n{metrics}");
    // What is recorded of a device may lag behind it (a takeover's first status not written
    // yet): node 2 asks node 1 whatever it read, its cache aside, and node 1 answers for itself.
    let recorded =
        |state: &str| format!("UPDATE devices SET state = '{state}' WHERE tenant_id = 'acme' AND id = 'main'");
    run_sql(&url, &recorded("unlinked")).await;
    two.wait_for_device(&admin, "acme", "main", "unlinked", Duration::from_secs(5)).await;
    assert_eq!(main_as_served(&two, &token).await, direct, "forwarded, not refused on a lagging record");
    // Its first requests, on an empty cache, forwarded every call; these, past the cache, too.
    let (asked, _) = forwarded(&two).await;
    assert_eq!(asked - first_forwarded, first_forwarded, "every call of the two requests went to node 1");
    run_sql(&url, &recorded("connected")).await;
    two.wait_for_device(&admin, "acme", "main", "connected", Duration::from_secs(5)).await;
    // The device's state is node 1's to report: added up over the nodes, each device once.
    let state = "waedge_device_state{tenant=\"acme\",device=\"main\",state=\"connected\"} 1";
    assert!(!metrics.contains("waedge_device_state{tenant=\"acme\""), "node 2 does not run it:\n{metrics}");
    let on_one = reqwest::get(format!("{}/metrics", one.admin)).await.unwrap().text().await.unwrap();
    assert!(on_one.contains(state), "node 1 runs it:\n{on_one}");
    assert_eq!(sim.connections_of(SELF_PHONE), 1, "one client of the account, never two");
    // A send through node 2 leaves from node 1's client, once per idempotency key.
    let text = json!({ "to": JOHN, "text": "sent through node 2" });
    let key = [("Idempotency-Key", "forwarded-1")];
    let sent = two.api_post("/devices/main/messages", &token, &text, &key).await;
    assert_eq!(sent.status, 202, "{}", sent.text);
    let id = sent.json["data"]["id"].as_str().expect("a message id").to_owned();
    let again = two.api_post("/devices/main/messages", &token, &text, &key).await;
    assert_eq!(again.json["data"]["id"], id.as_str(), "{}", again.text);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while sim.received(JOHN).is_empty() && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let received = sim.received(JOHN);
    assert_eq!(received.len(), 1, "{received:#?}");
    assert_eq!((received[0].id.as_str(), received[0].from_phone.as_str()), (id.as_str(), SELF_PHONE));
    // A device's send rate is counted where it runs, whichever node takes the request: three
    // sends through node 2 use up the burst, and node 1's next send is refused.
    let limits = json!({ "limits": { "send_burst": 3, "sends_per_minute": 1 } });
    one.admin_expect(reqwest::Method::PATCH, "/v1/tenants/acme", &admin, limits, 200).await;
    for (node, key, status) in
        [(&two, "rated-1", 202), (&two, "rated-2", 202), (&two, "rated-3", 202), (&one, "rated-4", 429)]
    {
        let sent = node.api_post("/devices/main/messages", &token, &text, &[("Idempotency-Key", key)]).await;
        assert_eq!(sent.status, status, "{key}: {}", sent.text);
    }

    // What a session reads from the store, each node answers itself.
    for node in [&one, &two] {
        let found = node.api(&format!("/devices/main/messages/{id}"), &token).await;
        assert_eq!((found.status, &found.json["data"]["to"]), (200, &json!(JOHN_JID)), "{}", found.text);
    }

    // Only a node of the cluster gets an answer from a cluster listener.
    let listener =
        status.lines().find(|line| line.starts_with("node-1#")).and_then(|line| line.split_whitespace().last());
    let listener = listener.unwrap_or_else(|| panic!("node 1's cluster listener: {status}"));
    let http = reqwest::Client::new();
    let call = |secret: &str, deadline: Option<&str>| {
        let mut request = http.post(format!("http://{listener}/v1/devices/acme/main")).bearer_auth(secret);
        if let Some(deadline) = deadline {
            request = request.header("waedge-deadline-ms", deadline);
        }
        request.body(r#"{"call": "joined-groups"}"#).send()
    };
    let wrong = "forwarding-test-secret-0123456789abcdeX";
    for (secret, deadline, status, code) in [
        (wrong, Some("5000"), 401, "UNAUTHORIZED"),
        ("", Some("5000"), 401, "UNAUTHORIZED"),
        (CLUSTER_SECRET, None, 400, "BAD_REQUEST"),
    ] {
        let refused = call(secret, deadline).await.expect("the cluster listener answers");
        assert_eq!(refused.status().as_u16(), status);
        let refused: Value = serde_json::from_str(&refused.text().await.unwrap()).expect("a JSON error");
        assert_eq!(refused["error"]["code"], code, "{refused}");
    }
    let answered = call(CLUSTER_SECRET, Some("5000")).await.expect("the cluster listener answers");
    assert_eq!(answered.status().as_u16(), 200);
    let answered: Value = serde_json::from_str(&answered.text().await.unwrap()).expect("the session's answer");
    assert!(answered["Ok"].as_array().is_some_and(|groups| !groups.is_empty()), "{answered}");
    // Node 2 does not run the device: it says so, and is not asked to forward again.
    let node_two =
        status.lines().find(|line| line.starts_with("node-2#")).and_then(|line| line.split_whitespace().last());
    let node_two = node_two.unwrap_or_else(|| panic!("node 2's cluster listener: {status}"));
    let misdirected = http
        .post(format!("http://{node_two}/v1/devices/acme/main"))
        .bearer_auth(CLUSTER_SECRET)
        .header("waedge-deadline-ms", "5000")
        .body(r#"{"call": "joined-groups"}"#)
        .send()
        .await
        .expect("the cluster listener answers");
    assert_eq!(misdirected.status().as_u16(), 421);
    // A send its device cannot make now (WhatsApp out of reach) is refused for that by the
    // node running it, before it counts against the device's send rate (spent above).
    sim.stop_listening().await;
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while one.device_state(&admin, "acme", "main").await == "connected" {
        assert!(std::time::Instant::now() < deadline, "node 1 still shows the device connected");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let send = json!({
        "call": "send-text", "to": JOHN_JID, "text": "while down", "reply_to": null, "idempotency_key": "down-1"
    });
    let refused = http
        .post(format!("http://{listener}/v1/devices/acme/main"))
        .bearer_auth(CLUSTER_SECRET)
        .header("waedge-deadline-ms", "5000")
        .body(send.to_string())
        .send()
        .await
        .expect("the cluster listener answers");
    let refused: Value = serde_json::from_str(&refused.text().await.unwrap()).expect("the session's answer");
    assert!(refused["Err"]["DeviceNotConnected"].is_string(), "{refused}");
    sim.listen_again().await.expect("wa-sim listens again");
    one.wait_for_device(&admin, "acme", "main", "connected", Duration::from_secs(20)).await;

    // Node 1 leaves: node 2 takes the device over and answers the same, itself; meanwhile a
    // call answers DEVICE_NOT_CONNECTED, never another error.
    let log = one.stop();
    assert_eq!(main_once_served(&two, &token, 30).await, direct, "the same answers after the takeover");
    assert_eq!(sim.connections_of(SELF_PHONE), 1, "one client of the account");
    assert_eq!(sim.peak_connections_of(SELF_PHONE), 1, "never two at once");
    let log = log + &two.stop();
    assert!(!log.contains(CLUSTER_SECRET), "no cluster secret in the log");
}

/// Every `message.received` event of acme's device `main` in John Doe's chat, as `node`'s
/// admin API lists them, oldest first.
async fn received_from_john(node: &Waedge, admin: &str) -> Vec<Value> {
    let (mut events, mut after) = (Vec::new(), None::<String>);
    loop {
        let cursor = after.as_ref().map(|id| format!("&after={id}")).unwrap_or_default();
        let path = format!("/v1/tenants/acme/events?limit=100{cursor}");
        let page = node.admin_expect(reqwest::Method::GET, &path, admin, Value::Null, 200).await;
        let page = page["events"].as_array().expect("a list of events").clone();
        let Some(last) = page.last() else { break };
        after = Some(last["id"].as_str().expect("an event id").to_owned());
        let john = page.into_iter().filter(|e| e["type"] == "message.received" && e["chat"] == JOHN_JID);
        events.extend(john);
    }
    events
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL's server binaries: scripts/test runs it where scripts/setup --test-tools installed them"]
async fn a_takeover_while_a_chat_receives_loses_reorders_and_repeats_none_of_its_events() {
    let LinkedOnNodeOne { sim, _dirs, configs, admin, one: first, .. } = LinkedOnNodeOne::start().await;
    let second = Waedge::start(&configs[1]);

    // John writes on while node 1, which runs the device, is killed mid-way: what node 1 had
    // not committed (and so not acknowledged) WhatsApp delivers again to node 2 once it takes
    // the device over; what it had, node 2 does not record twice.
    const TEXTS: usize = 30;
    let mut first = Some(first);
    for i in 0..TEXTS {
        sim.send_text(JOHN, SELF_PHONE, &format!("message {i}")).await.expect("John writes");
        if i == TEXTS / 3 {
            first.take().expect("node 1").kill();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(40);
    let events = loop {
        let events = received_from_john(&second, &admin).await;
        if events.len() >= TEXTS || std::time::Instant::now() > deadline {
            break events;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let texts: Vec<&str> = events.iter().map(|e| e["data"]["message"]["text"].as_str().unwrap_or("?")).collect();
    let expected: Vec<String> = (0..TEXTS).map(|i| format!("message {i}")).collect();
    assert_eq!(texts, expected, "every text once, in the order John wrote them");
    let seqs: Vec<u64> = events.iter().map(|e| e["seq"].as_u64().expect("a seq")).collect();
    assert!(seqs.windows(2).all(|pair| pair[1] == pair[0] + 1), "the chat's numbers follow on: {seqs:?}");
    let ids: std::collections::HashSet<&str> = events.iter().map(|e| e["id"].as_str().expect("an id")).collect();
    assert_eq!(ids.len(), TEXTS, "one event id per message");
    assert_eq!(sim.connections_of(SELF_PHONE), 1, "one client of the account");
    assert_eq!(sim.peak_connections_of(SELF_PHONE), 1, "never two at once");
    second.stop();
}

/// The devices of the three-node test, each linked to an account of the world.
const THREE_DEVICES: [(&str, &str); 3] = [("d0", SELF_PHONE), ("d1", JOHN), ("d2", "5511999999999")];

/// What a device's user sees of the device `device`: its groups, and a contact's profile
/// through it.
async fn as_served(node: &Waedge, token: &str, device: &str) -> Vec<Reply> {
    let mut replies = Vec::new();
    for path in [format!("/devices/{device}/groups"), format!("/devices/{device}/profile?jid=447700900123")] {
        replies.push(node.api(&path, token).await);
    }
    replies
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL's server binaries: scripts/test runs it where scripts/setup --test-tools installed them"]
async fn three_nodes_share_the_devices_answer_for_all_of_them_and_survive_the_death_of_one() {
    let url = database();
    let sim = WaSim::start(SimConfig::new(world())).await.expect("wa-sim starts");
    let dirs = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
    let configs: Vec<_> = ["node-1", "node-2", "node-3"]
        .iter()
        .zip(&dirs)
        .map(|(name, dir)| forwarding_node(dir.path(), &url, &sim, name))
        .collect();
    let admin = admin_token(&configs[0]);
    let one = Waedge::start(&configs[0]);
    acme(&one, &admin).await;
    // Every answer straight from WhatsApp: no node's cache hides where a call went.
    let limits = json!({ "limits": { "cache_ttl_seconds": 0 } });
    one.admin_expect(reqwest::Method::PATCH, "/v1/tenants/acme", &admin, limits, 200).await;
    for (device, phone) in THREE_DEVICES {
        one.link_new_device(&admin, &sim, ("acme", device, phone), Duration::from_secs(30)).await;
    }
    let devices: Vec<&str> = THREE_DEVICES.iter().map(|(device, _)| *device).collect();
    let token = one.new_user_token(&admin, "acme", &devices).await;
    let mut single = Vec::new();
    for device in &devices {
        let replies = as_served(&one, &token, device).await;
        assert!(replies.iter().all(|reply| reply.status == 200), "{replies:?}");
        single.push(replies.into_iter().map(|reply| reply.json).collect::<Vec<_>>());
    }

    // Two nodes join: node 1 hands two devices over, one to each, without pairing again.
    let mut nodes = vec![Some(one), Some(Waedge::start(&configs[1])), Some(Waedge::start(&configs[2]))];
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let spread = loop {
        let owners = device_nodes(&configs[0], "acme");
        let mut runs: Vec<&String> = owners.values().collect();
        runs.sort();
        if runs == ["node-1", "node-2", "node-3"] {
            break owners;
        }
        assert!(std::time::Instant::now() < deadline, "the devices are not spread over the nodes: {owners:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };

    // Requests spread over the nodes get the single node's answers: two thirds forwarded.
    for node in nodes.iter().flatten() {
        for (device, expected) in devices.iter().zip(&single) {
            let deadline = std::time::Instant::now() + Duration::from_secs(20);
            loop {
                let replies = as_served(node, &token, device).await;
                let answers: Vec<&Value> = replies.iter().map(|reply| &reply.json).collect();
                if replies.iter().all(|reply| reply.status == 200) {
                    assert_eq!(answers, expected.iter().collect::<Vec<_>>(), "device {device}");
                    break;
                }
                // A device being handed over is not connected for a moment, nothing worse.
                for reply in &replies {
                    assert!(reply.status == 200 || reply.json["error"]["code"] == "DEVICE_NOT_CONNECTED", "{reply:?}");
                }
                assert!(std::time::Instant::now() < deadline, "device {device} not served: {replies:?}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }

    // The node running d1 is killed while requests keep going to the two others: every
    // device answers again within 10 s, and until then the only failure is
    // DEVICE_NOT_CONNECTED.
    let victim = spread["d1"].trim_start_matches("node-").parse::<usize>().unwrap() - 1;
    let survivors: Vec<Waedge> = {
        nodes[victim].take().expect("the victim").kill();
        nodes.into_iter().flatten().collect()
    };
    let killed = std::time::Instant::now();
    let mut failures = Vec::new();
    let mut served_again = None;
    while served_again.is_none() && killed.elapsed() < Duration::from_secs(20) {
        let mut all_served = true;
        for node in &survivors {
            for device in &devices {
                for reply in as_served(node, &token, device).await {
                    if reply.status != 200 {
                        all_served = false;
                        failures.push((reply.status, reply.json["error"]["code"].clone()));
                    }
                }
            }
        }
        if all_served {
            served_again = Some(killed.elapsed());
        }
    }
    let taken_over =
        served_again.unwrap_or_else(|| panic!("not every device served 20 s after the kill: {failures:?}"));
    assert!(taken_over <= Duration::from_secs(10), "every device served again only after {taken_over:?}");
    assert!(!failures.is_empty(), "d1 had no node for a moment: its calls cannot all have been answered");
    assert!(failures.iter().all(|(status, code)| *status == 503 && code == "DEVICE_NOT_CONNECTED"), "{failures:?}");
    for (_, phone) in THREE_DEVICES {
        assert_eq!(sim.connections_of(phone), 1, "one client of {phone} now");
        assert_eq!(sim.peak_connections_of(phone), 1, "never two clients of {phone} at once");
    }
    for node in survivors {
        node.stop();
    }
}

/// Waits up to `seconds` until `cluster status` (read with `config`) says `node` (a name
/// without its process suffix) runs acme's device `main`.
async fn wait_for_owner(config: &std::path::Path, node: &str, seconds: u64) {
    let deadline = std::time::Instant::now() + Duration::from_secs(seconds);
    while device_nodes(config, "acme").get("main").map(String::as_str) != Some(node) {
        assert!(std::time::Instant::now() < deadline, "{node} does not run the device after {seconds}s");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL's server binaries: scripts/test runs it where scripts/setup --test-tools installed them"]
async fn a_node_paused_past_its_leases_is_fenced_when_it_resumes_and_leaves_the_device_to_its_new_node() {
    let LinkedOnNodeOne { url, sim, _dirs, configs, admin, one } = LinkedOnNodeOne::start().await;
    let token = one.new_user_token(&admin, "acme", &["main"]).await;
    let direct = main_as_served(&one, &token).await;
    let two = Waedge::start(&configs[1]);
    let (first, taken) = status_and_lease_epochs(&url).await;
    assert_eq!(first, taken, "node 1 records the device's status under its lease's epoch");

    // Node 1 is paused past its lease (6 s): node 2 takes the device over from the shared
    // state, without pairing, and serves it.
    signal("-STOP", one.pid());
    wait_for_owner(&configs[1], "node-2", 20).await;
    assert_eq!(main_once_served(&two, &token, 20).await, direct, "node 2 serves the device it took over");
    // It records the status under its own, later epoch as it takes the device over: node 1's
    // reports under the one before are left out from then on, whatever it noted before its
    // pause.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (recorded, lease) = status_and_lease_epochs(&url).await;
        if recorded == lease && lease > taken {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "status under {recorded:?}, lease at {lease:?} (from {taken:?})");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Resumed, node 1 finds its lease gone: it stops its client and records nothing of the
    // device, and both nodes keep serving it through node 2 — no "replaced" loop.
    signal("-CONT", one.pid());
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while sim.connections_of(SELF_PHONE) != 1 {
        assert!(std::time::Instant::now() < deadline, "node 1 still has a client of the account 10 s after resuming");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Resumed, it refuses requests until it has caught up with the store (503 NODE_BEHIND).
    wait_for_readiness(&one, 200, 10).await;
    let (before, _) = forwarded(&one).await;
    for node in [&one, &two] {
        assert_eq!(main_as_served(node, &token).await, direct, "served after node 1 resumed");
        assert_eq!(node.device_state(&admin, "acme", "main").await, "connected");
    }
    assert!(forwarded(&one).await.0 >= before + 2, "node 1 answers through node 2, not a client of its own");
    assert_eq!(sim.connections_of(SELF_PHONE), 1, "one client of the account");
    let log = one.stop();
    assert!(log.contains("no longer runs the device"), "node 1 says it gave the device up:\n{log}");
    two.stop();
}

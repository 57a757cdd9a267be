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
use support::{SELF_PHONE, Waedge, admin_token, cli, cli_ok, world, write_config};
use wa_sim::{SimConfig, WaSim};
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
async fn store_migrate_will_not_strand_a_linked_device_unless_told() {
    let sim = WaSim::start(SimConfig::new(world())).await.expect("wa-sim starts");
    let dir = tempfile::tempdir().unwrap();
    let server = format!("whatsapp_server = \"{}\"", sim.ws_url());
    let sqlite = write_config(dir.path(), &server);
    let admin = admin_token(&sqlite);
    let waedge = Waedge::start(&sqlite);
    acme(&waedge, &admin).await;
    waedge.link_new_device(&admin, &sim, ("acme", "main", SELF_PHONE), Duration::from_secs(30)).await;
    waedge.stop();

    let url = database();
    let postgres = write_config(dir.path(), &format!("{server}\nstore = \"{url}\""));
    let config = postgres.to_str().unwrap();
    let refused = cli(&["store", "migrate", "--config", config], None);
    let said = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success(), "{said}");
    assert!(said.contains("1 device(s) are linked (acme/main)") && said.contains("--relink-devices"), "{said}");
    assert_eq!(tenants_in(&url).await, None, "nothing was copied, not even the schema");

    let copied = cli_ok(&["store", "migrate", "--config", config, "--relink-devices"], None);
    assert!(copied.is_empty(), "progress goes to standard error: {copied}");
    assert_eq!(tenants_in(&url).await, Some(1));
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

//! What the PostgreSQL tests share: a server of their own with a database on it.
#![allow(dead_code)] // Each test binary uses its own part of it.

use std::sync::Arc;

use waedge_device_pg::Database;
use waedge_test_postgres::Postgres;

/// A PostgreSQL server of the test's own, a database on it (its URL), and a node's
/// connections to it (two).
pub async fn database() -> (Postgres, String, Arc<Database>) {
    let server = tokio::task::spawn_blocking(Postgres::start).await.unwrap().expect("PostgreSQL starts");
    let url = server.create_database().expect("a database");
    let db = Arc::new(Database::connect(&url, 2).await.expect("connects and migrates"));
    (server, url, db)
}

/// A plain client of the database, for what no node does: looking under the hood.
pub async fn raw(url: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls).await.expect("connects");
    tokio::spawn(connection);
    client
}

/// Ends `tenant`'s `device` lease now, as if its owner had stopped renewing it.
pub async fn expire(url: &str, tenant: &str, device: &str) {
    let expired = raw(url)
        .await
        .execute(
            "UPDATE wa_devices SET expires_at = clock_timestamp() WHERE tenant = $1 AND device = $2",
            &[&tenant, &device],
        )
        .await
        .unwrap();
    assert_eq!(expired, 1, "{tenant}/{device} is registered");
}

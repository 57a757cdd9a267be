//! How waedge talks to PostgreSQL: the settings of every connection it opens and the words
//! of every PostgreSQL error it reports. Shared by the store (`waedge-store`) and the device
//! state (`waedge-device-pg`), so that both notice a dead server alike and say alike what a
//! server refused.
#![deny(missing_docs)]

use std::time::Duration;

use tokio_postgres::Config;
use tokio_postgres::config::Host;

/// The advisory locks waedge takes, each a fixed key (`waedge` in ASCII, then a number) of its own: one
/// list, so that no two uses share a key.
pub mod locks {
    /// Held while a node brings the device state's schema up to date.
    pub const DEVICE_STATE_MIGRATIONS: i64 = 0x7761_6564_6765_0001;
    /// Held by every write transaction of the store: they run one at a time, across nodes.
    pub const STORE_WRITES: i64 = 0x7761_6564_6765_0002;
    /// Held while a node brings the store's schema up to date.
    pub const STORE_MIGRATIONS: i64 = 0x7761_6564_6765_0003;
    /// Held by the node that delivers the webhooks, for as long as its connection lasts.
    pub const WEBHOOK_DELIVERY: i64 = 0x7761_6564_6765_0004;
    /// Held by a node while it does what one node at a time may (seeding an empty store).
    pub const STORE_EXCLUSIVE: i64 = 0x7761_6564_6765_0005;
}

/// The longest a connection attempt may take, unless the URL says otherwise.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Idle time before TCP keepalives probe a quiet connection, and the longest sent data may
/// stay unacknowledged, unless the URL says otherwise: a connection to a server that vanished
/// (a half-open connection never reports itself closed) fails within this.
pub const KEEPALIVES_IDLE: Duration = Duration::from_secs(30);

/// Reads `url` (`postgres://user:password@host:port/database`) and fills in what it leaves
/// unset: a [`CONNECT_TIMEOUT`], and TCP keepalives and a user timeout of [`KEEPALIVES_IDLE`].
pub fn config(url: &str) -> Result<Config, tokio_postgres::Error> {
    let mut config: Config = url.parse()?;
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(CONNECT_TIMEOUT);
    }
    // tokio-postgres's own default is two hours.
    if config.get_keepalives_idle() == Duration::from_secs(2 * 60 * 60) {
        config.keepalives_idle(KEEPALIVES_IDLE);
    }
    if config.get_tcp_user_timeout().is_none() {
        config.tcp_user_timeout(KEEPALIVES_IDLE);
    }
    Ok(config)
}

/// Where `config` connects, as `host:port/database`: for messages, without the user or the
/// password.
pub fn target(config: &Config) -> String {
    let host = match config.get_hosts().first() {
        Some(Host::Tcp(host)) => host.clone(),
        Some(Host::Unix(path)) => path.display().to_string(),
        None => "localhost".to_string(),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    let database = config.get_dbname().or(config.get_user()).unwrap_or("postgres");
    format!("{host}:{port}/{database}")
}

/// What the server said (severity, SQLSTATE, message, detail, hint), or the chain of causes:
/// a `tokio_postgres::Error` alone displays only "db error".
pub fn describe(error: &tokio_postgres::Error) -> String {
    if let Some(db) = error.as_db_error() {
        let mut said = format!("{} {}: {}", db.severity(), db.code().code(), db.message());
        for extra in [db.detail(), db.hint()].into_iter().flatten() {
            said.push_str(" (");
            said.push_str(extra);
            said.push(')');
        }
        return said;
    }
    let mut said = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        said.push_str(": ");
        said.push_str(&cause.to_string());
        source = cause.source();
    }
    said
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unset_timeouts_are_filled_in_and_set_ones_kept() {
        let filled = config("postgres://waedge:secret@db.internal:6432/waedge").unwrap();
        assert_eq!(filled.get_connect_timeout(), Some(&CONNECT_TIMEOUT));
        assert_eq!(filled.get_keepalives_idle(), KEEPALIVES_IDLE);
        assert_eq!(filled.get_tcp_user_timeout(), Some(&KEEPALIVES_IDLE));
        let kept = config("postgres://db.internal/waedge?connect_timeout=3&keepalives_idle=7").unwrap();
        assert_eq!(kept.get_connect_timeout(), Some(&Duration::from_secs(3)));
        assert_eq!(kept.get_keepalives_idle(), Duration::from_secs(7));
    }

    #[test]
    fn a_target_names_host_port_and_database_never_the_password() {
        let config = config("postgres://waedge:secret@db.internal:6432/events").unwrap();
        assert_eq!(target(&config), "db.internal:6432/events");
        let defaults = super::config("postgres://waedge@db.internal").unwrap();
        assert_eq!(target(&defaults), "db.internal:5432/waedge", "the database defaults to the user's name");
    }
}

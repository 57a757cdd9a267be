//! whatsapp-rust's device state in PostgreSQL, for waedge nodes that share one database.
//!
//! A WhatsApp device session is stateful: its Signal sessions, prekeys, sender keys, app
//! state and LID mappings change with every message. With this state in PostgreSQL instead
//! of a file on one machine, any node can take a device over without pairing it again —
//! provided that exactly one node writes it at a time. That is what the leases are for:
//!
//! - [`Database`]: a node's few pipelined connections, shared by all its devices, and the
//!   schema's migrations;
//! - [`Leases`]: one lease row per device, with an owner, an expiry by the database's clock
//!   and an epoch that every takeover increments; nodes take turns ([`Leases::turn`]) to
//!   share the devices out evenly and take over those of nodes that died;
//! - [`DeviceState`]: whatsapp-rust's storage [`Backend`](wacore::store::traits::Backend)
//!   for one device, whose every write carries the epoch of the lease it was opened with and
//!   is refused ([`Error::Fenced`]) once another node has taken the device over.
#![deny(missing_docs)]

mod balance;
mod database;
mod lease;
mod migrations;
mod state;

pub use balance::Turn;
pub use database::Database;
pub use lease::{Lease, Leases};
pub use state::DeviceState;

/// What can go wrong with the device state in PostgreSQL.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The database URL could not be read.
    #[error("the PostgreSQL URL is not valid ({}): write it as postgres://user:password@host:port/database", describe(.0))]
    Url(#[source] tokio_postgres::Error),
    /// The database could not be reached.
    #[error("cannot connect to PostgreSQL at {target}: {}; check the URL and that the server accepts connections from this machine", describe(.source))]
    Connect {
        /// Where: host, port and database.
        target: String,
        /// Why.
        #[source]
        source: tokio_postgres::Error,
    },
    /// The database refused a statement, or the connection broke.
    #[error("PostgreSQL: {}", describe(.0))]
    Postgres(#[from] tokio_postgres::Error),
    /// A statement took longer than it may: the connection is replaced.
    #[error("PostgreSQL did not answer within {0:?}; the connection is being replaced")]
    Timeout(std::time::Duration),
    /// The database was migrated by a newer waedge.
    #[error(
        "the device state in PostgreSQL has schema version {found}, newer than this waedge knows ({known}): upgrade this node"
    )]
    NewerSchema {
        /// The version in the database.
        found: usize,
        /// The newest version this build knows.
        known: usize,
    },
    /// A write carried an epoch that is no longer the device's: another node owns it now.
    #[error("device {device} was taken over by another node: this node's lease (epoch {epoch}) is stale")]
    Fenced {
        /// The device's key in the database.
        device: i64,
        /// The stale epoch the write carried.
        epoch: i64,
    },
}

impl Error {
    fn connecting(config: &tokio_postgres::Config, source: tokio_postgres::Error) -> Error {
        let host = match config.get_hosts().first() {
            Some(tokio_postgres::config::Host::Tcp(host)) => host.clone(),
            Some(tokio_postgres::config::Host::Unix(path)) => path.display().to_string(),
            None => "localhost".to_string(),
        };
        let port = config.get_ports().first().copied().unwrap_or(5432);
        let database = config.get_dbname().or(config.get_user()).unwrap_or("postgres");
        Error::Connect { target: format!("{host}:{port}/{database}"), source }
    }
}

/// What the server said (severity, message, detail, hint), or the chain of causes: a
/// `tokio_postgres::Error` alone displays only "db error".
fn describe(error: &tokio_postgres::Error) -> String {
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

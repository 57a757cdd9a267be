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
//!   is refused ([`Error::Fenced`]) once another node has taken the device over;
//! - [`SqliteState`]: a device's state read from the SQLite file whatsapp-rust keeps on one
//!   machine, which [`Database::import`] writes, so that a device linked there keeps its
//!   session in a cluster.
#![deny(missing_docs)]

mod balance;
mod database;
mod import;
mod lease;
mod migrations;
mod state;

pub use balance::Turn;
pub use database::Database;
pub use import::SqliteState;
pub use lease::{Holding, Lease, Leases};
pub use state::DeviceState;
use waedge_pg::describe;

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
    /// A device's SQLite file could not be read.
    #[error("cannot read the device state in {}: {reason}", .path.display())]
    Source {
        /// The file.
        path: std::path::PathBuf,
        /// Why.
        reason: String,
    },
    /// A device to import already has state a node ran: the file's would roll it back.
    #[error(
        "device {tenant}/{device} has run on a node of this database since: its state there is newer than its \
         file's, which is not copied over it"
    )]
    Run {
        /// The tenant.
        tenant: String,
        /// The device.
        device: String,
    },
    /// A value read could not be written as the backend writes it.
    #[error("cannot encode the device state: {0}")]
    Encode(#[source] serde_json::Error),
    /// A row of a device's SQLite file was refused by its PostgreSQL table.
    #[error("copying the device's {table}: {}", describe(.source))]
    Table {
        /// The table of the file.
        table: &'static str,
        /// Why.
        #[source]
        source: tokio_postgres::Error,
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
        Error::Connect { target: waedge_pg::target(config), source }
    }
}

//! The connections a node keeps to PostgreSQL, shared by all its devices.
//!
//! Every query of a device's state is one statement (writes carry their fence inside it, see
//! [`crate::state`]), so no query needs a connection of its own: a handful of connections,
//! each pipelining the statements of many devices, serve a whole node. Statements are
//! prepared once per connection. A connection that dies (the server restarted, the network
//! dropped) or stops answering (a partition that left it half open) is replaced on the next
//! query that picks it.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, NoTls, Row, Statement};

use crate::{Error, migrations};

/// The longest a statement may take: past it, the connection is taken for dead and replaced
/// (a half-open connection never reports itself closed). Well under a lease's life.
const STATEMENT_TIMEOUT: Duration = Duration::from_secs(5);

/// A node's connections to the PostgreSQL database that holds the device state.
pub struct Database {
    config: tokio_postgres::Config,
    slots: Box<[Slot]>,
    next: AtomicUsize,
}

/// One connection and the one task that may replace it.
struct Slot {
    current: RwLock<Arc<Connection>>,
    replacing: tokio::sync::Mutex<()>,
}

/// An open connection with the statements prepared on it.
pub(crate) struct Connection {
    client: Client,
    prepared: Mutex<HashMap<&'static str, Statement>>,
    /// Set when a statement timed out: the connection is replaced.
    stuck: AtomicBool,
}

impl Database {
    /// Connects `connections` times (at least once) to the database at `url`
    /// (`postgres://user:password@host:port/database`) and brings its schema up to date.
    pub async fn connect(url: &str, connections: usize) -> Result<Database, Error> {
        let config = waedge_pg::config(url).map_err(Error::Url)?;
        let mut slots = Vec::with_capacity(connections.max(1));
        for _ in 0..connections.max(1) {
            let connection = Connection::open(&config).await.map_err(|e| Error::connecting(&config, e))?;
            slots.push(Slot { current: RwLock::new(Arc::new(connection)), replacing: tokio::sync::Mutex::new(()) });
        }
        let first = slots[0].current.read().expect("connection slot").clone();
        migrations::apply(&first.client).await?;
        Ok(Database { config, slots: slots.into_boxed_slice(), next: AtomicUsize::new(0) })
    }

    /// A connection of its own, outside the shared ones: for a transaction.
    pub(crate) async fn dedicated(&self) -> Result<Client, Error> {
        Ok(Connection::open(&self.config).await.map_err(|e| Error::connecting(&self.config, e))?.client)
    }

    /// The next connection, round robin; a closed or stuck one is reopened first.
    pub(crate) async fn connection(&self) -> Result<Arc<Connection>, Error> {
        let slot = &self.slots[self.next.fetch_add(1, Ordering::Relaxed) % self.slots.len()];
        let current = slot.current.read().expect("connection slot").clone();
        if current.usable() {
            return Ok(current);
        }
        let _replacing = slot.replacing.lock().await;
        let current = slot.current.read().expect("connection slot").clone();
        if current.usable() {
            return Ok(current);
        }
        tracing::warn!("a PostgreSQL connection closed or stopped answering; reconnecting");
        let fresh = Arc::new(Connection::open(&self.config).await.map_err(|e| Error::connecting(&self.config, e))?);
        *slot.current.write().expect("connection slot") = fresh.clone();
        Ok(fresh)
    }
}

/// Runs `work` on `client` inside one transaction: committed if it succeeds, rolled back if
/// it fails (its error then says what went wrong; a failed rollback would not).
pub(crate) async fn in_transaction<T>(
    client: &Client,
    work: impl Future<Output = Result<T, Error>>,
) -> Result<T, Error> {
    client.batch_execute("BEGIN").await?;
    match work.await {
        Ok(done) => {
            client.batch_execute("COMMIT").await?;
            Ok(done)
        }
        Err(e) => {
            let _ = client.batch_execute("ROLLBACK").await;
            Err(e)
        }
    }
}

impl Connection {
    async fn open(config: &tokio_postgres::Config) -> Result<Connection, tokio_postgres::Error> {
        let (client, connection) = config.connect(NoTls).await?;
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::warn!("PostgreSQL connection lost: {}", crate::describe(&e));
            }
        });
        Ok(Connection { client, prepared: Mutex::new(HashMap::new()), stuck: AtomicBool::new(false) })
    }

    fn usable(&self) -> bool {
        !self.client.is_closed() && !self.stuck.load(Ordering::Relaxed)
    }

    /// `statement` under [`STATEMENT_TIMEOUT`]; on timeout the connection is marked stuck.
    async fn timed<T>(&self, statement: impl Future<Output = Result<T, tokio_postgres::Error>>) -> Result<T, Error> {
        match tokio::time::timeout(STATEMENT_TIMEOUT, statement).await {
            Ok(answer) => Ok(answer?),
            Err(_) => {
                self.stuck.store(true, Ordering::Relaxed);
                Err(Error::Timeout(STATEMENT_TIMEOUT))
            }
        }
    }

    async fn statement(&self, sql: &'static str) -> Result<Statement, Error> {
        if let Some(statement) = self.prepared.lock().expect("prepared statements").get(sql) {
            return Ok(statement.clone());
        }
        let statement = self.timed(self.client.prepare(sql)).await?;
        self.prepared.lock().expect("prepared statements").insert(sql, statement.clone());
        Ok(statement)
    }

    /// Runs `sql` (prepared once on this connection) and returns its rows.
    pub(crate) async fn query(&self, sql: &'static str, params: &[&(dyn ToSql + Sync)]) -> Result<Vec<Row>, Error> {
        let statement = self.statement(sql).await?;
        self.timed(self.client.query(&statement, params)).await
    }

    /// Runs `sql` and returns its one row, or none.
    pub(crate) async fn query_opt(
        &self,
        sql: &'static str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Option<Row>, Error> {
        let statement = self.statement(sql).await?;
        self.timed(self.client.query_opt(&statement, params)).await
    }

    /// Runs `sql` and returns how many rows it wrote.
    pub(crate) async fn execute(&self, sql: &'static str, params: &[&(dyn ToSql + Sync)]) -> Result<u64, Error> {
        let statement = self.statement(sql).await?;
        self.timed(self.client.execute(&statement, params)).await
    }
}

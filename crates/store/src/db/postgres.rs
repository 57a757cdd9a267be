//! The store in PostgreSQL: the database several nodes share.
//!
//! The store's interface is synchronous, as SQLite is; PostgreSQL's client is asynchronous.
//! Its connections are driven by a runtime of the store's own (one thread), and a call waits
//! for its answer on the calling thread, whatever that thread is: so the store behaves as
//! with SQLite from a blocking thread, a plain thread or a test, and never needs the caller's
//! runtime.
//!
//! Write transactions are serialised across every node by one advisory lock, as SQLite
//! serialises them with its write lock: the store's read-then-write checks (a case twin, an
//! event's next `seq`, a webhook's position) then hold across nodes too, and the outbox's
//! positions are given out in commit order. Reads run in `REPEATABLE READ` read-only
//! transactions, so their statements all see one committed state, and never wait for a write.

use std::cell::RefCell;
use std::collections::HashMap;
use std::error::Error;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::BytesMut;
use tokio_postgres::tls::NoTlsStream;
use tokio_postgres::types::{IsNull, ToSql, Type, to_sql_checked};
use tokio_postgres::{Client, NoTls, Socket, Statement};

use super::lend::{Lender, READERS};
use super::{Conn, DatabaseError, Param, Row, Value, params};
use crate::{StoreError, migrations};

/// The longest a statement may run, waits for the write lock included (as SQLite's busy
/// timeout bounds a wait for its write lock).
const STATEMENT_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a transaction may sit idle before the server ends it: a node stopped (SIGSTOP)
/// or cut off in the middle of a write would otherwise hold every node's write lock. (A
/// store's own transactions never wait on anything but the database; a copy, which reads
/// its source in between, lifts it for itself.)
const IDLE_IN_TRANSACTION_TIMEOUT: Duration = Duration::from_secs(15);

/// A store's connections to PostgreSQL; clones share them.
#[derive(Clone)]
pub(crate) struct Postgres {
    shared: Arc<Shared>,
}

struct Shared {
    config: tokio_postgres::Config,
    /// The connection of write transactions; none while it could not be (re)opened.
    writer: Mutex<Option<Session>>,
    /// The connections of read transactions, lent one to a read ([`lend`](super::lend)).
    readers: Lender<Session>,
    /// Declared last: the sessions' connections end before their runtime does.
    driver: Driver,
}

/// The runtime that drives the store's connections.
struct Driver(Option<tokio::runtime::Runtime>);

/// One connection, with the statements prepared on it.
pub(crate) struct Session {
    client: Client,
    prepared: RefCell<HashMap<String, Statement>>,
}

impl Postgres {
    /// Connects to the database at `url` (`postgres://user:password@host:port/database`) and
    /// brings the store's schema in it up to date.
    pub(crate) fn connect(url: &str) -> Result<Postgres, StoreError> {
        let config = waedge_pg::config(url).map_err(|e| {
            StoreError::Invalid(format!(
                "the store URL is not valid ({}): write it as postgres://user:password@host:port/database",
                waedge_pg::describe(&e)
            ))
        })?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("waedge-store-postgres")
            .enable_all()
            .build()
            .map_err(|e| StoreError::Invalid(format!("cannot start the store's PostgreSQL thread: {e}")))?;
        let driver = Driver(Some(runtime));
        let writer = Session::open(&config, &driver)?;
        migrations::postgres::migrate(&writer)?;
        // One now, the others when reads need them.
        let readers = Lender::new(READERS, vec![Session::open(&config, &driver)?]);
        let shared = Shared { config, writer: Mutex::new(Some(writer)), readers, driver };
        Ok(Postgres { shared: Arc::new(shared) })
    }

    /// Runs `f` in one write transaction, holding the store's write lock: all of its changes
    /// or none.
    pub(crate) fn transaction<T>(&self, f: impl FnOnce(&Conn<'_>) -> Result<T, StoreError>) -> Result<T, StoreError> {
        let session = self.shared.writer()?;
        let session = session.as_ref().expect("an open session");
        session.within("BEGIN", || {
            session.execute("SELECT pg_advisory_xact_lock(?1)", params![waedge_pg::locks::STORE_WRITES])?;
            f(&Conn::Postgres(session))
        })
    }

    /// Runs `f` in one read-only transaction on a session no other read holds: its statements
    /// all see what was committed when the first of them ran, without waiting for a write under
    /// way.
    pub(crate) fn read<T>(&self, f: impl FnOnce(&Conn<'_>) -> Result<T, StoreError>) -> Result<T, StoreError> {
        let Shared { config, driver, .. } = &*self.shared;
        let mut session = self.shared.readers.lend(|| Session::open(config, driver))?;
        // Closed (the server restarted, the network broke): the read that found it so failed,
        // this one opens it again. A session that cannot be is kept, to be tried again.
        if session.client.is_closed() {
            *session = Session::open(config, driver)?;
        }
        session.within("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", || f(&Conn::Postgres(&session)))
    }
}

/// A connection of its own that listens on notification channels; dropping it closes the
/// connection.
pub(crate) struct Listener {
    /// Also answers statements: a listener's own, never waiting for the store's connections.
    pub(crate) client: Client,
    /// Each notification, as its channel and payload; closed when the connection ends.
    pub(crate) notifications: tokio::sync::mpsc::UnboundedReceiver<(String, String)>,
}

impl Postgres {
    /// Opens a connection of its own that listens on `channels` (`LISTEN`), driven by the
    /// store's runtime like every other.
    pub(crate) fn listen(&self, channels: &[&str]) -> Result<Listener, StoreError> {
        let (client, notifications) = self.shared.driver.connect(&self.shared.config, |mut connection| {
            let (notify, notifications) = tokio::sync::mpsc::unbounded_channel();
            // Polling for messages is what drives the connection: the listener's statements
            // are answered by this loop too. It ends with the connection (the client dropped,
            // the server gone), or once nobody listens, and with it the channel.
            tokio::spawn(async move {
                while let Some(Ok(message)) = std::future::poll_fn(|cx| connection.poll_message(cx)).await {
                    if let tokio_postgres::AsyncMessage::Notification(note) = message
                        && notify.send((note.channel().to_owned(), note.payload().to_owned())).is_err()
                    {
                        break;
                    }
                }
            });
            notifications
        })?;
        let listens: Vec<String> = channels.iter().map(|channel| format!("LISTEN {channel}")).collect();
        wait(client.batch_execute(&listens.join("; ")))?;
        Ok(Listener { client, notifications })
    }

    /// Runs `f` while holding [`STORE_EXCLUSIVE`](waedge_pg::locks::STORE_EXCLUSIVE) on a
    /// connection of its own: no other node runs its own `f` meanwhile.
    pub(crate) fn exclusively<T>(&self, f: impl FnOnce() -> Result<T, StoreError>) -> Result<T, StoreError> {
        let session = Session::open(&self.shared.config, &self.shared.driver)?;
        // However long another node's `f` takes, this one waits for it.
        session.batch("SET statement_timeout = 0")?;
        session.execute("SELECT pg_advisory_lock(?1)", params![waedge_pg::locks::STORE_EXCLUSIVE])?;
        // Dropping the session ends its connection, and the lock with it.
        f()
    }
}

impl Shared {
    /// The writing session, opened again first if it is closed (the server restarted, the
    /// network broke): the statement that found it closed failed, the next one reconnects.
    fn writer(&self) -> Result<MutexGuard<'_, Option<Session>>, StoreError> {
        // A panic mid-transaction leaves the session in it: the transaction's guard rolled
        // it back while unwinding, so a poisoned lock still guards a usable session.
        let mut session = self.writer.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if session.as_ref().is_none_or(|session| session.client.is_closed()) {
            *session = None;
            *session = Some(Session::open(&self.config, &self.driver)?);
        }
        Ok(session)
    }
}

/// A transaction under way: rolled back when dropped uncommitted (an error, a panic).
struct Open<'s> {
    session: &'s Session,
    committed: bool,
}

impl<'s> Open<'s> {
    fn begin(session: &'s Session, begin: &str) -> Result<Open<'s>, StoreError> {
        session.batch(begin)?;
        Ok(Open { session, committed: false })
    }

    fn commit(mut self) -> Result<(), StoreError> {
        self.committed = true;
        self.session.batch("COMMIT")
    }
}

impl Drop for Open<'_> {
    fn drop(&mut self) {
        if !self.committed {
            // A broken connection cannot roll back, and needs not: the server ends its
            // transaction, and the session is replaced on its next use.
            let _ = self.session.batch("ROLLBACK");
        }
    }
}

impl Session {
    /// Runs `f` in the transaction `begin` opens: committed if `f` succeeds, rolled back if it
    /// fails or panics (the rollback's own error never hides `f`'s).
    pub(crate) fn within<T>(&self, begin: &str, f: impl FnOnce() -> Result<T, StoreError>) -> Result<T, StoreError> {
        let transaction = Open::begin(self, begin)?;
        let value = f()?;
        transaction.commit()?;
        Ok(value)
    }

    /// Opens a connection, driven by `driver`, with the store's timeouts.
    fn open(config: &tokio_postgres::Config, driver: &Driver) -> Result<Session, StoreError> {
        // The connection ends when its client is dropped or the server goes; the client then
        // reports itself closed.
        let (client, ()) = driver.connect(config, |connection| drop(tokio::spawn(connection)))?;
        Ok(Session { client, prepared: RefCell::default() })
    }

    /// Runs `sql`, one or more statements without parameters.
    pub(crate) fn batch(&self, sql: &str) -> Result<(), StoreError> {
        Ok(wait(self.client.batch_execute(sql))?)
    }

    pub(super) fn execute(&self, sql: &str, params: &[&dyn Param]) -> Result<usize, StoreError> {
        let statement = self.prepare(sql)?;
        let values = values(params);
        let changed = wait(self.client.execute(&statement, &binds(&values)))?;
        Ok(usize::try_from(changed).unwrap_or(usize::MAX))
    }

    pub(super) fn query<T>(
        &self,
        sql: &str,
        params: &[&dyn Param],
        mut read: impl FnMut(&Row<'_>) -> Result<T, StoreError>,
    ) -> Result<Vec<T>, StoreError> {
        self.rows(sql, params)?.iter().map(|row| read(&Row::Postgres(row))).collect()
    }

    pub(super) fn query_opt<T>(
        &self,
        sql: &str,
        params: &[&dyn Param],
        read: impl FnOnce(&Row<'_>) -> Result<T, StoreError>,
    ) -> Result<Option<T>, StoreError> {
        self.rows(sql, params)?.first().map(|row| read(&Row::Postgres(row))).transpose()
    }

    /// The rows `sql` answers.
    fn rows(&self, sql: &str, params: &[&dyn Param]) -> Result<Vec<tokio_postgres::Row>, StoreError> {
        let statement = self.prepare(sql)?;
        let values = values(params);
        Ok(wait(self.client.query(&statement, &binds(&values)))?)
    }

    /// `sql` prepared on this connection, once.
    fn prepare(&self, sql: &str) -> Result<Statement, StoreError> {
        if let Some(statement) = self.prepared.borrow().get(sql) {
            return Ok(statement.clone());
        }
        let statement = wait(self.client.prepare(&numbered(sql)))?;
        self.prepared.borrow_mut().insert(sql.to_owned(), statement.clone());
        Ok(statement)
    }
}

impl Driver {
    /// Connects to `config` on this runtime, hands the connection to `drive` (which spawns
    /// what polls it, and may return a way to hear from it), and sets the session up with the
    /// store's timeouts.
    fn connect<Driven: Send + 'static>(
        &self,
        config: &tokio_postgres::Config,
        drive: impl FnOnce(tokio_postgres::Connection<Socket, NoTlsStream>) -> Driven + Send + 'static,
    ) -> Result<(Client, Driven), StoreError> {
        let connecting = config.clone();
        let runtime = self.0.as_ref().expect("the driver runs until dropped");
        let connected = runtime.spawn(async move {
            let (client, connection) = connecting.connect(NoTls).await?;
            let driven = drive(connection);
            client.batch_execute(&session_settings()).await?;
            Ok::<_, tokio_postgres::Error>((client, driven))
        });
        Ok(futures_executor::block_on(connected)
            .map_err(|e| StoreError::Invalid(format!("the store's PostgreSQL thread stopped: {e}")))?
            .map_err(|source| DatabaseError::Connect { target: waedge_pg::target(config), source })?)
    }
}

/// What every session of the store sets: its timeouts, and TCP keepalives on the server's
/// side too — a node that vanished without closing its connection (a power cut, a partition)
/// then loses its session, and the advisory locks the session held, within a minute instead
/// of the server's two hours.
fn session_settings() -> String {
    format!(
        "SET statement_timeout = {}; SET idle_in_transaction_session_timeout = {}; \
         SET tcp_keepalives_idle = {}; SET tcp_keepalives_interval = 10; SET tcp_keepalives_count = 3; \
         SET tcp_user_timeout = {}",
        STATEMENT_TIMEOUT.as_millis(),
        IDLE_IN_TRANSACTION_TIMEOUT.as_millis(),
        waedge_pg::KEEPALIVES_IDLE.as_secs(),
        waedge_pg::KEEPALIVES_IDLE.as_millis()
    )
}

impl Drop for Driver {
    fn drop(&mut self) {
        // Not `drop`: a store may be dropped on an async runtime's thread, where waiting for
        // another runtime's threads is not allowed.
        if let Some(runtime) = self.0.take() {
            runtime.shutdown_background();
        }
    }
}

/// Waits for `answer` on this thread; the connection is driven by the store's runtime.
fn wait<T>(answer: impl Future<Output = Result<T, tokio_postgres::Error>>) -> Result<T, DatabaseError> {
    Ok(futures_executor::block_on(answer)?)
}

/// `sql` with SQLite's parameters (`?1`) written as PostgreSQL's (`$1`); string literals are
/// left as they are.
fn numbered(sql: &str) -> String {
    let mut numbered = String::with_capacity(sql.len());
    let mut chars = sql.chars().peekable();
    let mut in_literal = false;
    while let Some(c) = chars.next() {
        in_literal ^= c == '\'';
        let parameter = !in_literal && c == '?' && chars.peek().is_some_and(char::is_ascii_digit);
        numbered.push(if parameter { '$' } else { c });
    }
    numbered
}

fn values<'p>(params: &'p [&dyn Param]) -> Vec<Value<'p>> {
    params.iter().map(|param| param.value()).collect()
}

fn binds<'v>(values: &'v [Value<'_>]) -> Vec<&'v (dyn ToSql + Sync)> {
    values.iter().map(|value| value as &(dyn ToSql + Sync)).collect()
}

/// Column `index` of `row`, by its PostgreSQL type.
pub(super) fn value(row: &tokio_postgres::Row, index: usize) -> Result<Value<'_>, DatabaseError> {
    let column_type = row.columns().get(index).map(|column| column.type_().clone());
    let value = match column_type {
        Some(Type::INT8) => row.try_get::<_, Option<i64>>(index)?.map(Value::Int),
        Some(Type::INT4) => row.try_get::<_, Option<i32>>(index)?.map(|int| Value::Int(int.into())),
        Some(Type::INT2) => row.try_get::<_, Option<i16>>(index)?.map(|int| Value::Int(int.into())),
        Some(Type::BOOL) => row.try_get::<_, Option<bool>>(index)?.map(|flag| Value::Int(flag.into())),
        Some(Type::BYTEA) => row.try_get::<_, Option<&[u8]>>(index)?.map(Value::Blob),
        Some(ref text) if <&str as tokio_postgres::types::FromSql>::accepts(text) => {
            row.try_get::<_, Option<&str>>(index)?.map(Value::Text)
        }
        other => {
            let problem = match other {
                Some(other) => format!("PostgreSQL type {other}, which the store never reads"),
                None => "no such column".to_owned(),
            };
            return Err(DatabaseError::Column { index, problem });
        }
    };
    Ok(value.unwrap_or(Value::Null))
}

impl ToSql for Value<'_> {
    fn to_sql(&self, ty: &Type, out: &mut BytesMut) -> Result<IsNull, Box<dyn Error + Sync + Send>> {
        match *self {
            Value::Null => Ok(IsNull::Yes),
            Value::Int(int) => match *ty {
                Type::INT8 => int.to_sql(ty, out),
                Type::INT4 => i32::try_from(int)?.to_sql(ty, out),
                Type::INT2 => i16::try_from(int)?.to_sql(ty, out),
                Type::BOOL => (int != 0).to_sql(ty, out),
                _ => Err(format!("an integer was bound where PostgreSQL expects {ty}").into()),
            },
            Value::Text(text) if <&str as ToSql>::accepts(ty) => super::without_nul(text).as_ref().to_sql(ty, out),
            Value::Blob(bytes) if <&[u8] as ToSql>::accepts(ty) => bytes.to_sql(ty, out),
            Value::Text(_) | Value::Blob(_) => {
                Err(format!("{} was bound where PostgreSQL expects {ty}", self.kind()).into())
            }
        }
    }

    fn accepts(_: &Type) -> bool {
        // Checked by `to_sql`, per kind of value.
        true
    }

    to_sql_checked!();
}

#[cfg(test)]
mod tests {
    use super::numbered;

    #[test]
    fn parameters_are_renumbered_and_nothing_else_changes() {
        let sql = "SELECT ?1, '?2 it''s ?3', x ?| y FROM t WHERE a = ?12";
        assert_eq!(numbered(sql), "SELECT $1, '?2 it''s ?3', x ?| y FROM t WHERE a = $12");
    }
}

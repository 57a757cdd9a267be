//! The store in SQLite: one file, one connection that writes and a few that read.

use std::borrow::Cow;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use rusqlite::types::{ToSqlOutput, ValueRef};
use rusqlite::{Connection, OpenFlags, Transaction, TransactionBehavior};

use super::lend::{Lender, READERS};
use super::{Conn, DatabaseError, Param, Row, Value};
use crate::{StoreError, migrations};

/// How long a connection waits for another's lock (another process writing, a checkpoint)
/// before its statement fails.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);
/// Statements kept prepared per connection: more than the store has, so none is prepared
/// twice.
const STATEMENT_CACHE: usize = 256;

/// A store's SQLite connections; clones share them.
///
/// Writes are transactions in WAL mode with `synchronous = FULL`: an acknowledged change
/// survives a `kill -9` or a power cut. One connection writes; reads go to up to [`READERS`]
/// read-only connections, lent one to a read ([`lend`](super::lend)), which see what was last
/// committed without waiting for a write under way.
#[derive(Clone)]
pub(crate) struct Sqlite {
    /// The reading connections: in WAL mode they read the last committed state while `writer`
    /// writes. None in memory, where `writer` reads too. Declared first, so that they close
    /// first: the last connection to close moves the WAL into the database file, which a
    /// read-only one cannot do.
    readers: Option<Arc<Readers>>,
    /// The connection that writes, and reads what must be read under the write lock.
    writer: Arc<Mutex<Connection>>,
}

/// The read-only connections of a database file.
struct Readers {
    /// The file they read.
    path: PathBuf,
    /// The connections, opened as reads need them.
    lender: Lender<Connection>,
}

impl Sqlite {
    /// Opens (creating if needed) the database at `path` and brings its schema up to date.
    pub(crate) fn open(path: &Path) -> Result<Sqlite, StoreError> {
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let writer = init(Connection::open_with_flags(path, flags)?)?;
        // Opened once the writer has made the database and its WAL: a reader cannot create them.
        // One now, so that a file the process may not read fails here; the others when needed.
        let lender = Lender::new(READERS, vec![open_reader(path)?]);
        let readers = Readers { path: path.to_owned(), lender };
        Ok(Sqlite { readers: Some(Arc::new(readers)), writer: Arc::new(Mutex::new(writer)) })
    }

    /// A database in memory only (tests): one connection writes and reads.
    pub(crate) fn open_in_memory() -> Result<Sqlite, StoreError> {
        Ok(Sqlite { readers: None, writer: Arc::new(Mutex::new(init(Connection::open_in_memory()?)?)) })
    }

    /// Runs `f` in one write transaction: all of its changes or none.
    pub(crate) fn transaction<T>(&self, f: impl FnOnce(&Conn<'_>) -> Result<T, StoreError>) -> Result<T, StoreError> {
        let mut conn = lock(&self.writer);
        // IMMEDIATE: take the write lock at the start, so another process writing (the CLI's
        // `admin-token`) makes this wait (busy timeout) instead of failing mid-transaction.
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let value = f(&Conn::Sqlite(&tx))?;
        tx.commit()?;
        Ok(value)
    }

    /// Runs `f` in one read transaction on a reading connection no other read holds: its
    /// statements all see what was committed when the first of them ran, without waiting for a
    /// write under way.
    pub(crate) fn read<T>(&self, f: impl FnOnce(&Conn<'_>) -> Result<T, StoreError>) -> Result<T, StoreError> {
        match &self.readers {
            Some(readers) => read_on(&*readers.lender.lend(|| open_reader(&readers.path))?, f),
            None => read_on(&lock(&self.writer), f),
        }
    }

    /// The writing connection itself (tests that look under the store).
    #[cfg(test)]
    pub(crate) fn writer(&self) -> MutexGuard<'_, Connection> {
        lock(&self.writer)
    }
}

/// Runs `f` in one read transaction on `conn`, rolled back (it changed nothing) once `f` has
/// returned or panicked: a transaction left open would pin the connection to an old commit.
fn read_on<T>(conn: &Connection, f: impl FnOnce(&Conn<'_>) -> Result<T, StoreError>) -> Result<T, StoreError> {
    // Only a rollback that failed could have left the last read's transaction open.
    if !conn.is_autocommit() {
        conn.execute_batch("ROLLBACK")?;
    }
    let tx = Transaction::new_unchecked(conn, TransactionBehavior::Deferred)?;
    f(&Conn::Sqlite(&tx))
}

/// A read-only connection to the database at `path`.
fn open_reader(path: &Path) -> Result<Connection, StoreError> {
    let reader = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX)?;
    reader.busy_timeout(BUSY_TIMEOUT)?;
    reader.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    Ok(reader)
}

/// `mutex`'s connection. A panic while holding it cannot leave a transaction half-applied (it
/// rolls back on drop), so a poisoned lock still guards a consistent connection.
fn lock(mutex: &Mutex<Connection>) -> MutexGuard<'_, Connection> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Sets up a writing connection and brings the schema up to date.
fn init(mut conn: Connection) -> Result<Connection, StoreError> {
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    migrations::sqlite::migrate(&mut conn)?;
    Ok(conn)
}

pub(super) fn execute(conn: &Connection, sql: &str, params: &[&dyn Param]) -> Result<usize, StoreError> {
    Ok(conn.prepare_cached(sql)?.execute(bind(params))?)
}

pub(super) fn query<T>(
    conn: &Connection,
    sql: &str,
    params: &[&dyn Param],
    mut read: impl FnMut(&Row<'_>) -> Result<T, StoreError>,
) -> Result<Vec<T>, StoreError> {
    let mut statement = conn.prepare_cached(sql)?;
    let mut rows = statement.query(bind(params))?;
    let mut values = Vec::new();
    while let Some(row) = rows.next()? {
        values.push(read(&Row::Sqlite(row))?);
    }
    Ok(values)
}

pub(super) fn query_opt<T>(
    conn: &Connection,
    sql: &str,
    params: &[&dyn Param],
    read: impl FnOnce(&Row<'_>) -> Result<T, StoreError>,
) -> Result<Option<T>, StoreError> {
    let mut statement = conn.prepare_cached(sql)?;
    let mut rows = statement.query(bind(params))?;
    rows.next()?.map(|row| read(&Row::Sqlite(row))).transpose()
}

/// Column `index` of `row`.
pub(super) fn value<'r>(row: &'r rusqlite::Row<'_>, index: usize) -> Result<Value<'r>, DatabaseError> {
    Ok(match row.get_ref(index)? {
        ValueRef::Null => Value::Null,
        ValueRef::Integer(int) => Value::Int(int),
        ValueRef::Text(text) => Value::Text(
            std::str::from_utf8(text)
                .map_err(|e| DatabaseError::Column { index, problem: format!("text that is not UTF-8 ({e})") })?,
        ),
        ValueRef::Blob(bytes) => Value::Blob(bytes),
        ValueRef::Real(_) => {
            return Err(DatabaseError::Column { index, problem: "a real number, which the store never writes".into() });
        }
    })
}

/// `params` as rusqlite binds them.
fn bind<'p>(params: &'p [&dyn Param]) -> impl rusqlite::Params + 'p {
    rusqlite::params_from_iter(params.iter().map(|param| param.value()))
}

impl rusqlite::ToSql for Value<'_> {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(match *self {
            Value::Null => ToSqlOutput::Borrowed(ValueRef::Null),
            Value::Int(int) => ToSqlOutput::Borrowed(ValueRef::Integer(int)),
            Value::Text(text) => match super::without_nul(text) {
                Cow::Borrowed(text) => ToSqlOutput::Borrowed(ValueRef::Text(text.as_bytes())),
                Cow::Owned(text) => ToSqlOutput::Owned(rusqlite::types::Value::Text(text)),
            },
            Value::Blob(bytes) => ToSqlOutput::Borrowed(ValueRef::Blob(bytes)),
        })
    }
}

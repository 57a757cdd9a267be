//! The two databases a store can live in, behind one small SQL interface: SQLite, a file in
//! the data directory (one machine, the default), or PostgreSQL (several nodes sharing it).
//!
//! The store's modules write their SQL once, in the dialect both databases share (numbered
//! parameters `?1`, `ON CONFLICT … DO`, no vendor functions), and run it on a [`Conn`]: a
//! connection of either kind, inside a read or a write transaction the [`Store`](crate::Store)
//! opened. Where the dialects part (JSON functions, the outbox's sequence), a module picks its
//! statement with [`Conn::dialect`]. Parameters and columns are the four kinds both databases
//! store alike ([`Value`]): integers, text, bytes and NULL; a flag is an integer.

mod lend;
mod postgres;
mod sqlite;

pub(crate) use postgres::{Listener, Postgres, Session};
pub(crate) use sqlite::Sqlite;

use crate::StoreError;

/// A connection inside a transaction of the store, of either kind.
#[derive(Clone, Copy)]
pub(crate) enum Conn<'a> {
    /// A SQLite connection (its transaction is the caller's).
    Sqlite(&'a rusqlite::Connection),
    /// A PostgreSQL session (its transaction is the caller's).
    Postgres(&'a postgres::Session),
}

/// Which SQL dialect a connection speaks, for the statements that differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dialect {
    /// SQLite's.
    Sqlite,
    /// PostgreSQL's.
    Postgres,
}

/// `text` with each NUL replaced by U+FFFD: PostgreSQL stores no NUL in text (nor `\u0000` in
/// JSON it reads), so neither database is given one — a sender cannot make a write fail on
/// one database only by putting a NUL in a message or a name.
pub(crate) fn without_nul(text: &str) -> std::borrow::Cow<'_, str> {
    if text.contains('\0') { text.replace('\0', "\u{FFFD}").into() } else { text.into() }
}

/// A value as both databases store it: a parameter or a column.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Value<'a> {
    /// SQL NULL.
    Null,
    /// An integer (a flag is 0 or 1).
    Int(i64),
    /// Text.
    Text(&'a str),
    /// Bytes.
    Blob(&'a [u8]),
}

/// Something that can be a statement's parameter.
pub(crate) trait Param {
    /// The value bound for it.
    fn value(&self) -> Value<'_>;
}

/// A statement's parameters, in order: `params![tenant, id, now()]`.
macro_rules! params {
    ($($param:expr),* $(,)?) => {
        &[$(&$param as &dyn $crate::db::Param),*] as &[&dyn $crate::db::Param]
    };
}
pub(crate) use params;

/// One row of a query's answer.
pub(crate) enum Row<'a> {
    /// A SQLite row.
    Sqlite(&'a rusqlite::Row<'a>),
    /// A PostgreSQL row.
    Postgres(&'a tokio_postgres::Row),
}

/// A Rust type a column can be read as: owned, or borrowed from the answer for as long as
/// its row (`&'v str`).
pub(crate) trait Column<'v>: Sized {
    /// Reads `value`; a value of another kind is an error naming what was expected.
    fn from_value(value: Value<'v>) -> Result<Self, &'static str>;
}

impl Conn<'_> {
    /// The dialect this connection speaks.
    pub(crate) fn dialect(&self) -> Dialect {
        match self {
            Conn::Sqlite(_) => Dialect::Sqlite,
            Conn::Postgres(_) => Dialect::Postgres,
        }
    }

    /// `sqlite` or `postgres`, whichever this connection speaks: for the few statements whose
    /// dialects differ.
    pub(crate) fn pick<'s>(&self, sqlite: &'s str, postgres: &'s str) -> &'s str {
        match self.dialect() {
            Dialect::Sqlite => sqlite,
            Dialect::Postgres => postgres,
        }
    }

    /// Runs `sql` and returns how many rows it changed.
    pub(crate) fn execute(&self, sql: &str, params: &[&dyn Param]) -> Result<usize, StoreError> {
        match self {
            Conn::Sqlite(conn) => sqlite::execute(conn, sql, params),
            Conn::Postgres(session) => session.execute(sql, params),
        }
    }

    /// Runs `sql` and reads each row of its answer with `read`.
    pub(crate) fn query<T>(
        &self,
        sql: &str,
        params: &[&dyn Param],
        read: impl FnMut(&Row<'_>) -> Result<T, StoreError>,
    ) -> Result<Vec<T>, StoreError> {
        match self {
            Conn::Sqlite(conn) => sqlite::query(conn, sql, params, read),
            Conn::Postgres(session) => session.query(sql, params, read),
        }
    }

    /// Runs `sql` and reads the first row of its answer, if any, with `read`.
    pub(crate) fn query_opt<T>(
        &self,
        sql: &str,
        params: &[&dyn Param],
        read: impl FnOnce(&Row<'_>) -> Result<T, StoreError>,
    ) -> Result<Option<T>, StoreError> {
        match self {
            Conn::Sqlite(conn) => sqlite::query_opt(conn, sql, params, read),
            Conn::Postgres(session) => session.query_opt(sql, params, read),
        }
    }

    /// Runs `sql`, whose answer always has a row (an aggregate, `EXISTS`), and reads its first
    /// column.
    pub(crate) fn query_value<T: for<'v> Column<'v>>(&self, sql: &str, params: &[&dyn Param]) -> Result<T, StoreError> {
        self.query_opt(sql, params, |row| row.get(0))?
            .ok_or_else(|| DatabaseError::Column { index: 0, problem: "the query answered no row".into() }.into())
    }
}

impl Row<'_> {
    /// Column `index` (from 0) as it is stored.
    pub(crate) fn value(&self, index: usize) -> Result<Value<'_>, StoreError> {
        match self {
            Row::Sqlite(row) => Ok(sqlite::value(row, index)?),
            Row::Postgres(row) => Ok(postgres::value(row, index)?),
        }
    }

    /// Column `index` (from 0) as a `T`.
    pub(crate) fn get<'v, T: Column<'v>>(&'v self, index: usize) -> Result<T, StoreError> {
        let read = |value: Value<'v>| {
            T::from_value(value).map_err(|expected| DatabaseError::Column {
                index,
                problem: format!("expected {expected}, found {}", value.kind()),
            })
        };
        Ok(read(self.value(index)?)?)
    }
}

/// Why the database failed a statement.
#[derive(Debug, thiserror::Error)]
pub enum DatabaseError {
    /// SQLite failed.
    #[error("SQLite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// PostgreSQL refused a statement, or the connection broke.
    #[error("PostgreSQL: {}", waedge_pg::describe(.0))]
    Postgres(#[from] tokio_postgres::Error),
    /// PostgreSQL could not be reached.
    #[error(
        "cannot connect to PostgreSQL at {target}: {}; check the store URL and that the server accepts connections from this machine",
        waedge_pg::describe(.source)
    )]
    Connect {
        /// Where: host, port and database (never the password).
        target: String,
        /// Why.
        #[source]
        source: tokio_postgres::Error,
    },
    /// A JSON column does not read back as what the store wrote there.
    #[error("a JSON column does not read back: {0}")]
    Json(#[from] serde_json::Error),
    /// A column held something else than the store wrote there.
    #[error("column {index}: {problem}")]
    Column {
        /// The column, from 0.
        index: usize,
        /// What was wrong.
        problem: String,
    },
}

impl DatabaseError {
    /// Whether the statement broke an integrity constraint (a unique key, a foreign key).
    pub(crate) fn is_constraint_violation(&self) -> bool {
        match self {
            DatabaseError::Sqlite(rusqlite::Error::SqliteFailure(e, _)) => {
                e.code == rusqlite::ErrorCode::ConstraintViolation
            }
            // Class 23: integrity constraint violation.
            DatabaseError::Postgres(e) => e.code().is_some_and(|code| code.code().starts_with("23")),
            _ => false,
        }
    }
}

impl From<rusqlite::Error> for StoreError {
    fn from(error: rusqlite::Error) -> Self {
        StoreError::Database(error.into())
    }
}

impl Value<'_> {
    /// The kind, for errors.
    fn kind(&self) -> &'static str {
        match self {
            Value::Null => "NULL",
            Value::Int(_) => "an integer",
            Value::Text(_) => "text",
            Value::Blob(_) => "bytes",
        }
    }
}

impl Column<'_> for String {
    fn from_value(value: Value<'_>) -> Result<Self, &'static str> {
        <&str>::from_value(value).map(str::to_owned)
    }
}

impl<'v> Column<'v> for &'v str {
    fn from_value(value: Value<'v>) -> Result<Self, &'static str> {
        match value {
            Value::Text(text) => Ok(text),
            _ => Err("text"),
        }
    }
}

impl Column<'_> for i64 {
    fn from_value(value: Value<'_>) -> Result<Self, &'static str> {
        match value {
            Value::Int(int) => Ok(int),
            _ => Err("an integer"),
        }
    }
}

impl Column<'_> for bool {
    fn from_value(value: Value<'_>) -> Result<Self, &'static str> {
        match value {
            Value::Int(int) => Ok(int != 0),
            _ => Err("a flag"),
        }
    }
}

impl Column<'_> for Vec<u8> {
    fn from_value(value: Value<'_>) -> Result<Self, &'static str> {
        match value {
            Value::Blob(bytes) => Ok(bytes.to_vec()),
            _ => Err("bytes"),
        }
    }
}

impl<'v, T: Column<'v>> Column<'v> for Option<T> {
    fn from_value(value: Value<'v>) -> Result<Self, &'static str> {
        match value {
            Value::Null => Ok(None),
            value => T::from_value(value).map(Some),
        }
    }
}

impl Param for str {
    fn value(&self) -> Value<'_> {
        Value::Text(self)
    }
}

impl Param for String {
    fn value(&self) -> Value<'_> {
        Value::Text(self)
    }
}

impl Param for [u8] {
    fn value(&self) -> Value<'_> {
        Value::Blob(self)
    }
}

impl Param for Vec<u8> {
    fn value(&self) -> Value<'_> {
        Value::Blob(self)
    }
}

impl Param for i64 {
    fn value(&self) -> Value<'_> {
        Value::Int(*self)
    }
}

impl Param for u32 {
    fn value(&self) -> Value<'_> {
        Value::Int(i64::from(*self))
    }
}

impl Param for bool {
    fn value(&self) -> Value<'_> {
        Value::Int(i64::from(*self))
    }
}

impl<T: Param + ?Sized> Param for &T {
    fn value(&self) -> Value<'_> {
        (**self).value()
    }
}

impl<T: Param> Param for Option<T> {
    fn value(&self) -> Value<'_> {
        self.as_ref().map_or(Value::Null, Param::value)
    }
}

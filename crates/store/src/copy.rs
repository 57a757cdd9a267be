//! Copying a whole store into another: how a SQLite store moves to PostgreSQL
//! (`waedge store migrate`).
//!
//! Every table is copied as it is, in one write transaction on the target: a copy that fails
//! half-way leaves the target as empty as it was. Keys are kept as they are — among them the
//! outbox's positions, which webhooks record how far they delivered by — and the target's
//! counters continue after the source's (after the last event ever recorded, even one gone
//! with its device), so nothing numbered before the copy is numbered again after it.

use crate::db::{Conn, Param, Value, params};
use crate::{Store, StoreError};

/// The tables, parents before children (foreign keys), with the counter each continues: a
/// column the database numbers.
const TABLES: &[(&str, Option<&str>)] = &[
    ("meta", None),
    ("tenants", None),
    ("tenant_hosts", None),
    ("devices", None),
    ("users", None),
    ("tokens", None),
    ("routes", None),
    ("component_versions", None),
    ("admin_tokens", None),
    ("events", Some("position")),
    ("webhooks", Some("rowid")),
    ("webhook_attempts", Some("id")),
    ("dead_letters", None),
    ("sent_messages", None),
    ("lid_verifications", None),
    ("lid_links", Some("rowid")),
    ("lid_link_misses", None),
    ("contact_names", None),
];

/// One table copied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Copied {
    /// The table's name.
    pub table: &'static str,
    /// How many rows it had, and now has in the target.
    pub rows: u64,
}

/// A value read from the source, held until it is written.
#[derive(Debug, PartialEq)]
enum Owned {
    Null,
    Int(i64),
    Text(String),
    Blob(Vec<u8>),
}

impl Store {
    /// Copies everything this SQLite store holds into `target`, a PostgreSQL store that must
    /// be empty (no tenant, no admin token, never seeded), calling `progress` after each
    /// table. All of it or nothing: the copy is one transaction on the target, read from one
    /// consistent view of this store.
    pub fn copy_to(&self, target: &Store, mut progress: impl FnMut(&Copied)) -> Result<Vec<Copied>, StoreError> {
        // Checked first: a store in memory reads and writes on one connection, which the
        // nested transactions below would wait for twice.
        if self.is_shared() || !target.is_shared() {
            return Err(StoreError::Invalid("a store is copied from SQLite into PostgreSQL".into()));
        }
        self.read(|source| {
            target.transaction(|target| {
                refuse_unless_empty(target)?;
                // The target waits while the source is read: longer than a store's own
                // transactions may sit idle.
                target.execute("SET LOCAL idle_in_transaction_session_timeout = 0", &[])?;
                let mut copied = Vec::with_capacity(TABLES.len());
                for (table, counter) in TABLES {
                    let rows = copy_table(source, target, table, *counter)?;
                    let table = Copied { table, rows };
                    progress(&table);
                    copied.push(table);
                }
                Ok(copied)
            })
        })
    }

    /// Refuses ([`StoreError::Conflict`]) unless this store is as [`copy_to`](Store::copy_to)
    /// wants its target: no tenant, no admin token, never seeded. For what is moved before the
    /// store is (the devices' WhatsApp sessions): `copy_to` checks again in its transaction.
    pub fn ensure_empty(&self) -> Result<(), StoreError> {
        self.read(refuse_unless_empty)
    }
}

fn refuse_unless_empty(target: &Conn<'_>) -> Result<(), StoreError> {
    for table in ["tenants", "admin_tokens", "meta"] {
        let rows: i64 = target.query_value(&format!("SELECT count(*) FROM {table}"), &[])?;
        if rows > 0 {
            return Err(StoreError::Conflict(format!(
                "the target store is not empty ({table} has {rows} row(s)): copy into a new, empty database"
            )));
        }
    }
    Ok(())
}

/// Copies `table`'s rows, then moves the target's `counter` past the source's.
fn copy_table(source: &Conn<'_>, target: &Conn<'_>, table: &str, counter: Option<&str>) -> Result<u64, StoreError> {
    let columns = columns(target, table)?;
    let list = columns.join(", ");
    let rows = source.query(&format!("SELECT {list} FROM {table}"), &[], |row| {
        (0..columns.len()).map(|index| Ok(Owned::from(row.value(index)?))).collect::<Result<Vec<_>, StoreError>>()
    })?;
    let placeholders: Vec<String> = (1..=columns.len()).map(|n| format!("?{n}")).collect();
    // Numbered columns are written as the source numbered them.
    let overriding = if counter.is_some() { "OVERRIDING SYSTEM VALUE" } else { "" };
    let insert = format!("INSERT INTO {table} ({list}) {overriding} VALUES ({})", placeholders.join(", "));
    for row in &rows {
        let params: Vec<&dyn Param> = row.iter().map(|value| value as &dyn Param).collect();
        target.execute(&insert, &params)?;
    }
    if let Some(counter) = counter {
        let last = last_number(source, table, counter)?;
        target.query_value::<i64>(
            "SELECT setval(pg_get_serial_sequence(?1, ?2), GREATEST(CAST(?3 AS BIGINT), 1), CAST(?3 AS BIGINT) > 0)",
            params![table, counter, last],
        )?;
    }
    let copied: i64 = target.query_value(&format!("SELECT count(*) FROM {table}"), &[])?;
    Ok(copied as u64)
}

/// The target's columns of `table` that hold data (not those the database computes), in
/// their order.
fn columns(target: &Conn<'_>, table: &str) -> Result<Vec<String>, StoreError> {
    let columns: Vec<String> = target.query(
        "SELECT column_name::text FROM information_schema.columns
         WHERE table_schema = current_schema() AND table_name = ?1 AND is_generated = 'NEVER'
         ORDER BY ordinal_position",
        params![table],
        |row| row.get(0),
    )?;
    if columns.is_empty() {
        return Err(StoreError::Invalid(format!("the target has no table `{table}`: is it a PostgreSQL store?")));
    }
    Ok(columns)
}

/// The last number the source gave out in `table`'s `counter`: for the outbox, what SQLite's
/// AUTOINCREMENT remembers (events deleted with their devices included).
fn last_number(source: &Conn<'_>, table: &str, counter: &str) -> Result<i64, StoreError> {
    let highest: i64 = source.query_value(&format!("SELECT COALESCE(MAX({counter}), 0) FROM {table}"), &[])?;
    let remembered: Option<i64> =
        source.query_opt("SELECT seq FROM sqlite_sequence WHERE name = ?1", params![table], |row| row.get(0))?;
    Ok(highest.max(remembered.unwrap_or(0)))
}

impl From<Value<'_>> for Owned {
    fn from(value: Value<'_>) -> Self {
        match value {
            Value::Null => Owned::Null,
            Value::Int(int) => Owned::Int(int),
            Value::Text(text) => Owned::Text(text.to_owned()),
            Value::Blob(bytes) => Owned::Blob(bytes.to_vec()),
        }
    }
}

impl Param for Owned {
    fn value(&self) -> Value<'_> {
        match self {
            Owned::Null => Value::Null,
            Owned::Int(int) => Value::Int(*int),
            Owned::Text(text) => Value::Text(text),
            Owned::Blob(bytes) => Value::Blob(bytes),
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::admin::AdminScope;
    use crate::events::NewEvent;
    use crate::routes::{ComponentRef, RouteRecord};
    use crate::sent::NewSend;
    use crate::tenants::NewTenant;
    use crate::users::NewUser;
    use crate::webhooks::{Attempt, NewWebhook};

    /// A SQLite store with rows in every table, and a device deleted after its events (the
    /// outbox remembers positions beyond the last event left).
    fn everything() -> Store {
        let store = crate::tests::sqlite();
        let hosts = vec!["acme.example.com".into()];
        store.create_tenant(NewTenant { id: "acme".into(), hosts, ..Default::default() }).unwrap();
        for device in ["main", "gone"] {
            store.create_device("acme", device).unwrap();
        }
        let user = store.create_user("acme", NewUser { devices: vec!["main".into()], ..Default::default() }).unwrap();
        store.create_token("acme", &user.id).unwrap();
        let route = RouteRecord { prefix: "/devices".into(), component: ComponentRef::Builtin("devices-api".into()) };
        store.put_route("acme", route).unwrap();
        store.add_component_version("acme", "enrich", &"ab".repeat(32), b"\0asm\x0d\0\x01\0", "admin").unwrap();
        store.create_admin_token(None, AdminScope::default()).unwrap();
        store.mark_seeded().unwrap();
        let event = |device: &str, chat: &str| NewEvent {
            device: device.into(),
            kind: "message.received".into(),
            chat: chat.into(),
            dedup: None,
            at: crate::now(),
            data: json!({ "message_id": format!("{device}-{chat}"), "sender": { "jid": chat } }),
        };
        store.append_events("acme", &[event("main", "1@s.whatsapp.net"), event("gone", "2@s.whatsapp.net")]).unwrap();
        store.delete_device("acme", "gone").unwrap();
        let new =
            NewWebhook { url: "https://crm.example.com/hook".into(), secret: "s".repeat(32), ..Default::default() };
        let webhook = store.create_webhook("acme", new).unwrap();
        let first = store.events("acme", None, 1).unwrap().remove(0);
        let attempt =
            Attempt { event_id: first.id, attempt: 1, status: Some(500), error: None, at: crate::now(), millis: 7 };
        store.record_attempt(&webhook.id, &attempt).unwrap();
        store.dead_letter(&webhook.id, 1, 1, "500 Internal Server Error").unwrap();
        let send =
            NewSend { device: "main".into(), id: "3EB0".into(), to: "1@s.whatsapp.net".into(), request: "r".into() };
        store.begin_send("acme", &send).unwrap();
        store
            .transaction(|tx| {
                tx.execute(
                    "INSERT INTO lid_verifications (tenant_id, device, id, phone_jid, message_id, salt, code_hash, lid,
                     created_at, expires_at, linked_at)
                     VALUES ('acme', 'main', 'V1', '1@s.whatsapp.net', 'M1', 'aa', 'bb', '9@lid', 'T', 'U', 'T')",
                    &[],
                )?;
                tx.execute(
                    "INSERT INTO lid_links (tenant_id, lid, phone_jid, device, verification, linked_at)
                     VALUES ('acme', '9@lid', '1@s.whatsapp.net', 'main', 'V1', 'T')",
                    &[],
                )?;
                tx.execute("INSERT INTO lid_link_misses (tenant_id, sender, at) VALUES ('acme', '8@lid', 'T')", &[])?;
                tx.execute(
                    "INSERT INTO contact_names (tenant_id, device, jid, push_name, updated_at)
                     VALUES ('acme', 'main', '1@s.whatsapp.net', 'Ana', 'T')",
                    &[],
                )
            })
            .unwrap();
        store
    }

    /// Every row of `table`, all columns the target stores, in the order of the first ones.
    fn rows(store: &Store, table: &str, columns: &[String]) -> Vec<Vec<Owned>> {
        let list = columns.join(", ");
        store
            .read(|conn| {
                conn.query(&format!("SELECT {list} FROM {table} ORDER BY {list}"), &[], |row| {
                    (0..columns.len()).map(|index| Ok(Owned::from(row.value(index)?))).collect()
                })
            })
            .unwrap()
    }

    #[test]
    #[ignore = "needs PostgreSQL's server binaries: scripts/test runs it where scripts/setup --test-tools installed them"]
    fn every_row_of_every_table_is_copied_and_numbering_goes_on_after_it() {
        let source = everything();
        let target = crate::tests::postgres();
        let mut reported = Vec::new();
        let copied = source.copy_to(&target, |table| reported.push(table.clone())).unwrap();
        assert_eq!(copied, reported, "progress after each table");

        let tables: Vec<String> = target
            .read(|conn| {
                conn.query(
                    "SELECT table_name::text FROM information_schema.tables
                     WHERE table_schema = current_schema() AND table_name NOT LIKE 'store\\_%' ORDER BY 1",
                    &[],
                    |row| row.get(0),
                )
            })
            .unwrap();
        let mut listed: Vec<&str> = TABLES.iter().map(|(table, _)| *table).collect();
        listed.sort_unstable();
        assert_eq!(tables, listed, "every table of the schema is copied (not the store_* bookkeeping of nodes)");
        for (table, _) in TABLES {
            let columns = target.read(|conn| columns(conn, table)).unwrap();
            let (from, to) = (rows(&source, table, &columns), rows(&target, table, &columns));
            assert!(!from.is_empty(), "the fixture has rows in {table}");
            assert_eq!(from, to, "{table}");
            let count = copied.iter().find(|c| c.table == *table).unwrap().rows;
            assert_eq!(count, from.len() as u64, "{table}");
        }
        assert_eq!(format!("{:?}", target.snapshot().unwrap()), format!("{:?}", source.snapshot().unwrap()));

        // The next event comes after the deleted device's, as it would have in the source.
        let last = source.read(|conn| last_number(conn, "events", "position")).unwrap();
        assert_eq!(last, 2, "the fixture's deleted device had the last event");
        let next = NewEvent {
            device: "main".into(),
            kind: "message.received".into(),
            chat: "3@s.whatsapp.net".into(),
            dedup: None,
            at: crate::now(),
            data: json!({}),
        };
        target.append_events("acme", &[next]).unwrap();
        let position: i64 = target.read(|conn| conn.query_value("SELECT MAX(position) FROM events", &[])).unwrap();
        assert_eq!(position, 3);
        let hook = NewWebhook { url: "https://crm.example.com/2".into(), secret: "t".repeat(32), ..Default::default() };
        target.create_webhook("acme", hook).unwrap();
        let ids: Vec<String> = target.webhooks("acme").unwrap().into_iter().map(|w| w.url).collect();
        assert_eq!(ids, ["https://crm.example.com/hook", "https://crm.example.com/2"], "in order of creation");
    }

    #[test]
    #[ignore = "needs PostgreSQL's server binaries: scripts/test runs it where scripts/setup --test-tools installed them"]
    fn a_store_is_copied_into_an_empty_postgres_store_only() {
        let source = everything();
        let target = crate::tests::postgres();
        target.create_tenant(NewTenant { id: "globex".into(), ..Default::default() }).unwrap();
        let refused = source.copy_to(&target, |_| {}).unwrap_err();
        assert!(matches!(refused, StoreError::Conflict(ref m) if m.contains("tenants has 1 row")), "{refused}");
        assert_eq!(target.tenants().unwrap().len(), 1, "nothing copied");

        let sqlite = crate::tests::sqlite();
        let refused = source.copy_to(&sqlite, |_| {}).unwrap_err();
        assert!(
            matches!(refused, StoreError::Invalid(ref m) if m.contains("from SQLite into PostgreSQL")),
            "{refused}"
        );
    }
}

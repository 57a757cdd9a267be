//! The schema in SQLite. `PRAGMA user_version` records how many migrations have been
//! applied; [`migrate`] applies the rest in one transaction each.

use rusqlite::{Connection, Transaction};

use crate::StoreError;

/// Every migration, in order; the database's `user_version` is the number applied.
const MIGRATIONS: &[&str] = &[
    // 1: tenants, their host names, users, API tokens, devices, routes, component versions
    //    and the admin tokens.
    r#"
    CREATE TABLE tenants (
        id             TEXT PRIMARY KEY,
        name           TEXT NOT NULL,
        limits         TEXT NOT NULL,      -- JSON: LimitOverrides
        outbound_hosts TEXT NOT NULL,      -- JSON: [host]
        outbound_private_hosts TEXT NOT NULL DEFAULT '[]', -- JSON: [host] that may be internal
        settings       TEXT NOT NULL,      -- JSON: {key: value}
        created_at     TEXT NOT NULL
    ) STRICT;
    CREATE TABLE tenant_hosts (
        host      TEXT PRIMARY KEY,        -- lower case, no port
        tenant_id TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE
    ) STRICT;
    CREATE TABLE devices (
        tenant_id  TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
        id         TEXT NOT NULL,
        state      TEXT NOT NULL,          -- WIT device-state name
        jid        TEXT,
        lid        TEXT,
        push_name  TEXT,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL,
        PRIMARY KEY (tenant_id, id)
    ) STRICT;
    CREATE TABLE users (
        id         TEXT PRIMARY KEY,       -- UUID v4
        tenant_id  TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
        name       TEXT NOT NULL,
        devices    TEXT NOT NULL,          -- JSON: [device id]
        scopes     TEXT NOT NULL,          -- JSON: [scope]
        created_at TEXT NOT NULL
    ) STRICT;
    CREATE TABLE tokens (
        id         TEXT PRIMARY KEY,       -- UUID v4, not the token
        user_id    TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        sha256     BLOB NOT NULL UNIQUE,   -- the token itself is never stored
        created_at TEXT NOT NULL,
        revoked_at TEXT
    ) STRICT;
    CREATE TABLE routes (
        tenant_id TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
        prefix    TEXT NOT NULL,
        component TEXT NOT NULL,
        PRIMARY KEY (tenant_id, prefix)
    ) STRICT;
    CREATE TABLE component_versions (
        tenant_id  TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
        name       TEXT NOT NULL,
        sha256     TEXT NOT NULL,
        size       INTEGER NOT NULL,
        bytes      BLOB NOT NULL,
        created_at TEXT NOT NULL,
        created_by TEXT NOT NULL,
        active     INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (tenant_id, name, sha256)
    ) STRICT;
    CREATE UNIQUE INDEX one_active_version ON component_versions (tenant_id, name) WHERE active = 1;
    CREATE TABLE meta (
        key   TEXT PRIMARY KEY,
        value TEXT NOT NULL
    ) STRICT;
    CREATE TABLE admin_tokens (
        id         TEXT PRIMARY KEY,
        sha256     BLOB NOT NULL UNIQUE,
        created_at TEXT NOT NULL,
        revoked_at TEXT
    ) STRICT;
    "#,
    // 2: admin tokens may expire.
    r#"
    ALTER TABLE admin_tokens ADD COLUMN expires_at TEXT; -- RFC 3339, UTC; NULL: never
    "#,
    // 3: admin tokens may be limited to one tenant (and go with it) and to reading.
    r#"
    ALTER TABLE admin_tokens ADD COLUMN tenant TEXT REFERENCES tenants(id) ON DELETE CASCADE;
    ALTER TABLE admin_tokens ADD COLUMN read_only INTEGER NOT NULL DEFAULT 0;
    "#,
    // 4: the event outbox (see `events`).
    r#"
    CREATE TABLE events (
        position  INTEGER PRIMARY KEY AUTOINCREMENT, -- commit order; never reused
        id        TEXT NOT NULL UNIQUE,    -- ULID
        tenant_id TEXT NOT NULL,
        device    TEXT NOT NULL,
        kind      TEXT NOT NULL,           -- e.g. message.received
        chat      TEXT NOT NULL,
        seq       INTEGER NOT NULL,        -- 1, 2, 3 … per device and chat
        dedup     TEXT,                    -- for a message: chat|sender|message id
        at        TEXT NOT NULL,           -- RFC 3339, UTC
        data      TEXT NOT NULL,           -- JSON: the fields of the event's type
        FOREIGN KEY (tenant_id, device) REFERENCES devices(tenant_id, id) ON DELETE CASCADE,
        UNIQUE (tenant_id, device, chat, seq),
        UNIQUE (tenant_id, device, dedup)
    ) STRICT;
    CREATE INDEX events_of_tenant ON events (tenant_id, position);
    "#,
    // 5: webhooks, their delivery logs and dead letters (see `webhooks`).
    r#"
    CREATE TABLE webhooks (
        id         TEXT PRIMARY KEY,       -- UUID v4
        tenant_id  TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
        device     TEXT,                   -- NULL: every device of the tenant
        url        TEXT NOT NULL,
        events     TEXT NOT NULL,          -- JSON: [event type]; empty: every type
        secret     TEXT NOT NULL,
        position   INTEGER NOT NULL,       -- the outbox position delivered (or given up on) up to
        created_at TEXT NOT NULL,
        FOREIGN KEY (tenant_id, device) REFERENCES devices(tenant_id, id) ON DELETE CASCADE
    ) STRICT;
    CREATE INDEX webhooks_of_tenant ON webhooks (tenant_id, device);
    CREATE TABLE webhook_attempts (
        id         INTEGER PRIMARY KEY,    -- the order attempts were recorded in
        webhook_id TEXT NOT NULL REFERENCES webhooks(id) ON DELETE CASCADE,
        event_id   TEXT NOT NULL,
        attempt    INTEGER NOT NULL,       -- 1, 2, … for the event
        status     INTEGER,                -- HTTP status; NULL: no answer
        error      TEXT,
        at         TEXT NOT NULL,          -- RFC 3339, UTC
        millis     INTEGER NOT NULL
    ) STRICT;
    CREATE INDEX webhook_attempts_of_webhook ON webhook_attempts (webhook_id, id);
    CREATE TABLE dead_letters (
        webhook_id TEXT NOT NULL REFERENCES webhooks(id) ON DELETE CASCADE,
        position   INTEGER NOT NULL REFERENCES events(position) ON DELETE CASCADE,
        attempts   INTEGER NOT NULL,
        error      TEXT NOT NULL,
        at         TEXT NOT NULL,          -- RFC 3339, UTC: when it was given up on
        PRIMARY KEY (webhook_id, position)
    ) STRICT;
    CREATE INDEX dead_letters_of_event ON dead_letters (position);
    "#,
    // 6: the messages devices sent, and how far each got (see `sent`).
    r#"
    CREATE TABLE sent_messages (
        tenant_id  TEXT NOT NULL,
        device     TEXT NOT NULL,
        id         TEXT NOT NULL,          -- WhatsApp message id
        recipient  TEXT NOT NULL,          -- JID without a device part
        request    TEXT NOT NULL,          -- fingerprint of what was asked (a repetition matches it)
        status     TEXT NOT NULL,          -- WIT message-status name
        error_code TEXT,                   -- WhatsApp's, when failed
        created_at TEXT NOT NULL,          -- RFC 3339, UTC
        updated_at TEXT NOT NULL,
        PRIMARY KEY (tenant_id, device, id),
        FOREIGN KEY (tenant_id, device) REFERENCES devices(tenant_id, id) ON DELETE CASCADE
    ) STRICT;
    "#,
    // 7: verified LID ↔ phone links, the verifications that make them and the wrong answers
    //    that lock a sender out for a while (see `links`).
    r#"
    CREATE TABLE lid_verifications (
        tenant_id  TEXT NOT NULL,
        device     TEXT NOT NULL,
        id         TEXT NOT NULL,          -- ULID
        phone_jid  TEXT NOT NULL,          -- where the code went
        message_id TEXT NOT NULL,          -- the message that carried it
        salt       TEXT NOT NULL,          -- hex, random per verification
        code_hash  TEXT NOT NULL,          -- hex SHA-256 of salt and code; the code is not kept
        lid        TEXT,                   -- who answered it, once linked
        created_at TEXT NOT NULL,          -- RFC 3339, UTC
        expires_at TEXT NOT NULL,
        linked_at  TEXT,
        PRIMARY KEY (tenant_id, device, id),
        FOREIGN KEY (tenant_id, device) REFERENCES devices(tenant_id, id) ON DELETE CASCADE
    ) STRICT;
    CREATE INDEX lid_verifications_to_phone ON lid_verifications (tenant_id, phone_jid, created_at);
    CREATE INDEX lid_verifications_pending ON lid_verifications (tenant_id, device, expires_at) WHERE lid IS NULL;
    CREATE TABLE lid_links (
        tenant_id    TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
        lid          TEXT NOT NULL,
        phone_jid    TEXT NOT NULL,
        device       TEXT NOT NULL,        -- that sent the code (the link outlives it)
        verification TEXT NOT NULL,
        linked_at    TEXT NOT NULL,
        PRIMARY KEY (tenant_id, lid)
    ) STRICT;
    CREATE INDEX lid_links_of_phone ON lid_links (tenant_id, phone_jid, linked_at);
    CREATE TABLE lid_link_misses (
        tenant_id TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
        sender    TEXT NOT NULL,           -- the LID that sent a code-shaped wrong answer
        at        TEXT NOT NULL
    ) STRICT;
    CREATE INDEX lid_link_misses_of_sender ON lid_link_misses (tenant_id, sender, at);
    "#,
    // 8: the names devices learned for their contacts (see `names`).
    r#"
    CREATE TABLE contact_names (
        tenant_id     TEXT NOT NULL,
        device        TEXT NOT NULL,
        jid           TEXT NOT NULL,       -- the contact, without a device part
        push_name     TEXT,
        business_name TEXT,
        full_name     TEXT,                -- from the phone's address book
        updated_at    TEXT NOT NULL,       -- RFC 3339, UTC
        PRIMARY KEY (tenant_id, device, jid),
        FOREIGN KEY (tenant_id, device) REFERENCES devices(tenant_id, id) ON DELETE CASCADE
    ) STRICT;
    "#,
    // 9: received messages found by their WhatsApp id (a reply names its quote's author).
    r#"
    ALTER TABLE events ADD COLUMN message_id TEXT GENERATED ALWAYS AS (json_extract(data, '$.message_id')) VIRTUAL;
    CREATE INDEX events_received_by_message_id ON events (tenant_id, device, chat, message_id, seq)
        WHERE kind = 'message.received';
    "#,
    // 10: the lease a device's status was recorded under (see `record_device_statuses`).
    r#"
    ALTER TABLE devices ADD COLUMN status_lease INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE devices ADD COLUMN status_epoch INTEGER NOT NULL DEFAULT 0;
    "#,
];

/// Brings the schema up to date, unless it is newer than this build's.
pub(crate) fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    let version: u32 = conn.pragma_query_value(None, "user_version", |row| row.get(0))?;
    super::refuse_newer(version.into(), latest())?;
    for (index, sql) in (1u32..).zip(MIGRATIONS) {
        // Read the version under the write lock: two processes opening a new store at once
        // must not both apply a migration.
        let tx: Transaction<'_> = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let applied: u32 = tx.pragma_query_value(None, "user_version", |row| row.get(0))?;
        if applied < index {
            tx.execute_batch(sql)?;
            tx.pragma_update(None, "user_version", index)?;
        }
        tx.commit()?;
    }
    Ok(())
}

/// The schema version this build writes.
pub(crate) fn latest() -> i64 {
    MIGRATIONS.len() as i64
}

//! The schema in PostgreSQL, the same tables as SQLite's with PostgreSQL's types: `BIGINT`
//! for integers and flags, `BYTEA` for bytes, and text in the `C` collation, so that every
//! `ORDER BY` sorts as SQLite's does (by bytes) whatever the database's locale. The tables
//! whose order of creation the store reads (SQLite's implicit `rowid`) have it as a column
//! of that name. `store_schema.version` counts the migrations applied.

use crate::StoreError;
use crate::db::{Conn, Session, params};

/// Every migration, in order. The first is SQLite's schema at its ninth migration.
const MIGRATIONS: &[&str] = &[
    r#"
    CREATE TABLE tenants (
        id             TEXT COLLATE "C" PRIMARY KEY,
        name           TEXT COLLATE "C" NOT NULL,
        limits         TEXT NOT NULL,      -- JSON: LimitOverrides
        outbound_hosts TEXT NOT NULL,      -- JSON: [host]
        outbound_private_hosts TEXT NOT NULL DEFAULT '[]', -- JSON: [host] that may be internal
        settings       TEXT NOT NULL,      -- JSON: {key: value}
        created_at     TEXT COLLATE "C" NOT NULL
    );
    CREATE TABLE tenant_hosts (
        host      TEXT COLLATE "C" PRIMARY KEY, -- lower case, no port
        tenant_id TEXT COLLATE "C" NOT NULL REFERENCES tenants(id) ON DELETE CASCADE
    );
    CREATE TABLE devices (
        tenant_id  TEXT COLLATE "C" NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
        id         TEXT COLLATE "C" NOT NULL,
        state      TEXT COLLATE "C" NOT NULL, -- WIT device-state name
        jid        TEXT COLLATE "C",
        lid        TEXT COLLATE "C",
        push_name  TEXT COLLATE "C",
        created_at TEXT COLLATE "C" NOT NULL,
        updated_at TEXT COLLATE "C" NOT NULL,
        PRIMARY KEY (tenant_id, id)
    );
    CREATE TABLE users (
        id         TEXT COLLATE "C" PRIMARY KEY, -- UUID v4
        tenant_id  TEXT COLLATE "C" NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
        name       TEXT COLLATE "C" NOT NULL,
        devices    TEXT NOT NULL,          -- JSON: [device id]
        scopes     TEXT NOT NULL,          -- JSON: [scope]
        created_at TEXT COLLATE "C" NOT NULL
    );
    CREATE INDEX users_of_tenant ON users (tenant_id);
    CREATE TABLE tokens (
        id         TEXT COLLATE "C" PRIMARY KEY, -- UUID v4, not the token
        user_id    TEXT COLLATE "C" NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        sha256     BYTEA NOT NULL UNIQUE,  -- the token itself is never stored
        created_at TEXT COLLATE "C" NOT NULL,
        revoked_at TEXT COLLATE "C"
    );
    CREATE INDEX tokens_of_user ON tokens (user_id);
    CREATE TABLE routes (
        tenant_id TEXT COLLATE "C" NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
        prefix    TEXT COLLATE "C" NOT NULL,
        component TEXT COLLATE "C" NOT NULL,
        PRIMARY KEY (tenant_id, prefix)
    );
    CREATE TABLE component_versions (
        tenant_id  TEXT COLLATE "C" NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
        name       TEXT COLLATE "C" NOT NULL,
        sha256     TEXT COLLATE "C" NOT NULL,
        size       BIGINT NOT NULL,
        bytes      BYTEA NOT NULL,
        created_at TEXT COLLATE "C" NOT NULL,
        created_by TEXT COLLATE "C" NOT NULL,
        active     BIGINT NOT NULL DEFAULT 0,
        PRIMARY KEY (tenant_id, name, sha256)
    );
    CREATE UNIQUE INDEX one_active_version ON component_versions (tenant_id, name) WHERE active = 1;
    CREATE TABLE meta (
        key   TEXT COLLATE "C" PRIMARY KEY,
        value TEXT COLLATE "C" NOT NULL
    );
    CREATE TABLE admin_tokens (
        id         TEXT COLLATE "C" PRIMARY KEY,
        sha256     BYTEA NOT NULL UNIQUE,
        created_at TEXT COLLATE "C" NOT NULL,
        revoked_at TEXT COLLATE "C",
        expires_at TEXT COLLATE "C",       -- RFC 3339, UTC; NULL: never
        tenant     TEXT COLLATE "C" REFERENCES tenants(id) ON DELETE CASCADE,
        read_only  BIGINT NOT NULL DEFAULT 0
    );
    CREATE TABLE events (
        position  BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY, -- commit order; never reused
        id        TEXT COLLATE "C" NOT NULL UNIQUE, -- ULID
        tenant_id TEXT COLLATE "C" NOT NULL,
        device    TEXT COLLATE "C" NOT NULL,
        kind      TEXT COLLATE "C" NOT NULL, -- e.g. message.received
        chat      TEXT COLLATE "C" NOT NULL,
        seq       BIGINT NOT NULL,         -- 1, 2, 3 … per device and chat
        dedup     TEXT COLLATE "C",        -- for a message: chat|sender|message id
        at        TEXT COLLATE "C" NOT NULL, -- RFC 3339, UTC
        data      TEXT NOT NULL,           -- JSON: the fields of the event's type
        message_id TEXT COLLATE "C" GENERATED ALWAYS AS (data::jsonb ->> 'message_id') STORED,
        FOREIGN KEY (tenant_id, device) REFERENCES devices(tenant_id, id) ON DELETE CASCADE,
        UNIQUE (tenant_id, device, chat, seq),
        UNIQUE (tenant_id, device, dedup)
    );
    CREATE INDEX events_of_tenant ON events (tenant_id, position);
    CREATE INDEX events_received_by_message_id ON events (tenant_id, device, chat, message_id, seq)
        WHERE kind = 'message.received';
    CREATE TABLE webhooks (
        rowid      BIGINT GENERATED ALWAYS AS IDENTITY UNIQUE, -- the order of creation
        id         TEXT COLLATE "C" PRIMARY KEY, -- UUID v4
        tenant_id  TEXT COLLATE "C" NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
        device     TEXT COLLATE "C",        -- NULL: every device of the tenant
        url        TEXT COLLATE "C" NOT NULL,
        events     TEXT NOT NULL,          -- JSON: [event type]; empty: every type
        secret     TEXT COLLATE "C" NOT NULL,
        position   BIGINT NOT NULL,        -- the outbox position delivered (or given up on) up to
        created_at TEXT COLLATE "C" NOT NULL,
        FOREIGN KEY (tenant_id, device) REFERENCES devices(tenant_id, id) ON DELETE CASCADE
    );
    CREATE INDEX webhooks_of_tenant ON webhooks (tenant_id, device);
    CREATE TABLE webhook_attempts (
        id         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY, -- the order attempts were recorded in
        webhook_id TEXT COLLATE "C" NOT NULL REFERENCES webhooks(id) ON DELETE CASCADE,
        event_id   TEXT COLLATE "C" NOT NULL,
        attempt    BIGINT NOT NULL,        -- 1, 2, … for the event
        status     BIGINT,                 -- HTTP status; NULL: no answer
        error      TEXT COLLATE "C",
        at         TEXT COLLATE "C" NOT NULL, -- RFC 3339, UTC
        millis     BIGINT NOT NULL
    );
    CREATE INDEX webhook_attempts_of_webhook ON webhook_attempts (webhook_id, id);
    CREATE TABLE dead_letters (
        webhook_id TEXT COLLATE "C" NOT NULL REFERENCES webhooks(id) ON DELETE CASCADE,
        position   BIGINT NOT NULL REFERENCES events(position) ON DELETE CASCADE,
        attempts   BIGINT NOT NULL,
        error      TEXT COLLATE "C" NOT NULL,
        at         TEXT COLLATE "C" NOT NULL, -- RFC 3339, UTC: when it was given up on
        PRIMARY KEY (webhook_id, position)
    );
    CREATE INDEX dead_letters_of_event ON dead_letters (position);
    CREATE TABLE sent_messages (
        tenant_id  TEXT COLLATE "C" NOT NULL,
        device     TEXT COLLATE "C" NOT NULL,
        id         TEXT COLLATE "C" NOT NULL, -- WhatsApp message id
        recipient  TEXT COLLATE "C" NOT NULL, -- JID without a device part
        request    TEXT COLLATE "C" NOT NULL, -- fingerprint of what was asked
        status     TEXT COLLATE "C" NOT NULL, -- WIT message-status name
        error_code TEXT COLLATE "C",        -- WhatsApp's, when failed
        created_at TEXT COLLATE "C" NOT NULL, -- RFC 3339, UTC
        updated_at TEXT COLLATE "C" NOT NULL,
        PRIMARY KEY (tenant_id, device, id),
        FOREIGN KEY (tenant_id, device) REFERENCES devices(tenant_id, id) ON DELETE CASCADE
    );
    CREATE TABLE lid_verifications (
        tenant_id  TEXT COLLATE "C" NOT NULL,
        device     TEXT COLLATE "C" NOT NULL,
        id         TEXT COLLATE "C" NOT NULL, -- ULID
        phone_jid  TEXT COLLATE "C" NOT NULL, -- where the code went
        message_id TEXT COLLATE "C" NOT NULL, -- the message that carried it
        salt       TEXT COLLATE "C" NOT NULL, -- hex, random per verification
        code_hash  TEXT COLLATE "C" NOT NULL, -- hex SHA-256 of salt and code; the code is not kept
        lid        TEXT COLLATE "C",        -- who answered it, once linked
        created_at TEXT COLLATE "C" NOT NULL, -- RFC 3339, UTC
        expires_at TEXT COLLATE "C" NOT NULL,
        linked_at  TEXT COLLATE "C",
        PRIMARY KEY (tenant_id, device, id),
        FOREIGN KEY (tenant_id, device) REFERENCES devices(tenant_id, id) ON DELETE CASCADE
    );
    CREATE INDEX lid_verifications_to_phone ON lid_verifications (tenant_id, phone_jid, created_at);
    CREATE INDEX lid_verifications_pending ON lid_verifications (tenant_id, device, expires_at) WHERE lid IS NULL;
    CREATE TABLE lid_links (
        rowid        BIGINT GENERATED ALWAYS AS IDENTITY UNIQUE, -- breaks ties of linked_at
        tenant_id    TEXT COLLATE "C" NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
        lid          TEXT COLLATE "C" NOT NULL,
        phone_jid    TEXT COLLATE "C" NOT NULL,
        device       TEXT COLLATE "C" NOT NULL, -- that sent the code (the link outlives it)
        verification TEXT COLLATE "C" NOT NULL,
        linked_at    TEXT COLLATE "C" NOT NULL,
        PRIMARY KEY (tenant_id, lid)
    );
    CREATE INDEX lid_links_of_phone ON lid_links (tenant_id, phone_jid, linked_at);
    CREATE TABLE lid_link_misses (
        tenant_id TEXT COLLATE "C" NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
        sender    TEXT COLLATE "C" NOT NULL, -- the LID that sent a code-shaped wrong answer
        at        TEXT COLLATE "C" NOT NULL
    );
    CREATE INDEX lid_link_misses_of_sender ON lid_link_misses (tenant_id, sender, at);
    CREATE TABLE contact_names (
        tenant_id     TEXT COLLATE "C" NOT NULL,
        device        TEXT COLLATE "C" NOT NULL,
        jid           TEXT COLLATE "C" NOT NULL, -- the contact, without a device part
        push_name     TEXT COLLATE "C",
        business_name TEXT COLLATE "C",
        full_name     TEXT COLLATE "C",     -- from the phone's address book
        updated_at    TEXT COLLATE "C" NOT NULL, -- RFC 3339, UTC
        PRIMARY KEY (tenant_id, device, jid),
        FOREIGN KEY (tenant_id, device) REFERENCES devices(tenant_id, id) ON DELETE CASCADE
    );
"#,
    // 2: what the nodes sharing the store serve from changed (see `changes`): every row
    //    written there counts (a statement that changes no row does not), in commit order,
    //    and a transaction that wrote any is announced on the channel `waedge_store`; nodes
    //    record the count they serve. A device's status, a webhook's progress and a device
    //    state's writes are not counted: no node serves from them.
    r#"
    CREATE TABLE store_changes (count BIGINT NOT NULL);
    INSERT INTO store_changes (count) VALUES (0);
    CREATE TABLE store_nodes (
        node    TEXT COLLATE "C" PRIMARY KEY,
        serves  BIGINT NOT NULL,           -- the count of changes it serves
        seen_at TIMESTAMPTZ NOT NULL       -- by the database's clock
    );
    CREATE FUNCTION store_changed() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        UPDATE store_changes SET count = count + 1;
        -- One notification per transaction: the same channel and payload are sent once.
        PERFORM pg_notify('waedge_store', '');
        RETURN NULL;
    END
    $$;
    CREATE TRIGGER changed AFTER INSERT OR UPDATE OR DELETE ON tenants
        FOR EACH ROW EXECUTE FUNCTION store_changed();
    CREATE TRIGGER changed AFTER INSERT OR UPDATE OR DELETE ON tenant_hosts
        FOR EACH ROW EXECUTE FUNCTION store_changed();
    CREATE TRIGGER changed AFTER INSERT OR UPDATE OR DELETE ON users
        FOR EACH ROW EXECUTE FUNCTION store_changed();
    CREATE TRIGGER changed AFTER INSERT OR UPDATE OR DELETE ON tokens
        FOR EACH ROW EXECUTE FUNCTION store_changed();
    CREATE TRIGGER changed AFTER INSERT OR UPDATE OR DELETE ON routes
        FOR EACH ROW EXECUTE FUNCTION store_changed();
    CREATE TRIGGER changed AFTER INSERT OR UPDATE OR DELETE ON component_versions
        FOR EACH ROW EXECUTE FUNCTION store_changed();
    -- A device's row changes with its status; only its coming and going changes what is served.
    CREATE TRIGGER changed AFTER INSERT OR DELETE ON devices
        FOR EACH ROW EXECUTE FUNCTION store_changed();
    -- A webhook's row changes with every delivery; only its coming and going does.
    CREATE TRIGGER changed AFTER INSERT OR DELETE ON webhooks
        FOR EACH ROW EXECUTE FUNCTION store_changed();
    "#,
    // 3: the events appended, announced on the channel `waedge_events` as `TENANT DEVICE`
    //    (once per transaction and device), so that every node's webhook workers and event
    //    streams wake for the events any node commits.
    r#"
    CREATE FUNCTION events_appended() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        PERFORM pg_notify('waedge_events', NEW.tenant_id || ' ' || NEW.device);
        RETURN NULL;
    END
    $$;
    CREATE TRIGGER appended AFTER INSERT ON events FOR EACH ROW EXECUTE FUNCTION events_appended();
    "#,
    // 4: where each node takes the device calls the other nodes forward to it (NULL: nowhere).
    r#"
    ALTER TABLE store_nodes ADD COLUMN address TEXT;
    "#,
    // 5: the lease a device's status was recorded under (see `record_device_statuses`).
    r#"
    ALTER TABLE devices ADD COLUMN status_lease BIGINT NOT NULL DEFAULT 0;
    ALTER TABLE devices ADD COLUMN status_epoch BIGINT NOT NULL DEFAULT 0;
    "#,
];

/// Brings the schema up to date, unless it is newer than this build's: all of it in one
/// transaction holding [`STORE_MIGRATIONS`](waedge_pg::locks::STORE_MIGRATIONS), so a node never sees half a schema.
pub(crate) fn migrate(session: &Session) -> Result<(), StoreError> {
    session.within("BEGIN", || apply(session))
}

fn apply(session: &Session) -> Result<(), StoreError> {
    let conn = Conn::Postgres(session);
    conn.execute("SELECT pg_advisory_xact_lock(?1)", params![waedge_pg::locks::STORE_MIGRATIONS])?;
    session.batch("CREATE TABLE IF NOT EXISTS store_schema (version BIGINT NOT NULL)")?;
    let applied: Option<i64> = conn.query_opt("SELECT version FROM store_schema", &[], |row| row.get(0))?;
    let applied = match applied {
        Some(applied) => applied,
        None => {
            conn.execute("INSERT INTO store_schema (version) VALUES (0)", &[])?;
            0
        }
    };
    super::refuse_newer(applied, latest())?;
    for (version, sql) in (1i64..).zip(MIGRATIONS).skip(usize::try_from(applied).unwrap_or(0)) {
        session.batch(sql)?;
        conn.execute("UPDATE store_schema SET version = ?1", params![version])?;
    }
    Ok(())
}

/// The schema version this build writes.
pub(crate) fn latest() -> i64 {
    MIGRATIONS.len() as i64
}

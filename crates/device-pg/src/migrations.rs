//! The schema of the device state, and how a database is brought up to date.
//!
//! Migrations only ever append: a released one is never edited. They run inside one
//! transaction that holds an advisory lock, so nodes starting together apply each exactly
//! once, and a node never sees half a schema.

use tokio_postgres::Client;

use crate::Error;

/// The migrations, in order; `wa_schema.version` counts those applied.
const MIGRATIONS: &[&str] = &[r#"
    -- One row per device: who owns it (the lease), and since which epoch.
    CREATE TABLE wa_devices (
        id         BIGSERIAL PRIMARY KEY,
        tenant     TEXT NOT NULL,
        device     TEXT NOT NULL,
        owner      TEXT,
        epoch      BIGINT NOT NULL DEFAULT 0,
        expires_at TIMESTAMPTZ,
        -- The state its client stopped in for good (logged-out, replaced, banned), so that
        -- the next holder does not start it; cleared once it connects again.
        stopped_as TEXT,
        UNIQUE (tenant, device),
        -- An epoch change is then a key update: it waits for the writes that hold the row
        -- FOR KEY SHARE (every fenced write), and they see the new epoch once it commits.
        -- Renewing a lease (expires_at only) does not.
        UNIQUE (id, epoch)
    );
    CREATE INDEX wa_devices_owner ON wa_devices (owner);
    -- The nodes, alive while their row has not expired (see balance.rs).
    CREATE TABLE wa_nodes (
        name       TEXT PRIMARY KEY,
        expires_at TIMESTAMPTZ NOT NULL
    );
    CREATE TABLE wa_device_data (
        device BIGINT PRIMARY KEY REFERENCES wa_devices (id) ON DELETE CASCADE,
        data   BYTEA NOT NULL
    );
    CREATE TABLE wa_identities (
        device  BIGINT NOT NULL REFERENCES wa_devices (id) ON DELETE CASCADE,
        address TEXT NOT NULL,
        key     BYTEA NOT NULL,
        PRIMARY KEY (device, address)
    );
    CREATE TABLE wa_sessions (
        device  BIGINT NOT NULL REFERENCES wa_devices (id) ON DELETE CASCADE,
        address TEXT NOT NULL,
        record  BYTEA NOT NULL,
        PRIMARY KEY (device, address)
    );
    CREATE TABLE wa_prekeys (
        device   BIGINT NOT NULL REFERENCES wa_devices (id) ON DELETE CASCADE,
        id       BIGINT NOT NULL,
        record   BYTEA NOT NULL,
        uploaded BOOLEAN NOT NULL,
        PRIMARY KEY (device, id)
    );
    CREATE TABLE wa_signed_prekeys (
        device BIGINT NOT NULL REFERENCES wa_devices (id) ON DELETE CASCADE,
        id     BIGINT NOT NULL,
        record BYTEA NOT NULL,
        PRIMARY KEY (device, id)
    );
    CREATE TABLE wa_sender_keys (
        device  BIGINT NOT NULL REFERENCES wa_devices (id) ON DELETE CASCADE,
        address TEXT NOT NULL,
        record  BYTEA NOT NULL,
        PRIMARY KEY (device, address)
    );
    CREATE TABLE wa_app_state_keys (
        device      BIGINT NOT NULL REFERENCES wa_devices (id) ON DELETE CASCADE,
        key_id      BYTEA NOT NULL,
        key_data    BYTEA NOT NULL,
        fingerprint BYTEA NOT NULL,
        timestamp   BIGINT NOT NULL,
        PRIMARY KEY (device, key_id)
    );
    CREATE TABLE wa_app_state_versions (
        device BIGINT NOT NULL REFERENCES wa_devices (id) ON DELETE CASCADE,
        name   TEXT NOT NULL,
        state  BYTEA NOT NULL,
        PRIMARY KEY (device, name)
    );
    CREATE TABLE wa_app_state_macs (
        device    BIGINT NOT NULL REFERENCES wa_devices (id) ON DELETE CASCADE,
        name      TEXT NOT NULL,
        index_mac BYTEA NOT NULL,
        version   BIGINT NOT NULL,
        value_mac BYTEA NOT NULL,
        PRIMARY KEY (device, name, index_mac)
    );
    CREATE TABLE wa_sender_key_devices (
        device     BIGINT NOT NULL REFERENCES wa_devices (id) ON DELETE CASCADE,
        group_jid  TEXT NOT NULL,
        device_jid TEXT NOT NULL,
        has_key    BOOLEAN NOT NULL,
        updated_at BIGINT NOT NULL,
        PRIMARY KEY (device, group_jid, device_jid)
    );
    CREATE TABLE wa_lid_pn (
        device          BIGINT NOT NULL REFERENCES wa_devices (id) ON DELETE CASCADE,
        lid             TEXT NOT NULL,
        phone_number    TEXT NOT NULL,
        created_at      BIGINT NOT NULL,
        updated_at      BIGINT NOT NULL,
        learning_source TEXT NOT NULL,
        PRIMARY KEY (device, lid)
    );
    CREATE INDEX wa_lid_pn_phone ON wa_lid_pn (device, phone_number, updated_at DESC);
    CREATE TABLE wa_base_keys (
        device     BIGINT NOT NULL REFERENCES wa_devices (id) ON DELETE CASCADE,
        address    TEXT NOT NULL,
        message_id TEXT NOT NULL,
        base_key   BYTEA NOT NULL,
        created_at BIGINT NOT NULL,
        PRIMARY KEY (device, address, message_id)
    );
    CREATE TABLE wa_device_lists (
        device     BIGINT NOT NULL REFERENCES wa_devices (id) ON DELETE CASCADE,
        user_id    TEXT NOT NULL,
        devices    TEXT NOT NULL,
        timestamp  BIGINT NOT NULL,
        phash      TEXT,
        raw_id     BIGINT,
        updated_at BIGINT NOT NULL,
        PRIMARY KEY (device, user_id)
    );
    CREATE TABLE wa_group_metadata (
        device     BIGINT NOT NULL REFERENCES wa_devices (id) ON DELETE CASCADE,
        group_jid  TEXT NOT NULL,
        info       BYTEA NOT NULL,
        updated_at BIGINT NOT NULL,
        PRIMARY KEY (device, group_jid)
    );
    CREATE TABLE wa_tc_tokens (
        device           BIGINT NOT NULL REFERENCES wa_devices (id) ON DELETE CASCADE,
        jid              TEXT NOT NULL,
        token            BYTEA NOT NULL,
        token_timestamp  BIGINT NOT NULL,
        sender_timestamp BIGINT,
        updated_at       BIGINT NOT NULL,
        PRIMARY KEY (device, jid)
    );
    CREATE TABLE wa_sent_messages (
        device     BIGINT NOT NULL REFERENCES wa_devices (id) ON DELETE CASCADE,
        chat       TEXT NOT NULL,
        message_id TEXT NOT NULL,
        payload    BYTEA NOT NULL,
        created_at BIGINT NOT NULL,
        PRIMARY KEY (device, chat, message_id)
    );
    CREATE TABLE wa_pending_inbound (
        device      BIGINT NOT NULL REFERENCES wa_devices (id) ON DELETE CASCADE,
        chat        TEXT NOT NULL,
        sender      TEXT NOT NULL,
        id          TEXT NOT NULL,
        message     BYTEA NOT NULL,
        inserted_at BIGINT NOT NULL,
        PRIMARY KEY (device, chat, sender, id)
    );
    CREATE TABLE wa_msg_secrets (
        device     BIGINT NOT NULL REFERENCES wa_devices (id) ON DELETE CASCADE,
        chat       TEXT NOT NULL,
        sender     TEXT NOT NULL,
        msg_id     TEXT NOT NULL,
        secret     BYTEA NOT NULL,
        created_at BIGINT NOT NULL,
        expires_at BIGINT NOT NULL,
        message_ts BIGINT NOT NULL,
        PRIMARY KEY (device, chat, sender, msg_id)
    );
"#];

/// Applies the migrations `client`'s database lacks, in one transaction.
pub(crate) async fn apply(client: &Client) -> Result<(), Error> {
    crate::database::in_transaction(client, migrate(client)).await
}

async fn migrate(client: &Client) -> Result<(), Error> {
    client.execute("SELECT pg_advisory_xact_lock($1)", &[&waedge_pg::locks::DEVICE_STATE_MIGRATIONS]).await?;
    client.batch_execute("CREATE TABLE IF NOT EXISTS wa_schema (version INTEGER NOT NULL)").await?;
    let version: i32 = match client.query_opt("SELECT version FROM wa_schema", &[]).await? {
        Some(row) => row.get(0),
        None => {
            client.execute("INSERT INTO wa_schema (version) VALUES (0)", &[]).await?;
            0
        }
    };
    let version = usize::try_from(version).unwrap_or(0);
    if version > MIGRATIONS.len() {
        return Err(Error::NewerSchema { found: version, known: MIGRATIONS.len() });
    }
    for (number, sql) in MIGRATIONS.iter().enumerate().skip(version) {
        tracing::info!(migration = number + 1, "applying a device-state migration to PostgreSQL");
        client.batch_execute(sql).await?;
    }
    client.execute("UPDATE wa_schema SET version = $1", &[&(MIGRATIONS.len() as i32)]).await?;
    Ok(())
}

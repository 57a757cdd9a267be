//! Devices of a tenant: the WhatsApp identity once linked and the last known state.
//!
//! The session itself (keys, prekeys, app state) lives in whatsapp-rust's own store per device
//! (the device layer's); this table is the directory of devices and what an operator
//! sees about each. Terminal states (logged out, replaced, banned) are recorded here so a
//! restart does not reconnect a device WhatsApp has dropped; sessions record them
//! (through the device layer's recorder) before anyone can see them, so a crash right after
//! cannot forget them.

use serde::Serialize;
use serde_json::json;
use waedge_contract::types::{DeviceState, DeviceStatus};

use super::events::{self, DEVICE_STATUS, EventRecord, NewEvent};
use super::{Store, StoreError, check_identifier, conflict_on_unique, from_json, now, tenants, to_json};
use crate::db::{Column, Conn, Row, params};

/// A device's status as the session running it reported it, for
/// [`Store::record_device_statuses`].
#[derive(Debug, Clone, PartialEq)]
pub struct StatusReport {
    /// The tenant the device belongs to.
    pub tenant: String,
    /// What the session reported.
    pub status: DeviceStatus,
    /// The lease the session runs the device under.
    pub under: LeaseEpoch,
}

/// A device's lease at one epoch (see `waedge-device-pg`'s `Lease`): the lease row's number,
/// which a device registered again gets anew, higher, and the epoch, which each takeover of
/// the lease increments. Ordered by both: a later one is a later owner's. Where no lease
/// guards a device (a store of one node), both are 0.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct LeaseEpoch {
    /// The lease row's number.
    pub lease: i64,
    /// The lease's epoch.
    pub epoch: i64,
}

/// A device as stored, its text owned (`String`), or borrowed from the store's answer (`&str`,
/// as [`Store::each_device`] shows each device).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DeviceRecord<S = String> {
    /// The device id used in API paths, e.g. `main`.
    pub id: S,
    /// The tenant it belongs to.
    pub tenant: S,
    /// The last state recorded, as a WIT device-state name (`unlinked`, `connected`, …).
    pub state: S,
    /// The linked account's phone JID.
    pub jid: Option<S>,
    /// The linked account's LID.
    pub lid: Option<S>,
    /// The linked account's push name.
    pub push_name: Option<S>,
    /// When the device was created (RFC 3339).
    pub created_at: S,
    /// When its state last changed.
    pub updated_at: S,
}

impl<S> DeviceRecord<S> {
    /// The record with the state and identity its live session reports, `status`, instead of
    /// the ones recorded.
    pub fn live<'s>(self, status: &'s DeviceStatus) -> Self
    where
        S: From<&'s str>,
    {
        DeviceRecord {
            state: status.state.name().into(),
            jid: status.jid.as_deref().map(S::from),
            lid: status.lid.as_deref().map(S::from),
            push_name: status.push_name.as_deref().map(S::from),
            ..self
        }
    }
}

impl Store {
    /// Creates an unlinked device `id` of `tenant`.
    pub fn create_device(&self, tenant: &str, id: &str) -> Result<DeviceRecord, StoreError> {
        check_identifier("device", id)?;
        self.transaction(|tx| {
            tenants::require(tx, tenant)?;
            let twins = "SELECT id FROM devices WHERE tenant_id = ?1 AND lower(id) = lower(?2) AND id <> ?2";
            tenants::refuse_case_twin(tx, twins, params![tenant, id], "device")?;
            let at = now();
            tx.execute(
                "INSERT INTO devices (tenant_id, id, state, created_at, updated_at) VALUES (?1, ?2, 'unlinked', ?3, ?3)",
                params![tenant, id, at],
            )
            .map_err(|e| conflict_on_unique(e, || format!("tenant `{tenant}` already has a device `{id}`")))?;
            get(tx, tenant, id)
        })
    }

    /// The device `id` of `tenant`.
    pub fn device(&self, tenant: &str, id: &str) -> Result<DeviceRecord, StoreError> {
        self.read(|conn| get(conn, tenant, id))
    }

    /// Every device of `tenant`, by id, owned: for tests (the admin API writes its list as it
    /// reads it, with [`Store::each_device`]).
    #[cfg(test)]
    pub(crate) fn devices(&self, tenant: &str) -> Result<Vec<DeviceRecord>, StoreError> {
        self.read(|conn| {
            tenants::require(conn, tenant)?;
            list(conn, tenant)
        })
    }

    /// Shows every device of `tenant` to `visit`, by id, its text borrowed from the store's
    /// answer: a list of a thousand devices is made without copying eight thousand strings
    /// first (BENCHMARKS.md, issue #14). `visit` runs inside the store's read, holding one of
    /// its reading connections: keep it to writing the device out.
    pub fn each_device(&self, tenant: &str, mut visit: impl FnMut(DeviceRecord<&str>)) -> Result<(), StoreError> {
        self.read(|conn| {
            tenants::require(conn, tenant)?;
            // Each row is read and let go in turn: the answer is a `Vec<()>`, which allocates nothing.
            conn.query(LIST, params![tenant], |row| record(row).map(&mut visit))?;
            Ok(())
        })
    }

    /// Every device of every tenant, by tenant and id, as last recorded: on a node sharing
    /// the store, what the nodes running them reported.
    pub fn every_device(&self) -> Result<Vec<DeviceRecord>, StoreError> {
        self.read(|conn| {
            conn.query(
                "SELECT id, tenant_id, state, jid, lid, push_name, created_at, updated_at FROM devices
                 ORDER BY tenant_id, id",
                &[],
                read,
            )
        })
    }

    /// Records devices' states and identities as their sessions report them, in one
    /// transaction, in order (a later status of a device under the same or a later lease wins),
    /// each change of state with its `device.status` event; returns those events. A device
    /// deleted meanwhile is left deleted. A report under an earlier lease than the device's
    /// last recorded one is left out: it comes from a node that no longer runs the device (one
    /// that resumed after a pause, say), and must not overwrite what the node running it now
    /// recorded.
    pub fn record_device_statuses(&self, reports: &[StatusReport]) -> Result<Vec<EventRecord>, StoreError> {
        self.transaction(|tx| {
            let mut appended = Vec::new();
            for StatusReport { tenant, status, under } in reports {
                let previous = match get(tx, tenant, &status.id) {
                    Ok(previous) => previous,
                    Err(StoreError::NotFound(_)) => continue, // deleted meanwhile: it stays deleted
                    Err(e) => return Err(e),
                };
                let state = status.state.name();
                let recorded = tx.execute(
                    "UPDATE devices SET state = ?3, jid = ?4, lid = ?5, push_name = ?6, updated_at = ?7,
                         status_lease = ?8, status_epoch = ?9
                     WHERE tenant_id = ?1 AND id = ?2 AND (status_lease, status_epoch) <= (?8, ?9)",
                    params![
                        tenant,
                        status.id,
                        state,
                        status.jid,
                        status.lid,
                        status.push_name,
                        now(),
                        under.lease,
                        under.epoch
                    ],
                )?;
                if recorded > 0 && previous.state != state {
                    appended.extend(events::append(tx, tenant, &status_event(&previous.state, status))?);
                }
            }
            Ok(appended)
        })
    }

    /// Records each `(tenant, device)` of `devices` as unlinked, without the identity of the
    /// account it was linked to: for devices copied without their WhatsApp sessions, which are
    /// to be linked again. Returns how many it recorded.
    pub fn unlink_devices(&self, devices: &[(String, String)]) -> Result<usize, StoreError> {
        self.transaction(|tx| {
            let mut unlinked = 0;
            for (tenant, device) in devices {
                unlinked += tx.execute(
                    "UPDATE devices SET state = 'unlinked', jid = NULL, lid = NULL, push_name = NULL, updated_at = ?3
                     WHERE tenant_id = ?1 AND id = ?2",
                    params![tenant, device, now()],
                )?;
            }
            Ok(unlinked)
        })
    }

    /// Deletes the device `id` of `tenant` and removes it from its users.
    pub fn delete_device(&self, tenant: &str, id: &str) -> Result<(), StoreError> {
        self.transaction(|tx| {
            if tx.execute("DELETE FROM devices WHERE tenant_id = ?1 AND id = ?2", params![tenant, id])? == 0 {
                return Err(device_not_found(tenant, id));
            }
            // A user's devices are a JSON list, which the two databases take apart with
            // different functions: the lists that name the device are rewritten here, in the
            // users module's format.
            let users = tx.query("SELECT id, devices FROM users WHERE tenant_id = ?1", params![tenant], |row| {
                Ok((row.get::<String>(0)?, row.get::<String>(1)?))
            })?;
            for (user, devices) in users {
                let mut devices: Vec<String> = from_json(&devices)?;
                if devices.iter().any(|device| device == id) {
                    devices.retain(|device| device != id);
                    tx.execute("UPDATE users SET devices = ?2 WHERE id = ?1", params![user, to_json(&devices)])?;
                }
            }
            Ok(())
        })
    }
}

/// The `device.status` event of a device reaching `status` from the state `previous`. A device's
/// own events belong to no chat: their `chat` is empty, and `seq` numbers them per device.
fn status_event(previous: &str, status: &DeviceStatus) -> NewEvent {
    NewEvent {
        device: status.id.clone(),
        kind: DEVICE_STATUS.to_string(),
        chat: String::new(),
        dedup: None,
        at: now(),
        data: json!({
            "state": status.state.name(),
            "previous": previous,
            "jid": status.jid,
            "lid": status.lid,
            "push_name": status.push_name,
        }),
    }
}

/// The state a device was last recorded in, parsed back; unknown names read as unlinked.
pub fn recorded_state(record: &DeviceRecord) -> DeviceState {
    record.state.parse().unwrap_or(DeviceState::Unlinked)
}

pub(super) fn list(conn: &Conn<'_>, tenant: &str) -> Result<Vec<DeviceRecord>, StoreError> {
    conn.query(LIST, params![tenant], read)
}

/// The devices of tenant `?1`, by id, in [`record`]'s columns.
const LIST: &str = "SELECT id, tenant_id, state, jid, lid, push_name, created_at, updated_at FROM devices
                    WHERE tenant_id = ?1 ORDER BY id";

/// The device `id` of `tenant` ([`StoreError::NotFound`] if either does not exist).
pub(super) fn get(conn: &Conn<'_>, tenant: &str, id: &str) -> Result<DeviceRecord, StoreError> {
    tenants::require(conn, tenant)?;
    conn.query_opt(
        "SELECT id, tenant_id, state, jid, lid, push_name, created_at, updated_at FROM devices
         WHERE tenant_id = ?1 AND id = ?2",
        params![tenant, id],
        read,
    )?
    .ok_or_else(|| device_not_found(tenant, id))
}

/// [`record`] owned, as a function that reads a row of any lifetime (`record`'s lifetime is
/// bound by its `Column` bound, so it cannot be passed as one).
fn read(row: &Row<'_>) -> Result<DeviceRecord, StoreError> {
    record(row)
}

/// The device of `row`, its text owned or borrowed from the row.
fn record<'r, S: Column<'r>>(row: &'r Row<'_>) -> Result<DeviceRecord<S>, StoreError> {
    Ok(DeviceRecord {
        id: row.get(0)?,
        tenant: row.get(1)?,
        state: row.get(2)?,
        jid: row.get(3)?,
        lid: row.get(4)?,
        push_name: row.get(5)?,
        created_at: row.get(6)?,
        updated_at: row.get(7)?,
    })
}

fn device_not_found(tenant: &str, id: &str) -> StoreError {
    StoreError::NotFound(format!("tenant `{tenant}` has no device `{id}`"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tests::{acme, on_both};
    use crate::users::NewUser;

    fn status(id: &str, state: DeviceState, jid: Option<&str>) -> DeviceStatus {
        DeviceStatus { id: id.into(), state, jid: jid.map(Into::into), lid: None, push_name: None }
    }

    /// `status` of an `acme` device, reported where no lease guards it.
    fn report(status: DeviceStatus) -> StatusReport {
        StatusReport { tenant: "acme".into(), status, under: LeaseEpoch::default() }
    }

    /// `device` with its text copied.
    fn owned(device: DeviceRecord<&str>) -> DeviceRecord {
        let text = |text: &str| text.to_string();
        DeviceRecord {
            id: text(device.id),
            tenant: text(device.tenant),
            state: text(device.state),
            jid: device.jid.map(text),
            lid: device.lid.map(text),
            push_name: device.push_name.map(text),
            created_at: text(device.created_at),
            updated_at: text(device.updated_at),
        }
    }

    #[test]
    fn a_live_status_stands_for_the_recorded_state_and_identity() {
        let recorded = DeviceRecord {
            id: "main",
            tenant: "acme",
            state: "connected",
            jid: Some("6285550000001@s.whatsapp.net"),
            lid: Some("900000000000001@lid"),
            push_name: Some("Acme"),
            created_at: "2026-12-01T00:00:00Z",
            updated_at: "2026-12-02T00:00:00Z",
        };
        let status = DeviceStatus {
            id: "main".into(),
            state: DeviceState::LoggedOut,
            jid: None,
            lid: Some("900000000000002@lid".into()),
            push_name: Some("Acme Support".into()),
        };
        let expected = DeviceRecord {
            state: "logged-out",
            jid: None,
            lid: Some("900000000000002@lid"),
            push_name: Some("Acme Support"),
            ..recorded.clone()
        };
        assert_eq!(recorded.clone().live(&status), expected);
        assert_eq!(owned(recorded).live(&status), owned(expected), "owned text alike");
    }

    on_both! {
    fn the_devices_whose_session_stayed_behind_are_recorded_unlinked(store) {
        let store = acme(store);
        for id in ["main", "backup"] {
            store.create_device("acme", id).unwrap();
            let linked = status(id, DeviceState::Connected, Some("6285550000001@s.whatsapp.net"));
            store.record_device_statuses(&[report(linked)]).unwrap();
        }
        let stayed = [("acme".to_string(), "main".to_string()), ("acme".to_string(), "gone".to_string())];
        assert_eq!(store.unlink_devices(&stayed).unwrap(), 1, "only devices there are");
        let devices: Vec<_> = store.devices("acme").unwrap().into_iter().map(|d| (d.id, d.state, d.jid)).collect();
        assert_eq!(
            devices,
            [
                ("backup".into(), "connected".into(), Some("6285550000001@s.whatsapp.net".into())),
                ("main".into(), "unlinked".into(), None)
            ]
        );
    }

    fn a_device_is_created_unlinked_and_reads_back(store) {
        let store = acme(store);
        let created = store.create_device("acme", "main").unwrap();
        assert_eq!(
            (created.tenant.as_str(), created.state.as_str(), created.jid.as_deref()),
            ("acme", "unlinked", None)
        );
        assert_eq!(recorded_state(&created), DeviceState::Unlinked);
        assert_eq!(store.device("acme", "main").unwrap(), created);
        store.create_device("acme", "backup").unwrap();
        let ids: Vec<String> = store.devices("acme").unwrap().into_iter().map(|d| d.id).collect();
        assert_eq!(ids, ["backup", "main"]);
    }

    fn each_device_shows_what_devices_answers_in_its_order(store) {
        let store = acme(store);
        for id in ["main", "backup"] {
            store.create_device("acme", id).unwrap();
        }
        let linked = status("main", DeviceState::Connected, Some("6285550000001@s.whatsapp.net"));
        store.record_device_statuses(&[report(linked)]).unwrap();
        let mut shown = Vec::new();
        store.each_device("acme", |device| shown.push(owned(device))).unwrap();
        assert_eq!(shown, store.devices("acme").unwrap());
        let ids: Vec<&str> = shown.iter().map(|device| device.id.as_str()).collect();
        assert_eq!(ids, ["backup", "main"]);
        let missing = store.each_device("globex", |_| panic!("a tenant that does not exist has no device"));
        assert!(matches!(missing, Err(StoreError::NotFound(_))), "{missing:?}");
    }

    fn a_duplicate_or_a_case_twin_is_a_conflict_and_bad_ids_are_invalid(store) {
        let store = acme(store);
        store.create_device("acme", "main").unwrap();
        assert!(matches!(store.create_device("acme", "main"), Err(StoreError::Conflict(_))));
        assert!(matches!(store.create_device("acme", "Main"), Err(StoreError::Conflict(_))), "a case twin");
        assert!(matches!(store.create_device("acme", "../main"), Err(StoreError::Invalid(_))));
        assert!(matches!(store.create_device("globex", "main"), Err(StoreError::NotFound(_))), "no such tenant");
        store.create_tenant(crate::tenants::NewTenant { id: "globex".into(), ..Default::default() }).unwrap();
        store.create_device("globex", "main").unwrap();
        assert!(matches!(store.device("acme", "other"), Err(StoreError::NotFound(_))));
        let every: Vec<(String, String)> = store.every_device().unwrap().into_iter().map(|d| (d.tenant, d.id)).collect();
        assert_eq!(every, [("acme".into(), "main".into()), ("globex".into(), "main".into())]);
    }

    fn the_latest_status_of_a_device_is_recorded_and_a_deleted_device_stays_deleted(store) {
        let store = acme(store);
        store.create_device("acme", "main").unwrap();
        store.create_device("acme", "gone").unwrap();
        store.delete_device("acme", "gone").unwrap();
        let jid = Some("6281234567890@s.whatsapp.net");
        let changes = [
            report(status("main", DeviceState::Connecting, None)),
            report(status("gone", DeviceState::Connected, jid)),
            report(status("main", DeviceState::LoggedOut, jid)),
        ];
        let events = store.record_device_statuses(&changes).unwrap();
        let main = store.device("acme", "main").unwrap();
        assert_eq!((main.state.as_str(), main.jid.as_deref()), ("logged-out", jid));
        assert_eq!(recorded_state(&main), DeviceState::LoggedOut);
        assert!(matches!(store.device("acme", "gone"), Err(StoreError::NotFound(_))));

        // Each change of state is an event of the device, numbered in the device's own (empty) chat.
        let seen: Vec<_> =
            events.iter().map(|e| (e.kind.as_str(), e.device.as_str(), e.chat.as_str(), e.seq)).collect();
        assert_eq!(seen, [("device.status", "main", "", 1), ("device.status", "main", "", 2)]);
        assert_eq!(
            events[1].data,
            json!({"state": "logged-out", "previous": "connecting", "jid": jid, "lid": null, "push_name": null})
        );
        // A change of identity or name alone is no event.
        let renamed = DeviceStatus { push_name: Some("Acme".into()), ..status("main", DeviceState::LoggedOut, jid) };
        assert_eq!(store.record_device_statuses(&[report(renamed)]).unwrap(), []);
        assert_eq!(store.device("acme", "main").unwrap().push_name.as_deref(), Some("Acme"));
    }

    fn a_status_reported_under_an_earlier_lease_is_left_out(store) {
        let store = acme(store);
        store.create_device("acme", "main").unwrap();
        let jid = Some("6281234567890@s.whatsapp.net");
        let under = |lease: i64, epoch: i64, state: DeviceState| StatusReport {
            under: LeaseEpoch { lease, epoch },
            ..report(status("main", state, jid))
        };
        let recorded = |store: &Store| store.device("acme", "main").unwrap().state;

        // The node that took the device over (epoch 2) records it connected; the node that
        // ran it before (epoch 1) and resumed after a pause reports it disconnected: left out,
        // with no event, in a batch of its own or beside the new owner's report.
        assert_eq!(store.record_device_statuses(&[under(7, 2, DeviceState::Connected)]).unwrap().len(), 1);
        assert_eq!(store.record_device_statuses(&[under(7, 1, DeviceState::Disconnected)]).unwrap(), []);
        assert_eq!(recorded(&store), "connected");
        let batch = [under(7, 2, DeviceState::Connecting), under(7, 1, DeviceState::Unlinked)];
        let events = store.record_device_statuses(&batch).unwrap();
        assert_eq!(events.iter().map(|e| e.data["state"].clone()).collect::<Vec<_>>(), [json!("connecting")]);
        assert_eq!(recorded(&store), "connecting");

        // The owner's reports, and those of a later owner, are recorded.
        assert_eq!(store.record_device_statuses(&[under(7, 2, DeviceState::Connected)]).unwrap().len(), 1);
        assert_eq!(store.record_device_statuses(&[under(7, 3, DeviceState::LoggedOut)]).unwrap().len(), 1);
        assert_eq!(recorded(&store), "logged-out");
        assert_eq!(store.record_device_statuses(&[under(7, 2, DeviceState::Connected)]).unwrap(), []);

        // A device registered again has a lease of its own, numbered higher, whose epochs
        // start again: its reports are recorded, and the former lease's are left out.
        assert_eq!(store.record_device_statuses(&[under(9, 1, DeviceState::Connecting)]).unwrap().len(), 1);
        assert_eq!(store.record_device_statuses(&[under(7, 3, DeviceState::Banned)]).unwrap(), []);
        assert_eq!(recorded(&store), "connecting");
    }

    fn deleting_a_device_takes_it_from_its_users(store) {
        let store = acme(store);
        store.create_device("acme", "main").unwrap();
        store.create_device("acme", "backup").unwrap();
        let devices = vec!["main".to_string(), "backup".to_string()];
        let ops = store.create_user("acme", NewUser { devices, ..Default::default() }).unwrap();
        let only_main = store.create_user("acme", NewUser { devices: vec!["main".into()], ..Default::default() });
        let only_main = only_main.unwrap();
        store.create_tenant(crate::tenants::NewTenant { id: "globex".into(), ..Default::default() }).unwrap();
        store.create_device("globex", "main").unwrap();
        let other = store.create_user("globex", NewUser { devices: vec!["main".into()], ..Default::default() });
        let other = other.unwrap();
        store.delete_device("acme", "main").unwrap();
        assert_eq!(store.user("acme", &ops.id).unwrap().devices, ["backup"]);
        assert!(store.user("acme", &only_main.id).unwrap().devices.is_empty());
        assert_eq!(store.user("globex", &other.id).unwrap().devices, ["main"], "another tenant's device of that id");
        let stored = store
            .transaction(|conn| conn.query_value::<String>("SELECT devices FROM users WHERE id = ?1", params![ops.id]))
            .unwrap();
        assert_eq!(stored, r#"["backup"]"#, "the list as the users module writes it");
        assert!(matches!(store.delete_device("acme", "main"), Err(StoreError::NotFound(_))));
    }
    }
}

//! Webhooks: a tenant's events (the [`events`](crate::events) outbox) delivered to HTTP
//! endpoints, with a delivery log and dead letters.
//!
//! Each webhook keeps a position in the outbox: every event up to it was delivered, given up
//! on or not the webhook's. The delivery service (in the host) asks for the [next
//! event](Store::next_delivery_after) the webhook takes (its device, its types) after that
//! position, delivers it, logs each [attempt](Store::record_attempt), and then moves the
//! position past it: [delivered], or [dead-lettered](Store::dead_letter) when it gives up. The
//! position only moves forward, so a crash before the move delivers the event again (at least
//! once) and never skips one.
//!
//! Looking for the next event only reads: a webhook that has nothing to deliver writes nothing,
//! however often it looks. Events it does not take stay behind its position until the next
//! move passes them; meanwhile the caller starts each look after the [end](Next::Idle) its
//! previous look reached, so they are not read again.
//!
//! A new webhook starts at the current end of the outbox: it delivers the events recorded
//! after its creation. A webhook of one device goes with the device; a webhook's log and dead
//! letters go with it, and a dead letter goes with its event.
//!
//! [delivered]: Store::delivered

use serde::{Deserialize, Serialize};

use super::{DatabaseError, Store, StoreError, check_identifier, devices, events, from_json, now, tenants, to_json};
use crate::db::{Conn, Row, params};
use crate::events::{EVENT_TYPES, EventRecord};
use crate::routes::ComponentRef;

/// The most webhooks a tenant may have.
pub const MAX_WEBHOOKS: usize = 20;

/// The most bytes a webhook's URL may have.
pub const MAX_URL_BYTES: usize = 2048;

/// How many attempts of a webhook its delivery log keeps (the newest).
const KEPT_ATTEMPTS: i64 = 1000;

/// A webhook to create: the admin API's request body, and the secret its caller makes (a
/// request cannot choose one).
#[derive(Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewWebhook {
    /// See [`WebhookRecord::url`].
    pub url: String,
    /// See [`WebhookRecord::device`].
    #[serde(default, deserialize_with = "crate::present")]
    pub device: Option<String>,
    /// See [`WebhookRecord::events`].
    #[serde(default)]
    pub events: Vec<String>,
    /// See [`WebhookRecord::secret`].
    #[serde(skip)]
    pub secret: String,
}

/// A webhook as stored. Serialize skips `secret` (it is shown once, by the caller, at creation),
/// and so does Debug: a log line never carries it.
#[derive(Clone, PartialEq, Serialize)]
pub struct WebhookRecord {
    /// UUID v4.
    pub id: String,
    /// The tenant whose events it delivers.
    pub tenant: String,
    /// Where events are delivered: an `http://` or `https://` URL, or — for an event handler —
    /// one of the tenant's deployed components that exports `waedge:gateway/events`
    /// (`component:NAME`: its active version); see [`WebhookRecord::handler`].
    pub url: String,
    /// The device whose events it delivers; `None`: every device of the tenant.
    pub device: Option<String>,
    /// The event types it delivers; empty: every type.
    pub events: Vec<String>,
    /// The key deliveries are signed with (16 to 256 printable ASCII characters); empty for an
    /// event handler, whose events never leave the process.
    #[serde(skip)]
    pub secret: String,
    /// When it was created (RFC 3339).
    pub created_at: String,
}

impl NewWebhook {
    /// The deployed component `url` names (an event handler); `None` for an endpoint, and
    /// [`StoreError::Invalid`] when what follows `component:` is no component name.
    pub fn handler(&self) -> Result<Option<ComponentRef>, StoreError> {
        let Some(name) = self.url.strip_prefix(HANDLER_PREFIX) else {
            return Ok(None);
        };
        check_identifier("url: the component", name)?;
        Ok(Some(ComponentRef::Deployed(name.to_string())))
    }
}

impl WebhookRecord {
    /// The component events are handed to, when the webhook is an event handler (its `url`
    /// names a component); `None` for an HTTP endpoint.
    pub fn handler(&self) -> Option<ComponentRef> {
        handler(&self.url)
    }
}

/// The deployed component `url` names (`component:NAME`), if it names one rather than an
/// `http://` or `https://` endpoint.
fn handler(url: &str) -> Option<ComponentRef> {
    url.strip_prefix(HANDLER_PREFIX).map(|name| ComponentRef::Deployed(name.to_string()))
}

/// What a webhook's `url` starts with when it names one of the tenant's components.
const HANDLER_PREFIX: &str = "component:";

impl std::fmt::Debug for NewWebhook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let NewWebhook { url, device, events, secret: _ } = self;
        f.debug_struct("NewWebhook").field("url", url).field("device", device).field("events", events).finish()
    }
}

impl std::fmt::Debug for WebhookRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let WebhookRecord { id, tenant, url, device, events, secret: _, created_at } = self;
        f.debug_struct("WebhookRecord")
            .field("id", id)
            .field("tenant", tenant)
            .field("url", url)
            .field("device", device)
            .field("events", events)
            .field("created_at", created_at)
            .finish()
    }
}

/// The next event a webhook is to deliver, with its place in the outbox.
#[derive(Debug, Clone, PartialEq)]
pub struct Pending {
    /// The event's position in the outbox: give it to [`Store::delivered`] or
    /// [`Store::dead_letter`] once done with the event.
    pub position: i64,
    /// The event.
    pub event: EventRecord,
}

/// What a look at the outbox found for a webhook (see [`Store::next_delivery_after`]).
#[derive(Debug, Clone, PartialEq)]
pub enum Next {
    /// The next event the webhook takes.
    Pending(Box<Pending>),
    /// It takes no event up to this position, the end of the outbox when it looked: the next
    /// look may start after it.
    Idle(i64),
}

/// One delivery attempt, as the delivery log records it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Attempt {
    /// The id of the event delivered.
    pub event_id: String,
    /// Which attempt at the event it was: 1, 2, …
    pub attempt: u32,
    /// The HTTP status the endpoint answered; `None`: no answer.
    pub status: Option<u16>,
    /// What went wrong, if anything did.
    pub error: Option<String>,
    /// When it was made (RFC 3339).
    pub at: String,
    /// How long it took, in milliseconds.
    pub millis: u64,
}

/// An event a webhook gave up on.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DeadLetter {
    /// The event.
    pub event: EventRecord,
    /// How many attempts were made.
    pub attempts: u32,
    /// The last attempt's error.
    pub error: String,
    /// When the webhook gave up (RFC 3339).
    pub at: String,
}

/// What a delivery attempt led to (see [`Store::record_delivery`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Outcome<'a> {
    /// Another attempt follows: the position stays.
    Retry,
    /// The endpoint took the event: the position moves past it.
    Delivered,
    /// The event becomes a dead letter with this error, and the position moves past it.
    GaveUp(&'a str),
}

impl Store {
    /// Creates a webhook of `tenant`. Checks: url is `http://` or `https://` with a host, at
    /// most [`MAX_URL_BYTES`], or `component:NAME` with a valid component name (an event
    /// handler, whose `secret` is ignored: none is kept); `device`, if given, exists (NotFound otherwise); each of
    /// `events` is one of [`EVENT_TYPES`] and none repeats; `secret` has 16 to 256 bytes of
    /// printable ASCII. At most [`MAX_WEBHOOKS`] per tenant (Conflict beyond). A new webhook
    /// starts at the current end of the outbox: it delivers the events recorded after its
    /// creation.
    pub fn create_webhook(&self, tenant: &str, mut new: NewWebhook) -> Result<WebhookRecord, StoreError> {
        check_types(&new.events)?;
        if new.handler()?.is_some() {
            new.secret.clear();
        } else {
            check_url(&new.url)?;
            check_secret(&new.secret)?;
        }
        let id = uuid::Uuid::new_v4().to_string();
        self.transaction(|tx| {
            tenants::require(tx, tenant)?;
            if let Some(device) = &new.device {
                devices::get(tx, tenant, device).map_err(|error| match error {
                    StoreError::NotFound(message) => StoreError::NotFound(format!(
                        "{message}: create it first, or leave `device` out to deliver the events of every device"
                    )),
                    other => other,
                })?;
            }
            let count: i64 = tx.query_value("SELECT count(*) FROM webhooks WHERE tenant_id = ?1", params![tenant])?;
            if count >= MAX_WEBHOOKS as i64 {
                return Err(StoreError::Conflict(format!(
                    "tenant `{tenant}` has {count} webhooks, the most a tenant may have: delete one first"
                )));
            }
            tx.execute(
                "INSERT INTO webhooks (id, tenant_id, device, url, events, secret, position, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                params![id, tenant, new.device, new.url, to_json(&new.events), new.secret, events::end(tx)?, now()],
            )?;
            get(tx, tenant, &id)
        })
    }

    /// The webhooks of `tenant` (NotFound for an unknown tenant), oldest first.
    pub fn webhooks(&self, tenant: &str) -> Result<Vec<WebhookRecord>, StoreError> {
        self.read(|conn| {
            tenants::require(conn, tenant)?;
            conn.query(
                &format!("SELECT {COLUMNS} FROM webhooks WHERE tenant_id = ?1 ORDER BY rowid"),
                params![tenant],
                read,
            )
        })
    }

    /// Every webhook of every tenant (the delivery service starts one worker each), by
    /// tenant, oldest first.
    pub fn all_webhooks(&self) -> Result<Vec<WebhookRecord>, StoreError> {
        self.read(|conn| conn.query(&format!("SELECT {COLUMNS} FROM webhooks ORDER BY tenant_id, rowid"), &[], read))
    }

    /// One webhook of `tenant`.
    pub fn webhook(&self, tenant: &str, id: &str) -> Result<WebhookRecord, StoreError> {
        self.read(|conn| get(conn, tenant, id))
    }

    /// Deletes a webhook with its log and dead letters.
    pub fn delete_webhook(&self, tenant: &str, id: &str) -> Result<(), StoreError> {
        self.transaction(|tx| {
            get(tx, tenant, id)?;
            tx.execute("DELETE FROM webhooks WHERE id = ?1", params![id])?;
            Ok(())
        })
    }

    /// The first event after the webhook's position that it takes (its device, its types), if
    /// any. NotFound when the webhook is gone. Only reads (see [`Store::next_delivery_after`]).
    pub fn next_delivery(&self, webhook: &str) -> Result<Option<Pending>, StoreError> {
        Ok(match self.next_delivery_after(webhook, 0)? {
            Next::Pending(pending) => Some(*pending),
            Next::Idle(_) => None,
        })
    }

    /// The first event the webhook takes (its device, its types) after both its position and
    /// `seen`, or the end of the outbox when there is none. `seen` is the end a previous look
    /// for the webhook returned as [`Next::Idle`] (0 for none): the webhook took no event up to
    /// it, and none is appended there later (an event comes after the end), so this look starts
    /// after it. NotFound when the webhook is gone.
    ///
    /// It only reads, in a read transaction that takes no write lock: the position does
    /// not move past the events the webhook does not take until the event after them is
    /// delivered or given up on ([`Store::record_delivery`]).
    pub fn next_delivery_after(&self, webhook: &str, seen: i64) -> Result<Next, StoreError> {
        self.read(|conn| {
            let (hook, position) = find(conn, webhook)?;
            // The types, a JSON array, as rows.
            let types = conn.pick("SELECT value FROM json_each(?4)", "SELECT json_array_elements_text(?4::text::json)");
            let select = format!(
                "SELECT events.position, {} FROM events
                 WHERE tenant_id = ?1 AND position > ?2 AND (CAST(?3 AS TEXT) IS NULL OR device = ?3)
                   AND (?4 = '[]' OR kind IN ({types}))
                 ORDER BY position LIMIT 1",
                events::COLUMNS
            );
            let next = conn.query_opt(
                &select,
                params![hook.tenant, position.max(seen), hook.device, to_json(&hook.events)],
                |row| Ok(Pending { position: row.get(0)?, event: events::read(row, 1)? }),
            )?;
            Ok(match next {
                Some(pending) => Next::Pending(Box::new(pending)),
                None => Next::Idle(events::end(conn)?),
            })
        })
    }

    /// Appends an attempt to the webhook's delivery log, keeping the newest 1000 of the webhook.
    pub fn record_attempt(&self, webhook: &str, attempt: &Attempt) -> Result<(), StoreError> {
        self.transaction(|tx| append_attempt(tx, webhook, attempt))
    }

    /// Records `attempt` at the event at `position` and what it led to, in one transaction:
    /// the webhook's position moves past the event when it was delivered or given up.
    pub fn record_delivery(
        &self,
        webhook: &str,
        position: i64,
        attempt: &Attempt,
        outcome: Outcome<'_>,
    ) -> Result<(), StoreError> {
        self.transaction(|tx| {
            append_attempt(tx, webhook, attempt)?;
            match outcome {
                Outcome::Retry => Ok(()),
                Outcome::Delivered => advance(tx, webhook, position),
                Outcome::GaveUp(error) => give_up(tx, webhook, position, attempt.attempt, error),
            }
        })
    }

    /// The webhook delivered (or the caller gave up on) everything up to `position`: its
    /// position moves there, never back. A position past the end of the outbox is refused.
    pub fn delivered(&self, webhook: &str, position: i64) -> Result<(), StoreError> {
        self.transaction(|tx| advance(tx, webhook, position))
    }

    /// Gives up on the event at `position` after `attempts` with `error`: it becomes a dead
    /// letter, and the position moves past it — in one transaction. An event that is gone
    /// meanwhile (with its device) leaves no dead letter; the position moves all the same.
    pub fn dead_letter(&self, webhook: &str, position: i64, attempts: u32, error: &str) -> Result<(), StoreError> {
        self.transaction(|tx| give_up(tx, webhook, position, attempts, error))
    }

    /// The newest `limit` attempts of a webhook of `tenant`, newest first.
    pub fn attempts(&self, tenant: &str, webhook: &str, limit: usize) -> Result<Vec<Attempt>, StoreError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.read(|conn| {
            get(conn, tenant, webhook)?;
            conn.query(
                "SELECT event_id, attempt, status, error, at, millis FROM webhook_attempts
                 WHERE webhook_id = ?1 ORDER BY id DESC LIMIT ?2",
                params![webhook, limit],
                |row| {
                    Ok(Attempt {
                        event_id: row.get(0)?,
                        attempt: narrow(1, row.get(1)?)?,
                        status: row.get::<Option<i64>>(2)?.map(|status| narrow(2, status)).transpose()?,
                        error: row.get(3)?,
                        at: row.get(4)?,
                        millis: row.get::<i64>(5)?.max(0) as u64,
                    })
                },
            )
        })
    }

    /// The dead letters of a webhook of `tenant`, oldest first.
    pub fn dead_letters(&self, tenant: &str, webhook: &str) -> Result<Vec<DeadLetter>, StoreError> {
        self.read(|conn| {
            get(conn, tenant, webhook)?;
            dead_letters(conn, webhook, None)
        })
    }

    /// The dead letter of event `event_id` (NotFound, saying to list the dead letters, when
    /// there is none).
    pub fn dead_letter_of(&self, tenant: &str, webhook: &str, event_id: &str) -> Result<DeadLetter, StoreError> {
        self.read(|conn| {
            get(conn, tenant, webhook)?;
            dead_letters(conn, webhook, Some(event_id))?.pop().ok_or_else(|| no_dead_letter(webhook, event_id))
        })
    }

    /// Removes the dead letter of `event_id` (it was delivered on replay).
    pub fn remove_dead_letter(&self, tenant: &str, webhook: &str, event_id: &str) -> Result<(), StoreError> {
        self.transaction(|tx| {
            get(tx, tenant, webhook)?;
            let removed = tx.execute(
                "DELETE FROM dead_letters WHERE webhook_id = ?1
                 AND position = (SELECT position FROM events WHERE id = ?2 AND tenant_id = ?3)",
                params![webhook, event_id, tenant],
            )?;
            if removed == 0 { Err(no_dead_letter(webhook, event_id)) } else { Ok(()) }
        })
    }
}

/// The columns of a webhook that [`read`] reads, in its order.
const COLUMNS: &str = "id, tenant_id, url, device, events, secret, created_at";

fn read(row: &Row<'_>) -> Result<WebhookRecord, StoreError> {
    Ok(WebhookRecord {
        id: row.get(0)?,
        tenant: row.get(1)?,
        url: row.get(2)?,
        device: row.get(3)?,
        events: from_json(&row.get::<String>(4)?)?,
        secret: row.get(5)?,
        created_at: row.get(6)?,
    })
}

/// The event handlers of `tenant`: (webhook id, component) for each webhook naming a component.
pub(crate) fn handlers(conn: &Conn<'_>, tenant: &str) -> Result<Vec<(String, ComponentRef)>, StoreError> {
    let rows =
        conn.query("SELECT id, url FROM webhooks WHERE tenant_id = ?1 ORDER BY rowid", params![tenant], |row| {
            Ok((row.get::<String>(0)?, row.get::<String>(1)?))
        })?;
    Ok(rows.into_iter().filter_map(|(id, url)| handler(&url).map(|component| (id, component))).collect())
}

/// The webhook `id` of `tenant` ([`StoreError::NotFound`] if either does not exist).
fn get(conn: &Conn<'_>, tenant: &str, id: &str) -> Result<WebhookRecord, StoreError> {
    tenants::require(conn, tenant)?;
    conn.query_opt(
        &format!("SELECT {COLUMNS} FROM webhooks WHERE id = ?1 AND tenant_id = ?2"),
        params![id, tenant],
        read,
    )?
    .ok_or_else(|| StoreError::NotFound(format!("tenant `{tenant}` has no webhook `{id}`")))
}

/// The webhook `id`, whatever its tenant, with its position.
fn find(conn: &Conn<'_>, id: &str) -> Result<(WebhookRecord, i64), StoreError> {
    conn.query_opt(&format!("SELECT {COLUMNS}, position FROM webhooks WHERE id = ?1"), params![id], |row| {
        Ok((read(row)?, row.get(7)?))
    })?
    .ok_or_else(|| gone(id))
}

/// Moves the position of `webhook` to `position`, unless it is there or past it already.
fn advance(tx: &Conn<'_>, webhook: &str, position: i64) -> Result<(), StoreError> {
    let end = events::end(tx)?;
    if position > end {
        return Err(StoreError::Invalid(format!(
            "position {position} is past the end of the outbox ({end}): give the position next_delivery returned"
        )));
    }
    let forward = "UPDATE webhooks SET position = CASE WHEN position < ?2 THEN ?2 ELSE position END WHERE id = ?1";
    match tx.execute(forward, params![webhook, position])? {
        0 => Err(gone(webhook)),
        _ => Ok(()),
    }
}

/// Appends `attempt` to the delivery log of `webhook`, keeping its newest [`KEPT_ATTEMPTS`].
fn append_attempt(tx: &Conn<'_>, webhook: &str, attempt: &Attempt) -> Result<(), StoreError> {
    find(tx, webhook)?;
    tx.execute(
        "INSERT INTO webhook_attempts (webhook_id, event_id, attempt, status, error, at, millis)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params![
            webhook,
            attempt.event_id,
            attempt.attempt,
            attempt.status.map(i64::from),
            attempt.error,
            attempt.at,
            i64::try_from(attempt.millis).unwrap_or(i64::MAX)
        ],
    )?;
    tx.execute(
        "DELETE FROM webhook_attempts WHERE webhook_id = ?1 AND id <= (
             SELECT id FROM webhook_attempts WHERE webhook_id = ?1 ORDER BY id DESC LIMIT 1 OFFSET ?2
         )",
        params![webhook, KEPT_ATTEMPTS],
    )?;
    Ok(())
}

/// Makes the event at `position` a dead letter of `webhook` (unless it is gone) and moves the
/// webhook's position past it.
fn give_up(tx: &Conn<'_>, webhook: &str, position: i64, attempts: u32, error: &str) -> Result<(), StoreError> {
    let (hook, _) = find(tx, webhook)?;
    let owner: Option<String> =
        tx.query_opt("SELECT tenant_id FROM events WHERE position = ?1", params![position], |row| row.get(0))?;
    match owner {
        Some(owner) if owner != hook.tenant => {
            return Err(StoreError::Invalid(format!(
                "the event at position {position} is not an event of tenant `{}`: give the position \
                 next_delivery returned for webhook `{webhook}`",
                hook.tenant
            )));
        }
        Some(_) => {
            tx.execute(
                "INSERT INTO dead_letters (webhook_id, position, attempts, error, at) VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT (webhook_id, position) DO UPDATE
                 SET attempts = excluded.attempts, error = excluded.error, at = excluded.at",
                params![webhook, position, attempts, error, now()],
            )?;
        }
        None => {}
    }
    advance(tx, webhook, position)
}

/// The dead letters of `webhook`, oldest first; only that of `event` when given.
fn dead_letters(conn: &Conn<'_>, webhook: &str, event: Option<&str>) -> Result<Vec<DeadLetter>, StoreError> {
    let select = format!(
        "SELECT dead_letters.attempts, dead_letters.error, dead_letters.at, {} FROM dead_letters
         JOIN events ON events.position = dead_letters.position
         WHERE dead_letters.webhook_id = ?1 AND (CAST(?2 AS TEXT) IS NULL OR events.id = ?2)
         ORDER BY dead_letters.position",
        events::COLUMNS
    );
    conn.query(&select, params![webhook, event], |row| {
        Ok(DeadLetter {
            attempts: narrow(0, row.get(0)?)?,
            error: row.get(1)?,
            at: row.get(2)?,
            event: events::read(row, 3)?,
        })
    })
}

/// `value`, read from column `index`, as the narrower integer the store wrote there (an
/// attempt count, an HTTP status).
fn narrow<T: TryFrom<i64>>(index: usize, value: i64) -> Result<T, StoreError> {
    T::try_from(value).map_err(|_| DatabaseError::Column { index, problem: format!("{value} is out of range") }.into())
}

fn gone(webhook: &str) -> StoreError {
    StoreError::NotFound(format!("webhook `{webhook}` does not exist (it was deleted): stop delivering for it"))
}

fn no_dead_letter(webhook: &str, event: &str) -> StoreError {
    StoreError::NotFound(format!(
        "webhook `{webhook}` has no dead letter of event `{event}`: list its dead letters to see which it has"
    ))
}

/// [`StoreError::Invalid`] unless `url` is an `http://` or `https://` URL with a host, of at
/// most [`MAX_URL_BYTES`], without whitespace or control characters.
fn check_url(url: &str) -> Result<(), StoreError> {
    let invalid = |problem: String| Err(StoreError::Invalid(format!("url: {problem}")));
    let example = "e.g. `https://example.com/hooks/waedge`";
    if url.len() > MAX_URL_BYTES {
        return invalid(format!("{} bytes is too long: give at most {MAX_URL_BYTES}", url.len()));
    }
    if let Some(c) = url.chars().find(|c| c.is_whitespace() || c.is_control()) {
        return invalid(format!("`{url}` contains {c:?}: percent-encode it"));
    }
    if !url.is_ascii() {
        return invalid(format!("`{url}` is not ASCII: percent-encode it (and write a host name in punycode)"));
    }
    let Some((scheme, rest)) = url.split_once("://") else {
        return invalid(format!("`{url}` is not an absolute URL: give `http://` or `https://` and a host, {example}"));
    };
    if !scheme.eq_ignore_ascii_case("http") && !scheme.eq_ignore_ascii_case("https") {
        return invalid(format!("scheme `{scheme}` of `{url}`: use `http` or `https`"));
    }
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if authority.contains('@') {
        // Credentials in a URL would be stored and listed with it: an endpoint authenticates
        // the request by its signature.
        return invalid(format!(
            "`{url}` carries a user name or password: leave them out, the signature authenticates"
        ));
    }
    let host_port = authority;
    let (host, port) = match host_port.strip_prefix('[') {
        Some(bracketed) => match bracketed.split_once(']') {
            Some((ip, after)) => (ip, after.strip_prefix(':')),
            None => return invalid(format!("`{url}` has an unclosed `[` in its host")),
        },
        None => match host_port.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (host_port, None),
        },
    };
    if host.is_empty() {
        return invalid(format!("`{url}` has no host: give one, {example}"));
    }
    if let Some(port) = port
        && !port.is_empty()
        && port.parse::<u16>().map_or(true, |port| port == 0)
    {
        return invalid(format!("port `{port}` of `{url}`: give a number from 1 to 65535"));
    }
    Ok(())
}

/// [`StoreError::Invalid`] unless each of `types` is one of [`EVENT_TYPES`], once.
fn check_types(types: &[String]) -> Result<(), StoreError> {
    for (index, kind) in types.iter().enumerate() {
        if !EVENT_TYPES.contains(&kind.as_str()) {
            return Err(StoreError::Invalid(format!(
                "event type `{kind}` is unknown: use {}, or leave `events` empty for every type",
                EVENT_TYPES.join(", ")
            )));
        }
        if types[..index].contains(kind) {
            return Err(StoreError::Invalid(format!("event type `{kind}` is listed twice: list each type once")));
        }
    }
    Ok(())
}

/// [`StoreError::Invalid`] unless `secret` has 16 to 256 bytes of printable ASCII. The
/// message never shows the secret.
fn check_secret(secret: &str) -> Result<(), StoreError> {
    if !(16..=256).contains(&secret.len()) {
        return Err(StoreError::Invalid(format!(
            "secret: it has {} bytes; give 16 to 256 printable ASCII characters",
            secret.len()
        )));
    }
    if !secret.chars().all(|c| (' '..='~').contains(&c)) {
        return Err(StoreError::Invalid(
            "secret: it holds a character that is not printable ASCII; use only characters from ` ` to `~`".into(),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::NewEvent;
    use crate::tests::{acme, on_both};

    const SECRET: &str = "s3cret-of-16-chars";

    fn hook(url: &str) -> NewWebhook {
        NewWebhook { url: url.into(), device: None, events: vec![], secret: SECRET.into() }
    }

    /// Records an event of `kind` on `device` of acme and returns it.
    fn record(store: &Store, device: &str, kind: &str, message: &str) -> EventRecord {
        let event = NewEvent {
            device: device.into(),
            kind: kind.into(),
            chat: "6281234567890@s.whatsapp.net".into(),
            dedup: Some(message.into()),
            at: "2026-12-05T15:00:00Z".into(),
            data: serde_json::json!({ "message_id": message }),
        };
        store.append_events("acme", &[event]).unwrap().remove(0)
    }

    fn next(store: &Store, webhook: &str) -> Option<(i64, String)> {
        store.next_delivery(webhook).unwrap().map(|pending| (pending.position, pending.event.id))
    }

    fn position(store: &Store, webhook: &str) -> i64 {
        store
            .transaction(|conn| conn.query_value("SELECT position FROM webhooks WHERE id = ?1", params![webhook]))
            .unwrap()
    }

    fn rows(store: &Store, table: &str) -> i64 {
        store.transaction(|conn| conn.query_value(&format!("SELECT count(*) FROM {table}"), &[])).unwrap()
    }

    fn attempt(event: &str, n: u32) -> Attempt {
        Attempt {
            event_id: event.into(),
            attempt: n,
            status: Some(500),
            error: None,
            at: "2026-12-05T15:00:01Z".into(),
            millis: u64::from(n),
        }
    }

    on_both! {
    fn a_webhook_naming_a_component_is_an_event_handler_without_a_secret(store) {
        let store = acme(store);
        let created = store.create_webhook("acme", hook("component:auto-responder")).unwrap();
        assert_eq!(
            (created.secret.as_str(), created.handler()),
            ("", Some(ComponentRef::Deployed("auto-responder".into())))
        );
        let endpoint = store.create_webhook("acme", hook("https://example.com/in")).unwrap();
        assert_eq!(endpoint.handler(), None);
        let snapshot = store.snapshot().unwrap();
        let handlers = &snapshot.tenants.iter().find(|t| t.tenant.id == "acme").unwrap().event_handlers;
        assert_eq!(handlers, &[(created.id.clone(), ComponentRef::Deployed("auto-responder".into()))]);
        // Only a valid name of a deployed component: no built-in, native handler or file.
        for (url, says) in [
            ("component:", "component id ``"),
            ("component:a b", "component id `a b`"),
            ("builtin:devices-api", "not an absolute URL"),
            ("native:devices-profile", "not an absolute URL"),
            ("/srv/handler.wasm", "not an absolute URL"),
        ] {
            let refused = store.create_webhook("acme", hook(url)).unwrap_err().to_string();
            assert!(refused.contains("url: ") && refused.contains(says), "{url}: {refused}");
        }
    }

    fn a_webhook_reads_back_as_created_and_is_deleted_with_its_log_and_dead_letters(store) {
        let store = acme(store);
        store.create_device("acme", "main").unwrap();
        let new = NewWebhook {
            device: Some("main".into()),
            events: vec!["message.received".into()],
            ..hook("https://example.com/hooks/waedge?x=1")
        };
        let created = store.create_webhook("acme", new).unwrap();
        assert!(uuid::Uuid::parse_str(&created.id).is_ok(), "a UUID: {}", created.id);
        assert_eq!(
            (created.tenant.as_str(), created.url.as_str(), created.device.as_deref(), created.secret.as_str()),
            ("acme", "https://example.com/hooks/waedge?x=1", Some("main"), SECRET)
        );
        assert_eq!(created.events, ["message.received"]);
        assert_eq!(store.webhook("acme", &created.id).unwrap(), created);
        let second = store.create_webhook("acme", hook("http://127.0.0.1:8080")).unwrap();
        assert_eq!((second.device.as_deref(), second.events.len()), (None, 0), "every device, every type");
        assert_eq!(store.webhooks("acme").unwrap(), [created.clone(), second.clone()], "oldest first");
        store.create_tenant(crate::tenants::NewTenant { id: "globex".into(), ..Default::default() }).unwrap();
        let other = store.create_webhook("globex", hook("https://globex.example/in")).unwrap();
        assert_eq!(store.all_webhooks().unwrap(), [created.clone(), second.clone(), other.clone()]);
        assert!(store.webhooks("globex").unwrap() == [other.clone()]);
        assert!(matches!(store.webhook("acme", &other.id), Err(StoreError::NotFound(_))), "another tenant's");

        let event = record(&store, "main", "message.received", "A");
        store.record_attempt(&created.id, &attempt(&event.id, 1)).unwrap();
        store.dead_letter(&created.id, 1, 1, "HTTP 500").unwrap();
        assert_eq!((rows(&store, "webhook_attempts"), rows(&store, "dead_letters")), (1, 1));
        store.delete_webhook("acme", &created.id).unwrap();
        assert_eq!((rows(&store, "webhook_attempts"), rows(&store, "dead_letters")), (0, 0));
        assert_eq!(store.webhooks("acme").unwrap(), [second]);
        assert!(matches!(store.webhook("acme", &created.id), Err(StoreError::NotFound(_))));
        assert!(matches!(store.delete_webhook("acme", &created.id), Err(StoreError::NotFound(_))), "deleted once");
        let gone = store.next_delivery(&created.id).unwrap_err();
        assert!(matches!(gone, StoreError::NotFound(ref m) if m.contains("stop delivering")), "{gone}");
        assert!(matches!(store.record_attempt(&created.id, &attempt(&event.id, 2)), Err(StoreError::NotFound(_))));
        assert!(matches!(store.delivered(&created.id, 1), Err(StoreError::NotFound(_))));
        assert!(matches!(store.webhooks("nobody"), Err(StoreError::NotFound(_))));
    }

    fn invalid_webhooks_are_refused_with_what_to_change(store) {
        let store = acme(store);
        let refused = |new: NewWebhook| store.create_webhook("acme", new).unwrap_err().to_string();
        let too_long = format!("https://example.com/{}", "a".repeat(MAX_URL_BYTES));
        for (url, says) in [
            ("example.com/hooks", "is not an absolute URL"),
            ("ftp://example.com/hooks", "scheme `ftp`"),
            ("https://", "has no host"),
            ("https:///path", "has no host"),
            ("https://user:pass@example.com/", "carries a user name or password"),
            ("https://example.com:99999/", "port `99999`"),
            ("https://example.com/a b", "contains ' '"),
            ("https://exämple.com/", "is not ASCII"),
            ("https://[::1/", "unclosed `[`"),
            (too_long.as_str(), "2068 bytes is too long: give at most 2048"),
        ] {
            let message = refused(hook(url));
            assert!(message.starts_with("url: ") && message.contains(says), "{url}: {message}");
        }
        assert!(store.create_webhook("acme", hook("HTTPS://[::1]:8443/in")).is_ok(), "an IPv6 host and a port");
        let longest = format!("https://example.com/{}", "a".repeat(MAX_URL_BYTES - 20));
        assert!(store.create_webhook("acme", hook(&longest)).is_ok(), "2048 bytes");

        let unknown =
            store.create_webhook("acme", NewWebhook { device: Some("main".into()), ..hook("https://a.example") });
        let unknown = unknown.unwrap_err();
        assert!(matches!(unknown, StoreError::NotFound(ref m) if m.contains("create it first")), "{unknown}");
        assert_eq!(
            refused(NewWebhook { events: vec!["message.sent".into()], ..hook("https://a.example") }),
            "event type `message.sent` is unknown: use message.received, message.status, device.status, contact.linked, contact.name, group.updated, or leave `events` empty for every type"
        );
        let twice = vec!["message.received".into(), "message.received".into()];
        assert_eq!(
            refused(NewWebhook { events: twice, ..hook("https://a.example") }),
            "event type `message.received` is listed twice: list each type once"
        );
        assert_eq!(
            refused(NewWebhook { secret: "short".into(), ..hook("https://a.example") }),
            "secret: it has 5 bytes; give 16 to 256 printable ASCII characters"
        );
        let long = NewWebhook { secret: "x".repeat(257), ..hook("https://a.example") };
        assert_eq!(refused(long), "secret: it has 257 bytes; give 16 to 256 printable ASCII characters");
        let tab = refused(NewWebhook { secret: "0123456789abcdef\t".into(), ..hook("https://a.example") });
        assert!(tab.contains("not printable ASCII") && !tab.contains("0123456789abcdef"), "{tab}");
        let nobody = store.create_webhook("nobody", hook("https://a.example")).unwrap_err();
        assert!(matches!(nobody, StoreError::NotFound(ref m) if m == "tenant `nobody` does not exist"), "{nobody}");
        assert_eq!(store.webhooks("acme").unwrap().len(), 2, "only the valid ones");
    }

    fn a_tenant_has_at_most_20_webhooks(store) {
        let store = acme(store);
        for n in 0..MAX_WEBHOOKS {
            store.create_webhook("acme", hook(&format!("https://example.com/{n}"))).unwrap();
        }
        let refused = store.create_webhook("acme", hook("https://example.com/21")).unwrap_err();
        assert!(
            matches!(refused, StoreError::Conflict(ref m)
                if m == "tenant `acme` has 20 webhooks, the most a tenant may have: delete one first"),
            "{refused}"
        );
        assert_eq!(store.webhooks("acme").unwrap().len(), 20);
    }

    fn next_delivery_honours_the_device_the_types_and_the_position(store) {
        let store = acme(store);
        store.create_device("acme", "main").unwrap();
        store.create_device("acme", "backup").unwrap();
        let before = record(&store, "main", "message.received", "before");
        let every = store.create_webhook("acme", hook("https://example.com/every")).unwrap().id;
        let main = NewWebhook { device: Some("main".into()), ..hook("https://example.com/main") };
        let main = store.create_webhook("acme", main).unwrap().id;
        let typed = NewWebhook { events: vec!["message.received".into()], ..hook("https://example.com/typed") };
        let typed = store.create_webhook("acme", typed).unwrap().id;
        assert_eq!(next(&store, &every), None, "a new webhook does not see the event before it ({})", before.id);

        let backup = record(&store, "backup", "message.received", "B"); // position 2
        let other_type = record(&store, "main", "chat.updated", "C"); // position 3
        let received = record(&store, "main", "message.received", "D"); // position 4
        assert_eq!(next(&store, &every), Some((2, backup.id.clone())));
        assert_eq!(next(&store, &main), Some((3, other_type.id.clone())), "main's events only");
        assert_eq!(next(&store, &typed), Some((2, backup.id.clone())), "message.received only");
        let pending = store.next_delivery(&every).unwrap().unwrap();
        assert_eq!(pending, Pending { position: 2, event: backup.clone() }, "the event with its data");
        assert_eq!(next(&store, &every), Some((2, backup.id)), "the same until delivered");

        store.delivered(&every, 2).unwrap();
        assert_eq!(next(&store, &every), Some((3, other_type.id)));
        store.delivered(&typed, 2).unwrap();
        assert_eq!(next(&store, &typed), Some((4, received.id.clone())), "past the other type");
        store.delivered(&main, 4).unwrap();
        assert_eq!(next(&store, &main), None);

        record(&store, "backup", "message.received", "E"); // position 5: not main's
        assert_eq!(store.next_delivery_after(&main, 0).unwrap(), Next::Idle(5), "none up to the end");
        assert_eq!(position(&store, &main), 4, "looking moves nothing");
        let later = record(&store, "main", "message.received", "F");
        assert_eq!(next(&store, &main), Some((6, later.id)));
    }

    fn a_look_starts_after_the_end_the_last_one_reached_and_a_delivery_moves_past_the_events_skipped(store) {
        let store = acme(store);
        store.create_device("acme", "main").unwrap();
        let received = NewWebhook { events: vec!["message.received".into()], ..hook("https://example.com/in") };
        let webhook = store.create_webhook("acme", received).unwrap().id;
        let every = store.create_webhook("acme", hook("https://example.com/every")).unwrap().id;
        record(&store, "main", "message.status", "A");
        record(&store, "main", "message.status", "B");
        assert_eq!(store.next_delivery_after(&webhook, 0).unwrap(), Next::Idle(2));
        let taken = record(&store, "main", "message.received", "C");
        let Next::Pending(pending) = store.next_delivery_after(&webhook, 2).unwrap() else { panic!("C is pending") };
        assert_eq!((pending.position, &pending.event), (3, &taken));
        assert_eq!(next(&store, &every).map(|(at, _)| at), Some(1), "each webhook from its own position");
        assert_eq!(store.next_delivery_after(&every, 2).unwrap(), Next::Pending(pending.clone()), "after `seen`");

        store.record_delivery(&webhook, 3, &attempt(&taken.id, 1), Outcome::Delivered).unwrap();
        assert_eq!(position(&store, &webhook), 3, "past the skipped events too, in the same write");
        assert_eq!(store.next_delivery_after(&webhook, 0).unwrap(), Next::Idle(3));
    }

    fn the_position_never_moves_back_nor_past_the_end(store) {
        let store = acme(store);
        store.create_device("acme", "main").unwrap();
        let webhook = store.create_webhook("acme", hook("https://example.com/in")).unwrap().id;
        let events: Vec<EventRecord> =
            ["A", "B", "C"].iter().map(|m| record(&store, "main", "message.received", m)).collect();
        store.delivered(&webhook, 2).unwrap();
        store.delivered(&webhook, 1).unwrap();
        assert_eq!(position(&store, &webhook), 2);
        assert_eq!(next(&store, &webhook), Some((3, events[2].id.clone())));
        let refused = store.delivered(&webhook, 4).unwrap_err();
        assert!(matches!(refused, StoreError::Invalid(ref m) if m.starts_with("position 4 is past the end")));
        assert_eq!(position(&store, &webhook), 2);
    }

    fn a_dead_letter_keeps_the_event_and_the_position_moves_past_it(store) {
        let store = acme(store);
        store.create_device("acme", "main").unwrap();
        let webhook = store.create_webhook("acme", hook("https://example.com/in")).unwrap().id;
        let first = record(&store, "main", "message.received", "A");
        let second = record(&store, "main", "message.received", "B");
        store.dead_letter(&webhook, 1, 5, "HTTP 503").unwrap();
        assert_eq!(next(&store, &webhook), Some((2, second.id.clone())), "past the dead letter");

        let letters = store.dead_letters("acme", &webhook).unwrap();
        assert_eq!(letters.len(), 1);
        let letter = &letters[0];
        assert_eq!((letter.attempts, letter.error.as_str()), (5, "HTTP 503"));
        assert_eq!(letter.event, first, "the event with its data");
        assert_eq!(letter.event.data, serde_json::json!({ "message_id": "A" }));
        assert!(chrono::DateTime::parse_from_rfc3339(&letter.at).is_ok(), "{}", letter.at);
        assert_eq!(store.dead_letter_of("acme", &webhook, &first.id).unwrap(), letter.clone());

        let missing = store.dead_letter_of("acme", &webhook, &second.id).unwrap_err();
        let expected = format!(
            "webhook `{webhook}` has no dead letter of event `{}`: list its dead letters to see which it has",
            second.id
        );
        assert!(matches!(missing, StoreError::NotFound(ref m) if *m == expected), "{missing}");
        store.remove_dead_letter("acme", &webhook, &first.id).unwrap();
        assert!(store.dead_letters("acme", &webhook).unwrap().is_empty());
        assert!(matches!(store.dead_letter_of("acme", &webhook, &first.id), Err(StoreError::NotFound(_))));
        assert!(matches!(store.remove_dead_letter("acme", &webhook, &first.id), Err(StoreError::NotFound(_))));
        assert_eq!(next(&store, &webhook), Some((2, second.id)), "removing a dead letter moves nothing");
    }

    fn a_recorded_delivery_logs_the_attempt_and_moves_as_its_outcome_says(store) {
        let store = acme(store);
        store.create_device("acme", "main").unwrap();
        let webhook = store.create_webhook("acme", hook("https://example.com/in")).unwrap().id;
        let first = record(&store, "main", "message.received", "A");
        let second = record(&store, "main", "message.received", "B");
        let third = record(&store, "main", "message.received", "C");

        store.record_delivery(&webhook, 1, &attempt(&first.id, 1), Outcome::Retry).unwrap();
        assert_eq!(next(&store, &webhook), Some((1, first.id.clone())), "a retry stays");
        store.record_delivery(&webhook, 1, &attempt(&first.id, 2), Outcome::Delivered).unwrap();
        assert_eq!(next(&store, &webhook), Some((2, second.id.clone())), "delivered: past it");
        store.record_delivery(&webhook, 2, &attempt(&second.id, 3), Outcome::GaveUp("HTTP 400")).unwrap();
        assert_eq!(next(&store, &webhook), Some((3, third.id)), "given up: past it");

        let letters = store.dead_letters("acme", &webhook).unwrap();
        let letter: Vec<(&str, u32, &str)> =
            letters.iter().map(|l| (l.event.id.as_str(), l.attempts, l.error.as_str())).collect();
        assert_eq!(letter, [(second.id.as_str(), 3, "HTTP 400")]);
        let log: Vec<(String, u32)> =
            store.attempts("acme", &webhook, 10).unwrap().into_iter().map(|a| (a.event_id, a.attempt)).collect();
        assert_eq!(log, [(second.id.clone(), 3), (first.id.clone(), 2), (first.id, 1)], "newest first");
    }

    fn the_delivery_log_keeps_the_newest_1000_attempts(store) {
        let store = acme(store);
        let webhook = store.create_webhook("acme", hook("https://example.com/in")).unwrap().id;
        let other = store.create_webhook("acme", hook("https://example.com/other")).unwrap().id;
        store.record_attempt(&other, &attempt("E0", 1)).unwrap();
        for n in 1..=1003 {
            store.record_attempt(&webhook, &attempt("E1", n)).unwrap();
        }
        let log = store.attempts("acme", &webhook, 5000).unwrap();
        assert_eq!(log.len(), 1000);
        assert_eq!((log[0].attempt, log[999].attempt), (1003, 4), "newest first, the 3 oldest gone");
        assert_eq!(store.attempts("acme", &other, 10).unwrap(), [attempt("E0", 1)], "another webhook's log stays");

        let failed = Attempt { status: None, error: Some("connection refused".into()), ..attempt("E2", 1) };
        store.record_attempt(&webhook, &failed).unwrap();
        assert_eq!(store.attempts("acme", &webhook, 2).unwrap(), [failed, attempt("E1", 1003)]);
        assert!(matches!(store.attempts("globex", &webhook, 2), Err(StoreError::NotFound(_))));
    }

    fn a_webhook_of_a_device_goes_with_it(store) {
        let store = acme(store);
        store.create_device("acme", "main").unwrap();
        let of_main = NewWebhook { device: Some("main".into()), ..hook("https://example.com/main") };
        let of_main = store.create_webhook("acme", of_main).unwrap().id;
        let every = store.create_webhook("acme", hook("https://example.com/every")).unwrap();
        store.delete_device("acme", "main").unwrap();
        assert_eq!(store.webhooks("acme").unwrap(), [every]);
        assert!(matches!(store.next_delivery(&of_main), Err(StoreError::NotFound(_))));
    }

    fn the_secret_is_not_in_the_json_of_a_webhook(store) {
        let store = acme(store);
        let created = store.create_webhook("acme", hook("https://example.com/in")).unwrap();
        let json = serde_json::to_value(&created).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "id": created.id,
                "tenant": "acme",
                "url": "https://example.com/in",
                "device": null,
                "events": [],
                "created_at": created.created_at,
            })
        );
        assert!(!json.to_string().contains(SECRET));
        assert!(!format!("{created:?} {:?}", hook("https://example.com/in")).contains(SECRET), "nor in a log line");
        let chosen =
            serde_json::from_value::<NewWebhook>(serde_json::json!({ "url": "https://x.example", "secret": SECRET }));
        assert!(chosen.is_err(), "a request cannot choose the secret");
    }
    }

    /// Sets `store` (with acme) up for a look that only reads: device `main` with three events,
    /// a webhook of a type that never occurs and one of every type; returns (the typed webhook,
    /// the other, the events).
    fn three_events_and_two_webhooks(store: &Store) -> (String, String, Vec<EventRecord>) {
        store.create_device("acme", "main").unwrap();
        // A type that never occurs, and every type.
        let status = NewWebhook { events: vec!["message.status".into()], ..hook("https://example.com/status") };
        let status = store.create_webhook("acme", status).unwrap().id;
        let every = store.create_webhook("acme", hook("https://example.com/every")).unwrap().id;
        let events = ["A", "B", "C"].iter().map(|m| record(store, "main", "message.received", m)).collect();
        (status, every, events)
    }

    #[test]
    fn sqlite_looking_for_the_next_event_only_reads_and_answers_while_another_connection_writes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("waedge.db");
        let store = acme(Store::open(&path).unwrap());
        let (status, every, events) = three_events_and_two_webhooks(&store);

        let writer = rusqlite::Connection::open(&path).unwrap();
        let changes = store.sqlite_writer().total_changes();
        let version =
            |conn: &rusqlite::Connection| conn.pragma_query_value(None, "data_version", |row| row.get::<_, i64>(0));
        let before = version(&writer).unwrap();
        // Another connection holds the write lock: a look that wanted it would wait, then fail.
        writer.execute_batch("BEGIN IMMEDIATE").unwrap();
        for _ in 0..3 {
            assert_eq!(store.next_delivery_after(&status, 0).unwrap(), Next::Idle(3));
            assert_eq!(next(&store, &every), Some((1, events[0].id.clone())));
        }
        writer.execute_batch("COMMIT").unwrap();
        assert_eq!(store.sqlite_writer().total_changes(), changes, "no row written");
        assert_eq!(version(&writer).unwrap(), before, "no commit by the store");
        assert_eq!(position(&store, &status), 0, "the position stays behind the events it does not take");
    }

    #[test]
    #[ignore = "needs PostgreSQL's server binaries: scripts/test runs it where scripts/setup --test-tools installed them"]
    fn postgres_looking_for_the_next_event_only_reads_and_answers_while_another_transaction_writes() {
        use std::sync::mpsc::channel;
        let store = acme(crate::tests::postgres());
        let (status, every, events) = three_events_and_two_webhooks(&store);
        // Every row version of the tables a look reads or a delivery writes: a write (even one
        // that changes no value) makes a new version, with the writing transaction as its xmin.
        let versions = |store: &Store| -> Vec<String> {
            let versions = "SELECT t || ':' || xmin::text || '@' || ctid::text FROM (
                     SELECT 'webhooks' AS t, xmin, ctid FROM webhooks
                     UNION ALL SELECT 'events', xmin, ctid FROM events
                     UNION ALL SELECT 'webhook_attempts', xmin, ctid FROM webhook_attempts
                     UNION ALL SELECT 'dead_letters', xmin, ctid FROM dead_letters
                 ) AS versions ORDER BY 1";
            store.transaction(|conn| conn.query(versions, &[], |row| row.get(0))).unwrap()
        };
        let before = versions(&store);
        assert_eq!(before.len(), 5, "two webhooks and three events: {before:?}");

        // Another transaction holds the write lock until told: a look that wanted it would wait.
        let (held, wait_for_hold) = channel();
        let (release, until_released) = channel::<()>();
        let writer = store.clone();
        let hold = std::thread::spawn(move || {
            writer.transaction(|_| {
                held.send(()).unwrap();
                until_released.recv().unwrap();
                Ok(())
            })
        });
        wait_for_hold.recv().unwrap();
        let looker = store.clone();
        let (answered, answer) = channel();
        std::thread::spawn(move || {
            let looks: Vec<_> =
                (0..3).map(|_| (looker.next_delivery_after(&status, 0), next(&looker, &every))).collect();
            answered.send((looks, status)).ok();
        });
        let looks = answer.recv_timeout(std::time::Duration::from_secs(10));
        release.send(()).unwrap();
        hold.join().unwrap().unwrap();
        let (looks, status) = looks.expect("the looks answered while another transaction held the write lock");
        for (idle, pending) in looks {
            assert_eq!(idle.unwrap(), Next::Idle(3));
            assert_eq!(pending, Some((1, events[0].id.clone())));
        }
        assert_eq!(versions(&store), before, "no row written");
        assert_eq!(position(&store, &status), 0, "the position stays behind the events it does not take");
    }
}

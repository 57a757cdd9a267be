//! Which node owns which device: one lease row per device, with an epoch.
//!
//! A node takes a device's lease when nobody holds it or its holder let it expire; taking
//! it increments the device's epoch, and the node writes the device's state with that epoch
//! (see [`crate::DeviceState`]). Expiry is decided by the database's clock, never a node's,
//! so nodes whose clocks disagree still agree on who owns what. A node renews all its leases
//! in one statement; a lease it fails to renew in time may be taken by another node, after
//! which every write of the former owner is refused. (A takeover waits for the writes under
//! way, and PostgreSQL lets new ones in meanwhile: a former owner that never paused between
//! writes could delay it — but a former owner still writing is one whose lease just expired,
//! and its next refused write stops it.)

use std::sync::Arc;
use std::time::Duration;

use crate::{Database, Error};

/// A node's view of the leases: it takes, renews and releases them under its name.
pub struct Leases {
    pub(crate) db: Arc<Database>,
    pub(crate) node: String,
    ttl: Duration,
}

/// A device's lease, held by this node since `epoch`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// The device's key in the database.
    pub id: i64,
    /// The epoch this node's writes carry; a takeover increments it.
    pub epoch: i64,
    /// The tenant the device belongs to.
    pub tenant: String,
    /// The device's id within its tenant.
    pub device: String,
    /// The state the device's client stopped in for good (`logged-out`, `replaced`,
    /// `banned`) on whichever node ran it last, if it did ([`Leases::stopped_as`]).
    pub stopped_as: Option<String>,
}

/// A device's lease as the database has it, for operators: who holds it, since which epoch,
/// until when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holding {
    /// The tenant the device belongs to.
    pub tenant: String,
    /// The device's id within its tenant.
    pub device: String,
    /// The node process holding the lease (its name and suffix), unless none does or it
    /// expired.
    pub owner: Option<String>,
    /// The device's epoch.
    pub epoch: i64,
    /// How long the lease has left, by the database's clock.
    pub expires_in: Option<Duration>,
}

impl Lease {
    pub(crate) fn from_row(row: &tokio_postgres::Row) -> Lease {
        Lease {
            id: row.get("id"),
            epoch: row.get("epoch"),
            tenant: row.get("tenant"),
            device: row.get("device"),
            stopped_as: row.get("stopped_as"),
        }
    }
}

impl Leases {
    /// The leases of this node process, named `node`, each valid for `ttl` after it was last
    /// renewed. They are held under the name and a random suffix: a node restarted under
    /// the same name does not take its former life's leases (whose clients it never started)
    /// for its own — they expire and are taken over like any dead node's.
    pub fn new(db: Arc<Database>, node: &str, ttl: Duration) -> Leases {
        let node = format!("{node}#{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
        Leases { db, node, ttl }
    }

    /// The name this node process holds its leases under: its name and a suffix of its own.
    pub fn holder(&self) -> &str {
        &self.node
    }

    /// Makes `tenant`'s `device` known to every node, so that one of them takes it (see
    /// [`turn`](Self::turn)). Registering a known device changes nothing.
    pub async fn register(&self, tenant: &str, device: &str) -> Result<(), Error> {
        let db = self.db.connection().await?;
        // Only when missing: a conflicting insert would use up a device key.
        db.execute(
            "INSERT INTO wa_devices (tenant, device)
             SELECT $1, $2 WHERE NOT EXISTS (SELECT 1 FROM wa_devices WHERE tenant = $1 AND device = $2)
             ON CONFLICT (tenant, device) DO NOTHING",
            &[&tenant, &device],
        )
        .await?;
        Ok(())
    }

    /// Takes the lease of `tenant`'s `device` (registering the device on first sight) when
    /// nobody holds it or its holder let it expire. `None` while another node holds it.
    pub async fn acquire(&self, tenant: &str, device: &str) -> Result<Option<Lease>, Error> {
        self.register(tenant, device).await?;
        let db = self.db.connection().await?;
        let row = db
            .query_opt(
                "UPDATE wa_devices
                 SET owner = $3, epoch = epoch + 1,
                     expires_at = clock_timestamp() + $4::float8 * interval '1 millisecond'
                 WHERE tenant = $1 AND device = $2 AND (owner IS NULL OR expires_at <= clock_timestamp())
                 RETURNING id, epoch, tenant, device, stopped_as",
                &[&tenant, &device, &self.node, &self.ttl_millis()],
            )
            .await?;
        Ok(row.as_ref().map(Lease::from_row))
    }

    /// Extends every lease this node still holds by the lease time, and returns them: a
    /// lease missing from the answer has expired (another node may own the device now), and
    /// its device must stop.
    pub async fn renew(&self) -> Result<Vec<Lease>, Error> {
        let db = self.db.connection().await?;
        let rows = db
            .query(
                "UPDATE wa_devices SET expires_at = clock_timestamp() + $2::float8 * interval '1 millisecond'
                 WHERE owner = $1 AND expires_at > clock_timestamp()
                 RETURNING id, epoch, tenant, device, stopped_as",
                &[&self.node, &self.ttl_millis()],
            )
            .await?;
        Ok(rows.iter().map(Lease::from_row).collect())
    }

    /// Whether this node still holds `lease`, by the database's clock, with `margin` to
    /// spare: checked before a device's client starts, so a node whose turns stalled does not
    /// start a client on a lease another node may be taking.
    pub async fn holds(&self, lease: &Lease, margin: Duration) -> Result<bool, Error> {
        let db = self.db.connection().await?;
        let row = db
            .query_opt(
                "SELECT 1 FROM wa_devices WHERE id = $1 AND epoch = $2 AND owner = $3
                 AND expires_at > clock_timestamp() + $4::float8 * interval '1 millisecond'",
                &[&lease.id, &lease.epoch, &self.node, &(margin.as_secs_f64() * 1000.0)],
            )
            .await?;
        Ok(row.is_some())
    }

    /// Records that the device of `lease` stopped for good in `state` (or, `None`, that it
    /// connected again), for whichever node holds it next. Only under the lease.
    pub async fn stopped_as(&self, lease: &Lease, state: Option<&str>) -> Result<(), Error> {
        let db = self.db.connection().await?;
        db.execute(
            "UPDATE wa_devices SET stopped_as = $4 WHERE id = $1 AND epoch = $2 AND owner = $3",
            &[&lease.id, &lease.epoch, &self.node, &state],
        )
        .await?;
        Ok(())
    }

    /// Gives `lease` up at once (after the device's client stopped), so that another node
    /// may take the device without waiting for the lease to expire. The epoch moves on: a
    /// state still open on the released lease can no longer write.
    pub async fn release(&self, lease: &Lease) -> Result<(), Error> {
        let db = self.db.connection().await?;
        db.execute(
            "UPDATE wa_devices SET owner = NULL, expires_at = NULL, epoch = epoch + 1
             WHERE id = $1 AND epoch = $2 AND owner = $3",
            &[&lease.id, &lease.epoch, &self.node],
        )
        .await?;
        Ok(())
    }

    /// Forgets `tenant`'s `device` and its whole state: it was deleted. Whichever node still
    /// runs its client is refused its next write, and stops.
    pub async fn forget(&self, tenant: &str, device: &str) -> Result<(), Error> {
        let db = self.db.connection().await?;
        db.execute("DELETE FROM wa_devices WHERE tenant = $1 AND device = $2", &[&tenant, &device]).await?;
        Ok(())
    }

    /// Every device's lease as the database has it now, by tenant and device.
    pub async fn holdings(&self) -> Result<Vec<Holding>, Error> {
        let db = self.db.connection().await?;
        let rows = db
            .query(
                "SELECT tenant, device, owner, epoch,
                        (EXTRACT(EPOCH FROM expires_at - clock_timestamp()) * 1000)::float8 AS left_ms
                 FROM wa_devices ORDER BY tenant, device",
                &[],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|row| {
                let left: Option<f64> = row.get("left_ms");
                let expires_in = left.filter(|ms| *ms > 0.0).map(|ms| Duration::from_secs_f64(ms / 1000.0));
                let owner = expires_in.and(row.get("owner"));
                Holding {
                    tenant: row.get("tenant"),
                    device: row.get("device"),
                    owner,
                    epoch: row.get("epoch"),
                    expires_in,
                }
            })
            .collect())
    }

    /// How often the node should take its turn ([`turn`](Self::turn)): four times per lease
    /// time, so that a turn or two may fail (a slow database) before a lease expires.
    pub fn turn_interval(&self) -> Duration {
        self.ttl / 4
    }

    /// How long a lease lasts after it was last renewed.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    pub(crate) fn ttl_millis(&self) -> f64 {
        self.ttl.as_secs_f64() * 1000.0
    }
}

//! The devices spread evenly over the live nodes.
//!
//! Each node takes turns ([`Leases::turn`]) a few times per lease time: it says it is alive
//! (a node row with an expiry, by the database's clock, like a lease), renews its leases,
//! and compares what it holds with its fair share — the devices divided by the live nodes,
//! rounded up. Below it, it takes free or expired leases (never one another node holds);
//! above it (a node joined), it hands the surplus over: it stops those clients and releases
//! their leases, and the nodes below their share take them at their next turn. So a device
//! is never held by two nodes, a dead node's devices are taken over once its leases expire,
//! and nobody waits on a node that is gone.

use crate::{Error, Lease, Leases};

/// What a node must do after a turn.
#[derive(Debug, Default)]
pub struct Turn {
    /// The leases it holds now, renewed or just taken: its devices, including the surplus.
    /// A device it ran whose lease is missing was lost: its client must stop.
    pub held: Vec<Lease>,
    /// Held leases beyond its fair share: stop these clients, then [release](Leases::release)
    /// the leases for the nodes below their share.
    pub surplus: Vec<Lease>,
}

impl Leases {
    /// One turn of this node: alive, leases renewed, its share taken (of the devices in
    /// `known`, tenant and device: those it can run) or its surplus named.
    pub async fn turn(&self, known: &[(&str, &str)]) -> Result<Turn, Error> {
        let db = self.db.connection().await?;
        db.execute(
            "INSERT INTO wa_nodes (name, expires_at) VALUES ($1, clock_timestamp() + $2::float8 * interval '1 millisecond')
             ON CONFLICT (name) DO UPDATE SET expires_at = excluded.expires_at",
            &[&self.node, &self.ttl_millis()],
        )
        .await?;
        let mut renewed = self.renew().await?;

        let counts = db
            .query_opt(
                "SELECT (SELECT count(*) FROM wa_nodes WHERE expires_at > clock_timestamp()),
                        (SELECT count(*) FROM wa_devices)",
                &[],
            )
            .await?
            .expect("one row");
        let count = |column| u64::try_from(counts.get::<_, i64>(column)).unwrap_or(0);
        let share = usize::try_from(count(1).div_ceil(count(0).max(1))).unwrap_or(usize::MAX);

        renewed.sort_by_key(|lease| lease.id);
        let surplus = renewed.get(share..).unwrap_or_default().to_vec();
        let wanted = i64::try_from(share.saturating_sub(renewed.len())).unwrap_or(i64::MAX);
        let (tenants, devices): (Vec<&str>, Vec<&str>) = known.iter().copied().unzip();
        if wanted > 0 {
            let rows = db
                .query(
                    "UPDATE wa_devices
                     SET owner = $1, epoch = epoch + 1,
                         expires_at = clock_timestamp() + $2::float8 * interval '1 millisecond'
                     WHERE id IN (SELECT id FROM wa_devices
                                  WHERE (owner IS NULL OR expires_at <= clock_timestamp())
                                    AND (tenant, device) IN (SELECT * FROM unnest($4::text[], $5::text[]))
                                  ORDER BY id LIMIT $3 FOR UPDATE SKIP LOCKED)
                     RETURNING id, epoch, tenant, device, stopped_as",
                    &[&self.node, &self.ttl_millis(), &wanted, &tenants, &devices],
                )
                .await?;
            renewed.extend(rows.iter().map(Lease::from_row));
        }
        Ok(Turn { held: renewed, surplus })
    }

    /// Leaves the cluster, once this node has stopped all its clients: its leases are
    /// released and it no longer counts as alive, so the other nodes take its devices at
    /// their next turn instead of after the leases expire.
    pub async fn leave(&self) -> Result<(), Error> {
        let db = self.db.connection().await?;
        db.execute(
            "UPDATE wa_devices SET owner = NULL, expires_at = NULL, epoch = epoch + 1 WHERE owner = $1",
            &[&self.node],
        )
        .await?;
        db.execute("DELETE FROM wa_nodes WHERE name = $1", &[&self.node]).await?;
        Ok(())
    }
}

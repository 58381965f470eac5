//! [`DeliveryLog`] on PostgreSQL: the `deliveries` table, the final outcome of each
//! notification id; `ON CONFLICT DO NOTHING` makes the first recorded outcome win, across
//! processes too. A claim (`delivery_claims`) is an upsert that takes over only its own
//! row or an expired one; recording the outcome deletes it in the same transaction.

use squall_alerting::store::{Claim, Delivery, DeliveryLog, DeliveryStatus, StoreError};
use tokio_postgres::Row;

use crate::{PgStore, Result};

const COLUMNS: &str = "id, status, attempts, code, reason, at_ms";

/// A stored row; a row with an unknown status is an error, not "no outcome": that would
/// send the notification again.
fn delivery_from_row(r: &Row) -> Result<Delivery> {
    let id: String = r.get(0);
    let status: String = r.get(1);
    let status = DeliveryStatus::parse(&status).ok_or_else(|| StoreError::Invalid {
        field: "deliveries.status",
        message: format!("delivery {id} has an unknown status \"{status}\""),
    })?;
    Ok(Delivery {
        status,
        attempts: u32::try_from(r.get::<_, i64>(2)).unwrap_or(u32::MAX),
        code: r
            .get::<_, Option<i32>>(3)
            .and_then(|c| u16::try_from(c).ok()),
        reason: r.get(4),
        at_ms: r.get(5),
        id,
    })
}

impl DeliveryLog for PgStore {
    fn delivery(&self, id: &str) -> Result<Option<Delivery>, StoreError> {
        self.block_on(async {
            let c = self.client().await?;
            let stmt = c
                .prepare_cached(&format!("SELECT {COLUMNS} FROM deliveries WHERE id = $1"))
                .await?;
            c.query_opt(&stmt, &[&id])
                .await?
                .map(|r| delivery_from_row(&r))
                .transpose()
        })
    }

    fn deliveries(&self) -> Result<Vec<Delivery>, StoreError> {
        self.block_on(async {
            let c = self.client().await?;
            let rows = c
                .query(
                    &format!("SELECT {COLUMNS} FROM deliveries ORDER BY at_ms, id"),
                    &[],
                )
                .await?;
            rows.iter().map(delivery_from_row).collect()
        })
    }

    fn claim_delivery(
        &self,
        id: &str,
        owner: &str,
        now_ms: i64,
        until_ms: i64,
    ) -> Result<Claim, StoreError> {
        self.block_on(async {
            let mut c = self.client().await?;
            let tx = c.transaction().await?;
            // The claim row first (its lock orders this with other claims and with the
            // recording of the outcome), then whether an outcome is recorded.
            let mine = tx
                .query_opt(
                    "INSERT INTO delivery_claims (id, owner, until_ms) VALUES ($1, $2, $4)
                     ON CONFLICT (id) DO UPDATE SET owner = $2, until_ms = $4
                     WHERE delivery_claims.owner = $2 OR delivery_claims.until_ms < $3
                     RETURNING owner",
                    &[&id, &owner, &now_ms, &until_ms],
                )
                .await?
                .is_some();
            let done = tx
                .query_opt("SELECT 1 FROM deliveries WHERE id = $1", &[&id])
                .await?
                .is_some();
            let claim = if done {
                Claim::Done
            } else if mine {
                Claim::Mine
            } else {
                let row = tx
                    .query_one(
                        "SELECT owner, until_ms FROM delivery_claims WHERE id = $1",
                        &[&id],
                    )
                    .await?;
                Claim::Held {
                    owner: row.get(0),
                    until_ms: row.get(1),
                }
            };
            if done {
                // Nothing to hold: the outcome is there.
                tx.rollback().await?;
            } else {
                tx.commit().await?;
            }
            Ok(claim)
        })
    }

    fn record_delivery(&self, d: &Delivery) -> Result<(), StoreError> {
        self.block_on(async {
            let mut c = self.client().await?;
            let tx = c.transaction().await?;
            insert_outcome(&tx, d).await?;
            tx.execute("DELETE FROM delivery_claims WHERE id = $1", &[&d.id])
                .await?;
            tx.commit().await?;
            Ok(())
        })
    }
}

/// Records `d` unless an outcome of its id is recorded already (the first one wins).
pub(crate) async fn insert_outcome(
    tx: &deadpool_postgres::Transaction<'_>,
    d: &Delivery,
) -> crate::Result<()> {
    let stmt = tx
        .prepare_cached(
            "INSERT INTO deliveries (id, status, attempts, code, reason, at_ms)
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (id) DO NOTHING",
        )
        .await?;
    tx.execute(
        &stmt,
        &[
            &d.id,
            &d.status.as_str(),
            &i64::from(d.attempts),
            &d.code.map(i32::from),
            &d.reason,
            &d.at_ms,
        ],
    )
    .await?;
    Ok(())
}

//! [`DeliveryLog`] on PostgreSQL: the `deliveries` table, the final outcome of each
//! notification id; `ON CONFLICT DO NOTHING` makes the first recorded outcome win, across
//! processes too.

use squall_alerting::store::{Delivery, DeliveryLog, DeliveryStatus, StoreError};
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

    fn record_delivery(&self, d: &Delivery) -> Result<(), StoreError> {
        self.block_on(async {
            let c = self.client().await?;
            let stmt = c
                .prepare_cached(
                    "INSERT INTO deliveries (id, status, attempts, code, reason, at_ms)
                     VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (id) DO NOTHING",
                )
                .await?;
            c.execute(
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
        })
    }
}

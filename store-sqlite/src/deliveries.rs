//! [`DeliveryLog`] on SQLite: the `deliveries` table, the final outcome of each
//! notification id; `INSERT OR IGNORE` makes the first recorded outcome win. Claims
//! (`delivery_claims`) are taken in an immediate transaction that first checks for an
//! outcome.

use rusqlite::{params, OptionalExtension, TransactionBehavior};
use squall_alerting::store::{Claim, Delivery, DeliveryLog, DeliveryStatus, StoreError};

use crate::{run, SqliteStore};

impl DeliveryLog for SqliteStore {
    fn delivery(&self, id: &str) -> Result<Option<Delivery>, StoreError> {
        run(|| {
            let conn = self.conn();
            let row: Option<(String, String, u32, Option<u16>, String, i64)> = conn
                .query_row(
                    "SELECT id, status, attempts, code, reason, at_ms FROM deliveries WHERE id = ?1",
                    params![id],
                    |r| {
                        Ok((
                            r.get(0)?,
                            r.get(1)?,
                            r.get(2)?,
                            r.get(3)?,
                            r.get(4)?,
                            r.get(5)?,
                        ))
                    },
                )
                .optional()?;
            // A row with an unknown status is an error, not "no outcome": that would send
            // the notification again.
            Ok(row
                .map(|(id, status, attempts, code, reason, at_ms)| {
                    Ok::<_, StoreError>(Delivery {
                        status: status_of(&id, &status)?,
                        id,
                        attempts,
                        code,
                        reason,
                        at_ms,
                    })
                })
                .transpose()?)
        })
    }

    fn deliveries(&self) -> Result<Vec<Delivery>, StoreError> {
        run(|| {
            let conn = self.conn();
            let mut stmt = conn.prepare(
                "SELECT id, status, attempts, code, reason, at_ms FROM deliveries ORDER BY at_ms, id",
            )?;
            let rows = stmt.query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                    r.get(5)?,
                ))
            })?;
            let mut out = Vec::new();
            for row in rows {
                let (id, status, attempts, code, reason, at_ms) = row?;
                out.push(Delivery {
                    status: status_of(&id, &status)?,
                    id,
                    attempts,
                    code,
                    reason,
                    at_ms,
                });
            }
            Ok(out)
        })
    }

    fn claim_delivery(
        &self,
        id: &str,
        owner: &str,
        now_ms: i64,
        until_ms: i64,
    ) -> Result<Claim, StoreError> {
        run(|| {
            let mut conn = self.conn();
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let done = tx
                .query_row(
                    "SELECT 1 FROM deliveries WHERE id = ?1",
                    params![id],
                    |_| Ok(()),
                )
                .optional()?
                .is_some();
            if done {
                return Ok(Claim::Done);
            }
            let mine = tx
                .query_row(
                    "INSERT INTO delivery_claims (id, owner, until_ms) VALUES (?1, ?2, ?4)
                     ON CONFLICT (id) DO UPDATE SET owner = ?2, until_ms = ?4
                     WHERE delivery_claims.owner = ?2 OR delivery_claims.until_ms < ?3
                     RETURNING owner",
                    params![id, owner, now_ms, until_ms],
                    |_| Ok(()),
                )
                .optional()?
                .is_some();
            let claim = if mine {
                Claim::Mine
            } else {
                let (owner, until_ms) = tx.query_row(
                    "SELECT owner, until_ms FROM delivery_claims WHERE id = ?1",
                    params![id],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )?;
                Claim::Held { owner, until_ms }
            };
            tx.commit()?;
            Ok(claim)
        })
    }

    fn record_delivery(&self, d: &Delivery) -> Result<(), StoreError> {
        run(|| {
            let mut conn = self.conn();
            let tx = conn.transaction()?;
            insert_outcome(&tx, d)?;
            tx.execute("DELETE FROM delivery_claims WHERE id = ?1", params![d.id])?;
            tx.commit()?;
            Ok(())
        })
    }
}

/// Records `d` unless an outcome of its id is recorded already (the first one wins).
pub(crate) fn insert_outcome(conn: &rusqlite::Connection, d: &Delivery) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT OR IGNORE INTO deliveries (id, status, attempts, code, reason, at_ms)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?
    .execute(params![
        d.id,
        d.status.as_str(),
        d.attempts,
        d.code,
        d.reason,
        d.at_ms
    ])?;
    Ok(())
}

/// The status of delivery `id` as stored.
fn status_of(id: &str, status: &str) -> Result<DeliveryStatus, StoreError> {
    DeliveryStatus::parse(status).ok_or_else(|| StoreError::Invalid {
        field: "deliveries.status",
        message: format!("delivery {id} has an unknown status \"{status}\""),
    })
}

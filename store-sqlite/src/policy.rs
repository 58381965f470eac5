//! [`PolicyStore`] on SQLite: `silences` (the checked JSON body, so a silence reads back
//! exactly as it was written), `notification_groups` (one state blob per group key, with
//! its notifications partition) and `group_partition_epochs` (each partition's latest
//! claim). A group commit checks its fences inside its immediate transaction, so a
//! refused commit writes nothing.

use rusqlite::{params, OptionalExtension, TransactionBehavior};
use squall_alerting::policy::silence::{Silence, StoredSilence};
use squall_alerting::store::{Delivery, Fence, GroupRow, PolicyStore, StoreError};

use crate::accounts::bump;
use crate::alerts::{check_fences, claim};
use crate::deliveries::insert_outcome;
use crate::{run, Error, SqliteStore};

/// A stored silence from its row.
fn silence_of(id: i64, body: &str, created_at_ms: i64) -> Result<StoredSilence, Error> {
    let corrupt = |e: String| StoreError::backend(false, format!("silence {id}: {e}"));
    let silence: Silence = serde_json::from_str(body).map_err(|e| corrupt(e.to_string()))?;
    let created_at =
        jiff::Timestamp::from_millisecond(created_at_ms).map_err(|e| corrupt(e.to_string()))?;
    Ok(StoredSilence {
        id,
        silence,
        created_at,
    })
}

impl PolicyStore for SqliteStore {
    fn create_silence(
        &self,
        silence: &Silence,
        now: jiff::Timestamp,
    ) -> Result<StoredSilence, StoreError> {
        run(|| {
            let mut conn = self.conn();
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let body = serde_json::to_string(silence).expect("silences serialise");
            let id: i64 = tx.query_row(
                "INSERT INTO silences (account, body, created_at_ms) VALUES (?1, ?2, ?3)
                 RETURNING id",
                params![silence.account, body, now.as_millisecond()],
                |r| r.get(0),
            )?;
            bump(&tx)?;
            tx.commit()?;
            Ok(StoredSilence {
                id,
                silence: silence.clone(),
                created_at: now,
            })
        })
    }

    fn silences(&self, account: Option<&str>) -> Result<Vec<StoredSilence>, StoreError> {
        run(|| {
            let conn = self.conn();
            let mut stmt = conn.prepare_cached(
                "SELECT id, body, created_at_ms FROM silences
                 WHERE ?1 IS NULL OR account = ?1 ORDER BY id DESC",
            )?;
            let rows = stmt.query_map(params![account], |r| {
                Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?, r.get(2)?))
            })?;
            let mut out = Vec::new();
            for row in rows {
                let (id, body, at) = row?;
                out.push(silence_of(id, &body, at)?);
            }
            Ok(out)
        })
    }

    fn expire_silence(
        &self,
        id: i64,
        now: jiff::Timestamp,
    ) -> Result<Option<StoredSilence>, StoreError> {
        run(|| {
            let mut conn = self.conn();
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let row: Option<(String, i64)> = tx
                .query_row(
                    "SELECT body, created_at_ms FROM silences WHERE id = ?1",
                    params![id],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()?;
            let Some((body, created)) = row else {
                return Ok(None);
            };
            let mut stored = silence_of(id, &body, created)?;
            stored.silence.expire(now);
            tx.execute(
                "UPDATE silences SET body = ?2 WHERE id = ?1",
                params![
                    id,
                    serde_json::to_string(&stored.silence).expect("serialises")
                ],
            )?;
            bump(&tx)?;
            tx.commit()?;
            Ok(Some(stored))
        })
    }

    fn claim_group_partition(&self, partition: i32) -> Result<i64, StoreError> {
        run(|| claim(&self.conn(), "group_partition_epochs", partition))
    }

    fn groups(&self, partition: Option<i32>) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        run(|| {
            let conn = self.conn();
            let mut stmt = conn.prepare_cached(
                "SELECT key, state FROM notification_groups
                 WHERE ?1 IS NULL OR partition = ?1 ORDER BY key",
            )?;
            let rows = stmt.query_map(params![partition], |r| Ok((r.get(0)?, r.get(1)?)))?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
    }

    fn commit_groups(
        &self,
        fences: &[Fence],
        groups: &[GroupRow],
        records: &[Delivery],
    ) -> Result<(), StoreError> {
        run(|| {
            let mut conn = self.conn();
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            check_fences(&tx, "group_partition_epochs", fences)?;
            {
                let mut put = tx.prepare_cached(
                    "INSERT INTO notification_groups (key, partition, state) VALUES (?1, ?2, ?3)
                     ON CONFLICT(key) DO UPDATE SET partition = ?2, state = ?3",
                )?;
                let mut delete =
                    tx.prepare_cached("DELETE FROM notification_groups WHERE key = ?1")?;
                for g in groups {
                    match &g.blob {
                        Some(blob) => put.execute(params![g.key, g.partition, blob])?,
                        None => delete.execute(params![g.key])?,
                    };
                }
                for d in records {
                    insert_outcome(&tx, d)?;
                }
            }
            tx.commit()?;
            Ok(())
        })
    }
}

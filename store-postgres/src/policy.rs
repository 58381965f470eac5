//! [`PolicyStore`] on PostgreSQL: `silences` (the checked JSON body), `notification_groups`
//! (one state blob per group key, with its notifications partition) and
//! `group_partition_epochs`. Fencing as for the alert state: a group commit reads its
//! partitions' epochs `FOR SHARE` in its own transaction, so a claim waits for it, and a
//! commit under an older epoch writes nothing.

use squall_alerting::policy::silence::{Silence, StoredSilence};
use squall_alerting::store::{Delivery, Fence, GroupRow, PolicyStore, StoreError};

use crate::accounts::bump;
use crate::alerts::{check_fences, claim};
use crate::deliveries::insert_outcome;
use crate::{Error, PgStore};

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

impl PolicyStore for PgStore {
    fn create_silence(
        &self,
        silence: &Silence,
        now: jiff::Timestamp,
    ) -> Result<StoredSilence, StoreError> {
        let body = serde_json::to_string(silence).expect("silences serialise");
        self.block_on(async {
            let mut c = self.client().await?;
            let tx = c.transaction().await?;
            let id: i64 = tx
                .query_one(
                    "INSERT INTO silences (account, body, created_at_ms) VALUES ($1, $2, $3)
                     RETURNING id",
                    &[&silence.account, &body, &now.as_millisecond()],
                )
                .await?
                .get(0);
            bump(&tx).await?;
            tx.commit().await?;
            Ok(StoredSilence {
                id,
                silence: silence.clone(),
                created_at: now,
            })
        })
    }

    fn silences(&self, account: Option<&str>) -> Result<Vec<StoredSilence>, StoreError> {
        self.block_on(async {
            let c = self.client().await?;
            let rows = c
                .query(
                    "SELECT id, body, created_at_ms FROM silences
                     WHERE $1::text IS NULL OR account = $1 ORDER BY id DESC",
                    &[&account],
                )
                .await?;
            rows.iter()
                .map(|r| silence_of(r.get(0), r.get(1), r.get(2)))
                .collect()
        })
    }

    fn expire_silence(
        &self,
        id: i64,
        now: jiff::Timestamp,
    ) -> Result<Option<StoredSilence>, StoreError> {
        self.block_on(async {
            let mut c = self.client().await?;
            let tx = c.transaction().await?;
            let Some(row) = tx
                .query_opt(
                    "SELECT body, created_at_ms FROM silences WHERE id = $1 FOR UPDATE",
                    &[&id],
                )
                .await?
            else {
                return Ok(None);
            };
            let mut stored = silence_of(id, row.get(0), row.get(1))?;
            stored.silence.expire(now);
            let body = serde_json::to_string(&stored.silence).expect("serialises");
            tx.execute("UPDATE silences SET body = $2 WHERE id = $1", &[&id, &body])
                .await?;
            bump(&tx).await?;
            tx.commit().await?;
            Ok(Some(stored))
        })
    }

    fn claim_group_partition(&self, partition: i32) -> Result<i64, StoreError> {
        self.block_on(claim(self, "group_partition_epochs", partition))
    }

    fn groups(&self, partition: Option<i32>) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        self.block_on(async {
            let c = self.client().await?;
            Ok(c.query(
                "SELECT key, state FROM notification_groups
                 WHERE $1::integer IS NULL OR partition = $1 ORDER BY key",
                &[&partition],
            )
            .await?
            .into_iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect())
        })
    }

    fn commit_groups(
        &self,
        fences: &[Fence],
        groups: &[GroupRow],
        records: &[Delivery],
    ) -> Result<(), StoreError> {
        self.block_on(async {
            let mut c = self.client().await?;
            let tx = c.transaction().await?;
            check_fences(&tx, "group_partition_epochs", fences).await?;
            let put = tx
                .prepare_cached(
                    "INSERT INTO notification_groups (key, partition, state) VALUES ($1, $2, $3)
                     ON CONFLICT (key) DO UPDATE SET partition = excluded.partition,
                         state = excluded.state",
                )
                .await?;
            let delete = tx
                .prepare_cached("DELETE FROM notification_groups WHERE key = $1")
                .await?;
            // In key order, so concurrent commits take row locks in one order.
            let mut sorted: Vec<&GroupRow> = groups.iter().collect();
            sorted.sort_by(|a, b| a.key.cmp(&b.key));
            for g in sorted {
                match &g.blob {
                    Some(blob) => tx.execute(&put, &[&g.key, &g.partition, blob]).await?,
                    None => tx.execute(&delete, &[&g.key]).await?,
                };
            }
            for d in records {
                insert_outcome(&tx, d).await?;
            }
            tx.commit().await?;
            Ok(())
        })
    }
}

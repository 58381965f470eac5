//! [`AlertStateStore`] on PostgreSQL: each device's rule state (`alert_device_state`) and
//! the alerts that fired (`alerts`, at most one open row per (config, device, series): a
//! partial unique index holds it), written in one transaction per batch; the states in
//! one multi-row upsert, in device order.
//!
//! Fencing: a commit first reads its partitions' epochs `FOR SHARE`, in the same
//! transaction as its writes; a claim (an `UPDATE` of the epoch) waits for it to end, so
//! the new owner, which loads states after claiming, sees everything the old owner
//! committed, and the old owner's later commits find the new epoch and are refused.

use std::collections::BTreeMap;

use squall_alerting::ids::{ConfigId, DeviceId};
use squall_alerting::store::{
    series_key, series_labels, AlertChange, AlertStateStore, Fence, StateRow, StoreError,
    TriggeredAlert,
};

use crate::{PgStore, Result};

/// Claims `partition` in the epochs table `table`: its new epoch.
pub(crate) async fn claim(db: &PgStore, table: &'static str, partition: i32) -> Result<i64> {
    let c = db.client().await?;
    Ok(c.query_one(
        &format!(
            "INSERT INTO {table} (partition, epoch) VALUES ($1, 1)
             ON CONFLICT (partition) DO UPDATE SET epoch = {table}.epoch + 1
             RETURNING epoch"
        ),
        &[&partition],
    )
    .await?
    .get(0))
}

/// Refuses the transaction unless every fence's epoch is still its partition's latest in
/// the epochs table `table`. Reads them `FOR SHARE`, in partition order, so a claim waits
/// for the transaction to end.
pub(crate) async fn check_fences(
    tx: &tokio_postgres::Transaction<'_>,
    table: &'static str,
    fences: &[Fence],
) -> Result<()> {
    if fences.is_empty() {
        return Ok(());
    }
    let mut partitions: Vec<i32> = fences.iter().map(|f| f.partition).collect();
    partitions.sort_unstable();
    let held: BTreeMap<i32, i64> = tx
        .query(
            &format!(
                "SELECT partition, epoch FROM {table}
                 WHERE partition = ANY($1) ORDER BY partition FOR SHARE"
            ),
            &[&partitions],
        )
        .await?
        .into_iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    match fences
        .iter()
        .find(|f| held.get(&f.partition) != Some(&f.epoch))
    {
        Some(f) => Err(StoreError::Fenced {
            partition: f.partition,
            epoch: f.epoch,
        }
        .into()),
        None => Ok(()),
    }
}

impl AlertStateStore for PgStore {
    fn device_state(&self, device: DeviceId) -> Result<Option<Vec<u8>>, StoreError> {
        self.block_on(async {
            let c = self.client().await?;
            let stmt = c
                .prepare_cached("SELECT state FROM alert_device_state WHERE device = $1")
                .await?;
            Ok(c.query_opt(&stmt, &[&device.0]).await?.map(|r| r.get(0)))
        })
    }

    fn device_states(
        &self,
        partition: Option<i32>,
        keep: &dyn Fn(DeviceId) -> bool,
    ) -> Result<Vec<(DeviceId, String, Vec<u8>)>, StoreError> {
        let rows = self.block_on(async {
            let c = self.client().await?;
            Ok(c.query(
                "SELECT device, account, state FROM alert_device_state
                 WHERE $1::integer IS NULL OR partition = $1 ORDER BY device",
                &[&partition],
            )
            .await?)
        })?;
        Ok(rows
            .into_iter()
            .map(|r| (DeviceId(r.get(0)), r.get(1), r.get(2)))
            .filter(|(d, _, _)| keep(*d))
            .collect())
    }

    fn claim_partition(&self, partition: i32) -> Result<i64, StoreError> {
        self.block_on(claim(self, "partition_epochs", partition))
    }

    fn commit(
        &self,
        fences: &[Fence],
        states: &[StateRow<'_>],
        changes: &[AlertChange],
    ) -> Result<(), StoreError> {
        // One row per device (the last state given wins), in device order.
        let mut by_device: BTreeMap<i64, &StateRow<'_>> = BTreeMap::new();
        for row in states {
            by_device.insert(row.device.0, row);
        }
        let devices: Vec<i64> = by_device.keys().copied().collect();
        let accounts: Vec<&str> = by_device.values().map(|r| r.account).collect();
        let partitions: Vec<Option<i32>> = by_device.values().map(|r| r.partition).collect();
        let blobs: Vec<&[u8]> = by_device.values().map(|r| r.blob.as_slice()).collect();
        self.block_on(async {
            let mut c = self.client().await?;
            let tx = c.transaction().await?;
            check_fences(&tx, "partition_epochs", fences).await?;
            if !devices.is_empty() {
                let put = tx
                    .prepare_cached(
                        "INSERT INTO alert_device_state (device, account, partition, state)
                         SELECT * FROM unnest($1::bigint[], $2::text[], $3::integer[], $4::bytea[])
                         ON CONFLICT (device) DO UPDATE
                         SET account = excluded.account, partition = excluded.partition,
                             state = excluded.state",
                    )
                    .await?;
                tx.execute(&put, &[&devices, &accounts, &partitions, &blobs])
                    .await?;
            }
            for change in changes {
                match change {
                    AlertChange::Open(a) => {
                        let series = series_key(&a.series);
                        // A leftover open row (a config edited under it) closes first, so
                        // there is never more than one open alert per key.
                        let close = tx
                            .prepare_cached(
                                "UPDATE alerts SET closed_at = $4 WHERE config_id = $1
                                 AND device = $2 AND series = $3 AND closed_at IS NULL",
                            )
                            .await?;
                        tx.execute(&close, &[&a.config_id.0, &a.device.0, &series, &a.fired_at])
                            .await?;
                        let open = tx
                            .prepare_cached(
                                "INSERT INTO alerts (config_id, account, device, hostname,
                                   metric, series, fired_at, last_value)
                                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                            )
                            .await?;
                        tx.execute(
                            &open,
                            &[
                                &a.config_id.0,
                                &a.account,
                                &a.device.0,
                                &a.hostname,
                                &a.metric,
                                &series,
                                &a.fired_at,
                                &a.last_value,
                            ],
                        )
                        .await?;
                    }
                    AlertChange::Value {
                        config_id,
                        device,
                        series,
                        value,
                    } => {
                        let stmt = tx
                            .prepare_cached(
                                "UPDATE alerts SET last_value = $4 WHERE config_id = $1
                                 AND device = $2 AND series = $3 AND closed_at IS NULL",
                            )
                            .await?;
                        tx.execute(&stmt, &[&config_id.0, &device.0, series, value])
                            .await?;
                    }
                    AlertChange::Close {
                        config_id,
                        device,
                        series,
                        at,
                        value,
                    } => {
                        let stmt = tx
                            .prepare_cached(
                                "UPDATE alerts SET closed_at = $4,
                                   last_value = COALESCE($5, last_value)
                                 WHERE config_id = $1 AND device = $2 AND series = $3
                                 AND closed_at IS NULL",
                            )
                            .await?;
                        tx.execute(&stmt, &[&config_id.0, &device.0, series, at, value])
                            .await?;
                    }
                }
            }
            tx.commit().await?;
            Ok(())
        })
    }

    fn triggered(
        &self,
        closed: bool,
        account: Option<&str>,
    ) -> Result<Vec<TriggeredAlert>, StoreError> {
        self.block_on(async {
            let c = self.client().await?;
            let sql = format!(
                "SELECT id, config_id, account, device, hostname, metric, series, fired_at,
                        closed_at, last_value
                 FROM alerts WHERE closed_at IS {} NULL AND ($1::text IS NULL OR account = $1)
                 ORDER BY id DESC LIMIT 1000",
                if closed { "NOT" } else { "" }
            );
            let rows = c.query(&sql, &[&account]).await?;
            Ok(rows
                .iter()
                .map(|r| TriggeredAlert {
                    id: r.get(0),
                    config_id: ConfigId(r.get(1)),
                    account: r.get(2),
                    device: DeviceId(r.get(3)),
                    hostname: r.get(4),
                    metric: r.get(5),
                    series: series_labels(r.get(6)),
                    fired_at: r.get(7),
                    closed_at: r.get(8),
                    last_value: r.get(9),
                })
                .collect())
        })
    }
}

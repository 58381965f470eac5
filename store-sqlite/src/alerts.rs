//! [`AlertStateStore`] on SQLite: each device's rule state (`alert_device_state`, with its
//! partition) and the alerts that fired (`alerts`, at most one open row per (config,
//! device, series): a partial unique index holds it), written in one transaction per
//! batch. A commit checks its fences against `partition_epochs` inside its write
//! (immediate) transaction, so no claim can come between the check and the writes.

use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};
use squall_alerting::ids::{ConfigId, DeviceId};
use squall_alerting::store::{
    series_key, series_labels, AlertChange, AlertStateStore, Fence, StateRow, StoreError,
    TriggeredAlert,
};

use crate::{run, Result, SqliteStore};

/// Claims `partition` in the epochs table `table`: its new epoch.
pub(crate) fn claim(conn: &Connection, table: &'static str, partition: i32) -> Result<i64> {
    Ok(conn.query_row(
        &format!(
            "INSERT INTO {table} (partition, epoch) VALUES (?1, 1)
             ON CONFLICT (partition) DO UPDATE SET epoch = epoch + 1
             RETURNING epoch"
        ),
        params![partition],
        |r| r.get(0),
    )?)
}

/// Refuses the (immediate) transaction unless every fence's epoch is still its
/// partition's latest in the epochs table `table`.
pub(crate) fn check_fences(conn: &Connection, table: &'static str, fences: &[Fence]) -> Result<()> {
    for f in fences {
        let epoch: Option<i64> = conn
            .query_row(
                &format!("SELECT epoch FROM {table} WHERE partition = ?1"),
                params![f.partition],
                |r| r.get(0),
            )
            .optional()?;
        if epoch != Some(f.epoch) {
            return Err(StoreError::Fenced {
                partition: f.partition,
                epoch: f.epoch,
            }
            .into());
        }
    }
    Ok(())
}

impl AlertStateStore for SqliteStore {
    fn device_state(&self, device: DeviceId) -> Result<Option<Vec<u8>>, StoreError> {
        run(|| {
            Ok(self
                .conn()
                .query_row(
                    "SELECT state FROM alert_device_state WHERE device = ?1",
                    params![device.0],
                    |r| r.get(0),
                )
                .optional()?)
        })
    }

    fn device_states(
        &self,
        partition: Option<i32>,
        keep: &dyn Fn(DeviceId) -> bool,
    ) -> Result<Vec<(DeviceId, String, Vec<u8>)>, StoreError> {
        run(|| {
            let conn = self.conn();
            let mut stmt = conn.prepare(
                "SELECT device, account, state FROM alert_device_state
                 WHERE ?1 IS NULL OR partition = ?1",
            )?;
            let rows = stmt.query_map(params![partition], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })?;
            let mut out = Vec::new();
            for row in rows {
                let (device, account, blob): (i64, String, Vec<u8>) = row?;
                if keep(DeviceId(device)) {
                    out.push((DeviceId(device), account, blob));
                }
            }
            Ok(out)
        })
    }

    fn claim_partition(&self, partition: i32) -> Result<i64, StoreError> {
        run(|| claim(&self.conn(), "partition_epochs", partition))
    }

    fn commit(
        &self,
        fences: &[Fence],
        states: &[StateRow<'_>],
        changes: &[AlertChange],
    ) -> Result<(), StoreError> {
        run(|| {
            let mut conn = self.conn();
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            check_fences(&tx, "partition_epochs", fences)?;
            {
                let mut put = tx.prepare_cached(
                    "INSERT INTO alert_device_state (device, account, partition, state)
                     VALUES (?1, ?2, ?3, ?4)
                     ON CONFLICT(device) DO UPDATE SET account = ?2, partition = ?3, state = ?4",
                )?;
                for row in states {
                    put.execute(params![row.device.0, row.account, row.partition, row.blob])?;
                }
                for change in changes {
                    match change {
                        AlertChange::Open(a) => {
                            // A leftover open row (a config edited under it) closes first, so
                            // there is never more than one open alert per key.
                            tx.execute(
                                "UPDATE alerts SET closed_at = ?4 WHERE config_id = ?1 AND device = ?2
                                 AND series = ?3 AND closed_at IS NULL",
                                params![a.config_id.0, a.device.0, series_key(&a.series), a.fired_at],
                            )?;
                            tx.execute(
                                "INSERT INTO alerts (config_id, account, device, hostname, metric,
                                 series, fired_at, last_value) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                                params![
                                    a.config_id.0,
                                    a.account,
                                    a.device.0,
                                    a.hostname,
                                    a.metric,
                                    series_key(&a.series),
                                    a.fired_at,
                                    a.last_value
                                ],
                            )?;
                        }
                        AlertChange::Value {
                            config_id,
                            device,
                            series,
                            value,
                        } => {
                            tx.execute(
                                "UPDATE alerts SET last_value = ?4 WHERE config_id = ?1 AND device = ?2
                                 AND series = ?3 AND closed_at IS NULL",
                                params![config_id.0, device.0, series, value],
                            )?;
                        }
                        AlertChange::Close {
                            config_id,
                            device,
                            series,
                            at,
                            value,
                        } => {
                            tx.execute(
                                "UPDATE alerts SET closed_at = ?4, last_value = COALESCE(?5, last_value)
                                 WHERE config_id = ?1 AND device = ?2 AND series = ?3
                                 AND closed_at IS NULL",
                                params![config_id.0, device.0, series, at, value],
                            )?;
                        }
                    }
                }
            }
            tx.commit()?;
            Ok(())
        })
    }

    fn triggered(
        &self,
        closed: bool,
        account: Option<&str>,
    ) -> Result<Vec<TriggeredAlert>, StoreError> {
        run(|| {
            let conn = self.conn();
            let sql = format!(
                "SELECT id, config_id, account, device, hostname, metric, series, fired_at,
                        closed_at, last_value
                 FROM alerts WHERE closed_at IS {} NULL AND (?1 IS NULL OR account = ?1)
                 ORDER BY id DESC LIMIT 1000",
                if closed { "NOT" } else { "" }
            );
            let mut stmt = conn.prepare(&sql)?;
            let rows = stmt.query_map(params![account], |r| {
                Ok(TriggeredAlert {
                    id: r.get(0)?,
                    config_id: ConfigId(r.get(1)?),
                    account: r.get(2)?,
                    device: DeviceId(r.get(3)?),
                    hostname: r.get(4)?,
                    metric: r.get(5)?,
                    series: series_labels(&r.get::<_, String>(6)?),
                    fired_at: r.get(7)?,
                    closed_at: r.get(8)?,
                    last_value: r.get(9)?,
                })
            })?;
            Ok(rows.collect::<rusqlite::Result<_>>()?)
        })
    }
}

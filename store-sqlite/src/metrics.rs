//! [`MetricStore`] on SQLite.
//!
//! One row per device and minute holds all of that minute's points (per point a series id
//! from `metric_series` and the value: 12 bytes), so storing a payload of sixty points costs
//! one row write of ~720 bytes, not sixty (plus a "this hour changed" mark, written once per
//! device and hour). A device's latest values are its newest minute. Hourly aggregates are
//! rolled up from the minutes by [`MetricStore::roll_up`] once an hour has passed (the
//! `store` bolt runs it every minute, and before retention deletes anything); an hour that
//! is still open or was changed by a late payload is computed from its minutes when
//! queried, so a query never sees a stale aggregate.
//!
//! Writes are idempotent under replay: a minute keeps the payload with the latest event
//! time (a later payload in the same minute replaces it), so the newest minute only moves
//! forward; aggregates are recomputed from the minutes, never incremented.

use std::collections::{BTreeMap, HashMap};

use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};
use squall_alerting::ids::DeviceId;
use squall_alerting::payload::MetricPoint;
use squall_alerting::store::{
    aggregate_hour, hour_points, hours_within, latest_key, minute_of, minute_points,
    minutes_within, series_id_key, HourRows, MetricStore, MinutePoints, StoreError, StoredPoint,
};

use crate::{decode, encode, run, Inner, Result, SqliteStore};

/// The first byte of a minute row in the compact format: then, per point, the series id
/// (u32) and the value (f64), little-endian. Rows without it are MessagePack lists of
/// `(metric, series, value)` (the first version 2 rows).
const COMPACT: u8 = 0;

/// `metric_series` ids, as far as this connection has seen them.
#[derive(Debug, Default)]
pub(crate) struct SeriesIds {
    /// `metric\0series` -> id (Fx hash: SipHash was a tenth of the writer thread).
    ids: HashMap<String, u32, rustc_hash::FxBuildHasher>,
    /// id -> (metric, series).
    names: HashMap<u32, (String, String)>,
}

impl SeriesIds {
    /// Gives every key in `keys` an id, in a transaction of its own (committed before any
    /// row uses the ids, so no connection can see an id that was rolled back).
    fn register(&mut self, conn: &mut Connection, keys: &[String]) -> Result<()> {
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let mut got = Vec::with_capacity(keys.len());
        {
            let mut insert = tx.prepare_cached(
                "INSERT OR IGNORE INTO metric_series (metric, series) VALUES (?1, ?2)",
            )?;
            let mut select = tx
                .prepare_cached("SELECT id FROM metric_series WHERE metric = ?1 AND series = ?2")?;
            for key in keys {
                let (metric, series) = key.split_once('\0').unwrap_or((key, ""));
                insert.execute(params![metric, series])?;
                let id: u32 = select.query_row(params![metric, series], |r| r.get(0))?;
                got.push((key.clone(), id, metric.to_string(), series.to_string()));
            }
        }
        tx.commit()?;
        for (key, id, metric, series) in got {
            self.ids.insert(key, id);
            self.names.insert(id, (metric, series));
        }
        Ok(())
    }

    /// The (metric, series) of `id`, read from the table if another connection made it.
    fn name(&mut self, conn: &Connection, id: u32) -> Result<&(String, String)> {
        match self.names.entry(id) {
            std::collections::hash_map::Entry::Occupied(e) => Ok(e.into_mut()),
            std::collections::hash_map::Entry::Vacant(e) => {
                let name: (String, String) = conn
                    .prepare_cached("SELECT metric, series FROM metric_series WHERE id = ?1")?
                    .query_row(params![id], |r| Ok((r.get(0)?, r.get(1)?)))
                    .optional()?
                    .ok_or_else(|| StoreError::Invalid {
                        field: "points",
                        message: format!("a stored row names series {id}, which does not exist"),
                    })?;
                Ok(e.insert(name))
            }
        }
    }

    /// A minute row's points.
    fn decode(&mut self, conn: &Connection, blob: &[u8]) -> Result<MinutePoints> {
        let Some((&COMPACT, rest)) = blob.split_first() else {
            return decode("points", blob);
        };
        let mut out = Vec::with_capacity(rest.len() / 12);
        for chunk in rest.chunks_exact(12) {
            let id = u32::from_le_bytes(chunk[..4].try_into().expect("4 bytes"));
            let value = f64::from_le_bytes(chunk[4..].try_into().expect("8 bytes"));
            let (metric, series) = self.name(conn, id)?;
            out.push((metric.clone(), series.clone(), value));
        }
        Ok(out)
    }
}

impl MetricStore for SqliteStore {
    fn write(&self, batch: &[(DeviceId, f64, &[MetricPoint])]) -> Result<(), StoreError> {
        run(|| {
            let mut guard = self.lock();
            let Inner { conn, series } = &mut *guard;
            let mut key = String::new();
            // Each point's series id, in batch order (`u32::MAX`: not registered yet). The
            // key of a point is built once: building it is most of this thread's work.
            let mut point_ids: Vec<u32> = Vec::with_capacity(batch.iter().map(|b| b.2.len()).sum());
            // New series in first-seen order, each with the indices of its points; the map
            // makes each check O(1), so a payload of 100,000 new names costs 100,000
            // lookups, not 10^10 comparisons.
            let mut unknown: Vec<String> = Vec::new();
            let mut waiting: HashMap<String, Vec<usize>> = HashMap::default();
            for (_, _, points) in batch {
                for p in points.iter() {
                    series_id_key(p, &mut key);
                    match series.ids.get(key.as_str()) {
                        Some(&id) => point_ids.push(id),
                        None => {
                            let at = point_ids.len();
                            point_ids.push(u32::MAX);
                            match waiting.get_mut(key.as_str()) {
                                Some(list) => list.push(at),
                                None => {
                                    unknown.push(key.clone());
                                    waiting.insert(key.clone(), vec![at]);
                                }
                            }
                        }
                    }
                }
            }
            if !unknown.is_empty() {
                series.register(conn, &unknown)?;
                for (k, at) in &waiting {
                    let id = series.ids[k.as_str()];
                    for &i in at {
                        point_ids[i] = id;
                    }
                }
            }
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            {
                let mut minute = tx.prepare_cached(
                    "INSERT INTO metric_minutes (device, minute, time, points) VALUES (?1, ?2, ?3, ?4)
                     ON CONFLICT (device, minute) DO UPDATE
                     SET time = excluded.time, points = excluded.points
                     WHERE excluded.time >= metric_minutes.time",
                )?;
                let mut changed = tx.prepare_cached(
                    "INSERT OR IGNORE INTO metric_hours_changed (device, hour) VALUES (?1, ?2)",
                )?;
                let mut row: Vec<u8> = Vec::new();
                let mut ids = point_ids.iter();
                for (device, time, points) in batch {
                    let m = minute_of(*time);
                    row.clear();
                    row.push(COMPACT);
                    for (p, id) in points.iter().zip(ids.by_ref()) {
                        row.extend_from_slice(&id.to_le_bytes());
                        row.extend_from_slice(&p.value.to_le_bytes());
                    }
                    minute.execute(params![device.0, m, time, row])?;
                    changed.execute(params![device.0, m.div_euclid(60)])?;
                }
            }
            tx.commit()?;
            Ok(())
        })
    }

    fn roll_up(&self, now: f64, limit: usize) -> Result<usize, StoreError> {
        run(|| {
            let current_hour = (now / 3600.0).floor() as i64;
            let limit = i64::try_from(limit).unwrap_or(i64::MAX);
            let mut guard = self.lock();
            let Inner { conn, series } = &mut *guard;
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let hours: Vec<(i64, i64)> = {
                let mut stmt = tx.prepare(
                    "SELECT device, hour FROM metric_hours_changed WHERE hour < ?1
                     ORDER BY hour, device LIMIT ?2",
                )?;
                let rows =
                    stmt.query_map(params![current_hour, limit], |r| Ok((r.get(0)?, r.get(1)?)))?;
                rows.collect::<rusqlite::Result<_>>()?
            };
            for (device, hour) in &hours {
                let aggregates: HourRows = aggregate_minutes(&tx, series, *device, *hour)?;
                tx.execute(
                    "INSERT OR REPLACE INTO metric_hours (device, hour, aggregates) VALUES (?1, ?2, ?3)",
                    params![device, hour, encode("aggregates", &aggregates)?],
                )?;
                tx.execute(
                    "DELETE FROM metric_hours_changed WHERE device = ?1 AND hour = ?2",
                    params![device, hour],
                )?;
            }
            tx.commit()?;
            Ok(hours.len())
        })
    }

    fn latest(&self, device: DeviceId) -> Result<Option<(f64, serde_json::Value)>, StoreError> {
        run(|| {
            let mut guard = self.lock();
            let Inner { conn, series } = &mut *guard;
            let row: Option<(f64, Vec<u8>)> = conn
                .query_row(
                    "SELECT time, points FROM metric_minutes WHERE device = ?1
                     ORDER BY minute DESC LIMIT 1",
                    params![device.0],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()?;
            let Some((time, blob)) = row else {
                return Ok(None);
            };
            let points = series.decode(conn, &blob)?;
            let values = points
                .into_iter()
                .map(|(metric, series, value)| (latest_key(&metric, &series), value.into()))
                .collect::<serde_json::Map<_, _>>();
            Ok(Some((time, serde_json::Value::Object(values))))
        })
    }

    fn query(
        &self,
        device: DeviceId,
        metric: &str,
        series: Option<&str>,
        from: i64,
        to: i64,
        hourly: bool,
    ) -> Result<Vec<StoredPoint>, StoreError> {
        run(|| {
            let mut guard = self.lock();
            let Inner { conn, series: ids } = &mut *guard;
            if hourly {
                let (first, last) = hours_within(from, to);
                let mut hours: BTreeMap<i64, HourRows> = BTreeMap::new();
                let mut stmt = conn.prepare_cached(
                    "SELECT hour, aggregates FROM metric_hours
                     WHERE device = ?1 AND hour >= ?2 AND hour <= ?3",
                )?;
                let mut rows = stmt.query(params![device.0, first, last])?;
                while let Some(r) = rows.next()? {
                    hours.insert(r.get(0)?, decode("aggregates", &r.get::<_, Vec<u8>>(1)?)?);
                }
                // Hours still open or changed since their roll-up come from their minutes.
                let mut stmt = conn.prepare_cached(
                    "SELECT hour FROM metric_hours_changed WHERE device = ?1 AND hour >= ?2 AND hour <= ?3",
                )?;
                let changed = stmt
                    .query_map(params![device.0, first, last], |r| r.get::<_, i64>(0))?
                    .collect::<rusqlite::Result<Vec<_>>>()?;
                for hour in changed {
                    hours.insert(hour, aggregate_minutes(conn, ids, device.0, hour)?);
                }
                return Ok(hour_points(hours, metric, series));
            }
            let (first, last) = minutes_within(from, to);
            let mut stmt = conn.prepare_cached(
                "SELECT minute, points FROM metric_minutes
                 WHERE device = ?1 AND minute >= ?2 AND minute <= ?3 ORDER BY minute",
            )?;
            let mut rows = stmt.query(params![device.0, first, last])?;
            let mut minutes = Vec::new();
            while let Some(r) = rows.next()? {
                let minute: i64 = r.get(0)?;
                minutes.push((minute, ids.decode(conn, &r.get::<_, Vec<u8>>(1)?)?));
            }
            Ok(minute_points(minutes, metric, series))
        })
    }

    fn retain(&self, now: f64, days: u32) -> Result<usize, StoreError> {
        run(|| {
            // Every hour holding a minute about to go is rolled up first.
            self.roll_up(now - f64::from(days) * 86_400.0 + 3600.0, usize::MAX)?;
            let cutoff_minute = ((now - f64::from(days) * 86_400.0) / 60.0).floor() as i64;
            Ok(self.lock().conn.execute(
                "DELETE FROM metric_minutes WHERE minute < ?1
                   AND minute < (SELECT MAX(m.minute) FROM metric_minutes m
                                 WHERE m.device = metric_minutes.device)",
                params![cutoff_minute],
            )?)
        })
    }
}

/// The aggregates of `device`'s `hour`, from its minute rows.
fn aggregate_minutes(
    conn: &Connection,
    series: &mut SeriesIds,
    device: i64,
    hour: i64,
) -> Result<HourRows> {
    let mut stmt = conn.prepare_cached(
        "SELECT points FROM metric_minutes
         WHERE device = ?1 AND minute >= ?2 AND minute < ?3 ORDER BY minute",
    )?;
    let mut rows = stmt.query(params![device, hour * 60, (hour + 1) * 60])?;
    let mut minutes: Vec<MinutePoints> = Vec::new();
    while let Some(r) = rows.next()? {
        minutes.push(series.decode(conn, &r.get::<_, Vec<u8>>(0)?)?);
    }
    Ok(aggregate_hour(minutes.iter().map(Vec::as_slice)))
}

#[cfg(test)]
mod tests {
    use super::*;

    use squall_alerting::store::conformance::sample_points as points;

    #[test]
    fn another_connection_reads_series_this_one_registered_and_old_rows_still_decode() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("metrics.db");
        let a = SqliteStore::open(&path).unwrap();
        let b = SqliteStore::open(&path).unwrap();
        b.write(&[(DeviceId(1), 60.0, points(1.5).as_slice())])
            .unwrap(); // b registers the series
        a.write(&[(DeviceId(2), 60.0, points(2.5).as_slice())])
            .unwrap(); // a learns them on write
        let (_, latest) = a.latest(DeviceId(1)).unwrap().unwrap(); // ... and reads b's rows
        assert_eq!(latest["system.load.1"], 1.5);
        assert_eq!(latest["system.disk.in_use{device_name=/dev/sda1}"], 0.5);
        // A row of the first compact-less format (MessagePack names) still reads.
        let old = rmp_serde::to_vec(&vec![("system.load.1", "", 9.0)]).unwrap();
        a.conn()
            .execute(
                "INSERT INTO metric_minutes (device, minute, time, points) VALUES (3, 1, 60.0, ?1)",
                params![old],
            )
            .unwrap();
        assert_eq!(
            b.latest(DeviceId(3)).unwrap().unwrap().1["system.load.1"],
            9.0
        );
    }
}

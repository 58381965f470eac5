//! [`MetricStore`] on PostgreSQL.
//!
//! The layout of the SQLite backend: one row per device and minute holds all of that
//! minute's points (per point a series id from `metric_series` and the value, 12 bytes), so
//! storing a batch of payloads is one multi-row upsert of minute rows plus one of "this
//! hour changed" marks. Hourly aggregates are rolled up from the minutes once an hour has
//! passed; an hour still open or changed since is computed from its minutes when queried.
//!
//! Invariants:
//! - Writes are idempotent under replay: a minute keeps the payload with the latest event
//!   time (within a batch and against the table), aggregates are recomputed, never
//!   incremented.
//! - A series id is committed (in its own statement) before any minute row uses it.
//! - A mark counts the writes to its hour (`changes`); a roll-up deletes a mark only if
//!   no write came after the one it read, so a write racing a roll-up on another process
//!   is never left out of the hour's aggregate.
//! - Rows are written in (device, minute) order, so two processes writing the same rows
//!   lock them in the same order.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use deadpool_postgres::GenericClient;
use squall_alerting::ids::DeviceId;
use squall_alerting::payload::MetricPoint;
use squall_alerting::store::{
    aggregate_hour, hour_points, hours_within, latest_key, minute_of, minute_points,
    minutes_within, series_id_key, HourRows, MetricStore, MinutePoints, StoreError, StoredPoint,
};

use crate::{decode, encode, PgStore, Result};

/// The first byte of a minute row: then, per point, the series id (u32) and the value
/// (f64), little-endian.
const COMPACT: u8 = 0;

/// `metric_series` ids, as far as this process has seen them.
#[derive(Debug, Default)]
pub(crate) struct SeriesIds {
    /// `metric\0series` -> id.
    ids: HashMap<String, u32>,
    /// id -> (metric, series).
    names: HashMap<u32, (String, String)>,
}

impl SeriesIds {
    fn learn(&mut self, id: u32, metric: String, series: String) {
        self.ids.insert(format!("{metric}\0{series}"), id);
        self.names.insert(id, (metric, series));
    }

    /// The ids a minute row names that this process does not know yet.
    fn unknown_ids(&self, blob: &[u8], out: &mut BTreeSet<i32>) {
        if let Some((&COMPACT, rest)) = blob.split_first() {
            for chunk in rest.chunks_exact(12) {
                let id = u32::from_le_bytes(chunk[..4].try_into().expect("4 bytes"));
                if !self.names.contains_key(&id) {
                    out.insert(id as i32);
                }
            }
        }
    }

    /// A minute row's points (every id known: see [`PgStore::learn_ids`]).
    fn decode(&self, blob: &[u8]) -> Result<MinutePoints> {
        let Some((&COMPACT, rest)) = blob.split_first() else {
            return Err(StoreError::Invalid {
                field: "points",
                message: "a stored minute row is not in the compact format".into(),
            }
            .into());
        };
        let mut out = Vec::with_capacity(rest.len() / 12);
        for chunk in rest.chunks_exact(12) {
            let id = u32::from_le_bytes(chunk[..4].try_into().expect("4 bytes"));
            let value = f64::from_le_bytes(chunk[4..].try_into().expect("8 bytes"));
            let (metric, series) = self.names.get(&id).ok_or_else(|| StoreError::Invalid {
                field: "points",
                message: format!("a stored row names series {id}, which does not exist"),
            })?;
            out.push((metric.clone(), series.clone(), value));
        }
        Ok(out)
    }
}

impl PgStore {
    /// Gives every `metric\0series` key an id (inserted in key order, so processes
    /// registering overlapping sets never deadlock), and remembers it.
    async fn register(&self, c: &impl GenericClient, keys: &BTreeSet<String>) -> Result<()> {
        let (metrics, series): (Vec<&str>, Vec<&str>) = keys
            .iter()
            .map(|k| k.split_once('\0').unwrap_or((k, "")))
            .unzip();
        c.execute(
            "INSERT INTO metric_series (metric, series)
             SELECT * FROM unnest($1::text[], $2::text[]) ON CONFLICT DO NOTHING",
            &[&metrics, &series],
        )
        .await?;
        let rows = c
            .query(
                "SELECT s.id, s.metric, s.series FROM metric_series s
                 JOIN unnest($1::text[], $2::text[]) AS u(metric, series)
                   ON s.metric = u.metric AND s.series = u.series",
                &[&metrics, &series],
            )
            .await?;
        let mut cache = self.series();
        for r in rows {
            cache.learn(r.get::<_, i32>(0) as u32, r.get(1), r.get(2));
        }
        Ok(())
    }

    /// Reads the names of every series the rows name that this process does not know.
    async fn learn_ids(&self, c: &impl GenericClient, blobs: &[&[u8]]) -> Result<()> {
        let mut missing = BTreeSet::new();
        {
            let cache = self.series();
            for blob in blobs {
                cache.unknown_ids(blob, &mut missing);
            }
        }
        if missing.is_empty() {
            return Ok(());
        }
        let ids: Vec<i32> = missing.into_iter().collect();
        let rows = c
            .query(
                "SELECT id, metric, series FROM metric_series WHERE id = ANY($1)",
                &[&ids],
            )
            .await?;
        let mut cache = self.series();
        for r in rows {
            cache.learn(r.get::<_, i32>(0) as u32, r.get(1), r.get(2));
        }
        Ok(())
    }

    /// Decodes minute rows `(key, blob)`.
    async fn decode_rows<K>(
        &self,
        c: &impl GenericClient,
        rows: Vec<(K, Vec<u8>)>,
    ) -> Result<Vec<(K, MinutePoints)>> {
        let blobs: Vec<&[u8]> = rows.iter().map(|(_, b)| b.as_slice()).collect();
        self.learn_ids(c, &blobs).await?;
        let cache = self.series();
        rows.into_iter()
            .map(|(k, blob)| Ok((k, cache.decode(&blob)?)))
            .collect()
    }

    /// The aggregates of the minutes of (device, hour) pairs, read in one query.
    async fn aggregate(
        &self,
        c: &impl GenericClient,
        hours: &[(i64, i64)],
    ) -> Result<BTreeMap<(i64, i64), HourRows>> {
        let devices: Vec<i64> = hours.iter().map(|(d, _)| *d).collect();
        let starts: Vec<i64> = hours.iter().map(|(_, h)| h * 60).collect();
        let rows = c
            .query(
                "SELECT m.device, m.minute, m.points FROM metric_minutes m
                 JOIN unnest($1::bigint[], $2::bigint[]) AS u(device, start)
                   ON m.device = u.device AND m.minute >= u.start AND m.minute < u.start + 60
                 ORDER BY m.device, m.minute",
                &[&devices, &starts],
            )
            .await?;
        let rows: Vec<((i64, i64), Vec<u8>)> = rows
            .into_iter()
            .map(|r| {
                let minute: i64 = r.get(1);
                ((r.get(0), minute.div_euclid(60)), r.get(2))
            })
            .collect();
        let mut minutes: BTreeMap<(i64, i64), Vec<MinutePoints>> = BTreeMap::new();
        for (key, points) in self.decode_rows(c, rows).await? {
            minutes.entry(key).or_default().push(points);
        }
        Ok(minutes
            .into_iter()
            .map(|(key, ms)| (key, aggregate_hour(ms.iter().map(Vec::as_slice))))
            .collect())
    }
}

impl MetricStore for PgStore {
    fn write(&self, batch: &[(DeviceId, f64, &[MetricPoint])]) -> Result<(), StoreError> {
        if batch.is_empty() {
            return Ok(());
        }
        let mut key = String::new();
        // Each point's series id, in batch order (`None`: not registered yet), with the
        // keys of the new series, each once, in key order. A point's key is built once.
        let mut unknown: BTreeSet<String> = BTreeSet::new();
        let mut point_ids: Vec<Option<u32>> = Vec::new();
        let mut waiting: Vec<(usize, String)> = Vec::new();
        {
            let cache = self.series();
            for (_, _, points) in batch {
                for p in points.iter() {
                    series_id_key(p, &mut key);
                    let id = cache.ids.get(key.as_str()).copied();
                    if id.is_none() {
                        waiting.push((point_ids.len(), key.clone()));
                        if !unknown.contains(key.as_str()) {
                            unknown.insert(key.clone());
                        }
                    }
                    point_ids.push(id);
                }
            }
        }
        self.block_on(async {
            let mut c = self.client().await?;
            if !unknown.is_empty() {
                self.register(&c, &unknown).await?;
                let cache = self.series();
                for (i, k) in &waiting {
                    point_ids[*i] = cache.ids.get(k.as_str()).copied();
                }
            }
            // One row per (device, minute): the payload with the latest event time (the
            // later one of equal times), as the table's upsert keeps.
            let mut rows: BTreeMap<(i64, i64), (f64, Vec<u8>)> = BTreeMap::new();
            let mut next = 0;
            for (device, time, points) in batch {
                let ids = &point_ids[next..next + points.len()];
                next += points.len();
                let slot = (device.0, minute_of(*time));
                if rows.get(&slot).is_some_and(|(t, _)| *t > *time) {
                    continue;
                }
                let mut row = Vec::with_capacity(1 + 12 * points.len());
                row.push(COMPACT);
                for (p, id) in points.iter().zip(ids) {
                    let id = id.ok_or_else(|| {
                        series_id_key(p, &mut key);
                        StoreError::backend(false, format!("series {key:?} has no id"))
                    })?;
                    row.extend_from_slice(&id.to_le_bytes());
                    row.extend_from_slice(&p.value.to_le_bytes());
                }
                rows.insert(slot, (*time, row));
            }
            let devices: Vec<i64> = rows.keys().map(|(d, _)| *d).collect();
            let minutes: Vec<i64> = rows.keys().map(|(_, m)| *m).collect();
            let times: Vec<f64> = rows.values().map(|(t, _)| *t).collect();
            let points: Vec<&[u8]> = rows.values().map(|(_, p)| p.as_slice()).collect();
            let hours: BTreeSet<(i64, i64)> =
                rows.keys().map(|(d, m)| (*d, m.div_euclid(60))).collect();
            let hour_devices: Vec<i64> = hours.iter().map(|(d, _)| *d).collect();
            let hour_numbers: Vec<i64> = hours.iter().map(|(_, h)| *h).collect();
            let tx = c.transaction().await?;
            let upsert = tx
                .prepare_cached(
                    "INSERT INTO metric_minutes (device, minute, time, points)
                     SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::float8[], $4::bytea[])
                     ON CONFLICT (device, minute) DO UPDATE
                     SET time = excluded.time, points = excluded.points
                     WHERE excluded.time >= metric_minutes.time",
                )
                .await?;
            tx.execute(&upsert, &[&devices, &minutes, &times, &points])
                .await?;
            let mark = tx
                .prepare_cached(
                    "INSERT INTO metric_hours_changed (device, hour, changes)
                     SELECT d, h, 1 FROM unnest($1::bigint[], $2::bigint[]) AS u(d, h)
                     ON CONFLICT (device, hour) DO UPDATE
                     SET changes = metric_hours_changed.changes + 1",
                )
                .await?;
            tx.execute(&mark, &[&hour_devices, &hour_numbers]).await?;
            tx.commit().await?;
            Ok(())
        })
    }

    fn roll_up(&self, now: f64, limit: usize) -> Result<usize, StoreError> {
        let current_hour = (now / 3600.0).floor() as i64;
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.block_on(async {
            let mut c = self.client().await?;
            let tx = c.transaction().await?;
            // Marks another process is rolling up are skipped, not waited for: processes
            // share the work. A write to a held mark waits for this transaction.
            let marks: Vec<(i64, i64, i64)> = tx
                .query(
                    "SELECT device, hour, changes FROM metric_hours_changed WHERE hour < $1
                     ORDER BY hour, device LIMIT $2 FOR UPDATE SKIP LOCKED",
                    &[&current_hour, &limit],
                )
                .await?
                .into_iter()
                .map(|r| (r.get(0), r.get(1), r.get(2)))
                .collect();
            if marks.is_empty() {
                return Ok(0);
            }
            let hours: Vec<(i64, i64)> = marks.iter().map(|(d, h, _)| (*d, *h)).collect();
            let aggregates = self.aggregate(&tx, &hours).await?;
            let (mut devices, mut numbers, mut blobs) = (Vec::new(), Vec::new(), Vec::new());
            for ((device, hour), rows) in &aggregates {
                devices.push(*device);
                numbers.push(*hour);
                blobs.push(encode("aggregates", rows)?);
            }
            let changes: Vec<i64> = marks.iter().map(|(_, _, n)| *n).collect();
            let (mark_devices, mark_hours): (Vec<i64>, Vec<i64>) = hours.iter().copied().unzip();
            tx.execute(
                "INSERT INTO metric_hours (device, hour, aggregates)
                 SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::bytea[])
                 ON CONFLICT (device, hour) DO UPDATE SET aggregates = excluded.aggregates",
                &[&devices, &numbers, &blobs],
            )
            .await?;
            tx.execute(
                "DELETE FROM metric_hours_changed c
                 USING unnest($1::bigint[], $2::bigint[], $3::bigint[]) AS u(device, hour, changes)
                 WHERE c.device = u.device AND c.hour = u.hour AND c.changes = u.changes",
                &[&mark_devices, &mark_hours, &changes],
            )
            .await?;
            tx.commit().await?;
            Ok(marks.len())
        })
    }

    fn latest(&self, device: DeviceId) -> Result<Option<(f64, serde_json::Value)>, StoreError> {
        self.block_on(async {
            let c = self.client().await?;
            let stmt = c
                .prepare_cached(
                    "SELECT time, points FROM metric_minutes WHERE device = $1
                     ORDER BY minute DESC LIMIT 1",
                )
                .await?;
            let Some(row) = c.query_opt(&stmt, &[&device.0]).await? else {
                return Ok(None);
            };
            let time: f64 = row.get(0);
            let rows = self.decode_rows(&c, vec![((), row.get(1))]).await?;
            let values = rows
                .into_iter()
                .flat_map(|(_, points)| points)
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
        self.block_on(async {
            let c = self.client().await?;
            if hourly {
                let (first, last) = hours_within(from, to);
                let mut hours: BTreeMap<i64, HourRows> = BTreeMap::new();
                for r in c
                    .query(
                        "SELECT hour, aggregates FROM metric_hours
                         WHERE device = $1 AND hour >= $2 AND hour <= $3",
                        &[&device.0, &first, &last],
                    )
                    .await?
                {
                    hours.insert(r.get(0), decode("aggregates", r.get(1))?);
                }
                // Hours still open or changed since their roll-up come from their minutes.
                let changed: Vec<(i64, i64)> = c
                    .query(
                        "SELECT hour FROM metric_hours_changed
                         WHERE device = $1 AND hour >= $2 AND hour <= $3",
                        &[&device.0, &first, &last],
                    )
                    .await?
                    .into_iter()
                    .map(|r| (device.0, r.get(0)))
                    .collect();
                if !changed.is_empty() {
                    let fresh = self.aggregate(&c, &changed).await?;
                    for (_, hour) in &changed {
                        hours.insert(
                            *hour,
                            fresh.get(&(device.0, *hour)).cloned().unwrap_or_default(),
                        );
                    }
                }
                return Ok(hour_points(hours, metric, series));
            }
            let (first, last) = minutes_within(from, to);
            let rows: Vec<(i64, Vec<u8>)> = c
                .query(
                    "SELECT minute, points FROM metric_minutes
                     WHERE device = $1 AND minute >= $2 AND minute <= $3 ORDER BY minute",
                    &[&device.0, &first, &last],
                )
                .await?
                .into_iter()
                .map(|r| (r.get(0), r.get(1)))
                .collect();
            let minutes = self.decode_rows(&c, rows).await?;
            Ok(minute_points(minutes, metric, series))
        })
    }

    fn retain(&self, now: f64, days: u32) -> Result<usize, StoreError> {
        // Every hour holding a minute about to go is rolled up first.
        self.roll_up(now - f64::from(days) * 86_400.0 + 3600.0, usize::MAX)?;
        let cutoff_minute = ((now - f64::from(days) * 86_400.0) / 60.0).floor() as i64;
        self.block_on(async {
            let c = self.client().await?;
            let deleted = c
                .execute(
                    "DELETE FROM metric_minutes m WHERE m.minute < $1
                       AND m.minute < (SELECT MAX(x.minute) FROM metric_minutes x
                                       WHERE x.device = m.device)",
                    &[&cutoff_minute],
                )
                .await?;
            Ok(deleted as usize)
        })
    }
}

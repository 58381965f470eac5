//! Metric storage: the latest values per device, minute snapshots (kept for a retention
//! window) and hourly aggregates (kept forever), in SQLite.
//!
//! One row per device and minute holds all of that minute's points (per point a series id
//! from `metric_series` and the value: 12 bytes), so storing a payload of sixty points costs
//! one row write of ~720 bytes,
//! not sixty (plus a "this hour changed" mark, written once per device and hour). A
//! device's latest values are its newest minute. Hourly aggregates are rolled up from the minutes by
//! [`MetricsStore::roll_up`] once an hour has passed (the `store` bolt runs it every
//! minute, and before retention deletes anything); an hour that is still open or was
//! changed by a late payload is computed from its minutes when queried, so a query never
//! sees a stale aggregate.
//!
//! Writes are idempotent under replay: a minute keeps the payload with the latest event
//! time (a later payload in the same minute replaces it), so the newest minute only moves
//! forward; aggregates are recomputed from the minutes, never incremented. Replaying a payload therefore changes nothing.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Mutex;

use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};
use serde::Serialize;

use super::accounts::StoreError;
use super::payload::MetricPoint;

const MIGRATIONS: &[&str] = &[
    "CREATE TABLE metric_minutes (
        device INTEGER NOT NULL, metric TEXT NOT NULL, series TEXT NOT NULL,
        minute INTEGER NOT NULL, time REAL NOT NULL, value REAL NOT NULL,
        PRIMARY KEY (device, metric, series, minute)
    ) WITHOUT ROWID;
    CREATE TABLE metric_hours (
        device INTEGER NOT NULL, metric TEXT NOT NULL, series TEXT NOT NULL, hour INTEGER NOT NULL,
        count INTEGER NOT NULL, sum REAL NOT NULL, min REAL NOT NULL, max REAL NOT NULL, last REAL NOT NULL,
        PRIMARY KEY (device, metric, series, hour)
    ) WITHOUT ROWID;
    CREATE TABLE latest (device INTEGER PRIMARY KEY, time REAL NOT NULL, points TEXT NOT NULL);",
    // Version 2: one row per device and minute (a row per point made `store` the pipeline's
    // bottleneck). Data of version 1 is not carried over (no release ever wrote it).
    "DROP TABLE metric_minutes; DROP TABLE metric_hours; DROP TABLE latest;
    CREATE TABLE metric_minutes (
        device INTEGER NOT NULL, minute INTEGER NOT NULL, time REAL NOT NULL, points BLOB NOT NULL,
        PRIMARY KEY (device, minute)
    ) WITHOUT ROWID;
    CREATE TABLE metric_hours (
        device INTEGER NOT NULL, hour INTEGER NOT NULL, aggregates BLOB NOT NULL,
        PRIMARY KEY (device, hour)
    ) WITHOUT ROWID;
    CREATE TABLE metric_hours_changed (
        device INTEGER NOT NULL, hour INTEGER NOT NULL, PRIMARY KEY (device, hour)
    ) WITHOUT ROWID;
    CREATE TABLE latest (device INTEGER PRIMARY KEY, time REAL NOT NULL, minute INTEGER NOT NULL);",
    // Version 3: a device's latest values are its newest minute row (one page write less
    // per payload), and minute rows live in a rowid table, appended in arrival order, with
    // a small (device, minute) index: a WITHOUT ROWID table of kilobyte rows split and
    // rewrote a leaf page for nearly every payload.
    "DROP TABLE latest;
    CREATE TABLE metric_minutes_v3 (
        device INTEGER NOT NULL, minute INTEGER NOT NULL, time REAL NOT NULL, points BLOB NOT NULL,
        UNIQUE (device, minute)
    );
    INSERT INTO metric_minutes_v3 (device, minute, time, points)
        SELECT device, minute, time, points FROM metric_minutes;
    DROP TABLE metric_minutes;
    ALTER TABLE metric_minutes_v3 RENAME TO metric_minutes;
    CREATE TABLE metric_series (
        id INTEGER PRIMARY KEY, metric TEXT NOT NULL, series TEXT NOT NULL, UNIQUE (metric, series)
    );",
];

/// The series key of a point: its labels as `k=v` pairs joined by `,` (empty if none).
pub fn series_of(point: &MetricPoint) -> String {
    match point.labels.as_slice() {
        [] => String::new(),
        [(k, v)] => format!("{k}={v}"),
        labels => labels
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(","),
    }
}

/// `metric` or `metric{series}`: the keys of [`MetricsStore::latest`].
fn latest_key(metric: &str, series: &str) -> String {
    if series.is_empty() {
        metric.to_string()
    } else {
        format!("{metric}{{{series}}}")
    }
}

/// One stored value.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct StoredPoint {
    /// Metric name.
    pub metric: String,
    /// Series labels as `k=v,...`.
    pub series: String,
    /// Start of the minute or hour, epoch seconds.
    pub time: i64,
    /// The value (minutes), or the last value of the hour.
    pub value: f64,
    /// Hourly aggregates (absent for minutes).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hour: Option<HourAggregate>,
}

/// An hour's aggregate of its minute snapshots.
#[derive(Clone, Debug, PartialEq, Serialize, serde::Deserialize)]
pub struct HourAggregate {
    /// Minutes with a value.
    pub count: i64,
    /// Their sum.
    pub sum: f64,
    /// Smallest.
    pub min: f64,
    /// Largest.
    pub max: f64,
    /// Of the latest minute.
    pub last: f64,
}

impl HourAggregate {
    fn add(&mut self, value: f64) {
        self.count += 1;
        self.sum += value;
        self.min = self.min.min(value);
        self.max = self.max.max(value);
        self.last = value;
    }
}

/// A minute row's points as stored.
type MinutePoints = Vec<(String, String, f64)>;
/// An hour row's aggregates as stored.
type HourRows = Vec<(String, String, HourAggregate)>;

/// The first byte of a minute row in the compact format: then, per point, the series id
/// (u32) and the value (f64), little-endian. Rows without it are MessagePack lists of
/// `(metric, series, value)` (the first version 2 rows).
const COMPACT: u8 = 0;

/// `metric_series` ids, as far as this connection has seen them.
#[derive(Default)]
struct SeriesIds {
    /// `metric\0series` -> id.
    ids: HashMap<String, u32>,
    /// id -> (metric, series).
    names: HashMap<u32, (String, String)>,
}

impl SeriesIds {
    /// Writes `metric\0series` of `p` into `key`.
    fn key_of(p: &MetricPoint, key: &mut String) {
        key.clear();
        key.push_str(&p.name);
        key.push('\0');
        for (i, (k, v)) in p.labels.iter().enumerate() {
            if i > 0 {
                key.push(',');
            }
            key.push_str(k);
            key.push('=');
            key.push_str(v);
        }
    }

    /// Gives every key in `keys` an id, in a transaction of its own (committed before any
    /// row uses the ids, so no connection can see an id that was rolled back).
    fn register(&mut self, conn: &mut Connection, keys: &[String]) -> Result<(), StoreError> {
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
    fn name(&mut self, conn: &Connection, id: u32) -> Result<&(String, String), StoreError> {
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
    fn decode(&mut self, conn: &Connection, blob: &[u8]) -> Result<MinutePoints, StoreError> {
        let Some((&COMPACT, rest)) = blob.split_first() else {
            return decode(blob);
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

struct Inner {
    conn: Connection,
    series: SeriesIds,
}

fn decode<T: serde::de::DeserializeOwned>(blob: &[u8]) -> Result<T, StoreError> {
    rmp_serde::from_slice(blob).map_err(|e| StoreError::Invalid {
        field: "points",
        message: format!("a stored row does not decode: {e}"),
    })
}

fn encode<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, StoreError> {
    rmp_serde::to_vec(value).map_err(|e| StoreError::Invalid {
        field: "points",
        message: format!("cannot encode: {e}"),
    })
}

/// The metrics database.
pub struct MetricsStore {
    inner: Mutex<Inner>,
}

impl MetricsStore {
    /// Opens `sqlite://PATH` and runs pending migrations.
    pub fn open_url(url: &str) -> Result<Self, StoreError> {
        let path = url
            .strip_prefix("sqlite://")
            .ok_or_else(|| StoreError::Invalid {
                field: "db_url",
                message: format!("\"{url}\" is not sqlite://PATH"),
            })?;
        let mut conn = Connection::open(Path::new(path))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        // The metrics tables may share a file with the accounts, so they keep their own
        // schema version in a table rather than in `user_version`.
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS squall_metrics_schema (version INTEGER NOT NULL)",
        )?;
        let version: i64 = conn
            .query_row("SELECT version FROM squall_metrics_schema", [], |r| {
                r.get(0)
            })
            .optional()?
            .unwrap_or(0);
        for (i, sql) in MIGRATIONS.iter().enumerate().skip(version.max(0) as usize) {
            let tx = conn.transaction()?;
            tx.execute_batch(sql)?;
            tx.execute("DELETE FROM squall_metrics_schema", [])?;
            tx.execute(
                "INSERT INTO squall_metrics_schema (version) VALUES (?1)",
                params![i as i64 + 1],
            )?;
            tx.commit()?;
        }
        Ok(MetricsStore {
            inner: Mutex::new(Inner {
                conn,
                series: SeriesIds::default(),
            }),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Writes the points of several payloads `(device, event time, points)` in one
    /// transaction.
    pub fn write(&self, batch: &[(i64, f64, &[MetricPoint])]) -> Result<(), StoreError> {
        let mut guard = self.lock();
        let Inner { conn, series } = &mut *guard;
        let mut key = String::new();
        let mut unknown: Vec<String> = Vec::new();
        for (_, _, points) in batch {
            for p in points.iter() {
                SeriesIds::key_of(p, &mut key);
                if !series.ids.contains_key(key.as_str()) && !unknown.contains(&key) {
                    unknown.push(key.clone());
                }
            }
        }
        if !unknown.is_empty() {
            series.register(conn, &unknown)?;
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
            for (device, time, points) in batch {
                let m = (time / 60.0).floor() as i64;
                row.clear();
                row.push(COMPACT);
                for p in points.iter() {
                    SeriesIds::key_of(p, &mut key);
                    let id = series.ids[key.as_str()];
                    row.extend_from_slice(&id.to_le_bytes());
                    row.extend_from_slice(&p.value.to_le_bytes());
                }
                minute.execute(params![device, m, time, row])?;
                changed.execute(params![device, m.div_euclid(60)])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// Rolls up every changed hour that ended before `now` (epoch seconds) into its
    /// aggregate row, in one transaction. Returns how many hours were rolled up.
    pub fn roll_up(&self, now: f64) -> Result<usize, StoreError> {
        let current_hour = (now / 3600.0).floor() as i64;
        let mut guard = self.lock();
        let Inner { conn, series } = &mut *guard;
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let hours: Vec<(i64, i64)> = {
            let mut stmt =
                tx.prepare("SELECT device, hour FROM metric_hours_changed WHERE hour < ?1")?;
            let rows = stmt.query_map(params![current_hour], |r| Ok((r.get(0)?, r.get(1)?)))?;
            rows.collect::<rusqlite::Result<_>>()?
        };
        for (device, hour) in &hours {
            let aggregates: HourRows = aggregate_hour(&tx, series, *device, *hour)?
                .into_iter()
                .map(|((metric, series), a)| (metric, series, a))
                .collect();
            tx.execute(
                "INSERT OR REPLACE INTO metric_hours (device, hour, aggregates) VALUES (?1, ?2, ?3)",
                params![device, hour, encode(&aggregates)?],
            )?;
            tx.execute(
                "DELETE FROM metric_hours_changed WHERE device = ?1 AND hour = ?2",
                params![device, hour],
            )?;
        }
        tx.commit()?;
        Ok(hours.len())
    }

    /// The latest values of `device`: (event time, `{metric{series}: value}`).
    pub fn latest(&self, device: i64) -> Result<Option<(f64, serde_json::Value)>, StoreError> {
        let mut guard = self.lock();
        let Inner { conn, series } = &mut *guard;
        let row: Option<(f64, Vec<u8>)> = conn
            .query_row(
                "SELECT time, points FROM metric_minutes WHERE device = ?1
                 ORDER BY minute DESC LIMIT 1",
                params![device],
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
    }

    /// Minute snapshots or hourly aggregates of `metric` (optionally one series) of
    /// `device` between `from` and `to` (epoch seconds, inclusive), ordered by series and
    /// time.
    pub fn query(
        &self,
        device: i64,
        metric: &str,
        series: Option<&str>,
        from: i64,
        to: i64,
        hourly: bool,
    ) -> Result<Vec<StoredPoint>, StoreError> {
        let wanted = |m: &str, s: &str| m == metric && series.is_none_or(|want| want == s);
        let mut guard = self.lock();
        let Inner { conn, series: ids } = &mut *guard;
        let mut out = Vec::new();
        if hourly {
            let (first, last) = (
                from.div_euclid(3600) + i64::from(from.rem_euclid(3600) != 0),
                to.div_euclid(3600),
            );
            let mut hours: BTreeMap<i64, HourRows> = BTreeMap::new();
            {
                let mut stmt = conn.prepare_cached(
                    "SELECT hour, aggregates FROM metric_hours
                     WHERE device = ?1 AND hour >= ?2 AND hour <= ?3",
                )?;
                let mut rows = stmt.query(params![device, first, last])?;
                while let Some(r) = rows.next()? {
                    hours.insert(r.get(0)?, decode(&r.get::<_, Vec<u8>>(1)?)?);
                }
                // Hours still open or changed since their roll-up come from their minutes.
                let mut stmt = conn.prepare_cached(
                    "SELECT hour FROM metric_hours_changed WHERE device = ?1 AND hour >= ?2 AND hour <= ?3",
                )?;
                let changed = stmt
                    .query_map(params![device, first, last], |r| r.get::<_, i64>(0))?
                    .collect::<rusqlite::Result<Vec<_>>>()?;
                for hour in changed {
                    let rows = aggregate_hour(conn, ids, device, hour)?
                        .into_iter()
                        .map(|((m, s), a)| (m, s, a))
                        .collect();
                    hours.insert(hour, rows);
                }
            }
            for (hour, rows) in hours {
                for (m, s, a) in rows {
                    if wanted(&m, &s) {
                        out.push(StoredPoint {
                            metric: m,
                            series: s,
                            time: hour * 3600,
                            value: a.last,
                            hour: Some(a),
                        });
                    }
                }
            }
        } else {
            let (first, last) = (
                from.div_euclid(60) + i64::from(from.rem_euclid(60) != 0),
                to.div_euclid(60),
            );
            let mut stmt = conn.prepare_cached(
                "SELECT minute, points FROM metric_minutes
                 WHERE device = ?1 AND minute >= ?2 AND minute <= ?3 ORDER BY minute",
            )?;
            let mut rows = stmt.query(params![device, first, last])?;
            while let Some(r) = rows.next()? {
                let minute: i64 = r.get(0)?;
                let points = ids.decode(conn, &r.get::<_, Vec<u8>>(1)?)?;
                out.extend(points.into_iter().filter(|(m, s, _)| wanted(m, s)).map(
                    |(m, s, value)| StoredPoint {
                        metric: m,
                        series: s,
                        time: minute * 60,
                        value,
                        hour: None,
                    },
                ));
            }
        }
        out.sort_by(|a, b| a.series.cmp(&b.series).then(a.time.cmp(&b.time)));
        Ok(out)
    }

    /// Rolls up the hours that have ended (see [`MetricsStore::roll_up`]), then deletes
    /// minute snapshots older than `days` before `now` (epoch seconds), except each
    /// device's latest; hourly aggregates stay. Returns how many minute rows were deleted.
    pub fn retain(&self, now: f64, days: u32) -> Result<usize, StoreError> {
        self.roll_up(now)?;
        let cutoff_minute = ((now - f64::from(days) * 86_400.0) / 60.0).floor() as i64;
        Ok(self.lock().conn.execute(
            "DELETE FROM metric_minutes WHERE minute < ?1
               AND minute < (SELECT MAX(m.minute) FROM metric_minutes m
                             WHERE m.device = metric_minutes.device)",
            params![cutoff_minute],
        )?)
    }
}

/// The aggregates of `device`'s `hour`, from its minute rows.
fn aggregate_hour(
    conn: &Connection,
    series: &mut SeriesIds,
    device: i64,
    hour: i64,
) -> Result<BTreeMap<(String, String), HourAggregate>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT points FROM metric_minutes
         WHERE device = ?1 AND minute >= ?2 AND minute < ?3 ORDER BY minute",
    )?;
    let mut rows = stmt.query(params![device, hour * 60, (hour + 1) * 60])?;
    let mut out: BTreeMap<(String, String), HourAggregate> = BTreeMap::new();
    while let Some(r) = rows.next()? {
        let points = series.decode(conn, &r.get::<_, Vec<u8>>(0)?)?;
        for (metric, series, value) in points {
            out.entry((metric, series))
                .or_insert(HourAggregate {
                    count: 0,
                    sum: 0.0,
                    min: f64::INFINITY,
                    max: f64::NEG_INFINITY,
                    last: value,
                })
                .add(value);
        }
    }
    Ok(out)
}
#[cfg(test)]
mod tests {
    use super::*;

    fn points(load: f64) -> Vec<MetricPoint> {
        let mut disk = MetricPoint {
            name: "system.disk.in_use".into(),
            labels: Default::default(),
            value: 0.5,
        };
        disk.labels.push(("device_name", "/dev/sda1".into()));
        vec![
            MetricPoint {
                name: "system.load.1".into(),
                labels: Default::default(),
                value: load,
            },
            disk,
        ]
    }

    fn store() -> (MetricsStore, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("metrics.db").display());
        (MetricsStore::open_url(&url).unwrap(), dir)
    }

    #[test]
    fn minutes_hours_and_latest_are_idempotent_under_replay() {
        let (s, _d) = store();
        let t0 = 1_700_000_000.0 - (1_700_000_000.0 % 3600.0); // an hour boundary
        let (a, b, c) = (points(1.0), points(3.0), points(2.0));
        let batch = [
            (7, t0 + 10.0, a.as_slice()),
            (7, t0 + 70.0, b.as_slice()),
            (7, t0 + 130.0, c.as_slice()),
        ];
        s.write(&batch).unwrap();
        s.write(&batch).unwrap(); // replay
        s.write(&[(7, t0 + 20.0, points(9.0).as_slice())]).unwrap(); // late, same minute as the first
        let minutes = s
            .query(
                7,
                "system.load.1",
                Some(""),
                t0 as i64,
                t0 as i64 + 3600,
                false,
            )
            .unwrap();
        let values: Vec<f64> = minutes.iter().map(|p| p.value).collect();
        assert_eq!(
            values,
            [9.0, 3.0, 2.0],
            "the later event time in a minute wins"
        );
        let hours = s
            .query(7, "system.load.1", None, t0 as i64, t0 as i64, true)
            .unwrap();
        assert_eq!(
            hours[0].hour,
            Some(HourAggregate {
                count: 3,
                sum: 14.0,
                min: 2.0,
                max: 9.0,
                last: 2.0
            })
        );
        let hourly = |s: &MetricsStore| {
            s.query(7, "system.load.1", None, t0 as i64, t0 as i64, true)
                .unwrap()
        };
        assert_eq!(
            s.roll_up(t0 + 7200.0).unwrap(),
            1,
            "one device-hour changed"
        );
        assert_eq!(
            hourly(&s),
            hours,
            "the rolled-up hour equals the computed one"
        );
        assert_eq!(s.roll_up(t0 + 7200.0).unwrap(), 0, "nothing changed since");
        s.write(&[(7, t0 + 100.0, points(0.5).as_slice())]).unwrap(); // late, after the roll-up
        let late = hourly(&s)[0].hour.clone().unwrap();
        assert_eq!(
            (late.count, late.sum, late.min, late.last),
            (3, 11.5, 0.5, 2.0),
            "the late minute replaced the second; the aggregate follows"
        );
        assert_eq!(s.roll_up(t0 + 7200.0).unwrap(), 1);
        assert_eq!(hourly(&s)[0].hour, Some(late));
        let disk = s
            .query(
                7,
                "system.disk.in_use",
                Some("device_name=/dev/sda1"),
                0,
                i64::MAX,
                false,
            )
            .unwrap();
        assert_eq!(disk.len(), 3);
        let (time, latest) = s.latest(7).unwrap().unwrap();
        assert_eq!(
            time,
            t0 + 130.0,
            "a late payload does not move the latest record back"
        );
        assert_eq!(latest["system.load.1"], 2.0);
        assert_eq!(latest["system.disk.in_use{device_name=/dev/sda1}"], 0.5);
    }

    #[test]
    fn another_connection_reads_series_this_one_registered_and_old_rows_still_decode() {
        let (a, dir) = store();
        let url = format!("sqlite://{}", dir.path().join("metrics.db").display());
        let b = MetricsStore::open_url(&url).unwrap();
        b.write(&[(1, 60.0, points(1.5).as_slice())]).unwrap(); // b registers the series
        a.write(&[(2, 60.0, points(2.5).as_slice())]).unwrap(); // a learns them on write
        let (_, latest) = a.latest(1).unwrap().unwrap(); // ... and reads b's rows
        assert_eq!(latest["system.load.1"], 1.5);
        assert_eq!(latest["system.disk.in_use{device_name=/dev/sda1}"], 0.5);
        // A row of the first version-2 format (MessagePack names) still reads.
        let old = rmp_serde::to_vec(&vec![("system.load.1", "", 9.0)]).unwrap();
        a.lock()
            .conn
            .execute(
                "INSERT INTO metric_minutes (device, minute, time, points) VALUES (3, 1, 60.0, ?1)",
                params![old],
            )
            .unwrap();
        assert_eq!(b.latest(3).unwrap().unwrap().1["system.load.1"], 9.0);
    }

    #[test]
    fn retention_deletes_old_minutes_and_keeps_hours() {
        let (s, _d) = store();
        let now = 1_700_000_000.0;
        let old = now - 6.0 * 86_400.0;
        s.write(&[
            (1, old, points(1.0).as_slice()),
            (1, now, points(2.0).as_slice()),
        ])
        .unwrap();
        assert_eq!(s.retain(now, 5).unwrap(), 1, "the old minute");
        assert!(s
            .query(1, "system.load.1", None, 0, old as i64 + 60, false)
            .unwrap()
            .is_empty());
        assert_eq!(
            s.query(1, "system.load.1", None, 0, i64::MAX, false)
                .unwrap()
                .len(),
            1
        );
        let hours = s
            .query(1, "system.load.1", None, 0, i64::MAX, true)
            .unwrap();
        assert_eq!(hours.len(), 2, "hourly aggregates stay");
    }
}

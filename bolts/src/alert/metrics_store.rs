//! Metric storage: the latest values per device, minute snapshots (kept for a retention
//! window) and hourly aggregates (kept forever), in SQLite.
//!
//! Writes are idempotent under replay: a minute snapshot is keyed by (device, metric,
//! series, minute) and keeps the value with the latest event time; an hour is recomputed
//! from its minutes whenever one of them changes; the latest-value record only moves
//! forward in event time. Replaying a payload therefore changes nothing.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Mutex;

use rusqlite::{params, Connection, OptionalExtension};
use serde::Serialize;

use super::accounts::StoreError;
use super::payload::MetricPoint;

const MIGRATIONS: &[&str] = &["CREATE TABLE metric_minutes (
        device INTEGER NOT NULL, metric TEXT NOT NULL, series TEXT NOT NULL,
        minute INTEGER NOT NULL, time REAL NOT NULL, value REAL NOT NULL,
        PRIMARY KEY (device, metric, series, minute)
    ) WITHOUT ROWID;
    CREATE TABLE metric_hours (
        device INTEGER NOT NULL, metric TEXT NOT NULL, series TEXT NOT NULL, hour INTEGER NOT NULL,
        count INTEGER NOT NULL, sum REAL NOT NULL, min REAL NOT NULL, max REAL NOT NULL, last REAL NOT NULL,
        PRIMARY KEY (device, metric, series, hour)
    ) WITHOUT ROWID;
    CREATE TABLE latest (device INTEGER PRIMARY KEY, time REAL NOT NULL, points TEXT NOT NULL);"];

/// The series key of a point: its labels as `k=v` pairs joined by `,` (empty if none).
pub fn series_of(point: &MetricPoint) -> String {
    point
        .labels
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
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
#[derive(Clone, Debug, PartialEq, Serialize)]
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

/// The metrics database.
pub struct MetricsStore {
    conn: Mutex<Connection>,
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
            conn: Mutex::new(conn),
        })
    }

    fn conn(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Writes the points of several payloads `(device, event time, points)` in one
    /// transaction.
    pub fn write(&self, batch: &[(i64, f64, &[MetricPoint])]) -> Result<(), StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let mut hours: BTreeSet<(i64, i64)> = BTreeSet::new();
        {
            let mut minute = tx.prepare_cached(
                "INSERT INTO metric_minutes (device, metric, series, minute, time, value)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                 ON CONFLICT (device, metric, series, minute) DO UPDATE
                 SET time = excluded.time, value = excluded.value WHERE excluded.time >= metric_minutes.time",
            )?;
            let mut latest = tx.prepare_cached(
                "INSERT INTO latest (device, time, points) VALUES (?1, ?2, ?3)
                 ON CONFLICT (device) DO UPDATE SET time = excluded.time, points = excluded.points
                 WHERE excluded.time >= latest.time",
            )?;
            for (device, time, points) in batch {
                let m = (time / 60.0).floor() as i64;
                hours.insert((*device, m.div_euclid(60)));
                let mut snapshot = serde_json::Map::new();
                for p in points.iter() {
                    let series = series_of(p);
                    minute.execute(params![device, p.name, series, m, time, p.value])?;
                    let key = if series.is_empty() {
                        p.name.clone()
                    } else {
                        format!("{}{{{series}}}", p.name)
                    };
                    snapshot.insert(key, p.value.into());
                }
                latest.execute(params![
                    device,
                    time,
                    serde_json::Value::Object(snapshot).to_string()
                ])?;
            }
            let mut hour = tx.prepare_cached(
                "INSERT OR REPLACE INTO metric_hours (device, metric, series, hour, count, sum, min, max, last)
                 SELECT device, metric, series, ?2, COUNT(*), SUM(value), MIN(value), MAX(value),
                        (SELECT m2.value FROM metric_minutes m2
                          WHERE m2.device = m.device AND m2.metric = m.metric AND m2.series = m.series
                            AND m2.minute >= ?2 * 60 AND m2.minute < (?2 + 1) * 60
                          ORDER BY m2.minute DESC LIMIT 1)
                 FROM metric_minutes m
                 WHERE device = ?1 AND minute >= ?2 * 60 AND minute < (?2 + 1) * 60
                 GROUP BY device, metric, series",
            )?;
            for (device, h) in hours {
                hour.execute(params![device, h])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// The latest values of `device`: (event time, `{metric{series}: value}`).
    pub fn latest(&self, device: i64) -> Result<Option<(f64, serde_json::Value)>, StoreError> {
        let row: Option<(f64, String)> = self
            .conn()
            .query_row(
                "SELECT time, points FROM latest WHERE device = ?1",
                params![device],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        Ok(row.map(|(t, p)| (t, serde_json::from_str(&p).unwrap_or_default())))
    }

    /// Minute snapshots or hourly aggregates of `metric` (optionally one series) of
    /// `device` between `from` and `to` (epoch seconds, inclusive).
    pub fn query(
        &self,
        device: i64,
        metric: &str,
        series: Option<&str>,
        from: i64,
        to: i64,
        hourly: bool,
    ) -> Result<Vec<StoredPoint>, StoreError> {
        let conn = self.conn();
        let out = if hourly {
            let mut stmt = conn.prepare(
                "SELECT metric, series, hour, count, sum, min, max, last FROM metric_hours
                 WHERE device = ?1 AND metric = ?2 AND (?3 IS NULL OR series = ?3)
                   AND hour * 3600 >= ?4 AND hour * 3600 <= ?5 ORDER BY series, hour",
            )?;
            let rows = stmt.query_map(params![device, metric, series, from, to], |r| {
                let last: f64 = r.get(7)?;
                Ok(StoredPoint {
                    metric: r.get(0)?,
                    series: r.get(1)?,
                    time: r.get::<_, i64>(2)? * 3600,
                    value: last,
                    hour: Some(HourAggregate {
                        count: r.get(3)?,
                        sum: r.get(4)?,
                        min: r.get(5)?,
                        max: r.get(6)?,
                        last,
                    }),
                })
            })?;
            rows.collect::<rusqlite::Result<Vec<_>>>()?
        } else {
            let mut stmt = conn.prepare(
                "SELECT metric, series, minute, value FROM metric_minutes
                 WHERE device = ?1 AND metric = ?2 AND (?3 IS NULL OR series = ?3)
                   AND minute * 60 >= ?4 AND minute * 60 <= ?5 ORDER BY series, minute",
            )?;
            let rows = stmt.query_map(params![device, metric, series, from, to], |r| {
                Ok(StoredPoint {
                    metric: r.get(0)?,
                    series: r.get(1)?,
                    time: r.get::<_, i64>(2)? * 60,
                    value: r.get(3)?,
                    hour: None,
                })
            })?;
            rows.collect::<rusqlite::Result<Vec<_>>>()?
        };
        Ok(out)
    }

    /// Deletes minute snapshots older than `days` before `now` (epoch seconds); hourly
    /// aggregates stay. Returns how many rows were deleted.
    pub fn retain(&self, now: f64, days: u32) -> Result<usize, StoreError> {
        let cutoff_minute = ((now - f64::from(days) * 86_400.0) / 60.0).floor() as i64;
        Ok(self.conn().execute(
            "DELETE FROM metric_minutes WHERE minute < ?1",
            params![cutoff_minute],
        )?)
    }
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
    fn retention_deletes_old_minutes_and_keeps_hours() {
        let (s, _d) = store();
        let now = 1_700_000_000.0;
        let old = now - 6.0 * 86_400.0;
        s.write(&[
            (1, old, points(1.0).as_slice()),
            (1, now, points(2.0).as_slice()),
        ])
        .unwrap();
        assert_eq!(
            s.retain(now, 5).unwrap(),
            2,
            "both metrics of the old minute"
        );
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

//! Durable alert state next to the accounts: each device's rule state (what the
//! `threshold` bolt needs to resume after a crash), the alerts that fired (for
//! `GET /api/v1/alerts/triggered`), and the outcome of every notification delivery (so
//! the notifier never delivers an id twice, even after a restart).
//!
//! One SQLite file, WAL mode, tables created on first open. Writes of one batch of
//! evaluations go in one transaction ([`AlertStore::commit`]).

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Mutex, MutexGuard};

use rusqlite::{params, Connection, OptionalExtension};
use serde::{Deserialize, Serialize};

use super::accounts::StoreError;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS alert_device_state (
    device INTEGER PRIMARY KEY,
    account TEXT NOT NULL,
    state BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS alerts (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    config_id INTEGER NOT NULL,
    account TEXT NOT NULL,
    device INTEGER NOT NULL,
    hostname TEXT NOT NULL,
    metric TEXT,
    series TEXT NOT NULL,
    fired_at REAL NOT NULL,
    closed_at REAL,
    last_value REAL
);
CREATE UNIQUE INDEX IF NOT EXISTS alerts_one_open
    ON alerts(config_id, device, series) WHERE closed_at IS NULL;
CREATE INDEX IF NOT EXISTS alerts_by_account ON alerts(account, closed_at);
CREATE TABLE IF NOT EXISTS deliveries (
    id TEXT PRIMARY KEY,
    status TEXT NOT NULL,
    attempts INTEGER NOT NULL,
    code INTEGER,
    reason TEXT NOT NULL,
    at_ms INTEGER NOT NULL
);";

/// An alert as `GET /api/v1/alerts/triggered` lists it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TriggeredAlert {
    /// Row id.
    pub id: i64,
    /// The alert config.
    pub config_id: i64,
    /// The account.
    pub account: String,
    /// The device id.
    pub device: i64,
    /// The device's host name.
    pub hostname: String,
    /// The metric (`None` for no-data alerts).
    pub metric: Option<String>,
    /// The series labels.
    pub series: BTreeMap<String, String>,
    /// Event time it fired (epoch seconds).
    pub fired_at: f64,
    /// Event time it cleared; `None` while open.
    pub closed_at: Option<f64>,
    /// The last value evaluated.
    pub last_value: Option<f64>,
}

/// A change to the alerts table, written with the state in [`AlertStore::commit`].
#[derive(Clone, Debug, PartialEq)]
pub enum AlertChange {
    /// An alert opened.
    Open(TriggeredAlert),
    /// The open alert of (config, device, series) has a new last value.
    Value {
        /// Config id.
        config_id: i64,
        /// Device id.
        device: i64,
        /// Series key.
        series: String,
        /// The value.
        value: f64,
    },
    /// The open alert of (config, device, series) closed.
    Close {
        /// Config id.
        config_id: i64,
        /// Device id.
        device: i64,
        /// Series key.
        series: String,
        /// When (event time).
        at: f64,
        /// The value that cleared it, if any.
        value: Option<f64>,
    },
}

/// The final outcome of a notification delivery.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryStatus {
    /// The receiver answered 2xx.
    Delivered,
    /// The receiver refused it for good (a 4xx other than 429).
    Failed,
    /// Not sent: older than `max_age_s` (before or while retrying).
    Archived,
}

impl DeliveryStatus {
    fn as_str(self) -> &'static str {
        match self {
            DeliveryStatus::Delivered => "delivered",
            DeliveryStatus::Failed => "failed",
            DeliveryStatus::Archived => "archived",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "delivered" => DeliveryStatus::Delivered,
            "failed" => DeliveryStatus::Failed,
            "archived" => DeliveryStatus::Archived,
            _ => return None,
        })
    }
}

/// A recorded delivery.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Delivery {
    /// The notification id.
    pub id: String,
    /// The outcome.
    pub status: DeliveryStatus,
    /// HTTP requests made.
    pub attempts: u32,
    /// The last HTTP status, if any answered.
    pub code: Option<u16>,
    /// Why (error text, or "ok").
    pub reason: String,
    /// When it was recorded (epoch ms).
    pub at_ms: i64,
}

/// The alert tables of one database.
pub struct AlertStore {
    conn: Mutex<Connection>,
}

/// Series labels as one canonical key: `k=v` pairs sorted by key, joined by `,`.
pub fn series_key(labels: &BTreeMap<String, String>) -> String {
    let mut s = String::new();
    for (k, v) in labels {
        if !s.is_empty() {
            s.push(',');
        }
        s.push_str(k);
        s.push('=');
        s.push_str(v);
    }
    s
}

fn series_labels(key: &str) -> BTreeMap<String, String> {
    key.split(',')
        .filter(|p| !p.is_empty())
        .filter_map(|p| p.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

impl AlertStore {
    /// Opens `sqlite://PATH` (or `sqlite::memory:`), creating the tables if needed.
    pub fn open_url(url: &str) -> Result<Self, StoreError> {
        let conn = match url.strip_prefix("sqlite://") {
            Some(path) => Connection::open(Path::new(path))?,
            None if url == "sqlite::memory:" => Connection::open_in_memory()?,
            None => {
                return Err(StoreError::Invalid {
                    field: "db.url",
                    message: format!("\"{url}\" is not sqlite://PATH"),
                })
            }
        };
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        conn.execute_batch(SCHEMA)?;
        Ok(AlertStore {
            conn: Mutex::new(conn),
        })
    }

    fn conn(&self) -> MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The persisted state blob of `device`.
    pub fn device_state(&self, device: i64) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self
            .conn()
            .query_row(
                "SELECT state FROM alert_device_state WHERE device = ?1",
                params![device],
                |r| r.get(0),
            )
            .optional()?)
    }

    /// Every persisted (device, account, state blob) for which `keep(device)` holds.
    pub fn device_states(
        &self,
        keep: impl Fn(i64) -> bool,
    ) -> Result<Vec<(i64, String, Vec<u8>)>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn.prepare("SELECT device, account, state FROM alert_device_state")?;
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
        let mut out = Vec::new();
        for row in rows {
            let row: (i64, String, Vec<u8>) = row?;
            if keep(row.0) {
                out.push(row);
            }
        }
        Ok(out)
    }

    /// Writes device states and alert changes in one transaction.
    pub fn commit(
        &self,
        states: &[(i64, &str, Vec<u8>)],
        changes: &[AlertChange],
    ) -> Result<(), StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        {
            let mut put = tx.prepare_cached(
                "INSERT INTO alert_device_state (device, account, state) VALUES (?1, ?2, ?3)
                 ON CONFLICT(device) DO UPDATE SET account = ?2, state = ?3",
            )?;
            for (device, account, blob) in states {
                put.execute(params![device, account, blob])?;
            }
            for change in changes {
                match change {
                    AlertChange::Open(a) => {
                        // A leftover open row (a config edited under it) closes first, so
                        // there is never more than one open alert per key.
                        tx.execute(
                            "UPDATE alerts SET closed_at = ?4 WHERE config_id = ?1 AND device = ?2
                             AND series = ?3 AND closed_at IS NULL",
                            params![a.config_id, a.device, series_key(&a.series), a.fired_at],
                        )?;
                        tx.execute(
                            "INSERT INTO alerts (config_id, account, device, hostname, metric,
                             series, fired_at, last_value) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                            params![
                                a.config_id,
                                a.account,
                                a.device,
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
                            params![config_id, device, series, value],
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
                            params![config_id, device, series, at, value],
                        )?;
                    }
                }
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// Open (`closed = false`) or closed alerts, newest first, optionally of one account.
    pub fn triggered(
        &self,
        closed: bool,
        account: Option<&str>,
    ) -> Result<Vec<TriggeredAlert>, StoreError> {
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
                config_id: r.get(1)?,
                account: r.get(2)?,
                device: r.get(3)?,
                hostname: r.get(4)?,
                metric: r.get(5)?,
                series: series_labels(&r.get::<_, String>(6)?),
                fired_at: r.get(7)?,
                closed_at: r.get(8)?,
                last_value: r.get(9)?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// The recorded outcome of notification `id`.
    pub fn delivery(&self, id: &str) -> Result<Option<Delivery>, StoreError> {
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
        Ok(row.and_then(|(id, status, attempts, code, reason, at_ms)| {
            Some(Delivery {
                id,
                status: DeliveryStatus::parse(&status)?,
                attempts,
                code,
                reason,
                at_ms,
            })
        }))
    }

    /// Every recorded delivery, oldest first.
    pub fn deliveries(&self) -> Result<Vec<Delivery>, StoreError> {
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
            if let Some(status) = DeliveryStatus::parse(&status) {
                out.push(Delivery {
                    id,
                    status,
                    attempts,
                    code,
                    reason,
                    at_ms,
                });
            }
        }
        Ok(out)
    }

    /// Records the final outcome of a delivery (the first one recorded wins).
    pub fn record_delivery(&self, d: &Delivery) -> Result<(), StoreError> {
        self.conn().execute(
            "INSERT OR IGNORE INTO deliveries (id, status, attempts, code, reason, at_ms)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![
                d.id,
                d.status.as_str(),
                d.attempts,
                d.code,
                d.reason,
                d.at_ms
            ],
        )?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alerts_open_update_and_close_one_per_key() {
        let store = AlertStore::open_url("sqlite::memory:").unwrap();
        let series: BTreeMap<_, _> = [("device_name".to_string(), "/dev/sda1".to_string())]
            .into_iter()
            .collect();
        let open = TriggeredAlert {
            id: 0,
            config_id: 3,
            account: "acme".into(),
            device: 7,
            hostname: "web-1".into(),
            metric: Some("disk.used".into()),
            series: series.clone(),
            fired_at: 100.0,
            closed_at: None,
            last_value: Some(91.0),
        };
        store
            .commit(
                &[(7, "acme", vec![1, 2])],
                &[AlertChange::Open(open.clone())],
            )
            .unwrap();
        store
            .commit(
                &[],
                &[AlertChange::Value {
                    config_id: 3,
                    device: 7,
                    series: series_key(&series),
                    value: 95.0,
                }],
            )
            .unwrap();
        let now = store.triggered(false, Some("acme")).unwrap();
        assert_eq!(now.len(), 1);
        assert_eq!(now[0].series, series);
        assert_eq!(now[0].last_value, Some(95.0));
        assert!(store.triggered(true, None).unwrap().is_empty());
        assert_eq!(store.device_state(7).unwrap(), Some(vec![1, 2]));

        store
            .commit(
                &[],
                &[AlertChange::Close {
                    config_id: 3,
                    device: 7,
                    series: series_key(&series),
                    at: 400.0,
                    value: Some(10.0),
                }],
            )
            .unwrap();
        assert!(store.triggered(false, None).unwrap().is_empty());
        let closed = store.triggered(true, None).unwrap();
        assert_eq!(
            (closed[0].closed_at, closed[0].last_value),
            (Some(400.0), Some(10.0))
        );
    }

    #[test]
    fn the_first_recorded_delivery_outcome_wins() {
        let store = AlertStore::open_url("sqlite::memory:").unwrap();
        let d = Delivery {
            id: "n1".into(),
            status: DeliveryStatus::Delivered,
            attempts: 3,
            code: Some(200),
            reason: "ok".into(),
            at_ms: 5,
        };
        store.record_delivery(&d).unwrap();
        store
            .record_delivery(&Delivery {
                status: DeliveryStatus::Archived,
                ..d.clone()
            })
            .unwrap();
        assert_eq!(store.delivery("n1").unwrap(), Some(d));
        assert_eq!(store.delivery("n2").unwrap(), None);
    }
}

//! The one migration runner: an ordered list of named migrations, each applied once, in
//! order, recorded in `squall_schema`.
//!
//! Invariants: every pending migration is applied inside one `BEGIN IMMEDIATE`
//! transaction that first re-reads what is applied, so two processes opening a new file at
//! once never apply a migration twice, and a failed migration leaves nothing behind.
//! Migrations are never edited once released: a change is a new entry at the end.
//!
//! The first three entries create the tables with `IF NOT EXISTS`, so a database written
//! before this runner existed (whose tables already have these shapes) is adopted as is.

use rusqlite::{params, Connection, TransactionBehavior};

use crate::Result;

/// One schema change.
#[derive(Clone, Copy, Debug)]
pub struct Migration {
    /// What it does, for people (`squall_schema.name`).
    pub name: &'static str,
    /// The SQL, run as one batch.
    pub sql: &'static str,
}

/// Every migration, in order; version N is `MIGRATIONS[N - 1]`.
pub const MIGRATIONS: &[Migration] = &[
    Migration {
        name: "accounts, agent keys, devices, alert configs",
        sql: "CREATE TABLE IF NOT EXISTS accounts (
                name TEXT PRIMARY KEY,
                device_quota INTEGER NOT NULL,
                active INTEGER NOT NULL
            );
            CREATE TABLE IF NOT EXISTS agent_keys (
                key TEXT PRIMARY KEY,
                account TEXT NOT NULL REFERENCES accounts(name)
            );
            CREATE TABLE IF NOT EXISTS devices (
                id INTEGER PRIMARY KEY AUTOINCREMENT,
                account TEXT NOT NULL REFERENCES accounts(name),
                agent_key TEXT NOT NULL,
                hostname TEXT NOT NULL,
                active INTEGER NOT NULL,
                first_seen_ms INTEGER NOT NULL,
                last_seen_ms INTEGER NOT NULL,
                UNIQUE (account, agent_key, hostname)
            );
            CREATE INDEX IF NOT EXISTS devices_by_account ON devices(account, active);
            CREATE TABLE IF NOT EXISTS admin_changes (version INTEGER NOT NULL);
            INSERT INTO admin_changes (version)
                SELECT 0 WHERE NOT EXISTS (SELECT 1 FROM admin_changes);
            CREATE TABLE IF NOT EXISTS alert_configs (
                id INTEGER PRIMARY KEY AUTOINCREMENT,
                account TEXT NOT NULL,
                body TEXT NOT NULL
            );
            CREATE INDEX IF NOT EXISTS alert_configs_by_account ON alert_configs(account);",
    },
    Migration {
        name: "alert state, alerts, deliveries",
        sql: "CREATE TABLE IF NOT EXISTS alert_device_state (
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
            );",
    },
    Migration {
        // One row per device and minute holds all its points (series id + value, 12 bytes
        // a point), appended in arrival order in a rowid table with a small (device,
        // minute) index; a device's latest values are its newest minute.
        name: "metric minutes, hours, series",
        sql: "CREATE TABLE IF NOT EXISTS metric_minutes (
                device INTEGER NOT NULL, minute INTEGER NOT NULL, time REAL NOT NULL,
                points BLOB NOT NULL,
                UNIQUE (device, minute)
            );
            CREATE TABLE IF NOT EXISTS metric_hours (
                device INTEGER NOT NULL, hour INTEGER NOT NULL, aggregates BLOB NOT NULL,
                PRIMARY KEY (device, hour)
            ) WITHOUT ROWID;
            CREATE TABLE IF NOT EXISTS metric_hours_changed (
                device INTEGER NOT NULL, hour INTEGER NOT NULL, PRIMARY KEY (device, hour)
            ) WITHOUT ROWID;
            CREATE TABLE IF NOT EXISTS metric_series (
                id INTEGER PRIMARY KEY, metric TEXT NOT NULL, series TEXT NOT NULL,
                UNIQUE (metric, series)
            );",
    },
    Migration {
        // A device's state belongs to the input partition its payloads arrive on; each
        // partition's latest claim is its epoch (rows of earlier versions have none).
        name: "alert state by partition, partition epochs",
        sql: "ALTER TABLE alert_device_state ADD COLUMN partition INTEGER;
            CREATE INDEX alert_device_state_by_partition ON alert_device_state(partition);
            CREATE TABLE partition_epochs (
                partition INTEGER PRIMARY KEY, epoch INTEGER NOT NULL
            );",
    },
    Migration {
        // Who is delivering a notification, until when (a lease its owner renews).
        name: "delivery claims",
        sql: "CREATE TABLE delivery_claims (
                id TEXT PRIMARY KEY, owner TEXT NOT NULL, until_ms INTEGER NOT NULL
            );",
    },
    Migration {
        // Notification policy: silences (the checked JSON body), the state of each
        // notification group by the notifications partition it belongs to, and each
        // such partition's latest claim.
        name: "silences, notification groups",
        sql: "CREATE TABLE silences (
                id INTEGER PRIMARY KEY AUTOINCREMENT,
                account TEXT NOT NULL,
                body TEXT NOT NULL,
                created_at_ms INTEGER NOT NULL
            );
            CREATE INDEX silences_by_account ON silences(account);
            CREATE TABLE notification_groups (
                key TEXT PRIMARY KEY, partition INTEGER, state BLOB NOT NULL
            );
            CREATE INDEX notification_groups_by_partition ON notification_groups(partition);
            CREATE TABLE group_partition_epochs (
                partition INTEGER PRIMARY KEY, epoch INTEGER NOT NULL
            );",
    },
];

/// How many migrations `conn`'s database has applied.
pub fn applied(conn: &Connection) -> rusqlite::Result<i64> {
    conn.query_row(
        "SELECT COALESCE(MAX(version), 0) FROM squall_schema",
        [],
        |r| r.get(0),
    )
}

/// Applies every pending migration (see the module docs).
pub(crate) fn run(conn: &mut Connection) -> Result<()> {
    refuse_old_metric_tables(conn)?;
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS squall_schema (
            version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at_ms INTEGER NOT NULL
        )",
    )?;
    if applied(conn)? >= MIGRATIONS.len() as i64 {
        return Ok(());
    }
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let done = applied(&tx)?;
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    for (i, m) in MIGRATIONS.iter().enumerate().skip(done.max(0) as usize) {
        tx.execute_batch(m.sql)?;
        tx.execute(
            "INSERT INTO squall_schema (version, name, applied_at_ms) VALUES (?1, ?2, ?3)",
            params![i as i64 + 1, m.name, now_ms],
        )?;
        tracing::info!(version = i + 1, name = m.name, "database migrated");
    }
    tx.commit()?;
    Ok(())
}

/// Metric tables from before this runner, older than the shapes migration 3 adopts
/// (development versions 1 and 2, recorded in `squall_metrics_schema`), are refused with
/// a clear error rather than adopted and failing on the first write.
fn refuse_old_metric_tables(conn: &Connection) -> Result<()> {
    let has_table: bool = conn.query_row(
        "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'squall_metrics_schema')",
        [],
        |r| r.get(0),
    )?;
    if !has_table {
        return Ok(());
    }
    let version: i64 = conn.query_row(
        "SELECT COALESCE(MAX(version), 0) FROM squall_metrics_schema",
        [],
        |r| r.get(0),
    )?;
    if version < 3 {
        return Err(squall_alerting::store::StoreError::Invalid {
            field: "db.url",
            message: format!(
                "the metric tables are of a development version ({version}) this squall cannot \
                 read; drop metric_minutes, metric_hours, metric_hours_changed, latest and \
                 squall_metrics_schema, or use a new database"
            ),
        }
        .into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn old_development_metric_tables_are_refused_by_name() {
        let mut conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(
            "CREATE TABLE squall_metrics_schema (version INTEGER NOT NULL);
             INSERT INTO squall_metrics_schema VALUES (2);",
        )
        .unwrap();
        let e = squall_alerting::store::StoreError::from(run(&mut conn).unwrap_err());
        assert!(e.to_string().contains("development version (2)"), "{e}");
        conn.execute_batch("UPDATE squall_metrics_schema SET version = 3")
            .unwrap();
        run(&mut conn).unwrap();
        assert_eq!(applied(&conn).unwrap(), MIGRATIONS.len() as i64);
    }
}

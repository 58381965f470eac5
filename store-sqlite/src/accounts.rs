//! [`AccountStore`] on SQLite: accounts, agent keys, devices, alert configs (as JSON
//! bodies) and fixtures imports.
//!
//! Every admin change bumps `admin_changes.version` in the same transaction; registering a
//! batch of devices checks the quota and inserts in one immediate (write-locked)
//! transaction, so a burst of new devices never exceeds it, even across processes.

use std::collections::{HashMap, HashSet};

use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};
use squall_alerting::accounts::{
    agent_key_to_issue, valid_name, Account, AccountPatch, Device, Registration, Sighting,
};
use squall_alerting::configs::{AlertConfig, StoredConfig};
use squall_alerting::fixtures::{Fixtures, ImportReport};
use squall_alerting::ids::{ConfigId, DeviceId};
use squall_alerting::store::{AccountStore, StoreError};

use crate::{run, Result, SqliteStore};

fn device_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<Device> {
    Ok(Device {
        id: DeviceId(row.get(0)?),
        account: row.get(1)?,
        agent_key: row.get(2)?,
        hostname: row.get(3)?,
        active: row.get(4)?,
        first_seen_ms: row.get(5)?,
        last_seen_ms: row.get(6)?,
    })
}

const DEVICE_COLUMNS: &str =
    "id, account, agent_key, hostname, active, first_seen_ms, last_seen_ms";

pub(crate) fn bump(conn: &Connection) -> Result<()> {
    conn.execute("UPDATE admin_changes SET version = version + 1", [])?;
    Ok(())
}

fn get_account(conn: &Connection, name: &str) -> Result<Option<Account>> {
    Ok(conn
        .prepare_cached("SELECT name, device_quota, active FROM accounts WHERE name = ?1")?
        .query_row(params![name], |r| {
            Ok(Account {
                name: r.get(0)?,
                device_quota: r.get(1)?,
                active: r.get(2)?,
            })
        })
        .optional()?)
}

fn parse_row(id: i64, body: String) -> Result<StoredConfig> {
    let config = serde_json::from_str(&body).map_err(|e| StoreError::Invalid {
        field: "alert_configs.body",
        message: format!("stored config {id} does not parse: {e}"),
    })?;
    Ok(StoredConfig {
        id: ConfigId(id),
        config,
    })
}

fn config_create(conn: &Connection, config: &AlertConfig) -> Result<StoredConfig> {
    let exists: Option<String> = conn
        .query_row(
            "SELECT name FROM accounts WHERE name = ?1",
            params![config.account],
            |r| r.get(0),
        )
        .optional()?;
    if exists.is_none() {
        return Err(StoreError::NoAccount(config.account.clone()).into());
    }
    let body = serde_json::to_string(config).expect("configs serialise");
    conn.execute(
        "INSERT INTO alert_configs (account, body) VALUES (?1, ?2)",
        params![config.account, body],
    )?;
    Ok(StoredConfig {
        id: ConfigId(conn.last_insert_rowid()),
        config: config.clone(),
    })
}

fn config_get(conn: &Connection, id: i64) -> Result<Option<StoredConfig>> {
    let body: Option<String> = conn
        .query_row(
            "SELECT body FROM alert_configs WHERE id = ?1",
            params![id],
            |r| r.get(0),
        )
        .optional()?;
    body.map(|b| parse_row(id, b)).transpose()
}

fn config_list(conn: &Connection, account: Option<&str>) -> Result<Vec<StoredConfig>> {
    let mut stmt = conn.prepare(
        "SELECT id, body FROM alert_configs WHERE ?1 IS NULL OR account = ?1 ORDER BY id",
    )?;
    let rows = stmt
        .query_map(params![account], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<rusqlite::Result<Vec<(i64, String)>>>()?;
    rows.into_iter()
        .map(|(id, body)| parse_row(id, body))
        .collect()
}

fn config_replace(conn: &Connection, id: i64, config: &AlertConfig) -> Result<bool> {
    if get_account(conn, &config.account)?.is_none() {
        return Err(StoreError::NoAccount(config.account.clone()).into());
    }
    let body = serde_json::to_string(config).expect("configs serialise");
    Ok(conn.execute(
        "UPDATE alert_configs SET account = ?2, body = ?3 WHERE id = ?1",
        params![id, config.account, body],
    )? > 0)
}

fn config_delete(conn: &Connection, id: i64) -> Result<bool> {
    Ok(conn.execute("DELETE FROM alert_configs WHERE id = ?1", params![id])? > 0)
}

/// Loads `f` in one transaction.
fn import_fixtures(conn: &mut Connection, f: &Fixtures) -> Result<ImportReport> {
    for a in &f.accounts {
        valid_name(&a.name)?;
    }
    let mut report = ImportReport::default();
    let tx = conn.transaction()?;
    for a in &f.accounts {
        let existed = tx
            .query_row(
                "SELECT 1 FROM accounts WHERE name = ?1",
                params![a.name],
                |_| Ok(()),
            )
            .is_ok();
        tx.execute(
            "INSERT INTO accounts (name, device_quota, active) VALUES (?1, ?2, ?3)
             ON CONFLICT(name) DO UPDATE SET device_quota = ?2, active = ?3",
            params![a.name, a.device_quota, a.active],
        )?;
        if existed {
            report.accounts_updated += 1;
        } else {
            report.accounts_created += 1;
        }
        for key in &a.agent_keys {
            let owner: Option<String> = tx
                .query_row(
                    "SELECT account FROM agent_keys WHERE key = ?1",
                    params![key],
                    |r| r.get(0),
                )
                .ok();
            match owner {
                Some(o) if o == a.name => report.keys_present += 1,
                Some(_) => return Err(StoreError::KeyTaken { key: key.clone() }.into()),
                None => {
                    tx.execute(
                        "INSERT INTO agent_keys (key, account) VALUES (?1, ?2)",
                        params![key, a.name],
                    )?;
                    report.keys_issued += 1;
                }
            }
        }
    }
    let mut stored: HashMap<String, HashSet<String>> = HashMap::new();
    {
        let mut stmt = tx.prepare("SELECT account, body FROM alert_configs")?;
        let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get(1)?)))?;
        for row in rows {
            let (account, body) = row?;
            stored.entry(account).or_default().insert(body);
        }
    }
    {
        let mut insert = tx.prepare("INSERT INTO alert_configs (account, body) VALUES (?1, ?2)")?;
        let mut account_exists: HashMap<String, bool> = HashMap::new();
        for c in &f.alerts {
            let exists = match account_exists.get(&c.account) {
                Some(e) => *e,
                None => {
                    let e = tx
                        .query_row(
                            "SELECT 1 FROM accounts WHERE name = ?1",
                            params![c.account],
                            |_| Ok(()),
                        )
                        .is_ok();
                    account_exists.insert(c.account.clone(), e);
                    e
                }
            };
            if !exists {
                return Err(StoreError::NoAccount(c.account.clone()).into());
            }
            let body = serde_json::to_string(c).expect("configs serialise");
            if !stored
                .entry(c.account.clone())
                .or_default()
                .insert(body.clone())
            {
                report.configs_present += 1;
                continue;
            }
            insert.execute(params![c.account, body])?;
            report.configs_created += 1;
        }
    }
    bump(&tx)?;
    tx.commit()?;
    Ok(report)
}

impl AccountStore for SqliteStore {
    fn create_account(&self, account: &Account) -> Result<Account, StoreError> {
        run(|| {
            valid_name(&account.name)?;
            let mut guard = self.lock();
            // The change and the admin version move together.
            let tx = guard.conn.transaction()?;
            let conn: &Connection = &tx;
            let inserted = conn.execute(
                "INSERT OR IGNORE INTO accounts (name, device_quota, active) VALUES (?1, ?2, ?3)",
                params![account.name, account.device_quota, account.active],
            )?;
            if inserted == 0 {
                return Err(StoreError::AccountExists(account.name.clone()).into());
            }
            bump(conn)?;
            tx.commit()?;
            Ok(account.clone())
        })
    }

    fn update_account(&self, name: &str, patch: &AccountPatch) -> Result<Account, StoreError> {
        run(|| {
            let mut guard = self.lock();
            // The change and the admin version move together.
            let tx = guard.conn.transaction()?;
            let conn: &Connection = &tx;
            let mut account =
                get_account(conn, name)?.ok_or_else(|| StoreError::NoAccount(name.into()))?;
            if let Some(q) = patch.device_quota {
                account.device_quota = q;
            }
            if let Some(a) = patch.active {
                account.active = a;
            }
            conn.execute(
                "UPDATE accounts SET device_quota = ?2, active = ?3 WHERE name = ?1",
                params![account.name, account.device_quota, account.active],
            )?;
            bump(conn)?;
            tx.commit()?;
            Ok(account)
        })
    }

    fn account(&self, name: &str) -> Result<Option<Account>, StoreError> {
        run(|| get_account(&self.conn(), name))
    }

    fn issue_agent_key(&self, account: &str, key: Option<&str>) -> Result<String, StoreError> {
        run(|| {
            let key = agent_key_to_issue(key)?;
            let mut guard = self.lock();
            let conn = &mut guard.conn;
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            if get_account(&tx, account)?.is_none() {
                return Err(StoreError::NoAccount(account.into()).into());
            }
            let owner: Option<String> = tx
                .query_row(
                    "SELECT account FROM agent_keys WHERE key = ?1",
                    params![key],
                    |r| r.get(0),
                )
                .optional()?;
            match owner {
                Some(o) if o == account => {}
                Some(_) => return Err(StoreError::KeyTaken { key }.into()),
                None => {
                    tx.execute(
                        "INSERT INTO agent_keys (key, account) VALUES (?1, ?2)",
                        params![key, account],
                    )?;
                }
            }
            tx.commit()?;
            Ok(key)
        })
    }

    fn key_account(&self, key: &str) -> Result<Option<String>, StoreError> {
        run(|| {
            Ok(self
                .conn()
                .prepare_cached("SELECT account FROM agent_keys WHERE key = ?1")?
                .query_row(params![key], |r| r.get(0))
                .optional()?)
        })
    }

    fn devices(&self, account: &str) -> Result<Vec<Device>, StoreError> {
        run(|| {
            let guard = self.lock();
            let conn = &guard.conn;
            if get_account(conn, account)?.is_none() {
                return Err(StoreError::NoAccount(account.into()).into());
            }
            let mut stmt = conn.prepare(&format!(
                "SELECT {DEVICE_COLUMNS} FROM devices WHERE account = ?1 ORDER BY id"
            ))?;
            let devices = stmt
                .query_map(params![account], device_from_row)?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(devices)
        })
    }

    fn set_device_active(&self, id: DeviceId, active: bool) -> Result<Device, StoreError> {
        run(|| {
            let mut guard = self.lock();
            // The quota check, the change and the admin version move together, under the
            // write lock (immediate), as device registrations do.
            let tx = guard
                .conn
                .transaction_with_behavior(TransactionBehavior::Immediate)?;
            let conn: &Connection = &tx;
            let current = conn
                .query_row(
                    &format!("SELECT {DEVICE_COLUMNS} FROM devices WHERE id = ?1"),
                    params![id.0],
                    device_from_row,
                )
                .optional()?
                .ok_or(StoreError::NoDevice(id))?;
            if active && !current.active {
                let quota = get_account(conn, &current.account)?.map_or(0, |a| a.device_quota);
                let in_use: u32 = conn.query_row(
                    "SELECT COUNT(*) FROM devices WHERE account = ?1 AND active = 1",
                    params![current.account],
                    |r| r.get(0),
                )?;
                if in_use >= quota {
                    return Err(StoreError::QuotaExceeded {
                        account: current.account,
                    }
                    .into());
                }
            }
            conn.execute(
                "UPDATE devices SET active = ?2 WHERE id = ?1",
                params![id.0, active],
            )?;
            bump(conn)?;
            let device = conn.query_row(
                &format!("SELECT {DEVICE_COLUMNS} FROM devices WHERE id = ?1"),
                params![id.0],
                device_from_row,
            )?;
            tx.commit()?;
            Ok(device)
        })
    }

    fn create_config(&self, config: &AlertConfig) -> Result<StoredConfig, StoreError> {
        run(|| {
            let mut guard = self.lock();
            // The change and the admin version move together.
            let tx = guard.conn.transaction()?;
            let conn: &Connection = &tx;
            let stored = config_create(conn, config)?;
            bump(conn)?;
            tx.commit()?;
            Ok(stored)
        })
    }

    fn config(&self, id: ConfigId) -> Result<Option<StoredConfig>, StoreError> {
        run(|| config_get(&self.conn(), id.0))
    }

    fn configs(&self, account: Option<&str>) -> Result<Vec<StoredConfig>, StoreError> {
        run(|| config_list(&self.conn(), account))
    }

    fn replace_config(&self, id: ConfigId, config: &AlertConfig) -> Result<bool, StoreError> {
        run(|| {
            let mut guard = self.lock();
            // The change and the admin version move together.
            let tx = guard.conn.transaction()?;
            let conn: &Connection = &tx;
            let done = config_replace(conn, id.0, config)?;
            if done {
                bump(conn)?;
            }
            tx.commit()?;
            Ok(done)
        })
    }

    fn delete_config(&self, id: ConfigId) -> Result<bool, StoreError> {
        run(|| {
            let mut guard = self.lock();
            // The change and the admin version move together.
            let tx = guard.conn.transaction()?;
            let conn: &Connection = &tx;
            let done = config_delete(conn, id.0)?;
            if done {
                bump(conn)?;
            }
            tx.commit()?;
            Ok(done)
        })
    }

    fn admin_version(&self) -> Result<i64, StoreError> {
        run(|| {
            Ok(self
                .conn()
                .query_row("SELECT version FROM admin_changes", [], |r| r.get(0))?)
        })
    }

    fn register_devices(&self, batch: &[Sighting<'_>]) -> Result<Vec<Registration>, StoreError> {
        run(|| {
            let mut guard = self.lock();
            let conn = &mut guard.conn;
            // Immediate: the quota checks and the inserts hold the write lock together.
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            // Devices in use per account, counted once per batch.
            let mut used: HashMap<&str, (u32, u32)> = HashMap::new();
            let mut out = Vec::with_capacity(batch.len());
            {
                let mut find = tx.prepare_cached(&format!(
                    "SELECT {DEVICE_COLUMNS} FROM devices WHERE account = ?1 AND agent_key = ?2 AND hostname = ?3"
                ))?;
                let mut seen = tx.prepare_cached(
                    "UPDATE devices SET last_seen_ms = max(last_seen_ms, ?2) WHERE id = ?1",
                )?;
                let mut insert = tx.prepare_cached(
                    "INSERT INTO devices (account, agent_key, hostname, active, first_seen_ms, last_seen_ms)
                     VALUES (?1, ?2, ?3, 1, ?4, ?4)",
                )?;
                for s in batch {
                    let known = find
                        .query_row(params![s.account, s.agent_key, s.hostname], device_from_row)
                        .optional()?;
                    if let Some(mut device) = known {
                        seen.execute(params![device.id.0, s.now_ms])?;
                        device.last_seen_ms = device.last_seen_ms.max(s.now_ms);
                        out.push(Registration::Known(device));
                        continue;
                    }
                    let (quota, in_use) = match used.entry(s.account) {
                        std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
                        std::collections::hash_map::Entry::Vacant(e) => {
                            let quota = match get_account(&tx, s.account)? {
                                Some(a) => a.device_quota,
                                None => return Err(StoreError::NoAccount(s.account.into()).into()),
                            };
                            let n: u32 = tx.query_row(
                                "SELECT COUNT(*) FROM devices WHERE account = ?1 AND active = 1",
                                params![s.account],
                                |r| r.get(0),
                            )?;
                            e.insert((quota, n))
                        }
                    };
                    if *in_use >= *quota {
                        out.push(Registration::QuotaExceeded);
                        continue;
                    }
                    insert.execute(params![s.account, s.agent_key, s.hostname, s.now_ms])?;
                    *in_use += 1;
                    out.push(Registration::Registered(Device {
                        id: DeviceId(tx.last_insert_rowid()),
                        account: s.account.into(),
                        agent_key: s.agent_key.into(),
                        hostname: s.hostname.into(),
                        active: true,
                        first_seen_ms: s.now_ms,
                        last_seen_ms: s.now_ms,
                    }));
                }
            }
            tx.commit()?;
            Ok(out)
        })
    }

    fn import(&self, f: &Fixtures) -> Result<ImportReport, StoreError> {
        run(|| import_fixtures(&mut self.lock().conn, f))
    }

    fn touch_devices(&self, seen: &[(DeviceId, i64)]) -> Result<(), StoreError> {
        run(|| {
            let mut guard = self.lock();
            let conn = &mut guard.conn;
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            {
                let mut update = tx.prepare_cached(
                    "UPDATE devices SET last_seen_ms = max(last_seen_ms, ?2) WHERE id = ?1",
                )?;
                for (id, ms) in seen {
                    update.execute(params![id.0, ms])?;
                }
            }
            tx.commit()?;
            Ok(())
        })
    }
}

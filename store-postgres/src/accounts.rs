//! [`AccountStore`] on PostgreSQL: accounts, agent keys, devices, alert configs (as JSON
//! bodies) and fixtures imports.
//!
//! Every admin change bumps `admin_changes.version` in the same transaction. Registering
//! devices first finds the known ones; new ones are inserted after locking their
//! accounts' rows (`FOR UPDATE`, in name order), so the quota count and the inserts of one
//! account are serialised across processes and a burst of new devices never exceeds it;
//! device rows are written after the account locks, in id order, so two transactions
//! never wait on each other in a cycle. Activating a device takes the same lock.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use deadpool_postgres::GenericClient;
use squall_alerting::accounts::{
    agent_key_to_issue, valid_name, Account, AccountPatch, Device, Registration, Sighting,
};
use squall_alerting::configs::{AlertConfig, StoredConfig};
use squall_alerting::fixtures::{Fixtures, ImportReport};
use squall_alerting::ids::{ConfigId, DeviceId};
use squall_alerting::store::{AccountStore, StoreError};
use tokio_postgres::Row;

use crate::{PgStore, Result};

const DEVICE_COLUMNS: &str =
    "id, account, agent_key, hostname, active, first_seen_ms, last_seen_ms";

fn device_from_row(row: &Row) -> Device {
    Device {
        id: DeviceId(row.get(0)),
        account: row.get(1),
        agent_key: row.get(2),
        hostname: row.get(3),
        active: row.get(4),
        first_seen_ms: row.get(5),
        last_seen_ms: row.get(6),
    }
}

fn quota(q: i64) -> u32 {
    u32::try_from(q.max(0)).unwrap_or(u32::MAX)
}

pub(crate) async fn bump(c: &impl GenericClient) -> Result<()> {
    c.execute("UPDATE admin_changes SET version = version + 1", &[])
        .await?;
    Ok(())
}

async fn get_account(c: &impl GenericClient, name: &str, lock: bool) -> Result<Option<Account>> {
    let sql = if lock {
        "SELECT name, device_quota, active FROM accounts WHERE name = $1 FOR UPDATE"
    } else {
        "SELECT name, device_quota, active FROM accounts WHERE name = $1"
    };
    let stmt = c.prepare_cached(sql).await?;
    Ok(c.query_opt(&stmt, &[&name]).await?.map(|r| Account {
        name: r.get(0),
        device_quota: quota(r.get(1)),
        active: r.get(2),
    }))
}

fn parse_row(id: i64, body: &str) -> Result<StoredConfig> {
    let config = serde_json::from_str(body).map_err(|e| StoreError::Invalid {
        field: "alert_configs.body",
        message: format!("stored config {id} does not parse: {e}"),
    })?;
    Ok(StoredConfig {
        id: ConfigId(id),
        config,
    })
}

async fn active_devices(c: &impl GenericClient, account: &str) -> Result<u32> {
    let n: i64 = c
        .query_one(
            "SELECT COUNT(*) FROM devices WHERE account = $1 AND active",
            &[&account],
        )
        .await?
        .get(0);
    Ok(quota(n))
}

/// Loads `f` in one transaction.
async fn import_fixtures(c: &mut deadpool_postgres::Object, f: &Fixtures) -> Result<ImportReport> {
    for a in &f.accounts {
        valid_name(&a.name)?;
    }
    let mut report = ImportReport::default();
    let tx = c.transaction().await?;
    for a in &f.accounts {
        let existed = get_account(&tx, &a.name, true).await?.is_some();
        tx.execute(
            "INSERT INTO accounts (name, device_quota, active) VALUES ($1, $2, $3)
             ON CONFLICT (name) DO UPDATE SET device_quota = $2, active = $3",
            &[&a.name, &i64::from(a.device_quota), &a.active],
        )
        .await?;
        if existed {
            report.accounts_updated += 1;
        } else {
            report.accounts_created += 1;
        }
        for key in &a.agent_keys {
            let owner: Option<String> = tx
                .query_opt("SELECT account FROM agent_keys WHERE key = $1", &[key])
                .await?
                .map(|r| r.get(0));
            match owner {
                Some(o) if o == a.name => report.keys_present += 1,
                Some(_) => return Err(StoreError::KeyTaken { key: key.clone() }.into()),
                None => {
                    tx.execute(
                        "INSERT INTO agent_keys (key, account) VALUES ($1, $2)",
                        &[key, &a.name],
                    )
                    .await?;
                    report.keys_issued += 1;
                }
            }
        }
    }
    let mut stored: HashMap<String, HashSet<String>> = HashMap::new();
    for row in tx
        .query("SELECT account, body FROM alert_configs", &[])
        .await?
    {
        stored
            .entry(row.get::<_, String>(0))
            .or_default()
            .insert(row.get(1));
    }
    let mut account_exists: HashMap<String, bool> = HashMap::new();
    let (mut accounts, mut bodies): (Vec<String>, Vec<String>) = (Vec::new(), Vec::new());
    for config in &f.alerts {
        let exists = match account_exists.get(&config.account) {
            Some(e) => *e,
            None => {
                let e = get_account(&tx, &config.account, false).await?.is_some();
                account_exists.insert(config.account.clone(), e);
                e
            }
        };
        if !exists {
            return Err(StoreError::NoAccount(config.account.clone()).into());
        }
        let body = serde_json::to_string(config).expect("configs serialise");
        if !stored
            .entry(config.account.clone())
            .or_default()
            .insert(body.clone())
        {
            report.configs_present += 1;
            continue;
        }
        accounts.push(config.account.clone());
        bodies.push(body);
        report.configs_created += 1;
    }
    // One statement for every new config, in file order (ids ascend with it).
    tx.execute(
        "INSERT INTO alert_configs (account, body)
         SELECT a, b FROM unnest($1::text[], $2::text[]) WITH ORDINALITY AS t(a, b, n) ORDER BY n",
        &[&accounts, &bodies],
    )
    .await?;
    bump(&tx).await?;
    tx.commit().await?;
    Ok(report)
}

impl AccountStore for PgStore {
    fn create_account(&self, account: &Account) -> Result<Account, StoreError> {
        valid_name(&account.name)?;
        self.block_on(async {
            let mut c = self.client().await?;
            // The change and the admin version move together.
            let tx = c.transaction().await?;
            let inserted = tx
                .execute(
                    "INSERT INTO accounts (name, device_quota, active) VALUES ($1, $2, $3)
                     ON CONFLICT (name) DO NOTHING",
                    &[
                        &account.name,
                        &i64::from(account.device_quota),
                        &account.active,
                    ],
                )
                .await?;
            if inserted == 0 {
                return Err(StoreError::AccountExists(account.name.clone()).into());
            }
            bump(&tx).await?;
            tx.commit().await?;
            Ok(account.clone())
        })
    }

    fn update_account(&self, name: &str, patch: &AccountPatch) -> Result<Account, StoreError> {
        self.block_on(async {
            let mut c = self.client().await?;
            let tx = c.transaction().await?;
            let mut account = get_account(&tx, name, true)
                .await?
                .ok_or_else(|| StoreError::NoAccount(name.into()))?;
            if let Some(q) = patch.device_quota {
                account.device_quota = q;
            }
            if let Some(a) = patch.active {
                account.active = a;
            }
            tx.execute(
                "UPDATE accounts SET device_quota = $2, active = $3 WHERE name = $1",
                &[
                    &account.name,
                    &i64::from(account.device_quota),
                    &account.active,
                ],
            )
            .await?;
            bump(&tx).await?;
            tx.commit().await?;
            Ok(account)
        })
    }

    fn account(&self, name: &str) -> Result<Option<Account>, StoreError> {
        self.block_on(async { get_account(&self.client().await?, name, false).await })
    }

    fn issue_agent_key(&self, account: &str, key: Option<&str>) -> Result<String, StoreError> {
        let key = agent_key_to_issue(key)?;
        self.block_on(async {
            let mut c = self.client().await?;
            let tx = c.transaction().await?;
            if get_account(&tx, account, true).await?.is_none() {
                return Err(StoreError::NoAccount(account.into()).into());
            }
            let inserted = tx
                .execute(
                    "INSERT INTO agent_keys (key, account) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING",
                    &[&key, &account],
                )
                .await?;
            if inserted == 0 {
                let owner: String = tx
                    .query_one("SELECT account FROM agent_keys WHERE key = $1", &[&key])
                    .await?
                    .get(0);
                if owner != account {
                    return Err(StoreError::KeyTaken { key }.into());
                }
            }
            tx.commit().await?;
            Ok(key)
        })
    }

    fn key_account(&self, key: &str) -> Result<Option<String>, StoreError> {
        self.block_on(async {
            let c = self.client().await?;
            let stmt = c
                .prepare_cached("SELECT account FROM agent_keys WHERE key = $1")
                .await?;
            Ok(c.query_opt(&stmt, &[&key]).await?.map(|r| r.get(0)))
        })
    }

    fn devices(&self, account: &str) -> Result<Vec<Device>, StoreError> {
        self.block_on(async {
            let c = self.client().await?;
            if get_account(&c, account, false).await?.is_none() {
                return Err(StoreError::NoAccount(account.into()).into());
            }
            let rows = c
                .query(
                    &format!("SELECT {DEVICE_COLUMNS} FROM devices WHERE account = $1 ORDER BY id"),
                    &[&account],
                )
                .await?;
            Ok(rows.iter().map(device_from_row).collect())
        })
    }

    fn set_device_active(&self, id: DeviceId, active: bool) -> Result<Device, StoreError> {
        self.block_on(async {
            let mut c = self.client().await?;
            let tx = c.transaction().await?;
            let current = tx
                .query_opt(
                    &format!("SELECT {DEVICE_COLUMNS} FROM devices WHERE id = $1"),
                    &[&id.0],
                )
                .await?
                .map(|r| device_from_row(&r))
                .ok_or(StoreError::NoDevice(id))?;
            // The account's row lock serialises this with registrations.
            let account = get_account(&tx, &current.account, true).await?;
            if active && !current.active {
                let quota = account.map_or(0, |a| a.device_quota);
                if active_devices(&tx, &current.account).await? >= quota {
                    return Err(StoreError::QuotaExceeded {
                        account: current.account,
                    }
                    .into());
                }
            }
            let row = tx
                .query_one(
                    &format!(
                        "UPDATE devices SET active = $2 WHERE id = $1 RETURNING {DEVICE_COLUMNS}"
                    ),
                    &[&id.0, &active],
                )
                .await?;
            bump(&tx).await?;
            tx.commit().await?;
            Ok(device_from_row(&row))
        })
    }

    fn create_config(&self, config: &AlertConfig) -> Result<StoredConfig, StoreError> {
        self.block_on(async {
            let mut c = self.client().await?;
            let tx = c.transaction().await?;
            if get_account(&tx, &config.account, false).await?.is_none() {
                return Err(StoreError::NoAccount(config.account.clone()).into());
            }
            let body = serde_json::to_string(config).expect("configs serialise");
            let id: i64 = tx
                .query_one(
                    "INSERT INTO alert_configs (account, body) VALUES ($1, $2) RETURNING id",
                    &[&config.account, &body],
                )
                .await?
                .get(0);
            bump(&tx).await?;
            tx.commit().await?;
            Ok(StoredConfig {
                id: ConfigId(id),
                config: config.clone(),
            })
        })
    }

    fn config(&self, id: ConfigId) -> Result<Option<StoredConfig>, StoreError> {
        self.block_on(async {
            let c = self.client().await?;
            let row = c
                .query_opt("SELECT body FROM alert_configs WHERE id = $1", &[&id.0])
                .await?;
            row.map(|r| parse_row(id.0, r.get(0))).transpose()
        })
    }

    fn configs(&self, account: Option<&str>) -> Result<Vec<StoredConfig>, StoreError> {
        self.block_on(async {
            let c = self.client().await?;
            let rows = c
                .query(
                    "SELECT id, body FROM alert_configs
                     WHERE $1::text IS NULL OR account = $1 ORDER BY id",
                    &[&account],
                )
                .await?;
            rows.iter().map(|r| parse_row(r.get(0), r.get(1))).collect()
        })
    }

    fn replace_config(&self, id: ConfigId, config: &AlertConfig) -> Result<bool, StoreError> {
        self.block_on(async {
            let mut c = self.client().await?;
            let tx = c.transaction().await?;
            if get_account(&tx, &config.account, false).await?.is_none() {
                return Err(StoreError::NoAccount(config.account.clone()).into());
            }
            let body = serde_json::to_string(config).expect("configs serialise");
            let done = tx
                .execute(
                    "UPDATE alert_configs SET account = $2, body = $3 WHERE id = $1",
                    &[&id.0, &config.account, &body],
                )
                .await?
                > 0;
            if done {
                bump(&tx).await?;
            }
            tx.commit().await?;
            Ok(done)
        })
    }

    fn delete_config(&self, id: ConfigId) -> Result<bool, StoreError> {
        self.block_on(async {
            let mut c = self.client().await?;
            let tx = c.transaction().await?;
            let done = tx
                .execute("DELETE FROM alert_configs WHERE id = $1", &[&id.0])
                .await?
                > 0;
            if done {
                bump(&tx).await?;
            }
            tx.commit().await?;
            Ok(done)
        })
    }

    fn admin_version(&self) -> Result<i64, StoreError> {
        self.block_on(async {
            let c = self.client().await?;
            let stmt = c
                .prepare_cached("SELECT version FROM admin_changes")
                .await?;
            Ok(c.query_one(&stmt, &[]).await?.get(0))
        })
    }

    fn register_devices(&self, batch: &[Sighting<'_>]) -> Result<Vec<Registration>, StoreError> {
        self.block_on(async {
            let mut c = self.client().await?;
            let tx = c.transaction().await?;
            let find = tx
                .prepare_cached(&format!(
                    "SELECT {DEVICE_COLUMNS} FROM devices
                     WHERE account = $1 AND agent_key = $2 AND hostname = $3"
                ))
                .await?;
            // Locks are taken in one order by every transaction: the accounts' rows (by
            // name) before any device row (by id), so two processes never wait on each
            // other in a cycle. First the devices already known (read, not locked yet).
            let mut out: Vec<Option<Registration>> = Vec::with_capacity(batch.len());
            let mut new_accounts: BTreeSet<&str> = BTreeSet::new();
            for s in batch {
                match tx
                    .query_opt(&find, &[&s.account, &s.agent_key, &s.hostname])
                    .await?
                {
                    Some(row) => out.push(Some(Registration::Known(device_from_row(&row)))),
                    None => {
                        new_accounts.insert(s.account);
                        out.push(None);
                    }
                }
            }
            if !new_accounts.is_empty() {
                let names: Vec<&str> = new_accounts.iter().copied().collect();
                let rows = tx
                    .query(
                        "SELECT name, device_quota FROM accounts WHERE name = ANY($1)
                         ORDER BY name FOR UPDATE",
                        &[&names],
                    )
                    .await?;
                let mut used: HashMap<String, (u32, u32)> = HashMap::new();
                for row in rows {
                    let name: String = row.get(0);
                    let n = active_devices(&tx, &name).await?;
                    used.insert(name, (quota(row.get(1)), n));
                }
                let insert = tx
                    .prepare_cached(&format!(
                        "INSERT INTO devices
                           (account, agent_key, hostname, active, first_seen_ms, last_seen_ms)
                         VALUES ($1, $2, $3, TRUE, $4, $4)
                         ON CONFLICT (account, agent_key, hostname) DO NOTHING
                         RETURNING {DEVICE_COLUMNS}"
                    ))
                    .await?;
                for (s, slot) in batch.iter().zip(out.iter_mut()) {
                    if slot.is_some() {
                        continue;
                    }
                    // Registered by an earlier sighting of this batch, or by another
                    // process before the lock was ours.
                    if let Some(row) = tx
                        .query_opt(&find, &[&s.account, &s.agent_key, &s.hostname])
                        .await?
                    {
                        *slot = Some(Registration::Known(device_from_row(&row)));
                        continue;
                    }
                    let Some((quota, in_use)) = used.get_mut(s.account) else {
                        return Err(StoreError::NoAccount(s.account.into()).into());
                    };
                    if *in_use >= *quota {
                        *slot = Some(Registration::QuotaExceeded);
                        continue;
                    }
                    let row = tx
                        .query_one(&insert, &[&s.account, &s.agent_key, &s.hostname, &s.now_ms])
                        .await?;
                    *in_use += 1;
                    *slot = Some(Registration::Registered(device_from_row(&row)));
                }
            }
            // Then `last_seen` of the known devices, in id order, in one statement.
            let mut seen: BTreeMap<i64, i64> = BTreeMap::new();
            for (s, r) in batch.iter().zip(&out) {
                if let Some(Registration::Known(d)) = r {
                    let at = seen.entry(d.id.0).or_insert(s.now_ms);
                    *at = (*at).max(s.now_ms);
                }
            }
            if !seen.is_empty() {
                let ids: Vec<i64> = seen.keys().copied().collect();
                let times: Vec<i64> = seen.values().copied().collect();
                tx.execute(
                    "UPDATE devices d SET last_seen_ms = GREATEST(d.last_seen_ms, u.ms)
                     FROM unnest($1::bigint[], $2::bigint[]) AS u(id, ms) WHERE d.id = u.id",
                    &[&ids, &times],
                )
                .await?;
            }
            tx.commit().await?;
            Ok(out
                .into_iter()
                .zip(batch)
                .map(|(r, s)| match r.expect("every sighting answered") {
                    Registration::Known(mut d) => {
                        d.last_seen_ms = d.last_seen_ms.max(s.now_ms);
                        Registration::Known(d)
                    }
                    other => other,
                })
                .collect())
        })
    }

    fn import(&self, f: &Fixtures) -> Result<ImportReport, StoreError> {
        self.block_on(async { import_fixtures(&mut self.client().await?, f).await })
    }

    fn touch_devices(&self, seen: &[(DeviceId, i64)]) -> Result<(), StoreError> {
        if seen.is_empty() {
            return Ok(());
        }
        // In id order, so concurrent touches lock rows in the same order.
        let mut seen = seen.to_vec();
        seen.sort_unstable();
        let ids: Vec<i64> = seen.iter().map(|(d, _)| d.0).collect();
        let times: Vec<i64> = seen.iter().map(|(_, t)| *t).collect();
        self.block_on(async {
            let c = self.client().await?;
            let stmt = c
                .prepare_cached(
                    "UPDATE devices d SET last_seen_ms = GREATEST(d.last_seen_ms, t.ms)
                     FROM (SELECT id, MAX(ms) AS ms FROM unnest($1::bigint[], $2::bigint[])
                           AS u(id, ms) GROUP BY id) t
                     WHERE d.id = t.id",
                )
                .await?;
            c.execute(&stmt, &[&ids, &times]).await?;
            Ok(())
        })
    }
}

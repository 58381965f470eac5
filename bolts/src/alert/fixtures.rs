//! Fixtures: accounts, agent keys and alert configs in one JSON file, loaded into a
//! database in one transaction (`squall admin import`, `squall bench pipeline`).
//!
//! ```json
//! {"accounts": [{"name": "acme", "device_quota": 100, "active": true,
//!                "agent_keys": ["f9ce01e1e962b59798d6350eb8cfce4c"]}],
//!  "alerts": [<alert configs exactly as POST /api/v1/alerts/configs takes them>]}
//! ```
//!
//! Importing is idempotent: existing accounts take the file's quota and active flag, keys
//! already issued to the account and configs identical to a stored one are left alone.

use std::collections::{HashMap, HashSet};

use rusqlite::params;
use serde::Deserialize;

use super::accounts::{bump, valid_name, SqliteStore, StoreError};
use super::configs::{AlertConfig, ConfigError};

fn yes() -> bool {
    true
}

/// An account of a fixtures file.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FixtureAccount {
    /// Name.
    pub name: String,
    /// Device quota.
    pub device_quota: u32,
    /// Whether payloads are accepted (default true).
    #[serde(default = "yes")]
    pub active: bool,
    /// Agent keys to issue to it.
    #[serde(default)]
    pub agent_keys: Vec<String>,
}

/// A fixtures file.
#[derive(Clone, Debug, Default)]
pub struct Fixtures {
    /// Accounts with their keys.
    pub accounts: Vec<FixtureAccount>,
    /// Alert configs, validated.
    pub alerts: Vec<AlertConfig>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    #[serde(default)]
    accounts: Vec<FixtureAccount>,
    #[serde(default)]
    alerts: Vec<Box<serde_json::value::RawValue>>,
}

/// What an import did.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct ImportReport {
    /// Accounts created.
    pub accounts_created: usize,
    /// Existing accounts updated.
    pub accounts_updated: usize,
    /// Agent keys issued.
    pub keys_issued: usize,
    /// Keys that were issued already.
    pub keys_present: usize,
    /// Configs created.
    pub configs_created: usize,
    /// Configs identical to a stored one, skipped.
    pub configs_present: usize,
}

impl Fixtures {
    /// Parses and validates a fixtures file; errors name the field, e.g.
    /// `alerts[3].recipients[0].url: ...`.
    pub fn from_json(bytes: &[u8]) -> Result<Self, ConfigError> {
        let de = &mut serde_json::Deserializer::from_slice(bytes);
        let raw: Raw = serde_path_to_error::deserialize(de).map_err(|e| ConfigError {
            field: e.path().to_string(),
            message: e.into_inner().to_string(),
        })?;
        let mut alerts = Vec::with_capacity(raw.alerts.len());
        for (i, a) in raw.alerts.iter().enumerate() {
            alerts.push(
                AlertConfig::from_json(a.get().as_bytes()).map_err(|e| ConfigError {
                    field: format!("alerts[{i}].{}", e.field),
                    message: e.message,
                })?,
            );
        }
        for (i, a) in alerts.iter().enumerate() {
            if !raw.accounts.iter().any(|acc| acc.name == a.account) {
                // Not fatal here: the account may exist in the database already.
                tracing::debug!(alert = i, account = %a.account, "config for an account not in the file");
            }
        }
        Ok(Fixtures {
            accounts: raw.accounts,
            alerts,
        })
    }

    /// The only account of the file, if there is exactly one.
    pub fn only_account(&self) -> Option<&str> {
        match self.accounts.as_slice() {
            [one] => Some(&one.name),
            _ => None,
        }
    }
}

impl SqliteStore {
    /// Loads `f` in one transaction (see the module docs).
    pub fn import(&self, f: &Fixtures) -> Result<ImportReport, StoreError> {
        for a in &f.accounts {
            valid_name(&a.name)?;
        }
        let mut report = ImportReport::default();
        let mut conn = self.conn();
        super::configs::ensure_schema(&conn)?;
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
                    Some(_) => return Err(StoreError::KeyTaken { key: key.clone() }),
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
            let mut insert =
                tx.prepare("INSERT INTO alert_configs (account, body) VALUES (?1, ?2)")?;
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
                    return Err(StoreError::NoAccount(c.account.clone()));
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::accounts::AccountStore;

    fn file(alerts: usize) -> String {
        let alerts: Vec<String> = (0..alerts)
            .map(|i| {
                format!(
                    r#"{{"account": "acme", "name": "load {i}", "kind": "threshold",
                    "subject": {{"type": "agent_key", "id": "key-{i}"}}, "metric": "system.load.1",
                    "comparison": "gte", "value": {i}, "wait": {{"seconds": 60, "enabled": true}},
                    "repeat": {{"seconds": 600, "enabled": false}}, "fix": true,
                    "recipients": [{{"type": "webhook", "url": "http://127.0.0.1:9/h"}}]}}"#
                )
            })
            .collect();
        format!(
            r#"{{"accounts": [{{"name": "acme", "device_quota": 5, "active": true,
                 "agent_keys": ["k1", "k2"]}}], "alerts": [{}]}}"#,
            alerts.join(",")
        )
    }

    #[test]
    fn imports_once_and_again_idempotently() {
        let store = SqliteStore::in_memory().unwrap();
        let f = Fixtures::from_json(file(3).as_bytes()).unwrap();
        assert_eq!(f.only_account(), Some("acme"));
        let first = store.import(&f).unwrap();
        assert_eq!(
            (
                first.accounts_created,
                first.keys_issued,
                first.configs_created
            ),
            (1, 2, 3)
        );
        let again = store.import(&f).unwrap();
        assert_eq!(
            (
                again.accounts_updated,
                again.keys_present,
                again.configs_present,
                again.configs_created
            ),
            (1, 2, 3, 0)
        );
        assert_eq!(store.configs(Some("acme")).unwrap().len(), 3);
        assert_eq!(store.key_account("k2").unwrap().as_deref(), Some("acme"));
    }

    #[test]
    fn a_bad_config_names_its_index_and_field() {
        let bad = file(2).replace("\"gte\", \"value\": 1", "\"bigger\", \"value\": 1");
        let e = Fixtures::from_json(bad.as_bytes()).unwrap_err();
        assert_eq!(e.field, "alerts[1].comparison");
    }
}

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

use serde::Deserialize;

use crate::configs::{AlertConfig, ConfigError};

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
            position: None,
        })?;
        let mut alerts = Vec::with_capacity(raw.alerts.len());
        for (i, a) in raw.alerts.iter().enumerate() {
            alerts.push(
                AlertConfig::from_json(a.get().as_bytes()).map_err(|e| ConfigError {
                    field: format!("alerts[{i}].{}", e.field),
                    message: e.message,
                    position: e.position,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bad_config_names_its_index_and_field() {
        let bad = crate::store::conformance::fixtures_file(2)
            .replace("\"gte\", \"value\": 1", "\"bigger\", \"value\": 1");
        let e = Fixtures::from_json(bad.as_bytes()).unwrap_err();
        assert_eq!(e.field, "alerts[1].comparison");
    }
}

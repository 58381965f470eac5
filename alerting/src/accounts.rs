//! Accounts, agent keys and devices: the model the `enrich` bolt and the admin API share,
//! and the checks every backend applies before it stores anything.
//!
//! Quota: a device counts against its account's `device_quota` while it is active.
//! Backends register a batch of new devices in one transaction that holds the write lock
//! for the quota checks and the inserts together, so a burst never exceeds the quota.

use rand::RngCore;
use serde::{Deserialize, Serialize};

use crate::error::StoreError;
use crate::ids::DeviceId;

/// An account.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Account {
    /// Unique name (also the `<account>` of `<account>.agent.<domain>`).
    pub name: String,
    /// Most active devices.
    pub device_quota: u32,
    /// Whether payloads are accepted.
    pub active: bool,
}

/// A monitored device.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Device {
    /// Id.
    pub id: DeviceId,
    /// Its account.
    pub account: String,
    /// The agent key it posts with.
    pub agent_key: String,
    /// The agent's hostname.
    pub hostname: String,
    /// Whether its payloads are accepted.
    pub active: bool,
    /// First payload, ms since the epoch.
    pub first_seen_ms: i64,
    /// Latest payload, ms since the epoch.
    pub last_seen_ms: i64,
}

/// The outcome of [`crate::store::AccountStore::register_device`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Registration {
    /// The device was known.
    Known(Device),
    /// The device is new and was registered within the quota.
    Registered(Device),
    /// The device is new and the account has no quota left.
    QuotaExceeded,
}

/// A change to an account.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccountPatch {
    /// New quota.
    pub device_quota: Option<u32>,
    /// New state.
    pub active: Option<bool>,
}

/// A payload's device as [`crate::store::AccountStore::register_devices`] takes it.
#[derive(Clone, Copy, Debug)]
pub struct Sighting<'a> {
    /// Account name.
    pub account: &'a str,
    /// Agent key.
    pub agent_key: &'a str,
    /// Hostname (or uuid).
    pub hostname: &'a str,
    /// When the payload was received, epoch ms.
    pub now_ms: i64,
}

/// Checks an account name: 1-63 lowercase letters, digits or '-' (a host name label).
pub fn valid_name(name: &str) -> Result<(), StoreError> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !name.starts_with('-');
    if ok {
        Ok(())
    } else {
        Err(StoreError::Invalid {
            field: "name",
            message: format!(
                "\"{name}\" must be 1-63 lowercase letters, digits or '-' (it is a host name label)"
            ),
        })
    }
}

/// The agent key to issue: `key` checked and trimmed, or a new random 32-hex-digit key.
pub fn agent_key_to_issue(key: Option<&str>) -> Result<String, StoreError> {
    Ok(match key {
        Some(k) => {
            let k = k.trim();
            if k.is_empty()
                || k.len() > 128
                || !k.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            {
                return Err(StoreError::Invalid {
                    field: "agentKey",
                    message: "must be 1-128 letters, digits or '-'".into(),
                });
            }
            k.to_string()
        }
        None => {
            let mut bytes = [0u8; 16];
            rand::thread_rng().fill_bytes(&mut bytes);
            bytes.iter().map(|b| format!("{b:02x}")).collect()
        }
    })
}

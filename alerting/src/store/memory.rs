//! [`MemoryStore`]: every storage trait in memory, behind one mutex.
//!
//! It keeps the same promises as the database backends (it passes the same
//! [`super::conformance`] suite): batches and imports are all-or-nothing, the quota holds
//! under concurrent registrations, minutes keep the latest event time. It forgets
//! everything when dropped: for docs, tests and benches, never for data that matters.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Mutex, MutexGuard};

use super::{
    aggregate_hour, hour_points, hours_within, latest_key, minute_of, minute_points,
    minutes_within, series_key, AccountStore, AlertChange, AlertStateStore, Claim, Delivery,
    DeliveryLog, Fence, GroupRow, HourRows, MetricStore, MinutePoints, PolicyStore, StateRow,
    StoreError, StoredPoint, TriggeredAlert,
};
use crate::accounts::{
    agent_key_to_issue, valid_name, Account, AccountPatch, Device, Registration, Sighting,
};
use crate::configs::{AlertConfig, StoredConfig};
use crate::fixtures::{Fixtures, ImportReport};
use crate::ids::{ConfigId, DeviceId};
use crate::payload::MetricPoint;
use crate::policy::silence::{Silence, StoredSilence};

#[derive(Clone, Debug, Default)]
struct Inner {
    accounts: BTreeMap<String, Account>,
    keys: HashMap<String, String>,
    devices: BTreeMap<DeviceId, Device>,
    configs: BTreeMap<ConfigId, AlertConfig>,
    next_config: i64,
    admin_version: i64,
    /// Device -> (account, partition, state).
    states: BTreeMap<DeviceId, (String, Option<i32>, Vec<u8>)>,
    /// Partition -> the latest claim's epoch.
    epochs: BTreeMap<i32, i64>,
    alerts: BTreeMap<i64, TriggeredAlert>,
    next_alert: i64,
    deliveries: HashMap<String, Delivery>,
    /// Notification id -> (owner, until ms).
    claims: HashMap<String, (String, i64)>,
    minutes: BTreeMap<(DeviceId, i64), (f64, MinutePoints)>,
    hours: BTreeMap<(DeviceId, i64), HourRows>,
    changed_hours: BTreeSet<(DeviceId, i64)>,
    silences: BTreeMap<i64, StoredSilence>,
    /// Group key -> (partition, state).
    groups: BTreeMap<String, (Option<i32>, Vec<u8>)>,
    /// Notifications partition -> the latest claim's epoch.
    group_epochs: BTreeMap<i32, i64>,
}

/// Every storage trait in memory (see the module docs).
#[derive(Debug, Default)]
pub struct MemoryStore {
    inner: Mutex<Inner>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Inner {
    fn account_exists(&self, name: &str) -> Result<(), StoreError> {
        match self.accounts.contains_key(name) {
            true => Ok(()),
            false => Err(StoreError::NoAccount(name.into())),
        }
    }

    fn find_device(&self, s: &Sighting<'_>) -> Option<DeviceId> {
        self.devices
            .values()
            .find(|d| {
                d.account == s.account && d.agent_key == s.agent_key && d.hostname == s.hostname
            })
            .map(|d| d.id)
    }

    fn open_alert(&self, config_id: ConfigId, device: DeviceId, series: &str) -> Option<i64> {
        self.alerts
            .values()
            .find(|a| {
                a.closed_at.is_none()
                    && a.config_id == config_id
                    && a.device == device
                    && series_key(&a.series) == series
            })
            .map(|a| a.id)
    }

    fn hour_from_minutes(&self, device: DeviceId, hour: i64) -> HourRows {
        aggregate_hour(
            self.minutes
                .range((device, hour * 60)..(device, (hour + 1) * 60))
                .map(|(_, (_, points))| points.as_slice()),
        )
    }

    fn roll_up(&mut self, now: f64, limit: usize) -> usize {
        let current = (now / 3600.0).floor() as i64;
        let mut due: Vec<(DeviceId, i64)> = self
            .changed_hours
            .iter()
            .filter(|(_, hour)| *hour < current)
            .copied()
            .collect();
        due.sort_by_key(|(device, hour)| (*hour, *device));
        due.truncate(limit);
        for (device, hour) in &due {
            let rows = self.hour_from_minutes(*device, *hour);
            self.hours.insert((*device, *hour), rows);
            self.changed_hours.remove(&(*device, *hour));
        }
        due.len()
    }
}

impl AccountStore for MemoryStore {
    fn create_account(&self, account: &Account) -> Result<Account, StoreError> {
        valid_name(&account.name)?;
        let mut s = self.lock();
        if s.accounts.contains_key(&account.name) {
            return Err(StoreError::AccountExists(account.name.clone()));
        }
        s.accounts.insert(account.name.clone(), account.clone());
        s.admin_version += 1;
        Ok(account.clone())
    }

    fn update_account(&self, name: &str, patch: &AccountPatch) -> Result<Account, StoreError> {
        let mut s = self.lock();
        let account = s
            .accounts
            .get_mut(name)
            .ok_or_else(|| StoreError::NoAccount(name.into()))?;
        if let Some(q) = patch.device_quota {
            account.device_quota = q;
        }
        if let Some(a) = patch.active {
            account.active = a;
        }
        let account = account.clone();
        s.admin_version += 1;
        Ok(account)
    }

    fn account(&self, name: &str) -> Result<Option<Account>, StoreError> {
        Ok(self.lock().accounts.get(name).cloned())
    }

    fn issue_agent_key(&self, account: &str, key: Option<&str>) -> Result<String, StoreError> {
        let key = agent_key_to_issue(key)?;
        let mut s = self.lock();
        s.account_exists(account)?;
        match s.keys.get(&key) {
            Some(owner) if owner == account => {}
            Some(_) => return Err(StoreError::KeyTaken { key }),
            None => {
                s.keys.insert(key.clone(), account.into());
            }
        }
        Ok(key)
    }

    fn key_account(&self, key: &str) -> Result<Option<String>, StoreError> {
        Ok(self.lock().keys.get(key).cloned())
    }

    fn devices(&self, account: &str) -> Result<Vec<Device>, StoreError> {
        let s = self.lock();
        s.account_exists(account)?;
        Ok(s.devices
            .values()
            .filter(|d| d.account == account)
            .cloned()
            .collect())
    }

    fn set_device_active(&self, id: DeviceId, active: bool) -> Result<Device, StoreError> {
        let mut s = self.lock();
        let device = s.devices.get(&id).ok_or(StoreError::NoDevice(id))?;
        if active && !device.active {
            let account = device.account.clone();
            let quota = s.accounts.get(&account).map_or(0, |a| a.device_quota) as usize;
            let in_use = s
                .devices
                .values()
                .filter(|d| d.account == account && d.active)
                .count();
            if in_use >= quota {
                return Err(StoreError::QuotaExceeded { account });
            }
        }
        let device = s.devices.get_mut(&id).expect("found above");
        device.active = active;
        let device = device.clone();
        s.admin_version += 1;
        Ok(device)
    }

    fn create_config(&self, config: &AlertConfig) -> Result<StoredConfig, StoreError> {
        let mut s = self.lock();
        s.account_exists(&config.account)?;
        s.next_config += 1;
        let id = ConfigId(s.next_config);
        s.configs.insert(id, config.clone());
        s.admin_version += 1;
        Ok(StoredConfig {
            id,
            config: config.clone(),
        })
    }

    fn config(&self, id: ConfigId) -> Result<Option<StoredConfig>, StoreError> {
        Ok(self.lock().configs.get(&id).map(|c| StoredConfig {
            id,
            config: c.clone(),
        }))
    }

    fn configs(&self, account: Option<&str>) -> Result<Vec<StoredConfig>, StoreError> {
        Ok(self
            .lock()
            .configs
            .iter()
            .filter(|(_, c)| account.is_none_or(|a| c.account == a))
            .map(|(&id, c)| StoredConfig {
                id,
                config: c.clone(),
            })
            .collect())
    }

    fn replace_config(&self, id: ConfigId, config: &AlertConfig) -> Result<bool, StoreError> {
        let mut s = self.lock();
        s.account_exists(&config.account)?;
        let Some(slot) = s.configs.get_mut(&id) else {
            return Ok(false);
        };
        *slot = config.clone();
        s.admin_version += 1;
        Ok(true)
    }

    fn delete_config(&self, id: ConfigId) -> Result<bool, StoreError> {
        let mut s = self.lock();
        let done = s.configs.remove(&id).is_some();
        if done {
            s.admin_version += 1;
        }
        Ok(done)
    }

    fn admin_version(&self) -> Result<i64, StoreError> {
        Ok(self.lock().admin_version)
    }

    fn register_devices(&self, batch: &[Sighting<'_>]) -> Result<Vec<Registration>, StoreError> {
        let mut guard = self.lock();
        // All or nothing: work on a copy, keep it only if every sighting was answered.
        let mut s = guard.clone();
        let mut out = Vec::with_capacity(batch.len());
        for sighting in batch {
            if let Some(id) = s.find_device(sighting) {
                let d = s.devices.get_mut(&id).expect("found above");
                d.last_seen_ms = d.last_seen_ms.max(sighting.now_ms);
                out.push(Registration::Known(d.clone()));
                continue;
            }
            let quota = match s.accounts.get(sighting.account) {
                Some(a) => a.device_quota,
                None => return Err(StoreError::NoAccount(sighting.account.into())),
            };
            let in_use = s
                .devices
                .values()
                .filter(|d| d.account == sighting.account && d.active)
                .count();
            if in_use >= quota as usize {
                out.push(Registration::QuotaExceeded);
                continue;
            }
            let id = DeviceId(s.devices.keys().next_back().map_or(1, |last| last.0 + 1));
            let device = Device {
                id,
                account: sighting.account.into(),
                agent_key: sighting.agent_key.into(),
                hostname: sighting.hostname.into(),
                active: true,
                first_seen_ms: sighting.now_ms,
                last_seen_ms: sighting.now_ms,
            };
            s.devices.insert(id, device.clone());
            out.push(Registration::Registered(device));
        }
        *guard = s;
        Ok(out)
    }

    fn touch_devices(&self, seen: &[(DeviceId, i64)]) -> Result<(), StoreError> {
        let mut s = self.lock();
        for (id, ms) in seen {
            if let Some(d) = s.devices.get_mut(id) {
                d.last_seen_ms = d.last_seen_ms.max(*ms);
            }
        }
        Ok(())
    }

    fn import(&self, f: &Fixtures) -> Result<ImportReport, StoreError> {
        for a in &f.accounts {
            valid_name(&a.name)?;
        }
        let mut guard = self.lock();
        // All or nothing, as one transaction of a database.
        let mut s = guard.clone();
        let mut report = ImportReport::default();
        for a in &f.accounts {
            let account = Account {
                name: a.name.clone(),
                device_quota: a.device_quota,
                active: a.active,
            };
            match s.accounts.insert(a.name.clone(), account) {
                Some(_) => report.accounts_updated += 1,
                None => report.accounts_created += 1,
            }
            for key in &a.agent_keys {
                match s.keys.get(key) {
                    Some(o) if *o == a.name => report.keys_present += 1,
                    Some(_) => return Err(StoreError::KeyTaken { key: key.clone() }),
                    None => {
                        s.keys.insert(key.clone(), a.name.clone());
                        report.keys_issued += 1;
                    }
                }
            }
        }
        for c in &f.alerts {
            s.account_exists(&c.account)?;
            if s.configs.values().any(|stored| stored == c) {
                report.configs_present += 1;
                continue;
            }
            s.next_config += 1;
            let id = ConfigId(s.next_config);
            s.configs.insert(id, c.clone());
            report.configs_created += 1;
        }
        s.admin_version += 1;
        *guard = s;
        Ok(report)
    }
}

impl AlertStateStore for MemoryStore {
    fn device_state(&self, device: DeviceId) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.lock().states.get(&device).map(|(_, _, b)| b.clone()))
    }

    fn device_states(
        &self,
        partition: Option<i32>,
        keep: &dyn Fn(DeviceId) -> bool,
    ) -> Result<Vec<(DeviceId, String, Vec<u8>)>, StoreError> {
        Ok(self
            .lock()
            .states
            .iter()
            .filter(|(d, (_, p, _))| partition.is_none_or(|want| *p == Some(want)) && keep(**d))
            .map(|(d, (a, _, b))| (*d, a.clone(), b.clone()))
            .collect())
    }

    fn claim_partition(&self, partition: i32) -> Result<i64, StoreError> {
        let mut s = self.lock();
        let epoch = s.epochs.entry(partition).or_default();
        *epoch += 1;
        Ok(*epoch)
    }

    fn commit(
        &self,
        fences: &[Fence],
        states: &[StateRow<'_>],
        changes: &[AlertChange],
    ) -> Result<(), StoreError> {
        let mut s = self.lock();
        for f in fences {
            if s.epochs.get(&f.partition).copied().unwrap_or(0) != f.epoch {
                return Err(StoreError::Fenced {
                    partition: f.partition,
                    epoch: f.epoch,
                });
            }
        }
        for row in states {
            s.states.insert(
                row.device,
                (row.account.to_string(), row.partition, row.blob.clone()),
            );
        }
        for change in changes {
            match change {
                AlertChange::Open(a) => {
                    // A leftover open alert of the key (a config edited under it) closes
                    // first: never more than one open alert per key.
                    if let Some(id) = s.open_alert(a.config_id, a.device, &series_key(&a.series)) {
                        s.alerts.get_mut(&id).expect("found").closed_at = Some(a.fired_at);
                    }
                    s.next_alert += 1;
                    let id = s.next_alert;
                    let row = TriggeredAlert {
                        id,
                        closed_at: None,
                        ..a.clone()
                    };
                    s.alerts.insert(id, row);
                }
                AlertChange::Value {
                    config_id,
                    device,
                    series,
                    value,
                } => {
                    if let Some(id) = s.open_alert(*config_id, *device, series) {
                        s.alerts.get_mut(&id).expect("found").last_value = Some(*value);
                    }
                }
                AlertChange::Close {
                    config_id,
                    device,
                    series,
                    at,
                    value,
                } => {
                    if let Some(id) = s.open_alert(*config_id, *device, series) {
                        let a = s.alerts.get_mut(&id).expect("found");
                        a.closed_at = Some(*at);
                        if value.is_some() {
                            a.last_value = *value;
                        }
                    }
                }
            }
        }
        Ok(())
    }

    fn triggered(
        &self,
        closed: bool,
        account: Option<&str>,
    ) -> Result<Vec<TriggeredAlert>, StoreError> {
        Ok(self
            .lock()
            .alerts
            .values()
            .rev()
            .filter(|a| a.closed_at.is_some() == closed)
            .filter(|a| account.is_none_or(|want| a.account == want))
            .take(1000)
            .cloned()
            .collect())
    }
}

impl DeliveryLog for MemoryStore {
    fn delivery(&self, id: &str) -> Result<Option<Delivery>, StoreError> {
        Ok(self.lock().deliveries.get(id).cloned())
    }

    fn deliveries(&self) -> Result<Vec<Delivery>, StoreError> {
        let mut out: Vec<Delivery> = self.lock().deliveries.values().cloned().collect();
        out.sort_by(|a, b| a.at_ms.cmp(&b.at_ms).then_with(|| a.id.cmp(&b.id)));
        Ok(out)
    }

    fn record_delivery(&self, delivery: &Delivery) -> Result<(), StoreError> {
        let mut s = self.lock();
        s.deliveries
            .entry(delivery.id.clone())
            .or_insert_with(|| delivery.clone());
        s.claims.remove(&delivery.id);
        Ok(())
    }

    fn claim_delivery(
        &self,
        id: &str,
        owner: &str,
        now_ms: i64,
        until_ms: i64,
    ) -> Result<Claim, StoreError> {
        let mut s = self.lock();
        if s.deliveries.contains_key(id) {
            return Ok(Claim::Done);
        }
        match s.claims.get(id) {
            Some((other, until)) if other != owner && *until >= now_ms => Ok(Claim::Held {
                owner: other.clone(),
                until_ms: *until,
            }),
            _ => {
                s.claims
                    .insert(id.to_string(), (owner.to_string(), until_ms));
                Ok(Claim::Mine)
            }
        }
    }
}

impl PolicyStore for MemoryStore {
    fn create_silence(
        &self,
        silence: &Silence,
        now: jiff::Timestamp,
    ) -> Result<StoredSilence, StoreError> {
        let mut s = self.lock();
        let id = s.silences.keys().next_back().map_or(1, |last| last + 1);
        let stored = StoredSilence {
            id,
            silence: silence.clone(),
            created_at: now,
        };
        s.silences.insert(id, stored.clone());
        s.admin_version += 1;
        Ok(stored)
    }

    fn silences(&self, account: Option<&str>) -> Result<Vec<StoredSilence>, StoreError> {
        Ok(self
            .lock()
            .silences
            .values()
            .rev()
            .filter(|s| account.is_none_or(|a| s.silence.account == a))
            .cloned()
            .collect())
    }

    fn expire_silence(
        &self,
        id: i64,
        now: jiff::Timestamp,
    ) -> Result<Option<StoredSilence>, StoreError> {
        let mut s = self.lock();
        let Some(stored) = s.silences.get_mut(&id) else {
            return Ok(None);
        };
        stored.silence.expire(now);
        let out = stored.clone();
        s.admin_version += 1;
        Ok(Some(out))
    }

    fn claim_group_partition(&self, partition: i32) -> Result<i64, StoreError> {
        let mut s = self.lock();
        let epoch = s.group_epochs.entry(partition).or_insert(0);
        *epoch += 1;
        Ok(*epoch)
    }

    fn groups(&self, partition: Option<i32>) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        Ok(self
            .lock()
            .groups
            .iter()
            .filter(|(_, (p, _))| partition.is_none() || *p == partition)
            .map(|(k, (_, blob))| (k.clone(), blob.clone()))
            .collect())
    }

    fn commit_groups(
        &self,
        fences: &[Fence],
        groups: &[GroupRow],
        records: &[Delivery],
    ) -> Result<(), StoreError> {
        let mut s = self.lock();
        for f in fences {
            if s.group_epochs.get(&f.partition).copied().unwrap_or(0) != f.epoch {
                return Err(StoreError::Fenced {
                    partition: f.partition,
                    epoch: f.epoch,
                });
            }
        }
        for g in groups {
            match &g.blob {
                Some(blob) => {
                    s.groups.insert(g.key.clone(), (g.partition, blob.clone()));
                }
                None => {
                    s.groups.remove(&g.key);
                }
            }
        }
        for d in records {
            s.deliveries
                .entry(d.id.clone())
                .or_insert_with(|| d.clone());
        }
        Ok(())
    }
}

impl MetricStore for MemoryStore {
    fn write(&self, batch: &[(DeviceId, f64, &[MetricPoint])]) -> Result<(), StoreError> {
        let mut s = self.lock();
        for (device, time, points) in batch {
            let minute = minute_of(*time);
            let row: MinutePoints = points
                .iter()
                .map(|p| (p.name.to_string(), p.series_key(), p.value))
                .collect();
            match s.minutes.get(&(*device, minute)) {
                Some((stored, _)) if *stored > *time => {}
                _ => {
                    s.minutes.insert((*device, minute), (*time, row));
                }
            }
            s.changed_hours.insert((*device, minute.div_euclid(60)));
        }
        Ok(())
    }

    fn roll_up(&self, now: f64, limit: usize) -> Result<usize, StoreError> {
        Ok(self.lock().roll_up(now, limit))
    }

    fn latest(&self, device: DeviceId) -> Result<Option<(f64, serde_json::Value)>, StoreError> {
        let s = self.lock();
        let newest = s
            .minutes
            .range((device, i64::MIN)..=(device, i64::MAX))
            .next_back();
        Ok(newest.map(|(_, (time, points))| {
            let values = points
                .iter()
                .map(|(m, series, v)| (latest_key(m, series), (*v).into()))
                .collect::<serde_json::Map<_, _>>();
            (*time, serde_json::Value::Object(values))
        }))
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
        let s = self.lock();
        if hourly {
            let (first, last) = hours_within(from, to);
            if first > last {
                return Ok(Vec::new());
            }
            let range = (device, first)..=(device, last);
            let mut hours: BTreeMap<i64, HourRows> = s
                .hours
                .range(range.clone())
                .map(|((_, h), rows)| (*h, rows.clone()))
                .collect();
            // Hours still open or changed since their roll-up come from their minutes.
            for (_, hour) in s.changed_hours.range(range) {
                hours.insert(*hour, s.hour_from_minutes(device, *hour));
            }
            Ok(hour_points(hours, metric, series))
        } else {
            let (first, last) = minutes_within(from, to);
            if first > last {
                return Ok(Vec::new());
            }
            let minutes = s
                .minutes
                .range((device, first)..=(device, last))
                .map(|((_, minute), (_, points))| (*minute, points.clone()));
            Ok(minute_points(minutes, metric, series))
        }
    }

    fn retain(&self, now: f64, days: u32) -> Result<usize, StoreError> {
        let mut s = self.lock();
        // Every hour holding a minute about to go is rolled up first.
        s.roll_up(now - f64::from(days) * 86_400.0 + 3600.0, usize::MAX);
        let cutoff = ((now - f64::from(days) * 86_400.0) / 60.0).floor() as i64;
        let mut newest: HashMap<DeviceId, i64> = HashMap::new();
        for (device, minute) in s.minutes.keys() {
            newest.insert(*device, *minute);
        }
        let old: Vec<(DeviceId, i64)> = s
            .minutes
            .keys()
            .filter(|(device, minute)| *minute < cutoff && *minute < newest[device])
            .copied()
            .collect();
        for key in &old {
            s.minutes.remove(key);
        }
        Ok(old.len())
    }
}

#[cfg(test)]
mod tests {
    use super::MemoryStore;

    crate::store_conformance_tests!(MemoryStore::new);
}

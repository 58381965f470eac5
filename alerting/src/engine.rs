//! The alert engine: evaluates enriched payloads against their account's alert configs
//! ([`crate::rules`] semantics) over the storage traits, and returns one [`AlertEvent`]
//! per transition.
//!
//! - Configs are loaded per account from the [`AccountStore`] and dropped from the cache
//!   when its admin version changes ([`Engine::refresh`]).
//! - **Durability**: [`Engine::observe`] and [`Engine::tick`] move state in memory;
//!   [`Engine::commit`] writes every changed device state and alert row in one
//!   transaction of the [`AlertStateStore`]. Callers ack the inputs only after the commit,
//!   so the state never runs behind what upstream considers done. If the commit fails, the
//!   in-memory state of the affected devices is dropped and read back next time, so memory
//!   never runs ahead of what is durable.
//! - A replayed payload (event time not after the last evaluated one) moves nothing; if it
//!   had caused transitions, the same events (same ids) are returned again, so a
//!   notification lost between the commit and a crash is still produced.
//! - **No-data** rules are checked by [`Engine::tick`] against server time; after
//!   [`Engine::load`] the first tick returns the open no-data alerts again (same ids): a
//!   tick has no input to anchor to, so this is what keeps a crash from losing one.
//! - **Partitions** (several processes): [`Engine::own`] takes a partition under the epoch
//!   its owner claimed and loads its devices; every commit carries the epochs of the
//!   partitions it writes, and a refused one ([`StoreError::Fenced`]: another owner claimed
//!   the partition since) makes the engine [`release`](Engine::release) it, forgetting its
//!   devices, so it neither evaluates nor checks no-data for them again until it owns the
//!   partition anew. A device's state moves with its partition.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::configs::{Kind, StoredConfig, Subject};
use crate::events::{event_id, ms, AlertEvent, EventKind};
use crate::ids::{ConfigId, DeviceId};
use crate::payload::Payload;
use crate::rules::DeviceState;

mod expr;
use crate::store::{
    AccountStore, AlertChange, AlertStateStore, Fence, StateRow, StoreError, TriggeredAlert,
};
use expr::ExprRule;

/// One enriched payload, as the engine evaluates it.
#[derive(Clone, Debug)]
pub struct Observation {
    /// Device id.
    pub device: DeviceId,
    /// Account.
    pub account: String,
    /// Agent key it posted with.
    pub agent_key: String,
    /// Host name.
    pub hostname: String,
    /// Event time (epoch seconds).
    pub time: f64,
    /// Server receive time (epoch seconds).
    pub received_at: f64,
    /// The metric points.
    pub payload: Arc<Payload>,
    /// The input partition the payload arrived on: the owner of the partition evaluates
    /// the device (`None`: an input without partitions, one owner).
    pub partition: Option<i32>,
}

/// The configs of one account, ready to evaluate, indexed by subject so a payload only
/// meets its own (an account may hold a set of configs per device: tens of thousands).
#[derive(Default)]
struct AccountRules {
    /// Threshold configs, compiled (`expr` or the JSON form).
    exprs: Vec<(ExprRule, Arc<StoredConfig>)>,
    expr_index: BySubject,
    /// Seconds of points to keep per metric the `expr` rules read (their longest window
    /// over it; 0: only its last time): a short list, scanned, not hashed per point.
    keep: Vec<(String, u64)>,
    /// Whether any `expr` rule uses `absent` (then every kept metric's last time is
    /// recorded, and ticks evaluate them).
    absent: bool,
    no_data: Vec<Arc<StoredConfig>>,
    by_id: HashMap<ConfigId, Arc<StoredConfig>>,
}

/// Rules (by index) per subject: account-wide, per device, per agent key.
#[derive(Default)]
struct BySubject {
    account_wide: Vec<usize>,
    by_device: HashMap<DeviceId, Vec<usize>>,
    by_key: HashMap<String, Vec<usize>>,
}

impl BySubject {
    fn add(&mut self, subject: &Subject, i: usize) {
        match subject {
            Subject::Account => self.account_wide.push(i),
            Subject::Device { id } => self.by_device.entry(*id).or_default().push(i),
            Subject::AgentKey { id } => self.by_key.entry(id.clone()).or_default().push(i),
        }
    }

    /// The rules applying to `device` posting with `agent_key`.
    fn of<'a>(&'a self, device: DeviceId, agent_key: &str) -> impl Iterator<Item = usize> + 'a {
        let none: &[usize] = &[];
        let by_device = self.by_device.get(&device).map_or(none, Vec::as_slice);
        let by_key = self.by_key.get(agent_key).map_or(none, Vec::as_slice);
        self.account_wide
            .iter()
            .chain(by_device)
            .chain(by_key)
            .copied()
    }
}

impl AccountRules {
    /// The `expr` rules applying to `device` posting with `agent_key`.
    fn exprs_for<'a>(
        &'a self,
        device: DeviceId,
        agent_key: &str,
    ) -> impl Iterator<Item = &'a (ExprRule, Arc<StoredConfig>)> + 'a {
        self.expr_index
            .of(device, agent_key)
            .map(|i| &self.exprs[i])
    }
}

/// What is persisted per device.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct Persisted {
    account: String,
    agent_key: String,
    hostname: String,
    state: DeviceState,
    /// The events of the last payloads that caused any, by event time in ms: a replayed
    /// payload re-emits them (same ids) instead of nothing.
    recent: Vec<(i64, Vec<AlertEvent>)>,
}

/// How many payloads of a device may be replayed after a crash and still re-emit their
/// events: more than a device sends between two offset commits, with room to spare.
const RECENT: usize = 32;

fn applies(subject: &Subject, device: DeviceId, agent_key: &str) -> bool {
    match subject {
        Subject::Account => true,
        Subject::Device { id } => *id == device,
        Subject::AgentKey { id } => id == agent_key,
    }
}

/// Alert evaluation with durable state (see the module docs): the synchronous core of the
/// `threshold` bolt, which runs it on a dedicated thread because storage calls block.
pub struct Engine {
    configs: Arc<dyn AccountStore>,
    store: Arc<dyn AlertStateStore>,
    rules: HashMap<String, Arc<AccountRules>>,
    devices: HashMap<DeviceId, Persisted>,
    dirty: HashSet<DeviceId>,
    changes: Vec<AlertChange>,
    version: Option<i64>,
    /// Set by [`Engine::load`]: the first tick re-emits the open no-data alerts.
    replay_open_no_data: bool,
    /// Partitions owned: partition -> (the epoch claimed, the server time it was taken).
    owned: HashMap<i32, (i64, f64)>,
    /// The partition of each held device that has one.
    partition_of: HashMap<DeviceId, i32>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine").finish_non_exhaustive()
    }
}

impl Engine {
    /// An engine reading configs from `configs` and keeping state in `store`.
    pub fn new(configs: Arc<dyn AccountStore>, store: Arc<dyn AlertStateStore>) -> Self {
        let version = configs.admin_version().ok();
        Engine {
            configs,
            store,
            rules: HashMap::new(),
            devices: HashMap::new(),
            dirty: HashSet::new(),
            changes: Vec::new(),
            version,
            replay_open_no_data: false,
            owned: HashMap::new(),
            partition_of: HashMap::new(),
        }
    }

    /// Takes `partition` under `epoch` (claimed with
    /// [`AlertStateStore::claim_partition`]) at server time `now`: forgets what it held of
    /// the partition, loads the persisted state of the partition's devices for which
    /// `mine(device)` holds, and has the next tick re-emit their open no-data alerts.
    /// Returns how many it loaded.
    ///
    /// Every device of the partition (loaded now, or later when its payloads reach this
    /// engine) counts as seen at `now` for its no-data rules: payloads it sent while the
    /// partition had no owner (a restart, a failover) wait in the partition, and must not
    /// look like silence to the new owner, which has not read them yet. So a device that
    /// really went silent is reported at most the handover time late, never falsely.
    pub fn own(
        &mut self,
        partition: i32,
        epoch: i64,
        now: f64,
        mine: impl Fn(DeviceId) -> bool,
    ) -> Result<usize, StoreError> {
        self.release(partition);
        let rows = self.store.device_states(Some(partition), &mine)?;
        let n = rows.len();
        for (device, _, blob) in rows {
            if let Some(mut p) = decode(device, &blob) {
                if let Some(seen) = &mut p.state.last_seen {
                    *seen = seen.max(now);
                }
                self.devices.insert(device, p);
                self.partition_of.insert(device, partition);
            }
        }
        self.owned.insert(partition, (epoch, now));
        self.replay_open_no_data = true;
        Ok(n)
    }

    /// Gives `partition` up: forgets its devices (their state is in the store).
    pub fn release(&mut self, partition: i32) {
        if self.owned.remove(&partition).is_none() {
            return;
        }
        let gone: Vec<DeviceId> = self
            .partition_of
            .iter()
            .filter(|(_, p)| **p == partition)
            .map(|(d, _)| *d)
            .collect();
        for device in gone {
            self.partition_of.remove(&device);
            self.devices.remove(&device);
            self.dirty.remove(&device);
        }
    }

    /// The epoch `partition` is owned under, if it is.
    pub fn epoch(&self, partition: i32) -> Option<i64> {
        self.owned.get(&partition).map(|(e, _)| *e)
    }

    /// The partitions owned, with their epochs.
    pub fn owned(&self) -> impl Iterator<Item = (i32, i64)> + '_ {
        self.owned.iter().map(|(p, (e, _))| (*p, *e))
    }

    /// Loads the persisted state of every device for which `mine(device)` holds (no-data
    /// rules need to know devices before they post again). Returns how many.
    pub fn load(&mut self, mine: impl Fn(DeviceId) -> bool) -> Result<usize, StoreError> {
        let rows = self.store.device_states(None, &mine)?;
        let n = rows.len();
        // A no-data alert fires on a tick, with no input to anchor its notification to:
        // if the process died between committing it and producing the notification, it
        // would be lost. So the first tick after a restart emits the open ones again
        // (same ids; the notifier delivers each id once).
        self.replay_open_no_data = true;
        for (device, _, blob) in rows {
            if let Some(p) = decode(device, &blob) {
                self.devices.insert(device, p);
            }
        }
        Ok(n)
    }

    /// Drops cached configs if an admin change happened since the last call.
    pub fn refresh(&mut self) {
        let now = self.configs.admin_version().ok();
        if now != self.version {
            self.version = now;
            self.rules.clear();
        }
    }

    fn account_rules(&mut self, account: &str) -> Result<Arc<AccountRules>, StoreError> {
        if let Some(r) = self.rules.get(account) {
            return Ok(r.clone());
        }
        let mut rules = AccountRules::default();
        for c in self.configs.configs(Some(account))? {
            let c = Arc::new(c);
            rules.by_id.insert(c.id, c.clone());
            match c.config.kind {
                Kind::NoData => rules.no_data.push(c),
                Kind::Threshold => {
                    {
                        match c.config.compiled(c.id) {
                            Ok(Some((compiled, timing))) => {
                                let mut slot_keep = Vec::with_capacity(compiled.slots.len());
                                for slot in &compiled.slots {
                                    let metric = &slot.series.metric;
                                    match rules.keep.iter().position(|(m, _)| m == metric) {
                                        Some(i) => {
                                            let keep = &mut rules.keep[i].1;
                                            *keep = (*keep).max(slot.window_s);
                                            slot_keep.push(i);
                                        }
                                        None => {
                                            slot_keep.push(rules.keep.len());
                                            rules.keep.push((metric.clone(), slot.window_s));
                                        }
                                    }
                                }
                                rules.absent |= compiled.uses_absent;
                                rules.expr_index.add(&c.config.subject, rules.exprs.len());
                                let json_form = c.config.expr.is_none();
                                rules.exprs.push((
                                    ExprRule {
                                        text: (!json_form).then(|| compiled.rule.to_string()),
                                        comparison: c.config.comparison.filter(|_| json_form),
                                        threshold: c.config.value.filter(|_| json_form),
                                        wait_s: if json_form {
                                            c.config.wait.seconds
                                        } else {
                                            timing.for_s as u64
                                        },
                                        compiled,
                                        timing,
                                        slot_keep,
                                    },
                                    c,
                                ));
                            }
                            // Validated when stored; one that no longer parses (a newer
                            // version wrote it) is skipped, said once per load.
                            Ok(None) => {}
                            Err(e) => {
                                tracing::warn!(config = c.id.0, error = %e, "alert config skipped")
                            }
                        }
                    }
                }
            }
        }
        let rules = Arc::new(rules);
        self.rules.insert(account.to_string(), rules.clone());
        Ok(rules)
    }

    fn device_entry(&mut self, device: DeviceId) -> Result<&mut Persisted, StoreError> {
        if !self.devices.contains_key(&device) {
            let p = match self.store.device_state(device)? {
                Some(blob) => decode(device, &blob).unwrap_or_default(),
                None => Persisted::default(),
            };
            self.devices.insert(device, p);
        }
        Ok(self.devices.get_mut(&device).expect("inserted above"))
    }

    /// Evaluates one payload; returns the transitions to notify. The state moves in
    /// memory now and is written by the next [`Engine::commit`].
    pub fn observe(&mut self, obs: &Observation) -> Result<Vec<AlertEvent>, StoreError> {
        let rules = self.account_rules(&obs.account)?;
        if let Some(p) = obs.partition {
            self.partition_of.insert(obs.device, p);
        }
        let entry = self.device_entry(obs.device)?;
        entry.account.clone_from(&obs.account);
        entry.agent_key.clone_from(&obs.agent_key);
        entry.hostname.clone_from(&obs.hostname);
        let mut events = Vec::new();
        let mut changes = Vec::new();

        // Any payload clears the device's no-data alerts (server time).
        for (id, fired_at) in entry.state.seen(obs.received_at) {
            changes.push(AlertChange::Close {
                config_id: id,
                device: obs.device,
                series: String::new(),
                at: obs.received_at,
                value: None,
            });
            if let Some(c) = rules.by_id.get(&id).filter(|c| c.config.fix) {
                events.push(no_data_event(
                    c,
                    entry,
                    obs.device,
                    EventKind::Clear,
                    fired_at,
                    obs.received_at,
                ));
            }
        }

        let t = obs.time;
        tracing::debug!(device = obs.device.0, t, last = ?entry.state.last_time, rules = rules.exprs.len(), "observe");
        if entry.state.last_time.is_some_and(|last| t <= last) {
            // A duplicate or late arrival: nothing moves. If it is a replay of a payload
            // that caused transitions, emit the same events again (same ids).
            // The no-data clears this late payload caused (if any) are remembered under
            // its time too, so a replay of it emits them again.
            let cleared = events.clone();
            if let Some((_, again)) = entry.recent.iter().find(|(at, _)| *at == ms(t)) {
                events.extend(again.iter().filter(|e| !cleared.contains(e)).cloned());
            }
            if !cleared.is_empty() {
                match entry.recent.iter_mut().find(|(at, _)| *at == ms(t)) {
                    Some((_, kept)) => kept.extend(cleared),
                    None => {
                        entry.recent.push((ms(t), cleared));
                        if entry.recent.len() > RECENT {
                            entry.recent.remove(0);
                        }
                    }
                }
            }
            if !changes.is_empty() {
                self.dirty.insert(obs.device);
                self.changes.extend(changes);
            }
            return Ok(events);
        }

        entry.state.last_time = Some(t);
        let mut new_events = Vec::new();
        // Every threshold rule, in the rule language or the JSON form (compiled to the
        // same representation): the series they read are tracked first, so that windows
        // hold this payload's points.
        if !rules.exprs.is_empty() {
            let by_metric = expr::index(&obs.payload.points, &rules.keep);
            expr::track(&mut entry.state, &by_metric, &rules.keep, rules.absent, t);
            let scratch = &mut Vec::with_capacity(16);
            for (rule, c) in rules.exprs_for(obs.device, &obs.agent_key) {
                expr::evaluate(
                    rule,
                    c,
                    entry,
                    obs.device,
                    Some(&by_metric),
                    t,
                    scratch,
                    &mut new_events,
                    &mut changes,
                );
            }
        }
        events.extend(new_events);
        if !events.is_empty() {
            entry.recent.push((ms(t), events.clone()));
            if entry.recent.len() > RECENT {
                entry.recent.remove(0);
            }
        }
        self.dirty.insert(obs.device);
        self.changes.extend(changes);
        Ok(events)
    }

    /// Checks no-data rules at server time `now` for every device this engine holds.
    pub fn tick(&mut self, now: f64) -> Result<Vec<AlertEvent>, StoreError> {
        let accounts: HashSet<String> = self
            .devices
            .values()
            .filter(|p| !p.account.is_empty())
            .map(|p| p.account.clone())
            .collect();
        let mut rules = HashMap::new();
        for account in accounts {
            let r = self.account_rules(&account)?;
            if !r.no_data.is_empty() || r.absent {
                rules.insert(account, r);
            }
        }
        let mut events = Vec::new();
        let replay = std::mem::take(&mut self.replay_open_no_data);
        for (&device, entry) in self.devices.iter_mut() {
            let Some(r) = rules.get(&entry.account) else {
                continue;
            };
            if replay {
                for (&id, &fired_at) in &entry.state.no_data {
                    if let Some(c) = r.by_id.get(&id) {
                        events.push(no_data_event(
                            c,
                            entry,
                            device,
                            EventKind::Fire,
                            fired_at,
                            fired_at,
                        ));
                    }
                }
            }
            // Seen no earlier than its partition changed hands here: what it sent while
            // the partition had no owner is still being read (see `own`), even for a
            // device whose state this engine loads only when that reaches it.
            if let Some((_, since)) = self
                .partition_of
                .get(&device)
                .and_then(|p| self.owned.get(p))
            {
                if let Some(seen) = &mut entry.state.last_seen {
                    *seen = seen.max(*since);
                }
            }
            // After a load, the open alerts of rules with `absent` are emitted again (same
            // ids), as no-data ones are: one a tick raised has no payload to replay it.
            if replay {
                for (rule, c) in r
                    .exprs_for(device, &entry.agent_key)
                    .filter(|(e, _)| e.compiled.uses_absent)
                {
                    events.extend(expr::open_events(rule, c, entry, device));
                }
            }
            // `absent` in rules of the rule language: the device's event clock moved on
            // with server time since its last payload.
            if let (Some(last_t), Some(seen)) = (entry.state.last_time, entry.state.last_seen) {
                let t = last_t + (now - seen).max(0.0);
                let mut scratch = Vec::new();
                let mut changes = Vec::new();
                let before = events.len();
                for (rule, c) in r
                    .exprs_for(device, &entry.agent_key)
                    .filter(|(e, _)| e.compiled.uses_absent)
                {
                    expr::evaluate(
                        rule,
                        c,
                        entry,
                        device,
                        None,
                        t,
                        &mut scratch,
                        &mut events,
                        &mut changes,
                    );
                }
                if events.len() > before || !changes.is_empty() {
                    self.dirty.insert(device);
                }
                self.changes.extend(changes);
            }
            let candidates: Vec<(ConfigId, f64)> = r
                .no_data
                .iter()
                .filter(|c| applies(&c.config.subject, device, &entry.agent_key))
                .map(|c| (c.id, c.config.wait.seconds as f64))
                .collect();
            let fired = entry.state.check_no_data(now, candidates);
            for id in fired {
                let c = &r.by_id[&id];
                self.changes.push(AlertChange::Open(TriggeredAlert {
                    id: 0,
                    config_id: id,
                    account: entry.account.clone(),
                    device,
                    hostname: entry.hostname.clone(),
                    metric: None,
                    series: BTreeMap::new(),
                    fired_at: now,
                    closed_at: None,
                    last_value: None,
                }));
                events.push(no_data_event(c, entry, device, EventKind::Fire, now, now));
                self.dirty.insert(device);
            }
        }
        Ok(events)
    }

    /// Writes every state and alert change since the last commit in one transaction. On
    /// failure the in-memory state of the affected devices is dropped (it is read back
    /// from the database next time), so memory never runs ahead of what is durable.
    pub fn commit(&mut self) -> Result<(), StoreError> {
        if self.dirty.is_empty() && self.changes.is_empty() {
            return Ok(());
        }
        let mut rows = Vec::with_capacity(self.dirty.len());
        let mut fences: Vec<Fence> = Vec::new();
        for &device in &self.dirty {
            if let Some(p) = self.devices.get(&device) {
                let blob = rmp_serde::to_vec_named(p).map_err(|e| StoreError::Invalid {
                    field: "alert_device_state.state",
                    message: e.to_string(),
                })?;
                let partition = self.partition_of.get(&device).copied();
                if let Some(partition) = partition {
                    let epoch = self.epoch(partition).unwrap_or(0);
                    let fence = Fence { partition, epoch };
                    if !fences.contains(&fence) {
                        fences.push(fence);
                    }
                }
                rows.push(StateRow {
                    device,
                    account: p.account.as_str(),
                    partition,
                    blob,
                });
            }
        }
        let result = self.store.commit(&fences, &rows, &self.changes);
        drop(rows);
        if result.is_err() {
            for device in &self.dirty {
                self.devices.remove(device);
            }
            // The open no-data alerts a tick of this batch may have re-emitted went nowhere.
            self.replay_open_no_data = true;
        }
        self.dirty.clear();
        self.changes.clear();
        if let Err(StoreError::Fenced { partition, .. }) = &result {
            tracing::warn!(
                partition,
                "another owner claimed the partition: its devices are forgotten here"
            );
            self.release(*partition);
        }
        result
    }
}

/// An alert instance whose condition holds but not yet for its wait (`for`).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PendingAlert {
    /// The config.
    pub config_id: ConfigId,
    /// The account.
    pub account: String,
    /// The device.
    pub device: DeviceId,
    /// Its host name.
    pub hostname: String,
    /// The series key (`k=v,...`).
    pub series: String,
    /// Event time the condition first held.
    pub since: f64,
}

/// The pending alerts in a device's persisted state blob (as
/// [`AlertStateStore::device_states`] returns it).
pub fn pending_alerts(device: DeviceId, blob: &[u8]) -> Vec<PendingAlert> {
    let Some(p) = decode(device, blob) else {
        return Vec::new();
    };
    let mut out: Vec<PendingAlert> = p
        .state
        .phases
        .iter()
        .filter_map(|((config_id, series), phase)| match phase {
            crate::rules::Phase::Pending { since } => Some(PendingAlert {
                config_id: *config_id,
                account: p.account.clone(),
                device,
                hostname: p.hostname.clone(),
                series: series.clone(),
                since: *since,
            }),
            _ => None,
        })
        .collect();
    out.sort_by(|a, b| a.since.total_cmp(&b.since));
    out
}

fn decode(device: DeviceId, blob: &[u8]) -> Option<Persisted> {
    match rmp_serde::from_slice(blob) {
        Ok(p) => Some(p),
        Err(e) => {
            tracing::error!(device = device.0, error = %e, "unreadable alert state; starting the device afresh");
            None
        }
    }
}

fn no_data_event(
    c: &StoredConfig,
    entry: &Persisted,
    device: DeviceId,
    kind: EventKind,
    fired_at: f64,
    at: f64,
) -> AlertEvent {
    AlertEvent {
        id: event_id(c.id, device, "", kind, at),
        kind,
        config_id: c.id,
        name: c.config.name.clone(),
        rule: Kind::NoData,
        account: entry.account.clone(),
        device,
        hostname: entry.hostname.clone(),
        metric: None,
        series: BTreeMap::new(),
        value: None,
        comparison: None,
        threshold: None,
        wait_s: c.config.wait.seconds,
        fired_at,
        at,
        recipients: c.config.recipients.clone(),
        expr: None,
        labels: c.config.labels.clone().unwrap_or_default(),
        flapping: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::accounts::Account;
    use crate::store::MemoryStore;

    const ACME: &str = "acme";

    fn configs() -> Arc<MemoryStore> {
        let s = MemoryStore::new();
        s.create_account(&Account {
            name: ACME.into(),
            device_quota: 10,
            active: true,
        })
        .unwrap();
        Arc::new(s)
    }

    fn add(store: &MemoryStore, patch: serde_json::Value) -> ConfigId {
        let c = crate::store::conformance::load_config(patch);
        store.create_config(&c).unwrap().id
    }

    fn obs(device: i64, t: f64, points: &[(&str, Option<&str>, f64)]) -> Observation {
        Observation {
            device: DeviceId(device),
            account: ACME.into(),
            agent_key: "k1".into(),
            hostname: format!("host-{device}"),
            time: t,
            received_at: t + 0.5,
            payload: Arc::new(Payload {
                agent_key: Some("k1".into()),
                hostname: None,
                uuid: None,
                collection_timestamp: Some(t),
                points: points
                    .iter()
                    .map(|(name, disk, value)| crate::payload::MetricPoint {
                        name: (*name).into(),
                        labels: disk
                            .map(|d| ("device_name", d.into()))
                            .into_iter()
                            .collect(),
                        value: *value,
                    })
                    .collect(),
                skipped: 0,
                plain_points: points.len() as u32,
            }),
            partition: None,
        }
    }

    fn kinds(events: &[AlertEvent]) -> Vec<EventKind> {
        events.iter().map(|e| e.kind).collect()
    }

    fn load(engine: &mut Engine, device: i64, t: f64, v: f64) -> Vec<AlertEvent> {
        let e = engine
            .observe(&obs(device, t, &[("system.load.1", None, v)]))
            .unwrap();
        engine.commit().unwrap();
        e
    }

    #[test]
    fn wait_fires_once_at_t0_plus_wait_and_clears_with_fix() {
        let cfg = configs();
        let id = add(&cfg, serde_json::json!({}));
        let store = Arc::new(MemoryStore::new());
        let mut e = Engine::new(cfg, store.clone());
        let t0 = 1_000_000.0;
        assert!(load(&mut e, 1, t0, 5.0).is_empty(), "pending only");
        assert!(load(&mut e, 1, t0 + 60.0, 6.0).is_empty());
        assert!(
            load(&mut e, 1, t0 + 119.0, 6.0).is_empty(),
            "not before t0+120"
        );
        let fired = load(&mut e, 1, t0 + 120.0, 7.0);
        assert_eq!(kinds(&fired), [EventKind::Fire]);
        assert_eq!(
            (fired[0].config_id, fired[0].fired_at, fired[0].value),
            (id, t0 + 120.0, Some(7.0))
        );
        assert!(load(&mut e, 1, t0 + 180.0, 8.0).is_empty(), "no repeat");
        let open = store.triggered(false, None).unwrap();
        assert_eq!(open.len(), 1);
        assert_eq!(open[0].last_value, Some(8.0), "last value kept current");

        // A duplicate of the firing payload re-emits the same event (same id); a late
        // payload moves nothing.
        let again = load(&mut e, 1, t0 + 120.0, 7.0);
        assert_eq!(again, fired);
        assert!(load(&mut e, 1, t0 + 30.0, 0.0).is_empty());
        assert_eq!(store.triggered(false, None).unwrap().len(), 1);

        let cleared = load(&mut e, 1, t0 + 240.0, 1.0);
        assert_eq!(kinds(&cleared), [EventKind::Clear]);
        assert!(store.triggered(false, None).unwrap().is_empty());
        assert_eq!(
            store.triggered(true, None).unwrap()[0].closed_at,
            Some(t0 + 240.0)
        );
    }

    #[test]
    fn a_hovering_value_is_marked_flapping_kept_quiet_then_recovers() {
        let cfg = configs();
        add(
            &cfg,
            serde_json::json!({"wait": {"seconds": 0, "enabled": false}, "labels": {"team": "web"}}),
        );
        let store = Arc::new(MemoryStore::new());
        let mut e = Engine::new(cfg, store.clone());
        let t0 = 1_000_000.0;
        // The load hovers around the threshold (4): above, below, above, ...
        let mut sent = Vec::new();
        let mut quiet = 0;
        let mut t = t0;
        for i in 0..30 {
            let v = if i % 2 == 0 { 5.0 } else { 3.0 };
            for ev in load(&mut e, 1, t, v) {
                if ev.flapping.is_some() && ev.kind != EventKind::Flapping {
                    quiet += 1;
                } else {
                    sent.push((i, ev));
                }
            }
            t += 60.0;
        }
        let kinds_sent: Vec<EventKind> = sent.iter().map(|(_, e)| e.kind).collect();
        let notice = sent
            .iter()
            .position(|(_, e)| e.kind == EventKind::Flapping)
            .expect("it is marked flapping");
        // Before the notice, every crossing notified; after it, nothing but quiet ones.
        assert!(notice >= 4, "{kinds_sent:?}");
        assert_eq!(
            sent.len(),
            notice + 1,
            "nothing sent after the notice: {kinds_sent:?}"
        );
        assert!(quiet >= 15, "{quiet} transitions kept quiet");
        let flapping = &sent[notice].1;
        assert!(flapping.flapping.unwrap() >= 50.0);
        assert_eq!(
            flapping.labels["team"], "web",
            "the config's labels ride along"
        );
        assert!(crate::events::summary(flapping).contains("is flapping"));
        // It settles above the threshold: once the state change falls below 25% it is
        // notified again, with the state it settled in (firing), and then normally.
        let mut back = Vec::new();
        for _ in 0..25 {
            back.extend(
                load(&mut e, 1, t, 5.0)
                    .into_iter()
                    .filter(|e| e.flapping.is_none()),
            );
            t += 60.0;
        }
        assert_eq!(kinds(&back), [EventKind::Fire], "{back:?}");
        assert_eq!(kinds(&load(&mut e, 1, t, 1.0)), [EventKind::Clear]);
    }

    #[test]
    fn a_false_evaluation_while_pending_cancels_silently_and_repeat_renotifies() {
        let cfg = configs();
        add(
            &cfg,
            serde_json::json!({"wait": {"seconds": 60, "enabled": true},
                               "repeat": {"seconds": 300, "enabled": true}}),
        );
        let mut e = Engine::new(cfg, Arc::new(MemoryStore::new()));
        assert!(load(&mut e, 1, 0.0, 5.0).is_empty());
        assert!(load(&mut e, 1, 30.0, 1.0).is_empty(), "cancelled");
        assert!(
            load(&mut e, 1, 70.0, 5.0).is_empty(),
            "pending again from 70"
        );
        assert_eq!(kinds(&load(&mut e, 1, 130.0, 5.0)), [EventKind::Fire]);
        assert!(load(&mut e, 1, 400.0, 5.0).is_empty());
        assert_eq!(kinds(&load(&mut e, 1, 430.0, 5.0)), [EventKind::Repeat]);
        assert!(load(&mut e, 1, 700.0, 5.0).is_empty());
        assert_eq!(kinds(&load(&mut e, 1, 730.0, 5.0)), [EventKind::Repeat]);
    }

    #[test]
    fn state_survives_a_restart_and_replays_notify_nothing_new() {
        // The store outlives the engines: it stands for the database a restarted process
        // reads back (the SQLite backend runs the same scenario on a file).
        let db = Arc::new(MemoryStore::new());
        let cfg = configs();
        add(&cfg, serde_json::json!({}));
        let mut a = Engine::new(cfg.clone(), db.clone());
        assert!(load(&mut a, 1, 100.0, 9.0).is_empty());
        drop(a); // the crash: only what was committed survives

        let mut b = Engine::new(cfg.clone(), db.clone());
        assert_eq!(b.load(|_| true).unwrap(), 1);
        assert!(
            load(&mut b, 1, 100.0, 9.0).is_empty(),
            "replayed: nothing moves"
        );
        let fired = load(&mut b, 1, 220.0, 9.0);
        assert_eq!(
            kinds(&fired),
            [EventKind::Fire],
            "the pending clock survived"
        );
        drop(b);

        let mut c = Engine::new(cfg, db.clone());
        assert_eq!(
            load(&mut c, 1, 220.0, 9.0),
            fired,
            "a replay of the firing payload re-emits the same notification ids"
        );
        assert!(
            load(&mut c, 1, 300.0, 9.0).is_empty(),
            "still open, no repeat"
        );
    }

    #[test]
    fn series_and_subject_select_points_and_each_series_has_its_own_alert() {
        let cfg = configs();
        add(
            &cfg,
            serde_json::json!({"metric": "disk.used", "comparison": "gt", "value": 90,
                               "wait": {"seconds": 0, "enabled": false},
                               "subject": {"type": "device", "id": 2}}),
        );
        add(
            &cfg,
            serde_json::json!({"metric": "disk.used", "comparison": "gt", "value": 50,
                               "series": {"device_name": "/dev/sdb"},
                               "wait": {"seconds": 0, "enabled": false}}),
        );
        let mut e = Engine::new(cfg, Arc::new(MemoryStore::new()));
        let points = [
            ("disk.used", Some("/dev/sda"), 95.0),
            ("disk.used", Some("/dev/sdb"), 96.0),
        ];
        let on1 = e.observe(&obs(1, 10.0, &points)).unwrap();
        assert_eq!(on1.len(), 1, "device 1: only the /dev/sdb rule: {on1:?}");
        assert_eq!(on1[0].series["device_name"], "/dev/sdb");
        let on2 = e.observe(&obs(2, 10.0, &points)).unwrap();
        assert_eq!(on2.len(), 3, "device 2: both disks of rule 1, and rule 2");
        let ids: HashSet<_> = on2.iter().map(|e| e.id.clone()).collect();
        assert_eq!(ids.len(), 3, "distinct ids per (rule, series)");
    }

    #[test]
    fn a_late_payload_that_clears_no_data_re_emits_the_clear_when_replayed() {
        let cfg = configs();
        add(
            &cfg,
            serde_json::json!({"kind": "no_data", "metric": null, "comparison": null,
                               "value": null, "wait": {"seconds": 300, "enabled": true}}),
        );
        let mut e = Engine::new(cfg, Arc::new(MemoryStore::new()));
        load(&mut e, 4, 1000.0, 0.0);
        assert_eq!(kinds(&e.tick(1300.5).unwrap()), [EventKind::Fire]);
        e.commit().unwrap();
        // A payload stamped before the last one (late), received now: it clears the
        // no-data alert (server time) without moving the device's event time.
        let late = obs(4, 900.0, &[("system.load.1", None, 0.0)]);
        let late = Observation {
            received_at: 1400.0,
            ..late
        };
        let cleared = e.observe(&late).unwrap();
        e.commit().unwrap();
        assert_eq!(kinds(&cleared), [EventKind::Clear]);
        // Replayed after a crash (its offset not committed): the same clear, same id.
        let again = e.observe(&late).unwrap();
        assert_eq!(again, cleared, "the replay re-emits the clear");
    }

    #[test]
    fn no_data_fires_on_ticks_after_wait_and_clears_on_the_next_payload() {
        let cfg = configs();
        add(
            &cfg,
            serde_json::json!({"kind": "no_data", "metric": null, "comparison": null,
                               "value": null, "wait": {"seconds": 300, "enabled": true}}),
        );
        let mut e = Engine::new(cfg, Arc::new(MemoryStore::new()));
        load(&mut e, 4, 1000.0, 0.0); // received at 1000.5
        assert!(e.tick(1200.0).unwrap().is_empty());
        let fired = e.tick(1300.5).unwrap();
        assert_eq!(kinds(&fired), [EventKind::Fire]);
        assert_eq!(fired[0].rule, Kind::NoData);
        assert!(e.tick(1400.0).unwrap().is_empty(), "fires once");
        e.commit().unwrap();
        let cleared = load(&mut e, 4, 1500.0, 0.0);
        assert_eq!(kinds(&cleared), [EventKind::Clear]);
    }

    #[test]
    fn after_a_restart_the_first_tick_re_emits_open_no_data_alerts_with_their_ids() {
        // The store outlives the engines: it stands for the database a restarted process
        // reads back (the SQLite backend runs the same scenario on a file).
        let db = Arc::new(MemoryStore::new());
        let cfg = configs();
        add(
            &cfg,
            serde_json::json!({"kind": "no_data", "metric": null, "comparison": null,
                               "value": null, "wait": {"seconds": 60, "enabled": true}}),
        );
        let mut a = Engine::new(cfg.clone(), db.clone());
        load(&mut a, 4, 1000.0, 0.0);
        let fired = a.tick(1100.0).unwrap();
        a.commit().unwrap();
        assert_eq!(kinds(&fired), [EventKind::Fire]);
        drop(a); // died before the notification was produced, perhaps

        let mut b = Engine::new(cfg, db.clone());
        b.load(|_| true).unwrap();
        assert_eq!(
            b.tick(1101.0).unwrap(),
            fired,
            "the same event, the same id"
        );
        assert!(b.tick(1102.0).unwrap().is_empty(), "once");
    }

    #[test]
    fn a_partition_taken_over_gives_its_devices_a_wait_before_no_data() {
        let db = Arc::new(MemoryStore::new());
        let cfg = configs();
        add(
            &cfg,
            serde_json::json!({"kind": "no_data", "metric": null, "comparison": null,
                               "value": null, "wait": {"seconds": 60, "enabled": true}}),
        );
        let mut a = Engine::new(cfg.clone(), db.clone());
        a.own(0, db.claim_partition(0).unwrap(), 1000.0, |_| true)
            .unwrap();
        let seen = Observation {
            partition: Some(0),
            ..obs(4, 1000.0, &[("system.load.1", None, 0.0)])
        };
        a.observe(&seen).unwrap(); // received at 1000.5
        a.commit().unwrap();
        drop(a); // its process dies; the partition has no owner for 200 s

        // The new owner has not read what the device sent meanwhile: no false alarm.
        let mut b = Engine::new(cfg, db.clone());
        b.own(0, db.claim_partition(0).unwrap(), 1200.0, |_| true)
            .unwrap();
        assert!(
            b.tick(1201.0).unwrap().is_empty(),
            "not silent: not read yet"
        );
        // A device the old owner never committed: its first payload, received long before
        // the takeover, is read only now; a wait after the takeover, it is no more silent
        // than the others.
        let late = Observation {
            partition: Some(0),
            received_at: 1100.0,
            ..obs(5, 1100.0, &[("system.load.1", None, 0.0)])
        };
        b.observe(&late).unwrap();
        b.commit().unwrap();
        assert!(
            b.tick(1202.0).unwrap().is_empty(),
            "received at 1100, read at 1202"
        );
        assert!(b.tick(1259.0).unwrap().is_empty());
        // Still nothing a wait after the takeover: both really are silent.
        assert_eq!(
            kinds(&b.tick(1260.0).unwrap()),
            [EventKind::Fire, EventKind::Fire]
        );
    }

    /// An `expr` config (the rule language), fix on, repeat off.
    fn add_expr(store: &MemoryStore, expr: &str) -> ConfigId {
        add(
            store,
            serde_json::json!({"expr": expr, "metric": null, "comparison": null, "value": null,
                               "wait": {"seconds": 0, "enabled": false}}),
        )
    }

    /// A payload: its time and (metric, disk, value) points.
    type TimedPoints = (f64, Vec<(&'static str, Option<&'static str>, f64)>);

    /// Feeds `device` one payload per (t, points) and returns (t, kind, series, value) of
    /// every event.
    fn feed(
        engine: &mut Engine,
        device: i64,
        payloads: &[TimedPoints],
    ) -> Vec<(f64, EventKind, String, Option<f64>)> {
        let mut out = Vec::new();
        for (t, points) in payloads {
            for e in engine.observe(&obs(device, *t, points)).unwrap() {
                out.push((*t, e.kind, crate::store::series_key(&e.series), e.value));
            }
            engine.commit().unwrap();
        }
        out
    }

    fn loads(values: &[f64]) -> Vec<TimedPoints> {
        values
            .iter()
            .enumerate()
            .map(|(i, v)| (1000.0 + 60.0 * i as f64, vec![("system.load.1", None, *v)]))
            .collect()
    }

    #[test]
    fn a_window_average_with_hysteresis_fires_and_clears_once() {
        let store = configs();
        add_expr(
            &store,
            "avg(system.load.1, 3m) >= 4 resolve when avg(system.load.1, 3m) < 3",
        );
        let mut engine = Engine::new(store.clone(), store);
        // Averages over the last three payloads: 2, 3, 4 (fires), 4.33, 3.67, 3.33, 3.33,
        // 2.67 (clears).
        let got = feed(
            &mut engine,
            1,
            &loads(&[2.0, 4.0, 6.0, 3.0, 2.0, 5.0, 3.0, 0.0]),
        );
        assert_eq!(
            got.iter().map(|(t, k, _, _)| (*t, *k)).collect::<Vec<_>>(),
            [(1120.0, EventKind::Fire), (1420.0, EventKind::Clear)]
        );
        assert_eq!(got[0].3, Some(4.0), "the value is the window's average");
    }

    #[test]
    fn a_metric_read_without_labels_has_an_instance_per_series() {
        let store = configs();
        add_expr(&store, "system.disk.in_use >= 0.9");
        let mut engine = Engine::new(store.clone(), store);
        let disks = |a: f64, b: f64| {
            vec![
                ("system.disk.in_use", Some("/dev/sda1"), a),
                ("system.disk.in_use", Some("/dev/sdb1"), b),
            ]
        };
        let got = feed(
            &mut engine,
            1,
            &[
                (0.0, disks(0.5, 0.95)),
                (60.0, disks(0.95, 0.5)),
                (120.0, disks(0.5, 0.5)),
            ],
        );
        let seen: Vec<(f64, EventKind, &str)> = got
            .iter()
            .map(|(t, k, s, _)| (*t, *k, s.as_str()))
            .collect();
        assert_eq!(
            seen,
            [
                (0.0, EventKind::Fire, "device_name=/dev/sdb1"),
                (60.0, EventKind::Fire, "device_name=/dev/sda1"),
                (60.0, EventKind::Clear, "device_name=/dev/sdb1"),
                (120.0, EventKind::Clear, "device_name=/dev/sda1"),
            ]
        );
    }

    #[test]
    fn a_ratio_of_two_metrics_held_for_its_duration() {
        let store = configs();
        add_expr(&store, "memPhysUsed / memPhysTotal > 0.9 for 2m");
        let mut engine = Engine::new(store.clone(), store);
        let mem = |used: f64| vec![("memPhysUsed", None, used), ("memPhysTotal", None, 100.0)];
        let got = feed(
            &mut engine,
            1,
            &[
                (0.0, mem(95.0)),
                (60.0, mem(96.0)),
                (120.0, mem(97.0)),
                (180.0, vec![("memPhysUsed", None, 10.0)]), // no total: no value
                (240.0, mem(10.0)),
            ],
        );
        assert_eq!(
            got.iter().map(|(t, k, _, _)| (*t, *k)).collect::<Vec<_>>(),
            [(120.0, EventKind::Fire), (240.0, EventKind::Clear)]
        );
        assert_eq!(got[0].3, Some(97.0 / 100.0 * 1.0), "the ratio is the value");
    }

    #[test]
    fn absent_fires_on_payloads_without_the_series_and_on_ticks() {
        let store = configs();
        add_expr(&store, "absent(system.load.1, 10m)");
        let mut engine = Engine::new(store.clone(), store);
        let other = vec![("system.cpu.idle", None, 50.0)];
        let got = feed(
            &mut engine,
            1,
            &[
                (0.0, vec![("system.load.1", None, 1.0)]),
                (300.0, other.clone()),
                (600.0, other.clone()), // 10 minutes without it
                (660.0, vec![("system.load.1", None, 1.0)]),
            ],
        );
        assert_eq!(
            got.iter().map(|(t, k, _, _)| (*t, *k)).collect::<Vec<_>>(),
            [(600.0, EventKind::Fire), (660.0, EventKind::Clear)]
        );
        // A device that stops sending: ticks move its clock on server time.
        let e = engine.tick(660.5 + 500.0).unwrap();
        assert!(e.is_empty(), "500 s of silence is not 10 minutes: {e:?}");
        let e = engine.tick(660.5 + 600.0).unwrap();
        assert_eq!(kinds(&e), [EventKind::Fire]);
        assert_eq!(e[0].expr.as_deref(), Some("absent(system.load.1, 10m)"));
        engine.commit().unwrap();
    }

    #[test]
    fn windows_survive_a_restart() {
        let store = configs();
        add_expr(&store, "avg(system.load.1, 5m) >= 4");
        let mut engine = Engine::new(store.clone(), store.clone());
        assert!(
            !feed(&mut engine, 1, &loads(&[6.0, 6.0])).is_empty(),
            "fired"
        );
        drop(engine);
        // A new engine reads the window back: 6, 6 and 0 average 4.
        let mut engine = Engine::new(store.clone(), store);
        let got = feed(
            &mut engine,
            1,
            &[(1120.0, vec![("system.load.1", None, 0.0)])],
        );
        assert!(got.is_empty(), "still firing, not fired again: {got:?}");
        let got = feed(
            &mut engine,
            1,
            &[(1180.0, vec![("system.load.1", None, 0.0)])],
        );
        assert_eq!(
            got.iter().map(|(_, k, _, _)| *k).collect::<Vec<_>>(),
            [EventKind::Clear]
        );
    }

    #[test]
    fn after_a_restart_the_first_tick_re_emits_open_absent_alerts_with_their_ids() {
        let db = Arc::new(MemoryStore::new());
        let cfg = configs();
        add_expr(&cfg, "absent(system.load.1, 10m)");
        let mut a = Engine::new(cfg.clone(), db.clone());
        feed(&mut a, 4, &[(1000.0, vec![("system.load.1", None, 1.0)])]);
        let fired = a.tick(1000.5 + 600.0).unwrap();
        a.commit().unwrap();
        assert_eq!(kinds(&fired), [EventKind::Fire]);
        drop(a); // died before the notification was produced, perhaps

        let mut b = Engine::new(cfg, db);
        b.load(|_| true).unwrap();
        let again = b.tick(1000.5 + 601.0).unwrap();
        assert_eq!(
            again.iter().map(|e| &e.id).collect::<Vec<_>>(),
            fired.iter().map(|e| &e.id).collect::<Vec<_>>(),
            "the same event id"
        );
        assert!(b.tick(1000.5 + 602.0).unwrap().is_empty(), "once");
    }
}

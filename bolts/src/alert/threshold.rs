//! The `threshold` bolt: evaluates each device's metric points against its account's alert
//! configs ([`super::rules`] semantics) and emits one [`AlertEvent`] per transition.
//!
//! - Input: `split`'s tuples (`device`, `account`, `agent_key`, `hostname`, `time`,
//!   `received_at`, `points`), fields-grouped by `device` so one task owns each device.
//! - Configs are loaded per account from the accounts database and dropped from the cache
//!   when the admin version changes (any config, account, key or device change).
//! - **Durability**: an input tuple is acked only after the device's new state and its
//!   alert rows are committed (one SQLite transaction per batch, on the bolt's database
//!   thread), so the Kafka offset of a payload is committed only after its effects are
//!   durable. After a crash the state is read back: pending clocks, open alerts and last
//!   notification times continue, and a replayed payload (event time not after the last
//!   evaluated one) moves nothing. If a replayed payload had caused transitions, the same
//!   events (same ids) are emitted again, so a notification lost between the commit and
//!   the crash is still produced; the notifier delivers each id once.
//! - **No-data** rules are checked on tick tuples (`tick_interval_ms`) against server
//!   time: a device that has sent nothing for `wait.seconds` fires; its next payload clears
//!   it. At start each task reloads the state of the devices the fields grouping sends it,
//!   and its first tick emits the open no-data alerts again (same ids): a tick has no
//!   input to anchor to, so this is what keeps a crash from losing such a notification.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};
use serde::{Deserialize, Serialize};
use squall_topology::{
    values, Bolt, BoltError, ComponentError, Fields, OutputCollector, OutputDeclarer,
    TopologyContext, Tuple, Value,
};

use super::accounts::{AccountStore, SqliteStore, StoreError};
use super::alerts::{series_key, AlertChange, AlertStore, TriggeredAlert};
use super::configs::{Kind, Recipient, StoredConfig, Subject};
use super::now_secs;
use super::payload::{MetricPoint, Payload};
use super::rules::{Comparison, DeviceState, Phase, Rule, Transition};

/// What happened to an alert.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// It fired.
    Fire,
    /// Still firing; `repeat` elapsed.
    Repeat,
    /// It cleared (only emitted when the config has `fix`).
    Clear,
}

/// One alert transition, with everything a notification needs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AlertEvent {
    /// Stable id: the same transition always has the same id.
    pub id: String,
    /// Fire, repeat or clear.
    pub kind: EventKind,
    /// The alert config.
    pub config_id: i64,
    /// The config's name.
    pub name: String,
    /// threshold | no_data.
    pub rule: Kind,
    /// The account.
    pub account: String,
    /// The device id.
    pub device: i64,
    /// The device's host name.
    pub hostname: String,
    /// The metric (threshold rules).
    pub metric: Option<String>,
    /// Series labels of the point.
    pub series: BTreeMap<String, String>,
    /// The value evaluated (threshold rules).
    pub value: Option<f64>,
    /// The comparison (threshold rules).
    pub comparison: Option<Comparison>,
    /// The threshold (threshold rules).
    pub threshold: Option<f64>,
    /// The wait of the rule, seconds.
    pub wait_s: u64,
    /// When the alert fired (event time, epoch seconds; server time for no-data).
    pub fired_at: f64,
    /// When this transition happened.
    pub at: f64,
    /// Where notifications go.
    pub recipients: Vec<Recipient>,
}

impl AlertEvent {
    /// `firing` (fire, repeat) or `resolved` (clear).
    pub fn status(&self) -> &'static str {
        match self.kind {
            EventKind::Clear => "resolved",
            _ => "firing",
        }
    }
}

fn ms(t: f64) -> i64 {
    (t * 1000.0).round() as i64
}

fn event_id(config: i64, device: i64, series: &str, kind: EventKind, at: f64) -> String {
    use std::hash::Hasher;
    let mut h = twox_hash::XxHash64::with_seed(0);
    h.write(series.as_bytes());
    let kind = match kind {
        EventKind::Fire => "fire",
        EventKind::Repeat => "repeat",
        EventKind::Clear => "clear",
    };
    format!(
        "a{config}-d{device}-{kind}-{}-{:08x}",
        ms(at),
        h.finish() as u32
    )
}

/// One enriched payload, as the engine evaluates it.
#[derive(Clone, Debug)]
pub struct Observation {
    /// Device id.
    pub device: i64,
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
}

/// The configs of one account, ready to evaluate, indexed by subject so a payload only
/// meets its own (an account may hold a set of configs per device: tens of thousands).
#[derive(Default)]
struct AccountRules {
    threshold: Vec<(Rule, Arc<StoredConfig>)>,
    account_wide: Vec<usize>,
    by_device: HashMap<i64, Vec<usize>>,
    by_key: HashMap<String, Vec<usize>>,
    no_data: Vec<Arc<StoredConfig>>,
    by_id: HashMap<i64, Arc<StoredConfig>>,
}

impl AccountRules {
    /// The threshold rules applying to `device` posting with `agent_key`.
    fn threshold_for<'a>(
        &'a self,
        device: i64,
        agent_key: &str,
    ) -> impl Iterator<Item = &'a (Rule, Arc<StoredConfig>)> + 'a {
        let none: &[usize] = &[];
        let by_device = self.by_device.get(&device).map_or(none, Vec::as_slice);
        let by_key = self.by_key.get(agent_key).map_or(none, Vec::as_slice);
        self.account_wide
            .iter()
            .chain(by_device)
            .chain(by_key)
            .map(|&i| &self.threshold[i])
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

const RECENT: usize = 8;

fn applies(subject: &Subject, device: i64, agent_key: &str) -> bool {
    match subject {
        Subject::Account => true,
        Subject::Device { id } => *id == device,
        Subject::AgentKey { id } => id == agent_key,
    }
}

fn labels_match(filter: Option<&BTreeMap<String, String>>, p: &MetricPoint) -> bool {
    filter.is_none_or(|f| {
        f.iter()
            .all(|(k, v)| p.labels.iter().any(|(pk, pv)| *pk == k && pv == v))
    })
}

fn point_labels(p: &MetricPoint) -> BTreeMap<String, String> {
    p.labels
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect()
}

/// Alert evaluation with durable state: the synchronous core of the `threshold` bolt (it
/// blocks on SQLite, so the bolt runs it on a dedicated thread).
pub struct Engine {
    configs: Arc<dyn AccountStore>,
    store: Arc<AlertStore>,
    rules: HashMap<String, Arc<AccountRules>>,
    devices: HashMap<i64, Persisted>,
    dirty: HashSet<i64>,
    changes: Vec<AlertChange>,
    version: Option<i64>,
    /// Set by [`Engine::load`]: the first tick re-emits the open no-data alerts.
    replay_open_no_data: bool,
}

impl Engine {
    /// An engine reading configs from `configs` and keeping state in `store`.
    pub fn new(configs: Arc<dyn AccountStore>, store: Arc<AlertStore>) -> Self {
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
        }
    }

    /// Loads the persisted state of every device for which `mine(device)` holds (no-data
    /// rules need to know devices before they post again). Returns how many.
    pub fn load(&mut self, mine: impl Fn(i64) -> bool) -> Result<usize, StoreError> {
        let rows = self.store.device_states(mine)?;
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
                    if let Some(rule) = c.config.rule(c.id) {
                        let i = rules.threshold.len();
                        match &c.config.subject {
                            Subject::Account => rules.account_wide.push(i),
                            Subject::Device { id } => {
                                rules.by_device.entry(*id).or_default().push(i)
                            }
                            Subject::AgentKey { id } => {
                                rules.by_key.entry(id.clone()).or_default().push(i)
                            }
                        }
                        rules.threshold.push((rule, c));
                    }
                }
            }
        }
        let rules = Arc::new(rules);
        self.rules.insert(account.to_string(), rules.clone());
        Ok(rules)
    }

    fn device_entry(&mut self, device: i64) -> Result<&mut Persisted, StoreError> {
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
        if entry.state.last_time.is_some_and(|last| t <= last) {
            // A duplicate or late arrival: nothing moves. If it is a replay of a payload
            // that caused transitions, emit the same events again (same ids).
            if let Some((_, again)) = entry.recent.iter().find(|(at, _)| *at == ms(t)) {
                events.extend(again.iter().cloned());
            }
            if !changes.is_empty() {
                self.dirty.insert(obs.device);
                self.changes.extend(changes);
            }
            return Ok(events);
        }

        let mut points: Vec<(&Rule, String, f64, &MetricPoint, &StoredConfig)> = Vec::new();
        for (rule, c) in rules.threshold_for(obs.device, &obs.agent_key) {
            let Some(metric) = c.config.metric.as_deref() else {
                continue;
            };
            for p in obs.payload.points.iter().filter(|p| p.name == metric) {
                if labels_match(c.config.series.as_ref(), p) {
                    points.push((rule, series_key(&point_labels(p)), p.value, p, c));
                }
            }
        }
        let transitions = entry.state.evaluate(
            t,
            points
                .iter()
                .map(|(rule, series, value, _, _)| (*rule, series.as_str(), *value)),
        );
        let mut new_events = Vec::new();
        for (rule, series, value, point, c) in &points {
            let tr = transitions
                .iter()
                .find(|(id, s, _)| *id == rule.id && s == series)
                .map(|(_, _, tr)| *tr);
            let base = |kind: EventKind, fired_at: f64| AlertEvent {
                id: event_id(rule.id, obs.device, series, kind, t),
                kind,
                config_id: rule.id,
                name: c.config.name.clone(),
                rule: Kind::Threshold,
                account: obs.account.clone(),
                device: obs.device,
                hostname: obs.hostname.clone(),
                metric: Some(point.name.clone()),
                series: point_labels(point),
                value: Some(*value),
                comparison: Some(rule.comparison),
                threshold: Some(rule.value),
                wait_s: c.config.wait.seconds,
                fired_at,
                at: t,
                recipients: c.config.recipients.clone(),
            };
            match tr {
                Some(Transition::Fire { fired_at, value }) => {
                    changes.push(AlertChange::Open(TriggeredAlert {
                        id: 0,
                        config_id: rule.id,
                        account: obs.account.clone(),
                        device: obs.device,
                        hostname: obs.hostname.clone(),
                        metric: Some(point.name.clone()),
                        series: point_labels(point),
                        fired_at,
                        closed_at: None,
                        last_value: Some(value),
                    }));
                    new_events.push(base(EventKind::Fire, fired_at));
                }
                Some(Transition::Repeat { fired_at, value }) => {
                    changes.push(AlertChange::Value {
                        config_id: rule.id,
                        device: obs.device,
                        series: series.clone(),
                        value,
                    });
                    new_events.push(base(EventKind::Repeat, fired_at));
                }
                Some(Transition::Clear {
                    fired_at,
                    cleared_at,
                    value,
                    notify,
                }) => {
                    changes.push(AlertChange::Close {
                        config_id: rule.id,
                        device: obs.device,
                        series: series.clone(),
                        at: cleared_at,
                        value: Some(value),
                    });
                    if notify {
                        new_events.push(base(EventKind::Clear, fired_at));
                    }
                }
                None => {
                    // Still firing: keep the alert's last value current.
                    if let Some(Phase::Firing { .. }) =
                        entry.state.phases.get(&(rule.id, series.clone()))
                    {
                        changes.push(AlertChange::Value {
                            config_id: rule.id,
                            device: obs.device,
                            series: series.clone(),
                            value: *value,
                        });
                    }
                }
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
            if !r.no_data.is_empty() {
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
            let candidates: Vec<(i64, f64)> = r
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
        let mut blobs = Vec::with_capacity(self.dirty.len());
        for &device in &self.dirty {
            if let Some(p) = self.devices.get(&device) {
                let blob = rmp_serde::to_vec_named(p).map_err(|e| StoreError::Invalid {
                    field: "alert_device_state.state",
                    message: e.to_string(),
                })?;
                blobs.push((device, p.account.as_str(), blob));
            }
        }
        let result = self.store.commit(&blobs, &self.changes);
        drop(blobs);
        if result.is_err() {
            for device in &self.dirty {
                self.devices.remove(device);
            }
        }
        self.dirty.clear();
        self.changes.clear();
        result
    }
}

fn decode(device: i64, blob: &[u8]) -> Option<Persisted> {
    match rmp_serde::from_slice(blob) {
        Ok(p) => Some(p),
        Err(e) => {
            tracing::error!(device, error = %e, "unreadable alert state; starting the device afresh");
            None
        }
    }
}

fn no_data_event(
    c: &StoredConfig,
    entry: &Persisted,
    device: i64,
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
    }
}

/// Options of `threshold`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ThresholdConfig {
    /// The accounts database (configs, and the alert state tables), `sqlite://PATH`.
    pub db_url: String,
}

enum Job {
    Observe(u64, Observation),
    Tick(f64),
}

type Answer = (Option<u64>, Result<Vec<AlertEvent>, String>);

/// The `threshold` bolt (see the module docs). Output fields: `account`, `device`,
/// `event` (the [`AlertEvent`] as JSON in a `Value::Any`), `received_at` (when the intake
/// received the payload that caused it, epoch seconds; null for no-data events).
pub struct Threshold {
    config: ThresholdConfig,
    jobs: Option<Sender<Job>>,
    answers: Option<Receiver<Answer>>,
    held: HashMap<u64, Tuple>,
    next: u64,
}

impl Threshold {
    /// A threshold bolt with `config` (the database opens in `prepare`).
    pub fn new(config: ThresholdConfig) -> Result<Self, String> {
        super::require_sqlite_url(&config.db_url)?;
        Ok(Threshold {
            config,
            jobs: None,
            answers: None,
            held: HashMap::new(),
            next: 0,
        })
    }
}

fn observation(t: &Tuple) -> Result<Observation, BoltError> {
    let text = |name: &str| {
        t.get_by_field(name)
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or_else(|| BoltError::msg(format!("threshold: input has no string `{name}`")))
    };
    let num = |name: &str| {
        t.get_by_field(name)
            .and_then(Value::as_f64)
            .ok_or_else(|| BoltError::msg(format!("threshold: input has no numeric `{name}`")))
    };
    let payload = match t.get_by_field("points") {
        Some(Value::Any(a)) => a
            .clone()
            .downcast::<Payload>()
            .map_err(|_| BoltError::msg("threshold: `points` does not hold a parsed payload"))?,
        _ => return Err(BoltError::msg("threshold: input has no parsed `points`")),
    };
    Ok(Observation {
        device: t
            .get_by_field("device")
            .and_then(Value::as_int)
            .ok_or_else(|| BoltError::msg("threshold: input has no integer `device`"))?,
        account: text("account")?,
        agent_key: text("agent_key")?,
        hostname: text("hostname")?,
        time: num("time")?,
        received_at: num("received_at")?,
        payload,
    })
}

impl Bolt for Threshold {
    fn declare_outputs(&self, d: &mut OutputDeclarer) {
        d.declare(Fields::new(["account", "device", "event", "received_at"]));
    }

    fn prepare(&mut self, ctx: &TopologyContext) -> Result<(), ComponentError> {
        let url = &self.config.db_url;
        let open_err = |e: StoreError| ComponentError::msg(format!("cannot open {url}: {e}"));
        let configs: Arc<dyn AccountStore> =
            Arc::new(SqliteStore::open_url(url).map_err(open_err)?);
        let store = Arc::new(AlertStore::open_url(url).map_err(open_err)?);
        let mut engine = Engine::new(configs, store);
        let (task, tasks) = (ctx.task_index(), ctx.parallelism());
        let loaded = engine
            .load(|device| squall_topology::fields_task(&[Value::Int(device)], tasks) == task)
            .map_err(open_err)?;
        tracing::info!(task, devices = loaded, "alert state loaded");
        let (jobs, job_rx) = crossbeam_channel::unbounded::<Job>();
        let (answer_tx, answers) = crossbeam_channel::unbounded::<Answer>();
        let waker = ctx.waker();
        std::thread::Builder::new()
            .name(format!("threshold-db-{task}"))
            .spawn(move || {
                let mut refreshed = Instant::now();
                loop {
                    let first = match job_rx.recv_timeout(Duration::from_millis(500)) {
                        Ok(j) => Some(j),
                        Err(crossbeam_channel::RecvTimeoutError::Timeout) => None,
                        Err(crossbeam_channel::RecvTimeoutError::Disconnected) => return,
                    };
                    if refreshed.elapsed() >= Duration::from_millis(500) {
                        engine.refresh();
                        refreshed = Instant::now();
                    }
                    let Some(first) = first else { continue };
                    let mut done: Vec<Answer> = Vec::new();
                    for job in std::iter::once(first).chain(job_rx.try_iter().take(4_095)) {
                        match job {
                            Job::Observe(id, obs) => done
                                .push((Some(id), engine.observe(&obs).map_err(|e| e.to_string()))),
                            Job::Tick(now) => {
                                done.push((None, engine.tick(now).map_err(|e| e.to_string())))
                            }
                        }
                    }
                    if let Err(e) = engine.commit() {
                        let error = format!("alert state: {e}");
                        for d in &mut done {
                            d.1 = Err(error.clone());
                        }
                    }
                    for d in done {
                        if answer_tx.send(d).is_err() {
                            return;
                        }
                    }
                    if let Some(w) = &waker {
                        w.wake();
                    }
                }
            })
            .map_err(|e| ComponentError::msg(format!("cannot start the database thread: {e}")))?;
        self.jobs = Some(jobs);
        self.answers = Some(answers);
        Ok(())
    }

    fn execute(&mut self, t: Tuple, out: &mut OutputCollector) -> Result<(), BoltError> {
        self.wake(out);
        let Some(jobs) = &self.jobs else {
            return Err(BoltError::msg("threshold used before prepare"));
        };
        if t.is_tick() {
            let _ = jobs.send(Job::Tick(now_secs()));
            return Ok(());
        }
        let obs = observation(&t)?;
        let id = self.next;
        self.next += 1;
        jobs.send(Job::Observe(id, obs))
            .map_err(|_| BoltError::msg("threshold: the database thread stopped"))?;
        out.hold();
        self.held.insert(id, t);
        Ok(())
    }

    fn wake(&mut self, out: &mut OutputCollector) {
        let Some(answers) = self.answers.clone() else {
            return;
        };
        while let Ok((id, result)) = answers.try_recv() {
            let input = id.and_then(|id| self.held.remove(&id));
            let received_at = input
                .as_ref()
                .and_then(|t| t.get_by_field("received_at").and_then(Value::as_f64));
            match result {
                Ok(events) => {
                    for e in events {
                        metrics::counter!("squall_alert_events_total", "kind" => match e.kind {
                            EventKind::Fire => "fire",
                            EventKind::Repeat => "repeat",
                            EventKind::Clear => "clear",
                        })
                        .increment(1);
                        let row = values![
                            e.account.clone(),
                            e.device,
                            Value::any(serde_json::to_value(&e).expect("events serialise")),
                            received_at
                        ];
                        match &input {
                            Some(t) => {
                                out.emit_anchored(squall_topology::DEFAULT_STREAM, &[t], row)
                            }
                            None => out.emit_unanchored(row),
                        }
                    }
                    if let Some(t) = input {
                        if let Some(at) = received_at {
                            super::record_stage("evaluated", at);
                        }
                        out.ack(&t);
                    }
                }
                Err(error) => {
                    tracing::error!(%error, "threshold: evaluation not persisted; the payload will be retried");
                    if let Some(t) = input {
                        out.fail(&t, error);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::accounts::{Account, SqliteStore};
    use crate::alert::configs::AlertConfig;

    const ACME: &str = "acme";

    fn configs() -> Arc<SqliteStore> {
        let s = SqliteStore::in_memory().unwrap();
        s.create_account(&Account {
            name: ACME.into(),
            device_quota: 10,
            active: true,
        })
        .unwrap();
        Arc::new(s)
    }

    fn add(store: &SqliteStore, patch: serde_json::Value) -> i64 {
        let mut c = serde_json::json!({
            "account": ACME, "name": "High load", "kind": "threshold",
            "subject": {"type": "account"}, "metric": "system.load.1",
            "comparison": "gte", "value": 4,
            "wait": {"seconds": 120, "enabled": true},
            "repeat": {"seconds": 600, "enabled": false},
            "fix": true,
            "recipients": [{"type": "webhook", "url": "http://127.0.0.1:9/hook"}]
        });
        for (k, v) in patch.as_object().unwrap() {
            c[k] = v.clone();
        }
        let c = AlertConfig::from_json(&serde_json::to_vec(&c).unwrap()).unwrap();
        store.create_config(&c).unwrap().id
    }

    fn obs(device: i64, t: f64, points: &[(&str, Option<&str>, f64)]) -> Observation {
        Observation {
            device,
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
                    .map(|(name, disk, value)| MetricPoint {
                        name: name.to_string(),
                        labels: disk
                            .map(|d| ("device_name", d.to_string()))
                            .into_iter()
                            .collect(),
                        value: *value,
                    })
                    .collect(),
                skipped: 0,
            }),
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
        let store = Arc::new(AlertStore::open_url("sqlite::memory:").unwrap());
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
    fn a_false_evaluation_while_pending_cancels_silently_and_repeat_renotifies() {
        let cfg = configs();
        add(
            &cfg,
            serde_json::json!({"wait": {"seconds": 60, "enabled": true},
                               "repeat": {"seconds": 300, "enabled": true}}),
        );
        let mut e = Engine::new(
            cfg,
            Arc::new(AlertStore::open_url("sqlite::memory:").unwrap()),
        );
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
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("a.db").display());
        let cfg = configs();
        add(&cfg, serde_json::json!({}));
        let mut a = Engine::new(cfg.clone(), Arc::new(AlertStore::open_url(&url).unwrap()));
        assert!(load(&mut a, 1, 100.0, 9.0).is_empty());
        drop(a); // the crash: only what was committed survives

        let mut b = Engine::new(cfg.clone(), Arc::new(AlertStore::open_url(&url).unwrap()));
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

        let mut c = Engine::new(cfg, Arc::new(AlertStore::open_url(&url).unwrap()));
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
        let mut e = Engine::new(
            cfg,
            Arc::new(AlertStore::open_url("sqlite::memory:").unwrap()),
        );
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
    fn no_data_fires_on_ticks_after_wait_and_clears_on_the_next_payload() {
        let cfg = configs();
        add(
            &cfg,
            serde_json::json!({"kind": "no_data", "metric": null, "comparison": null,
                               "value": null, "wait": {"seconds": 300, "enabled": true}}),
        );
        let mut e = Engine::new(
            cfg,
            Arc::new(AlertStore::open_url("sqlite::memory:").unwrap()),
        );
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
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("a.db").display());
        let cfg = configs();
        add(
            &cfg,
            serde_json::json!({"kind": "no_data", "metric": null, "comparison": null,
                               "value": null, "wait": {"seconds": 60, "enabled": true}}),
        );
        let mut a = Engine::new(cfg.clone(), Arc::new(AlertStore::open_url(&url).unwrap()));
        load(&mut a, 4, 1000.0, 0.0);
        let fired = a.tick(1100.0).unwrap();
        a.commit().unwrap();
        assert_eq!(kinds(&fired), [EventKind::Fire]);
        drop(a); // died before the notification was produced, perhaps

        let mut b = Engine::new(cfg, Arc::new(AlertStore::open_url(&url).unwrap()));
        b.load(|_| true).unwrap();
        assert_eq!(
            b.tick(1101.0).unwrap(),
            fired,
            "the same event, the same id"
        );
        assert!(b.tick(1102.0).unwrap().is_empty(), "once");
    }
}

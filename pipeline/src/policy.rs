//! The `policy` bolt (the notifier's, between the notifications spout and `deliver`):
//! silences, maintenance windows and grouping ([`squall_alerting::policy`]) applied to
//! the notifications `notify` produced, one per alert event and recipient.
//!
//! - Input: the notifications topic's records, fields-grouped by `key`, which is the
//!   recipient's group of the alert ([`Notification::key`]): one partition, so one
//!   notifier process, and one task hold each group.
//! - A notification of an alert that flaps (not the notice that it started) is recorded
//!   `flapping` and dropped: the alert is kept quiet until it settles.
//! - Each notification joins its group. A notification whose alert a silence covers at
//!   its event time is recorded `silenced` ("silenced by 7"); one that joins a group of
//!   several alerts is recorded `grouped` ("grouped into g…"): both are visible in
//!   `GET /api/v1/notifications`, and neither is sent on its own.
//! - With `group_by: []` a notification nothing holds back passes straight on, anchored
//!   to its own tuple (no state): ordering and retries are the spout's and `deliver`'s,
//!   as without a policy. Only an alert a silence (or flapping) holds back gets a group.
//! - Groups flush on their timers (`group_wait`, `group_interval`, `repeat_interval`;
//!   ticks every second): a flush's notification goes to `deliver` with the same fields
//!   as a notification from the topic (`key`, `value`, `id`). With `group_by: []` a
//!   flush sends the alert's own notification (same id as without grouping).
//! - The clock is the latest event time seen, moved on by wall-clock time between events
//!   (never backwards): silences and windows judge an alert by when its transition
//!   happened.
//! - **Durability**: an input tuple is acked only after its group's new state and its
//!   record are committed (one transaction per batch, on the bolt's database thread). A
//!   flush is kept in its group's *outbox* until `deliver` has recorded its outcome: the
//!   outbox is sent again when the group is loaded (a restart, a takeover) and, on
//!   ticks, when an entry is still unrecorded a minute after it was sent (the deliver
//!   bolt sends each id once, so a repeat costs nothing but a lookup). A replayed
//!   notification (an event its group already holds: its tuple failed downstream, or a
//!   restart re-read it) changes nothing in the group, and sends again the flushes of
//!   its group that hold it and have no recorded outcome yet, so the spout's retries
//!   drive deliveries as they do without grouping.
//! - **Partitions** (`group` set, as `squall up` does): groups follow the notifications
//!   partitions the process's spout holds, claimed in the database like the alert
//!   state's ([`crate::ownership`]); a commit under a stale epoch is refused, the task
//!   steps back from the partition, and the input is failed as transient.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use squall_alerting::configs::Recipient;
use squall_alerting::events::{labels, EventKind};
use squall_alerting::notify::Notification;
use squall_alerting::policy::group::Group;
use squall_alerting::policy::silence::{silenced_by, CompiledSilence};
use squall_alerting::store::{
    AccountStore, Delivery, DeliveryLog, DeliveryStatus, Fence, GroupRow, PolicyStore, StoreError,
};
use squall_topology::{
    values, Bolt, BoltError, ComponentError, Fields, Offload, OffloadConfig, OutputCollector,
    OutputDeclarer, TopologyContext, Tuple, Value, Worker,
};

use crate::notify::now_ms;
use crate::ownership::Ownership;
use crate::stage::{now_secs, Failure};
use crate::stores;

/// How long a flushed notification may stay unrecorded before it is sent to `deliver`
/// again, seconds.
const RESEND_AFTER_S: f64 = 60.0;
/// Most flushed notifications a group keeps until their outcome is recorded.
const OUTBOX: usize = 16;

/// Options of `policy`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyConfig {
    /// The database of silences, groups and deliveries, `sqlite://PATH` or `postgres://…`.
    pub db_url: String,
    /// The consumer group of the kafka spout feeding this bolt: groups follow the
    /// partitions it holds. Unset: one owner of everything.
    #[serde(default)]
    pub group: Option<String>,
    /// The field holding the notification (JSON).
    #[serde(default = "default_value_field")]
    pub value_field: String,
}

fn default_value_field() -> String {
    "value".into()
}

/// A group as it is stored: its recipient, its state, and what it flushed that has no
/// recorded outcome yet.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Held {
    recipient: Recipient,
    /// The recipient's index in its config (ids of `group_by: []` flushes).
    index: usize,
    partition: Option<i32>,
    group: Group,
    /// Flushed notifications, with when they were last handed to `deliver` (server s).
    outbox: Vec<(Notification, f64)>,
}

/// What the bolt asks the database thread.
enum Job {
    /// A notification from the topic, from `partition`.
    Take(Box<Notification>, Option<i32>),
    /// Move every group's clock.
    Tick,
}

/// What a job produced: notifications for `deliver`.
type Out = Result<Vec<Notification>, Failure>;

/// The groups on their thread.
struct Grouper {
    policy: Arc<dyn PolicyStore>,
    accounts: Arc<dyn AccountStore>,
    deliveries: Arc<dyn DeliveryLog>,
    silences: Vec<CompiledSilence>,
    version: Option<i64>,
    groups: HashMap<String, Held>,
    dirty: HashSet<String>,
    records: Vec<Delivery>,
    /// The latest event time seen, and the wall-clock time it was seen at.
    clock: (f64, f64),
    follow: Option<Follow>,
    /// Loaded everything (not following partitions).
    loaded: bool,
    task: usize,
    tasks: usize,
}

/// The partitions followed (with `group`).
struct Follow {
    ownership: Arc<Ownership>,
    version: Option<u64>,
    /// Partition -> (generation, epoch) held.
    held: HashMap<i32, (u64, i64)>,
    fenced: HashSet<(i32, u64)>,
}

impl Grouper {
    /// Now on the bolt's clock (see the module docs).
    fn now(&self) -> f64 {
        let (event, seen) = self.clock;
        let wall = now_secs();
        wall.max(event + (wall - seen))
    }

    fn saw(&mut self, event_at: f64) {
        let now = self.now();
        if event_at > now {
            self.clock = (event_at, now_secs());
        }
    }

    /// Reloads the silences when an admin change happened.
    fn refresh(&mut self) -> Result<(), StoreError> {
        let version = self.accounts.admin_version().ok();
        if version.is_some() && version == self.version {
            return Ok(());
        }
        let mut compiled = Vec::new();
        for s in self.policy.silences(None)? {
            match s.silence.compile(s.id) {
                Ok(c) => compiled.push(c),
                Err(e) => tracing::warn!(silence = s.id, error = %e, "silence skipped"),
            }
        }
        self.silences = compiled;
        self.version = version;
        Ok(())
    }

    fn mine(&self, key: &str) -> bool {
        squall_topology::fields_task(&[Value::Str(key.into())], self.tasks) == self.task
    }

    /// Loads `rows` (this task's groups); their outboxes go out again.
    fn load(&mut self, rows: Vec<(String, Vec<u8>)>, out: &mut Vec<Notification>) -> usize {
        let mut n = 0;
        for (key, blob) in rows {
            if !self.mine(&key) {
                continue;
            }
            match serde_json::from_slice::<Held>(&blob) {
                Ok(mut h) => {
                    let now = now_secs();
                    for (notification, sent) in &mut h.outbox {
                        out.push(notification.clone());
                        *sent = now;
                    }
                    self.groups.insert(key, h);
                    n += 1;
                }
                Err(e) => tracing::warn!(group = %key, error = %e, "group state skipped"),
            }
        }
        n
    }

    /// Takes new partitions (loading their groups) and forgets revoked ones.
    fn sync(&mut self, out: &mut Vec<Notification>) -> Result<(), StoreError> {
        let Some(f) = &mut self.follow else {
            if !self.loaded {
                let rows = self.policy.groups(None)?;
                let n = self.load(rows, out);
                tracing::info!(task = self.task, groups = n, "notification groups loaded");
                self.loaded = true;
            }
            return Ok(());
        };
        if f.version == Some(f.ownership.version()) {
            return Ok(());
        }
        let (version, owned) = f.ownership.current()?;
        let mut take = Vec::new();
        for o in &owned {
            if f.held.get(&o.partition).map(|(g, _)| *g) == Some(o.generation)
                || f.fenced.contains(&(o.partition, o.generation))
            {
                continue;
            }
            take.push(*o);
        }
        let gone: Vec<i32> = f
            .held
            .keys()
            .filter(|p| !owned.iter().any(|o| o.partition == **p))
            .copied()
            .collect();
        f.version = Some(version);
        for p in gone {
            self.release(p);
        }
        for o in take {
            self.release(o.partition);
            // Still ours? (An empty commit under the claim: refused if another process
            // claimed the partition since.) A process that was paused, or lost its
            // database connection, must not load another owner's groups and send their
            // outboxes.
            let fence = Fence {
                partition: o.partition,
                epoch: o.epoch,
            };
            match self.policy.commit_groups(&[fence], &[], &[]) {
                Ok(()) => {}
                Err(StoreError::Fenced { .. }) => {
                    tracing::info!(
                        task = self.task,
                        partition = o.partition,
                        epoch = o.epoch,
                        "notification groups of the partition are another process's now"
                    );
                    if let Some(f) = &mut self.follow {
                        f.fenced.insert((o.partition, o.generation));
                    }
                    continue;
                }
                Err(e) => return Err(e),
            }
            let rows = self.policy.groups(Some(o.partition))?;
            let n = self.load(rows, out);
            tracing::info!(
                task = self.task,
                partition = o.partition,
                epoch = o.epoch,
                groups = n,
                "notification groups of the partition loaded"
            );
            if let Some(f) = &mut self.follow {
                f.held.insert(o.partition, (o.generation, o.epoch));
            }
        }
        Ok(())
    }

    fn release(&mut self, partition: i32) {
        if let Some(f) = &mut self.follow {
            f.held.remove(&partition);
        }
        self.groups.retain(|_, h| h.partition != Some(partition));
        self.dirty.retain(|k| self.groups.contains_key(k));
    }

    /// Flushes `key`'s group if due; queues what it sends.
    fn tick_group(&mut self, key: &str, now: f64, out: &mut Vec<Notification>) {
        let silences = &self.silences;
        let Some(h) = self.groups.get_mut(key) else {
            return;
        };
        let silenced = |e: &squall_alerting::events::AlertEvent| {
            silenced_by(silences, &e.account, &labels(e), now)
        };
        let size = |g: &Group| (g.next_flush, g.members.len(), g.departed.len());
        let before = size(&h.group);
        let flush = h.group.tick(now, &silenced);
        let changed = flush.sent.is_some() || before != size(&h.group);
        if let Some(sent) = flush.sent {
            let created = now_ms();
            let n = if h.group.timers.group_by.is_empty() {
                // One alert per group: its own notification, under its own id.
                sent.alerts.into_iter().next().map(|event| Notification {
                    id: format!("{}-r{}", event.id, h.index),
                    created_at_ms: created,
                    recipient: h.recipient.clone(),
                    event,
                    group: None,
                })
            } else {
                Notification::for_group(&h.recipient, sent, created)
            };
            if let Some(n) = n {
                metrics::counter!("squall_group_notifications_total").increment(1);
                h.outbox.push((n, now_secs()));
                if h.outbox.len() > OUTBOX {
                    h.outbox.remove(0);
                }
                // The whole outbox, oldest first: a flush never reaches `deliver` ahead
                // of an earlier one of its group that has no recorded outcome (one that
                // another process still holds, say), so a "resolved" never overtakes its
                // "firing"; `deliver` skips the ones already done.
                let now = now_secs();
                for (sent, at) in &mut h.outbox {
                    out.push(sent.clone());
                    *at = now;
                }
            }
        }
        if changed {
            self.dirty.insert(key.to_string());
        }
    }

    /// A notification from the topic.
    fn take(
        &mut self,
        n: Notification,
        partition: Option<i32>,
        out: &mut Vec<Notification>,
    ) -> Result<(), Failure> {
        if let (Some(f), Some(p)) = (&self.follow, partition) {
            if !f.held.contains_key(&p) {
                return Err(Failure::transient(format!(
                    "notifications partition {p} is not owned by this process (any more)"
                )));
            }
        }
        let key = Notification::key(&n.event, &n.recipient);
        self.saw(n.event.at);
        let now = self.now();
        let timers = n.recipient.grouping().timers();
        let index =
            n.id.rsplit_once("-r")
                .and_then(|(_, i)| i.parse().ok())
                .unwrap_or(0);
        // `group_by: []` with nothing held back for the alert: the notification goes on
        // as it is, anchored to its own tuple, so the spout's retries and `deliver`'s
        // per-alert queue keep its order exactly as without a policy. State is kept only
        // for what a silence or flapping holds back.
        let quiet = n.event.flapping.is_some() && n.event.kind != EventKind::Flapping;
        if timers.group_by.is_empty()
            && !quiet
            && !self.groups.contains_key(&key)
            && silenced_by(
                &self.silences,
                &n.event.account,
                &labels(&n.event),
                n.event.at,
            )
            .is_none()
        {
            out.push(n);
            return Ok(());
        }
        let h = self.groups.entry(key.clone()).or_insert_with(|| Held {
            recipient: n.recipient.clone(),
            index,
            partition,
            group: Group::new(key.clone(), timers.group_labels(&n.event), timers.clone()),
            outbox: Vec::new(),
        });
        if h.group.members.values().any(|m| m.event.id == n.event.id) {
            // A replay (its tuple failed downstream, e.g. another process still held the
            // delivery's claim; or a restart re-read it): what its group sent of it with
            // no outcome recorded yet goes out again, as the notification itself would
            // have without grouping (`deliver` sends each id once).
            let now = now_secs();
            if h.outbox
                .iter()
                .any(|(sent, _)| sent.alerts().iter().any(|a| a.id == n.event.id))
            {
                // Oldest first, as on every emission of the group (see `tick_group`).
                for (sent, at) in &mut h.outbox {
                    out.push(sent.clone());
                    *at = now;
                }
            }
            return Ok(());
        }
        if let (Some(p), false) = (n.event.flapping, n.event.kind == EventKind::Flapping) {
            // Kept quiet while the alert flaps: recorded, not sent, not in the group.
            metrics::counter!("squall_notifications_held_total", "why" => "flapping").increment(1);
            self.records.push(Delivery {
                id: n.id.clone(),
                status: DeliveryStatus::Flapping,
                attempts: 0,
                code: None,
                reason: format!("flapping ({p:.0}% state change): quiet until it settles"),
                at_ms: now_ms(),
            });
            if h.group.is_empty() && h.outbox.is_empty() {
                self.groups.remove(&key);
            }
            return Ok(());
        }
        // A silenced notification is recorded under its own id with `/silenced`: with
        // `group_by: []` the alert may still go out under its id once the silence ends.
        let record = match silenced_by(
            &self.silences,
            &n.event.account,
            &labels(&n.event),
            n.event.at,
        ) {
            Some(id) => Some((
                DeliveryStatus::Silenced,
                format!("{}/silenced", n.id),
                format!("silenced by {id}"),
            )),
            None if !timers.group_by.is_empty() => Some((
                DeliveryStatus::Grouped,
                n.id.clone(),
                format!("grouped into {key}"),
            )),
            None => None,
        };
        if let Some((status, id, reason)) = record {
            metrics::counter!("squall_notifications_held_total", "why" => status.as_str())
                .increment(1);
            self.records.push(Delivery {
                id,
                status,
                attempts: 0,
                code: None,
                reason,
                at_ms: now_ms(),
            });
        }
        h.group.add(n.event, now);
        self.dirty.insert(key.clone());
        self.tick_group(&key, now, out);
        Ok(())
    }

    /// Every group's clock moves; outboxes are checked.
    fn tick(&mut self, out: &mut Vec<Notification>) -> Result<(), StoreError> {
        let now = self.now();
        let keys: Vec<String> = self.groups.keys().cloned().collect();
        for key in &keys {
            self.tick_group(key, now, out);
        }
        // Outbox entries unrecorded after a while go out again; recorded ones leave.
        let wall = now_secs();
        for key in &keys {
            let Some(h) = self.groups.get_mut(key) else {
                continue;
            };
            let mut changed = false;
            let mut keep = Vec::with_capacity(h.outbox.len());
            let mut due = false;
            for (n, sent) in h.outbox.drain(..) {
                // Only the oldest entries leave: the outbox stays in order.
                if keep.is_empty()
                    && wall - sent >= RESEND_AFTER_S.min(5.0)
                    && self.deliveries.delivery(&n.id)?.is_some()
                {
                    changed = true;
                    continue;
                }
                due |= wall - sent >= RESEND_AFTER_S;
                keep.push((n, sent));
            }
            if due {
                // Still unrecorded a while after it was sent: the group's outbox again,
                // oldest first.
                for (n, sent) in &mut keep {
                    out.push(n.clone());
                    *sent = wall;
                }
                changed = true;
            }
            h.outbox = keep;
            if changed {
                self.dirty.insert(key.clone());
            }
        }
        Ok(())
    }

    /// Writes the changed groups and the records in one transaction.
    fn commit(&mut self) -> Result<(), StoreError> {
        if self.dirty.is_empty() && self.records.is_empty() {
            return Ok(());
        }
        let mut rows = Vec::with_capacity(self.dirty.len());
        let mut fences = HashSet::new();
        for key in &self.dirty {
            let Some(h) = self.groups.get(key) else {
                continue;
            };
            let done = h.group.is_empty() && h.outbox.is_empty();
            rows.push(GroupRow {
                key: key.clone(),
                partition: h.partition,
                blob: (!done).then(|| serde_json::to_vec(h).expect("groups serialise")),
            });
            if let (Some(f), Some(p)) = (&self.follow, h.partition) {
                if let Some((_, epoch)) = f.held.get(&p) {
                    fences.insert(Fence {
                        partition: p,
                        epoch: *epoch,
                    });
                }
            }
        }
        let fences: Vec<Fence> = fences.into_iter().collect();
        match self.policy.commit_groups(&fences, &rows, &self.records) {
            Ok(()) => {
                for row in &rows {
                    if row.blob.is_none() {
                        self.groups.remove(&row.key);
                    }
                }
                self.dirty.clear();
                self.records.clear();
                Ok(())
            }
            Err(e) => {
                // Memory never runs ahead of the database: the partitions the commit
                // wrote to are read back whole before anything else happens to them; a
                // fenced one is given up until the spout holds it anew.
                let partitions: HashSet<Option<i32>> = self
                    .dirty
                    .drain()
                    .filter_map(|key| self.groups.get(&key).map(|h| h.partition))
                    .collect();
                self.records.clear();
                if let (StoreError::Fenced { partition, .. }, Some(f)) = (&e, &mut self.follow) {
                    if let Some((generation, _)) = f.held.get(partition) {
                        f.fenced.insert((*partition, *generation));
                    }
                }
                match &mut self.follow {
                    Some(_) if partitions.contains(&None) => {
                        self.groups.clear();
                        if let Some(f) = &mut self.follow {
                            f.version = None;
                            f.held.clear();
                        }
                    }
                    Some(_) => {
                        for p in partitions.into_iter().flatten() {
                            self.release(p);
                        }
                        if let StoreError::Fenced { partition, .. } = &e {
                            self.release(*partition);
                        }
                        if let Some(f) = &mut self.follow {
                            f.version = None;
                        }
                    }
                    None => {
                        self.loaded = false;
                        self.groups.clear();
                    }
                }
                Err(e)
            }
        }
    }

    fn run_batch(&mut self, jobs: Vec<Job>) -> Vec<Out> {
        let mut resent = Vec::new();
        if let Err(e) = self.refresh().and_then(|()| self.sync(&mut resent)) {
            let error = Failure::store("notification groups", &e);
            return jobs.iter().map(|_| Err(error.clone())).collect();
        }
        let mut done: Vec<Out> = Vec::with_capacity(jobs.len());
        for job in jobs {
            let mut out = std::mem::take(&mut resent);
            let result = match job {
                Job::Take(n, partition) => self.take(*n, partition, &mut out),
                Job::Tick => self
                    .tick(&mut out)
                    .map_err(|e| Failure::store("notification groups", &e)),
            };
            done.push(result.map(|()| out));
        }
        if let Err(e) = self.commit() {
            let error = match e {
                StoreError::Fenced { .. } => {
                    metrics::counter!("squall_group_state_fenced_total").increment(1);
                    Failure::transient(format!("notification groups: {e}"))
                }
                e => Failure::store("notification groups", &e),
            };
            for d in &mut done {
                *d = Err(error.clone());
            }
        }
        done
    }
}

impl Worker for Grouper {
    type Job = Job;
    type Output = Out;

    fn run(&mut self, jobs: Vec<Job>) -> Vec<Out> {
        self.run_batch(jobs)
    }

    fn idle(&mut self) -> Vec<Out> {
        Vec::new()
    }
}

/// The `policy` bolt (see the module docs). Output: `key`, `value` (the notification as
/// JSON), `id`: what `deliver` reads.
pub struct Policy {
    config: PolicyConfig,
    offload: Option<Offload<Grouper, Tuple>>,
}

impl std::fmt::Debug for Policy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Policy")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Policy {
    /// A policy bolt with `config` (the database opens in `prepare`).
    pub fn new(config: PolicyConfig) -> Result<Self, String> {
        stores::check_url(&config.db_url)?;
        Ok(Policy {
            config,
            offload: None,
        })
    }
}

/// Emits `n` to `deliver`, anchored to `anchor` if given.
fn emit(n: &Notification, anchor: Option<&Tuple>, out: &mut OutputCollector) {
    let key = n.order_key();
    let body = serde_json::to_vec(n).expect("notifications serialise");
    let vals = values![key, body, n.id.clone()];
    match anchor {
        Some(t) => out.emit_anchored(squall_topology::DEFAULT_STREAM, &[t], vals),
        None => out.emit_unanchored(vals),
    }
}

impl Bolt for Policy {
    fn declare_outputs(&self, d: &mut OutputDeclarer) {
        d.declare(Fields::new(["key", "value", "id"]));
    }

    fn prepare(&mut self, ctx: &TopologyContext) -> Result<(), ComponentError> {
        let url = &self.config.db_url;
        let stores = stores::open(url)
            .map_err(|e| ComponentError::msg(format!("cannot open {url}: {e}")))?;
        let follow = self.config.group.as_ref().map(|group| Follow {
            ownership: Ownership::of_groups(url, group, stores.policy.clone()),
            version: None,
            held: HashMap::new(),
            fenced: HashSet::new(),
        });
        let (task, tasks) = (ctx.task_index(), ctx.parallelism());
        let grouper = Grouper {
            policy: stores.policy,
            accounts: stores.accounts,
            deliveries: stores.deliveries,
            silences: Vec::new(),
            version: None,
            groups: HashMap::new(),
            dirty: HashSet::new(),
            records: Vec::new(),
            clock: (0.0, now_secs()),
            follow,
            loaded: false,
            task,
            tasks,
        };
        self.offload = Some(Offload::start(
            OffloadConfig::new(format!("policy-db-{task}")),
            ctx.waker(),
            grouper,
        )?);
        Ok(())
    }

    fn execute(&mut self, t: Tuple, out: &mut OutputCollector) -> Result<(), BoltError> {
        self.wake(out);
        let Some(offload) = &mut self.offload else {
            return Err(BoltError::msg("policy used before prepare"));
        };
        if t.is_tick() {
            if let Err(e) = offload.send(Job::Tick) {
                tracing::warn!(error = %e, "policy: tick skipped");
            }
            return Ok(());
        }
        let n: Notification = match t.get_by_field(&self.config.value_field) {
            Some(Value::Bytes(b)) => serde_json::from_slice(b),
            Some(Value::Str(s)) => serde_json::from_str(s),
            _ => {
                return Err(BoltError::msg(format!(
                    "policy: no `{}` field of bytes or text",
                    self.config.value_field
                )))
            }
        }
        .map_err(|e| BoltError::msg(format!("policy: not a notification: {e}")))?;
        let partition = t
            .get_by_field("partition")
            .and_then(|v| v.as_int())
            .and_then(|p| i32::try_from(p).ok());
        offload
            .submit(Job::Take(Box::new(n), partition), t, out)
            .map_err(|e| BoltError::msg(format!("policy: {e}")))?;
        out.hold();
        Ok(())
    }

    fn wake(&mut self, out: &mut OutputCollector) {
        let Some(offload) = &mut self.offload else {
            return;
        };
        for (input, result) in offload.drain(out) {
            match result {
                Ok(notifications) => {
                    for n in &notifications {
                        emit(n, input.as_ref(), out);
                    }
                    if let Some(t) = input {
                        out.ack(&t);
                    }
                }
                Err(error) => {
                    tracing::warn!(%error, "policy: not persisted; the notification will be retried");
                    if let Some(t) = input {
                        error.fail(out, &t);
                    }
                }
            }
        }
        for t in offload.lost(out) {
            out.fail(&t, "policy: the database thread panicked on it, or stopped");
        }
    }
}

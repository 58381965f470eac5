//! The `enrich` bolt: checks each payload envelope against the accounts store and attaches
//! its device.
//!
//! Decisions, in order: the account must exist (`unknown_account`) and be active
//! (`account_inactive`); the agent key must be issued to that account
//! (`invalid_agent_key`); a known device must be active (`device_inactive`); an unknown one
//! is registered if the account has quota left, else `quota_exceeded`. Unparsable
//! envelopes or payloads are `malformed`. Accepted payloads leave as an [`Observation`]
//! ([`crate::stage`]). Rejections go to the `rejected` stream
//! (`account`, `agent_key`, `reason`, `error`), are counted
//! (`squall_rejected_total{reason}`) and acked: a rejection is an answer, not a failure.
//!
//! Store calls block, so they run on a dedicated thread ([`Offload`]): on a cache miss the
//! bolt holds the tuple, hands the lookup to that thread, and finishes the tuple when the
//! thread wakes it. The thread decides whatever queued up while it worked as one batch, new
//! devices registered in one transaction. Decisions are cached for `cache_ttl_ms` (ten
//! minutes by default: agents post every minute, so a shorter cache would send nearly every
//! payload to the database), in caches bounded by `cache_max_bytes` (the least used go
//! first): an authenticated agent's verdict per (account, agent key, hostname), a rejection
//! of the account or agent key per (account, agent key) only, so junk with unique
//! hostnames sent without a valid key adds nothing to memory; admin changes (any account, key or device change through the
//! admin API) empty the cache within about a second, because the database thread watches
//! the store's admin version. A payload answered from the cache still moves its device's
//! `last_seen`, batched on the same thread.

use std::collections::HashMap;

use moka::sync::Cache;
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use squall_alerting::accounts::{Account, Registration, Sighting};
use squall_alerting::engine::Observation;
use squall_alerting::envelope::Envelope;
use squall_alerting::ids::DeviceId;
use squall_alerting::payload::{self, Payload};
use squall_alerting::store::{AccountStore, StoreError};
use squall_topology::{
    values, Bolt, BoltError, ComponentError, OutputCollector, OutputDeclarer, TopologyContext,
    Tuple, Value,
};
use squall_topology::{Offload, OffloadConfig, Worker};

use crate::stage::{self, observation_values, record_stage, Failure, REJECTED};
use crate::stores;

fn default_ttl() -> u64 {
    600_000
}

/// The default of [`EnrichConfig::max_future_skew_s`].
pub const DEFAULT_MAX_FUTURE_SKEW_S: u64 = 300;

fn default_skew() -> u64 {
    DEFAULT_MAX_FUTURE_SKEW_S
}

/// The default of [`EnrichConfig::cache_max_bytes`].
pub const DEFAULT_CACHE_MAX_BYTES: u64 = 64 << 20;

fn default_cache_bytes() -> u64 {
    DEFAULT_CACHE_MAX_BYTES
}

/// What a cached entry costs besides its strings (the entry, the verdict, the map's slot).
const ENTRY_OVERHEAD: u32 = 96;

/// Verdicts per (account, agent key, hostname).
type DeviceCache = Cache<(String, String, String), Verdict>;
/// Rejections per (account, agent key).
type RejectionCache = Cache<(String, String), Verdict>;

/// The two verdict caches, `max_bytes` and a sixteenth of it (at least 1 MiB).
fn caches(ttl_ms: u64, max_bytes: u64) -> (DeviceCache, RejectionCache) {
    let ttl = Duration::from_millis(ttl_ms.max(1));
    let weight = |n: usize, v: &Verdict| {
        let reason = match v {
            Verdict::Reject(_, m) => m.len(),
            Verdict::Device(_) => 0,
        };
        u32::try_from(n + reason)
            .unwrap_or(u32::MAX)
            .saturating_add(ENTRY_OVERHEAD)
    };
    let devices = Cache::builder()
        .max_capacity(max_bytes)
        .time_to_live(ttl)
        .weigher(move |k: &(String, String, String), v: &Verdict| {
            weight(k.0.len() + k.1.len() + k.2.len(), v)
        })
        .build();
    let rejections = Cache::builder()
        .max_capacity((max_bytes / 16).max(1 << 20))
        .time_to_live(ttl)
        .weigher(move |k: &(String, String), v: &Verdict| weight(k.0.len() + k.1.len(), v))
        .build();
    (devices, rejections)
}

fn default_field() -> String {
    "value".into()
}

/// Options of `enrich`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnrichConfig {
    /// The accounts database, `sqlite://PATH`.
    pub db_url: String,
    /// How long lookups are cached.
    #[serde(default = "default_ttl")]
    pub cache_ttl_ms: u64,
    /// Most bytes of keys the verdict caches hold (default 64 MiB: ~300,000 devices'
    /// verdicts); the least used go first past it.
    #[serde(default = "default_cache_bytes")]
    pub cache_max_bytes: u64,
    /// The input field holding the envelope (default `value`, as the kafka spout emits).
    #[serde(default = "default_field")]
    pub field: String,
    /// How far ahead of its receive time a payload's `collection_timestamp` may be, in
    /// seconds (`intake.max_future_skew_s`); further, or not a finite number, and it is
    /// rejected as `timestamp_out_of_range` before it can touch any state.
    #[serde(default = "default_skew")]
    pub max_future_skew_s: u64,
}

/// What the store said about one (account, key, hostname).
#[derive(Clone, Debug)]
enum Verdict {
    Device(DeviceId),
    Reject(&'static str, String),
}

/// Rejections that depend on the account and agent key only (see `check`).
const ACCOUNT_LEVEL: [&str; 3] = ["unknown_account", "account_inactive", "invalid_agent_key"];

/// A device lookup (or registration).
#[derive(Debug)]
struct Job {
    account: String,
    agent_key: String,
    hostname: String,
    now_ms: i64,
}

/// What the bolt asks its database thread.
#[derive(Debug)]
enum Request {
    /// Decide a payload.
    Decide(Job),
    /// Cached devices sent payloads at these times (device, epoch ms): move their
    /// `last_seen`. At most one is in flight; the bolt gathers the rest meanwhile.
    Seen(Vec<(DeviceId, i64)>),
}

/// What the database thread sends back.
#[derive(Debug)]
enum Answer {
    /// The verdict of a [`Request::Decide`].
    Verdict(Result<Verdict, Failure>),
    /// A [`Request::Seen`] was recorded.
    Seen,
    /// An admin change happened: drop the cache.
    Invalidate,
}

/// A payload waiting for its verdict.
#[derive(Debug)]
struct Pending {
    input: Tuple,
    account: String,
    agent_key: String,
    hostname: String,
    time: f64,
    received_at: f64,
    payload: Arc<Payload>,
    key: (String, String, String),
}

/// The database side of `enrich`: decides batches, moves `last_seen`, watches the admin
/// version.
struct Decider {
    store: Arc<dyn AccountStore>,
    version: Option<i64>,
}

impl Worker for Decider {
    type Job = Request;
    type Output = Answer;

    fn run(&mut self, requests: Vec<Request>) -> Vec<Answer> {
        let mut seen: HashMap<DeviceId, i64> = HashMap::new();
        let mut jobs = Vec::new();
        for r in &requests {
            match r {
                Request::Decide(job) => jobs.push(job),
                Request::Seen(sightings) => {
                    for (device, ms) in sightings {
                        let at = seen.entry(*device).or_insert(*ms);
                        *at = (*at).max(*ms);
                    }
                }
            }
        }
        if !seen.is_empty() {
            let seen: Vec<(DeviceId, i64)> = seen.into_iter().collect();
            if let Err(error) = self.store.touch_devices(&seen) {
                tracing::warn!(%error, "enrich: last_seen not updated");
            }
        }
        let mut verdicts = decide(&*self.store, &jobs);
        for attempt in 0..stage::RETRIES_IN_PLACE {
            if !verdicts.iter().any(|v| matches!(v, Err(f) if f.transient)) {
                break;
            }
            // A dedicated thread: pausing here holds back only this task's lookups, in
            // order (registering again is idempotent).
            std::thread::sleep(stage::retry_pause(attempt));
            verdicts = decide(&*self.store, &jobs);
        }
        let mut verdicts = verdicts.into_iter();
        requests
            .iter()
            .map(|r| match r {
                Request::Decide(_) => Answer::Verdict(verdicts.next().expect("one per job")),
                Request::Seen(..) => Answer::Seen,
            })
            .collect()
    }

    fn idle(&mut self) -> Vec<Answer> {
        let now = self.store.admin_version().ok();
        if now == self.version {
            return Vec::new();
        }
        self.version = now;
        vec![Answer::Invalidate]
    }
}

/// The `enrich` bolt (see the module docs).
pub struct Enrich {
    config: EnrichConfig,
    store: Option<Arc<dyn AccountStore>>,
    offload: Option<Offload<Decider, Pending>>,
    /// Verdicts of authenticated agents (the account and agent key were valid) per
    /// (account, agent key, hostname): the device, or its own rejection (inactive, over
    /// quota). Bounded by [`EnrichConfig::cache_max_bytes`] and the TTL.
    cache: DeviceCache,
    /// Rejections of the account or agent key, per (account, agent key): never per
    /// hostname, so a flood of junk with unique hostnames adds nothing; bounded by a
    /// sixteenth of [`EnrichConfig::cache_max_bytes`] and the TTL.
    rejections: RejectionCache,
    /// Lookups in flight per key: while any is, a cached verdict must not let a later
    /// payload of the same device overtake the earlier ones (rules depend on order).
    inflight: HashMap<(String, String, String), usize>,
    /// `last_seen` moves of cached devices not yet handed over (latest per device).
    seen: HashMap<DeviceId, i64>,
    /// Whether a [`Request::Seen`] is in flight (never more than one: the queue stays
    /// free for lookups however long the database stalls).
    seen_in_flight: bool,
    /// This task's index (the `task` label of the cache gauges).
    task: String,
    /// Tuples executed, for publishing the cache gauges every [`GAUGE_EVERY`].
    executed: u64,
}

/// How often (in tuples, and on every tick) the cache gauges are published.
const GAUGE_EVERY: u64 = 1_024;

impl std::fmt::Debug for Enrich {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Enrich").finish_non_exhaustive()
    }
}

impl Enrich {
    /// An enrich bolt with `config` (the database opens in `prepare`).
    pub fn new(config: EnrichConfig) -> Result<Self, String> {
        stores::check_url(&config.db_url)?;
        let (cache, rejections) = caches(config.cache_ttl_ms, config.cache_max_bytes);
        Ok(Enrich {
            config,
            store: None,
            offload: None,
            cache,
            rejections,
            inflight: HashMap::new(),
            seen: HashMap::new(),
            seen_in_flight: false,
            task: String::new(),
            executed: 0,
        })
    }

    /// An enrich bolt on an already open store (tests, benches).
    pub fn with_store(store: Arc<dyn AccountStore>, cache_ttl_ms: u64) -> Self {
        let (cache, rejections) = caches(cache_ttl_ms, DEFAULT_CACHE_MAX_BYTES);
        Enrich {
            config: EnrichConfig {
                db_url: String::new(),
                cache_ttl_ms,
                cache_max_bytes: DEFAULT_CACHE_MAX_BYTES,
                field: default_field(),
                max_future_skew_s: DEFAULT_MAX_FUTURE_SKEW_S,
            },
            store: Some(store),
            offload: None,
            cache,
            rejections,
            inflight: HashMap::new(),
            seen: HashMap::new(),
            seen_in_flight: false,
            task: String::new(),
            executed: 0,
        }
    }

    /// Publishes what the verdict caches hold: `squall_enrich_cache_bytes{task, cache}`
    /// (their weighed size, the figure their bound applies to) and
    /// `squall_enrich_cache_entries{task, cache}`.
    fn publish_cache_gauges(&self) {
        for (cache, bytes, entries) in [
            (
                "devices",
                self.cache.weighted_size(),
                self.cache.entry_count(),
            ),
            (
                "rejections",
                self.rejections.weighted_size(),
                self.rejections.entry_count(),
            ),
        ] {
            let labels = [("task", self.task.clone()), ("cache", cache.to_string())];
            metrics::gauge!("squall_enrich_cache_bytes", &labels).set(bytes as f64);
            metrics::gauge!("squall_enrich_cache_entries", &labels).set(entries as f64);
        }
    }

    /// Hands the gathered `last_seen` moves over, unless some are in flight already.
    fn flush_seen(&mut self) {
        let Some(offload) = &self.offload else {
            return;
        };
        if self.seen_in_flight || self.seen.is_empty() {
            return;
        }
        let sightings: Vec<(DeviceId, i64)> = self.seen.drain().collect();
        // Best effort: if the thread has stopped, the next lookup reports it.
        self.seen_in_flight = offload.send(Request::Seen(sightings)).is_ok();
    }

    fn reject(
        out: &mut OutputCollector,
        account: &str,
        key: &str,
        reason: &'static str,
        error: String,
    ) {
        metrics::counter!("squall_rejected_total", "reason" => reason).increment(1);
        tracing::debug!(account, reason, %error, "payload rejected");
        out.emit_to(REJECTED, values![account, key, reason, error]);
    }

    fn finish(p: Pending, verdict: &Verdict, out: &mut OutputCollector) {
        match verdict {
            Verdict::Device(id) => {
                record_stage("enriched", p.received_at);
                let obs = Observation {
                    device: *id,
                    account: p.account,
                    agent_key: p.agent_key,
                    hostname: p.hostname,
                    time: p.time,
                    received_at: p.received_at,
                    payload: p.payload,
                    // The Kafka partition the payload came on, when the kafka spout
                    // feeds this bolt: the alert state of the device moves with it.
                    partition: p
                        .input
                        .get_by_field("partition")
                        .and_then(|v| v.as_int())
                        .and_then(|v| i32::try_from(v).ok()),
                };
                out.emit_anchored(
                    squall_topology::DEFAULT_STREAM,
                    &[&p.input],
                    observation_values(Arc::new(obs)),
                );
            }
            Verdict::Reject(reason, error) => {
                metrics::counter!("squall_rejected_total", "reason" => *reason).increment(1);
                out.emit_anchored(
                    REJECTED,
                    &[&p.input],
                    values![p.account, p.agent_key, *reason, error.clone()],
                );
            }
        }
        out.ack(&p.input);
    }
}

/// The account and agent-key checks of one job: a rejection, or `None` when the device
/// is to be looked up (or registered).
fn check(store: &dyn AccountStore, job: &Job) -> Result<Option<Verdict>, StoreError> {
    match store.account(&job.account)? {
        None => {
            return Ok(Some(Verdict::Reject(
                "unknown_account",
                format!("no account \"{}\"", job.account),
            )))
        }
        Some(Account { active: false, .. }) => {
            return Ok(Some(Verdict::Reject(
                "account_inactive",
                format!("account \"{}\" is inactive", job.account),
            )))
        }
        Some(_) => {}
    }
    if store.key_account(&job.agent_key)?.as_deref() != Some(job.account.as_str()) {
        return Ok(Some(Verdict::Reject(
            "invalid_agent_key",
            format!(
                "agent key {} is not issued to account \"{}\"",
                job.agent_key, job.account
            ),
        )));
    }
    Ok(None)
}

/// Decides a batch of jobs against the store, registering new devices in one transaction.
fn decide(store: &dyn AccountStore, jobs: &[&Job]) -> Vec<Result<Verdict, Failure>> {
    let mut out: Vec<Result<Verdict, Failure>> = Vec::with_capacity(jobs.len());
    let mut lookups = Vec::new();
    for (i, job) in jobs.iter().enumerate() {
        match check(store, job) {
            Ok(Some(reject)) => out.push(Ok(reject)),
            Ok(None) => {
                lookups.push(i);
                out.push(Err(Failure::permanent(""))); // replaced below
            }
            Err(e) => out.push(Err(Failure::store("accounts store", &e))),
        }
    }
    if lookups.is_empty() {
        return out;
    }
    let sightings: Vec<Sighting<'_>> = lookups
        .iter()
        .map(|&i| Sighting {
            account: &jobs[i].account,
            agent_key: &jobs[i].agent_key,
            hostname: &jobs[i].hostname,
            now_ms: jobs[i].now_ms,
        })
        .collect();
    match store.register_devices(&sightings) {
        Ok(registrations) => {
            for (&i, r) in lookups.iter().zip(registrations) {
                let job = &jobs[i];
                out[i] = Ok(match r {
                    Registration::Known(d) if !d.active => Verdict::Reject(
                        "device_inactive",
                        format!("device {} ({}) is inactive", d.id, d.hostname),
                    ),
                    Registration::Known(d) | Registration::Registered(d) => Verdict::Device(d.id),
                    Registration::QuotaExceeded => Verdict::Reject(
                        "quota_exceeded",
                        format!(
                            "account \"{}\" has no device quota left for {}",
                            job.account, job.hostname
                        ),
                    ),
                });
            }
        }
        Err(e) => {
            for i in lookups {
                out[i] = Err(Failure::store("accounts store", &e));
            }
        }
    }
    out
}

impl Bolt for Enrich {
    fn declare_outputs(&self, d: &mut OutputDeclarer) {
        d.declare(stage::observation_fields());
        d.declare_stream(REJECTED, stage::rejected_fields());
    }

    fn prepare(&mut self, ctx: &TopologyContext) -> Result<(), ComponentError> {
        self.task = ctx.task_index().to_string();
        let store: Arc<dyn AccountStore> = match self.store.take() {
            Some(s) => s,
            None => {
                stores::open(&self.config.db_url)
                    .map_err(|e| {
                        ComponentError::msg(format!("cannot open {}: {e}", self.config.db_url))
                    })?
                    .accounts
            }
        };
        let decider = Decider {
            version: store.admin_version().ok(),
            store: store.clone(),
        };
        let config = OffloadConfig {
            max_batch: 1_024,
            ..OffloadConfig::new(format!("enrich-db-{}", ctx.task_index()))
        };
        self.offload = Some(Offload::start(config, ctx.waker(), decider)?);
        self.store = Some(store);
        Ok(())
    }

    fn execute(&mut self, input: Tuple, out: &mut OutputCollector) -> Result<(), BoltError> {
        self.wake(out);
        self.executed += 1;
        if input.is_tick() || self.executed.is_multiple_of(GAUGE_EVERY) {
            self.publish_cache_gauges();
        }
        if input.is_tick() {
            return Ok(());
        }
        // A clone of the field (an `Arc`, not the bytes): the envelope borrows from it
        // while the tuple moves on.
        let field = input.get_by_field(&self.config.field).cloned();
        let raw = field.as_ref().and_then(Value::as_bytes).ok_or_else(|| {
            BoltError::msg(format!(
                "enrich: input has no `{}` bytes field",
                self.config.field
            ))
        })?;
        // One pass over envelope and payload; the two-pass parse only to name what is
        // wrong with a malformed one.
        let Some(mut envelope) = payload::parse_enveloped(raw) else {
            let (account, key, error) = match Envelope::from_slice(raw) {
                Err(e) => (
                    String::new(),
                    String::new(),
                    format!("not a payload envelope: {e}"),
                ),
                Ok(envelope) => {
                    let error = match payload::parse(envelope.payload.get().as_bytes()) {
                        Err(e) => e.to_string(),
                        Ok(_) => "malformed payload envelope".to_string(),
                    };
                    (envelope.account, envelope.agent_key, error)
                }
            };
            Self::reject(out, &account, &key, "malformed", error);
            return Ok(());
        };
        let parsed = std::mem::take(&mut envelope.payload);
        let hostname = parsed
            .hostname
            .clone()
            .or_else(|| parsed.uuid.clone())
            .unwrap_or_else(|| "unknown".into());
        let received_at = envelope.received_at();
        if let Some(t) = parsed.collection_timestamp {
            let limit = received_at + self.config.max_future_skew_s as f64;
            if !t.is_finite() || t > limit {
                Self::reject(
                    out,
                    &envelope.account,
                    &envelope.agent_key,
                    "timestamp_out_of_range",
                    if t.is_finite() {
                        format!(
                            "collection_timestamp {t} is more than {} s after the receive time {received_at:.3} (intake.max_future_skew_s)",
                            self.config.max_future_skew_s
                        )
                    } else {
                        "collection_timestamp is not a finite number of seconds (intake.max_future_skew_s bounds it)".to_string()
                    },
                );
                return Ok(());
            }
        }
        let time = parsed.event_time(received_at);
        let key = (
            envelope.account.clone(),
            envelope.agent_key.clone(),
            hostname.clone(),
        );
        let now_ms = envelope.received_at_ms as i64;
        let pending = Pending {
            input,
            account: envelope.account,
            agent_key: envelope.agent_key,
            hostname,
            time,
            received_at,
            payload: Arc::new(parsed),
            key: key.clone(),
        };
        let Some(offload) = &mut self.offload else {
            return Err(BoltError::msg("enrich used before prepare"));
        };
        let queued_behind = self.inflight.get(&key).is_some_and(|n| *n > 0);
        let cached = if queued_behind {
            None
        } else {
            self.rejections
                .get(&(key.0.clone(), key.1.clone()))
                .or_else(|| self.cache.get(&key))
        };
        if let Some(verdict) = cached {
            if let Verdict::Device(id) = &verdict {
                let at = self.seen.entry(*id).or_insert(now_ms);
                *at = (*at).max(now_ms);
            }
            out.hold();
            Self::finish(pending, &verdict, out);
            self.flush_seen();
            return Ok(());
        }
        let job = Job {
            account: pending.account.clone(),
            agent_key: pending.agent_key.clone(),
            hostname: pending.hostname.clone(),
            now_ms,
        };
        offload
            .submit(Request::Decide(job), pending, out)
            .map_err(|e| BoltError::msg(format!("enrich: {e}")))?;
        out.hold();
        *self.inflight.entry(key).or_default() += 1;
        Ok(())
    }

    fn wake(&mut self, out: &mut OutputCollector) {
        let Some(offload) = &mut self.offload else {
            return;
        };
        for (pending, answer) in offload.drain(out) {
            let verdict = match answer {
                Answer::Invalidate => {
                    self.cache.invalidate_all();
                    self.rejections.invalidate_all();
                    continue;
                }
                Answer::Seen => {
                    self.seen_in_flight = false;
                    continue;
                }
                Answer::Verdict(verdict) => verdict,
            };
            let Some(p) = pending else {
                continue;
            };
            if let Some(n) = self.inflight.get_mut(&p.key) {
                *n -= 1;
                if *n == 0 {
                    self.inflight.remove(&p.key);
                }
            }
            match verdict {
                Ok(verdict) => {
                    match &verdict {
                        // The account or its key: the same for every hostname.
                        Verdict::Reject(reason, _) if ACCOUNT_LEVEL.contains(reason) => self
                            .rejections
                            .insert((p.key.0.clone(), p.key.1.clone()), verdict.clone()),
                        _ => self.cache.insert(p.key.clone(), verdict.clone()),
                    }
                    Self::finish(p, &verdict, out);
                }
                Err(error) => {
                    tracing::error!(%error, "enrich: store lookup failed; the payload will be retried");
                    error.fail(out, &p.input);
                }
            }
        }
        if let Some(offload) = &mut self.offload {
            for p in offload.lost(out) {
                if let Some(n) = self.inflight.get_mut(&p.key) {
                    *n -= 1;
                    if *n == 0 {
                        self.inflight.remove(&p.key);
                    }
                }
                out.fail(
                    &p.input,
                    "enrich: the database thread panicked on it, or stopped",
                );
            }
        }
        self.flush_seen();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The memory ceiling under a flood: unique hostnames (authenticated agents) and
    /// unique accounts (junk) each fill their cache to its bound and no further.
    #[test]
    fn a_flood_of_unique_keys_stays_within_the_caches_bounds() {
        let bound = 1 << 20;
        let (devices, rejections) = caches(600_000, bound);
        for i in 0..20_000 {
            devices.insert(
                (
                    "acme".into(),
                    "key".into(),
                    format!("{i}-{}", "h".repeat(250)),
                ),
                Verdict::Device(DeviceId(i)),
            );
            rejections.insert(
                (format!("junk-{i}-{}", "a".repeat(250)), "key".into()),
                Verdict::Reject("unknown_account", "no account".into()),
            );
        }
        devices.run_pending_tasks();
        rejections.run_pending_tasks();
        // 20,000 entries of ~350 bytes each were offered: 7 MB.
        assert!(
            devices.weighted_size() <= bound,
            "{}",
            devices.weighted_size()
        );
        assert!(
            rejections.weighted_size() <= bound,
            "{}",
            rejections.weighted_size()
        );
        assert!(
            devices.entry_count() > 1_000,
            "it still caches: {}",
            devices.entry_count()
        );
    }
}

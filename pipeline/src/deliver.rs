//! The `deliver` bolt (the notifier's): reads notifications (from the `kafka` spout in
//! `squall notifier`) and posts each in its receiver's format
//! ([`squall_alerting::notify::request`]), with `Idempotency-Key: <id>` and
//! `X-Squall-Sender: HOST:PID:START` (which process sent it).
//!
//! 2xx is delivered; 429, 5xx and connection errors are retried with exponential back-off
//! and jitter ([`Backoff`], honouring `Retry-After`); another 4xx, and a 3xx (redirects
//! are never followed), is final, with at most 1 KiB of the answer read; reasons and logs
//! name a receiver by `scheme://host/…` only ([`redact_url`]: webhook secrets live in
//! paths and queries); a
//! notification older than `max_age_s` is archived instead of sent. The outcome is
//! recorded in the [`DeliveryLog`] (on the bolt's database thread, an [`Offload`])
//! *before* the tuple is acked (so before its offset is
//! committed), and an id with a recorded outcome is never sent again: a restart re-reads
//! uncommitted notifications and skips the delivered ones. With several processes, a
//! notification id is first claimed in the database for this process
//! ([`DeliveryLog::claim_delivery`], a lease of [`CLAIM_LEASE`] renewed every third of
//! it while the delivery runs): an id another live process is sending waits (its tuple
//! fails as transient and comes back), the claim of a dead process runs out and is taken
//! over, and a delivery whose claim was taken over (this process was paused past the
//! lease) is stopped. Deliveries of one key (alert ×
//! recipient) run one at a time, in order, so a "resolved" never overtakes its "firing".
//! At most `max_in_flight_per_host` requests are open to one receiver host at a time,
//! across every `deliver` task of the process, so a fan-out (one payload firing hundreds
//! of alerts) queues instead of flooding the receiver.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender};
use serde::Deserialize;
use squall_alerting::notify::{recipient_type, request, Notification};
use squall_alerting::store::{Claim, Delivery, DeliveryLog, DeliveryStatus};
use squall_topology::{
    Backoff, Bolt, BoltError, BoltWaker, ComponentError, Offload, OffloadConfig, OutputCollector,
    OutputDeclarer, TopologyContext, Tuple, Value, Worker,
};

use crate::notify::now_ms;
use crate::stores;

fn default_max_age() -> u64 {
    3600
}
fn default_timeout() -> u64 {
    10_000
}
fn default_initial() -> u64 {
    500
}
fn default_max_backoff() -> u64 {
    60_000
}
fn default_value_field() -> String {
    "value".into()
}
fn default_per_host() -> usize {
    8
}

/// One semaphore per (receiver host, limit), shared by every `deliver` task of the
/// process.
fn host_permits(host: &str, limit: usize) -> Arc<tokio::sync::Semaphore> {
    type Permits = HashMap<(String, usize), Arc<tokio::sync::Semaphore>>;
    static HOSTS: std::sync::OnceLock<std::sync::Mutex<Permits>> = std::sync::OnceLock::new();
    let mut hosts = HOSTS
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    hosts
        .entry((host.to_string(), limit))
        .or_insert_with(|| Arc::new(tokio::sync::Semaphore::new(limit.max(1))))
        .clone()
}

/// `host[:port]` of `url` (the whole URL if it does not parse: it fails on its own).
fn host_of(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(u) => match (u.host_str(), u.port_or_known_default()) {
            (Some(h), Some(p)) => format!("{h}:{p}"),
            (Some(h), None) => h.to_string(),
            _ => url.to_string(),
        },
        Err(_) => url.to_string(),
    }
}

/// `url` as it may be logged or stored: `scheme://host[:port]/…`, without the path and
/// query, where webhook secrets live (Slack's `/services/T/B/SECRET`, `?token=`).
pub fn redact_url(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(u) => match (u.host_str(), u.port()) {
            (Some(h), Some(p)) => format!("{}://{h}:{p}/…", u.scheme()),
            (Some(h), None) => format!("{}://{h}/…", u.scheme()),
            _ => format!("{}:…", u.scheme()),
        },
        Err(_) => "(not a URL)".to_string(),
    }
}

/// How long the later notifications of a key whose delivery failed wait for it to come
/// back (it may never: its partition moved to another process).
const BLOCKED_FOR: Duration = Duration::from_secs(60);

/// Most bytes of a receiver's error body read (into the stored reason, 200 characters of
/// it): a receiver answering a huge body costs no more.
const MAX_ERROR_BODY: usize = 1024;

/// Options of `deliver`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeliverConfig {
    /// The database the `deliveries` table lives in, `sqlite://PATH`.
    pub db_url: String,
    /// Notifications older than this many seconds are archived, not sent.
    #[serde(default = "default_max_age")]
    pub max_age_s: u64,
    /// Timeout of one HTTP request.
    #[serde(default = "default_timeout")]
    pub request_timeout_ms: u64,
    /// First retry delay; doubles per attempt (with jitter).
    #[serde(default = "default_initial")]
    pub initial_backoff_ms: u64,
    /// Longest retry delay.
    #[serde(default = "default_max_backoff")]
    pub max_backoff_ms: u64,
    /// The input field holding the notification JSON.
    #[serde(default = "default_value_field")]
    pub field: String,
    /// Most requests open to one receiver host at once (across the process's tasks).
    #[serde(default = "default_per_host")]
    pub max_in_flight_per_host: usize,
    /// Networks the receivers may be in besides public addresses (comma-separated CIDRs
    /// or addresses; see [`guard`]): loopback, private, link-local and the like are
    /// refused unless listed.
    #[serde(default)]
    pub allowed_networks: String,
}

pub mod guard;

struct Shared {
    config: DeliverConfig,
    retry: Backoff,
    client: reqwest::Client,
    allowed: guard::Allowed,
}

/// How long this process's claim on a notification id lasts unless renewed; a delivery
/// renews it every third of that, so another process takes over a dead one's after at
/// most this long.
pub const CLAIM_LEASE: Duration = Duration::from_secs(30);

/// A delivery's final outcome, from its async task (`u64`: the bolt's id of it; `None`:
/// stopped because another process took its claim over).
type Finished = (u64, Option<Delivery>);

/// What the deliveries table is asked, on the bolt's database thread.
enum Job {
    /// Claim notification `id` for this process (or learn its outcome is recorded).
    Claim(String),
    /// Renew the claims of the notifications being sent.
    Renew(Vec<String>),
    /// Record this outcome (the first one recorded wins).
    Record(Delivery),
}

/// The database thread's answers.
enum Answer {
    /// To `Claim`.
    Claim(Claim),
    /// To `Renew`: the ids whose claim another process holds now (or that have an
    /// outcome already).
    Renewed(Vec<String>),
    /// To `Record`.
    Recorded,
}

/// The deliveries table on its thread ([`Offload`]).
struct Ledger {
    log: Arc<dyn DeliveryLog>,
    /// This process, as claims name it.
    owner: String,
}

impl Ledger {
    fn claim(&self, id: &str) -> Result<Claim, squall_alerting::store::StoreError> {
        let now = now_ms();
        self.log
            .claim_delivery(id, &self.owner, now, now + CLAIM_LEASE.as_millis() as i64)
    }
}

impl Worker for Ledger {
    type Job = Job;
    type Output = Result<Answer, String>;

    fn run(&mut self, jobs: Vec<Job>) -> Vec<Result<Answer, String>> {
        jobs.into_iter()
            .map(|job| {
                match job {
                    Job::Claim(id) => self.claim(&id).map(Answer::Claim),
                    Job::Renew(ids) => (|| {
                        let mut lost = Vec::new();
                        for id in ids {
                            if self.claim(&id)? != Claim::Mine {
                                lost.push(id);
                            }
                        }
                        Ok(Answer::Renewed(lost))
                    })(),
                    Job::Record(d) => self.log.record_delivery(&d).map(|()| Answer::Recorded),
                }
                .map_err(|e| format!("deliveries table: {e}"))
            })
            .collect()
    }
}

/// What the bolt holds while the database thread works.
enum Waiting {
    /// The claim of delivery `u64` (the notification to send if it is ours).
    Claim(u64, Box<Notification>),
    /// The recording of delivery `u64`'s outcome.
    Record(u64),
}

/// The `deliver` bolt (see the module docs). A sink: no output streams.
#[allow(missing_debug_implementations)]
pub struct Deliver {
    config: DeliverConfig,
    shared: Option<Arc<Shared>>,
    ledger: Option<Offload<Ledger, Waiting>>,
    runtime: Option<tokio::runtime::Handle>,
    waker: Option<BoltWaker>,
    done_tx: Sender<Finished>,
    done: Receiver<Finished>,
    held: HashMap<u64, (Tuple, String)>,
    /// Deliveries being sent: bolt id -> (notification id, its task).
    sending: HashMap<u64, (String, tokio::task::AbortHandle)>,
    /// When the claims of `sending` are renewed next.
    next_renew: std::time::Instant,
    /// Per key: deliveries waiting for the one in flight.
    queues: HashMap<String, VecDeque<(u64, Notification)>>,
    /// Per key whose delivery failed: the failed notification's id, and when. Others of
    /// the key fail until it comes back (at most [`BLOCKED_FOR`]).
    blocked: HashMap<String, (String, std::time::Instant)>,
    next: u64,
}

impl Deliver {
    /// A deliver bolt with `config` (the database opens in `prepare`).
    pub fn new(config: DeliverConfig) -> Result<Self, String> {
        stores::check_url(&config.db_url)?;
        if config.initial_backoff_ms == 0 || config.max_backoff_ms < config.initial_backoff_ms {
            return Err("`initial_backoff_ms` must be > 0 and <= `max_backoff_ms`".into());
        }
        if config.max_in_flight_per_host == 0 {
            return Err("`max_in_flight_per_host` must be at least 1".into());
        }
        guard::parse_allowed(&config.allowed_networks)?;
        let (done_tx, done) = crossbeam_channel::unbounded();
        Ok(Deliver {
            config,
            shared: None,
            ledger: None,
            runtime: None,
            waker: None,
            done_tx,
            done,
            held: HashMap::new(),
            sending: HashMap::new(),
            next_renew: std::time::Instant::now(),
            queues: HashMap::new(),
            blocked: HashMap::new(),
            next: 0,
        })
    }

    /// Starts delivery `id`: first its claim (or the outcome recorded earlier).
    fn start(&mut self, id: u64, n: Notification, out: &mut OutputCollector) {
        let Some(ledger) = &mut self.ledger else {
            return;
        };
        let claim = Job::Claim(n.id.clone());
        if let Err(e) = ledger.submit(claim, Waiting::Claim(id, Box::new(n)), out) {
            self.finish(id, Err(format!("deliver: {e}")), out);
        }
    }

    /// Sends `n` (delivery `id`) on the runtime; its outcome comes back through `done`.
    fn send(&mut self, id: u64, n: Notification) {
        let (Some(shared), Some(rt)) = (self.shared.clone(), &self.runtime) else {
            return;
        };
        let done = self.done_tx.clone();
        let waker = self.waker.clone();
        let nid = n.id.clone();
        let task = rt.spawn(async move { deliver(&shared, n).await });
        self.sending.insert(id, (nid.clone(), task.abort_handle()));
        rt.spawn(async move {
            // A panic while delivering (a bug) is caught here: counted, logged, and the
            // notification recorded as failed with it, instead of a key stuck for good.
            let outcome = match task.await {
                Ok(d) => Some(d),
                // Stopped: another process holds its claim now.
                Err(e) if e.is_cancelled() => None,
                Err(e) => {
                    metrics::counter!("squall_panics_total", "component" => "deliver").increment(1);
                    tracing::error!(id = %nid, error = %e, "the delivery task panicked");
                    Some(Delivery {
                        id: nid,
                        status: DeliveryStatus::Failed,
                        attempts: 0,
                        code: None,
                        reason: format!("the delivery task panicked: {e}"),
                        at_ms: now_ms(),
                    })
                }
            };
            let _ = done.send((id, outcome));
            if let Some(w) = waker {
                w.wake();
            }
        });
    }

    /// Renews the claims of the deliveries being sent, every third of the lease.
    fn renew(&mut self) {
        let now = std::time::Instant::now();
        if now < self.next_renew {
            return;
        }
        self.next_renew = now + CLAIM_LEASE / 3;
        let (Some(ledger), false) = (&self.ledger, self.sending.is_empty()) else {
            return;
        };
        let ids: Vec<String> = self.sending.values().map(|(nid, _)| nid.clone()).collect();
        // The answer comes back through `drain`; if the thread is gone, `lost` says so.
        let _ = ledger.send(Job::Renew(ids));
    }

    /// Records delivery `id`'s outcome, then finishes it.
    fn record(&mut self, id: u64, d: Delivery, out: &mut OutputCollector) {
        let Some(ledger) = &mut self.ledger else {
            return;
        };
        if let Err(e) = ledger.submit(Job::Record(d), Waiting::Record(id), out) {
            self.finish(id, Err(format!("deliver: {e}")), out);
        }
    }

    /// Acks (or fails) delivery `id`'s tuple and starts the next one of its key.
    fn finish(&mut self, id: u64, result: Result<(), String>, out: &mut OutputCollector) {
        let Some((t, key)) = self.held.remove(&id) else {
            return;
        };
        match result {
            Ok(()) => out.ack(&t),
            // Not done (the deliveries table failed, or another process is delivering it):
            // try again later. What waits behind it for the same alert and recipient
            // fails too, so the spout sends them again after it, in order: a "resolved"
            // never overtakes its "firing".
            Err(e) => {
                out.fail_transient(&t, e);
                // Until the failed one comes back, later notifications of its key that
                // arrive now (already in flight from the spout, or through a bolt before
                // this one) fail too: the spout sends them again after it.
                if let Some(head) = self.queues.get(&key).and_then(|q| q.front()) {
                    self.blocked
                        .insert(key.clone(), (head.1.id.clone(), std::time::Instant::now()));
                }
                if let Some(q) = self.queues.remove(&key) {
                    for (behind, _) in q.into_iter().skip(1) {
                        if let Some((t, _)) = self.held.remove(&behind) {
                            out.fail_transient(
                                &t,
                                "deliver: waits for an earlier notification of its alert",
                            );
                        }
                    }
                }
                return;
            }
        }
        let next = match self.queues.get_mut(&key) {
            Some(q) => {
                q.pop_front();
                q.front().cloned()
            }
            None => None,
        };
        match next {
            Some((id, n)) => self.start(id, n, out),
            None => {
                self.queues.remove(&key);
            }
        }
    }
}

enum Attempt {
    Done(DeliveryStatus, Option<u16>, String),
    Retry(Option<u16>, String, Option<Duration>),
}

async fn attempt(shared: &Shared, n: &Notification) -> Attempt {
    let (url, body) = request(n);
    if let Some(why) = reqwest::Url::parse(url)
        .ok()
        .and_then(|u| guard::check_literal(&u, &shared.allowed).err())
    {
        return Attempt::Done(DeliveryStatus::Failed, None, format!("refused: {why}"));
    }
    let permits = host_permits(&host_of(url), shared.config.max_in_flight_per_host);
    let Ok(_permit) = permits.acquire().await else {
        return Attempt::Retry(None, "the host's request limit is closed".into(), None);
    };
    let sent = shared
        .client
        .post(url)
        .header("Idempotency-Key", &n.id)
        // Which process sent it (HOST:PID:START), for an operator reading a repeat.
        .header("X-Squall-Sender", crate::ownership::process_owner())
        .json(&body)
        .send()
        .await;
    match sent {
        // A name that resolved to addresses the notifier may not call: final.
        Err(e) if guard::refused(&e).is_some() => Attempt::Done(
            DeliveryStatus::Failed,
            None,
            format!("refused: {}", guard::refused(&e).unwrap_or_default()),
        ),
        // reqwest's message names the URL: only its scheme and host go into the reason.
        Err(e) => {
            // The deepest cause says what happened (connection refused, timed out, ...).
            let mut cause: &dyn std::error::Error = &e;
            while let Some(next) = cause.source() {
                cause = next;
            }
            let cause = cause.to_string();
            let e = e.without_url();
            let why = if cause == e.to_string() {
                cause
            } else {
                format!("{e}: {cause}")
            };
            Attempt::Retry(
                None,
                format!("request to {} failed: {why}", redact_url(url)),
                None,
            )
        }
        Ok(mut resp) => {
            let code = resp.status();
            let retry_after = resp
                .headers()
                .get(reqwest::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok())
                .map(Duration::from_secs);
            if code.is_success() {
                Attempt::Done(DeliveryStatus::Delivered, Some(code.as_u16()), "ok".into())
            } else if code.as_u16() == 429 || code.is_server_error() {
                Attempt::Retry(Some(code.as_u16()), format!("HTTP {code}"), retry_after)
            } else if code.is_redirection() {
                let to = resp
                    .headers()
                    .get(reqwest::header::LOCATION)
                    .and_then(|v| v.to_str().ok())
                    .map_or("nowhere".to_string(), redact_url);
                Attempt::Done(
                    DeliveryStatus::Failed,
                    Some(code.as_u16()),
                    format!("HTTP {code} to {to}: redirects are not followed"),
                )
            } else {
                let mut bytes = Vec::new();
                while bytes.len() < MAX_ERROR_BODY {
                    match resp.chunk().await {
                        Ok(Some(c)) => {
                            let room = MAX_ERROR_BODY - bytes.len();
                            bytes.extend_from_slice(&c[..c.len().min(room)]);
                        }
                        _ => break,
                    }
                }
                drop(resp);
                let text: String = String::from_utf8_lossy(&bytes).chars().take(200).collect();
                Attempt::Done(
                    DeliveryStatus::Failed,
                    Some(code.as_u16()),
                    format!("HTTP {code}: {text}"),
                )
            }
        }
    }
}

/// Delivers `n` to its final outcome (not recorded yet).
async fn deliver(shared: &Arc<Shared>, n: Notification) -> Delivery {
    let kind = recipient_type(&n.recipient);
    let max_age = Duration::from_secs(shared.config.max_age_s);
    let age = || Duration::from_millis((now_ms() - n.created_at_ms).max(0) as u64);
    let mut attempts = 0u32;
    let mut last: (Option<u16>, String) = (None, String::new());
    let (status, code, reason) = loop {
        if age() > max_age {
            let why = if attempts == 0 {
                format!("older than max_age_s ({} s); not sent", max_age.as_secs())
            } else {
                format!(
                    "still undelivered after max_age_s ({} s), {attempts} attempts; last error: {}",
                    max_age.as_secs(),
                    last.1
                )
            };
            break (DeliveryStatus::Archived, last.0, why);
        }
        attempts += 1;
        match attempt(shared, &n).await {
            Attempt::Done(status, code, reason) => break (status, code, reason),
            Attempt::Retry(code, reason, retry_after) => {
                tracing::warn!(id = %n.id, kind, attempt = attempts, %reason, "delivery failed; retrying");
                metrics::counter!("squall_notification_retries_total", "type" => kind).increment(1);
                last = (code, reason);
                let delay = shared.retry.delay_with_hint(attempts, retry_after);
                // Wake up no later than the moment the notification expires.
                let left = max_age.saturating_sub(age()) + Duration::from_millis(1);
                tokio::time::sleep(delay.min(left)).await;
            }
        }
    };
    let outcome = status.as_str();
    metrics::counter!("squall_notifications_total", "type" => kind, "outcome" => outcome)
        .increment(1);
    if status != DeliveryStatus::Delivered {
        tracing::warn!(id = %n.id, kind, outcome, %reason, "notification not delivered");
    }
    Delivery {
        id: n.id.clone(),
        status,
        attempts,
        code,
        reason,
        at_ms: now_ms(),
    }
}

impl Bolt for Deliver {
    fn declare_outputs(&self, _d: &mut OutputDeclarer) {}

    fn prepare(&mut self, ctx: &TopologyContext) -> Result<(), ComponentError> {
        let url = &self.config.db_url;
        let log = stores::open(url)
            .map_err(|e| ComponentError::msg(format!("cannot open {url}: {e}")))?
            .deliveries;
        let config = OffloadConfig::new(format!("deliver-db-{}", ctx.task_index()));
        let owner = crate::ownership::process_owner().to_string();
        self.ledger = Some(Offload::start(config, ctx.waker(), Ledger { log, owner })?);
        let allowed: guard::Allowed = Arc::new(
            guard::parse_allowed(&self.config.allowed_networks).map_err(ComponentError::msg)?,
        );
        let client = reqwest::Client::builder()
            .timeout(Duration::from_millis(self.config.request_timeout_ms))
            // A redirect is an answer (failed, with its status), never followed: a
            // receiver must not steer squall's requests elsewhere.
            .redirect(reqwest::redirect::Policy::none())
            // Only the addresses the guard allows, checked when a name resolves.
            .dns_resolver(Arc::new(guard::GuardedResolver(allowed.clone())))
            .user_agent(concat!("squall-notifier/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| ComponentError::msg(format!("cannot build the HTTP client: {e}")))?;
        self.runtime = Some(
            tokio::runtime::Handle::try_current()
                .map_err(|e| ComponentError::msg(format!("deliver needs a tokio runtime: {e}")))?,
        );
        self.shared = Some(Arc::new(Shared {
            retry: Backoff::exponential(
                Duration::from_millis(self.config.initial_backoff_ms),
                Duration::from_millis(self.config.max_backoff_ms),
            )
            .with_jitter(),
            config: self.config.clone(),
            client,
            allowed,
        }));
        self.waker = ctx.waker();
        Ok(())
    }

    fn execute(&mut self, t: Tuple, out: &mut OutputCollector) -> Result<(), BoltError> {
        self.wake(out);
        if t.is_tick() {
            self.renew();
            return Ok(());
        }
        let raw = match t.get_by_field(&self.config.field) {
            Some(Value::Bytes(b)) => serde_json::from_slice::<Notification>(b),
            Some(Value::Str(s)) => serde_json::from_str::<Notification>(s),
            _ => {
                return Err(BoltError::msg(format!(
                    "deliver: input has no `{}` field",
                    self.config.field
                )))
            }
        };
        let n = match raw {
            Ok(n) => n,
            Err(e) => {
                // Bad input must not block the partition: count it, log it, move on.
                metrics::counter!("squall_notifications_total", "type" => "unknown", "outcome" => "malformed")
                    .increment(1);
                tracing::error!(error = %e, "deliver: not a notification; skipped");
                return Ok(());
            }
        };
        let key = n.order_key();
        if let Some((head, since)) = self.blocked.get(&key) {
            if since.elapsed() >= BLOCKED_FOR || *head == n.id {
                self.blocked.remove(&key);
            } else {
                return Err(BoltError::transient(
                    "deliver: waits for an earlier notification of its alert",
                ));
            }
        }
        let id = self.next;
        self.next += 1;
        out.hold();
        self.held.insert(id, (t, key.clone()));
        let queue = self.queues.entry(key).or_default();
        queue.push_back((id, n.clone()));
        if queue.len() == 1 {
            self.start(id, n, out);
        }
        Ok(())
    }

    fn wake(&mut self, out: &mut OutputCollector) {
        loop {
            let mut progressed = false;
            while let Ok((id, outcome)) = self.done.try_recv() {
                progressed = true;
                self.sending.remove(&id);
                match outcome {
                    Some(d) => self.record(id, d, out),
                    None => self.finish(
                        id,
                        Err("deliver: another process took the notification over".into()),
                        out,
                    ),
                }
            }
            let (answers, lost) = match &mut self.ledger {
                Some(ledger) => (ledger.drain(out), ledger.lost(out)),
                None => (Vec::new(), Vec::new()),
            };
            for waiting in lost {
                progressed = true;
                let (Waiting::Claim(id, _) | Waiting::Record(id)) = waiting;
                self.finish(
                    id,
                    Err("deliver: the database thread panicked on it, or stopped".into()),
                    out,
                );
            }
            for (waiting, answer) in answers {
                progressed = true;
                match (waiting, answer) {
                    (Some(Waiting::Claim(id, _)), Ok(Answer::Claim(Claim::Done))) => {
                        metrics::counter!("squall_notifications_skipped_total", "reason" => "already_final")
                            .increment(1);
                        self.finish(id, Ok(()), out);
                    }
                    (Some(Waiting::Claim(id, n)), Ok(Answer::Claim(Claim::Mine))) => {
                        self.send(id, *n)
                    }
                    (
                        Some(Waiting::Claim(id, _)),
                        Ok(Answer::Claim(Claim::Held { owner, until_ms })),
                    ) => {
                        metrics::counter!("squall_notifications_skipped_total", "reason" => "claimed_elsewhere")
                            .increment(1);
                        self.finish(
                            id,
                            Err(format!(
                                "deliver: {owner} is delivering it (claimed until {until_ms} ms)"
                            )),
                            out,
                        );
                    }
                    (Some(Waiting::Record(id)), Ok(_)) => self.finish(id, Ok(()), out),
                    (Some(Waiting::Claim(id, _) | Waiting::Record(id)), Err(e)) => {
                        self.finish(id, Err(e), out)
                    }
                    (Some(Waiting::Claim(id, _)), Ok(_)) => self.finish(
                        id,
                        Err("deliver: an answer to another question".into()),
                        out,
                    ),
                    (None, Ok(Answer::Renewed(lost))) => {
                        for (nid, task) in self.sending.values() {
                            if lost.contains(nid) {
                                tracing::warn!(id = %nid, "another process took the notification over; stopping here");
                                task.abort();
                            }
                        }
                    }
                    (None, Err(e)) => {
                        tracing::warn!(error = %e, "deliver: claims not renewed; trying again")
                    }
                    (None, Ok(_)) => {}
                }
            }
            if !progressed {
                return;
            }
        }
    }
}

//! Notifications: the `notify` bolt turns each alert event into one notification per
//! recipient, and the `deliver` bolt (the notifier's) sends them.
//!
//! `notify` emits `key` (the alert and recipient, so a Kafka partition keeps each alert's
//! notifications in order), `value` (the [`Notification`] as JSON) and `id`.
//!
//! `deliver` reads those notifications (from the `kafka` spout in `squall notifier`) and
//! posts the receiver's format: the Alertmanager webhook body (version 4), a Slack
//! `{"text"}`, or a PagerDuty Events v2 event, each with `Idempotency-Key: <id>`.
//! 2xx is delivered; 429, 5xx and connection errors are retried with exponential back-off
//! and jitter (honouring `Retry-After`); another 4xx is final; a notification older than
//! `max_age_s` is archived instead of sent. The outcome is recorded in the `deliveries`
//! table *before* the tuple is acked (so before its offset is committed), and an id with a
//! recorded outcome is never sent again: a restart re-reads uncommitted notifications and
//! skips the delivered ones. Deliveries of one key (alert × recipient) run one at a time,
//! in order, so a "resolved" never overtakes its "firing".

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::hash::Hasher;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crossbeam_channel::{Receiver, Sender};
use serde::{Deserialize, Serialize};
use serde_json::json;
use squall_topology::{
    values, Bolt, BoltError, BoltWaker, ComponentError, Fields, OutputCollector, OutputDeclarer,
    TopologyContext, Tuple, Value,
};

use super::alerts::{series_key, AlertStore, Delivery, DeliveryStatus};
use super::configs::{Kind, Recipient};
use super::threshold::{AlertEvent, EventKind};

/// One notification: an alert event for one recipient.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Notification {
    /// Stable id (the event id and the recipient's index): the `Idempotency-Key`.
    pub id: String,
    /// When `notify` produced it (epoch ms): `max_age_s` counts from here.
    pub created_at_ms: i64,
    /// Where it goes.
    pub recipient: Recipient,
    /// What happened.
    pub event: AlertEvent,
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

fn rfc3339(t: f64) -> String {
    let at = UNIX_EPOCH + Duration::from_secs_f64(t.max(0.0));
    humantime::format_rfc3339_millis(at).to_string()
}

fn number(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v}")
    }
}

/// The labels of an event, Alertmanager style.
pub fn labels(e: &AlertEvent) -> BTreeMap<String, String> {
    let mut l = BTreeMap::new();
    for (k, v) in &e.series {
        l.insert(k.clone(), v.clone());
    }
    l.insert("alertname".into(), e.name.clone());
    l.insert("account".into(), e.account.clone());
    l.insert("device".into(), e.hostname.clone());
    l.insert("device_id".into(), e.device.to_string());
    if let Some(m) = &e.metric {
        l.insert("metric".into(), m.clone());
    }
    l
}

/// A stable 16-hex-digit fingerprint of the alert (config, device, series): the same for
/// its firing and resolved notifications (Alertmanager `fingerprint`, PagerDuty
/// `dedup_key`).
pub fn fingerprint(e: &AlertEvent) -> String {
    let mut h = twox_hash::XxHash64::with_seed(0);
    h.write_i64(e.config_id);
    h.write_i64(e.device);
    h.write(series_key(&e.series).as_bytes());
    format!("{:016x}", h.finish())
}

/// A one-line summary for people.
pub fn summary(e: &AlertEvent) -> String {
    let series = if e.series.is_empty() {
        String::new()
    } else {
        format!(" [{}]", series_key(&e.series))
    };
    let what = match e.rule {
        Kind::NoData => format!("no data from {} for {} s", e.hostname, e.wait_s),
        Kind::Threshold => format!(
            "{}{} = {} on {} ({} {})",
            e.metric.as_deref().unwrap_or("?"),
            series,
            e.value.map(number).unwrap_or_default(),
            e.hostname,
            e.comparison
                .map(|c| format!("{c:?}").to_lowercase())
                .unwrap_or_default(),
            e.threshold.map(number).unwrap_or_default()
        ),
    };
    match e.kind {
        EventKind::Fire => format!("{}: {what}", e.name),
        EventKind::Repeat => format!("{} (still firing): {what}", e.name),
        EventKind::Clear if e.rule == Kind::NoData => {
            format!("{} resolved: {} is sending data again", e.name, e.hostname)
        }
        EventKind::Clear => format!("{} resolved: {what}", e.name),
    }
}

/// The URL and JSON body a notification is posted as.
pub fn request(n: &Notification) -> (&str, serde_json::Value) {
    let e = &n.event;
    match &n.recipient {
        Recipient::Webhook { url } => {
            let labels = labels(e);
            let mut annotations = BTreeMap::new();
            annotations.insert("summary".to_string(), summary(e));
            if let Some(v) = e.value {
                annotations.insert("value".into(), number(v));
            }
            if let (Some(c), Some(t)) = (e.comparison, e.threshold) {
                annotations.insert(
                    "threshold".into(),
                    format!("{} {}", format!("{c:?}").to_lowercase(), number(t)),
                );
            }
            let ends_at = match e.kind {
                EventKind::Clear => rfc3339(e.at),
                _ => "0001-01-01T00:00:00Z".to_string(),
            };
            let alert = json!({
                "status": e.status(),
                "labels": labels,
                "annotations": annotations,
                "startsAt": rfc3339(e.fired_at),
                "endsAt": ends_at,
                "generatorURL": "",
                "fingerprint": fingerprint(e),
            });
            (
                url,
                json!({
                    "version": "4",
                    "groupKey": format!("{{}}:{{alertname=\"{}\"}}", e.name),
                    "truncatedAlerts": 0,
                    "status": e.status(),
                    "receiver": "squall",
                    "groupLabels": {"alertname": e.name},
                    "commonLabels": labels,
                    "commonAnnotations": annotations,
                    "externalURL": "",
                    "alerts": [alert],
                }),
            )
        }
        Recipient::Slack { url } => {
            let tag = match e.kind {
                EventKind::Clear => "RESOLVED",
                _ => "FIRING",
            };
            (url, json!({ "text": format!("[{tag}] {}", summary(e)) }))
        }
        Recipient::Pagerduty { url, routing_key } => {
            let action = match e.kind {
                EventKind::Clear => "resolve",
                _ => "trigger",
            };
            (
                url,
                json!({
                    "routing_key": routing_key,
                    "event_action": action,
                    "dedup_key": fingerprint(e),
                    "payload": {
                        "summary": summary(e),
                        "source": e.hostname,
                        "severity": "critical",
                        "timestamp": rfc3339(e.at),
                        "custom_details": {
                            "account": e.account,
                            "device_id": e.device,
                            "metric": e.metric,
                            "series": e.series,
                            "value": e.value,
                            "threshold": e.threshold,
                        },
                    },
                }),
            )
        }
    }
}

fn recipient_type(r: &Recipient) -> &'static str {
    match r {
        Recipient::Webhook { .. } => "webhook",
        Recipient::Slack { .. } => "slack",
        Recipient::Pagerduty { .. } => "pagerduty",
    }
}

/// Options of `notify` (none).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotifyConfig {}

/// The `notify` bolt (see the module docs). Input: `threshold`'s `event` field.
#[derive(Default)]
pub struct Notify;

fn event_of(t: &Tuple) -> Result<AlertEvent, BoltError> {
    let parsed = match t.get_by_field("event") {
        Some(Value::Any(a)) => match a.downcast_ref::<serde_json::Value>() {
            Some(v) => AlertEvent::deserialize(v).map_err(|e| e.to_string()),
            None => Err("`event` holds no JSON".to_string()),
        },
        Some(Value::Str(s)) => serde_json::from_str(s).map_err(|e| e.to_string()),
        Some(Value::Bytes(b)) => serde_json::from_slice(b).map_err(|e| e.to_string()),
        _ => Err(format!("input has no `event` (fields: {})", t.fields())),
    };
    parsed.map_err(|e| BoltError::msg(format!("notify: {e}")))
}

impl Bolt for Notify {
    fn declare_outputs(&self, d: &mut OutputDeclarer) {
        d.declare(Fields::new(["key", "value", "id"]));
    }

    fn execute(&mut self, t: Tuple, out: &mut OutputCollector) -> Result<(), BoltError> {
        if t.is_tick() {
            return Ok(());
        }
        let event = event_of(&t)?;
        if let Some(at) = t.get_by_field("received_at").and_then(Value::as_f64) {
            super::record_stage("notified", at);
        }
        let created_at_ms = now_ms();
        for (i, recipient) in event.recipients.iter().enumerate() {
            let n = Notification {
                id: format!("{}-r{i}", event.id),
                created_at_ms,
                recipient: recipient.clone(),
                event: event.clone(),
            };
            let key = format!("{}-r{i}", fingerprint(&event));
            let body = serde_json::to_vec(&n).expect("notifications serialise");
            metrics::counter!("squall_notifications_produced_total", "type" => recipient_type(recipient))
                .increment(1);
            out.emit(values![key, body, n.id]);
        }
        Ok(())
    }
}

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
}

struct Shared {
    config: DeliverConfig,
    store: Arc<AlertStore>,
    client: reqwest::Client,
}

type Finished = (u64, Result<(), String>);

/// The `deliver` bolt (see the module docs). A sink: no output streams.
pub struct Deliver {
    config: DeliverConfig,
    shared: Option<Arc<Shared>>,
    runtime: Option<tokio::runtime::Handle>,
    waker: Option<BoltWaker>,
    done_tx: Sender<Finished>,
    done: Receiver<Finished>,
    held: HashMap<u64, (Tuple, String)>,
    /// Per key: deliveries waiting for the one in flight.
    queues: HashMap<String, VecDeque<(u64, Notification)>>,
    next: u64,
}

impl Deliver {
    /// A deliver bolt with `config` (the database opens in `prepare`).
    pub fn new(config: DeliverConfig) -> Result<Self, String> {
        super::require_sqlite_url(&config.db_url)?;
        if config.initial_backoff_ms == 0 || config.max_backoff_ms < config.initial_backoff_ms {
            return Err("`initial_backoff_ms` must be > 0 and <= `max_backoff_ms`".into());
        }
        let (done_tx, done) = crossbeam_channel::unbounded();
        Ok(Deliver {
            config,
            shared: None,
            runtime: None,
            waker: None,
            done_tx,
            done,
            held: HashMap::new(),
            queues: HashMap::new(),
            next: 0,
        })
    }

    fn start(&self, id: u64, n: Notification) {
        let (Some(shared), Some(rt)) = (self.shared.clone(), &self.runtime) else {
            return;
        };
        let done = self.done_tx.clone();
        let waker = self.waker.clone();
        rt.spawn(async move {
            let result = deliver(&shared, n).await;
            let _ = done.send((id, result));
            if let Some(w) = waker {
                w.wake();
            }
        });
    }
}

enum Attempt {
    Done(DeliveryStatus, Option<u16>, String),
    Retry(Option<u16>, String, Option<Duration>),
}

async fn attempt(shared: &Shared, n: &Notification) -> Attempt {
    let (url, body) = request(n);
    let sent = shared
        .client
        .post(url)
        .header("Idempotency-Key", &n.id)
        .json(&body)
        .send()
        .await;
    match sent {
        Err(e) => Attempt::Retry(None, format!("request failed: {e}"), None),
        Ok(resp) => {
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
            } else {
                let text = resp.text().await.unwrap_or_default();
                let text: String = text.chars().take(200).collect();
                Attempt::Done(
                    DeliveryStatus::Failed,
                    Some(code.as_u16()),
                    format!("HTTP {code}: {text}"),
                )
            }
        }
    }
}

/// Delivers `n` to its final outcome and records it.
async fn deliver(shared: &Arc<Shared>, n: Notification) -> Result<(), String> {
    let kind = recipient_type(&n.recipient);
    let store = shared.store.clone();
    let id = n.id.clone();
    let recorded = tokio::task::spawn_blocking(move || store.delivery(&id))
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| format!("deliveries table: {e}"))?;
    if recorded.is_some() {
        metrics::counter!("squall_notifications_skipped_total", "reason" => "already_final")
            .increment(1);
        return Ok(());
    }
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
                let base = shared
                    .config
                    .initial_backoff_ms
                    .saturating_mul(1u64 << (attempts - 1).min(20))
                    .min(shared.config.max_backoff_ms);
                // Full jitter over the upper half: spreads retries of many notifications.
                let jittered = rand::Rng::gen_range(&mut rand::thread_rng(), base / 2..=base);
                let mut delay = Duration::from_millis(jittered);
                if let Some(ra) = retry_after {
                    delay = delay
                        .max(ra)
                        .min(Duration::from_millis(shared.config.max_backoff_ms));
                }
                // Wake up no later than the moment the notification expires.
                let left = max_age.saturating_sub(age()) + Duration::from_millis(1);
                tokio::time::sleep(delay.min(left)).await;
            }
        }
    };
    let outcome = match status {
        DeliveryStatus::Delivered => "delivered",
        DeliveryStatus::Failed => "failed",
        DeliveryStatus::Archived => "archived",
    };
    metrics::counter!("squall_notifications_total", "type" => kind, "outcome" => outcome)
        .increment(1);
    if status != DeliveryStatus::Delivered {
        tracing::warn!(id = %n.id, kind, outcome, %reason, "notification not delivered");
    }
    let d = Delivery {
        id: n.id.clone(),
        status,
        attempts,
        code,
        reason,
        at_ms: now_ms(),
    };
    let store = shared.store.clone();
    tokio::task::spawn_blocking(move || store.record_delivery(&d))
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| format!("deliveries table: {e}"))
}

impl Bolt for Deliver {
    fn declare_outputs(&self, _d: &mut OutputDeclarer) {}

    fn prepare(&mut self, ctx: &TopologyContext) -> Result<(), ComponentError> {
        let url = &self.config.db_url;
        let store = AlertStore::open_url(url)
            .map_err(|e| ComponentError::msg(format!("cannot open {url}: {e}")))?;
        let client = reqwest::Client::builder()
            .timeout(Duration::from_millis(self.config.request_timeout_ms))
            .user_agent(concat!("squall-notifier/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| ComponentError::msg(format!("cannot build the HTTP client: {e}")))?;
        self.runtime = Some(
            tokio::runtime::Handle::try_current()
                .map_err(|e| ComponentError::msg(format!("deliver needs a tokio runtime: {e}")))?,
        );
        self.shared = Some(Arc::new(Shared {
            config: self.config.clone(),
            store: Arc::new(store),
            client,
        }));
        self.waker = ctx.waker();
        Ok(())
    }

    fn execute(&mut self, t: Tuple, out: &mut OutputCollector) -> Result<(), BoltError> {
        self.wake(out);
        if t.is_tick() {
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
        let id = self.next;
        self.next += 1;
        let key = format!("{}-{}", fingerprint(&n.event), n.recipient_url());
        out.hold();
        self.held.insert(id, (t, key.clone()));
        let queue = self.queues.entry(key).or_default();
        queue.push_back((id, n.clone()));
        if queue.len() == 1 {
            self.start(id, n);
        }
        Ok(())
    }

    fn wake(&mut self, out: &mut OutputCollector) {
        while let Ok((id, result)) = self.done.try_recv() {
            let Some((t, key)) = self.held.remove(&id) else {
                continue;
            };
            match result {
                Ok(()) => out.ack(&t),
                Err(e) => out.fail(&t, e),
            }
            let next = match self.queues.get_mut(&key) {
                Some(q) => {
                    q.pop_front();
                    q.front().cloned()
                }
                None => None,
            };
            match next {
                Some((id, n)) => self.start(id, n),
                None => {
                    self.queues.remove(&key);
                }
            }
        }
    }
}

impl Notification {
    fn recipient_url(&self) -> &str {
        match &self.recipient {
            Recipient::Webhook { url } | Recipient::Slack { url } => url,
            Recipient::Pagerduty { url, .. } => url,
        }
    }
}

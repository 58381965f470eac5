//! The intake service: where agents post their payloads.
//!
//! - `POST /intake/?agent_key=KEY` (v2 agent): zlib-compressed JSON (`Content-Encoding:
//!   deflate`), or `gzip`, or uncompressed; a `Content-MD5` header, when present, must be
//!   the hex MD5 of the body as sent.
//! - `POST /postback/` (v1 agent): form fields `payload` (JSON) and `hash` (hex MD5 of the
//!   payload string).
//! - The account is the `<account>` of a Host header `<account>.agent.<domain>`, else the
//!   `X-Squall-Account` header, else `?account=`.
//! - A payload is validated (size of the body and of what it decompresses to, cut off as
//!   soon as it passes the limit; a JSON object; an agent key in the query or the body;
//!   checksums), stamped with its receive time and produced to the payloads topic as an
//!   envelope keyed by agent key. The answer is **202 only after the broker acknowledged the
//!   write**; when it cannot take it, **503 with `Retry-After`**, so the agent retries and
//!   nothing accepted is lost.
//! - Errors are JSON `{"error": "...", "reason": "<code>"}` (see [`Reason`]); every outcome is
//!   counted (`squall_intake_requests_total{outcome}`), with body size and latency
//!   histograms.
//! - Decoding and checking a body is [`squall_alerting::wire`]'s (no HTTP there, so it is
//!   fuzzed on its own: `fuzz/`).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::body::{Body, Bytes};
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use serde::Deserialize;
use serde_json::value::RawValue;
pub use squall_alerting::envelope::{AgentFormat, Envelope};
use squall_alerting::wire;
use squall_connectors::kafka::{LogProducer, OutRecord};
use tokio::sync::oneshot;

use crate::serve::ServeOptions;

/// Intake settings (their defaults and the `[intake]` section of `squall.toml` are the
/// binary's config module's).
#[derive(Clone, Debug)]
pub struct IntakeConfig {
    /// Kafka bootstrap servers, or `journal:DIR` (the durable embedded broker).
    pub brokers: String,
    /// The topic envelopes are produced to.
    pub topic: String,
    /// Hosts `<account>.agent.<domain>` name the account.
    pub domain: String,
    /// Largest accepted request body, in bytes.
    pub max_body_bytes: usize,
    /// Largest accepted decompressed payload, in bytes.
    pub max_payload_bytes: usize,
    /// How long the broker may take to acknowledge a payload before the agent gets 503.
    pub produce_timeout_ms: u64,
    /// Most metric points in one payload (413 `too_many_points` beyond).
    pub max_points: usize,
    /// Longest metric name or label value, in bytes (400 `name_too_long` beyond).
    pub max_name_bytes: usize,
    /// How long a client may take to send its whole body once its headers arrived
    /// (408 `body_timeout` beyond): a half-sent request does not hold a connection.
    pub body_timeout_ms: u64,
    /// Payloads per second one agent key may send (bursts of twice that); 0: no limit.
    /// Beyond, 429 `rate_limited` with `Retry-After`.
    pub rate_limit_per_key: u32,
    /// Payloads per second one account may send, all its keys (bursts of twice that);
    /// 0: no limit.
    pub rate_limit_per_account: u32,
    /// librdkafka settings passed through to the producer.
    pub kafka_options: Vec<(String, String)>,
}

/// Why a payload was refused: the `reason` code of the error body.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reason {
    /// 400: the body is not a JSON object (or not valid JSON).
    Malformed,
    /// 400: the compressed body does not inflate.
    BadCompression,
    /// 400: `Content-MD5` or the v1 `hash` does not match.
    ChecksumMismatch,
    /// 400: no agent key in the query or the body.
    MissingAgentKey,
    /// 400: no account in the Host, the `X-Squall-Account` header or `?account=`.
    MissingAccount,
    /// 413: the body is larger than `max_body_bytes`.
    TooLarge,
    /// 413: the body inflates past `max_payload_bytes` (a decompression bomb).
    DecompressedTooLarge,
    /// 415: a `Content-Encoding` other than deflate, gzip or identity.
    UnsupportedEncoding,
    /// 413: more metric points than `max_points`.
    TooManyPoints,
    /// 400: a metric name or label value longer than `max_name_bytes`.
    NameTooLong,
    /// 503: the broker did not acknowledge the write in time.
    BrokerUnavailable,
    /// 408: the body did not arrive within `body_timeout_ms`.
    BodyTimeout,
    /// 429: the agent key or the account sent more than its rate limit.
    RateLimited,
}

impl Reason {
    /// The code in error bodies and the `outcome` label of the requests counter.
    pub fn code(self) -> &'static str {
        match self {
            Reason::Malformed => "malformed",
            Reason::BadCompression => "bad_compression",
            Reason::ChecksumMismatch => "checksum_mismatch",
            Reason::MissingAgentKey => "missing_agent_key",
            Reason::MissingAccount => "missing_account",
            Reason::TooLarge => "too_large",
            Reason::DecompressedTooLarge => "decompressed_too_large",
            Reason::UnsupportedEncoding => "unsupported_encoding",
            Reason::TooManyPoints => "too_many_points",
            Reason::NameTooLong => "name_too_long",
            Reason::BrokerUnavailable => "broker_unavailable",
            Reason::BodyTimeout => "body_timeout",
            Reason::RateLimited => "rate_limited",
        }
    }

    fn status(self) -> StatusCode {
        match self {
            Reason::TooLarge | Reason::DecompressedTooLarge | Reason::TooManyPoints => {
                StatusCode::PAYLOAD_TOO_LARGE
            }
            Reason::UnsupportedEncoding => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Reason::BrokerUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            Reason::BodyTimeout => StatusCode::REQUEST_TIMEOUT,
            Reason::RateLimited => StatusCode::TOO_MANY_REQUESTS,
            _ => StatusCode::BAD_REQUEST,
        }
    }
}

/// A refused request: reason and message.
#[derive(Debug)]
pub struct Refusal {
    /// The reason code.
    pub reason: Reason,
    /// A precise message naming what is wrong.
    pub message: String,
    /// Seconds the client should wait (`Retry-After`), when it should retry.
    pub retry_after_s: Option<u64>,
}

fn refuse(reason: Reason, message: impl Into<String>) -> Refusal {
    Refusal {
        reason,
        message: message.into(),
        retry_after_s: (reason == Reason::BrokerUnavailable).then_some(5),
    }
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        let body = Json(serde_json::json!({ "error": self.message, "reason": self.reason.code() }));
        let mut response = (self.reason.status(), body).into_response();
        if let Some(s) = self.retry_after_s {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(s.max(1)));
        }
        response
    }
}

type Delivered = oneshot::Sender<Result<(), String>>;

/// What an envelope adds to its payload, at most (account, key, times, format).
const ENVELOPE_OVERHEAD: usize = 64 * 1024;

/// Whether a producer error says the record is larger than the client or broker takes.
fn too_large(error: &str) -> bool {
    error.to_ascii_lowercase().contains("size too large")
}

struct Intake {
    config: IntakeConfig,
    producer: LogProducer<Delivered>,
    host_suffix: String,
    per_key: Option<Limiter>,
    per_account: Option<Limiter>,
}

/// A rate limiter per key (agent key or account).
type Limiter = governor::DefaultKeyedRateLimiter<String>;

/// Keys a limiter tracks before it forgets those back at full allowance: the keys come
/// from unauthenticated requests, so their number is bounded.
const MAX_TRACKED_KEYS: usize = 100_000;

fn limiter(per_second: u32) -> Option<Limiter> {
    let rate = std::num::NonZeroU32::new(per_second)?;
    let burst = std::num::NonZeroU32::new(per_second.saturating_mul(2)).unwrap_or(rate);
    Some(governor::RateLimiter::keyed(
        governor::Quota::per_second(rate).allow_burst(burst),
    ))
}

/// Checks `key` against `limiter`: the seconds to wait when it is over its rate.
fn over_limit(limiter: &Limiter, key: &str) -> Option<u64> {
    use governor::clock::{Clock, DefaultClock};
    if limiter.len() > MAX_TRACKED_KEYS {
        limiter.retain_recent();
        limiter.shrink_to_fit();
    }
    limiter.check_key(&key.to_string()).err().map(|not_until| {
        not_until
            .wait_time_from(DefaultClock::default().now())
            .as_secs_f64()
            .ceil() as u64
    })
}

/// Builds the intake's router (producer created here; it connects lazily).
pub fn router(config: IntakeConfig) -> anyhow::Result<Router> {
    let timeout = config.produce_timeout_ms.max(1).to_string();
    // An envelope is the payload and a few hundred bytes: the producer takes the largest
    // payload accepted (librdkafka's own limit is 1 MB). A broker that takes less answers
    // `too_large` (413), never 503 for ever.
    let max_message = (config.max_payload_bytes + ENVELOPE_OVERHEAD)
        .clamp(1_000_000, 1_000_000_000)
        .to_string();
    let options = [
        ("message.timeout.ms", timeout.as_str()),
        ("linger.ms", "1"),
        ("message.max.bytes", max_message.as_str()),
    ]
    .into_iter()
    .chain(
        config
            .kafka_options
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str())),
    );
    let producer = LogProducer::new(&config.brokers, options, |done: Delivered, r| {
        let _ = done.send(r);
    })
    .map_err(anyhow::Error::msg)?;
    let host_suffix = format!(".agent.{}", config.domain.trim_start_matches('.'));
    let state = Arc::new(Intake {
        per_key: limiter(config.rate_limit_per_key),
        per_account: limiter(config.rate_limit_per_account),
        config,
        producer,
        host_suffix,
    });
    Ok(Router::new()
        .route("/intake/", post(intake_v2))
        .route("/intake", post(intake_v2))
        .route("/postback/", post(postback_v1))
        .route("/postback", post(postback_v1))
        .route("/healthz", get(|| async { "ok" }))
        .with_state(state))
}

/// Serves the intake on `listener` (plain HTTP, default timeouts) until `shutdown`
/// completes.
pub async fn serve(
    config: IntakeConfig,
    listener: tokio::net::TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    serve_with(config, listener, ServeOptions::default(), shutdown).await
}

/// Serves the intake on `listener` as `options` say (TLS, timeouts; see
/// [`crate::serve`]) until `shutdown` completes.
pub async fn serve_with(
    config: IntakeConfig,
    listener: tokio::net::TcpListener,
    options: ServeOptions,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let app = router(config)?;
    let addr: SocketAddr = listener.local_addr()?;
    tracing::info!(%addr, tls = options.tls.is_some(), "intake listening");
    crate::serve::serve(listener, app, options, shutdown).await
}

#[derive(Deserialize)]
struct IntakeQuery {
    agent_key: Option<String>,
    account: Option<String>,
}

fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

impl Intake {
    /// Reads the body: at most `max_body_bytes` (413 `too_large` past it, whatever the
    /// HTTP framework's own default) within `body_timeout_ms` (408 `body_timeout`).
    async fn read_body(&self, headers: &HeaderMap, body: Body) -> Result<Bytes, Refusal> {
        let max = self.config.max_body_bytes;
        let too_large = |size: String| {
            refuse(
                Reason::TooLarge,
                format!("the body is {size} bytes; the limit is {max} (intake.max_body_bytes)"),
            )
        };
        let declared = headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if let Some(n) = declared.filter(|n| *n > max as u64) {
            return Err(too_large(n.to_string()));
        }
        let wait = Duration::from_millis(self.config.body_timeout_ms.max(1));
        match tokio::time::timeout(wait, Limited::new(body, max).collect()).await {
            Ok(Ok(collected)) => Ok(collected.to_bytes()),
            Ok(Err(e)) if e.downcast_ref::<LengthLimitError>().is_some() => {
                Err(too_large(format!("more than {max}")))
            }
            Ok(Err(e)) => Err(refuse(
                Reason::Malformed,
                format!("the body could not be read: {e}"),
            )),
            Err(_) => Err(refuse(
                Reason::BodyTimeout,
                format!(
                    "the body did not arrive within {} ms (intake.body_timeout_ms)",
                    wait.as_millis()
                ),
            )),
        }
    }

    /// The checks both formats share: the body size, then the account.
    fn admit(
        &self,
        body: &[u8],
        headers: &HeaderMap,
        query_account: Option<&str>,
    ) -> Result<String, Refusal> {
        if body.len() > self.config.max_body_bytes {
            return Err(refuse(
                Reason::TooLarge,
                format!(
                    "the body is {} bytes; the limit is {}",
                    body.len(),
                    self.config.max_body_bytes
                ),
            ));
        }
        let account = self.account(headers, query_account)?;
        if account.len() > self.config.max_name_bytes {
            return Err(
                wire::name_too_long("the account", &account, self.config.max_name_bytes).into(),
            );
        }
        Ok(account)
    }

    fn account(&self, headers: &HeaderMap, query: Option<&str>) -> Result<String, Refusal> {
        let host = headers
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .map(|h| h.split(':').next().unwrap_or(h).to_ascii_lowercase());
        if let Some(account) = host
            .as_deref()
            .and_then(|h| h.strip_suffix(self.host_suffix.as_str()))
        {
            if !account.is_empty() && !account.contains('.') {
                return Ok(account.to_string());
            }
        }
        if let Some(a) = headers
            .get("x-squall-account")
            .and_then(|h| h.to_str().ok())
        {
            if !a.trim().is_empty() {
                return Ok(a.trim().to_string());
            }
        }
        match query {
            Some(a) if !a.trim().is_empty() => Ok(a.trim().to_string()),
            _ => Err(refuse(
                Reason::MissingAccount,
                format!(
                    "no account: post to <account>{}, or send an X-Squall-Account header or ?account=",
                    self.host_suffix
                ),
            )),
        }
    }

    /// Produces the envelope and waits for the broker's acknowledgement.
    async fn enqueue(&self, key: &str, envelope: Vec<u8>) -> Result<(), Refusal> {
        let (tx, rx) = oneshot::channel();
        let record = OutRecord {
            topic: &self.config.topic,
            key: Some(key.as_bytes()),
            payload: Some(&envelope),
            headers: &[],
        };
        if let Err((e, _)) = self.producer.send(record, tx) {
            if too_large(&e) {
                return Err(refuse(
                    Reason::TooLarge,
                    format!(
                        "the envelope ({} bytes) is larger than the queue takes: {e}",
                        envelope.len()
                    ),
                ));
            }
            return Err(refuse(
                Reason::BrokerUnavailable,
                format!("the queue cannot take the payload: {e}"),
            ));
        }
        // librdkafka reports every record by `message.timeout.ms`; the extra second covers
        // the report itself.
        let wait = Duration::from_millis(self.config.produce_timeout_ms + 1_000);
        match tokio::time::timeout(wait, rx).await {
            Ok(Ok(Ok(()))) => Ok(()),
            Ok(Ok(Err(e))) if too_large(&e) => Err(refuse(
                Reason::TooLarge,
                format!(
                    "the envelope ({} bytes) is larger than the broker takes (its message.max.bytes): {e}",
                    envelope.len()
                ),
            )),
            Ok(Ok(Err(e))) => Err(refuse(
                Reason::BrokerUnavailable,
                format!("the broker did not take the payload: {e}"),
            )),
            _ => Err(refuse(
                Reason::BrokerUnavailable,
                "the broker did not acknowledge the payload in time",
            )),
        }
    }

    async fn accept(
        &self,
        started: Instant,
        body_len: usize,
        result: Result<(String, String, AgentFormat, Vec<u8>), Refusal>,
    ) -> Response {
        let outcome = async {
            let (account, agent_key, format, payload) = result?;
            for (limiter, what, key, setting) in [
                (&self.per_key, "agent key", &agent_key, "intake.rate_limit_per_key"),
                (&self.per_account, "account", &account, "intake.rate_limit_per_account"),
            ] {
                if let Some(wait) = limiter.as_ref().and_then(|l| over_limit(l, key)) {
                    return Err(Refusal {
                        retry_after_s: Some(wait.max(1)),
                        ..refuse(
                            Reason::RateLimited,
                            format!("the {what} sent more than its rate limit ({setting}); retry in {} s", wait.max(1)),
                        )
                    });
                }
            }
            let payload = std::str::from_utf8(&payload)
                .ok()
                .and_then(|s| serde_json::from_str::<&RawValue>(s).ok())
                .ok_or_else(|| refuse(Reason::Malformed, "the payload is not valid JSON"))?;
            let received_at_us = now_us();
            let envelope = Envelope {
                account,
                agent_key: agent_key.clone(),
                received_at_ms: received_at_us / 1000,
                received_at_us: Some(received_at_us),
                format,
                payload,
            };
            let bytes = serde_json::to_vec(&envelope)
                .map_err(|e| refuse(Reason::Malformed, e.to_string()))?;
            self.enqueue(&agent_key, bytes).await
        }
        .await;
        let (code, response) = match outcome {
            Ok(()) => (
                "accepted",
                (
                    StatusCode::ACCEPTED,
                    Json(serde_json::json!({ "status": "accepted" })),
                )
                    .into_response(),
            ),
            Err(refusal) => {
                tracing::debug!(reason = refusal.reason.code(), error = %refusal.message, "payload refused");
                (refusal.reason.code(), refusal.into_response())
            }
        };
        metrics::counter!("squall_intake_requests_total", "outcome" => code).increment(1);
        metrics::histogram!("squall_intake_body_bytes").record(body_len as f64);
        metrics::histogram!("squall_intake_latency_seconds")
            .record(started.elapsed().as_secs_f64());
        response
    }
}

/// Bodies up to this size are decoded on the async worker that received them; larger ones
/// on the blocking pool (inflating up to `max_payload_bytes` may take milliseconds).
const INLINE_DECODE_BYTES: usize = 32 * 1024;

impl From<wire::Problem> for Reason {
    fn from(p: wire::Problem) -> Self {
        match p {
            wire::Problem::Malformed => Reason::Malformed,
            wire::Problem::BadCompression => Reason::BadCompression,
            wire::Problem::ChecksumMismatch => Reason::ChecksumMismatch,
            wire::Problem::MissingAgentKey => Reason::MissingAgentKey,
            wire::Problem::DecompressedTooLarge => Reason::DecompressedTooLarge,
            wire::Problem::UnsupportedEncoding => Reason::UnsupportedEncoding,
            wire::Problem::TooManyPoints => Reason::TooManyPoints,
            wire::Problem::NameTooLong => Reason::NameTooLong,
        }
    }
}

impl From<wire::WireError> for Refusal {
    fn from(e: wire::WireError) -> Self {
        refuse(e.problem.into(), e.message)
    }
}

impl IntakeConfig {
    fn limits(&self) -> wire::Limits {
        wire::Limits {
            max_payload_bytes: self.max_payload_bytes,
            max_points: self.max_points,
            max_name_bytes: self.max_name_bytes,
        }
    }
}

async fn intake_v2(
    State(intake): State<Arc<Intake>>,
    Query(query): Query<IntakeQuery>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let started = Instant::now();
    let body = match intake.read_body(&headers, body).await {
        Ok(b) => b,
        Err(refusal) => return intake.accept(started, 0, Err(refusal)).await,
    };
    let body_len = body.len();
    let result = async {
        let account = intake.admit(&body, &headers, query.account.as_deref())?;
        let header_text = |name: header::HeaderName| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(String::from)
        };
        let encoding = header_text(header::CONTENT_ENCODING);
        let md5 = headers
            .get("content-md5")
            .and_then(|v| v.to_str().ok())
            .map(String::from);
        let limits = intake.config.limits();
        let decode = move || {
            wire::decode_v2(
                &body,
                encoding.as_deref(),
                md5.as_deref(),
                query.agent_key.as_deref(),
                limits,
            )
        };
        // A typical agent body (a few KB) inflates and checks in tens of microseconds:
        // cheaper here than a hop to the blocking pool and back. Large ones go there.
        let decoded = if body_len <= INLINE_DECODE_BYTES {
            decode()?
        } else {
            tokio::task::spawn_blocking(decode)
                .await
                .map_err(|e| refuse(Reason::Malformed, format!("decoding failed: {e}")))??
        };
        Ok((account, decoded.agent_key, AgentFormat::V2, decoded.payload))
    }
    .await;
    intake.accept(started, body_len, result).await
}

async fn postback_v1(
    State(intake): State<Arc<Intake>>,
    Query(query): Query<IntakeQuery>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let started = Instant::now();
    let body = match intake.read_body(&headers, body).await {
        Ok(b) => b,
        Err(refusal) => return intake.accept(started, 0, Err(refusal)).await,
    };
    let body_len = body.len();
    let result = async {
        let account = intake.admit(&body, &headers, query.account.as_deref())?;
        let decoded = wire::decode_v1(&body, query.agent_key.as_deref(), intake.config.limits())?;
        Ok((account, decoded.agent_key, AgentFormat::V1, decoded.payload))
    }
    .await;
    intake.accept(started, body_len, result).await
}

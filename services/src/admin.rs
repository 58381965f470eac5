//! The admin API under `/api/v1`: accounts, agent keys and devices, alert configs, the
//! alerts and notifications, silences, metrics and dead letters.
//!
//! Every call needs `Authorization: Bearer <admin token>` (401 otherwise). Errors are JSON
//! `{"error": "...", "reason": "<code>"}`. Store calls block, so they run on
//! `spawn_blocking`.

use std::sync::Arc;

use axum::extract::{Path, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, patch, post};
use axum::{Json, Router};
use serde::Deserialize;
use squall_alerting::accounts::{Account, AccountPatch};
use squall_alerting::configs::{AlertConfig, StoredConfig};
use squall_alerting::ids::{ConfigId, DeviceId};
use squall_alerting::policy::silence::{self, Silence, StoredSilence};
use squall_alerting::store::{
    AccountStore, AlertStateStore, Delivery, DeliveryLog, MetricStore, PolicyStore, StoreError,
    TriggeredAlert,
};
use squall_connectors::kafka::dead_letters::{self, DeadLetter};
use squall_pipeline::stores::Stores;
use subtle::ConstantTimeEq;

/// What the admin API serves from.
#[derive(Clone)]
pub struct AdminState {
    /// The accounts store.
    pub store: Arc<dyn AccountStore>,
    /// The bearer token every call must carry.
    pub token: Arc<str>,
    /// The metrics database, for the query API (`None`: those routes answer 404).
    pub metrics: Option<Arc<dyn MetricStore>>,
    /// The alert tables, for `/alerts/triggered` (`None`: 404).
    pub alerts: Option<Arc<dyn AlertStateStore>>,
    /// The notification outcomes, for `/notifications` (`None`: 404).
    pub deliveries: Option<Arc<dyn DeliveryLog>>,
    /// The broker and dead-letter topic, for `/dead-letters` (`None`: 404).
    pub dead_letters: Option<DeadLetterTopic>,
    /// Silences, for `/silences` (`None`: 404).
    pub policy: Option<Arc<dyn PolicyStore>>,
}

/// Where the dead letters are: the broker (`journal:DIR` or Kafka bootstrap servers) and
/// the topic.
#[derive(Clone, Debug)]
pub struct DeadLetterTopic {
    /// The broker.
    pub brokers: String,
    /// The dead-letter topic.
    pub topic: String,
}

impl std::fmt::Debug for AdminState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminState").finish_non_exhaustive()
    }
}

impl AdminState {
    /// Serves every route from the stores of one database.
    pub fn new(stores: Stores, token: &str) -> Self {
        AdminState {
            store: stores.accounts,
            token: token.into(),
            metrics: Some(stores.metrics),
            alerts: Some(stores.alerts),
            deliveries: Some(stores.deliveries),
            dead_letters: None,
            policy: Some(stores.policy),
        }
    }

    /// This state serving the dead letters of `topic` on `brokers` too.
    pub fn with_dead_letters(mut self, brokers: &str, topic: &str) -> Self {
        self.dead_letters = Some(DeadLetterTopic {
            brokers: brokers.to_string(),
            topic: topic.to_string(),
        });
        self
    }
}

/// An [`ApiError`] with no more fields.
fn api_error(status: StatusCode, reason: &'static str, message: String) -> ApiError {
    ApiError(status, reason, message, serde_json::Map::new())
}

/// An API error: status, reason code, message, and more fields for the body (an invalid
/// config's `field`, and for its `expr` the `line` and `column`).
pub struct ApiError(
    StatusCode,
    &'static str,
    String,
    serde_json::Map<String, serde_json::Value>,
);

impl std::fmt::Debug for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiError").finish_non_exhaustive()
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body = self.3;
        body.insert("error".into(), self.2.into());
        body.insert("reason".into(), self.1.into());
        (self.0, Json(serde_json::Value::Object(body))).into_response()
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        let (status, reason) = match &e {
            StoreError::NoAccount(_) => (StatusCode::NOT_FOUND, "unknown_account"),
            StoreError::NoDevice(_) => (StatusCode::NOT_FOUND, "unknown_device"),
            StoreError::AccountExists(_) => (StatusCode::CONFLICT, "account_exists"),
            StoreError::KeyTaken { .. } => (StatusCode::CONFLICT, "agent_key_taken"),
            StoreError::QuotaExceeded { .. } => (StatusCode::CONFLICT, "quota_exceeded"),
            StoreError::Invalid { .. } => (StatusCode::BAD_REQUEST, "invalid"),
            StoreError::Fenced { .. } => (StatusCode::CONFLICT, "fenced"),
            StoreError::Backend {
                transient: true, ..
            } => (StatusCode::SERVICE_UNAVAILABLE, "database_unavailable"),
            StoreError::Backend { .. } => (StatusCode::INTERNAL_SERVER_ERROR, "database"),
        };
        api_error(status, reason, e.to_string())
    }
}

/// Runs a blocking store call off the async workers.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| api_error(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()))?
        .map_err(ApiError::from)
}

async fn authorize(State(state): State<AdminState>, request: Request, next: Next) -> Response {
    let presented = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    match presented {
        // Constant time: how long the comparison takes says nothing of how much matched.
        Some(t) if bool::from(t.as_bytes().ct_eq(state.token.as_bytes())) => {
            next.run(request).await
        }
        Some(_) => api_error(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "the bearer token is not valid".into(),
        )
        .into_response(),
        None => api_error(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "send Authorization: Bearer <admin token>".into(),
        )
        .into_response(),
    }
}

/// A JSON body, with serde's message naming the field when it does not parse.
pub struct Body<T>(T);

impl<T> std::fmt::Debug for Body<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Body").finish_non_exhaustive()
    }
}

impl<S: Send + Sync, T: serde::de::DeserializeOwned> axum::extract::FromRequest<S> for Body<T> {
    type Rejection = ApiError;
    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let bytes = axum::body::Bytes::from_request(req, state)
            .await
            .map_err(|e| api_error(StatusCode::BAD_REQUEST, "invalid", e.to_string()))?;
        let bytes = if bytes.is_empty() {
            axum::body::Bytes::from_static(b"{}")
        } else {
            bytes
        };
        serde_json::from_slice(&bytes).map(Body).map_err(|e| {
            api_error(
                StatusCode::BAD_REQUEST,
                "invalid",
                format!("invalid body: {e}"),
            )
        })
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewAccount {
    name: String,
    device_quota: u32,
    #[serde(default = "yes")]
    active: bool,
}

fn yes() -> bool {
    true
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewKey {
    #[serde(rename = "agentKey")]
    agent_key: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DevicePatch {
    active: bool,
}

async fn create_account(
    State(s): State<AdminState>,
    Body(a): Body<NewAccount>,
) -> Result<Response, ApiError> {
    let account = Account {
        name: a.name,
        device_quota: a.device_quota,
        active: a.active,
    };
    let created = blocking(move || s.store.create_account(&account)).await?;
    Ok((StatusCode::CREATED, Json(created)).into_response())
}

async fn update_account(
    State(s): State<AdminState>,
    Path(name): Path<String>,
    Body(patch): Body<AccountPatch>,
) -> Result<Json<Account>, ApiError> {
    Ok(Json(
        blocking(move || s.store.update_account(&name, &patch)).await?,
    ))
}

async fn issue_key(
    State(s): State<AdminState>,
    Path(name): Path<String>,
    Body(k): Body<NewKey>,
) -> Result<Response, ApiError> {
    let key = blocking(move || s.store.issue_agent_key(&name, k.agent_key.as_deref())).await?;
    Ok((
        StatusCode::CREATED,
        Json(serde_json::json!({ "agentKey": key })),
    )
        .into_response())
}

async fn devices(
    State(s): State<AdminState>,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    let devices = blocking(move || s.store.devices(&name)).await?;
    Ok(Json(devices).into_response())
}

async fn update_device(
    State(s): State<AdminState>,
    Path(id): Path<DeviceId>,
    Body(p): Body<DevicePatch>,
) -> Result<Response, ApiError> {
    let device = blocking(move || s.store.set_device_active(id, p.active)).await?;
    Ok(Json(device).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MetricsQuery {
    metric: Option<String>,
    device_name: Option<String>,
    from: Option<i64>,
    to: Option<i64>,
    resolution: Option<String>,
}

fn metrics_store(s: &AdminState) -> Result<Arc<dyn MetricStore>, ApiError> {
    s.metrics.clone().ok_or_else(|| {
        api_error(
            StatusCode::NOT_FOUND,
            "no_metrics",
            "this server has no metrics database".into(),
        )
    })
}

fn alert_store(s: &AdminState) -> Result<Arc<dyn AlertStateStore>, ApiError> {
    s.alerts.clone().ok_or_else(|| {
        api_error(
            StatusCode::NOT_FOUND,
            "no_alerts",
            "this server has no alert database".into(),
        )
    })
}

fn delivery_log(s: &AdminState) -> Result<Arc<dyn DeliveryLog>, ApiError> {
    s.deliveries.clone().ok_or_else(|| {
        api_error(
            StatusCode::NOT_FOUND,
            "no_alerts",
            "this server has no alert database".into(),
        )
    })
}

#[derive(Deserialize)]
struct TriggeredQuery {
    #[serde(default)]
    closed: bool,
    account: Option<String>,
}

async fn triggered(
    State(s): State<AdminState>,
    query: Result<axum::extract::Query<TriggeredQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Vec<TriggeredAlert>>, ApiError> {
    let axum::extract::Query(q) =
        query.map_err(|e| api_error(StatusCode::BAD_REQUEST, "invalid", e.body_text()))?;
    let db = alert_store(&s)?;
    Ok(Json(
        blocking(move || db.triggered(q.closed, q.account.as_deref())).await?,
    ))
}

async fn notifications(State(s): State<AdminState>) -> Result<Json<Vec<Delivery>>, ApiError> {
    let db = delivery_log(&s)?;
    Ok(Json(blocking(move || db.deliveries()).await?))
}

async fn latest(
    State(s): State<AdminState>,
    Path(id): Path<DeviceId>,
) -> Result<Response, ApiError> {
    let db = metrics_store(&s)?;
    match blocking(move || db.latest(id)).await? {
        Some((time, values)) => Ok(Json(
            serde_json::json!({ "device": id, "time": time, "values": values }),
        )
        .into_response()),
        None => Err(api_error(
            StatusCode::NOT_FOUND,
            "no_data",
            format!("device {id} has sent no data"),
        )),
    }
}

async fn metrics(
    State(s): State<AdminState>,
    Path(id): Path<DeviceId>,
    query: Result<axum::extract::Query<MetricsQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let axum::extract::Query(q) =
        query.map_err(|e| api_error(StatusCode::BAD_REQUEST, "invalid", e.body_text()))?;
    let metric = q.metric.filter(|m| !m.is_empty()).ok_or_else(|| {
        api_error(
            StatusCode::BAD_REQUEST,
            "invalid",
            "metric: required, e.g. ?metric=system.load.1".into(),
        )
    })?;
    let hourly = match q.resolution.as_deref().unwrap_or("minute") {
        "minute" => false,
        "hour" => true,
        other => {
            return Err(api_error(
                StatusCode::BAD_REQUEST,
                "invalid",
                format!("resolution: \"{other}\" is not minute or hour"),
            ))
        }
    };
    let (from, to) = (q.from.unwrap_or(0), q.to.unwrap_or(i64::MAX));
    let series = q.device_name.map(|d| format!("device_name={d}"));
    let db = metrics_store(&s)?;
    let m = metric.clone();
    let points = blocking(move || db.query(id, &m, series.as_deref(), from, to, hourly)).await?;
    Ok(Json(serde_json::json!({
        "device": id,
        "metric": metric,
        "resolution": if hourly { "hour" } else { "minute" },
        "points": points,
    }))
    .into_response())
}

/// Parses and validates an alert config body; 400 naming the field otherwise (and for
/// `expr`, the line and column, with the rule and a caret under the place in `error`).
fn alert_config(body: &[u8]) -> Result<AlertConfig, ApiError> {
    AlertConfig::from_json(body).map_err(|e| {
        let mut more = serde_json::Map::new();
        more.insert("field".into(), e.field.clone().into());
        if let Some((line, column)) = e.position {
            more.insert("line".into(), line.into());
            more.insert("column".into(), column.into());
        }
        ApiError(StatusCode::BAD_REQUEST, "invalid", e.to_string(), more)
    })
}

fn unknown_config(id: ConfigId) -> ApiError {
    api_error(
        StatusCode::NOT_FOUND,
        "unknown_config",
        format!("no alert config {id}"),
    )
}

/// A config naming an account that does not exist is a bad request naming the field.
fn unknown_account_is_invalid(e: ApiError, account: &str) -> ApiError {
    match e.1 {
        "unknown_account" => api_error(
            StatusCode::BAD_REQUEST,
            "invalid",
            format!("account: no account \"{account}\""),
        ),
        _ => e,
    }
}

async fn create_config(
    State(s): State<AdminState>,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let config = alert_config(&body)?;
    let account = config.account.clone();
    let stored = blocking(move || s.store.create_config(&config))
        .await
        .map_err(|e| unknown_account_is_invalid(e, &account))?;
    Ok((StatusCode::CREATED, Json(stored)).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigsQuery {
    account: Option<String>,
}

async fn list_configs(
    State(s): State<AdminState>,
    axum::extract::Query(q): axum::extract::Query<ConfigsQuery>,
) -> Result<Json<Vec<StoredConfig>>, ApiError> {
    Ok(Json(
        blocking(move || s.store.configs(q.account.as_deref())).await?,
    ))
}

async fn get_config(
    State(s): State<AdminState>,
    Path(id): Path<ConfigId>,
) -> Result<Json<StoredConfig>, ApiError> {
    blocking(move || s.store.config(id))
        .await?
        .map(Json)
        .ok_or_else(|| unknown_config(id))
}

async fn replace_config(
    State(s): State<AdminState>,
    Path(id): Path<ConfigId>,
    body: axum::body::Bytes,
) -> Result<Json<StoredConfig>, ApiError> {
    let config = alert_config(&body)?;
    let account = config.account.clone();
    let stored = StoredConfig {
        id,
        config: config.clone(),
    };
    let replaced = blocking(move || s.store.replace_config(id, &config))
        .await
        .map_err(|e| unknown_account_is_invalid(e, &account))?;
    if replaced {
        Ok(Json(stored))
    } else {
        Err(unknown_config(id))
    }
}

async fn delete_config(
    State(s): State<AdminState>,
    Path(id): Path<ConfigId>,
) -> Result<Response, ApiError> {
    if blocking(move || s.store.delete_config(id)).await? {
        Ok(StatusCode::NO_CONTENT.into_response())
    } else {
        Err(unknown_config(id))
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DeadLetterQuery {
    /// Only the dead letters whose reason contains this.
    reason: Option<String>,
}

/// How long reading or replaying dead letters may take.
const DEAD_LETTER_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// The pending dead letters matching `query`, read on a blocking thread.
async fn pending_letters(
    s: &AdminState,
    query: DeadLetterQuery,
) -> Result<(DeadLetterTopic, Vec<DeadLetter>), ApiError> {
    let Some(dl) = s.dead_letters.clone() else {
        return Err(api_error(
            StatusCode::NOT_FOUND,
            "not_found",
            "no dead-letter topic here: `squall up` serves it".into(),
        ));
    };
    let source = dl.clone();
    let letters = tokio::task::spawn_blocking(move || {
        dead_letters::pending(&source.brokers, &source.topic, DEAD_LETTER_TIMEOUT)
    })
    .await
    .map_err(|e| api_error(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()))?
    .map_err(|e| api_error(StatusCode::SERVICE_UNAVAILABLE, "broker_unavailable", e))?;
    let letters = match query.reason.filter(|r| !r.is_empty()) {
        Some(r) => letters
            .into_iter()
            .filter(|d| d.reason.contains(&r))
            .collect(),
        None => letters,
    };
    Ok((dl, letters))
}

async fn dead_letters(
    State(s): State<AdminState>,
    query: Result<axum::extract::Query<DeadLetterQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Vec<DeadLetter>>, ApiError> {
    let axum::extract::Query(q) =
        query.map_err(|e| api_error(StatusCode::BAD_REQUEST, "invalid", e.body_text()))?;
    Ok(Json(pending_letters(&s, q).await?.1))
}

async fn replay_dead_letters(
    State(s): State<AdminState>,
    query: Result<axum::extract::Query<DeadLetterQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let axum::extract::Query(q) =
        query.map_err(|e| api_error(StatusCode::BAD_REQUEST, "invalid", e.body_text()))?;
    let (dl, letters) = pending_letters(&s, q).await?;
    let replayed = tokio::task::spawn_blocking(move || {
        dead_letters::replay(&dl.brokers, &dl.topic, &letters, DEAD_LETTER_TIMEOUT)
    })
    .await
    .map_err(|e| api_error(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()))?
    .map_err(|e| api_error(StatusCode::SERVICE_UNAVAILABLE, "broker_unavailable", e))?;
    Ok(Json(serde_json::json!({ "replayed": replayed })))
}

fn policy_store(s: &AdminState) -> Result<Arc<dyn PolicyStore>, ApiError> {
    s.policy.clone().ok_or_else(|| {
        api_error(
            StatusCode::NOT_FOUND,
            "no_alerts",
            "this server has no alert database".into(),
        )
    })
}

/// A silence as the API shows it: the stored silence, its state now and whether it
/// covers the time asked about (now, or `?at=`).
#[derive(serde::Serialize)]
struct SilenceView {
    #[serde(flatten)]
    stored: StoredSilence,
    status: SilenceStatus,
}

#[derive(serde::Serialize)]
struct SilenceStatus {
    /// `pending`, `active` or `expired`, now.
    state: silence::State,
    /// Whether it silences at the time asked about (a maintenance window: inside a range).
    silencing: bool,
}

fn view(stored: StoredSilence, now: jiff::Timestamp, at: jiff::Timestamp) -> SilenceView {
    let (state, silencing) = match stored.silence.compile(stored.id) {
        Ok(c) => (c.state(now), c.covers_time(at)),
        Err(_) => (silence::State::Expired, false),
    };
    SilenceView {
        stored,
        status: SilenceStatus { state, silencing },
    }
}

async fn create_silence(
    State(s): State<AdminState>,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let silence = Silence::from_json(&body).map_err(|e| {
        let mut more = serde_json::Map::new();
        more.insert("field".into(), e.field.clone().into());
        ApiError(StatusCode::BAD_REQUEST, "invalid", e.to_string(), more)
    })?;
    let db = policy_store(&s)?;
    let account = silence.account.clone();
    let accounts = s.store.clone();
    let now = jiff::Timestamp::now();
    let stored = blocking(move || {
        if accounts.account(&silence.account)?.is_none() {
            return Err(StoreError::NoAccount(silence.account.clone()));
        }
        db.create_silence(&silence, now)
    })
    .await
    .map_err(|e| unknown_account_is_invalid(e, &account))?;
    Ok((StatusCode::CREATED, Json(view(stored, now, now))).into_response())
}

#[derive(Deserialize)]
struct SilencesQuery {
    account: Option<String>,
    /// `pending`, `active` or `expired`.
    state: Option<silence::State>,
    /// Only those that silence at this time (RFC 3339).
    at: Option<jiff::Timestamp>,
}

async fn list_silences(
    State(s): State<AdminState>,
    query: Result<axum::extract::Query<SilencesQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Vec<SilenceView>>, ApiError> {
    let axum::extract::Query(q) =
        query.map_err(|e| api_error(StatusCode::BAD_REQUEST, "invalid", e.body_text()))?;
    let db = policy_store(&s)?;
    let account = q.account.clone();
    let all = blocking(move || db.silences(account.as_deref())).await?;
    let now = jiff::Timestamp::now();
    let at = q.at.unwrap_or(now);
    Ok(Json(
        all.into_iter()
            .map(|stored| view(stored, now, at))
            .filter(|v| q.state.is_none_or(|want| v.status.state == want))
            .filter(|v| q.at.is_none() || v.status.silencing)
            .collect(),
    ))
}

async fn expire_silence(
    State(s): State<AdminState>,
    Path(id): Path<i64>,
) -> Result<Json<SilenceView>, ApiError> {
    let db = policy_store(&s)?;
    let now = jiff::Timestamp::now();
    match blocking(move || db.expire_silence(id, now)).await? {
        Some(stored) => Ok(Json(view(stored, now, now))),
        None => Err(api_error(
            StatusCode::NOT_FOUND,
            "unknown_silence",
            format!("no silence {id}"),
        )),
    }
}

/// The `/api/v1` router.
pub fn router(state: AdminState) -> Router {
    Router::new()
        .route("/api/v1/accounts", post(create_account))
        .route("/api/v1/accounts/{name}", patch(update_account))
        .route("/api/v1/accounts/{name}/agent-keys", post(issue_key))
        .route("/api/v1/accounts/{name}/devices", get(devices))
        .route("/api/v1/devices/{id}", patch(update_device))
        .route(
            "/api/v1/alerts/configs",
            post(create_config).get(list_configs),
        )
        .route(
            "/api/v1/alerts/configs/{id}",
            get(get_config).put(replace_config).delete(delete_config),
        )
        .route("/api/v1/alerts/triggered", get(triggered))
        .route("/api/v1/notifications", get(notifications))
        .route("/api/v1/devices/{id}/latest", get(latest))
        .route("/api/v1/devices/{id}/metrics", get(metrics))
        .route("/api/v1/silences", post(create_silence).get(list_silences))
        .route(
            "/api/v1/silences/{id}",
            axum::routing::delete(expire_silence),
        )
        .route("/api/v1/dead-letters", get(dead_letters))
        .route("/api/v1/dead-letters/replay", post(replay_dead_letters))
        .layer(middleware::from_fn_with_state(state.clone(), authorize))
        .with_state(state)
}

//! The operator web UI under `/ui/`: the running topologies (a graph coloured by load
//! with the backpressure culprit marked, a table per component, each component's tasks),
//! the Kafka partitions the spouts hold (lag, pauses, retries, dead letters) and, with an
//! alert database, the alerts (pending, firing, recently resolved), the
//! notification log and the alert configs with their rules. Served by `squall up` on the
//! admin listener and by `squall run FILE --ui-addr ADDR` (topology pages only).
//!
//! - **Sign-in** with the admin token: the login form, or a link `/ui/?token=TOKEN` that
//!   signs in and redirects to `/ui/` (the token leaves the address bar). Either sets a
//!   session cookie (`HttpOnly`, `SameSite=Strict`, path `/ui`, 12 hours); sessions live
//!   in memory (at most [`MAX_SESSIONS`], the oldest go first). No page or data endpoint
//!   answers without a session (data endpoints also take `Authorization: Bearer TOKEN`,
//!   for scripts); only the stylesheet and script are public.
//! - **Live**: pages are HTML rendered here, with their assets embedded in the binary
//!   (nothing from a CDN); their script reads the JSON endpoints every second, only
//!   while the page is visible, one request at a time.
//! - **Cost**: a topology's figures are sampled at most once a second, whatever the
//!   number of viewers (rates, capacity and backpressure are differences between two
//!   samples); the alerts view is read at most once every two seconds.
//!
//! The JSON endpoints (`/ui/api/...`) are documented in the README.

mod graph;
mod pages;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use axum::extract::{Form, Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};
use squall_alerting::store::{AccountStore, AlertStateStore, DeliveryLog};
use squall_runtime::{LiveStats, TaskReport};
use squall_topology::{ComponentKind, Topology};
use subtle::ConstantTimeEq;

pub use graph::Graph;

/// The session cookie's name.
pub const COOKIE: &str = "squall_ui";
/// How long a session lasts.
pub const SESSION: Duration = Duration::from_secs(12 * 3600);
/// Most sessions held at once.
pub const MAX_SESSIONS: usize = 1_000;
/// A bolt whose input queue is at least this full is backed up.
pub const FULL: f64 = 0.5;
/// A task busy at least this fraction of the time is at capacity.
pub const BUSY: f64 = 0.7;

/// Where the alerts page reads from.
#[derive(Clone)]
pub struct AlertSources {
    /// Configs.
    pub accounts: Arc<dyn AccountStore>,
    /// Alerts and alert state.
    pub alerts: Arc<dyn AlertStateStore>,
    /// Notification outcomes.
    pub deliveries: Arc<dyn DeliveryLog>,
}

impl std::fmt::Debug for AlertSources {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AlertSources").finish_non_exhaustive()
    }
}

impl std::fmt::Debug for TopologyView {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TopologyView")
            .field("name", &self.name())
            .finish_non_exhaustive()
    }
}

/// A running topology as the UI shows it: its graph and its live figures.
pub struct TopologyView {
    graph: Graph,
    live: LiveStats,
    sample: Mutex<Option<Sampled>>,
}

struct Sampled {
    at: Instant,
    tasks: Vec<TaskReport>,
    view: Value,
}

impl TopologyView {
    /// The view of `topology` (its structure) running as `live`.
    pub fn new(topology: &Topology, live: LiveStats) -> Self {
        TopologyView {
            graph: Graph::of(topology),
            live,
            sample: Mutex::new(None),
        }
    }

    /// The topology's name.
    pub fn name(&self) -> &str {
        self.live.name()
    }

    /// The view now: taken at most once a second.
    fn view(&self) -> Value {
        let mut sample = self.sample.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(s) = &*sample {
            if s.at.elapsed() < Duration::from_secs(1) {
                return s.view.clone();
            }
        }
        let now = Instant::now();
        let tasks = self.live.tasks();
        let prev = sample.as_ref().map(|s| (s.at, s.tasks.as_slice()));
        let view = self.compute(&tasks, prev.map(|(at, t)| (now - at, t)));
        *sample = Some(Sampled {
            at: now,
            tasks,
            view: view.clone(),
        });
        view
    }

    fn compute(&self, tasks: &[TaskReport], prev: Option<(Duration, &[TaskReport])>) -> Value {
        let secs = prev.map_or(0.0, |(d, _)| d.as_secs_f64());
        let before = |t: &TaskReport| {
            prev.and_then(|(_, p)| p.iter().find(|x| x.task == t.task))
                .cloned()
                .unwrap_or_default()
        };
        let rate = |now: u64, then: u64| {
            if secs > 0.0 {
                now.saturating_sub(then) as f64 / secs
            } else {
                0.0
            }
        };
        let frac = |now: u64, then: u64| {
            if secs > 0.0 {
                (now.saturating_sub(then) as f64 / 1e9 / secs).min(1.0)
            } else {
                0.0
            }
        };
        let mut components = Vec::new();
        for node in &self.graph.nodes {
            let mine: Vec<&TaskReport> = tasks.iter().filter(|t| t.component == node.id).collect();
            let sum = |f: fn(&TaskReport) -> u64| mine.iter().map(|t| f(t)).sum::<u64>();
            let (mut emitted_s, mut executed_s, mut capacity, mut backpressure) =
                (0.0, 0.0, 0.0f64, 0.0f64);
            let (mut depth, mut bound, mut fill) = (0usize, 0usize, 0.0f64);
            let mut last_error: Option<(String, i64)> = None;
            let (mut lat_ns, mut lat_n) = (0u64, 0u64);
            let mut failed_by: std::collections::BTreeMap<&str, u64> = Default::default();
            for t in &mine {
                let b = before(t);
                // The window's mean latency; the mean since the start if nothing was
                // sampled in the window.
                let (dn, dc) = (
                    t.latency_ns.saturating_sub(b.latency_ns),
                    t.latency_samples.saturating_sub(b.latency_samples),
                );
                if dc > 0 {
                    lat_ns += dn;
                    lat_n += dc;
                }
                for (reason, n) in &t.failed_by {
                    if *n > 0 {
                        *failed_by.entry(reason).or_default() += n;
                    }
                }
                emitted_s += rate(t.emitted, b.emitted);
                executed_s += rate(t.executed, b.executed);
                capacity = capacity.max(frac(t.busy_ns, b.busy_ns));
                backpressure = backpressure.max(frac(t.backpressure_ns, b.backpressure_ns));
                depth += t.queue_depth;
                bound += t.queue_capacity;
                if t.queue_capacity > 0 {
                    fill = fill.max(t.queue_depth as f64 / t.queue_capacity as f64);
                }
                if let Some(e) = &t.last_error {
                    if last_error.as_ref().is_none_or(|l| e.1 > l.1) {
                        last_error = Some(e.clone());
                    }
                }
            }
            if lat_n == 0 {
                lat_ns = mine.iter().map(|t| t.latency_ns).sum();
                lat_n = mine.iter().map(|t| t.latency_samples).sum();
            }
            let latency_ms = (lat_n > 0).then(|| lat_ns as f64 / lat_n as f64 / 1e6);
            components.push(json!({
                "id": node.id,
                "latency_ms": latency_ms,
                "failed_by": failed_by,
                "dom_id": self.graph.node_dom_id(&node.id),
                "kind": node.kind,
                "parallelism": node.parallelism,
                "emitted": sum(|t| t.emitted),
                "executed": sum(|t| t.executed),
                "acked": sum(|t| t.acked),
                "failed": sum(|t| t.failed),
                "panics": sum(|t| t.panics),
                "emitted_per_s": emitted_s,
                "executed_per_s": executed_s,
                "capacity": capacity,
                "backpressure": backpressure,
                "queue_depth": depth,
                "queue_capacity": bound,
                "queue_fill": fill,
                "load": load(capacity.max(fill)),
                "last_error": last_error.as_ref().map(|e| e.0.clone()),
                "last_error_at_ms": last_error.map(|e| e.1),
            }));
        }
        // The culprit: a backed-up bolt that is not itself waiting on a backed-up bolt
        // downstream (those upstream of it back up because of it), at capacity.
        let fill_of = |id: &str| {
            components
                .iter()
                .find(|c| c["id"] == id)
                .and_then(|c| c["queue_fill"].as_f64())
                .unwrap_or(0.0)
        };
        let culprits: Vec<String> = components
            .iter()
            .filter(|c| c["kind"] == "bolt")
            .filter(|c| c["queue_fill"].as_f64().unwrap_or(0.0) >= FULL)
            .filter(|c| c["capacity"].as_f64().unwrap_or(0.0) >= BUSY)
            .filter(|c| {
                let id = c["id"].as_str().unwrap_or_default();
                self.graph
                    .edges
                    .iter()
                    .filter(|e| e.from == id)
                    .all(|e| fill_of(&e.to) < FULL)
            })
            .filter_map(|c| c["id"].as_str().map(str::to_string))
            .collect();
        for c in &mut components {
            let id = c["id"].as_str().unwrap_or_default().to_string();
            c["culprit"] = json!(culprits.contains(&id));
        }
        let edges: Vec<Value> = self
            .graph
            .edges
            .iter()
            .map(|e| {
                // What the source emits on the stream reaches every subscriber: the
                // edge carries the source's emit rate (its only stream, or shared).
                let rate = components
                    .iter()
                    .find(|c| c["id"] == e.from.as_str())
                    .and_then(|c| c["emitted_per_s"].as_f64())
                    .unwrap_or(0.0);
                json!({"from": e.from, "to": e.to, "stream": e.stream,
                       "grouping": e.grouping, "per_s": rate, "id": e.dom_id()})
            })
            .collect();
        json!({
            "name": self.name(),
            "elapsed_s": self.live.elapsed().as_secs_f64(),
            "sampled_over_s": secs,
            "components": components,
            "edges": edges,
            "culprits": culprits,
        })
    }

    fn tasks_view(&self, component: &str) -> Option<Value> {
        let node = self.graph.nodes.iter().find(|n| n.id == component)?;
        let tasks: Vec<Value> = self
            .live
            .tasks()
            .into_iter()
            .filter(|t| t.component == component)
            .map(|t| {
                json!({
                    "task": t.task, "emitted": t.emitted, "executed": t.executed,
                    "acked": t.acked, "failed": t.failed, "panics": t.panics,
                    "busy_s": t.busy_ns as f64 / 1e9,
                    "backpressure_s": t.backpressure_ns as f64 / 1e9,
                    "queue_depth": t.queue_depth, "queue_capacity": t.queue_capacity,
                    "last_error": t.last_error.as_ref().map(|e| e.0.clone()),
                    "last_error_at_ms": t.last_error.as_ref().map(|e| e.1),
                    "latency_ms": (t.latency_samples > 0)
                        .then(|| t.latency_ns as f64 / t.latency_samples as f64 / 1e6),
                    "failed_by": t.failed_by.iter().filter(|(_, n)| *n > 0)
                        .map(|(r, n)| (r.to_string(), *n)).collect::<std::collections::BTreeMap<_, _>>(),
                })
            })
            .collect();
        Some(
            json!({"topology": self.name(), "component": node.id, "kind": node.kind,
                    "parallelism": node.parallelism, "tasks": tasks}),
        )
    }
}

/// LOW, MEDIUM or HIGH, as Flink and Arroyo colour back-pressure.
fn load(x: f64) -> &'static str {
    if x >= 0.8 {
        "high"
    } else if x >= 0.4 {
        "medium"
    } else {
        "low"
    }
}

struct Inner {
    token: Arc<str>,
    secure_cookie: bool,
    sessions: Mutex<HashMap<String, Instant>>,
    topologies: RwLock<Vec<Arc<TopologyView>>>,
    alerts: Option<AlertSources>,
    alerts_view: Mutex<Option<(Instant, Value)>>,
}

/// What the UI serves (cheap to clone).
#[derive(Clone)]
pub struct UiState(Arc<Inner>);

impl std::fmt::Debug for UiState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UiState").finish_non_exhaustive()
    }
}

impl UiState {
    /// A UI signed into with `token`, showing `alerts` if given. `secure_cookie`: the
    /// listener is HTTPS (the cookie is `Secure`).
    pub fn new(token: &str, alerts: Option<AlertSources>, secure_cookie: bool) -> Self {
        UiState(Arc::new(Inner {
            token: token.into(),
            secure_cookie,
            sessions: Mutex::new(HashMap::new()),
            topologies: RwLock::new(Vec::new()),
            alerts,
            alerts_view: Mutex::new(None),
        }))
    }

    /// Shows `view` from now on.
    pub fn add_topology(&self, view: TopologyView) {
        self.0
            .topologies
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .push(Arc::new(view));
    }

    fn topologies(&self) -> Vec<Arc<TopologyView>> {
        self.0
            .topologies
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn token_ok(&self, presented: &str) -> bool {
        presented.as_bytes().ct_eq(self.0.token.as_bytes()).into()
    }

    fn new_session(&self) -> String {
        use rand::RngCore;
        let mut bytes = [0u8; 32];
        rand::thread_rng().fill_bytes(&mut bytes);
        let id: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        let mut sessions = self.0.sessions.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        sessions.retain(|_, until| *until > now);
        if sessions.len() >= MAX_SESSIONS {
            if let Some(oldest) = sessions
                .iter()
                .min_by_key(|(_, u)| **u)
                .map(|(k, _)| k.clone())
            {
                sessions.remove(&oldest);
            }
        }
        sessions.insert(id.clone(), now + SESSION);
        id
    }

    fn session_cookie(&self, id: &str, max_age: u64) -> String {
        format!(
            "{COOKIE}={id}; Path=/ui; HttpOnly; SameSite=Strict; Max-Age={max_age}{}",
            if self.0.secure_cookie { "; Secure" } else { "" }
        )
    }

    /// Whether `headers` carry a live session (or the bearer token).
    fn signed_in(&self, headers: &HeaderMap) -> bool {
        if let Some(auth) = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
        {
            if let Some(t) = auth.strip_prefix("Bearer ") {
                return self.token_ok(t);
            }
        }
        let Some(id) = session_of(headers) else {
            return false;
        };
        let sessions = self.0.sessions.lock().unwrap_or_else(|e| e.into_inner());
        sessions
            .get(&id)
            .is_some_and(|until| *until > Instant::now())
    }

    /// The alerts view: read at most once every two seconds.
    async fn alerts_view(&self) -> Option<Value> {
        let sources = self.0.alerts.clone()?;
        {
            let cached = self.0.alerts_view.lock().unwrap_or_else(|e| e.into_inner());
            if let Some((at, v)) = &*cached {
                if at.elapsed() < Duration::from_secs(2) {
                    return Some(v.clone());
                }
            }
        }
        let view = tokio::task::spawn_blocking(move || alerts_now(&sources))
            .await
            .ok()?
            .unwrap_or_else(|e| json!({"error": e}));
        *self.0.alerts_view.lock().unwrap_or_else(|e| e.into_inner()) =
            Some((Instant::now(), view.clone()));
        Some(view)
    }
}

fn session_of(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == COOKIE)
        .map(|(_, v)| v.to_string())
}

/// Alerts, notifications and configs now (blocking: the stores).
fn alerts_now(s: &AlertSources) -> Result<Value, String> {
    let err = |e: squall_alerting::store::StoreError| e.to_string();
    let configs = s.accounts.configs(None).map_err(err)?;
    let name_of = |id: squall_alerting::ids::ConfigId| {
        configs
            .iter()
            .find(|c| c.id == id)
            .map_or_else(|| format!("config {id}"), |c| c.config.name.clone())
    };
    let firing = s.alerts.triggered(false, None).map_err(err)?;
    let resolved: Vec<_> = s
        .alerts
        .triggered(true, None)
        .map_err(err)?
        .into_iter()
        .take(50)
        .collect();
    let mut pending = Vec::new();
    for (device, _, blob) in s.alerts.device_states(None, &|_| true).map_err(err)? {
        pending.extend(squall_alerting::engine::pending_alerts(device, &blob));
        if pending.len() >= 200 {
            break;
        }
    }
    let alert = |a: &squall_alerting::store::TriggeredAlert| {
        json!({"config_id": a.config_id, "rule": name_of(a.config_id), "account": a.account,
               "device": a.device, "hostname": a.hostname, "metric": a.metric,
               "series": squall_alerting::store::series_key(&a.series),
               "value": a.last_value, "since": a.fired_at, "closed_at": a.closed_at})
    };
    let mut deliveries = s.deliveries.deliveries().map_err(err)?;
    deliveries.reverse();
    deliveries.truncate(100);
    let configs: Vec<Value> = configs
        .iter()
        .map(|c| {
            let rule = match c.config.compiled(c.id) {
                Ok(Some((compiled, _))) => compiled.rule.to_string(),
                Ok(None) => format!("no data for {} s", c.config.wait.seconds),
                Err(e) => format!("(does not compile: {e})"),
            };
            json!({"id": c.id, "account": c.config.account, "name": c.config.name,
                   "kind": c.config.kind, "rule": rule,
                   "recipients": c.config.recipients.iter().map(squall_alerting::notify::recipient_type).collect::<Vec<_>>()})
        })
        .collect();
    Ok(json!({
        "pending": pending.iter().map(|p| json!({
            "config_id": p.config_id, "rule": name_of(p.config_id), "account": p.account,
            "device": p.device, "hostname": p.hostname, "series": p.series, "since": p.since,
        })).collect::<Vec<_>>(),
        "firing": firing.iter().map(alert).collect::<Vec<_>>(),
        "resolved": resolved.iter().map(alert).collect::<Vec<_>>(),
        "notifications": deliveries,
        "configs": configs,
    }))
}

fn unauthorized_json() -> Response {
    (
        StatusCode::UNAUTHORIZED,
        Json(json!({"error": "sign in first (or send Authorization: Bearer TOKEN)", "reason": "unauthorized"})),
    )
        .into_response()
}

fn to_login() -> Response {
    Redirect::to("/ui/login").into_response()
}

#[derive(Deserialize)]
struct TokenQuery {
    token: Option<String>,
}

async fn index(
    State(ui): State<UiState>,
    Query(q): Query<TokenQuery>,
    headers: HeaderMap,
) -> Response {
    if let Some(token) = q.token {
        if !ui.token_ok(&token) {
            return (
                StatusCode::UNAUTHORIZED,
                Html(pages::login(Some(
                    "That link's token is not this server's admin token.",
                ))),
            )
                .into_response();
        }
        let id = ui.new_session();
        return (
            [(
                header::SET_COOKIE,
                ui.session_cookie(&id, SESSION.as_secs()),
            )],
            Redirect::to("/ui/"),
        )
            .into_response();
    }
    if !ui.signed_in(&headers) {
        return to_login();
    }
    Html(pages::topologies(&ui.topologies(), ui.0.alerts.is_some())).into_response()
}

async fn login_page() -> Html<String> {
    Html(pages::login(None))
}

#[derive(Deserialize)]
struct LoginForm {
    token: String,
}

async fn login(State(ui): State<UiState>, Form(f): Form<LoginForm>) -> Response {
    if !ui.token_ok(f.token.trim()) {
        return (
            StatusCode::UNAUTHORIZED,
            Html(pages::login(Some("Wrong token."))),
        )
            .into_response();
    }
    let id = ui.new_session();
    (
        [(
            header::SET_COOKIE,
            ui.session_cookie(&id, SESSION.as_secs()),
        )],
        Redirect::to("/ui/"),
    )
        .into_response()
}

async fn logout(State(ui): State<UiState>, headers: HeaderMap) -> Response {
    if let Some(id) = session_of(&headers) {
        ui.0.sessions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&id);
    }
    (
        [(header::SET_COOKIE, ui.session_cookie("", 0))],
        Redirect::to("/ui/login"),
    )
        .into_response()
}

async fn component_page(
    State(ui): State<UiState>,
    Path((topology, component)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    if !ui.signed_in(&headers) {
        return to_login();
    }
    let exists = ui
        .topologies()
        .iter()
        .any(|t| t.name() == topology && t.graph.nodes.iter().any(|n| n.id == component));
    if !exists {
        return (
            StatusCode::NOT_FOUND,
            Html(pages::not_found(&format!(
                "no component {component} in {topology}"
            ))),
        )
            .into_response();
    }
    Html(pages::component(
        &topology,
        &component,
        ui.0.alerts.is_some(),
    ))
    .into_response()
}

async fn alerts_page(State(ui): State<UiState>, headers: HeaderMap) -> Response {
    if !ui.signed_in(&headers) {
        return to_login();
    }
    if ui.0.alerts.is_none() {
        return (
            StatusCode::NOT_FOUND,
            Html(pages::not_found("this server has no alert database")),
        )
            .into_response();
    }
    Html(pages::alerts()).into_response()
}

async fn api_topologies(State(ui): State<UiState>, headers: HeaderMap) -> Response {
    if !ui.signed_in(&headers) {
        return unauthorized_json();
    }
    let views: Vec<Value> = ui.topologies().iter().map(|t| t.view()).collect();
    Json(json!({ "topologies": views })).into_response()
}

async fn api_component(
    State(ui): State<UiState>,
    Path((topology, component)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    if !ui.signed_in(&headers) {
        return unauthorized_json();
    }
    match ui
        .topologies()
        .iter()
        .find(|t| t.name() == topology)
        .and_then(|t| t.tasks_view(&component))
    {
        Some(v) => Json(v).into_response(),
        None => (
            StatusCode::NOT_FOUND,
            Json(json!({"error": format!("no component {component} in {topology}"), "reason": "unknown_component"})),
        )
            .into_response(),
    }
}

async fn kafka_page(State(ui): State<UiState>, headers: HeaderMap) -> Response {
    if !ui.signed_in(&headers) {
        return to_login();
    }
    Html(pages::kafka(ui.0.alerts.is_some())).into_response()
}

async fn api_kafka(State(ui): State<UiState>, headers: HeaderMap) -> Response {
    if !ui.signed_in(&headers) {
        return unauthorized_json();
    }
    Json(json!({ "partitions": squall_connectors::kafka::status::snapshot() })).into_response()
}

async fn api_alerts(State(ui): State<UiState>, headers: HeaderMap) -> Response {
    if !ui.signed_in(&headers) {
        return unauthorized_json();
    }
    match ui.alerts_view().await {
        Some(v) => Json(v).into_response(),
        None => (
            StatusCode::NOT_FOUND,
            Json(json!({"error": "this server has no alert database", "reason": "no_alerts"})),
        )
            .into_response(),
    }
}

fn asset(body: &'static str, kind: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, kind),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response()
}

/// The `/ui/` router.
pub fn router(ui: UiState) -> Router {
    Router::new()
        .route("/ui", get(|| async { Redirect::permanent("/ui/") }))
        .route("/ui/", get(index))
        .route("/ui/login", get(login_page).post(login))
        .route("/ui/logout", post(logout))
        .route("/ui/topology/{topology}/{component}", get(component_page))
        .route("/ui/alerts", get(alerts_page))
        .route("/ui/kafka", get(kafka_page))
        .route("/ui/api/kafka", get(api_kafka))
        .route("/ui/api/topologies", get(api_topologies))
        .route(
            "/ui/api/topologies/{topology}/components/{component}",
            get(api_component),
        )
        .route("/ui/api/alerts", get(api_alerts))
        .route(
            "/ui/assets/app.js",
            get(|| async {
                asset(
                    include_str!("assets/app.js"),
                    "text/javascript; charset=utf-8",
                )
            }),
        )
        .route(
            "/ui/assets/style.css",
            get(|| async { asset(include_str!("assets/style.css"), "text/css; charset=utf-8") }),
        )
        .with_state(ui)
}

/// `spout` or `bolt`.
fn kind_name(k: ComponentKind) -> &'static str {
    match k {
        ComponentKind::Spout => "spout",
        ComponentKind::Bolt => "bolt",
    }
}

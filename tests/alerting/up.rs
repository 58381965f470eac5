//! The alert pipeline end to end, the way a user runs it: `squall up` as a process on the
//! real broker, alert configs through the admin API, payloads built like the real v2
//! agent (zlib, Content-MD5) posted over HTTP, notifications received by an HTTP
//! receiver in this test. Event time comes from the payloads, so a 120 s wait takes no
//! real time.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::support::*;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use md5::{Digest, Md5};
use serde_json::{json, Value as Json};

pub(super) const TOKEN: &str = "alerting-test-admin-token";
pub(super) const KEY: &str = "f9ce01e1e962b59798d6350eb8cfce4c";
const HOST: &str = "web-01.example.com";

/// A `squall up` process and where it listens.
pub(super) struct Up {
    pub(super) child: Child,
    pub(super) intake: String,
    pub(super) admin: String,
}

impl Up {
    pub(super) fn start(dir: &Path, prefix: &str, env: &[(&str, &str)]) -> Up {
        Up::start_with(dir, prefix, env, &[])
    }

    /// [`Up::start`] with more arguments of `up` (`--metrics-addr ADDR`, ...); its log
    /// goes to `DIR/squall.log` when `SQUALL_TEST_KEEP_LOGS` is set.
    pub(super) fn start_with(dir: &Path, prefix: &str, env: &[(&str, &str)], args: &[&str]) -> Up {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_squall"));
        // `--data-dir` wins over the environment's `data_dir`.
        cmd.arg("up")
            .args(args)
            .arg("--data-dir")
            .arg(dir.join("data"))
            .current_dir(dir)
            .env("SQUALL__DATA_DIR", dir.join("not-the-data-dir"))
            .env("SQUALL__KAFKA__BROKERS", brokers())
            .env("SQUALL__KAFKA__PREFIX", prefix)
            .env("SQUALL__KAFKA__PARTITIONS", "2")
            .env("SQUALL__KAFKA__SESSION_TIMEOUT_MS", "6000")
            .env("SQUALL__INTAKE__LISTEN", "127.0.0.1:0")
            .env("SQUALL__ADMIN__LISTEN", "127.0.0.1:0")
            .env("SQUALL__ADMIN__TOKEN", TOKEN)
            .env("SQUALL__NOTIFIER__INITIAL_BACKOFF_MS", "50")
            .env("SQUALL__NOTIFIER__MAX_BACKOFF_MS", "200")
            // The tests' receivers listen on 127.0.0.1, which the notifier refuses unless
            // it is allowed.
            .env("SQUALL__NOTIFIER__ALLOWED_NETWORKS", "127.0.0.0/8")
            .env("RUST_LOG", "info,squall_connectors=warn")
            .env("NO_COLOR", "1")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        for (k, v) in env {
            cmd.env(k, v);
        }
        if std::env::var_os("SQUALL_TEST_KEEP_LOGS").is_some() {
            let log = std::fs::File::create(dir.join("squall.log")).unwrap();
            eprintln!("squall up logs to {}", dir.join("squall.log").display());
            cmd.stderr(log);
        }
        // Transparent huge pages off for the child (inherited across exec): with the
        // kernel's `always` policy an allocator's arenas are backed by 2 MiB pages and
        // resident memory says more about the machine than about squall, which the
        // memory-bound tests measure.
        // SAFETY: prctl is async-signal-safe and touches only this (forked) process.
        unsafe {
            use std::os::unix::process::CommandExt;
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0);
                Ok(())
            });
        }
        let mut child = cmd.spawn().unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let (mut intake, mut admin) = (None, None);
        while intake.is_none() || admin.is_none() {
            let line = rx
                .recv_timeout(Duration::from_secs(60))
                .expect("squall up prints where it listens");
            let url = line
                .split_whitespace()
                .find(|w| w.starts_with("http://"))
                .map(|u| {
                    u.trim_end_matches("/intake/")
                        .trim_end_matches("/api/v1/")
                        .to_string()
                });
            if line.trim_start().starts_with("intake") {
                intake = url;
            } else if line.trim_start().starts_with("admin API") {
                admin = url;
            }
        }
        Up {
            child,
            intake: intake.unwrap(),
            admin: admin.unwrap(),
        }
    }

    /// Ctrl-C, and a clean exit.
    pub(super) fn stop(mut self) {
        let status = Command::new("kill")
            .args(["-INT", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        assert!(self.child.wait().unwrap().success(), "clean exit on Ctrl-C");
    }

    /// SIGKILL: no graceful anything.
    pub(super) fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for Up {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One request the receiver got.
#[derive(Clone, Debug)]
pub(super) struct Received {
    pub(super) path: String,
    pub(super) key: String,
    /// `X-Squall-Sender`: which process sent it (`HOST:PID:START`).
    pub(super) sender: String,
    pub(super) body: Json,
    pub(super) answered: u16,
}

/// An HTTP receiver: `/flaky` answers 503 three times then 200, `/down` always 503,
/// `/hang` never answers its first request (later ones 200), anything else 200. `got`
/// holds the answered requests; `arrived` counts every request on arrival.
#[derive(Clone, Default)]
pub(super) struct Receiver {
    got: Arc<Mutex<Vec<Received>>>,
    arrived: Arc<Mutex<HashMap<String, usize>>>,
    /// `/fanout`: requests open now, and the most ever open at once.
    open: Arc<std::sync::atomic::AtomicUsize>,
    max_open: Arc<std::sync::atomic::AtomicUsize>,
}

async fn receive(
    State(r): State<Receiver>,
    uri: Uri,
    headers: HeaderMap,
    body: String,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let path = uri.path().to_string();
    let seen = r
        .got
        .lock()
        .unwrap()
        .iter()
        .filter(|x| x.path == path)
        .count();
    let arrival = {
        let mut a = r.arrived.lock().unwrap();
        let n = a.entry(path.clone()).or_default();
        *n += 1;
        *n
    };
    if path == "/fanout" {
        // A slow receiver that refuses its first 150 requests; it counts how many are
        // open at once.
        use std::sync::atomic::Ordering::SeqCst;
        let open = r.open.fetch_add(1, SeqCst) + 1;
        r.max_open.fetch_max(open, SeqCst);
        tokio::time::sleep(Duration::from_millis(5)).await;
        r.open.fetch_sub(1, SeqCst);
        if arrival <= 150 {
            return StatusCode::SERVICE_UNAVAILABLE.into_response();
        }
    }
    let status = match path.as_str() {
        "/flaky" if seen < 3 => StatusCode::SERVICE_UNAVAILABLE,
        "/down" => StatusCode::SERVICE_UNAVAILABLE,
        "/hang" if arrival == 1 => std::future::pending().await,
        "/redirect" => StatusCode::FOUND,
        p if p.starts_with("/huge") => StatusCode::BAD_REQUEST,
        _ => StatusCode::OK,
    };
    r.got.lock().unwrap().push(Received {
        path: path.clone(),
        key: headers
            .get("idempotency-key")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string(),
        sender: headers
            .get("x-squall-sender")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string(),
        body: serde_json::from_str(&body).unwrap_or(Json::Null),
        answered: status.as_u16(),
    });
    match path.as_str() {
        // Elsewhere, with a secret in the query: squall must neither go there nor say it.
        "/redirect" => {
            let host = headers
                .get("host")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default();
            let to = format!("http://{host}/stolen?token=REDIRECT-SECRET");
            (status, [(axum::http::header::LOCATION, to)]).into_response()
        }
        // An 8 MiB error body: squall reads 1 KiB of it.
        p if p.starts_with("/huge") => (status, "e".repeat(8 << 20)).into_response(),
        _ => status.into_response(),
    }
}

impl Receiver {
    pub(super) async fn start() -> (Receiver, String) {
        let r = Receiver::default();
        let app = axum::Router::new()
            .fallback(axum::routing::post(receive))
            .with_state(r.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        (r, url)
    }

    pub(super) fn on(&self, path: &str) -> Vec<Received> {
        self.got
            .lock()
            .unwrap()
            .iter()
            .filter(|x| x.path == path)
            .cloned()
            .collect()
    }

    /// Waits (bounded) until `path` got `n` requests.
    pub(super) async fn wait(&self, path: &str, n: usize, timeout: Duration) -> Vec<Received> {
        wait_until(timeout, || {
            (self.on(path).len() >= n).then(|| self.on(path))
        })
        .await
        .unwrap_or_else(|| panic!("{path}: {n} requests expected, got {:?}", self.on(path)))
    }
}

/// Polls `check` every 50 ms until it returns something or `timeout` passes.
pub(super) async fn wait_until<T>(
    timeout: Duration,
    mut check: impl FnMut() -> Option<T>,
) -> Option<T> {
    let deadline = tokio::time::Instant::now() + timeout;
    let mut every = tokio::time::interval(Duration::from_millis(50));
    loop {
        every.tick().await;
        if let Some(v) = check() {
            return Some(v);
        }
        if tokio::time::Instant::now() >= deadline {
            return None;
        }
    }
}

pub(super) struct Api {
    pub(super) client: reqwest::Client,
    pub(super) admin: String,
    pub(super) intake: String,
}

impl Api {
    pub(super) fn new(up: &Up) -> Api {
        Api {
            client: reqwest::Client::new(),
            admin: up.admin.clone(),
            intake: up.intake.clone(),
        }
    }

    pub(super) async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Json>,
    ) -> (u16, Json) {
        let mut req = self
            .client
            .request(method, format!("{}/api/v1{path}", self.admin))
            .bearer_auth(TOKEN);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Json::Null))
    }

    pub(super) async fn post(&self, path: &str, body: Json) -> Json {
        let (status, json) = self.call(reqwest::Method::POST, path, Some(body)).await;
        assert!((200..300).contains(&status), "POST {path}: {status} {json}");
        json
    }

    pub(super) async fn get(&self, path: &str) -> Json {
        let (status, json) = self.call(reqwest::Method::GET, path, None).await;
        assert_eq!(status, 200, "GET {path}: {json}");
        json
    }

    /// GETs `path` every 50 ms until `done` holds for its body (panics after `timeout`).
    pub(super) async fn wait_get(
        &self,
        path: &str,
        timeout: Duration,
        done: impl Fn(&Json) -> bool,
    ) -> Json {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut every = tokio::time::interval(Duration::from_millis(50));
        loop {
            every.tick().await;
            let body = self.get(path).await;
            if done(&body) {
                return body;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "GET {path}: still {body} after {timeout:?}"
            );
        }
    }

    /// Account `acme` with the agent key.
    pub(super) async fn account(&self) {
        self.post(
            "/accounts",
            json!({"name": "acme", "device_quota": 10, "active": true}),
        )
        .await;
        self.post("/accounts/acme/agent-keys", json!({ "agentKey": KEY }))
            .await;
    }

    /// Posts a v2 payload exactly as the agent does: the real fixture with this
    /// collection time and load, zlib-compressed, Content-MD5 of the body as sent.
    pub(super) async fn payload(&self, t: f64, load: f64) {
        let status = self.try_payload(t, load, HOST).await;
        assert_eq!(status, Some(202));
    }

    /// [`payload`](Self::payload) from host `host`: the status, or `None` when the
    /// process did not answer (gone, or killed mid-request).
    pub(super) async fn try_payload(&self, t: f64, load: f64, host: &str) -> Option<u16> {
        self.try_payload_with(t, load, host, |_| {}).await
    }

    /// [`try_payload`](Self::try_payload) with `edit` applied to the payload last.
    pub(super) async fn try_payload_with(
        &self,
        t: f64,
        load: f64,
        host: &str,
        edit: impl FnOnce(&mut Json),
    ) -> Option<u16> {
        self.try_payload_as(t, load, host, KEY, edit).await
    }

    /// [`try_payload_with`](Self::try_payload_with) as an agent with agent key `key`.
    pub(super) async fn try_payload_as(
        &self,
        t: f64,
        load: f64,
        host: &str,
        key: &str,
        edit: impl FnOnce(&mut Json),
    ) -> Option<u16> {
        let mut p: Json = serde_json::from_slice(
            &std::fs::read(format!(
                "{}/tests/fixtures/payloads/sd-agent-v2.json",
                env!("CARGO_MANIFEST_DIR")
            ))
            .unwrap(),
        )
        .unwrap();
        p["collection_timestamp"] = json!(t);
        p["system.load.1"] = json!(load);
        p["agentKey"] = json!(key);
        p["internalHostname"] = json!(host);
        edit(&mut p);
        let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
        z.write_all(&serde_json::to_vec(&p).unwrap()).unwrap();
        let body = z.finish().unwrap();
        let r = self
            .client
            .post(format!("{}/intake/?agent_key={key}", self.intake))
            .header("Host", "acme.agent.example.com")
            .header("Content-Type", "application/json")
            .header("Content-Encoding", "deflate")
            .header("Content-MD5", format!("{:x}", Md5::digest(&body)))
            .body(body)
            .send()
            .await
            .ok()?;
        let status = r.status().as_u16();
        if status != 202 && status != 503 {
            panic!("{status}: {}", r.text().await.unwrap_or_default());
        }
        Some(status)
    }
}

pub(super) fn config(receiver: &str, patch: Json) -> Json {
    let mut c = json!({
        "account": "acme",
        "name": "High load",
        "kind": "threshold",
        "subject": {"type": "account"},
        "metric": "system.load.1",
        "comparison": "gte",
        "value": 4,
        "wait": {"seconds": 120, "enabled": true},
        "repeat": {"seconds": 600, "enabled": true},
        "fix": true,
        "recipients": [
            {"type": "webhook", "url": format!("{receiver}/hook"), "grouping": {"group_by": []}},
            {"type": "slack", "url": format!("{receiver}/slack"), "grouping": {"group_by": []}},
            {"type": "pagerduty", "url": format!("{receiver}/pd"), "routing_key": "R0UT1NG", "grouping": {"group_by": []}}
        ]
    });
    for (k, v) in patch.as_object().unwrap() {
        c[k] = v.clone();
    }
    c
}

/// A whole-second event time well in the past (event time, not server time, drives rules).
pub(super) fn t0() -> f64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    (now - 7200) as f64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wait_rule_fires_once_repeats_and_clears_with_each_recipients_exact_body() {
    let dir = tempfile::tempdir().unwrap();
    let (receiver, url) = Receiver::start().await;
    let up = Up::start(dir.path(), &format!("{}.", unique("e2e")), &[]);
    let api = Api::new(&up);
    api.account().await;
    let created = api.post("/alerts/configs", config(&url, json!({}))).await;
    let config_id = created["id"].as_i64().unwrap();

    let t0 = t0();
    api.payload(t0, 5.0).await; // pending from t0
    api.payload(t0 + 60.0, 5.0).await;
    api.payload(t0 + 60.0, 5.0).await; // an agent's retry: a duplicate
    api.payload(t0 + 119.0, 6.0).await; // not yet
    api.payload(t0 + 120.0, 7.0).await; // fires here
    api.payload(t0 + 100.0, 0.5).await; // late: must not cancel or clear
    api.payload(t0 + 180.0, 8.0).await; // firing, repeat not due
    api.payload(t0 + 720.0, 9.0).await; // repeat due (600 s after t0+120)
    api.payload(t0 + 780.0, 1.0).await; // clears

    // Each recipient's notifications of one alert are delivered in order, so the resolved
    // one arriving means everything before it arrived too.
    let hook = receiver.wait("/hook", 3, Duration::from_secs(90)).await;
    let slack = receiver.wait("/slack", 3, Duration::from_secs(30)).await;
    let pd = receiver.wait("/pd", 3, Duration::from_secs(30)).await;

    let statuses: Vec<&str> = hook
        .iter()
        .map(|r| r.body["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["firing", "firing", "resolved"], "{hook:#?}");
    let device = api.get("/accounts/acme/devices").await[0]["id"]
        .as_i64()
        .unwrap();
    let first = &hook[0].body;
    assert_eq!(first["version"], "4");
    assert_eq!(first["receiver"], "squall");
    let alert = &first["alerts"][0];
    assert_eq!(
        alert["labels"],
        json!({"alertname": "High load", "account": "acme", "device": HOST,
               "device_id": device.to_string(), "metric": "system.load.1"})
    );
    assert_eq!(
        alert["annotations"]["value"], "7",
        "the value that fired it"
    );
    assert_eq!(alert["annotations"]["threshold"], "gte 4");
    assert!(alert["annotations"]["summary"]
        .as_str()
        .unwrap()
        .starts_with("High load: system.load.1 = 7 on web-01.example.com"));
    assert_eq!(alert["endsAt"], "0001-01-01T00:00:00Z");
    assert_eq!(
        hook[1].body["alerts"][0]["annotations"]["value"], "9",
        "the repeat"
    );
    let resolved = &hook[2].body["alerts"][0];
    assert_eq!(resolved["status"], "resolved");
    assert_ne!(resolved["endsAt"], "0001-01-01T00:00:00Z");
    for r in &hook {
        assert_eq!(
            r.body["alerts"][0]["startsAt"], alert["startsAt"],
            "one alert"
        );
        assert_eq!(r.body["alerts"][0]["fingerprint"], alert["fingerprint"]);
    }
    let keys: std::collections::BTreeSet<&str> = hook.iter().map(|r| r.key.as_str()).collect();
    assert_eq!(keys.len(), 3, "an Idempotency-Key per notification");
    assert!(keys.iter().all(|k| !k.is_empty()));

    let texts: Vec<&str> = slack
        .iter()
        .map(|r| r.body["text"].as_str().unwrap())
        .collect();
    assert!(
        texts[0].starts_with("[FIRING] High load: system.load.1 = 7"),
        "{texts:?}"
    );
    assert!(
        texts[1].starts_with("[FIRING] High load (still firing)"),
        "{texts:?}"
    );
    assert!(
        texts[2].starts_with("[RESOLVED] High load resolved"),
        "{texts:?}"
    );
    assert_eq!(
        slack[0].body.as_object().unwrap().len(),
        1,
        "just {{\"text\"}}"
    );

    let actions: Vec<&str> = pd
        .iter()
        .map(|r| r.body["event_action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["trigger", "trigger", "resolve"]);
    for r in &pd {
        assert_eq!(r.body["routing_key"], "R0UT1NG");
        assert_eq!(r.body["dedup_key"], pd[0].body["dedup_key"]);
        assert_eq!(r.body["payload"]["source"], HOST);
        assert_eq!(r.body["payload"]["severity"], "critical");
        assert!(!r.body["payload"]["summary"].as_str().unwrap().is_empty());
    }

    let open = api.get("/alerts/triggered?closed=false").await;
    assert_eq!(open, json!([]), "nothing open after the clear");
    let closed = api.get("/alerts/triggered?closed=true").await;
    assert_eq!(closed.as_array().unwrap().len(), 1, "{closed}");
    assert_eq!(closed[0]["config_id"], config_id);
    assert_eq!(closed[0]["device"], device);
    assert_eq!(closed[0]["metric"], "system.load.1");
    assert_eq!(
        closed[0]["fired_at"],
        t0 + 120.0,
        "fired at t0+120, not before"
    );
    assert_eq!(closed[0]["closed_at"], t0 + 780.0);
    assert_eq!(closed[0]["last_value"], 1.0);
    let deliveries = api.get("/notifications").await;
    assert_eq!(deliveries.as_array().unwrap().len(), 9, "{deliveries}");
    assert!(deliveries
        .as_array()
        .unwrap()
        .iter()
        .all(|d| d["status"] == "delivered"));
    // Nothing else arrives: exactly three per recipient.
    assert_eq!(receiver.got.lock().unwrap().len(), 9);
    up.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_data_fires_after_its_wait_and_clears_on_the_next_payload() {
    let dir = tempfile::tempdir().unwrap();
    let (receiver, url) = Receiver::start().await;
    let up = Up::start(dir.path(), &format!("{}.", unique("e2e")), &[]);
    let api = Api::new(&up);
    api.account().await;
    api.post(
        "/alerts/configs",
        config(
            &url,
            json!({"name": "Silent", "kind": "no_data", "metric": null, "comparison": null,
                   "value": null, "wait": {"seconds": 2, "enabled": true},
                   "repeat": {"seconds": 600, "enabled": false},
                   "recipients": [{"type": "webhook", "url": format!("{url}/hook"), "grouping": {"group_by": []}}]}),
        ),
    )
    .await;
    api.payload(t0(), 1.0).await;
    let fired = receiver.wait("/hook", 1, Duration::from_secs(60)).await;
    assert_eq!(fired[0].body["status"], "firing");
    assert!(fired[0].body["alerts"][0]["annotations"]["summary"]
        .as_str()
        .unwrap()
        .contains("no data from web-01.example.com for 2 s"));
    let open = api.get("/alerts/triggered").await;
    assert_eq!(open.as_array().unwrap().len(), 1, "{open}");
    assert_eq!(open[0]["metric"], Json::Null);

    api.payload(t0() + 60.0, 1.0).await;
    let both = receiver.wait("/hook", 2, Duration::from_secs(60)).await;
    assert_eq!(both[1].body["status"], "resolved");
    assert_eq!(api.get("/alerts/triggered").await, json!([]));
    up.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flaky_receiver_gets_it_once_and_one_down_past_max_age_gets_it_archived() {
    let dir = tempfile::tempdir().unwrap();
    let (receiver, url) = Receiver::start().await;
    let up = Up::start(
        dir.path(),
        &format!("{}.", unique("e2e")),
        &[("SQUALL__NOTIFIER__MAX_AGE_S", "3")],
    );
    let api = Api::new(&up);
    api.account().await;
    api.post(
        "/alerts/configs",
        config(
            &url,
            json!({"wait": {"seconds": 0, "enabled": false},
                   "recipients": [{"type": "webhook", "url": format!("{url}/flaky"), "grouping": {"group_by": []}},
                                  {"type": "webhook", "url": format!("{url}/down"), "grouping": {"group_by": []}}]}),
        ),
    )
    .await;
    api.payload(t0(), 5.0).await;

    let flaky = receiver.wait("/flaky", 4, Duration::from_secs(60)).await;
    let answered: Vec<u16> = flaky.iter().map(|r| r.answered).collect();
    assert_eq!(answered, [503, 503, 503, 200]);
    assert!(
        flaky.iter().all(|r| r.key == flaky[0].key),
        "one id, retried"
    );

    let outcomes = api
        .wait_get("/notifications", Duration::from_secs(60), |d| {
            d.as_array().unwrap().len() == 2
        })
        .await;
    let by_status: HashMap<String, Json> = outcomes
        .as_array()
        .unwrap()
        .iter()
        .map(|d| (d["status"].as_str().unwrap().to_string(), d.clone()))
        .collect();
    assert_eq!(by_status["delivered"]["attempts"], 4);
    assert_eq!(by_status["delivered"]["id"], flaky[0].key.as_str());
    let archived = &by_status["archived"];
    assert!(
        archived["reason"].as_str().unwrap().contains("max_age_s"),
        "{archived}"
    );
    assert!(receiver.on("/down").iter().all(|r| r.answered == 503));
    // After the final outcome nothing is sent again.
    assert_eq!(receiver.on("/flaky").len(), 4);
    up.stop();
}

/// The notifier calls public addresses only, unless `notifier.allowed_networks` lists a
/// network: with nothing allowed, a receiver on 127.0.0.1 (an IP literal), on `localhost`
/// (a name, refused on the addresses it resolves to) and the cloud metadata address are
/// each a final failure naming why, and nothing reaches the receiver.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_notifier_refuses_internal_addresses_unless_allowed() {
    let dir = tempfile::tempdir().unwrap();
    let (receiver, url) = Receiver::start().await;
    let port = url.rsplit(':').next().unwrap().to_string();
    let up = Up::start(
        dir.path(),
        &format!("{}.", unique("e2e")),
        &[("SQUALL__NOTIFIER__ALLOWED_NETWORKS", "")],
    );
    let api = Api::new(&up);
    api.account().await;
    api.post(
        "/alerts/configs",
        config(
            &url,
            json!({"wait": {"seconds": 0, "enabled": false},
            "recipients": [
                {"type": "webhook", "url": format!("{url}/literal"), "grouping": {"group_by": []}},
                {"type": "webhook", "url": format!("http://localhost:{port}/named"), "grouping": {"group_by": []}},
                {"type": "webhook", "url": "http://169.254.169.254/latest/meta-data", "grouping": {"group_by": []}}
            ]}),
        ),
    )
    .await;
    api.payload(t0(), 5.0).await;
    let outcomes = api
        .wait_get("/notifications", Duration::from_secs(60), |d| {
            d.as_array().unwrap().len() == 3
        })
        .await;
    for d in outcomes.as_array().unwrap() {
        let reason = d["reason"].as_str().unwrap();
        assert_eq!(d["status"], "failed", "{d}");
        assert!(
            reason.starts_with("refused: ") && reason.contains("notifier.allowed_networks"),
            "{d}"
        );
    }
    let reasons = outcomes.to_string();
    assert!(
        reasons.contains("127.0.0.1 is a loopback address"),
        "{reasons}"
    );
    assert!(reasons.contains("localhost: "), "{reasons}");
    assert!(
        reasons.contains("169.254.169.254 is a link-local"),
        "{reasons}"
    );
    assert!(receiver.on("/literal").is_empty() && receiver.on("/named").is_empty());
    up.stop();
}

/// What a receiver answers cannot steer the notifier: a redirect is a final failure (not
/// followed), an 8 MiB error body is read 1 KiB deep, and the stored reasons never hold a
/// webhook's path or query, where its secret lives (a receiver that is down, archived
/// after `max_age_s`, included).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn receivers_cannot_redirect_flood_or_leak_the_notifier() {
    let dir = tempfile::tempdir().unwrap();
    let (receiver, url) = Receiver::start().await;
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let up = Up::start(
        dir.path(),
        &format!("{}.", unique("e2e")),
        &[("SQUALL__NOTIFIER__MAX_AGE_S", "3")],
    );
    let api = Api::new(&up);
    api.account().await;
    api.post(
        "/alerts/configs",
        config(
            &url,
            json!({"wait": {"seconds": 0, "enabled": false},
                   "recipients": [
                       {"type": "webhook", "url": format!("{url}/redirect"), "grouping": {"group_by": []}},
                       {"type": "webhook", "url": format!("{url}/huge/T000/B000/PATH-SECRET"), "grouping": {"group_by": []}},
                       {"type": "webhook", "url": format!("http://127.0.0.1:{closed}/services/DOWN-SECRET?token=QUERY-SECRET"), "grouping": {"group_by": []}}
                   ]}),
        ),
    )
    .await;
    api.payload(t0(), 5.0).await;
    let outcomes = api
        .wait_get("/notifications", Duration::from_secs(60), |d| {
            d.as_array().unwrap().len() == 3
        })
        .await;
    let text = outcomes.to_string();
    for secret in [
        "REDIRECT-SECRET",
        "PATH-SECRET",
        "DOWN-SECRET",
        "QUERY-SECRET",
    ] {
        assert!(!text.contains(secret), "{secret} in {text}");
    }
    let reasons: Vec<(String, String)> = outcomes
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["status"].as_str().unwrap().to_string(),
                d["reason"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert!(
        reasons.iter().any(|(s, r)| s == "failed"
            && r.contains("302")
            && r.contains("redirects are not followed")),
        "{reasons:?}"
    );
    assert!(
        receiver.on("/stolen").is_empty(),
        "the redirect was followed"
    );
    assert!(
        reasons
            .iter()
            .any(|(s, r)| s == "failed" && r.starts_with("HTTP 400") && r.len() < 300),
        "{reasons:?}"
    );
    assert!(
        reasons
            .iter()
            .any(|(s, r)| s == "archived" && r.contains(&format!("http://127.0.0.1:{closed}/…"))),
        "{reasons:?}"
    );
    up.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_mid_wait_and_mid_delivery_it_neither_misses_nor_repeats_a_notification() {
    let dir = tempfile::tempdir().unwrap();
    let prefix = format!("{}.", unique("e2e"));
    let (receiver, url) = Receiver::start().await;
    let up = Up::start(dir.path(), &prefix, &[]);
    let api = Api::new(&up);
    api.account().await;
    api.post(
        "/alerts/configs",
        config(
            &url,
            json!({"recipients": [{"type": "webhook", "url": format!("{url}/hang"), "grouping": {"group_by": []}}]}),
        ),
    )
    .await;
    let t0 = t0();
    api.payload(t0, 5.0).await;
    api.payload(t0 + 60.0, 5.0).await;
    // Mid-wait (pending since t0). Whether or not the threshold bolt got to these payloads
    // before the kill, the restarted process must fire exactly at t0+120: from the state it
    // persisted, or by replaying the uncommitted payloads.
    api.wait_get("/accounts/acme/devices", Duration::from_secs(60), |d| {
        d.as_array().is_some_and(|a| !a.is_empty())
    })
    .await;
    up.kill();

    let up = Up::start(dir.path(), &prefix, &[]);
    let api = Api::new(&up);
    api.payload(t0 + 90.0, 5.0).await;
    api.payload(t0 + 120.0, 5.0).await; // fires
                                        // Mid-delivery: the receiver holds the first request unanswered; kill the process.
    wait_until(Duration::from_secs(90), || {
        let n = receiver.arrived.lock().unwrap().get("/hang").copied();
        (n >= Some(1)).then_some(())
    })
    .await
    .expect("the notification reached the receiver");
    up.kill();

    // After the restart the notification is delivered (the receiver now answers), once.
    let up = Up::start(dir.path(), &prefix, &[]);
    let api = Api::new(&up);
    let got = receiver.wait("/hang", 1, Duration::from_secs(90)).await;
    assert_eq!(got[0].body["status"], "firing");
    let delivered = api
        .wait_get("/notifications", Duration::from_secs(60), |d| {
            d.as_array().unwrap().len() == 1
        })
        .await;
    assert_eq!(delivered[0]["status"], "delivered");
    assert_eq!(delivered[0]["id"], got[0].key.as_str());

    api.payload(t0 + 180.0, 5.0).await; // still firing, no repeat due
    api.payload(t0 + 240.0, 1.0).await; // clears
    let all = receiver.wait("/hang", 2, Duration::from_secs(60)).await;
    let statuses: Vec<&str> = all
        .iter()
        .map(|r| r.body["status"].as_str().unwrap())
        .collect();
    assert_eq!(
        statuses,
        ["firing", "resolved"],
        "no missed or duplicate notification"
    );
    assert_ne!(all[0].key, all[1].key);
    let closed = api
        .wait_get(
            "/alerts/triggered?closed=true",
            Duration::from_secs(30),
            |d| d.as_array().unwrap().len() == 1,
        )
        .await;
    assert_eq!(closed[0]["fired_at"], t0 + 120.0, "not early: at t0+120");
    assert_eq!(closed[0]["closed_at"], t0 + 240.0);
    assert_eq!(api.get("/alerts/triggered").await, json!([]));
    up.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_embedded_defaults_squall_up_needs_no_broker_and_still_notifies() {
    let dir = tempfile::tempdir().unwrap();
    let (receiver, url) = Receiver::start().await;
    // No brokers configured: `squall up` runs librdkafka's in-process cluster.
    let up = Up::start(dir.path(), "squall.", &[("SQUALL__KAFKA__BROKERS", "")]);
    let api = Api::new(&up);
    api.account().await;
    api.post(
        "/alerts/configs",
        config(
            &url,
            json!({"wait": {"seconds": 0, "enabled": false},
                   "recipients": [{"type": "slack", "url": format!("{url}/slack"), "grouping": {"group_by": []}}]}),
        ),
    )
    .await;
    api.payload(t0(), 4.0).await;
    let got = receiver.wait("/slack", 1, Duration::from_secs(60)).await;
    assert!(got[0].body["text"]
        .as_str()
        .unwrap()
        .starts_with("[FIRING] High load: system.load.1 = 4"));
    assert!(dir.path().join("data/squall.db").exists(), "--data-dir");
    assert!(
        !dir.path().join("not-the-data-dir").exists(),
        "the flag beat SQUALL__DATA_DIR"
    );
    up.stop();
}

/// The Durability issue's acceptance test: `squall up` on its defaults (no broker
/// configured, so the durable journal under the data directory) is SIGKILLed three times
/// while four agents post concurrently, then started once more: every payload it answered
/// 202 is readable through the query API, once (one minute each, its load a marker).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkilled_while_agents_post_on_defaults_it_loses_no_accepted_payload() {
    use std::sync::atomic::{AtomicBool, Ordering};
    let dir = tempfile::tempdir().unwrap();
    let env = [("SQUALL__KAFKA__BROKERS", "")];
    let hosts: Vec<String> = (0..4).map(|i| format!("agent-{i}.example.com")).collect();
    // Per host: the marker of every payload answered 202, and the next one to send (an
    // agent resends a payload until it is answered 202).
    let accepted: Arc<Mutex<HashMap<String, Vec<u32>>>> = Arc::default();
    let next: Arc<Mutex<HashMap<String, u32>>> = Arc::default();
    let t0 = t0() - 86_400.0;
    for round in 0..3 {
        let up = Up::start(dir.path(), "squall.", &env);
        let api = Arc::new(Api::new(&up));
        if round == 0 {
            api.account().await;
        }
        let before: usize = accepted.lock().unwrap().values().map(Vec::len).sum();
        let gone = Arc::new(AtomicBool::new(false));
        let agents: Vec<_> = hosts
            .iter()
            .map(|host| {
                let (api, accepted, next, gone, host) = (
                    api.clone(),
                    accepted.clone(),
                    next.clone(),
                    gone.clone(),
                    host.clone(),
                );
                tokio::spawn(async move {
                    let mut backoff = tokio::time::interval(Duration::from_millis(20));
                    while !gone.load(Ordering::Acquire) {
                        let i = *next.lock().unwrap().entry(host.clone()).or_default();
                        match api
                            .try_payload(t0 + 60.0 * f64::from(i), f64::from(i), &host)
                            .await
                        {
                            Some(202) => {
                                accepted
                                    .lock()
                                    .unwrap()
                                    .entry(host.clone())
                                    .or_default()
                                    .push(i);
                                *next.lock().unwrap().get_mut(&host).unwrap() += 1;
                            }
                            // 503: the agent retries later.
                            Some(_) => {
                                backoff.tick().await;
                            }
                            None => break, // the process is gone
                        }
                    }
                })
            })
            .collect();
        // Kill once this round got at least 60 answers, agents still posting.
        let more = wait_until(Duration::from_secs(60), || {
            let now: usize = accepted.lock().unwrap().values().map(Vec::len).sum();
            (now >= before + 60).then_some(now)
        })
        .await;
        assert!(
            more.is_some(),
            "round {round}: the agents got their payloads in"
        );
        up.kill();
        gone.store(true, Ordering::Release);
        for a in agents {
            a.await.unwrap();
        }
    }
    let up = Up::start(dir.path(), "squall.", &env);
    let api = Api::new(&up);
    let accepted = accepted.lock().unwrap().clone();
    let next = next.lock().unwrap().clone();
    let total: usize = accepted.values().map(Vec::len).sum();
    assert!(total >= 180, "{total} payloads accepted");
    let devices = api.get("/accounts/acme/devices").await;
    for host in &hosts {
        let id = devices
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["hostname"] == json!(host))
            .unwrap_or_else(|| panic!("{host} registered: {devices}"))["id"]
            .clone();
        let want = &accepted[host];
        let path = format!("/devices/{id}/metrics?metric=system.load.1&resolution=minute");
        let got = api
            .wait_get(&path, Duration::from_secs(60), |d| {
                let stored: std::collections::HashSet<u64> = d["points"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|p| p["value"].as_f64().unwrap() as u64)
                    .collect();
                want.iter().all(|i| stored.contains(&u64::from(*i)))
            })
            .await;
        let points = got["points"].as_array().unwrap();
        let markers: Vec<u32> = points
            .iter()
            .map(|p| p["value"].as_f64().unwrap() as u32)
            .collect();
        let unique: std::collections::HashSet<u32> = markers.iter().copied().collect();
        assert_eq!(unique.len(), markers.len(), "{host}: stored once each");
        // Beyond what was answered 202, at most the payload a kill cut off unanswered.
        let extra: Vec<u32> = unique
            .iter()
            .filter(|i| !want.contains(i))
            .copied()
            .collect();
        assert!(
            extra.iter().all(|i| *i == next[host]),
            "{host}: stored {extra:?} never sent"
        );
    }
    up.stop();
}

/// A payload from year 11,000 (and one from 5138) before real ones: rejected as
/// `timestamp_out_of_range`, they move nothing; the device's next real payload still
/// fires its alert, at its own time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_that_sent_a_far_future_time_still_alerts_on_its_next_payloads() {
    let dir = tempfile::tempdir().unwrap();
    let (receiver, url) = Receiver::start().await;
    let up = Up::start(dir.path(), "squall.", &[("SQUALL__KAFKA__BROKERS", "")]);
    let api = Api::new(&up);
    api.account().await;
    api.post(
        "/alerts/configs",
        config(
            &url,
            json!({"wait": {"seconds": 0, "enabled": false},
                   "recipients": [{"type": "slack", "url": format!("{url}/slack"), "grouping": {"group_by": []}}]}),
        ),
    )
    .await;
    api.payload(3e11, 4.0).await;
    api.payload(1e11, 4.0).await;
    let t0 = t0();
    api.payload(t0, 4.0).await;
    let got = receiver.wait("/slack", 1, Duration::from_secs(60)).await;
    assert!(got[0].body["text"]
        .as_str()
        .unwrap()
        .starts_with("[FIRING] High load: system.load.1 = 4"));
    let open = api
        .wait_get("/alerts/triggered", Duration::from_secs(30), |d| {
            d.as_array().unwrap().len() == 1
        })
        .await;
    assert_eq!(open[0]["fired_at"], t0, "fired at the real payload's time");
    api.payload(t0 + 60.0, 1.0).await;
    let got = receiver.wait("/slack", 2, Duration::from_secs(60)).await;
    assert!(
        got[1].body["text"].as_str().unwrap().contains("RESOLVED"),
        "{:?}",
        got[1].body
    );
    up.stop();
}

/// One payload with 500 series of a metric under an account-wide rule, to a slow receiver
/// that refuses its first 150 requests: 500 notifications, each delivered exactly once
/// (by Idempotency-Key), never more than `notifier.max_in_flight_per_host` (8) requests
/// open at the receiver at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_500_series_fan_out_is_delivered_once_each_with_bounded_concurrency() {
    let dir = tempfile::tempdir().unwrap();
    let (receiver, url) = Receiver::start().await;
    let up = Up::start(
        dir.path(),
        "squall.",
        &[
            ("SQUALL__KAFKA__BROKERS", ""),
            ("SQUALL__INTAKE__MAX_POINTS", "1000"),
        ],
    );
    let api = Api::new(&up);
    api.account().await;
    api.post(
        "/alerts/configs",
        config(
            &url,
            json!({"name": "Disk full", "metric": "system.disk.in_use", "value": 0.9,
                   "wait": {"seconds": 0, "enabled": false},
                   "repeat": {"seconds": 0, "enabled": false},
                   "recipients": [{"type": "webhook", "url": format!("{url}/fanout"), "grouping": {"group_by": []}}]}),
        ),
    )
    .await;
    let t = t0();
    let status = api
        .try_payload_with(t, 1.0, HOST, |p| {
            let rows: Vec<Json> = (0..500)
                .map(|i| {
                    json!(["system.disk.in_use", t, 0.95,
                           {"hostname": HOST, "type": "gauge", "device_name": format!("/dev/d{i}")}])
                })
                .collect();
            p["metrics"] = json!(rows);
        })
        .await;
    assert_eq!(status, Some(202));
    let delivered = wait_until(Duration::from_secs(120), || {
        let ok: Vec<Received> = receiver
            .on("/fanout")
            .into_iter()
            .filter(|r| r.answered == 200)
            .collect();
        (ok.len() >= 500).then_some(ok)
    })
    .await
    .unwrap_or_else(|| panic!("500 deliveries; got {}", receiver.on("/fanout").len()));
    let ids: std::collections::HashSet<&str> = delivered.iter().map(|r| r.key.as_str()).collect();
    assert_eq!(ids.len(), 500, "500 distinct notification ids");
    let max = receiver.max_open.load(std::sync::atomic::Ordering::SeqCst);
    assert!((1..=8).contains(&max), "{max} requests open at once");
    // Settled: nothing more arrives, and no id was delivered twice.
    let all = api
        .wait_get("/notifications", Duration::from_secs(30), |d| {
            d.as_array().unwrap().len() >= 500
        })
        .await;
    assert_eq!(all.as_array().unwrap().len(), 500);
    let twice = receiver
        .on("/fanout")
        .iter()
        .filter(|r| r.answered == 200)
        .count();
    assert_eq!(twice, 500, "each id answered 200 exactly once");
    up.stop();
}

/// Bytes in every segment of `topic` in the journal under `dir`.
fn journal_bytes(dir: &Path, topic: &str) -> u64 {
    let topic_dir = dir.join("data/journal/topics").join(topic);
    std::fs::read_dir(&topic_dir)
        .unwrap_or_else(|e| panic!("{}: {e}", topic_dir.display()))
        .flat_map(|p| std::fs::read_dir(p.unwrap().path()).unwrap())
        .map(|f| f.unwrap().metadata().unwrap().len())
        .sum()
}

/// The database held by another connection's exclusive lock for 10 s, far past what the
/// old retries allowed (5 retries 0.1 to 1.6 s apart, each attempt waiting
/// `busy_timeout_ms`, 100 ms here, before it fails): the payloads are accepted meanwhile,
/// nothing is notified, rejected or dead-lettered; once the lock is gone every payload is
/// stored and evaluated in order (a retry must not reorder a device's payloads: the
/// engine would take the older ones for late arrivals), and the alert fires and resolves.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_locked_past_the_old_retry_budget_loses_and_dead_letters_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (receiver, url) = Receiver::start().await;
    let db = dir.path().join("data/squall.db");
    let db_url = format!("sqlite://{}?busy_timeout_ms=100", db.display());
    let up = Up::start(
        dir.path(),
        "squall.",
        &[("SQUALL__KAFKA__BROKERS", ""), ("SQUALL__DB__URL", &db_url)],
    );
    let api = Api::new(&up);
    api.account().await;
    api.post(
        "/alerts/configs",
        config(
            &url,
            json!({"wait": {"seconds": 0, "enabled": false},
                   "recipients": [{"type": "webhook", "url": format!("{url}/hook"), "grouping": {"group_by": []}}]}),
        ),
    )
    .await;
    let lock = rusqlite::Connection::open(&db).unwrap();
    lock.execute_batch("BEGIN EXCLUSIVE").unwrap();
    let t0 = t0();
    let loads = [1.0, 1.0, 4.0, 4.0, 1.0];
    for (i, load) in loads.iter().enumerate() {
        api.payload(t0 + 60.0 * i as f64, *load).await;
    }
    // The fault lasts 10 s.
    tokio::time::sleep(Duration::from_secs(10)).await;
    assert!(
        receiver.on("/hook").is_empty(),
        "nothing evaluated while locked"
    );
    lock.execute_batch("ROLLBACK").unwrap();
    drop(lock);
    let got = receiver.wait("/hook", 2, Duration::from_secs(60)).await;
    assert_eq!(got[0].body["status"], "firing");
    assert_eq!(got[1].body["status"], "resolved");
    let devices = api.get("/accounts/acme/devices").await;
    let id = devices[0]["id"].clone();
    let stored = api
        .wait_get(
            &format!("/devices/{id}/metrics?metric=system.load.1"),
            Duration::from_secs(30),
            |d| d["points"].as_array().unwrap().len() == loads.len(),
        )
        .await;
    let values: Vec<f64> = stored["points"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["value"].as_f64().unwrap())
        .collect();
    assert_eq!(values, loads);
    assert_eq!(
        journal_bytes(dir.path(), "squall.dead-letter"),
        0,
        "nothing dead-lettered"
    );
    assert_eq!(
        journal_bytes(dir.path(), "squall.rejected"),
        0,
        "nothing rejected"
    );
    up.stop();
}

/// Runs `squall dead-letters ARGS` against `up`; returns its standard output.
fn dead_letters_cli(up: &Up, args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_squall"))
        .arg("dead-letters")
        .args(args)
        .args(["--admin", &up.admin])
        .env("SQUALL__ADMIN__TOKEN", TOKEN)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "squall dead-letters {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// A permanent failure (the metrics table gone: an operator's mistake) dead-letters the
/// payload after its retries, with the reason; `squall dead-letters list` shows it, and
/// once the table is back `squall dead-letters replay` re-injects it: it is stored, and
/// nothing is pending any more.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_lettered_payload_is_listed_with_its_reason_and_replayed_once_fixed() {
    let dir = tempfile::tempdir().unwrap();
    let up = Up::start(dir.path(), "squall.", &[("SQUALL__KAFKA__BROKERS", "")]);
    let api = Api::new(&up);
    api.account().await;
    let t0 = t0();
    api.payload(t0, 1.0).await;
    let devices = api
        .wait_get("/accounts/acme/devices", Duration::from_secs(30), |d| {
            d.as_array().unwrap().len() == 1
        })
        .await;
    let metrics = format!("/devices/{}/metrics?metric=system.load.1", devices[0]["id"]);
    api.wait_get(&metrics, Duration::from_secs(30), |d| {
        d["points"].as_array().unwrap().len() == 1
    })
    .await;

    let db = rusqlite::Connection::open(dir.path().join("data/squall.db")).unwrap();
    db.execute_batch("ALTER TABLE metric_minutes RENAME TO metric_minutes_away")
        .unwrap();
    api.payload(t0 + 60.0, 2.0).await;
    let listed = api
        .wait_get("/dead-letters", Duration::from_secs(60), |d| {
            d.as_array().unwrap().len() == 1
        })
        .await;
    let reason = listed[0]["reason"].as_str().unwrap();
    assert!(
        reason.contains("store") && reason.contains("metric_minutes"),
        "{reason}"
    );
    assert_eq!(listed[0]["original_topic"], "squall.payloads");
    let table = dead_letters_cli(&up, &["list"]);
    assert!(table.contains("1 pending"), "{table}");
    assert!(table.contains("metric_minutes"), "{table}");

    db.execute_batch("ALTER TABLE metric_minutes_away RENAME TO metric_minutes")
        .unwrap();
    let replayed = dead_letters_cli(&up, &["replay", "--reason", "metric_minutes"]);
    assert_eq!(replayed.trim(), r#"{"replayed":1}"#);
    let stored = api
        .wait_get(&metrics, Duration::from_secs(30), |d| {
            d["points"].as_array().unwrap().len() == 2
        })
        .await;
    assert_eq!(stored["points"][1]["value"], 2.0);
    assert_eq!(dead_letters_cli(&up, &["list", "--json"]).trim(), "[]");
    up.stop();
}

/// Backpressure reaches the agents: with the database locked, the journal fills past
/// `kafka.journal_max_backlog_mb` (1 MB here) and the intake answers 503 with
/// `Retry-After` instead of queueing without bound; once the lock is gone, every payload
/// answered 202 is stored, and the refused ones go through when sent again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stuck_pipeline_pushes_back_to_the_agents_with_503_and_retry_after() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("data/squall.db");
    let db_url = format!("sqlite://{}?busy_timeout_ms=50", db.display());
    let up = Up::start(
        dir.path(),
        "squall.",
        &[
            ("SQUALL__KAFKA__BROKERS", ""),
            ("SQUALL__DB__URL", &db_url),
            ("SQUALL__KAFKA__JOURNAL_MAX_BACKLOG_MB", "1"),
            // One agent posting as fast as it can: not what the rate limit is about.
            ("SQUALL__INTAKE__RATE_LIMIT_PER_KEY", "0"),
        ],
    );
    let api = Api::new(&up);
    api.account().await;
    let lock = rusqlite::Connection::open(&db).unwrap();
    lock.execute_batch("BEGIN EXCLUSIVE").unwrap();
    let t0 = t0() - 86_400.0;
    let mut accepted = 0u32;
    let mut refused = None;
    for i in 0..2_000u32 {
        match api.try_payload(t0 + 60.0 * f64::from(i), 1.0, HOST).await {
            Some(202) => accepted += 1,
            Some(503) => {
                refused = Some(i);
                break;
            }
            other => panic!("payload {i}: {other:?}"),
        }
    }
    let refused = refused.expect("the intake pushed back before 2,000 payloads");
    assert!(accepted >= 200, "about 1 MB queued first: {accepted}");
    // The answer itself, as an agent sees it: 503 with Retry-After and the reason.
    let r = api
        .client
        .post(format!("{}/intake/?agent_key={KEY}", api.intake))
        .header("Host", "acme.agent.example.com")
        .body(format!(
            r#"{{"agentKey": "{KEY}", "collection_timestamp": {t0}}}"#
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 503);
    assert!(r.headers().contains_key("retry-after"));
    let body: Json = r.json().await.unwrap();
    assert_eq!(body["reason"], "broker_unavailable");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("max_backlog_bytes"),
        "{body}"
    );
    lock.execute_batch("ROLLBACK").unwrap();
    drop(lock);
    // The agent sends the refused payload again (and the rest) until they are taken.
    for i in refused..refused + 5 {
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while api.try_payload(t0 + 60.0 * f64::from(i), 1.0, HOST).await != Some(202) {
            assert!(
                std::time::Instant::now() < deadline,
                "payload {i} taken again"
            );
            tokio::time::sleep(Duration::from_millis(100)).await; // the agent's back-off
        }
    }
    let devices = api.get("/accounts/acme/devices").await;
    let path = format!("/devices/{}/metrics?metric=system.load.1", devices[0]["id"]);
    let want = (refused + 5) as usize;
    api.wait_get(&path, Duration::from_secs(120), |d| {
        d["points"].as_array().unwrap().len() == want
    })
    .await;
    up.stop();
}

/// A fresh database on the real PostgreSQL server of the tests (`scripts/postgres-up.sh`).
pub(super) async fn postgres_database() -> String {
    tokio::task::spawn_blocking(squall_store_postgres::testing::fresh_database)
        .await
        .unwrap()
}

/// `db.url = postgres://...`: the same pipeline on PostgreSQL. A wait rule's pending
/// clock, the devices and the stored minutes live in the database, so a SIGKILLed
/// process restarted on it fires at the right event time, once, and serves what the
/// first one stored; no SQLite file is made.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_postgres_squall_up_keeps_alert_state_and_metrics_across_a_kill() {
    let dir = tempfile::tempdir().unwrap();
    let db = postgres_database().await;
    let (receiver, url) = Receiver::start().await;
    let env = [
        ("SQUALL__KAFKA__BROKERS", ""),
        ("SQUALL__DB__URL", db.as_str()),
    ];
    let up = Up::start(dir.path(), "squall.", &env);
    let api = Api::new(&up);
    api.account().await;
    api.post(
        "/alerts/configs",
        config(
            &url,
            json!({"wait": {"seconds": 120, "enabled": true},
                   "recipients": [{"type": "slack", "url": format!("{url}/slack"), "grouping": {"group_by": []}}]}),
        ),
    )
    .await;
    let t0 = t0();
    api.payload(t0, 5.0).await;
    let devices = api
        .wait_get("/accounts/acme/devices", Duration::from_secs(60), |d| {
            d.as_array().is_some_and(|d| d.len() == 1)
        })
        .await;
    let id = devices[0]["id"].clone();
    let minutes = format!("/devices/{id}/metrics?metric=system.load.1&resolution=minute");
    api.wait_get(&minutes, Duration::from_secs(60), |d| {
        d["points"].as_array().is_some_and(|p| p.len() == 1)
    })
    .await;
    up.kill();

    let up = Up::start(dir.path(), "squall.", &env);
    let api = Api::new(&up);
    api.payload(t0 + 60.0, 5.0).await;
    api.payload(t0 + 120.0, 5.0).await;
    let got = receiver.wait("/slack", 1, Duration::from_secs(60)).await;
    assert!(
        got[0].body["text"]
            .as_str()
            .unwrap()
            .starts_with("[FIRING] High load: system.load.1 = 5"),
        "{got:?}"
    );
    let open = api.get("/alerts/triggered").await;
    let open = open.as_array().expect("a list");
    assert_eq!(open.len(), 1, "{open:?}");
    assert_eq!(
        open[0]["fired_at"].as_f64(),
        Some(t0 + 120.0),
        "the wait counted from the first process's payload"
    );
    let stored = api
        .wait_get(&minutes, Duration::from_secs(60), |d| {
            d["points"].as_array().is_some_and(|p| p.len() == 3)
        })
        .await;
    let values: Vec<f64> = stored["points"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["value"].as_f64().unwrap())
        .collect();
    assert_eq!(values, [5.0, 5.0, 5.0]);
    assert!(
        !dir.path().join("data/squall.db").exists(),
        "no SQLite file beside PostgreSQL"
    );
    assert_eq!(receiver.on("/slack").len(), 1, "fired once");
    up.stop();
}

//! `squall up` and `squall broker` as child processes of a benchmark, driven from outside
//! as an operator would: over their HTTP APIs and with signals.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use serde_json::Value as Json;

/// The admin token of the processes the benchmarks start.
pub(crate) const TOKEN: &str = "chaos-benchmark-admin-token";

/// Webhook posts per run path: (ids in arrival order).
pub(crate) type Received = Arc<Mutex<HashMap<String, Vec<String>>>>;

pub(crate) async fn receiver() -> anyhow::Result<(Received, SocketAddr)> {
    let got: Received = Arc::default();
    let state = got.clone();
    let app = axum::Router::new().fallback(axum::routing::post(
        move |uri: axum::http::Uri, headers: axum::http::HeaderMap| {
            let state = state.clone();
            async move {
                let key = headers
                    .get("idempotency-key")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_string();
                state
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .entry(uri.path().to_string())
                    .or_default()
                    .push(key);
                axum::http::StatusCode::OK
            }
        },
    ));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok((got, addr))
}

/// A free port on 127.0.0.1 (bound, then released for `squall up` to take).
pub(crate) fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// One `squall up` and where it listens.
pub(crate) struct Up {
    exe: PathBuf,
    dir: PathBuf,
    /// Its intake's base URL.
    pub(crate) intake: String,
    /// Its admin API's base URL (`.../api/v1`).
    pub(crate) admin: String,
    /// Its Prometheus endpoint.
    pub(crate) metrics: String,
    /// `SQUALL__...` variables it starts with (later entries win).
    pub(crate) env: Vec<(String, String)>,
    child: Option<Child>,
}

impl Up {
    pub(crate) fn new(
        exe: &Path,
        dir: &Path,
        brokers: Option<&str>,
        db: Option<&str>,
        prefix: &str,
    ) -> anyhow::Result<Up> {
        let (intake, admin, metrics) = (free_port()?, free_port()?, free_port()?);
        let mut env = vec![
            (
                "SQUALL__INTAKE__LISTEN".into(),
                format!("127.0.0.1:{intake}"),
            ),
            ("SQUALL__ADMIN__LISTEN".into(), format!("127.0.0.1:{admin}")),
            ("SQUALL__ADMIN__TOKEN".into(), TOKEN.into()),
            (
                "SQUALL__KAFKA__BROKERS".into(),
                brokers.unwrap_or_default().into(),
            ),
            ("SQUALL__KAFKA__PREFIX".into(), prefix.into()),
            ("SQUALL__NOTIFIER__INITIAL_BACKOFF_MS".into(), "50".into()),
            ("SQUALL__NOTIFIER__MAX_BACKOFF_MS".into(), "500".into()),
            // The bench's receiver listens on 127.0.0.1.
            (
                "SQUALL__NOTIFIER__ALLOWED_NETWORKS".into(),
                "127.0.0.0/8".into(),
            ),
            ("RUST_LOG".into(), "warn".into()),
            ("NO_COLOR".into(), "1".into()),
            // A killed member's partitions move after this long.
            ("SQUALL__KAFKA__SESSION_TIMEOUT_MS".into(), "6000".into()),
        ];
        if let Some(db) = db {
            env.push(("SQUALL__DB__URL".into(), db.into()));
        }
        Ok(Up {
            exe: exe.to_path_buf(),
            dir: dir.to_path_buf(),
            intake: format!("http://127.0.0.1:{intake}"),
            admin: format!("http://127.0.0.1:{admin}/api/v1"),
            metrics: format!("127.0.0.1:{metrics}"),
            env,
            child: None,
        })
    }

    /// Starts it and waits (bounded) until its admin API answers.
    pub(crate) async fn start(&mut self, client: &reqwest::Client) -> anyhow::Result<()> {
        std::fs::create_dir_all(&self.dir)?;
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("up.log"))?;
        let child = Command::new(&self.exe)
            .arg("up")
            .arg("--data-dir")
            .arg(self.dir.join("data"))
            .arg("--metrics-addr")
            .arg(&self.metrics)
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting {} up", self.exe.display()))?;
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut every = tokio::time::interval(Duration::from_millis(20));
        loop {
            every.tick().await;
            let ok = client
                .get(format!("{}/alerts/configs", self.admin))
                .bearer_auth(TOKEN)
                .send()
                .await
                .is_ok_and(|r| r.status().is_success());
            if ok {
                return Ok(());
            }
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                anyhow::bail!(
                    "squall up exited ({status}); see {}",
                    self.dir.join("up.log").display()
                );
            }
            if Instant::now() >= deadline {
                anyhow::bail!("squall up did not answer within 60 s");
            }
        }
    }

    /// Its process id, while it runs.
    pub(crate) fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// SIGKILL: no graceful anything.
    pub(crate) fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGINT and a clean exit (bounded).
    pub(crate) fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-INT", &c.id().to_string()])
                .status();
            let deadline = Instant::now() + Duration::from_secs(30);
            while Instant::now() < deadline {
                if c.try_wait().ok().flatten().is_some() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Up {
    fn drop(&mut self) {
        self.kill();
    }
}

pub(crate) async fn api(
    client: &reqwest::Client,
    up: &Up,
    method: reqwest::Method,
    path: &str,
    body: Option<Json>,
) -> anyhow::Result<Json> {
    let mut r = client
        .request(method, format!("{}{path}", up.admin))
        .bearer_auth(TOKEN);
    if let Some(b) = body {
        r = r.json(&b);
    }
    let r = r.send().await.with_context(|| format!("calling {path}"))?;
    let status = r.status();
    let text = r.text().await?;
    anyhow::ensure!(status.is_success(), "{path}: {status}: {text}");
    Ok(serde_json::from_str(&text).unwrap_or(Json::Null))
}

/// `squall broker` with the topics of `prefix`, `partitions` each (and
/// `session_timeout_ms` for KIP-848 groups): the child and its bootstrap servers.
pub(crate) fn memory_broker(
    exe: &Path,
    prefix: &str,
    session_timeout_ms: u64,
    partitions: i32,
) -> anyhow::Result<(Child, String)> {
    use std::io::BufRead;
    let mut child = Command::new(exe)
        .args(["broker", "--prefix", prefix])
        .arg(format!("--partitions={partitions}"))
        .arg(format!("--session-timeout-ms={session_timeout_ms}"))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .with_context(|| format!("starting {} broker", exe.display()))?;
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().context("the broker's stdout")?)
        .read_line(&mut line)?;
    let addr = line
        .trim()
        .strip_prefix("KAFKA_BROKERS=")
        .with_context(|| format!("squall broker printed {line:?}"))?
        .to_string();
    Ok((child, addr))
}

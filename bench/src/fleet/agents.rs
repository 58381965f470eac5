//! The simulated agents of `bench fleet`: a real v2 payload as a template, varied per
//! agent and post, posted the way the v2 agent posts (zlib, `Content-MD5`), open-loop.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use flate2::write::ZlibEncoder;
use md5::{Digest, Md5};
use serde_json::{json, Value as Json};

use super::*;

/// A v2 payload as text with holes for what varies per agent and post.
pub(crate) struct Template(Vec<Piece>);

pub(crate) enum Piece {
    Text(String),
    Hole(Hole),
}

/// What varies per agent and post.
#[derive(Clone, Copy)]
pub(crate) enum Hole {
    Key,
    Host,
    Uuid,
    Time,
    Load1,
    Load5,
    CpuUser,
    CpuWait,
}

impl Template {
    pub(crate) fn from_payload(mut p: Json) -> anyhow::Result<Self> {
        let holes: [(&str, &str, Hole); 8] = [
            ("agentKey", "@@key@@", Hole::Key),
            ("internalHostname", "@@host@@", Hole::Host),
            ("uuid", "@@uuid@@", Hole::Uuid),
            ("collection_timestamp", "@@time@@", Hole::Time),
            ("system.load.1", "@@load1@@", Hole::Load1),
            ("system.load.5", "@@load5@@", Hole::Load5),
            ("cpuUser", "@@cpuUser@@", Hole::CpuUser),
            ("cpuWait", "@@cpuWait@@", Hole::CpuWait),
        ];
        for (field, marker, _) in &holes {
            anyhow::ensure!(
                p.get(*field).is_some(),
                "the template payload has no `{field}`"
            );
            p[*field] = json!(marker);
        }
        let mut text = serde_json::to_string(&p)?;
        let mut pieces = Vec::new();
        loop {
            let next = holes
                .iter()
                .enumerate()
                .filter_map(|(i, (_, m, _))| text.find(&format!("\"{m}\"")).map(|at| (at, i)))
                .min();
            let Some((at, i)) = next else {
                pieces.push(Piece::Text(text));
                break;
            };
            let marker_len = holes[i].1.len() + 2;
            let rest = text.split_off(at);
            pieces.push(Piece::Text(text));
            pieces.push(Piece::Hole(holes[i].2));
            text = rest[marker_len..].to_string();
        }
        Ok(Template(pieces))
    }

    /// The JSON agent `agent` posts the `seq`-th time: event time a minute after its last,
    /// `system.load.1` above 4 on even posts of every tenth agent (so its load rule fires
    /// and clears alternately), other values varied.
    pub(crate) fn render(&self, agent: usize, seq: u64, t0: f64, out: &mut String) {
        use std::fmt::Write;
        let noise = {
            let mut x = (agent as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ seq;
            x ^= x >> 31;
            x = x.wrapping_mul(0xbf58_476d_1ce4_e5b9);
            (x % 1000) as f64 / 1000.0
        };
        out.clear();
        for p in &self.0 {
            let _ = match p {
                Piece::Text(t) => {
                    out.push_str(t);
                    Ok(())
                }
                Piece::Hole(Hole::Key) => write!(out, "\"{}\"", agent_key(agent)),
                Piece::Hole(Hole::Host) => write!(out, "\"{}\"", hostname(agent)),
                Piece::Hole(Hole::Uuid) => write!(out, "\"{agent:032x}\""),
                Piece::Hole(Hole::Time) => write!(out, "{:.3}", t0 + 60.0 * seq as f64),
                Piece::Hole(Hole::Load1) => {
                    let high = agent.is_multiple_of(10) && seq.is_multiple_of(2);
                    write!(out, "{:.3}", if high { 5.0 } else { 1.0 } + noise)
                }
                Piece::Hole(Hole::Load5) => write!(out, "{:.3}", 2.0 + noise),
                Piece::Hole(Hole::CpuUser) => write!(out, "{:.3}", 20.0 + 10.0 * noise),
                Piece::Hole(Hole::CpuWait) => write!(out, "{:.3}", noise),
            };
        }
    }
}

pub(crate) fn agent_key(agent: usize) -> String {
    format!("fleet{agent:027}")
}

pub(crate) fn hostname(agent: usize) -> String {
    format!("host-{agent:06}.fleet.example.com")
}

/// The account, keys, pre-registered devices and the five account-wide rules (their
/// notifications go to `hook`).
pub(crate) fn fixtures(agents: usize, hook: &str) -> Json {
    let rules = [
        ("system.load.1", "gte", 4.0),
        ("cpuUser", "gt", 90.0),
        ("memPhysPctUsable", "lt", 0.01),
        ("system.load.5", "gte", 8.0),
        ("cpuWait", "gt", 50.0),
    ];
    json!({
        "accounts": [{"name": "fleet", "device_quota": agents, "active": true,
                      "agent_keys": (0..agents).map(agent_key).collect::<Vec<_>>()}],
        "alerts": rules.iter().map(|(metric, comparison, value)| json!({
            "account": "fleet", "name": format!("{metric} {comparison} {value}"),
            "kind": "threshold", "subject": {"type": "account"},
            "metric": metric, "comparison": comparison, "value": value,
            "wait": {"seconds": 0, "enabled": false},
            "repeat": {"seconds": 600, "enabled": false}, "fix": true,
            "recipients": [{"type": "webhook", "url": hook, "grouping": {"group_by": []}}]
        })).collect::<Vec<_>>(),
    })
}

#[derive(Default)]
pub(crate) struct Counts {
    pub(crate) sent: AtomicU64,
    pub(crate) accepted: AtomicU64,
    pub(crate) errors: AtomicU64,
    pub(crate) first_error: Mutex<Option<String>>,
}

pub(crate) struct Agents {
    pub(crate) client: reqwest::Client,
    /// The intakes; agent `i` posts to `urls[i % len]`.
    pub(crate) urls: Vec<String>,
    pub(crate) template: Template,
    pub(crate) agents: usize,
    pub(crate) t0: f64,
    pub(crate) counts: Counts,
    pub(crate) stages: Arc<Stages>,
}

impl Agents {
    async fn post(&self, k: u64, due: Instant) {
        let agent = (k % self.agents as u64) as usize;
        let seq = k / self.agents as u64;
        let (body, md5) = {
            let mut json = String::with_capacity(4096);
            self.template.render(agent, seq, self.t0, &mut json);
            let mut z = ZlibEncoder::new(Vec::with_capacity(1536), flate2::Compression::fast());
            std::io::Write::write_all(&mut z, json.as_bytes()).expect("writing to memory");
            let body = z.finish().expect("writing to memory");
            let md5 = format!("{:x}", Md5::digest(&body));
            (body, md5)
        };
        let result = self
            .client
            .post(format!(
                "{}?agent_key={}",
                self.urls[agent % self.urls.len().max(1)],
                agent_key(agent)
            ))
            .header("Host", "fleet.agent.example.com")
            .header("Content-Type", "application/json")
            .header("Content-Encoding", "deflate")
            .header("Content-MD5", md5)
            .body(body)
            .send()
            .await;
        let error = match result {
            Ok(r) if r.status() == reqwest::StatusCode::ACCEPTED => {
                self.stages
                    .hist("http")
                    .record_us(due.elapsed().as_micros() as u64);
                self.counts.accepted.fetch_add(1, Ordering::Relaxed);
                return;
            }
            Ok(r) => format!(
                "HTTP {}: {}",
                r.status(),
                r.text().await.unwrap_or_default()
            ),
            Err(e) => format!("{e}"),
        };
        self.counts.errors.fetch_add(1, Ordering::Relaxed);
        let mut first = self
            .counts
            .first_error
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        first.get_or_insert(error);
    }

    /// Posts at `rate` for `duration` starting with payload `from`; returns the next
    /// payload number. Waits for every answer.
    pub(crate) async fn run(
        self: &Arc<Self>,
        from: u64,
        rate: f64,
        duration: Duration,
        max_in_flight: usize,
        progress: bool,
    ) -> u64 {
        let permits = Arc::new(tokio::sync::Semaphore::new(max_in_flight));
        let start = Instant::now();
        let total = (rate * duration.as_secs_f64()).round() as u64;
        let mut i = 0u64;
        let mut next_report = start + Duration::from_secs(1);
        let mut last_sent = 0u64;
        while i < total {
            let due = start + Duration::from_secs_f64(i as f64 / rate);
            tokio::time::sleep_until(due.into()).await;
            let now = Instant::now();
            while i < total && start + Duration::from_secs_f64(i as f64 / rate) <= now {
                let due = start + Duration::from_secs_f64(i as f64 / rate);
                let permit = permits
                    .clone()
                    .acquire_owned()
                    .await
                    .expect("the semaphore is never closed");
                let me = self.clone();
                let k = from + i;
                tokio::spawn(async move {
                    me.post(k, due).await;
                    drop(permit);
                });
                self.counts.sent.fetch_add(1, Ordering::Relaxed);
                i += 1;
            }
            if progress && Instant::now() >= next_report {
                next_report += Duration::from_secs(1);
                let sent = self.counts.sent.load(Ordering::Relaxed);
                // End to end when the pipeline runs here, else what the agents see.
                let snapshot = self.stages.snapshot(false);
                let (stage, h) = match &snapshot["complete"] {
                    h if !h.is_empty() => ("complete", h),
                    _ => ("http", &snapshot["http"]),
                };
                eprintln!(
                    "  {:>4.0}s  sent {sent:>8}  accepted {:>8}  errors {:>4}  {:>6}/s  p99 {stage} {:.1} ms",
                    start.elapsed().as_secs_f64(),
                    self.counts.accepted.load(Ordering::Relaxed),
                    self.counts.errors.load(Ordering::Relaxed),
                    sent - last_sent,
                    h.value_at_quantile(0.99) as f64 / 1000.0,
                );
                last_sent = sent;
            }
        }
        let _ = permits
            .acquire_many(max_in_flight as u32)
            .await
            .expect("the semaphore is never closed");
        from + total
    }
}

//! `squall bench fleet`: a simulated fleet of agents posting real-format v2 payloads over
//! HTTP to the intake, through Kafka and the alert topology, with per-stage latencies.
//!
//! Everything runs in this process, as `squall up` runs it (intake, the alert topology on
//! the given broker, SQLite), minus the notifier: the SLA ends when a notification is
//! handed to the notifications topic. The agents are open-loop: payload `k` is due at
//! `k / rate` seconds and its HTTP latency is measured from that due time, so a stalled
//! server cannot hide its backlog (no coordinated omission).
//!
//! Stages, each an hdrhistogram in microseconds:
//! - `http`: due time -> the intake answered 202 (decompression, MD5, validation, the
//!   broker's acknowledgement of the envelope);
//! - `enriched`, `stored`, `evaluated`, `notified`: intake receipt -> the stage was done
//!   (the `squall_stage_latency_seconds{stage}` histograms the bolts record);
//! - `complete`: the envelope's Kafka timestamp -> its whole tuple tree acked at the spout
//!   (stored, evaluated, and every notification it caused acknowledged by the broker):
//!   the end-to-end figure (`squall_kafka_record_latency_seconds`; millisecond timestamps).

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use flate2::write::ZlibEncoder;
use hdrhistogram::Histogram;
use md5::{Digest, Md5};
use metrics::{Counter, Gauge, HistogramFn, Key, KeyName, Metadata, Recorder, SharedString, Unit};
use serde::Serialize;
use serde_json::{json, Value as Json};
use squall_alerting::accounts::Sighting;
use squall_alerting::fixtures::Fixtures;
use squall_runtime::RunningTopology;

use crate::up::{alerting_topology, consumer_options, ensure_topics, Names};

/// A topic prefix no earlier run used.
pub fn fresh_prefix() -> String {
    let stamp = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());
    format!("squall-fleet-{stamp}.")
}

/// The stages reported, in pipeline order.
pub const STAGES: [&str; 6] = [
    "http",
    "enriched",
    "stored",
    "evaluated",
    "notified",
    "complete",
];

/// Options of `bench fleet` (also its command-line arguments).
#[derive(Clone, Debug, clap::Args)]
pub struct FleetOptions {
    /// Agents in the fleet.
    #[arg(long, default_value_t = 80_000)]
    pub agents: usize,
    /// Payloads per second (default: every agent once a minute).
    #[arg(long)]
    pub rate: Option<f64>,
    /// How long to post (each `--find-max` step lasts this long).
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
    pub duration: Duration,
    /// Posting before measuring (consumer group joined, caches warm).
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    pub warmup: Duration,
    /// Raise the rate by 25% per step until p99 end to end passes `--sla`, errors appear
    /// or payloads pile up; report the highest rate sustained.
    #[arg(long)]
    pub find_max: bool,
    /// First rate of `--find-max`.
    #[arg(long, default_value_t = 2_000.0)]
    pub start_rate: f64,
    /// The latency SLA `--find-max` stops at.
    #[arg(long, default_value = "150ms", value_parser = humantime::parse_duration)]
    pub sla: Duration,
    /// Requests in flight at most.
    #[arg(long, default_value_t = 512)]
    pub max_in_flight: usize,
    /// Partitions of the payloads topic.
    #[arg(long, default_value_t = 4)]
    pub partitions: i32,
    /// `linger.ms` of the intake's Kafka producer (how long it gathers a batch; the
    /// intake's own default is 1).
    #[arg(long, default_value_t = 1)]
    pub linger_ms: u64,
    /// `fetch.wait.max.ms` of the alert topology's consumer (`kafka.fetch_wait_max_ms`, 5
    /// by default in `squall up`).
    #[arg(long = "fetch-wait-ms", default_value_t = 2)]
    pub fetch_wait_max_ms: u64,
    /// The real v2 payload the agents vary (default: the one built into squall,
    /// `tests/fixtures/payloads/sd-agent-v2.json`).
    #[arg(long)]
    pub template: Option<PathBuf>,
    /// Where `report.json` and `latency.svg` go.
    #[arg(long, default_value = "fleet-report")]
    pub out: PathBuf,
}

// ---------------------------------------------------------------------------------------
// Stage histograms, fed by the `metrics` facade.

struct Hist(Mutex<Histogram<u64>>);

impl Hist {
    fn new() -> Self {
        Hist(Mutex::new(
            Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("valid bounds"),
        ))
    }

    fn record_us(&self, us: u64) {
        let mut h = self.0.lock().unwrap_or_else(|e| e.into_inner());
        h.saturating_record(us.max(1));
    }
}

impl HistogramFn for Hist {
    fn record(&self, seconds: f64) {
        self.record_us((seconds * 1e6) as u64);
    }
}

/// One histogram per stage.
pub struct Stages(HashMap<&'static str, Arc<Hist>>);

impl Stages {
    fn new() -> Arc<Self> {
        Arc::new(Stages(
            STAGES.iter().map(|s| (*s, Arc::new(Hist::new()))).collect(),
        ))
    }

    fn hist(&self, stage: &str) -> &Arc<Hist> {
        &self.0[stage]
    }

    /// A copy of every stage's histogram; with `reset`, they start over.
    fn snapshot(&self, reset: bool) -> BTreeMap<&'static str, Histogram<u64>> {
        self.0
            .iter()
            .map(|(k, h)| {
                let mut h = h.0.lock().unwrap_or_else(|e| e.into_inner());
                let copy = h.clone();
                if reset {
                    h.reset();
                }
                (*k, copy)
            })
            .collect()
    }

    fn count(&self, stage: &str) -> u64 {
        self.hist(stage)
            .0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .len()
    }
}

/// A `metrics` recorder that keeps the pipeline's latency histograms and drops the rest.
struct StageRecorder(Arc<Stages>);

impl Recorder for StageRecorder {
    fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}

    fn register_counter(&self, _: &Key, _: &Metadata<'_>) -> Counter {
        Counter::noop()
    }

    fn register_gauge(&self, _: &Key, _: &Metadata<'_>) -> Gauge {
        Gauge::noop()
    }

    fn register_histogram(&self, key: &Key, _: &Metadata<'_>) -> metrics::Histogram {
        let stage = match key.name() {
            "squall_stage_latency_seconds" => key
                .labels()
                .find(|l| l.key() == "stage")
                .map(|l| l.value().to_string()),
            "squall_kafka_record_latency_seconds" => Some("complete".to_string()),
            _ => None,
        };
        match stage.and_then(|s| self.0 .0.get(s.as_str())) {
            Some(h) => metrics::Histogram::from_arc(h.clone()),
            None => metrics::Histogram::noop(),
        }
    }
}

// ---------------------------------------------------------------------------------------
// The agents.

/// A v2 payload as text with holes for what varies per agent and post.
struct Template(Vec<Piece>);

enum Piece {
    Text(String),
    Hole(Hole),
}

/// What varies per agent and post.
#[derive(Clone, Copy)]
enum Hole {
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
    fn from_payload(mut p: Json) -> anyhow::Result<Self> {
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
    fn render(&self, agent: usize, seq: u64, t0: f64, out: &mut String) {
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
                    let high = agent % 10 == 0 && seq % 2 == 0;
                    write!(out, "{:.3}", if high { 5.0 } else { 1.0 } + noise)
                }
                Piece::Hole(Hole::Load5) => write!(out, "{:.3}", 2.0 + noise),
                Piece::Hole(Hole::CpuUser) => write!(out, "{:.3}", 20.0 + 10.0 * noise),
                Piece::Hole(Hole::CpuWait) => write!(out, "{:.3}", noise),
            };
        }
    }
}

fn agent_key(agent: usize) -> String {
    format!("fleet{agent:027}")
}

fn hostname(agent: usize) -> String {
    format!("host-{agent:06}.fleet.example.com")
}

/// The account, keys, pre-registered devices and the five account-wide rules.
fn fixtures(agents: usize) -> Json {
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
            "recipients": [{"type": "webhook", "url": "http://127.0.0.1:9/hook"}]
        })).collect::<Vec<_>>(),
    })
}

#[derive(Default)]
struct Counts {
    sent: AtomicU64,
    accepted: AtomicU64,
    errors: AtomicU64,
    first_error: Mutex<Option<String>>,
}

struct Agents {
    client: reqwest::Client,
    url: String,
    template: Template,
    agents: usize,
    t0: f64,
    counts: Counts,
    stages: Arc<Stages>,
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
            .post(format!("{}?agent_key={}", self.url, agent_key(agent)))
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
    async fn run(
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
                let complete = self.stages.snapshot(false)["complete"].value_at_quantile(0.99);
                eprintln!(
                    "  {:>4.0}s  sent {sent:>8}  accepted {:>8}  errors {:>4}  {:>6}/s  p99 complete {:.1} ms",
                    start.elapsed().as_secs_f64(),
                    self.counts.accepted.load(Ordering::Relaxed),
                    self.counts.errors.load(Ordering::Relaxed),
                    sent - last_sent,
                    complete as f64 / 1000.0,
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

// ---------------------------------------------------------------------------------------
// Reports.

/// Percentiles of one stage, in milliseconds.
#[derive(Clone, Debug, Serialize)]
pub struct StageReport {
    /// Samples.
    pub count: u64,
    /// Median.
    pub p50_ms: f64,
    /// 90th percentile.
    pub p90_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// 99.9th percentile.
    pub p999_ms: f64,
    /// Largest.
    pub max_ms: f64,
}

fn stage_report(h: &Histogram<u64>) -> StageReport {
    let ms = |us: u64| (us as f64 / 1000.0 * 1000.0).round() / 1000.0;
    StageReport {
        count: h.len(),
        p50_ms: ms(h.value_at_quantile(0.5)),
        p90_ms: ms(h.value_at_quantile(0.9)),
        p99_ms: ms(h.value_at_quantile(0.99)),
        p999_ms: ms(h.value_at_quantile(0.999)),
        max_ms: ms(h.max()),
    }
}

/// One measured run at one rate.
#[derive(Clone, Debug, Serialize)]
pub struct RunReport {
    /// Payloads per second asked for.
    pub target_rate: f64,
    /// Payloads accepted per second over the run (posting and draining).
    pub achieved_rate: f64,
    /// Seconds from the first post to the last payload's tree completed.
    pub seconds: f64,
    /// Payloads posted.
    pub sent: u64,
    /// Answered 202.
    pub accepted: u64,
    /// Anything else (status or transport error).
    pub errors: u64,
    /// The first error seen.
    pub first_error: Option<String>,
    /// Every accepted payload's tree completed before the drain deadline.
    pub drained: bool,
    /// Per stage (see the module docs).
    pub stages: BTreeMap<String, StageReport>,
}

impl RunReport {
    fn p99_complete_ms(&self) -> f64 {
        self.stages
            .get("complete")
            .map_or(f64::INFINITY, |s| s.p99_ms)
    }
}

/// What `bench fleet` writes to `report.json`.
#[derive(Clone, Debug, Serialize)]
pub struct FleetReport {
    /// Agents simulated.
    pub agents: usize,
    /// Cores of this machine.
    pub cores: usize,
    /// Broker used.
    pub broker: String,
    /// The run at the asked rate (without `--find-max`), or each step of the ramp.
    pub runs: Vec<RunReport>,
    /// With `--find-max`: the highest rate sustained with p99 end to end within the SLA,
    /// no errors and every payload completed.
    pub max_sustained_rate: Option<f64>,
}

fn plot(
    path: &Path,
    title: &str,
    stages: &BTreeMap<&'static str, Histogram<u64>>,
) -> anyhow::Result<()> {
    use plotters::prelude::*;
    // x: "nines" (0 = p0, 1 = p90, 2 = p99, 3 = p99.9, 4 = p99.99); y: milliseconds.
    let nines = |x: f64| 1.0 - 10f64.powf(-x);
    let y_max = stages
        .values()
        .map(|h| h.value_at_quantile(0.9999) as f64 / 1000.0)
        .fold(1.0, f64::max)
        * 1.1;
    let root = SVGBackend::new(path, (900, 560)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 20))
        .margin(16)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(0f64..4f64, 0f64..y_max)?;
    chart
        .configure_mesh()
        .x_labels(5)
        .x_label_formatter(&|x| {
            let p = nines(*x) * 100.0;
            format!("p{}", (p * 100.0).round() / 100.0)
        })
        .x_desc("percentile")
        .y_desc("latency (ms)")
        .draw()?;
    for (i, stage) in STAGES.iter().enumerate() {
        let Some(h) = stages.get(stage).filter(|h| !h.is_empty()) else {
            continue;
        };
        let color = Palette99::pick(i).to_rgba();
        let points = (0..=400).map(|j| {
            let x = j as f64 / 100.0;
            (x, h.value_at_quantile(nines(x).min(0.9999)) as f64 / 1000.0)
        });
        chart
            .draw_series(LineSeries::new(points, color.stroke_width(2)))?
            .label(*stage)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()?;
    root.present()?;
    Ok(())
}

// ---------------------------------------------------------------------------------------

fn epoch_secs() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// Runs `bench fleet` against `brokers` (see the module docs) with its database in `dir`.
/// Topics are named with `prefix` (created here when `create_topics`, i.e. on a broker the
/// user named; otherwise `brokers` is the embedded one).
pub async fn fleet(
    opts: FleetOptions,
    brokers: String,
    prefix: &str,
    create_topics: bool,
    dir: &Path,
) -> anyhow::Result<FleetReport> {
    anyhow::ensure!(opts.agents > 0, "--agents: at least 1");
    anyhow::ensure!(opts.max_in_flight > 0, "--max-in-flight: at least 1");
    for (name, rate) in [
        ("--rate", opts.rate),
        ("--start-rate", Some(opts.start_rate)),
    ] {
        if let Some(r) = rate {
            anyhow::ensure!(
                r.is_finite() && r > 0.0,
                "{name}: a positive number of payloads per second, got {r}"
            );
        }
    }
    let stages = Stages::new();
    metrics::set_global_recorder(StageRecorder(stages.clone()))
        .map_err(|_| anyhow::anyhow!("a metrics recorder is already installed"))?;
    std::fs::create_dir_all(dir)?;
    std::fs::create_dir_all(&opts.out)
        .with_context(|| format!("creating {}", opts.out.display()))?;
    let template: Json =
        serde_json::from_slice(&crate::bench::template_payload(opts.template.as_deref())?)?;
    let template = Template::from_payload(template)?;

    // The account, its keys and rules, and the fleet's devices already registered (a
    // fleet that has been posting for a while; first sightings are not what is measured).
    let db = format!("sqlite://{}", dir.join("fleet.db").display());
    let agents = opts.agents;
    {
        let db = db.clone();
        tokio::task::spawn_blocking(move || -> anyhow::Result<()> {
            let store = squall_pipeline::stores::open(&db)?.accounts;
            let fx = Fixtures::from_json(&serde_json::to_vec(&fixtures(agents))?)
                .map_err(|e| anyhow::anyhow!("fleet fixtures: {e}"))?;
            store.import(&fx)?;
            let keys: Vec<String> = (0..agents).map(agent_key).collect();
            let hosts: Vec<String> = (0..agents).map(hostname).collect();
            let sightings: Vec<Sighting<'_>> = (0..agents)
                .map(|i| Sighting {
                    account: "fleet",
                    agent_key: &keys[i],
                    hostname: &hosts[i],
                    now_ms: 0,
                })
                .collect();
            store.register_devices(&sightings)?;
            Ok(())
        })
        .await??;
    }

    let names = Names::new(prefix);
    let broker_label = if create_topics {
        format!("broker {brokers}")
    } else {
        "embedded broker".to_string()
    };
    if create_topics {
        ensure_topics(&brokers, &names.topics(), opts.partitions).await?;
    }
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/intake/", listener.local_addr()?);
    let intake = tokio::spawn(crate::intake::serve(
        crate::intake::IntakeConfig {
            brokers: brokers.clone(),
            topic: names.payloads.clone(),
            domain: "example.com".into(),
            max_body_bytes: 1 << 20,
            max_payload_bytes: 8 << 20,
            produce_timeout_ms: 5_000,
            kafka_options: vec![("linger.ms".into(), opts.linger_ms.to_string())],
        },
        listener,
        async move {
            let mut rx = stop_rx;
            let _ = rx.wait_for(|s| *s).await;
        },
    ));
    let consumer = consumer_options(6_000, opts.fetch_wait_max_ms);
    let topology =
        RunningTopology::start(alerting_topology(&brokers, &db, &names, &consumer, &[])?)?;

    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(opts.max_in_flight)
        .timeout(Duration::from_secs(30))
        .build()?;
    let fleet = Arc::new(Agents {
        client,
        url,
        template,
        agents,
        t0: (epoch_secs() / 60.0).floor() * 60.0,
        counts: Counts::default(),
        stages: stages.clone(),
    });

    let default_rate = agents as f64 / 60.0;
    let mut next = 0u64;
    if !opts.warmup.is_zero() {
        let rate = if opts.find_max {
            opts.start_rate
        } else {
            opts.rate.unwrap_or(default_rate)
        };
        eprintln!("warming up: {rate:.0} payloads/s for {:?}", opts.warmup);
        next = fleet
            .run(next, rate, opts.warmup, opts.max_in_flight, false)
            .await;
        drain(&fleet, Duration::from_secs(30)).await;
    }

    let mut runs = Vec::new();
    let mut best = None;
    let mut rate = if opts.find_max {
        opts.start_rate
    } else {
        opts.rate.unwrap_or(default_rate)
    };
    loop {
        eprintln!(
            "posting {rate:.0} payloads/s for {:?} ({agents} agents)",
            opts.duration
        );
        reset(&fleet);
        let started = Instant::now();
        next = fleet
            .run(next, rate, opts.duration, opts.max_in_flight, true)
            .await;
        let drained = drain(&fleet, Duration::from_secs(30)).await;
        let seconds = started.elapsed().as_secs_f64();
        let snapshot = stages.snapshot(false);
        let accepted = fleet.counts.accepted.load(Ordering::Relaxed);
        let run = RunReport {
            target_rate: rate,
            achieved_rate: accepted as f64 / seconds,
            seconds,
            sent: fleet.counts.sent.load(Ordering::Relaxed),
            accepted,
            errors: fleet.counts.errors.load(Ordering::Relaxed),
            first_error: fleet
                .counts
                .first_error
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone(),
            drained,
            stages: snapshot
                .iter()
                .map(|(k, h)| (k.to_string(), stage_report(h)))
                .collect(),
        };
        eprintln!("{}", summary(&run));
        let sustained = run.errors == 0
            && run.drained
            && run.p99_complete_ms() <= opts.sla.as_secs_f64() * 1000.0;
        let title = format!(
            "squall bench fleet: {rate:.0} payloads/s, {agents} agents, {} cores, {}",
            cores(),
            broker_label
        );
        if !opts.find_max || sustained {
            plot(&opts.out.join("latency.svg"), &title, &snapshot)?;
        }
        runs.push(run);
        if !opts.find_max {
            break;
        }
        if !sustained {
            break;
        }
        best = Some(rate);
        rate = (rate * 1.25 / 500.0).round() * 500.0;
    }

    let _ = stop_tx.send(true);
    let _ = intake.await;
    let report = topology.shutdown_and_join().await;
    tracing::info!("bench fleet topology:\n{report}");
    let report = FleetReport {
        agents,
        cores: cores(),
        broker: broker_label,
        runs,
        max_sustained_rate: best,
    };
    std::fs::write(
        opts.out.join("report.json"),
        serde_json::to_vec_pretty(&report)?,
    )?;
    Ok(report)
}

fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

fn reset(fleet: &Agents) {
    fleet.stages.snapshot(true);
    fleet.counts.sent.store(0, Ordering::Relaxed);
    fleet.counts.accepted.store(0, Ordering::Relaxed);
    fleet.counts.errors.store(0, Ordering::Relaxed);
    *fleet
        .counts
        .first_error
        .lock()
        .unwrap_or_else(|e| e.into_inner()) = None;
}

/// Waits (at most `limit`) until every accepted payload's tree has completed.
async fn drain(fleet: &Agents, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if fleet.stages.count("complete") >= fleet.counts.accepted.load(Ordering::Relaxed) {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// One line per stage.
pub fn summary(run: &RunReport) -> String {
    let mut s = format!(
        "{:.0} payloads/s asked, {:.0}/s achieved, {} accepted, {} errors{}\n  {:<10} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9}",
        run.target_rate,
        run.achieved_rate,
        run.accepted,
        run.errors,
        if run.drained { "" } else { ", NOT DRAINED" },
        "stage", "count", "p50 ms", "p90 ms", "p99 ms", "p99.9 ms", "max ms"
    );
    for stage in STAGES {
        if let Some(r) = run.stages.get(stage) {
            s.push_str(&format!(
                "\n  {stage:<10} {:>9} {:>9.2} {:>9.2} {:>9.2} {:>9.2} {:>9.2}",
                r.count, r.p50_ms, r.p90_ms, r.p99_ms, r.p999_ms, r.max_ms
            ));
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_template_renders_valid_payloads_with_the_agents_values() {
        let base: Json = serde_json::from_slice(crate::bench::SAMPLE_V2_PAYLOAD).unwrap();
        let t = Template::from_payload(base.clone()).unwrap();
        let mut out = String::new();
        t.render(20, 2, 1_800_000_000.0, &mut out);
        let p: Json = serde_json::from_str(&out).unwrap();
        assert_eq!(p["agentKey"], agent_key(20));
        assert_eq!(p["internalHostname"], hostname(20));
        assert_eq!(p["collection_timestamp"], 1_800_000_120.0);
        assert!(
            p["system.load.1"].as_f64().unwrap() >= 5.0,
            "agent 20 is high on even posts"
        );
        t.render(20, 3, 1_800_000_000.0, &mut out);
        let p: Json = serde_json::from_str(&out).unwrap();
        assert!(p["system.load.1"].as_f64().unwrap() < 2.0);
        let same = |k: &str| p[k] == base[k];
        assert!(same("os") || base.get("os").is_none());
        assert_eq!(
            p.as_object().unwrap().len(),
            base.as_object().unwrap().len(),
            "every field of the real payload is kept"
        );
    }
}

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

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use serde_json::Value as Json;
use squall_alerting::accounts::Sighting;
use squall_alerting::fixtures::Fixtures;
use squall_runtime::RunningTopology;

use squall_connectors::kafka::ensure_topics;
use squall_pipeline::topologies::{self, consumer_options, AlertingOptions, Cluster, Names};
use squall_services::intake::IntakeConfig;

/// The system under test, as `squall up` configures it: the intake's settings (its
/// `brokers` and `topic` are the fleet's) and the alert topology's.
#[derive(Clone, Debug)]
pub struct System {
    /// The intake.
    pub intake: IntakeConfig,
    /// The alert topology.
    pub alerting: AlertingOptions,
}

mod agents;
mod cluster;
mod recorder;
mod report;

use agents::{agent_key, fixtures, hostname, Agents, Counts, Template};
pub use cluster::{ClusterFigures, PostgresFigures, ProcessFigures};
use recorder::{StageRecorder, Stages};
use report::{plot, stage_report};
pub use report::{FleetReport, RunReport, StageReport};

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
    /// Without `--brokers`: run on the in-memory embedded broker (librdkafka's mock
    /// cluster) instead of the durable journal `squall up` uses by default.
    #[arg(long)]
    pub memory: bool,
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
    /// Post to this many `squall up` processes (children of the bench, one cluster on
    /// `--brokers`, else on a `squall broker` started here, and `--db`), measured from
    /// outside; 0: the pipeline runs in the bench's own process.
    #[arg(long, default_value_t = 0)]
    pub processes: usize,
    /// The database (`db.url`); default: a SQLite file in a temporary directory. A
    /// cluster (`--processes`) needs PostgreSQL (an empty database).
    #[arg(long)]
    pub db: Option<String>,
}

// ---------------------------------------------------------------------------------------

pub(crate) fn epoch_secs() -> f64 {
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
    system: &System,
) -> anyhow::Result<FleetReport> {
    validate(&opts)?;
    let stages = Stages::new();
    metrics::set_global_recorder(StageRecorder(stages.clone()))
        .map_err(|_| anyhow::anyhow!("a metrics recorder is already installed"))?;
    std::fs::create_dir_all(dir)?;
    let template = template(&opts)?;

    let db = opts
        .db
        .clone()
        .unwrap_or_else(|| format!("sqlite://{}", dir.join("fleet.db").display()));
    prepare(&db, opts.agents, "http://127.0.0.1:9/hook").await?;

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
    let mut intake_config = system.intake.clone();
    intake_config.brokers = brokers.clone();
    intake_config.topic = names.payloads.clone();
    intake_config
        .kafka_options
        .push(("linger.ms".into(), opts.linger_ms.to_string()));
    let intake = tokio::spawn(squall_services::intake::serve(
        intake_config,
        listener,
        async move {
            let mut rx = stop_rx;
            let _ = rx.wait_for(|s| *s).await;
        },
    ));
    let consumer = consumer_options(Default::default(), 6_000, opts.fetch_wait_max_ms);
    let cluster = Cluster {
        brokers: brokers.clone(),
        names: names.clone(),
        db_url: db.clone(),
        consumer,
    };
    let topology = RunningTopology::start(topologies::alerting(&cluster, &system.alerting)?)?;

    let fleet = agents(&opts, vec![url], template, stages)?;
    let ramped = ramp(&opts, &fleet, &mut Under::Here, &broker_label).await;
    let _ = stop_tx.send(true);
    let _ = intake.await;
    let report = topology.shutdown_and_join().await;
    tracing::info!("bench fleet topology:\n{report}");
    let (runs, best) = ramped?;
    write_report(&opts, broker_label, &db, runs, best)
}

/// Runs `bench fleet` against `--processes` `squall up` processes (the binary `exe`),
/// their data directories and logs in `dir/processes/node-K`, on `brokers` (default: a `squall broker` started here) and the PostgreSQL
/// database `--db`, measured from outside (see `cluster.rs`).
pub async fn fleet_cluster(
    exe: &Path,
    opts: FleetOptions,
    brokers: Option<String>,
    dir: &Path,
) -> anyhow::Result<FleetReport> {
    validate(&opts)?;
    anyhow::ensure!(opts.processes >= 1, "--processes: at least 1");
    let db = opts
        .db
        .clone()
        .filter(|d| d.starts_with("postgres://") || d.starts_with("postgresql://"))
        .context("--processes needs a database the processes share: --db postgres://...")?;
    let template = template(&opts)?;
    let hook = cluster::hook().await?;
    prepare(&db, opts.agents, &hook).await?;
    let prefix = fresh_prefix();
    let broker_label = match &brokers {
        Some(b) => format!("broker {b}"),
        None => "squall broker".to_string(),
    };
    let started = cluster::Cluster::start(
        exe,
        &dir.join("processes"),
        opts.processes,
        brokers.as_deref(),
        &db,
        &prefix,
        opts.partitions,
    )
    .await?;
    let fleet = agents(&opts, started.intakes(), template, Stages::new())?;
    let mut under = Under::Cluster(Box::new(started));
    let ramped = ramp(&opts, &fleet, &mut under, &broker_label).await;
    if let Under::Cluster(c) = &mut under {
        c.stop();
    }
    let (runs, best) = ramped?;
    write_report(&opts, broker_label, &db, runs, best)
}

/// Where the pipeline under test runs.
enum Under {
    /// In this process: its stages are recorded here.
    Here,
    /// In child processes, read from outside.
    Cluster(Box<cluster::Cluster>),
}

impl Under {
    async fn begin(&mut self) -> anyhow::Result<()> {
        match self {
            Under::Here => Ok(()),
            Under::Cluster(c) => c.begin().await,
        }
    }

    async fn completed(&self, fleet: &Agents) -> u64 {
        match self {
            Under::Here => fleet.stages.count("complete"),
            Under::Cluster(c) => c.completed().await,
        }
    }
}

fn validate(opts: &FleetOptions) -> anyhow::Result<()> {
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
    std::fs::create_dir_all(&opts.out)
        .with_context(|| format!("creating {}", opts.out.display()))?;
    Ok(())
}

fn template(opts: &FleetOptions) -> anyhow::Result<Template> {
    let template: Json = serde_json::from_slice(&crate::generate::template_payload(
        opts.template.as_deref(),
    )?)?;
    Template::from_payload(template)
}

/// The account, its keys and rules (notifying `hook`), and the fleet's devices already
/// registered (a fleet that has been posting for a while; first sightings are not what is
/// measured), in the database `db`.
async fn prepare(db: &str, agents: usize, hook: &str) -> anyhow::Result<()> {
    let (db, hook) = (db.to_string(), hook.to_string());
    tokio::task::spawn_blocking(move || -> anyhow::Result<()> {
        let store = squall_pipeline::stores::open(&db)?.accounts;
        let fx = Fixtures::from_json(&serde_json::to_vec(&fixtures(agents, &hook))?)
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
    .await?
}

fn agents(
    opts: &FleetOptions,
    urls: Vec<String>,
    template: Template,
    stages: Arc<Stages>,
) -> anyhow::Result<Arc<Agents>> {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(opts.max_in_flight)
        .timeout(Duration::from_secs(30))
        .build()?;
    Ok(Arc::new(Agents {
        client,
        urls,
        template,
        agents: opts.agents,
        // A day back: agents posting faster than once a minute (`--rate`, `--find-max`)
        // stay behind the receive time, which the pipeline bounds (`intake.max_future_skew_s`).
        t0: (epoch_secs() / 60.0).floor() * 60.0 - 86_400.0,
        counts: Counts::default(),
        stages,
    }))
}

/// The warm-up, then the run at the asked rate, or the `--find-max` ramp: the runs and
/// the highest rate sustained.
async fn ramp(
    opts: &FleetOptions,
    fleet: &Arc<Agents>,
    under: &mut Under,
    broker_label: &str,
) -> anyhow::Result<(Vec<RunReport>, Option<f64>)> {
    let agents = opts.agents;
    let default_rate = agents as f64 / 60.0;
    let mut next = 0u64;
    if !opts.warmup.is_zero() {
        let rate = if opts.find_max {
            opts.start_rate
        } else {
            opts.rate.unwrap_or(default_rate)
        };
        eprintln!("warming up: {rate:.0} payloads/s for {:?}", opts.warmup);
        under.begin().await?;
        next = fleet
            .run(next, rate, opts.warmup, opts.max_in_flight, false)
            .await;
        drain(fleet, under, Duration::from_secs(30)).await;
        if let Under::Cluster(c) = under {
            c.finish(0).await?;
        }
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
        reset(fleet);
        under.begin().await?;
        let started = Instant::now();
        next = fleet
            .run(next, rate, opts.duration, opts.max_in_flight, true)
            .await;
        let drained = drain(fleet, under, Duration::from_secs(30)).await;
        let seconds = started.elapsed().as_secs_f64();
        let snapshot = fleet.stages.snapshot(false);
        let accepted = fleet.counts.accepted.load(Ordering::Relaxed);
        let (stages, cluster) = match under {
            Under::Here => (
                snapshot
                    .iter()
                    .map(|(k, h)| (k.to_string(), stage_report(h)))
                    .collect(),
                None,
            ),
            Under::Cluster(c) => {
                let (mut stages, figures) = c.finish(accepted).await?;
                stages.insert("http".to_string(), stage_report(&snapshot["http"]));
                (stages, Some(figures))
            }
        };
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
            stages,
            cluster,
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
        if matches!(under, Under::Here) && (!opts.find_max || sustained) {
            plot(&opts.out.join("latency.svg"), &title, &snapshot)?;
        }
        runs.push(run);
        if !opts.find_max || !sustained {
            break;
        }
        best = Some(rate);
        rate = (rate * 1.25 / 500.0).round() * 500.0;
    }
    Ok((runs, best))
}

fn write_report(
    opts: &FleetOptions,
    broker: String,
    db: &str,
    runs: Vec<RunReport>,
    best: Option<f64>,
) -> anyhow::Result<FleetReport> {
    let report = FleetReport {
        agents: opts.agents,
        cores: cores(),
        broker,
        processes: opts.processes,
        database: squall_pipeline::stores::redact(db),
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
async fn drain(fleet: &Agents, under: &Under, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if under.completed(fleet).await >= fleet.counts.accepted.load(Ordering::Relaxed) {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
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
    if let Some(c) = &run.cluster {
        let cpus: Vec<String> = c
            .processes
            .iter()
            .map(|p| format!("{:.2}", p.cpu_cores))
            .collect();
        s.push_str(&format!(
            "\n  cpu (cores): processes [{}], bench {:.2}, broker {}, postgres {}\n  postgres: {:.0} commits/s, {:.0} rows/s ({:.1}/payload), WAL {:.2} MB/s ({:.0} B/payload), +{:.0} B/payload",
            cpus.join(", "),
            c.bench_cpu_cores,
            c.broker_cpu_cores.map_or("?".to_string(), |x| format!("{x:.2}")),
            c.postgres.cpu_cores.map_or("?".to_string(), |x| format!("{x:.2}")),
            c.postgres.commits_per_s,
            c.postgres.rows_per_s,
            c.postgres.rows_per_payload,
            c.postgres.wal_mb_per_s,
            c.postgres.wal_bytes_per_payload,
            c.postgres.growth_bytes_per_payload,
        ));
        let tuples: Vec<String> = c
            .tuples
            .iter()
            .filter(|(_, n)| **n > 0)
            .map(|(k, n)| format!("{k} {n}"))
            .collect();
        if !tuples.is_empty() {
            s.push_str(&format!("\n  replays and failures: {}", tuples.join(", ")));
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_template_renders_valid_payloads_with_the_agents_values() {
        let base: Json = serde_json::from_slice(crate::generate::SAMPLE_V2_PAYLOAD).unwrap();
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

//! `squall bench chaos`: `squall up` killed with SIGKILL at random moments (seeded) while
//! a fleet of agents posts at a steady rate, restarted each time; then checked from
//! outside, through the query API and a webhook receiver, against a fault-free run of the
//! same payload sequence:
//!
//! - every payload answered 202 is stored, once (one minute row per payload);
//! - the alerts fired and cleared (device, fired at, cleared at) equal the fault-free run's;
//! - every notification id the fault-free run delivered was delivered here too and reached
//!   the receiver; repeats (the same id posted again, with the same `Idempotency-Key`) are
//!   counted: a kill between a receiver's 2xx and the outcome's write repeats that one.
//!
//! Agents behave as real ones do: a payload not answered 202 (the process is down, or
//! answers 503) is sent again until it is. Payload `j` of agent `i` has event time
//! `t0 + 60 j` and a load that crosses the rule's threshold in stretches, so alerts fire and
//! clear all along.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use md5::{Digest, Md5};
use rand::{Rng, SeedableRng};
use serde::Serialize;
use serde_json::{json, Value as Json};

use crate::processes::{api, memory_broker, receiver, Received, Up, TOKEN};

const KEY: &str = "0123456789abcdef0123456789abcdef";
const ACCOUNT: &str = "chaos";

/// Options of `bench chaos` (also its command-line arguments).
#[derive(Clone, Debug, clap::Args)]
pub struct ChaosOptions {
    /// SIGKILLs (each followed by a restart) while the fleet posts.
    #[arg(long, default_value_t = 50)]
    pub kills: u32,
    /// Seed of the kill times.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Agents (devices).
    #[arg(long, default_value_t = 10)]
    pub agents: usize,
    /// Payloads per agent.
    #[arg(long, default_value_t = 120)]
    pub payloads: u32,
    /// Payloads per second, the whole fleet.
    #[arg(long, default_value_t = 12.0)]
    pub rate: f64,
    /// Shortest time `squall up` runs before a kill.
    #[arg(long, default_value = "500ms", value_parser = humantime::parse_duration)]
    pub min_uptime: Duration,
    /// Longest time `squall up` runs before a kill.
    #[arg(long, default_value = "3s", value_parser = humantime::parse_duration)]
    pub max_uptime: Duration,
    /// Kafka bootstrap servers (default: `squall up`'s durable embedded broker).
    #[arg(long)]
    pub brokers: Option<String>,
    /// Where the runs' data directories go (default: a temporary directory, removed).
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// `squall up` processes of the chaos run, one cluster (each kill hits one of them,
    /// chosen with the seed). More than one needs a shared database (`--db`) and broker
    /// (`--brokers`; default: `squall broker`, started here).
    #[arg(long, default_value_t = 1)]
    pub processes: usize,
    /// The chaos run's database (`db.url`; an empty PostgreSQL database for a cluster).
    /// Default: each process's own SQLite file. The fault-free run always uses its own.
    #[arg(long)]
    pub db: Option<String>,
    /// The consumer group protocol of the chaos run's processes (`kafka.group_protocol`):
    /// `classic` (every broker) or `consumer` (KIP-848, which `squall broker` speaks).
    #[arg(long, default_value = "classic", value_parser = ["classic", "consumer"])]
    pub group_protocol: String,
}

/// Agent `i`'s key: its own, so the agents' payloads spread over the partitions.
fn agent_key(i: usize) -> String {
    format!("{i:04x}{}", &KEY[4..])
}

/// What a run saw.
#[derive(Debug, Default, Serialize)]
pub struct RunReport {
    /// Kills done (the chaos run).
    pub kills: u32,
    /// Payloads answered 202.
    pub accepted: u64,
    /// Posts not answered 202 (the process down or refusing), sent again.
    pub resent: u64,
    /// Payloads stored (minute rows).
    pub stored: u64,
    /// Payloads answered 202 and not stored.
    pub lost: u64,
    /// Alerts (device, fired at, cleared at or open).
    pub alerts: usize,
    /// Notification ids delivered (the notifier's outcomes).
    pub delivered: usize,
    /// Webhook posts the receiver got.
    pub posts: u64,
    /// Posts of an id the receiver already had (same `Idempotency-Key`).
    pub repeats: u64,
    /// The ids (their `Idempotency-Key`) posted more than once.
    pub repeated_ids: Vec<String>,
    /// Delivered ids the receiver never got.
    pub missing_at_receiver: usize,
    /// Seconds the run took.
    pub seconds: f64,
}

/// The chaos run, the fault-free run, and how they compare.
#[derive(Debug, Serialize)]
pub struct ChaosReport {
    /// The run with kills.
    pub chaos: RunReport,
    /// The same payloads, no kills.
    pub fault_free: RunReport,
    /// Whether the alerts are the same in both.
    pub alerts_equal: bool,
    /// Whether the delivered notification ids are the same in both.
    pub notifications_equal: bool,
    /// Alerts of one run missing from the other (first few).
    pub alert_differences: Vec<String>,
}

impl ChaosReport {
    /// Whether every check held.
    pub fn passed(&self) -> bool {
        self.chaos.lost == 0
            && self.fault_free.lost == 0
            && self.alerts_equal
            && self.notifications_equal
            && self.chaos.missing_at_receiver == 0
            && self.fault_free.missing_at_receiver == 0
    }
}

/// The benchmark's account, with a quota for `agents` devices and each agent's key.
async fn account(client: &reqwest::Client, up: &Up, agents: usize) -> anyhow::Result<()> {
    api(
        client,
        up,
        reqwest::Method::POST,
        "/accounts",
        Some(json!({"name": ACCOUNT, "device_quota": agents, "active": true})),
    )
    .await?;
    for i in 0..agents {
        api(
            client,
            up,
            reqwest::Method::POST,
            &format!("/accounts/{ACCOUNT}/agent-keys"),
            Some(json!({ "agentKey": agent_key(i) })),
        )
        .await?;
    }
    Ok(())
}

/// The load of payload `j` of agent `i`: above the threshold (4) in stretches of five
/// payloads, shifted per agent.
fn load(i: usize, j: u32) -> f64 {
    if (j as usize / 5 + i).is_multiple_of(3) {
        5.0
    } else {
        1.0
    }
}

/// The body agent `i` posts as payload `j` (zlib), and its Content-MD5.
fn body(template: &Json, t0: f64, i: usize, j: u32) -> (Vec<u8>, String) {
    let mut p = template.clone();
    p["collection_timestamp"] = json!(t0 + 60.0 * f64::from(j));
    p["system.load.1"] = json!(load(i, j));
    p["agentKey"] = json!(agent_key(i));
    p["internalHostname"] = json!(format!("chaos-{i}.example.com"));
    let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    let _ = z.write_all(&serde_json::to_vec(&p).unwrap_or_default());
    let body = z.finish().unwrap_or_default();
    let md5 = format!("{:x}", Md5::digest(&body));
    (body, md5)
}

/// Posts every agent's payloads in order, each until it is answered 202, at `rate` for the
/// fleet; returns (accepted, resent).
async fn fleet(
    client: reqwest::Client,
    intakes: Vec<String>,
    (agents, payloads): (usize, u32),
    rate: f64,
    t0: f64,
) -> (u64, u64) {
    let template: Json =
        serde_json::from_slice(crate::generate::SAMPLE_V2_PAYLOAD).unwrap_or(Json::Null);
    let accepted = Arc::new(AtomicU64::new(0));
    let resent = Arc::new(AtomicU64::new(0));
    let per_agent = Duration::from_secs_f64(agents as f64 / rate.max(0.001));
    let mut tasks = Vec::new();
    for i in 0..agents {
        let (client, intakes, template) = (client.clone(), intakes.clone(), template.clone());
        let (accepted, resent) = (accepted.clone(), resent.clone());
        tasks.push(tokio::spawn(async move {
            // Agents start spread over one period.
            let start =
                tokio::time::Instant::now() + per_agent.mul_f64(i as f64 / payloads.max(1) as f64);
            let mut every = tokio::time::interval_at(start, per_agent);
            let mut retry = tokio::time::interval(Duration::from_millis(50));
            // Each agent posts to an intake of its own, and to the next one while that
            // one does not answer 202 (its process is down).
            let mut at = i;
            let key = agent_key(i);
            for j in 0..payloads {
                every.tick().await;
                let (body, md5) = body(&template, t0, i, j);
                loop {
                    let intake = &intakes[at % intakes.len().max(1)];
                    let sent = client
                        .post(format!("{intake}/intake/?agent_key={key}"))
                        .header("Host", format!("{ACCOUNT}.agent.example.com"))
                        .header("Content-Encoding", "deflate")
                        .header("Content-MD5", &md5)
                        .body(body.clone())
                        .send()
                        .await;
                    if sent.is_ok_and(|r| r.status().as_u16() == 202) {
                        accepted.fetch_add(1, Ordering::Relaxed);
                        break;
                    }
                    resent.fetch_add(1, Ordering::Relaxed);
                    at += 1;
                    retry.tick().await;
                }
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    (
        accepted.load(Ordering::Relaxed),
        resent.load(Ordering::Relaxed),
    )
}

/// Polls `check` every 100 ms until it returns `Some`, or `timeout`.
async fn settle<T, F, Fut>(timeout: Duration, mut check: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    let mut every = tokio::time::interval(Duration::from_millis(100));
    loop {
        every.tick().await;
        if let Some(v) = check().await {
            return Some(v);
        }
        if Instant::now() >= deadline {
            return None;
        }
    }
}

/// What a finished run stored and notified.
struct Outcome {
    report: RunReport,
    alerts: BTreeSet<String>,
    delivered: BTreeSet<String>,
}

/// Where a run's processes keep their data and queue their payloads.
struct Cluster<'a> {
    /// `squall up` processes.
    processes: usize,
    /// Kafka bootstrap servers (`None`: each process's embedded journal).
    brokers: Option<&'a str>,
    /// The database (`None`: each process's SQLite file).
    db: Option<&'a str>,
    /// `kafka.group_protocol`.
    group_protocol: &'a str,
}

/// One run: `squall up` processes in `dir`, the fleet, `kills` kills (seeded, each of one
/// process, restarted at once), then the checks.
#[allow(clippy::too_many_arguments)]
async fn run(
    exe: &Path,
    dir: &Path,
    opts: &ChaosOptions,
    cluster: Cluster<'_>,
    kills: u32,
    rate: f64,
    prefix: &str,
    hook: &str,
    received: &Received,
    t0: f64,
) -> anyhow::Result<Outcome> {
    let started = Instant::now();
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()?;
    let mut ups = Vec::with_capacity(cluster.processes.max(1));
    for k in 0..cluster.processes.max(1) {
        let node = if cluster.processes > 1 {
            dir.join(format!("node-{k}"))
        } else {
            dir.to_path_buf()
        };
        let mut up = Up::new(exe, &node, cluster.brokers, cluster.db, prefix)?;
        up.env.push((
            "SQUALL__KAFKA__GROUP_PROTOCOL".into(),
            cluster.group_protocol.into(),
        ));
        up.start(&client).await?;
        ups.push(up);
    }
    let intakes: Vec<String> = ups.iter().map(|u| u.intake.clone()).collect();
    let up = &ups[0];
    account(&client, up, opts.agents).await?;
    api(
        &client,
        up,
        reqwest::Method::POST,
        "/alerts/configs",
        Some(json!({
            "account": ACCOUNT, "name": "High load", "kind": "threshold",
            "subject": {"type": "account"}, "metric": "system.load.1",
            "comparison": "gte", "value": 4,
            "wait": {"seconds": 0, "enabled": false},
            "repeat": {"seconds": 0, "enabled": false},
            "fix": true,
            "recipients": [{"type": "webhook", "url": hook, "grouping": {"group_by": []}}]
        })),
    )
    .await?;
    let posting = tokio::spawn(fleet(
        client.clone(),
        intakes,
        (opts.agents, opts.payloads),
        rate,
        t0,
    ));
    let mut rng = rand::rngs::SmallRng::seed_from_u64(opts.seed);
    let mut done_kills = 0;
    let (lo, hi) = (opts.min_uptime, opts.max_uptime.max(opts.min_uptime));
    while done_kills < kills && !posting.is_finished() {
        let uptime = lo + (hi - lo).mul_f64(rng.gen::<f64>());
        tokio::time::sleep(uptime).await;
        if posting.is_finished() {
            break;
        }
        let victim = rng.gen_range(0..ups.len());
        ups[victim].kill();
        done_kills += 1;
        ups[victim].start(&client).await?;
    }
    let (accepted, resent) = posting.await?;
    let up = &ups[0];

    // Settle: every device's payloads stored, the notifications delivered and quiet.
    let expected = u64::from(opts.payloads);
    let devices_path = format!("/accounts/{ACCOUNT}/devices");
    let devices = match settle(Duration::from_secs(60), || async {
        let d = api(&client, up, reqwest::Method::GET, &devices_path, None)
            .await
            .ok()?;
        (d.as_array()?.len() == opts.agents).then_some(d)
    })
    .await
    {
        Some(d) => d,
        // A run that lost payloads may miss devices: count what is there.
        None => api(&client, up, reqwest::Method::GET, &devices_path, None).await?,
    };
    // One deadline for all devices: a run that lost payloads waits 120 s once, not per
    // device; then what is stored is counted.
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut stored = 0u64;
    for d in devices.as_array().into_iter().flatten() {
        let path = format!("/devices/{}/metrics?metric=system.load.1", d["id"]);
        let left = deadline.saturating_duration_since(Instant::now());
        let count = || async {
            let m = api(&client, up, reqwest::Method::GET, &path, None)
                .await
                .ok()?;
            Some(m["points"].as_array()?.len() as u64)
        };
        let points = match settle(left, || async { count().await.filter(|n| *n >= expected) }).await
        {
            Some(n) => n,
            None => count().await.unwrap_or(0),
        };
        stored += points;
    }
    let hook_path = reqwest::Url::parse(hook)?.path().to_string();
    let posts_now = || {
        received
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&hook_path)
            .map_or(0, Vec::len)
    };
    // Quiet for 3 s: the same outcomes and posts. In a cluster, a notification claimed by
    // a killed process waits for its claim to run out (30 s): quiet for longer than that.
    let quiet = if cluster.processes > 1 {
        Duration::from_secs(33)
    } else {
        Duration::from_secs(3)
    };
    let mut last = (usize::MAX, 0usize);
    let mut quiet_since = Instant::now();
    let deadline = Instant::now() + Duration::from_secs(180);
    let notifications = loop {
        anyhow::ensure!(
            Instant::now() < deadline,
            "the notifications did not settle within 180 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
        let Ok(n) = api(&client, up, reqwest::Method::GET, "/notifications", None).await else {
            continue;
        };
        let now = (n.as_array().map_or(0, Vec::len), posts_now());
        if now != last {
            last = now;
            quiet_since = Instant::now();
        } else if quiet_since.elapsed() >= quiet {
            break n;
        }
    };
    let alerts_open = api(&client, up, reqwest::Method::GET, "/alerts/triggered", None).await?;
    let alerts_closed = api(
        &client,
        up,
        reqwest::Method::GET,
        "/alerts/triggered?closed=true",
        None,
    )
    .await?;
    for up in &mut ups {
        up.stop();
    }

    let hostname: BTreeMap<String, String> = devices
        .as_array()
        .into_iter()
        .flatten()
        .map(|d| {
            (
                d["id"].to_string(),
                d["hostname"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    let alerts: BTreeSet<String> = alerts_open
        .as_array()
        .into_iter()
        .chain(alerts_closed.as_array())
        .flatten()
        .map(|a| {
            let device = hostname
                .get(&a["device"].to_string())
                .cloned()
                .unwrap_or_else(|| a["device"].to_string());
            format!(
                "{device} fired {} cleared {}",
                a["fired_at"], a["closed_at"]
            )
        })
        .collect();
    // Device ids depend on which agent registered first: name them by host to compare.
    let by_host = |id: &str| -> String {
        id.split('-')
            .map(|part| {
                part.strip_prefix('d')
                    .and_then(|n| hostname.get(n))
                    .cloned()
                    .unwrap_or_else(|| part.to_string())
            })
            .collect::<Vec<_>>()
            .join("-")
    };
    let delivered: BTreeSet<String> = notifications
        .as_array()
        .into_iter()
        .flatten()
        .filter(|n| n["status"] == "delivered")
        .filter_map(|n| n["id"].as_str().map(by_host))
        .collect();
    let posts = received
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get(&hook_path)
        .cloned()
        .unwrap_or_default();
    let unique: BTreeSet<String> = posts.iter().map(|id| by_host(id)).collect();
    let report = RunReport {
        kills: done_kills,
        accepted,
        resent,
        stored,
        lost: accepted.saturating_sub(stored),
        alerts: alerts.len(),
        delivered: delivered.len(),
        posts: posts.len() as u64,
        repeats: (posts.len().saturating_sub(unique.len())) as u64,
        repeated_ids: {
            let mut seen = BTreeSet::new();
            let mut again = BTreeSet::new();
            for id in &posts {
                if !seen.insert(id.as_str()) {
                    again.insert(id.clone());
                }
            }
            again.into_iter().collect()
        },
        missing_at_receiver: delivered.iter().filter(|id| !unique.contains(*id)).count(),
        seconds: started.elapsed().as_secs_f64(),
    };
    Ok(Outcome {
        report,
        alerts,
        delivered,
    })
}

/// Runs the chaos run and the fault-free run (`exe` is the `squall` binary).
pub async fn chaos(exe: &Path, opts: ChaosOptions) -> anyhow::Result<ChaosReport> {
    let temp;
    let base = match &opts.dir {
        Some(d) => d.clone(),
        None => {
            temp = tempfile::tempdir()?;
            temp.path().to_path_buf()
        }
    };
    let (received, addr) = receiver().await?;
    // Event times a day back (the whole sequence stays behind the receive time), the same
    // for both runs.
    let t0 = ((crate::fleet::epoch_secs() - 86_400.0) / 60.0).floor() * 60.0;
    let tag = crate::fleet::fresh_prefix();
    let prefix = format!("{tag}chaos.");
    anyhow::ensure!(
        opts.processes <= 1 || opts.db.is_some(),
        "--processes {} needs a database they share: --db postgres://...",
        opts.processes
    );
    // A cluster needs a broker its processes share: the one given, or `squall broker`.
    let mut broker = None;
    let brokers = match (&opts.brokers, opts.processes > 1) {
        (Some(b), _) => Some(b.clone()),
        (None, true) => {
            let (child, addr) = memory_broker(exe, &prefix, 6_000, 4)?;
            broker = Some(child);
            Some(addr)
        }
        (None, false) => None,
    };
    let chaos = run(
        exe,
        &base.join("chaos"),
        &opts,
        Cluster {
            processes: opts.processes,
            brokers: brokers.as_deref(),
            db: opts.db.as_deref(),
            group_protocol: &opts.group_protocol,
        },
        opts.kills,
        opts.rate,
        &prefix,
        &format!("http://{addr}/chaos"),
        &received,
        t0,
    )
    .await;
    if let Some(mut b) = broker {
        let _ = b.kill();
        let _ = b.wait();
    }
    let chaos = chaos?;
    // The fault-free run: one process on its own journal and SQLite file, whatever the
    // chaos run used (the alerts depend on the payloads only).
    let clean = run(
        exe,
        &base.join("fault-free"),
        &opts,
        Cluster {
            processes: 1,
            brokers: None,
            db: None,
            group_protocol: "classic",
        },
        0,
        opts.rate * 5.0,
        &format!("{tag}clean."),
        &format!("http://{addr}/clean"),
        &received,
        t0,
    )
    .await?;
    let differences: Vec<String> = chaos
        .alerts
        .symmetric_difference(&clean.alerts)
        .take(10)
        .cloned()
        .collect();
    Ok(ChaosReport {
        alerts_equal: chaos.alerts == clean.alerts,
        notifications_equal: chaos.delivered == clean.delivered,
        alert_differences: differences,
        chaos: chaos.report,
        fault_free: clean.report,
    })
}

/// Options of `bench failover` (also its command-line arguments).
#[derive(Clone, Debug, clap::Args)]
pub struct FailoverOptions {
    /// The cluster's database: an empty PostgreSQL database (`db.url`).
    #[arg(long)]
    pub db: String,
    /// `squall up` processes.
    #[arg(long, default_value_t = 3)]
    pub processes: usize,
    /// Kills measured (each of one process, not restarted until its partitions moved).
    #[arg(long, default_value_t = 3)]
    pub kills: u32,
    /// Agents (devices), each with its own agent key.
    #[arg(long, default_value_t = 12)]
    pub agents: usize,
    /// Payloads per second, the whole fleet.
    #[arg(long, default_value_t = 24.0)]
    pub rate: f64,
    /// The group session timeout (`kafka.session_timeout_ms` of the processes, and of
    /// `squall broker` for KIP-848 groups).
    #[arg(long, default_value_t = 6000)]
    pub session_timeout_ms: u64,
    /// The consumer group protocol of the processes (`kafka.group_protocol`): `consumer`
    /// (KIP-848, which `squall broker` speaks) or `classic` (every broker).
    #[arg(long, default_value = "consumer", value_parser = ["classic", "consumer"])]
    pub group_protocol: String,
    /// Kafka bootstrap servers (default: `squall bench` starts `squall broker`).
    #[arg(long)]
    pub brokers: Option<String>,
    /// Where the processes' data directories go (default: a temporary directory).
    #[arg(long)]
    pub dir: Option<PathBuf>,
}

/// What `bench failover` measured.
#[derive(Debug, Serialize)]
pub struct FailoverReport {
    /// Processes in the cluster.
    pub processes: usize,
    /// The consumer group protocol.
    pub group_protocol: String,
    /// The session timeout, ms.
    pub session_timeout_ms: u64,
    /// Per kill: seconds from the SIGKILL until every device posting meanwhile had a new
    /// payload stored (so every partition of the killed process was processed again);
    /// `null` when no device stalled (the killed process held no partition).
    pub failover_s: Vec<Option<f64>>,
    /// The median of the timed ones.
    pub median_s: f64,
    /// Devices whose payloads stalled in each kill (those of the killed process's
    /// partitions).
    pub stalled_devices: Vec<usize>,
}

/// `bench failover`: a cluster under a steady fleet; one process SIGKILLed at a time, and
/// the time until its partitions are processed again measured from outside (each
/// device's stored minutes, through the query API of a surviving process).
pub async fn failover(exe: &Path, opts: FailoverOptions) -> anyhow::Result<FailoverReport> {
    anyhow::ensure!(opts.processes >= 2, "--processes must be at least 2");
    let temp;
    let base = match &opts.dir {
        Some(d) => d.clone(),
        None => {
            temp = tempfile::tempdir()?;
            temp.path().to_path_buf()
        }
    };
    let prefix = format!("{}failover.", crate::fleet::fresh_prefix());
    let mut broker = None;
    let brokers = match &opts.brokers {
        Some(b) => b.clone(),
        None => {
            let (child, addr) = memory_broker(exe, &prefix, opts.session_timeout_ms, 4)?;
            broker = Some(child);
            addr
        }
    };
    let result = measure_failover(exe, &base, &opts, &brokers, &prefix).await;
    if let Some(mut b) = broker {
        let _ = b.kill();
        let _ = b.wait();
    }
    result
}

async fn measure_failover(
    exe: &Path,
    base: &Path,
    opts: &FailoverOptions,
    brokers: &str,
    prefix: &str,
) -> anyhow::Result<FailoverReport> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()?;
    let mut ups = Vec::new();
    for k in 0..opts.processes {
        let mut up = Up::new(
            exe,
            &base.join(format!("node-{k}")),
            Some(brokers),
            Some(&opts.db),
            prefix,
        )?;
        up.env.push((
            "SQUALL__KAFKA__SESSION_TIMEOUT_MS".into(),
            opts.session_timeout_ms.to_string(),
        ));
        up.env.push((
            "SQUALL__KAFKA__GROUP_PROTOCOL".into(),
            opts.group_protocol.clone(),
        ));
        up.start(&client).await?;
        ups.push(up);
    }
    let up = &ups[0];
    account(&client, up, opts.agents).await?;
    // Enough payloads for the whole measurement (each kill: settle, failover, restart).
    let per_kill = 10.0 + 3.0 * opts.session_timeout_ms as f64 / 1000.0 + 20.0;
    let seconds = 15.0 + per_kill * f64::from(opts.kills);
    let payloads = (seconds * opts.rate / opts.agents as f64).ceil() as u32;
    let t0 = ((crate::fleet::epoch_secs() - 86_400.0) / 60.0).floor() * 60.0;
    let intakes: Vec<String> = ups.iter().map(|u| u.intake.clone()).collect();
    let posting = tokio::spawn(fleet(
        client.clone(),
        intakes,
        (opts.agents, payloads),
        opts.rate,
        t0,
    ));
    // Stored minutes per device, through process `via`'s query API.
    let admins: Vec<String> = ups.iter().map(|u| u.admin.clone()).collect();
    let counts = |via: usize, ids: Vec<String>| {
        let client = client.clone();
        let admin = admins[via].clone();
        async move {
            let mut out = Vec::with_capacity(ids.len());
            for id in ids {
                let r = client
                    .get(format!("{admin}/devices/{id}/metrics?metric=system.load.1"))
                    .bearer_auth(TOKEN)
                    .send()
                    .await
                    .ok()?;
                let j: Json = r.json().await.ok()?;
                out.push(j["points"].as_array()?.len());
            }
            Some(out)
        }
    };
    let ids: Vec<String> = settle(Duration::from_secs(60), || async {
        let d = api(
            &client,
            up,
            reqwest::Method::GET,
            &format!("/accounts/{ACCOUNT}/devices"),
            None,
        )
        .await
        .ok()?;
        let d = d.as_array()?;
        (d.len() == opts.agents).then(|| d.iter().map(|x| x["id"].to_string()).collect())
    })
    .await
    .context("the agents' devices did not all register within 60 s")?;
    let mut failover_s = Vec::new();
    let mut stalled_devices = Vec::new();
    for kill in 0..opts.kills {
        // Steady first: every device advancing.
        tokio::time::sleep(Duration::from_secs(10)).await;
        let victim = 1 + (kill as usize % (opts.processes - 1)); // never the one we query
        let before = counts(0, ids.clone())
            .await
            .context("reading the stored minutes")?;
        ups[victim].kill();
        let killed = Instant::now();
        // A device resumed once two more of its payloads are stored (one may have been in
        // flight when the kill came); the failover is the last device to resume.
        let mut resumed: Vec<Option<f64>> = vec![None; ids.len()];
        let deadline = killed + Duration::from_secs(120);
        while resumed.iter().any(Option::is_none) && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(100)).await;
            let Some(now) = counts(0, ids.clone()).await else {
                continue;
            };
            let at = killed.elapsed().as_secs_f64();
            for (k, n) in now.iter().enumerate() {
                if resumed[k].is_none() && *n >= before[k] + 2 {
                    resumed[k] = Some(at);
                }
            }
        }
        anyhow::ensure!(
            resumed.iter().all(Option::is_some),
            "kill {kill}: some devices were not processed again within 120 s"
        );
        let times: Vec<f64> = resumed.into_iter().flatten().collect();
        // Devices of the killed process's partitions waited for the takeover; the others
        // only for their next two payloads (about a second at the default rate).
        let every = opts.agents as f64 / opts.rate.max(0.001);
        let stalled: Vec<f64> = times.iter().copied().filter(|t| *t > 4.0 * every).collect();
        stalled_devices.push(stalled.len());
        // No device stalled: the killed process held no partition; nothing to time.
        failover_s.push(stalled.iter().copied().reduce(f64::max));
        ups[victim].start(&client).await?;
    }
    posting.abort();
    for up in &mut ups {
        up.stop();
    }
    let mut sorted: Vec<f64> = failover_s.iter().flatten().copied().collect();
    sorted.sort_by(f64::total_cmp);
    let median_s = sorted.get(sorted.len() / 2).copied().unwrap_or(0.0);
    Ok(FailoverReport {
        processes: opts.processes,
        group_protocol: opts.group_protocol.clone(),
        session_timeout_ms: opts.session_timeout_ms,
        failover_s,
        median_s,
        stalled_devices,
    })
}

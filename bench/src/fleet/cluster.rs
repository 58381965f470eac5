//! `bench fleet --processes N --db postgres://...`: the fleet against a cluster of `N`
//! `squall up` processes (children of the bench) sharing one broker and one PostgreSQL
//! database, measured from outside as an operator would:
//!
//! - `http`: by the agents, exactly (hdrhistogram), as in-process;
//! - the pipeline stages and `complete`: each process's Prometheus histograms
//!   (`squall_stage_latency_seconds{stage}`, `squall_kafka_record_latency_seconds
//!   {component="payloads"}`), the run's increase summed over the processes, percentiles
//!   interpolated within buckets as Prometheus' `histogram_quantile` does (so they are
//!   estimates at the buckets' resolution, `LATENCY_BUCKETS` of the binary);
//! - CPU per process (`/proc/PID/stat`: user + system time over the run's wall time, in
//!   cores), the bench's own (the agents), and PostgreSQL's (its postmaster's children,
//!   when the server runs on this machine);
//! - PostgreSQL's writes over the run (WAL bytes, commits, rows inserted, updated and
//!   deleted, database growth), per payload and per second.
//!
//! Invariant: a run's figures are differences between snapshots taken just before its
//! first post and after its last payload completed (or the drain gave up), so warm-up and
//! earlier steps never count; PostgreSQL's row and commit counts are read 11 s later, once
//! its backends have reported them (per-second rates use the run's own time).

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Context;
use serde::Serialize;

use super::report::StageReport;
use crate::processes::{memory_broker, receiver, Up};

/// A process's Prometheus histograms: (metric, the label that tells them apart) ->
/// cumulative counts per upper bound (`f64::INFINITY` last).
pub(crate) type Buckets = HashMap<(String, String), Vec<(f64, f64)>>;

/// The histograms `bench fleet` reads, and the label that names each series.
const HISTOGRAMS: [(&str, &str); 2] = [
    ("squall_stage_latency_seconds", "stage"),
    ("squall_kafka_record_latency_seconds", "component"),
];

/// Parses the `_bucket` lines of [`HISTOGRAMS`] out of a Prometheus text exposition.
pub(crate) fn parse_buckets(text: &str) -> Buckets {
    let mut out: Buckets = HashMap::new();
    for line in text.lines() {
        let Some((series, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let Some((name, labels)) = series.split_once('{') else {
            continue;
        };
        let Some(metric) = name.strip_suffix("_bucket") else {
            continue;
        };
        let Some((_, key)) = HISTOGRAMS.iter().find(|(m, _)| *m == metric) else {
            continue;
        };
        let labels = labels.trim_end_matches('}');
        let label = |want: &str| {
            labels.split(',').find_map(|kv| {
                let (k, v) = kv.split_once('=')?;
                (k.trim() == want).then(|| v.trim().trim_matches('"').to_string())
            })
        };
        let (Some(which), Some(le), Ok(count)) = (label(key), label("le"), value.parse::<f64>())
        else {
            continue;
        };
        let le = if le == "+Inf" {
            f64::INFINITY
        } else {
            match le.parse::<f64>() {
                Ok(v) => v,
                Err(_) => continue,
            }
        };
        // A component's tasks (`payloads#0`, `payloads#1`) add up.
        let which = which.split('#').next().unwrap_or_default().to_string();
        let series = out.entry((metric.to_string(), which)).or_default();
        match series.iter_mut().find(|(l, _)| *l == le) {
            Some(slot) => slot.1 += count,
            None => series.push((le, count)),
        }
    }
    for b in out.values_mut() {
        b.sort_by(|x, y| x.0.total_cmp(&y.0));
    }
    out
}

/// The counters `bench fleet` reports from a Prometheus text exposition: the payloads
/// spout's replays (`squall_kafka_retries_total`) and the failed tuples by reason
/// (`squall_failed_total`), all components.
pub(crate) fn parse_counters(text: &str) -> BTreeMap<String, f64> {
    let mut out = BTreeMap::new();
    for line in text.lines() {
        let Some((series, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let Ok(value) = value.parse::<f64>() else {
            continue;
        };
        let name = if series.starts_with("squall_kafka_retries_total{")
            && series.contains("component=\"payloads#")
        {
            "replayed".to_string()
        } else if let Some(labels) = series.strip_prefix("squall_failed_total{") {
            match labels
                .split(',')
                .find_map(|kv| kv.trim().strip_prefix("reason="))
            {
                Some(reason) => {
                    format!("failed_{}", reason.trim_end_matches('}').trim_matches('"'))
                }
                None => continue,
            }
        } else {
            continue;
        };
        *out.entry(name).or_insert(0.0) += value;
    }
    out
}

/// `after - before`, summed over processes: the run's samples of every series.
pub(crate) fn increase(before: &[Buckets], after: &[Buckets]) -> Buckets {
    let mut out: Buckets = HashMap::new();
    for (k, after) in after.iter().enumerate() {
        for (series, buckets) in after {
            let base = before.get(k).and_then(|b| b.get(series));
            let sum = out
                .entry(series.clone())
                .or_insert_with(|| buckets.iter().map(|(le, _)| (*le, 0.0)).collect());
            for (i, (le, count)) in buckets.iter().enumerate() {
                let was = base
                    .and_then(|b| b.iter().find(|(l, _)| l == le))
                    .map_or(0.0, |(_, c)| *c);
                if let Some(slot) = sum.get_mut(i) {
                    // A restarted process starts from zero: count what it has.
                    slot.1 += if *count >= was { count - was } else { *count };
                }
            }
        }
    }
    out
}

/// The `q` quantile of cumulative `buckets`, in seconds, as `histogram_quantile` computes
/// it: linear within the bucket that holds it; the highest finite bound when it falls in
/// the `+Inf` bucket. `None` without samples.
pub(crate) fn quantile(buckets: &[(f64, f64)], q: f64) -> Option<f64> {
    let total = buckets.last()?.1;
    if total <= 0.0 {
        return None;
    }
    let rank = q * total;
    let (mut lower, mut below) = (0.0, 0.0);
    for (le, count) in buckets {
        if *count >= rank {
            if le.is_infinite() {
                return Some(lower);
            }
            let within = count - below;
            let frac = if within > 0.0 {
                (rank - below) / within
            } else {
                1.0
            };
            return Some(lower + (le - lower) * frac);
        }
        lower = *le;
        below = *count;
    }
    Some(lower)
}

/// Percentiles of one series of the run (`max_ms`: the upper bound of the highest bucket
/// with samples).
pub(crate) fn bucket_report(buckets: &[(f64, f64)]) -> StageReport {
    let ms = |s: Option<f64>| (s.unwrap_or(0.0) * 1e6).round() / 1000.0;
    let mut max = None;
    let mut below = 0.0;
    for (le, count) in buckets {
        if *count > below {
            max = Some(if le.is_infinite() {
                buckets
                    .iter()
                    .rev()
                    .find(|(l, _)| l.is_finite())
                    .map_or(0.0, |(l, _)| *l)
            } else {
                *le
            });
        }
        below = *count;
    }
    StageReport {
        count: buckets.last().map_or(0, |(_, c)| *c as u64),
        p50_ms: ms(quantile(buckets, 0.5)),
        p90_ms: ms(quantile(buckets, 0.9)),
        p99_ms: ms(quantile(buckets, 0.99)),
        p999_ms: ms(quantile(buckets, 0.999)),
        max_ms: ms(max),
    }
}

/// CPU seconds (user + system) `pid` has used, from `/proc/PID/stat`.
fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces) in parentheses.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name; in
    // clock ticks of USER_HZ, 100 on Linux.
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    Some(ticks / 100.0)
}

fn parent_of(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 2..];
    rest.split_whitespace().nth(1)?.parse().ok()
}

/// CPU seconds of the postmaster `root` and every process it started.
fn tree_cpu_seconds(root: u32) -> Option<f64> {
    let mut total = cpu_seconds(root)?;
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        if parent_of(pid) == Some(root) {
            total += cpu_seconds(pid).unwrap_or(0.0);
        }
    }
    Some(total)
}

/// How long after the last write PostgreSQL's statistics count it (see [`Cluster::finish`]).
const STATS_SETTLE: Duration = Duration::from_secs(11);

/// What PostgreSQL has written, at one moment.
#[derive(Clone, Copy, Debug, Default)]
struct PgCounters {
    wal_bytes: f64,
    commits: f64,
    rows: f64,
    db_bytes: f64,
}

/// A connection to the cluster's database for its statistics.
struct Pg {
    client: tokio_postgres::Client,
    /// The postmaster's pid, when it runs on this machine.
    postmaster: Option<u32>,
}

impl Pg {
    async fn connect(url: &str) -> anyhow::Result<Pg> {
        // squall's own options (`pool_size`) are not tokio-postgres's.
        let base = url.split('?').next().unwrap_or(url);
        let (client, conn) = tokio_postgres::connect(base, tokio_postgres::NoTls)
            .await
            .with_context(|| format!("connecting to {}", squall_pipeline::stores::redact(url)))?;
        tokio::spawn(conn);
        // A backend's parent is the postmaster; readable only when it runs here.
        let backend: i32 = client
            .query_one("SELECT pg_backend_pid()", &[])
            .await?
            .get(0);
        let postmaster = u32::try_from(backend)
            .ok()
            .and_then(parent_of)
            .filter(|p| cpu_seconds(*p).is_some());
        Ok(Pg { client, postmaster })
    }

    async fn counters(&self) -> anyhow::Result<PgCounters> {
        // Statistics are flushed by backends about once a second; ask for fresh ones.
        let _ = self
            .client
            .batch_execute("SELECT pg_stat_clear_snapshot()")
            .await;
        let row = self
            .client
            .query_one(
                "SELECT (pg_current_wal_lsn() - '0/0'::pg_lsn)::float8,
                        xact_commit::float8,
                        (tup_inserted + tup_updated + tup_deleted)::float8,
                        pg_database_size(current_database())::float8
                 FROM pg_stat_database WHERE datname = current_database()",
                &[],
            )
            .await?;
        Ok(PgCounters {
            wal_bytes: row.get(0),
            commits: row.get(1),
            rows: row.get(2),
            db_bytes: row.get(3),
        })
    }
}

/// One process's share of a run.
#[derive(Clone, Debug, Serialize)]
pub struct ProcessFigures {
    /// CPU used over the run, in cores (CPU seconds / wall seconds).
    pub cpu_cores: f64,
    /// Payloads whose tree completed in this process.
    pub completed: u64,
}

/// PostgreSQL's writes over a run.
#[derive(Clone, Debug, Serialize)]
pub struct PostgresFigures {
    /// WAL written, MB/s.
    pub wal_mb_per_s: f64,
    /// WAL written per payload, bytes.
    pub wal_bytes_per_payload: f64,
    /// Transactions committed per second.
    pub commits_per_s: f64,
    /// Rows inserted, updated or deleted per second.
    pub rows_per_s: f64,
    /// Rows inserted, updated or deleted per payload.
    pub rows_per_payload: f64,
    /// How much the database grew per payload, bytes (tables and indexes; before vacuum
    /// and retention).
    pub growth_bytes_per_payload: f64,
    /// PostgreSQL's CPU over the run, in cores (when it runs on this machine).
    pub cpu_cores: Option<f64>,
}

/// What a cluster run measured besides latency.
#[derive(Clone, Debug, Serialize)]
pub struct ClusterFigures {
    /// Each `squall up`.
    pub processes: Vec<ProcessFigures>,
    /// Payloads the spouts replayed (`replayed`) and tuples failed by reason
    /// (`failed_timeout`, `failed_failed`, ...), all processes: 0 in a healthy run.
    pub tuples: BTreeMap<String, u64>,
    /// The bench itself (the agents), in cores.
    pub bench_cpu_cores: f64,
    /// The `squall broker` the bench started, in cores (`None` with `--brokers`).
    pub broker_cpu_cores: Option<f64>,
    /// The database.
    pub postgres: PostgresFigures,
}

/// What a run is measured against: the counters when it began.
struct Baseline {
    buckets: Vec<Buckets>,
    counters: Vec<BTreeMap<String, f64>>,
    cpus: Vec<f64>,
    own_cpu: f64,
    broker_cpu: Option<f64>,
    pg: PgCounters,
    pg_cpu: Option<f64>,
    at: Instant,
}

/// The cluster under test: its processes, its broker, its database.
pub(crate) struct Cluster {
    pub(crate) ups: Vec<Up>,
    broker: Option<std::process::Child>,
    pg: Pg,
    client: reqwest::Client,
    base: Option<Baseline>,
}

impl Cluster {
    /// Starts `processes` `squall up` (the binary `exe`) in `dir` on `brokers` (or a
    /// `squall broker` started here with `partitions` partitions per topic) and `db`,
    /// with topics named by `prefix`. The database must hold the fleet's account already.
    pub(crate) async fn start(
        exe: &Path,
        dir: &Path,
        processes: usize,
        brokers: Option<&str>,
        db: &str,
        prefix: &str,
        partitions: i32,
    ) -> anyhow::Result<Cluster> {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()?;
        let (broker, brokers) = match brokers {
            Some(b) => {
                let names = squall_pipeline::topologies::Names::new(prefix);
                squall_connectors::kafka::ensure_topics(b, &names.topics(), partitions).await?;
                (None, b.to_string())
            }
            None => {
                let (child, addr) = memory_broker(exe, prefix, 6_000, partitions)?;
                (Some(child), addr)
            }
        };
        let pg = Pg::connect(db).await?;
        let mut cluster = Cluster {
            ups: Vec::new(),
            broker,
            pg,
            client,
            base: None,
        };
        for k in 0..processes {
            let mut up = Up::new(
                exe,
                &dir.join(format!("node-{k}")),
                Some(&brokers),
                Some(db),
                prefix,
            )?;
            up.env.push(("RUST_LOG".into(), "error".into()));
            up.start(&cluster.client).await?;
            cluster.ups.push(up);
        }
        Ok(cluster)
    }

    /// The intakes' URLs.
    pub(crate) fn intakes(&self) -> Vec<String> {
        self.ups
            .iter()
            .map(|u| format!("{}/intake/", u.intake))
            .collect()
    }

    async fn scrape(&self) -> Vec<(Buckets, BTreeMap<String, f64>)> {
        let mut out = Vec::with_capacity(self.ups.len());
        for up in &self.ups {
            let text = match self
                .client
                .get(format!("http://{}/metrics", up.metrics))
                .send()
                .await
            {
                Ok(r) => r.text().await.unwrap_or_default(),
                Err(_) => String::new(),
            };
            out.push((parse_buckets(&text), parse_counters(&text)));
        }
        out
    }

    fn cpus(&self) -> Vec<f64> {
        self.ups
            .iter()
            .map(|u| u.pid().and_then(cpu_seconds).unwrap_or(0.0))
            .collect()
    }

    fn broker_cpu(&self) -> Option<f64> {
        self.broker.as_ref().and_then(|b| cpu_seconds(b.id()))
    }

    /// Snapshots everything a run is measured against.
    pub(crate) async fn begin(&mut self) -> anyhow::Result<()> {
        let (buckets, counters) = self.scrape().await.into_iter().unzip();
        let cpus = self.cpus();
        let own = cpu_seconds(std::process::id()).unwrap_or(0.0);
        let broker_cpu = self.broker_cpu();
        let pg = self.pg.counters().await?;
        let pg_cpu = self.pg.postmaster.and_then(tree_cpu_seconds);
        self.base = Some(Baseline {
            buckets,
            counters,
            cpus,
            own_cpu: own,
            broker_cpu,
            pg,
            pg_cpu,
            at: Instant::now(),
        });
        Ok(())
    }

    /// Payloads completed since [`Cluster::begin`], all processes.
    pub(crate) async fn completed(&self) -> u64 {
        let Some(base) = &self.base else {
            return 0;
        };
        let now: Vec<Buckets> = self.scrape().await.into_iter().map(|(b, _)| b).collect();
        let inc = increase(&base.buckets, &now);
        complete_series(&inc).map_or(0, |b| b.last().map_or(0, |(_, c)| *c as u64))
    }

    /// The run's stages (but `http`) and figures, `payloads` being those it accepted.
    pub(crate) async fn finish(
        &mut self,
        payloads: u64,
    ) -> anyhow::Result<(BTreeMap<String, StageReport>, ClusterFigures)> {
        let Baseline {
            buckets: base,
            counters: counters0,
            cpus: cpus0,
            own_cpu: own0,
            broker_cpu: broker0,
            pg: pg0,
            pg_cpu: pgcpu0,
            at,
        } = self.base.take().context("a run finished before it began")?;
        let wall = at.elapsed().as_secs_f64().max(1e-9);
        let (now, counters): (Vec<Buckets>, Vec<BTreeMap<String, f64>>) =
            self.scrape().await.into_iter().unzip();
        let mut tuples = BTreeMap::new();
        for (k, c) in counters.iter().enumerate() {
            for (name, v) in c {
                let was = counters0
                    .get(k)
                    .and_then(|b| b.get(name))
                    .copied()
                    .unwrap_or(0.0);
                let add = if *v >= was { v - was } else { *v };
                *tuples.entry(name.clone()).or_insert(0u64) += add as u64;
            }
        }
        let cpus = self.cpus();
        let own = cpu_seconds(std::process::id()).unwrap_or(0.0);
        let broker_cpu = self.broker_cpu();
        let pg_cpu = self.pg.postmaster.and_then(tree_cpu_seconds);
        let wal = self.pg.counters().await?.wal_bytes;
        // Backends report their row and commit counts when they go idle, up to 10 s
        // later (PostgreSQL's PGSTAT_IDLE_INTERVAL): the pipeline is idle now; wait for
        // them. (WAL positions and CPU are current: taken above.)
        tokio::time::sleep(STATS_SETTLE).await;
        let pg = PgCounters {
            wal_bytes: wal,
            ..self.pg.counters().await?
        };
        let inc = increase(&base, &now);
        let mut stages = BTreeMap::new();
        for ((metric, which), buckets) in &inc {
            let name = match (metric.as_str(), which.as_str()) {
                ("squall_stage_latency_seconds", stage) => stage.to_string(),
                ("squall_kafka_record_latency_seconds", "payloads") => "complete".to_string(),
                _ => continue,
            };
            if super::STAGES.contains(&name.as_str()) {
                stages.insert(name, bucket_report(buckets));
            }
        }
        let processes = self
            .ups
            .iter()
            .enumerate()
            .map(|(k, _)| {
                let one = increase(
                    std::slice::from_ref(&base[k]),
                    std::slice::from_ref(&now[k]),
                );
                ProcessFigures {
                    cpu_cores: round3((cpus[k] - cpus0[k]).max(0.0) / wall),
                    completed: complete_series(&one)
                        .map_or(0, |b| b.last().map_or(0, |(_, c)| *c as u64)),
                }
            })
            .collect();
        let n = payloads.max(1) as f64;
        let postgres = PostgresFigures {
            wal_mb_per_s: round3((pg.wal_bytes - pg0.wal_bytes) / wall / 1e6),
            wal_bytes_per_payload: ((pg.wal_bytes - pg0.wal_bytes) / n).round(),
            commits_per_s: ((pg.commits - pg0.commits) / wall).round(),
            rows_per_s: ((pg.rows - pg0.rows) / wall).round(),
            rows_per_payload: round3((pg.rows - pg0.rows) / n),
            growth_bytes_per_payload: ((pg.db_bytes - pg0.db_bytes) / n).round(),
            cpu_cores: pg_cpu
                .zip(pgcpu0)
                .map(|(now, was)| round3((now - was).max(0.0) / wall)),
        };
        Ok((
            stages,
            ClusterFigures {
                processes,
                tuples,
                bench_cpu_cores: round3((own - own0).max(0.0) / wall),
                broker_cpu_cores: broker_cpu
                    .zip(broker0)
                    .map(|(now, was)| round3((now - was).max(0.0) / wall)),
                postgres,
            },
        ))
    }

    /// Stops every process (SIGINT, bounded) and the broker.
    pub(crate) fn stop(&mut self) {
        for up in &mut self.ups {
            up.stop();
        }
        if let Some(mut b) = self.broker.take() {
            let _ = b.kill();
            let _ = b.wait();
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.stop();
    }
}

fn complete_series(b: &Buckets) -> Option<&Vec<(f64, f64)>> {
    b.get(&(
        "squall_kafka_record_latency_seconds".to_string(),
        "payloads".to_string(),
    ))
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// A webhook receiver for the cluster's notifications (it answers 200 to every post).
pub(crate) async fn hook() -> anyhow::Result<String> {
    let (_, addr) = receiver().await?;
    Ok(format!("http://{addr}/hook"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = r#"# TYPE squall_stage_latency_seconds histogram
squall_stage_latency_seconds_bucket{stage="stored",le="0.001"} 10
squall_stage_latency_seconds_bucket{stage="stored",le="0.01"} 90
squall_stage_latency_seconds_bucket{stage="stored",le="0.1"} 100
squall_stage_latency_seconds_bucket{stage="stored",le="+Inf"} 100
squall_stage_latency_seconds_sum{stage="stored"} 0.5
squall_stage_latency_seconds_count{stage="stored"} 100
squall_kafka_record_latency_seconds_bucket{component="payloads#0",le="0.001"} 0
squall_kafka_record_latency_seconds_bucket{component="payloads#0",le="+Inf"} 4
squall_kafka_record_latency_seconds_bucket{component="payloads#1",le="0.001"} 0
squall_kafka_record_latency_seconds_bucket{component="payloads#1",le="+Inf"} 2
squall_other_seconds_bucket{le="1"} 3
"#;

    #[test]
    fn buckets_are_read_per_series_and_quantiles_interpolate_within_a_bucket() {
        let b = parse_buckets(TEXT);
        assert_eq!(b.len(), 2);
        let stored = &b[&("squall_stage_latency_seconds".into(), "stored".into())];
        assert_eq!(stored.len(), 4);
        // The median is the 50th of 100: 40 of the 80 in (1 ms, 10 ms].
        let p50 = quantile(stored, 0.5).unwrap();
        assert!((p50 - 0.0055).abs() < 1e-9, "{p50}");
        // p99: 9 of the 10 in (10 ms, 100 ms].
        let p99 = quantile(stored, 0.99).unwrap();
        assert!((p99 - 0.091).abs() < 1e-9, "{p99}");
        // Everything above the last finite bound: that bound.
        // The spout's tasks add up.
        let complete = &b[&(
            "squall_kafka_record_latency_seconds".into(),
            "payloads".into(),
        )];
        assert_eq!(complete.last(), Some(&(f64::INFINITY, 6.0)));
        assert_eq!(quantile(complete, 0.5), Some(0.001));
        assert_eq!(bucket_report(stored).max_ms, 100.0);
    }

    #[test]
    fn a_run_counts_what_each_process_added_and_a_restarted_one_from_zero() {
        let before = vec![parse_buckets(TEXT), parse_buckets(TEXT)];
        let mut later = parse_buckets(TEXT);
        for (_, c) in later
            .get_mut(&("squall_stage_latency_seconds".into(), "stored".into()))
            .unwrap()
        {
            *c += 5.0;
        }
        // The second process restarted: its counts start over (3 samples since).
        let restarted = parse_buckets(&TEXT.replace("} 100", "} 3").replace("} 90", "} 3"));
        let inc = increase(&before, &[later, restarted]);
        let stored = &inc[&("squall_stage_latency_seconds".into(), "stored".into())];
        assert_eq!(stored.last().unwrap().1, 8.0);
        assert!(quantile(&[(f64::INFINITY, 0.0)], 0.5).is_none());
    }
}

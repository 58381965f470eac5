//! The `kafka` spout and bolt against a real Kafka-protocol broker (tansu, started by
//! `scripts/kafka-up.sh`): at-least-once delivery and commits, retries and dead letters,
//! consumer-group hand-over between processes, and a hard kill mid-stream.

mod support;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::json;
use squall_runtime::RunningTopology;
use squall_topology::*;
use support::*;

/// Records `(partition, offset)` of every tuple; notifies once `target` distinct were seen.
struct Seen {
    seen: Arc<Mutex<BTreeSet<(i64, i64)>>>,
    target: usize,
    done: Arc<tokio::sync::Notify>,
}

impl Bolt for Seen {
    fn execute(&mut self, t: Tuple, _o: &mut OutputCollector) -> Result<(), BoltError> {
        let p = t.get_by_field("partition").and_then(Value::as_int).unwrap();
        let o = t.get_by_field("offset").and_then(Value::as_int).unwrap();
        let mut seen = self.seen.lock().unwrap();
        seen.insert((p, o));
        if seen.len() == self.target {
            self.done.notify_one();
        }
        Ok(())
    }
}

fn options(value: serde_json::Value) -> Options {
    value.as_object().unwrap().clone()
}

fn spout_options(topic: &str, group: &str) -> serde_json::Value {
    json!({
        "brokers": brokers(),
        "topic": topic,
        "group_id": group,
        "value": "string",
        "commit_interval_ms": 200,
        "options": { "session.timeout.ms": "6000", "heartbeat.interval.ms": "500", "statistics.interval.ms": "500" }
    })
}

/// A metric: name, labels, value.
type Metric = (String, Vec<(String, String)>, f64);

/// The test binary's global metrics recorder (poller threads record into it).
fn metrics_snapshot() -> Vec<Metric> {
    static SNAPSHOTTER: std::sync::OnceLock<metrics_util::debugging::Snapshotter> =
        std::sync::OnceLock::new();
    let snapshotter = SNAPSHOTTER.get_or_init(|| {
        let recorder = metrics_util::debugging::DebuggingRecorder::new();
        let snapshotter = recorder.snapshotter();
        recorder
            .install()
            .expect("the only global recorder of this test binary");
        snapshotter
    });
    snapshotter
        .snapshot()
        .into_vec()
        .into_iter()
        .map(|(k, _, _, v)| {
            let key = k.key();
            let labels = key
                .labels()
                .map(|l| (l.key().to_string(), l.value().to_string()))
                .collect();
            let value = match v {
                metrics_util::debugging::DebugValue::Counter(c) => c as f64,
                metrics_util::debugging::DebugValue::Gauge(g) => g.into_inner(),
                metrics_util::debugging::DebugValue::Histogram(_) => f64::NAN,
            };
            (key.name().to_string(), labels, value)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_record_is_processed_and_committed_offsets_reach_the_end() {
    const N: usize = 2_000;
    let (input, output, group) = (unique("in"), unique("out"), unique("group"));
    create_topic(&input, 4).await;
    create_topic(&output, 2).await;
    let records = keyed(0, N, 50);
    let topic = input.clone();
    tokio::task::spawn_blocking(move || produce(&topic, &records))
        .await
        .unwrap();

    metrics_snapshot(); // install the recorder before the pollers start
    let seen = Arc::new(Mutex::new(BTreeSet::new()));
    let done = Arc::new(tokio::sync::Notify::new());
    let mut b = TopologyBuilder::new("kafka-e2e");
    b.set_registered_spout("in", 2, "kafka", options(spout_options(&input, &group)));
    let (s, d) = (seen.clone(), done.clone());
    b.set_bolt("seen", 1, move || Seen {
        seen: s.clone(),
        target: N,
        done: d.clone(),
    })
    .shuffle_grouping("in");
    b.set_registered_bolt(
        "out",
        2,
        "kafka",
        options(json!({ "brokers": brokers(), "topic": output, "key_field": "key", "value_field": "value" })),
    )
    .fields_grouping("in", ["key"]);
    let running = RunningTopology::start(b.build_with(&squall::registry()).unwrap()).unwrap();
    tokio::time::timeout(Duration::from_secs(120), done.notified())
        .await
        .expect("all records within 2 minutes");
    // Every record was seen, but a rebalance (the second spout task joining the group) can
    // revoke partitions whose acks were still in flight: those acks are ignored and the new
    // owner replays from the committed offset, as at-least-once requires. So wait until the
    // group's commits catch up, then check that shutting down keeps them there.
    let end = {
        let topic = input.clone();
        tokio::task::spawn_blocking(move || end_offsets(&topic, 4))
            .await
            .unwrap()
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let mut every = tokio::time::interval(Duration::from_millis(250));
    loop {
        every.tick().await;
        let (g, t) = (group.clone(), input.clone());
        let now = tokio::task::spawn_blocking(move || committed(&g, &t, 4))
            .await
            .unwrap();
        if now == end {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "committed offsets {now:?} did not reach the end {end:?} within 60 s"
        );
    }
    let report = running.shutdown_and_join().await;

    assert_eq!(seen.lock().unwrap().len(), N, "every record processed");
    // librdkafka's statistics (every 500 ms here) carry the lag of each partition it has
    // a position for; by now at least one report has come in.
    let lags: Vec<(String, f64)> = metrics_snapshot()
        .into_iter()
        .filter(|(name, labels, _)| {
            name == "squall_kafka_consumer_lag"
                && labels.iter().any(|(k, v)| k == "topic" && *v == input)
        })
        .filter_map(|(_, labels, v)| {
            labels
                .into_iter()
                .find(|(k, _)| k == "partition")
                .map(|(_, p)| (p, v))
        })
        .collect();
    assert!(!lags.is_empty(), "consumer lag is reported per partition");
    assert!(
        lags.iter()
            .all(|(p, lag)| p.parse::<i32>().is_ok_and(|p| (0..4).contains(&p)) && *lag >= 0.0),
        "{lags:?}"
    );
    let spout = report.component("in").unwrap();
    assert!(
        spout.acked >= N as u64,
        "every record's tree acked: {report}"
    );
    assert_eq!(report.component("out").unwrap().failed, 0, "{report}");
    let (input2, output2, group2) = (input.clone(), output.clone(), group.clone());
    let (committed, out_end) = tokio::task::spawn_blocking(move || {
        (committed(&group2, &input2, 4), end_offsets(&output2, 2))
    })
    .await
    .unwrap();
    assert_eq!(
        committed, end,
        "committed offsets still equal the end offsets after shutdown"
    );
    assert_eq!(end.iter().sum::<i64>(), N as i64);
    assert!(
        out_end.iter().sum::<i64>() >= N as i64,
        "the kafka bolt produced every record: {out_end:?}"
    );
}

/// Fails records whose value ends in 3, counting executions per value.
struct Poison(Arc<Mutex<HashMap<String, u32>>>);
impl Bolt for Poison {
    fn declare_outputs(&self, d: &mut OutputDeclarer) {
        d.declare(Fields::new(["partition", "offset"]));
    }
    fn execute(&mut self, t: Tuple, out: &mut OutputCollector) -> Result<(), BoltError> {
        let value = t.str_by_field("value").unwrap().to_string();
        *self.0.lock().unwrap().entry(value.clone()).or_default() += 1;
        if value.ends_with('3') {
            return Err(BoltError::msg(format!("poison record {value}")));
        }
        out.emit(values![
            t.get_by_field("partition").unwrap().clone(),
            t.get_by_field("offset").unwrap().clone()
        ]);
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_records_are_retried_with_back_off_then_dead_lettered() {
    const N: usize = 40;
    let (input, dlq, group) = (unique("poison"), unique("dlq"), unique("group"));
    create_topic(&input, 1).await;
    create_topic(&dlq, 1).await;
    let records = keyed(0, N, 3);
    let topic = input.clone();
    tokio::task::spawn_blocking(move || produce(&topic, &records))
        .await
        .unwrap();

    let mut spout = spout_options(&input, &group);
    spout["dead_letter_topic"] = json!(dlq);
    spout["retry"] =
        json!({ "initial_delay_ms": 20, "multiplier": 2.0, "max_delay_ms": 200, "max_retries": 2 });
    let executions = Arc::new(Mutex::new(HashMap::new()));
    let seen = Arc::new(Mutex::new(BTreeSet::new()));
    let done = Arc::new(tokio::sync::Notify::new());
    let mut b = TopologyBuilder::new("kafka-dlq");
    b.set_registered_spout("in", 1, "kafka", options(spout));
    let e = executions.clone();
    b.set_bolt("poison", 1, move || Poison(e.clone()))
        .shuffle_grouping("in");
    let (s, d) = (seen.clone(), done.clone());
    b.set_bolt("seen", 1, move || Seen {
        seen: s.clone(),
        target: N - 4,
        done: d.clone(),
    })
    .shuffle_grouping("poison");
    let running = RunningTopology::start(b.build_with(&squall::registry()).unwrap()).unwrap();
    tokio::time::timeout(Duration::from_secs(120), done.notified())
        .await
        .expect("the good records flow past the poison ones");
    let d = dlq.clone();
    let dead = tokio::task::spawn_blocking(move || consume(&d, 4, Duration::from_secs(60)))
        .await
        .unwrap();
    let report = running.shutdown_and_join().await;

    let mut dead_values: Vec<String> = dead.iter().map(|r| r.value.clone().unwrap()).collect();
    dead_values.sort();
    assert_eq!(dead_values, ["13", "23", "3", "33"]);
    for r in &dead {
        let v = r.value.as_deref().unwrap();
        assert_eq!(r.headers["squall.attempts"], "3", "{r:?}");
        assert_eq!(r.headers["squall.original.topic"], input);
        assert_eq!(
            r.headers["squall.original.offset"], v,
            "values equal offsets here"
        );
        assert!(
            r.headers["squall.failure.reason"].contains(&format!("poison record {v}")),
            "the bolt's error is the reason: {r:?}"
        );
    }
    {
        let executions = executions.lock().unwrap();
        for v in ["3", "13", "23", "33"] {
            assert_eq!(executions[v], 3, "one attempt and two retries of {v}");
        }
        assert_eq!(executions["4"], 1);
    }
    assert_eq!(
        report.component("in").unwrap().failed,
        12,
        "4 records x 3 failed attempts"
    );
    let (i, g) = (input.clone(), group.clone());
    let committed = tokio::task::spawn_blocking(move || committed(&g, &i, 1))
        .await
        .unwrap();
    assert_eq!(committed, [N as i64], "dead-lettered records count as done");

    // Read back and replayed through the real broker, as `squall dead-letters` does.
    use squall_connectors::kafka::dead_letters;
    let (b, d) = (brokers(), dlq.clone());
    let pending = tokio::task::spawn_blocking(move || {
        dead_letters::pending(&b, &d, Duration::from_secs(60)).unwrap()
    })
    .await
    .unwrap();
    assert_eq!(pending.len(), 4, "{pending:?}");
    assert!(pending
        .iter()
        .all(|l| l.original_topic == input && l.attempts == Some(3)));
    let one: Vec<_> = pending
        .into_iter()
        .filter(|l| l.reason.contains("poison record 13"))
        .collect();
    let (b, d) = (brokers(), dlq.clone());
    let replayed = tokio::task::spawn_blocking(move || {
        let n = dead_letters::replay(&b, &d, &one, Duration::from_secs(60)).unwrap();
        (
            n,
            dead_letters::pending(&b, &d, Duration::from_secs(60)).unwrap(),
        )
    })
    .await
    .unwrap();
    assert_eq!(replayed.0, 1);
    assert_eq!(replayed.1.len(), 3, "the replayed one is no longer pending");
    let i = input.clone();
    let again = tokio::task::spawn_blocking(move || consume(&i, N + 1, Duration::from_secs(60)))
        .await
        .unwrap();
    assert_eq!(
        again.last().and_then(|r| r.value.clone()).as_deref(),
        Some("13"),
        "back on its original topic"
    );
}

// ---- separate processes ----------------------------------------------------------------

/// A `squall run` process with a kafka spout feeding a `log` bolt; its stderr lines are
/// forwarded, tagged with `name`, to `lines`.
fn squall_process(
    name: &'static str,
    dir: &std::path::Path,
    topic: &str,
    group: &str,
    lines: std::sync::mpsc::Sender<(&'static str, String)>,
) -> Child {
    let file = dir.join(format!("{name}.toml"));
    let spout = spout_options(topic, group);
    std::fs::write(
        &file,
        format!(
            r#"
[topology]
name = "kafka-{name}"
[spouts.in]
type = "kafka"
parallelism = 2
brokers = {brokers}
topic = {topic}
group_id = {group}
value = "string"
commit_interval_ms = 200
options = {{ "session.timeout.ms" = "6000", "heartbeat.interval.ms" = "500" }}
[bolts.log]
type = "log"
inputs = [{{ from = "in" }}]
"#,
            brokers = spout["brokers"],
            topic = spout["topic"],
            group = spout["group_id"],
        ),
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_squall"))
        .arg("run")
        .arg(&file)
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if lines.send((name, line)).is_err() {
                return;
            }
        }
        let _ = lines.send((name, EOF.to_string()));
    });
    child
}

/// Sent by a process's stderr reader when the process closed its stderr.
const EOF: &str = "\u{0}eof";

/// The (partition, offset, value) of a `log` bolt line.
fn logged(line: &str) -> Option<(i64, i64, String)> {
    let json = line.split("values=").nth(1)?;
    let v: serde_json::Value = serde_json::from_str(json.trim()).ok()?;
    Some((
        v["partition"].as_i64()?,
        v["offset"].as_i64()?,
        v["value"].as_str()?.to_string(),
    ))
}

/// Collects what every process logged, until `until` holds (fails after `timeout`).
struct Observed {
    rx: std::sync::mpsc::Receiver<(&'static str, String)>,
    by: BTreeMap<&'static str, Vec<(i64, i64, String)>>,
    events: Vec<(&'static str, String)>,
}

impl Observed {
    fn wait(&mut self, what: &str, timeout: Duration, until: impl Fn(&Self) -> bool) {
        let deadline = std::time::Instant::now() + timeout;
        while !until(self) {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match self.rx.recv_timeout(left) {
                Ok((name, line)) => match logged(&line) {
                    Some(record) => self.by.entry(name).or_default().push(record),
                    None => self.events.push((name, line)),
                },
                Err(_) => panic!("timed out waiting for {what}; events: {:#?}", self.events),
            }
        }
    }

    fn values(&self, name: &str) -> BTreeSet<String> {
        self.by
            .get(name)
            .map(|v| v.iter().map(|r| r.2.clone()).collect())
            .unwrap_or_default()
    }

    fn all_values(&self) -> BTreeSet<String> {
        self.by.values().flatten().map(|r| r.2.clone()).collect()
    }
}

fn interrupt(child: &mut Child) {
    let status = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    assert!(
        child.wait().unwrap().success(),
        "graceful exit after Ctrl-C"
    );
}

fn values(first: usize, n: usize) -> BTreeSet<String> {
    (first..first + n).map(|i| i.to_string()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_split_partitions_and_hand_over_on_stop() {
    let (topic, group) = (unique("handover"), unique("group"));
    create_topic(&topic, 4).await;
    let dir = tempfile::tempdir().unwrap();
    tokio::task::spawn_blocking(move || {
        let (tx, rx) = std::sync::mpsc::channel();
        let mut obs = Observed {
            rx,
            by: BTreeMap::new(),
            events: Vec::new(),
        };
        let mut a = squall_process("a", dir.path(), &topic, &group, tx.clone());
        produce(&topic, &keyed(0, 200, 40));
        obs.wait("a to read the first batch", Duration::from_secs(90), |o| {
            o.values("a").is_superset(&values(0, 200))
        });

        let mut b = squall_process("b", dir.path(), &topic, &group, tx.clone());
        obs.wait("b to join the group", Duration::from_secs(90), |o| {
            o.events.iter().any(|(n, l)| {
                *n == "b" && l.contains("partitions assigned") && !l.contains("partitions=0")
            })
        });
        produce(&topic, &keyed(200, 400, 40));
        obs.wait(
            "both to read the second batch",
            Duration::from_secs(90),
            |o| o.all_values().is_superset(&values(200, 400)),
        );
        let a_second: BTreeSet<String> = obs
            .values("a")
            .intersection(&values(200, 400))
            .cloned()
            .collect();
        let b_second: BTreeSet<String> = obs
            .values("b")
            .intersection(&values(200, 400))
            .cloned()
            .collect();
        assert!(
            !a_second.is_empty() && !b_second.is_empty(),
            "the partitions are split between a and b"
        );

        interrupt(&mut a);
        produce(&topic, &keyed(600, 400, 40));
        obs.wait(
            "b to take over every partition",
            Duration::from_secs(90),
            |o| o.values("b").is_superset(&values(600, 400)),
        );
        let partitions: BTreeSet<i64> = obs.by["b"]
            .iter()
            .filter(|r| r.2.parse::<usize>().unwrap() >= 600)
            .map(|r| r.0)
            .collect();
        assert_eq!(
            partitions.len(),
            4,
            "b reads all four partitions after a stopped"
        );
        interrupt(&mut b);
        assert!(
            obs.all_values().is_superset(&values(0, 1000)),
            "nothing lost"
        );
        assert_eq!(committed(&group, &topic, 4), end_offsets(&topic, 4));
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hard_kill_loses_nothing_and_commits_only_processed_records() {
    const N: usize = 3_000;
    let (topic, group) = (unique("kill"), unique("group"));
    create_topic(&topic, 4).await;
    let dir = tempfile::tempdir().unwrap();
    tokio::task::spawn_blocking(move || {
        produce(&topic, &keyed(0, N, 64));
        let (tx, rx) = std::sync::mpsc::channel();
        let mut obs = Observed {
            rx,
            by: BTreeMap::new(),
            events: Vec::new(),
        };
        let mut a = squall_process("a", dir.path(), &topic, &group, tx.clone());
        obs.wait("a to be mid-stream", Duration::from_secs(90), |o| o.values("a").len() >= N / 4);
        // Every record below a committed offset must have been processed.
        let check = |obs: &Observed, committed: &[i64]| {
            let processed: BTreeSet<(i64, i64)> = obs.by.values().flatten().map(|r| (r.0, r.1)).collect();
            for (p, &c) in committed.iter().enumerate() {
                for o in 0..c.max(0) {
                    assert!(processed.contains(&(p as i64, o)), "offset {o} of partition {p} committed but never processed");
                }
            }
        };
        a.kill().unwrap(); // SIGKILL: no graceful anything
        a.wait().unwrap();
        // Read everything a wrote before it died, then check what it had committed.
        obs.wait("a's last lines", Duration::from_secs(30), |o| {
            o.events.iter().any(|(n, l)| *n == "a" && l == EOF)
        });
        let at_kill = committed(&group, &topic, 4);
        check(&obs, &at_kill);
        let processed_by_a = obs.values("a").len();
        assert!(processed_by_a < N, "killed mid-stream ({processed_by_a} of {N})");

        let mut b = squall_process("b", dir.path(), &topic, &group, tx.clone());
        obs.wait("the restarted process to finish the topic", Duration::from_secs(120), |o| {
            o.all_values().is_superset(&values(0, N))
        });
        interrupt(&mut b);
        let final_committed = committed(&group, &topic, 4);
        check(&obs, &final_committed);
        assert_eq!(final_committed, end_offsets(&topic, 4));
        let total: usize = obs.by.values().map(Vec::len).sum();
        let duplicates = total - N;
        eprintln!(
            "hard kill: a processed {processed_by_a} records before SIGKILL (committed {at_kill:?}); \
             after the restart every one of {N} records was processed at least once; {duplicates} duplicates"
        );
        assert!(duplicates <= processed_by_a, "only records after the committed offsets are read twice");
    })
    .await
    .unwrap();
}

/// Fails every tuple; counts executions per value and notifies after `target` executions.
struct FailAll(
    Arc<Mutex<HashMap<String, u32>>>,
    usize,
    Arc<tokio::sync::Notify>,
);
impl Bolt for FailAll {
    fn execute(&mut self, t: Tuple, _o: &mut OutputCollector) -> Result<(), BoltError> {
        let mut seen = self.0.lock().unwrap();
        *seen
            .entry(t.str_by_field("value").unwrap().to_string())
            .or_default() += 1;
        if seen.values().sum::<u32>() as usize == self.1 {
            self.2.notify_one();
        }
        Err(BoltError::msg("always"))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_most_once_commits_before_emitting_and_none_never_commits() {
    const N: usize = 20;
    for (mode, expect_committed) in [("at_most_once", N as i64), ("none", -1)] {
        let (topic, group) = (unique(mode), unique("group"));
        create_topic(&topic, 1).await;
        let t = topic.clone();
        tokio::task::spawn_blocking(move || produce(&t, &keyed(0, N, 2)))
            .await
            .unwrap();
        let mut spout = spout_options(&topic, &group);
        spout["mode"] = json!(mode);
        let executions = Arc::new(Mutex::new(HashMap::new()));
        let done = Arc::new(tokio::sync::Notify::new());
        let mut b = TopologyBuilder::new("kafka-modes");
        b.set_registered_spout("in", 1, "kafka", options(spout));
        let (e, d) = (executions.clone(), done.clone());
        b.set_bolt("fail", 1, move || FailAll(e.clone(), N, d.clone()))
            .shuffle_grouping("in");
        let running = RunningTopology::start(b.build_with(&squall::registry()).unwrap()).unwrap();
        tokio::time::timeout(Duration::from_secs(60), done.notified())
            .await
            .expect("every record once");
        let report = running.shutdown_and_join().await;
        assert!(
            executions.lock().unwrap().values().all(|&n| n == 1),
            "{mode}: untracked, so failures are not retried"
        );
        assert_eq!(
            report.component("in").unwrap().failed,
            0,
            "{mode}: nothing tracked to fail"
        );
        let (t, g) = (topic.clone(), group.clone());
        let committed = tokio::task::spawn_blocking(move || committed(&g, &t, 1))
            .await
            .unwrap();
        assert_eq!(committed, [expect_committed], "{mode}");
    }
}

/// Holds back offset 0 (fails it until it is dead-lettered) while everything else flows.
struct SlowHead(Arc<Mutex<BTreeSet<i64>>>, usize, Arc<tokio::sync::Notify>);
impl Bolt for SlowHead {
    fn execute(&mut self, t: Tuple, _o: &mut OutputCollector) -> Result<(), BoltError> {
        let offset = t.get_by_field("offset").and_then(Value::as_int).unwrap();
        if offset == 0 {
            return Err(BoltError::msg("the head record is poison"));
        }
        let mut seen = self.0.lock().unwrap();
        seen.insert(offset);
        if seen.len() == self.1 {
            self.2.notify_one();
        }
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_poison_head_record_pauses_its_partition_but_never_stalls_it() {
    const N: usize = 200;
    let (topic, dlq, group) = (unique("head"), unique("dlq"), unique("group"));
    create_topic(&topic, 1).await;
    create_topic(&dlq, 1).await;
    let t = topic.clone();
    tokio::task::spawn_blocking(move || produce(&t, &keyed(0, N, 2)))
        .await
        .unwrap();
    let mut spout = spout_options(&topic, &group);
    spout["dead_letter_topic"] = json!(dlq);
    // The head record fails for ~1.5 s of retries while at most 20 records may pile up
    // behind it: the partition pauses, then resumes once the head is dead-lettered.
    spout["max_uncommitted"] = json!(20);
    spout["retry"] = json!({ "initial_delay_ms": 500, "multiplier": 1.0, "max_delay_ms": 500, "max_retries": 3 });
    metrics_snapshot(); // install the recorder before the poller starts
    let seen = Arc::new(Mutex::new(BTreeSet::new()));
    let done = Arc::new(tokio::sync::Notify::new());
    let mut b = TopologyBuilder::new("kafka-head");
    b.set_registered_spout("in", 1, "kafka", options(spout));
    let (s, d) = (seen.clone(), done.clone());
    b.set_bolt("head", 1, move || SlowHead(s.clone(), N - 1, d.clone()))
        .shuffle_grouping("in");
    let running = RunningTopology::start(b.build_with(&squall::registry()).unwrap()).unwrap();
    tokio::time::timeout(Duration::from_secs(60), done.notified())
        .await
        .expect("the partition keeps flowing after the pause");
    let d = dlq.clone();
    let dead = tokio::task::spawn_blocking(move || consume(&d, 1, Duration::from_secs(30)))
        .await
        .unwrap();
    running.shutdown_and_join().await;
    assert_eq!(dead[0].headers["squall.original.offset"], "0");
    // Only this test pauses partitions.
    let pauses: f64 = metrics_snapshot()
        .into_iter()
        .filter(|(name, ..)| name == "squall_kafka_partition_pauses_total")
        .map(|(.., v)| v)
        .sum();
    assert!(
        pauses >= 1.0,
        "the partition was paused at the uncommitted limit"
    );
    let (t, g) = (topic.clone(), group.clone());
    let committed = tokio::task::spawn_blocking(move || committed(&g, &t, 1))
        .await
        .unwrap();
    assert_eq!(committed, [N as i64]);
}

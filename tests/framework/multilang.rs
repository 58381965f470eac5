//! Real pystorm components inside a squall topology file, through Storm's multi-lang
//! protocol: `examples/topologies/python_word_count.toml` (a pystorm spout and a pystorm
//! bolt, counted by squall's Rust `count` bolt), with faults injected into the bolt; and the
//! same over MessagePack.
//!
//! Needs pystorm and msgpack: `$SQUALL_PYTHON`, or the virtualenv `scripts/python-up.sh`
//! makes, which the tests run themselves when it is missing.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use serde::Deserialize;
use squall_runtime::RunningTopology;
use squall_topology::{
    load_topology_file, Bolt, BoltError, EnvOverrides, OutputCollector, Topology, Tuple,
};
use tokio::sync::mpsc;

/// The Python with pystorm: `$SQUALL_PYTHON`, else the one `scripts/python-up.sh` makes
/// (run here, once per test binary, when it is not there yet: the first run installs
/// pystorm and msgpack from PyPI into `~/.cache/squall/pyenv`).
fn python() -> String {
    static PYTHON: OnceLock<String> = OnceLock::new();
    PYTHON
        .get_or_init(|| {
            let importable = |python: &str| {
                std::process::Command::new(python)
                    .args(["-c", "import pystorm, msgpack"])
                    .status()
                    .map(|s| s.success())
                    .unwrap_or(false)
            };
            if let Ok(python) = std::env::var("SQUALL_PYTHON") {
                assert!(
                    importable(&python),
                    "SQUALL_PYTHON={python} cannot import pystorm and msgpack"
                );
                return python;
            }
            let out = std::process::Command::new("bash")
                .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/python-up.sh"))
                .output()
                .expect("run scripts/python-up.sh");
            assert!(
                out.status.success(),
                "scripts/python-up.sh failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            let python = String::from_utf8(out.stdout)
                .unwrap()
                .lines()
                .find_map(|l| l.strip_prefix("export SQUALL_PYTHON=").map(String::from))
                .expect("python-up.sh prints export SQUALL_PYTHON=");
            assert!(
                importable(&python),
                "{python} (from scripts/python-up.sh) cannot import pystorm and msgpack"
            );
            python
        })
        .clone()
}

/// Everything logged in this test binary, as text (one global subscriber: the children's
/// log lines arrive on supervisor threads).
fn logs() -> &'static Mutex<Vec<u8>> {
    static LOGS: OnceLock<&'static Mutex<Vec<u8>>> = OnceLock::new();
    LOGS.get_or_init(|| {
        let buffer: &'static Mutex<Vec<u8>> = Box::leak(Box::new(Mutex::new(Vec::new())));
        struct Sink(&'static Mutex<Vec<u8>>);
        impl Write for Sink {
            fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(data);
                std::io::stderr().write_all(data)?;
                Ok(data.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        tracing_subscriber::fmt()
            .with_env_filter("info")
            .with_ansi(false)
            .with_writer(move || Sink(buffer))
            .init();
        buffer
    })
}

fn log_text() -> String {
    String::from_utf8_lossy(&logs().lock().unwrap()).into_owned()
}

/// Options of the test's `collect` bolt (none).
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct CollectConfig {}

/// Hands each `[word, count]` and the task that counted it to the test.
struct Collect(mpsc::UnboundedSender<(String, i64, u32)>);

impl Bolt for Collect {
    fn execute(&mut self, t: Tuple, _out: &mut OutputCollector) -> Result<(), BoltError> {
        let word = t.values()[0].to_string();
        let count = t.values()[1].as_int().unwrap_or(-1);
        let _ = self.0.send((word, count, t.source_task().0));
        Ok(())
    }
}

fn load(sets: &[String], collect: mpsc::UnboundedSender<(String, i64, u32)>) -> Topology {
    let mut registry = squall::registry();
    registry.register_bolt("collect", move |_: &CollectConfig| {
        Ok(Collect(collect.clone()))
    });
    let def = load_topology_file(
        "examples/topologies/python_word_count.toml".as_ref(),
        sets,
        &EnvOverrides::Off,
    )
    .unwrap();
    def.validate(&registry).unwrap()
}

fn expected_counts() -> BTreeMap<String, i64> {
    let mut counts = BTreeMap::new();
    for line in std::fs::read_to_string("examples/data/sentences.txt")
        .unwrap()
        .lines()
    {
        for w in line.to_lowercase().split_whitespace() {
            *counts.entry(w.to_string()).or_default() += 1;
        }
    }
    counts
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pystorm_spout_and_bolt_count_exactly_through_fails_crashes_kills_and_hangs() {
    logs();
    let python = python();
    let faults = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/multilang/split_faulty.py"
    );
    let sets = [
        format!(
            "spouts.sentences.command={}",
            serde_json::json!([python, "sentences.py", "../data/sentences.txt"])
        ),
        format!(
            "bolts.split.command={}",
            serde_json::json!([python, script])
        ),
        format!("bolts.split.env.FAULTS_DIR={}", faults.path().display()),
        // A hung child is noticed after 1.5 s instead of 30.
        "bolts.split.heartbeat_interval_ms=100".into(),
        "bolts.split.timeout_ms=1500".into(),
        "bolts.split.restart_backoff_ms=50".into(),
        format!("bolts.out.path={}", out.path().join("wc.jsonl").display()),
        "bolts.collect.type=collect".into(),
        r#"bolts.collect.inputs=[{"from": "count", "grouping": "shuffle"}]"#.into(),
    ];
    let (tx, mut rx) = mpsc::unbounded_channel();
    let running = RunningTopology::start(load(&sets, tx)).unwrap();

    let expected = expected_counts();
    let mut counts: BTreeMap<String, i64> = BTreeMap::new();
    let mut counters: BTreeSet<u32> = BTreeSet::new();
    let observe = |counts: &mut BTreeMap<String, i64>,
                   counters: &mut BTreeSet<u32>,
                   (word, count, task): (String, i64, u32)| {
        let c = counts.entry(word).or_default();
        *c = (*c).max(count);
        counters.insert(task);
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
    while !expected
        .iter()
        .all(|(w, n)| counts.get(w).copied().unwrap_or(0) >= *n)
    {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Some(update)) => observe(&mut counts, &mut counters, update),
            Ok(None) => panic!("the topology stopped early"),
            Err(_) => panic!("counts incomplete after 90 s\n{}", log_text()),
        }
    }
    let report = running.shutdown_and_join().await;
    while let Ok(update) = rx.try_recv() {
        observe(&mut counts, &mut counters, update);
    }
    assert_eq!(
        counts, expected,
        "exact counts: no sentence lost, none counted twice"
    );

    // The pystorm spout's tuples were all acked once; the failed ones were replayed.
    let spout = report.component("sentences").unwrap();
    assert_eq!(spout.acked, 20, "{report:?}");
    assert!(spout.failed >= 4, "poison, crash, kill, hang: {report:?}");
    let split = report.component("split").unwrap();
    assert!(split.failed >= 4, "{report:?}");

    let logs = log_text();
    for needle in [
        // pystorm's own logging, through the `log` command, at its level.
        "INFO squall_connectors::multilang::child: pystorm.component.sentences: sentences: 20 lines from ../data/sentences.txt component=\"sentences\"",
        "WARN squall_connectors::multilang::child: pystorm.component.split: failing a poisoned sentence component=\"split\"",
        "pystorm.component.sentences: sentences: line",
        "failed, replaying it",
        "pystorm.component.sentences: sentences: all 20 lines acked",
        // A Python exception: reported with `error`, its tuple failed, the child exits 1.
        "multi-lang child reported an error: Python RuntimeError raised while processing Tuple",
        "multi-lang child exited (exit status: 1",
        "last error: RuntimeError: injected crash",
        // SIGKILL, and a hang noticed by the heartbeat.
        "multi-lang child exited (signal: 9 (SIGKILL)",
        "multi-lang child stopped answering (no sync within 1.5s; killed",
        "restarting it component=\"split\"",
        "tuples held by a multi-lang child that is gone fail",
    ] {
        assert!(logs.contains(needle), "logs lack {needle:?}:\n{logs}");
    }
    // Each restart started a new child with a new generation.
    assert!(
        logs.matches("multi-lang child started component=\"split\"")
            .count()
            >= 2 + 3,
        "two first children and three restarts:\n{logs}"
    );
    // `need_task_ids`: each answer names the one `count` task the word went to.
    let fox: Vec<&str> = logs
        .lines()
        .filter_map(|l| l.split("'fox' went to tasks ").nth(1))
        .collect();
    assert!(!fox.is_empty(), "{logs}");
    for answer in fox {
        let list = answer.split(']').next().unwrap().trim_start_matches('[');
        let task: u32 = list
            .parse()
            .unwrap_or_else(|_| panic!("one task id: {answer}"));
        assert!(
            counters.contains(&task),
            "{task} counts words: {counters:?}"
        );
    }
    // The jsonl sink holds the same final counts.
    let mut from_file: BTreeMap<String, i64> = BTreeMap::new();
    for line in std::fs::read_to_string(out.path().join("wc.jsonl"))
        .unwrap()
        .lines()
    {
        let row: serde_json::Value = serde_json::from_str(line).unwrap();
        let c = from_file
            .entry(row["word"].as_str().unwrap().to_string())
            .or_default();
        *c = (*c).max(row["count"].as_i64().unwrap());
    }
    assert_eq!(from_file, expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pystorm_components_speak_msgpack_when_configured() {
    logs();
    let python = python();
    let out = tempfile::tempdir().unwrap();
    let mut sets = vec![
        format!(
            "spouts.sentences.command={}",
            serde_json::json!([python, "sentences.py", "../data/sentences.txt"])
        ),
        format!(
            "bolts.split.command={}",
            serde_json::json!([python, "split.py"])
        ),
        format!("bolts.out.path={}", out.path().join("wc.jsonl").display()),
        "bolts.collect.type=collect".into(),
        r#"bolts.collect.inputs=[{"from": "count", "grouping": "shuffle"}]"#.into(),
    ];
    for component in ["spouts.sentences", "bolts.split"] {
        sets.push(format!("{component}.serializer=msgpack"));
        sets.push(format!("{component}.env.PYSTORM_SERIALIZER=msgpack"));
    }
    let (tx, mut rx) = mpsc::unbounded_channel();
    let running = RunningTopology::start(load(&sets, tx)).unwrap();
    let expected = expected_counts();
    let mut counts: BTreeMap<String, i64> = BTreeMap::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while counts != expected {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Some((word, count, _))) => {
                let c = counts.entry(word).or_default();
                *c = (*c).max(count);
            }
            Ok(None) => panic!("the topology stopped early"),
            Err(_) => panic!("counts incomplete after 60 s: {counts:?}\n{}", log_text()),
        }
    }
    let report = running.shutdown_and_join().await;
    let spout = report.component("sentences").unwrap();
    assert_eq!((spout.acked, spout.failed), (20, 0), "{report:?}");
    assert_eq!(report.component("split").unwrap().failed, 0);
}

//! `squall bench fleet` as an operator runs it: agents posting zlib + Content-MD5 payloads
//! over HTTP to the intake, through the real broker and the alert topology.

use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_squall");

fn fleet(dir: &tempfile::TempDir, args: &[&str]) -> serde_json::Value {
    let out = Command::new(BIN)
        .args([
            "bench",
            "fleet",
            "--brokers",
            &crate::support::brokers(),
            "--out",
        ])
        .arg(dir.path())
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&std::fs::read(dir.path().join("report.json")).unwrap()).unwrap()
}

#[test]
fn every_posted_payload_passes_every_stage_and_find_max_stops_at_the_sla() {
    let dir = tempfile::tempdir().unwrap();
    // 100 agents, 100 payloads/s for 3 s: each agent posts 3 times; every tenth agent's
    // load is above the rule's threshold on its even posts, so it fires, clears, fires.
    let r = fleet(
        &dir,
        &[
            "--agents",
            "100",
            "--rate",
            "100",
            "--duration",
            "3s",
            "--warmup",
            "0s",
        ],
    );
    let run = &r["runs"][0];
    assert_eq!(run["accepted"], 300, "{run}");
    assert_eq!(run["errors"], 0, "{run}");
    assert_eq!(run["drained"], true, "{run}");
    for stage in ["http", "enriched", "stored", "evaluated", "complete"] {
        assert_eq!(run["stages"][stage]["count"], 300, "{stage}: {run}");
        let s = &run["stages"][stage];
        assert!(
            s["p50_ms"].as_f64().unwrap() <= s["p99_ms"].as_f64().unwrap()
                && s["p99_ms"].as_f64().unwrap() <= s["max_ms"].as_f64().unwrap(),
            "{stage}: {s}"
        );
    }
    assert_eq!(
        run["stages"]["notified"]["count"], 30,
        "10 agents x (fire, clear, fire): {run}"
    );
    assert!(r["max_sustained_rate"].is_null());
    let svg = std::fs::read_to_string(dir.path().join("latency.svg")).unwrap();
    assert!(
        svg.starts_with("<svg") && svg.contains("complete"),
        "{svg:.200}"
    );

    // `--find-max` stops at the first rate over the SLA: no pipeline answers within a
    // microsecond. (In the same test, not a parallel one: with the test broker, tansu, a
    // second consumer group joining at the same time disturbs the first one's assignment.)
    let dir = tempfile::tempdir().unwrap();
    let r = fleet(
        &dir,
        &[
            "--agents",
            "50",
            "--find-max",
            "--start-rate",
            "50",
            "--duration",
            "1s",
            "--warmup",
            "0s",
            "--sla",
            "1us",
        ],
    );
    assert_eq!(r["runs"].as_array().unwrap().len(), 1, "{r}");
    assert_eq!(r["runs"][0]["accepted"], 50, "{r}");
    assert!(r["max_sustained_rate"].is_null(), "{r}");
}

/// The Scale-out issue's cluster figures: `--processes 2` runs two `squall up` children on
/// a `squall broker` (librdkafka's mock cluster, which the bench starts) and a fresh
/// PostgreSQL database, and measures them from outside: every payload passes every stage
/// (their Prometheus histograms, added up over the processes), both processes take a
/// share, and CPU and database writes are reported.
#[test]
fn a_cluster_of_two_processes_is_measured_from_outside() {
    let dir = tempfile::tempdir().unwrap();
    let db = squall_store_postgres::testing::fresh_database();
    let out = Command::new(BIN)
        .args(["bench", "fleet", "--processes", "2", "--db", &db, "--out"])
        .arg(dir.path())
        .args([
            "--agents",
            "100",
            "--rate",
            "100",
            "--duration",
            "3s",
            "--warmup",
            "0s",
        ])
        .env_remove("SQUALL__KAFKA__BROKERS")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("report.json")).unwrap()).unwrap();
    assert_eq!(r["processes"], 2, "{r}");
    let run = &r["runs"][0];
    assert_eq!(run["accepted"], 300, "{run}");
    assert_eq!(run["drained"], true, "{run}");
    for stage in ["http", "enriched", "stored", "evaluated", "complete"] {
        assert_eq!(run["stages"][stage]["count"], 300, "{stage}: {run}");
    }
    assert_eq!(run["stages"]["notified"]["count"], 30, "{run}");
    let procs = run["cluster"]["processes"].as_array().unwrap();
    assert_eq!(procs.len(), 2, "{run}");
    let completed: u64 = procs.iter().map(|p| p["completed"].as_u64().unwrap()).sum();
    assert_eq!(completed, 300, "{run}");
    for p in procs {
        assert!(
            p["completed"].as_u64().unwrap() > 0,
            "each takes a share: {run}"
        );
        assert!(p["cpu_cores"].as_f64().unwrap() > 0.0, "{run}");
    }
    let pg = &run["cluster"]["postgres"];
    assert!(pg["commits_per_s"].as_f64().unwrap() > 0.0, "{run}");
    assert!(
        pg["rows_per_payload"].as_f64().unwrap() >= 1.0,
        "a minute row each: {run}"
    );
    assert!(pg["wal_bytes_per_payload"].as_f64().unwrap() > 0.0, "{run}");
}

#[test]
fn bad_options_are_refused_naming_the_option() {
    for (args, said) in [
        (&["--agents", "0"][..], "--agents: at least 1"),
        (&["--rate=-3"][..], "--rate: a positive number"),
        (&["--max-in-flight", "0"][..], "--max-in-flight: at least 1"),
        (
            &["--processes", "2"][..],
            "--processes needs a database the processes share",
        ),
    ] {
        let out = Command::new(BIN)
            .args(["bench", "fleet", "--out"])
            .arg(tempfile::tempdir().unwrap().path())
            .args(args)
            .output()
            .unwrap();
        assert!(!out.status.success(), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(said), "{args:?}: {err}");
    }
}

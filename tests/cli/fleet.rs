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

#[test]
fn bad_options_are_refused_naming_the_option() {
    for (args, said) in [
        (&["--agents", "0"][..], "--agents: at least 1"),
        (&["--rate=-3"][..], "--rate: a positive number"),
        (&["--max-in-flight", "0"][..], "--max-in-flight: at least 1"),
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

//! The chaos benchmark, short: `squall bench chaos` SIGKILLs `squall up` (defaults: the
//! durable journal) three times while four agents post, and checks against a fault-free run
//! of the same payloads. The README reports the long run (50 kills).

use std::process::Command;

#[test]
fn three_kills_lose_nothing_and_change_no_alert_or_notification() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_squall"))
        .args([
            "bench",
            "chaos",
            "--kills",
            "3",
            "--agents",
            "4",
            "--payloads",
            "40",
            "--rate",
            "20",
            "--max-uptime",
            "1s",
            "--seed",
            "7",
            "--dir",
        ])
        .arg(dir.path())
        .env("SQUALL__KAFKA__BROKERS", "")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    let chaos = &report["chaos"];
    assert_eq!(chaos["kills"], 3, "{report}");
    assert_eq!(chaos["accepted"], 160);
    assert_eq!(chaos["stored"], 160);
    assert_eq!(chaos["lost"], 0);
    assert_eq!(report["alerts_equal"], true, "{report}");
    assert_eq!(report["notifications_equal"], true, "{report}");
    assert_eq!(chaos["missing_at_receiver"], 0);
    assert!(
        chaos["alerts"].as_u64().unwrap() > 0,
        "alerts fired: {report}"
    );
}

/// The Scale-out issue's cluster test, short: three `squall up` processes on one broker
/// (`squall broker`, librdkafka's mock cluster in a process of its own, which the bench
/// starts; the consumer group protocol of KIP-848, `kafka.group_protocol = "consumer"`:
/// the fencing test in `cluster.rs` covers the classic one) and one PostgreSQL database, agents posting to all intakes (each moving on to
/// the next while its own is down); SIGKILL and restart a random one of them, four times;
/// then every payload answered 202 is stored once, and the alerts and delivered
/// notification ids equal a fault-free single-process run's; repeats are reported (with
/// their ids, by the bench) and here none happened without a kill between a receiver's
/// answer and its record.
#[test]
fn a_cluster_of_three_killed_at_random_loses_nothing_and_changes_no_alert() {
    let dir = tempfile::tempdir().unwrap();
    let db = squall_store_postgres::testing::fresh_database();
    let out = Command::new(env!("CARGO_BIN_EXE_squall"))
        .args([
            "bench",
            "chaos",
            "--processes",
            "3",
            "--group-protocol",
            "consumer",
            "--db",
            &db,
            "--kills",
            "4",
            "--agents",
            "8",
            "--payloads",
            "40",
            "--rate",
            "20",
            "--min-uptime",
            "1s",
            "--max-uptime",
            "3s",
            "--seed",
            "11",
            "--dir",
        ])
        .arg(dir.path())
        .env_remove("SQUALL__KAFKA__BROKERS")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    let chaos = &report["chaos"];
    assert_eq!(chaos["kills"], 4, "{report}");
    assert_eq!(chaos["accepted"], 320);
    assert_eq!(chaos["stored"], 320, "{report}");
    assert_eq!(chaos["lost"], 0);
    assert_eq!(report["alerts_equal"], true, "{report}");
    assert_eq!(report["notifications_equal"], true, "{report}");
    assert_eq!(chaos["missing_at_receiver"], 0, "{report}");
    assert!(
        chaos["alerts"].as_u64().unwrap() > 0,
        "alerts fired: {report}"
    );
}

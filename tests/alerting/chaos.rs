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

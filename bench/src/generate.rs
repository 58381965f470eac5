//! `squall bench generate`: inputs for `bench pipeline`, real-format v2 payloads of many
//! devices and the threshold configs that watch them.

use std::io::{BufWriter, Write};
use std::path::Path;

use anyhow::Context;
use serde_json::{json, Value as Json};

/// The real v2 agent payload built into squall (`tests/fixtures/payloads/sd-agent-v2.json`):
/// the template of `bench generate` and `bench fleet` unless `--template` names another.
pub const SAMPLE_V2_PAYLOAD: &[u8] =
    include_bytes!("../../tests/fixtures/payloads/sd-agent-v2.json");

/// The bytes of the template payload: the file `path` names, or [`SAMPLE_V2_PAYLOAD`].
pub fn template_payload(path: Option<&Path>) -> anyhow::Result<Vec<u8>> {
    match path {
        Some(p) => std::fs::read(p).with_context(|| format!("reading {}", p.display())),
        None => Ok(SAMPLE_V2_PAYLOAD.to_vec()),
    }
}

/// Writes `payloads.ndjson` and `fixtures.json` to `out`: `devices` agents (one agent key
/// each) posting `per_device` real-format v2 payloads a minute apart (the shared fixture
/// with varied values), and `rules` threshold configs per device (subject: its agent key;
/// wait 120 s). `system.load.1` alternates 5 payloads above 4 and 5 below, so the load rule
/// fires on each device's third payload and clears on its sixth, every ten.
pub fn generate(
    template: Option<&Path>,
    devices: usize,
    per_device: usize,
    rules: usize,
    out: &Path,
) -> anyhow::Result<()> {
    let base: Json = serde_json::from_slice(&template_payload(template)?)?;
    std::fs::create_dir_all(out)?;
    let key = |d: usize| format!("bench{d:027}");
    let metrics = [
        ("system.load.1", "gte", 4.0),
        ("cpuUser", "gt", 90.0),
        ("memPhysPctUsable", "lt", 0.05),
        ("system.load.5", "gte", 8.0),
        ("cpuWait", "gt", 50.0),
    ];
    let mut alerts = Vec::with_capacity(devices * rules);
    for d in 0..devices {
        for r in 0..rules {
            let (metric, comparison, value) = metrics[r % metrics.len()];
            alerts.push(json!({
                "account": "bench", "name": format!("{metric} {comparison} {value}"),
                "kind": "threshold", "subject": {"type": "agent_key", "id": key(d)},
                "metric": metric, "comparison": comparison, "value": value,
                "wait": {"seconds": 120, "enabled": true},
                "repeat": {"seconds": 600, "enabled": false}, "fix": true,
                "recipients": [{"type": "webhook", "url": "http://127.0.0.1:9/hook", "grouping": {"group_by": []}}]
            }));
        }
    }
    let fixtures = json!({
        "accounts": [{"name": "bench", "device_quota": devices, "active": true,
                      "agent_keys": (0..devices).map(key).collect::<Vec<_>>()}],
        "alerts": alerts,
    });
    std::fs::write(out.join("fixtures.json"), serde_json::to_vec(&fixtures)?)?;

    let mut w = BufWriter::new(std::fs::File::create(out.join("payloads.ndjson"))?);
    let t0 = 1_790_000_000.0;
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut noise = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        (x % 1000) as f64 / 1000.0
    };
    let mut p = base;
    for j in 0..per_device {
        for d in 0..devices {
            p["agentKey"] = json!(key(d));
            p["internalHostname"] = json!(format!("host-{d:06}.bench.example.com"));
            p["uuid"] = json!(format!("{d:032x}"));
            p["collection_timestamp"] = json!(t0 + 60.0 * j as f64 + d as f64 / 1000.0);
            p["system.load.1"] = json!(if j % 10 < 5 { 5.0 } else { 1.0 } + noise());
            p["system.load.5"] = json!(2.0 + noise());
            p["cpuUser"] = json!(20.0 + 10.0 * noise());
            p["cpuWait"] = json!(noise());
            serde_json::to_writer(&mut w, &p)?;
            w.write_all(b"\n")?;
        }
    }
    w.flush()?;
    Ok(())
}

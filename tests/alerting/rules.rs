//! Alert configs in the rule language, end to end: `squall up` on the real broker, configs
//! through the admin API, payloads posted like the v2 agent over HTTP, notifications at an
//! HTTP receiver. One rule per feature fires and clears on exactly the payloads the
//! semantics say (event time, one payload a minute).

use std::time::Duration;

use serde_json::{json, Value as Json};

use super::up::{t0, Api, Receiver, Up};

const HOST: &str = "rules-01.example.com";

/// RFC 3339 with milliseconds, as notifications write times.
fn rfc3339(t: f64) -> String {
    squall_alerting::events::rfc3339(t)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_rule_feature_fires_and_clears_on_exactly_the_expected_payloads() {
    let dir = tempfile::tempdir().unwrap();
    let (receiver, url) = Receiver::start().await;
    let prefix = format!("rules{}.", std::process::id());
    let up = Up::start(dir.path(), &prefix, &[]);
    let api = Api::new(&up);
    api.account().await;

    // A rule that does not parse: 400 naming the field, the line and the column.
    let (status, body) = api
        .call(
            reqwest::Method::POST,
            "/alerts/configs",
            Some(expr_config(&url, "Bad", "/bad", "system.load.1 >= 4 for x")),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(
        (
            &body["reason"],
            &body["field"],
            &body["line"],
            &body["column"]
        ),
        (&json!("invalid"), &json!("expr"), &json!(1), &json!(24)),
        "{body}"
    );
    assert_eq!(
        body["error"],
        "expr: expected a duration after `for`, found `x`\n  system.load.1 >= 4 for x\n                         ^"
    );

    for (name, path, expr) in [
        ("Window", "/avg", "avg(system.load.1, 3m) >= 4"),
        ("Ratio", "/ratio", "memPhysUsed / memPhysTotal > 0.9 for 2m"),
        (
            "Hysteresis",
            "/hyst",
            "system.load.5 >= 4 resolve when system.load.5 < 2",
        ),
        ("Keep", "/keep", "system.load.15 >= 4 keep_firing_for 2m"),
        ("Absent", "/absent", "absent(\"system.uptime\", 3m)"),
    ] {
        let created = api
            .post("/alerts/configs", expr_config(&url, name, path, expr))
            .await;
        assert_eq!(created["expr"], expr);
    }

    // Payload i at t0 + 60 i. Expected (fire, clear) payload indexes per rule:
    // - avg over (t-180, t]: 2, 3, 4 (i2 fires), 4.33, 3.67 (i4 clears), ...
    // - used/total: > 0.9 from i0, for 2m: fires at i2; i4 is 0.1: clears.
    // - load.5 hovers around 4 (no flapping) until 1.5 < 2 at i6.
    // - load.15: clears at i1 and i3, kept firing; 2m after i3: i5.
    // - uptime missing from i2 on (last at i1): 3m silent at i4; back at i7.
    let load1 = [2.0, 4.0, 6.0, 3.0, 2.0, 1.0, 1.0, 1.0, 1.0];
    let used = [
        950.0, 950.0, 950.0, 950.0, 100.0, 100.0, 100.0, 100.0, 100.0,
    ];
    let load5 = [4.1, 3.9, 4.2, 3.8, 4.0, 3.5, 1.5, 3.9, 3.0];
    let load15 = [5.0, 1.0, 5.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0];
    let t0 = t0();
    for i in 0..load1.len() {
        let status = api
            .try_payload_with(t0 + 60.0 * i as f64, load1[i], HOST, |p: &mut Json| {
                p["memPhysUsed"] = json!(used[i]);
                p["memPhysTotal"] = json!(1000.0);
                p["system.load.5"] = json!(load5[i]);
                p["system.load.15"] = json!(load15[i]);
                if (2..=6).contains(&i) {
                    p.as_object_mut().unwrap().remove("system.uptime");
                }
            })
            .await;
        assert_eq!(status, Some(202), "payload {i}");
    }
    let at = |i: usize| rfc3339(t0 + 60.0 * i as f64);
    for (path, fired, cleared) in [
        ("/avg", 2, 4),
        ("/ratio", 2, 4),
        ("/hyst", 0, 6),
        ("/keep", 0, 5),
        ("/absent", 4, 7),
    ] {
        let got = receiver.wait(path, 2, Duration::from_secs(60)).await;
        let alert = |n: usize| got[n].body["alerts"][0].clone();
        assert_eq!(
            (
                got[0].body["status"].as_str(),
                got[1].body["status"].as_str()
            ),
            (Some("firing"), Some("resolved")),
            "{path}: {got:?}"
        );
        assert_eq!(
            alert(0)["startsAt"],
            at(fired),
            "{path} fired at payload {fired}"
        );
        assert_eq!(
            alert(1)["endsAt"],
            at(cleared),
            "{path} cleared at payload {cleared}"
        );
        assert!(alert(0)["annotations"]["rule"].is_string(), "{path}");
    }
    // Nothing more: the hovering load did not flap, the kept alert did not re-fire.
    let all = api.get("/notifications").await;
    let deliveries = all.as_array().unwrap().len();
    assert_eq!(deliveries, 10, "two notifications per rule: {all}");
    let avg = &receiver.on("/avg")[0].body["alerts"][0]["annotations"];
    assert_eq!(avg["value"], "4", "the window's average is reported: {avg}");
    up.stop();
}

fn expr_config(url: &str, name: &str, path: &str, expr: &str) -> Json {
    json!({
        "account": "acme",
        "name": name,
        "kind": "threshold",
        "subject": {"type": "account"},
        "expr": expr,
        "fix": true,
        "recipients": [{"type": "webhook", "url": format!("{url}{path}"), "grouping": {"group_by": []}}]
    })
}

//! Notification policy through `squall up` (embedded broker, SQLite): grouping sends one
//! notification for a fan-out and one update when a member resolves, and a group waiting
//! when the process is SIGKILLed is sent once after the restart; a silence holds an
//! alert back (recorded as `silenced by <id>`) until it is expired, and then the alert,
//! still firing, goes out. The timers themselves are tested on virtual time in
//! `squall_alerting::policy`; here the wiring is proven with short ones.

use std::time::Duration;

use serde_json::{json, Value as Json};

use super::up::{config, t0, wait_until, Api, Receiver, Up};

const HOST: &str = "web-01.example.com";

/// `n` series of `system.disk.in_use` at `value`, except `/dev/d0` at `first`.
fn disks(t: f64, n: usize, value: f64, first: f64) -> Json {
    json!((0..n)
        .map(|i| {
            json!(["system.disk.in_use", t, if i == 0 { first } else { value },
                   {"hostname": HOST, "type": "gauge", "device_name": format!("/dev/d{i}")}])
        })
        .collect::<Vec<_>>())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fan_out_is_one_group_notification_and_a_resolved_member_one_update() {
    let dir = tempfile::tempdir().unwrap();
    let (receiver, url) = Receiver::start().await;
    let up = Up::start(
        dir.path(),
        "squall.",
        &[
            ("SQUALL__KAFKA__BROKERS", ""),
            ("SQUALL__INTAKE__MAX_POINTS", "1000"),
        ],
    );
    let api = Api::new(&up);
    api.account().await;
    // The default group_by (account, alertname), with short timers.
    api.post(
        "/alerts/configs",
        config(
            &url,
            json!({"name": "Disk full", "metric": "system.disk.in_use", "value": 0.9,
                   "wait": {"seconds": 0, "enabled": false},
                   "recipients": [{"type": "webhook", "url": format!("{url}/group"),
                                   "grouping": {"group_wait": "1s", "group_interval": "3s"}}]}),
        ),
    )
    .await;
    let t = t0();
    let status = api
        .try_payload_with(t, 1.0, HOST, |p| p["metrics"] = disks(t, 300, 0.95, 0.95))
        .await;
    assert_eq!(status, Some(202));
    let first = receiver.wait("/group", 1, Duration::from_secs(60)).await;
    let body = &first[0].body;
    assert_eq!(
        body["alerts"].as_array().unwrap().len(),
        300,
        "one notification, 300 alerts"
    );
    assert_eq!(body["status"], "firing");
    assert_eq!(
        body["groupLabels"],
        json!({"account": "acme", "alertname": "Disk full"})
    );
    assert_eq!(body["commonLabels"]["device"], HOST);
    assert_eq!(
        body["groupKey"],
        "{}:{account=\"acme\",alertname=\"Disk full\"}"
    );
    // Each alert's own notification says where it went.
    let log = api
        .wait_get("/notifications", Duration::from_secs(30), |d| {
            d.as_array()
                .unwrap()
                .iter()
                .filter(|n| n["status"] == "grouped")
                .count()
                >= 300
        })
        .await;
    let grouped: Vec<&Json> = log
        .as_array()
        .unwrap()
        .iter()
        .filter(|n| n["status"] == "grouped")
        .collect();
    assert_eq!(grouped.len(), 300);
    assert!(grouped[0]["reason"]
        .as_str()
        .unwrap()
        .starts_with("grouped into g"));

    // /dev/d0 resolves: one update, at the next group_interval, with the 299 still firing
    // and the resolved one.
    let status = api
        .try_payload_with(t + 60.0, 1.0, HOST, |p| {
            p["metrics"] = disks(t + 60.0, 300, 0.95, 0.5)
        })
        .await;
    assert_eq!(status, Some(202));
    let both = receiver.wait("/group", 2, Duration::from_secs(60)).await;
    assert_eq!(both.len(), 2, "one update");
    let update = &both[1].body;
    let alerts = update["alerts"].as_array().unwrap();
    let resolved: Vec<&Json> = alerts
        .iter()
        .filter(|a| a["status"] == "resolved")
        .collect();
    assert_eq!((alerts.len(), resolved.len()), (300, 1), "{update}");
    assert_eq!(resolved[0]["labels"]["device_name"], "/dev/d0");
    assert_ne!(both[0].key, both[1].key, "each notification has its own id");
    up.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silenced_alert_is_held_back_and_sent_when_the_silence_is_expired() {
    let dir = tempfile::tempdir().unwrap();
    let (receiver, url) = Receiver::start().await;
    let up = Up::start(dir.path(), "squall.", &[("SQUALL__KAFKA__BROKERS", "")]);
    let api = Api::new(&up);
    api.account().await;
    api.post(
        "/alerts/configs",
        config(
            &url,
            json!({"wait": {"seconds": 0, "enabled": false},
                   "recipients": [{"type": "webhook", "url": format!("{url}/hook"),
                                   "grouping": {"group_by": []}}]}),
        ),
    )
    .await;
    // Event times are two hours back (t0): the silence covers them and now.
    let now = jiff::Timestamp::now();
    let hours = |h: i64| jiff::SignedDuration::from_hours(h);
    let silence = api
        .post(
            "/silences",
            json!({"account": "acme",
                   "matchers": [{"label": "alertname", "op": "=~", "value": "High.*"},
                                {"label": "device", "op": "=", "value": HOST}],
                   "starts_at": (now - hours(3)).to_string(),
                   "ends_at": (now + hours(1)).to_string(),
                   "comment": "reboot", "created_by": "ops"}),
        )
        .await;
    let id = silence["id"].as_i64().unwrap();
    api.payload(t0(), 9.0).await;
    let log = api
        .wait_get("/notifications", Duration::from_secs(60), |d| {
            !d.as_array().unwrap().is_empty()
        })
        .await;
    assert_eq!(log[0]["status"], "silenced", "{log}");
    assert_eq!(log[0]["reason"], format!("silenced by {id}"));
    assert!(
        log[0]["id"].as_str().unwrap().ends_with("/silenced"),
        "{log}"
    );
    assert!(receiver.on("/hook").is_empty(), "nothing while silenced");
    let (s, _) = api
        .call(reqwest::Method::DELETE, &format!("/silences/{id}"), None)
        .await;
    assert_eq!(s, 200);
    // Once it is expired the alert, still firing, goes out (on the policy's next tick
    // after the admin change).
    let got = wait_until(Duration::from_secs(30), || {
        let got = receiver.on("/hook");
        (!got.is_empty()).then_some(got)
    })
    .await
    .expect("the still-firing alert is sent once the silence is expired");
    assert_eq!(got[0].body["status"], "firing");
    assert_eq!(got[0].body["alerts"][0]["labels"]["device"], HOST);
    up.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_waiting_when_the_process_is_killed_is_sent_once_after_the_restart() {
    let dir = tempfile::tempdir().unwrap();
    let (receiver, url) = Receiver::start().await;
    let env = [("SQUALL__KAFKA__BROKERS", "")];
    let up = Up::start(dir.path(), "squall.", &env);
    let api = Api::new(&up);
    api.account().await;
    api.post(
        "/alerts/configs",
        config(
            &url,
            json!({"name": "Disk full", "metric": "system.disk.in_use", "value": 0.9,
                   "wait": {"seconds": 0, "enabled": false},
                   "recipients": [{"type": "webhook", "url": format!("{url}/group"),
                                   "grouping": {"group_wait": "10s"}}]}),
        ),
    )
    .await;
    let t = t0();
    let status = api
        .try_payload_with(t, 1.0, HOST, |p| p["metrics"] = disks(t, 3, 0.95, 0.95))
        .await;
    assert_eq!(status, Some(202));
    // The three joined their group (committed with it); it waits 10 s: SIGKILL now.
    api.wait_get("/notifications", Duration::from_secs(60), |d| {
        d.as_array()
            .unwrap()
            .iter()
            .filter(|n| n["status"] == "grouped")
            .count()
            == 3
    })
    .await;
    assert!(receiver.on("/group").is_empty(), "still waiting");
    up.kill();

    let up = Up::start(dir.path(), "squall.", &env);
    let api = Api::new(&up);
    let got = receiver.wait("/group", 1, Duration::from_secs(60)).await;
    assert_eq!(got[0].body["alerts"].as_array().unwrap().len(), 3);
    let log = api
        .wait_get("/notifications", Duration::from_secs(30), |d| {
            d.as_array()
                .unwrap()
                .iter()
                .any(|n| n["status"] == "delivered")
        })
        .await;
    let delivered: Vec<&Json> = log
        .as_array()
        .unwrap()
        .iter()
        .filter(|n| n["status"] == "delivered")
        .collect();
    assert_eq!(delivered.len(), 1, "{log}");
    assert_eq!(delivered[0]["id"], got[0].key.as_str());
    assert_eq!(receiver.on("/group").len(), 1, "sent once");
    up.stop();
}

//! The policy's scenarios on virtual time: grouping, silences and their interplay.

use std::collections::BTreeMap;

use super::group::{group_key, Flush, Group, Grouping};
use super::silence::{silenced_by, CompiledSilence, Silence};
use crate::configs::{Kind, Recipient};
use crate::events::{labels, AlertEvent, EventKind};
use crate::ids::{ConfigId, DeviceId};

/// An event of config 1 ("Disk full") on device `device`, series `mount`.
fn event(kind: EventKind, device: i64, mount: &str, at: f64) -> AlertEvent {
    AlertEvent {
        id: format!("{}-{device}-{mount}-{at}", kind.as_str()),
        kind,
        config_id: ConfigId(1),
        name: "Disk full".into(),
        rule: Kind::Threshold,
        account: "acme".into(),
        device: DeviceId(device),
        hostname: format!("web-{device:02}"),
        metric: Some("disk.used_pct".into()),
        series: BTreeMap::from([("mount".to_string(), mount.to_string())]),
        value: Some(97.0),
        comparison: None,
        threshold: Some(90.0),
        wait_s: 0,
        fired_at: at,
        at,
        recipients: vec![],
        expr: None,
        labels: BTreeMap::new(),
        flapping: None,
    }
}

fn webhook() -> Recipient {
    Recipient::Webhook {
        url: "http://hooks.example.com/a".into(),
        grouping: Grouping::default(),
    }
}

fn group_for(grouping: &Grouping, first: &AlertEvent) -> Group {
    let timers = grouping.timers();
    let labels = timers.group_labels(first);
    Group::new(group_key(&webhook(), &timers, &labels), labels, timers)
}

fn never(_: &AlertEvent) -> Option<i64> {
    None
}

/// Ticks every second from `from` to `to` (inclusive); the flushes that sent something.
fn run(
    g: &mut Group,
    from: f64,
    to: f64,
    silenced: &dyn Fn(&AlertEvent) -> Option<i64>,
) -> Vec<(f64, Flush)> {
    let mut sent = Vec::new();
    let mut t = from;
    while t <= to {
        let f = g.tick(t, silenced);
        if f.sent.is_some() {
            sent.push((t, f));
        }
        t += 1.0;
    }
    sent
}

#[test]
fn five_hundred_series_firing_at_once_make_one_notification_after_group_wait() {
    let t0 = 1_000_000.0;
    let grouping = Grouping::default();
    let mut g = group_for(&grouping, &event(EventKind::Fire, 1, "/m0", t0));
    for i in 0..500 {
        g.add(
            event(EventKind::Fire, 1 + i % 50, &format!("/m{i}"), t0),
            t0,
        );
    }
    assert_eq!(g.members.len(), 500);
    let sent = run(&mut g, t0, t0 + 299.0, &never);
    assert_eq!(sent.len(), 1, "one notification in the first five minutes");
    let (at, flush) = &sent[0];
    assert_eq!(*at, t0 + 30.0, "after group_wait (30 s)");
    let n = flush.sent.as_ref().unwrap();
    assert_eq!(n.alerts.len(), 500);
    assert!(n.alerts.iter().all(|a| a.status() == "firing"));
    assert_eq!(
        n.labels,
        BTreeMap::from([
            ("account".to_string(), "acme".to_string()),
            ("alertname".to_string(), "Disk full".to_string())
        ])
    );

    // One member resolves at t0 + 100: one update at the next group_interval (t0 + 330),
    // holding the 499 still firing and the one resolved; nothing before, nothing after.
    g.add(event(EventKind::Clear, 1, "/m0", t0 + 100.0), t0 + 100.0);
    let sent = run(&mut g, t0 + 100.0, t0 + 1000.0, &never);
    assert_eq!(
        sent.len(),
        1,
        "{:?}",
        sent.iter().map(|s| s.0).collect::<Vec<_>>()
    );
    let (at, flush) = &sent[0];
    assert_eq!(
        *at,
        t0 + 330.0,
        "at the group_interval after the first notification"
    );
    let n = flush.sent.as_ref().unwrap();
    let resolved: Vec<_> = n
        .alerts
        .iter()
        .filter(|a| a.status() == "resolved")
        .collect();
    assert_eq!((n.alerts.len(), resolved.len()), (500, 1));
    assert_eq!(resolved[0].series["mount"], "/m0");
    assert_eq!(
        g.members.len(),
        499,
        "the resolved member left once reported"
    );
    assert_ne!(n.id, sent_id(&g, 1), "every notification has its own id");
}

fn sent_id(g: &Group, seq: u64) -> String {
    format!("{}-{}-{seq}", g.key, g.started_ms)
}

#[test]
fn a_group_still_firing_is_sent_again_after_repeat_interval_only() {
    let t0 = 2_000_000.0;
    let grouping = Grouping {
        repeat_interval: Some(3600),
        ..Grouping::default()
    };
    let mut g = group_for(&grouping, &event(EventKind::Fire, 1, "/", t0));
    g.add(event(EventKind::Fire, 1, "/", t0), t0);
    let sent = run(&mut g, t0, t0 + 7300.0, &never);
    let times: Vec<f64> = sent.iter().map(|(t, _)| t - t0).collect();
    assert_eq!(times, vec![30.0, 3630.0, 7230.0]);
    let ids: std::collections::HashSet<_> = sent
        .iter()
        .map(|(_, f)| f.sent.as_ref().unwrap().id.clone())
        .collect();
    assert_eq!(ids.len(), 3);
}

#[test]
fn group_by_nothing_sends_each_alert_alone_at_once() {
    let t0 = 3_000_000.0;
    let grouping = Grouping {
        group_by: Some(vec![]),
        ..Grouping::default()
    };
    let fire = event(EventKind::Fire, 1, "/", t0);
    let mut g = group_for(&grouping, &fire);
    assert_eq!(g.labels.keys().collect::<Vec<_>>(), ["fingerprint"]);
    g.add(fire, t0);
    let f = g.tick(t0, &never);
    assert_eq!(f.sent.unwrap().alerts.len(), 1, "no group_wait");
    g.add(event(EventKind::Clear, 1, "/", t0 + 5.0), t0 + 5.0);
    let f = g.tick(t0 + 5.0, &never);
    assert_eq!(
        f.sent.unwrap().alerts[0].status(),
        "resolved",
        "no group_interval"
    );
    assert!(g.is_empty());
}

fn silence(json: serde_json::Value, id: i64) -> CompiledSilence {
    Silence::from_json(&serde_json::to_vec(&json).unwrap())
        .unwrap()
        .compile(id)
        .unwrap()
}

#[test]
fn a_silence_mutes_then_the_still_firing_alert_goes_out_when_it_ends() {
    // 2026-03-02T10:00:00Z.
    let t0 = 1_772_445_600.0;
    let silences = [silence(
        serde_json::json!({"account": "acme",
            "matchers": [{"label": "device", "op": "=", "value": "web-01"}],
            "starts_at": "2026-03-02T10:00:00Z", "ends_at": "2026-03-02T11:00:00Z",
            "comment": "reboot", "created_by": "ops"}),
        42,
    )];
    let clock = std::cell::Cell::new(t0);
    let silenced = |e: &AlertEvent| silenced_by(&silences, &e.account, &labels(e), clock.get());
    let grouping = Grouping::default();
    let mut g = group_for(&grouping, &event(EventKind::Fire, 1, "/", t0));
    // web-01 (silenced) and web-02 (not) fire at t0 + 60.
    g.add(event(EventKind::Fire, 1, "/", t0 + 60.0), t0 + 60.0);
    g.add(event(EventKind::Fire, 2, "/", t0 + 60.0), t0 + 60.0);
    let mut sent = Vec::new();
    let mut muted = Vec::new();
    let mut t = t0 + 60.0;
    while t <= t0 + 7200.0 {
        clock.set(t);
        let f = g.tick(t, &silenced);
        muted.extend(f.muted.iter().map(|m| (t - t0, m.silence)));
        if let Some(n) = f.sent {
            sent.push((t - t0, n));
        }
        t += 1.0;
    }
    // At group_wait: only web-02; web-01 is muted by silence 42.
    assert_eq!(sent[0].0, 90.0);
    let hosts = |n: &super::group::GroupNotification| {
        let mut h = n
            .alerts
            .iter()
            .map(|a| a.hostname.clone())
            .collect::<Vec<_>>();
        h.sort();
        h
    };
    assert_eq!(hosts(&sent[0].1), ["web-02"]);
    assert_eq!(muted.first(), Some(&(90.0, 42)));
    // The silence ends at t0 + 3600; web-01 still fires: it goes out then (the last flush
    // was more than group_interval ago), with web-02 (still firing: the group's state).
    assert_eq!(
        sent.len(),
        2,
        "{:?}",
        sent.iter().map(|s| s.0).collect::<Vec<_>>()
    );
    assert_eq!(
        sent[1].0, 3600.0,
        "as soon as the silence ended: the last flush was long ago"
    );
    assert_eq!(hosts(&sent[1].1), ["web-01", "web-02"]);
}

#[test]
fn an_alert_resolved_during_its_silence_sends_nothing() {
    let t0 = 1_772_445_600.0;
    let silences = [silence(
        serde_json::json!({"account": "acme", "matchers": [],
            "starts_at": "2026-03-02T10:00:00Z", "ends_at": "2026-03-02T11:00:00Z"}),
        7,
    )];
    let clock = std::cell::Cell::new(t0);
    let silenced = |e: &AlertEvent| silenced_by(&silences, &e.account, &labels(e), clock.get());
    let grouping = Grouping {
        group_by: Some(vec![]),
        ..Grouping::default()
    };
    let mut g = group_for(&grouping, &event(EventKind::Fire, 1, "/", t0));
    let mut sent = 0;
    let mut t = t0;
    while t <= t0 + 7200.0 {
        clock.set(t);
        if t == t0 + 100.0 {
            g.add(event(EventKind::Fire, 1, "/", t), t);
        }
        if t == t0 + 1800.0 {
            g.add(event(EventKind::Clear, 1, "/", t), t);
        }
        sent += usize::from(g.tick(t, &silenced).sent.is_some());
        t += 1.0;
    }
    assert_eq!(sent, 0);
    assert!(g.members.is_empty(), "the resolved member left");
}

#[test]
fn a_group_survives_a_restart_mid_wait() {
    let t0 = 4_000_000.0;
    let grouping = Grouping::default();
    let mut g = group_for(&grouping, &event(EventKind::Fire, 1, "/", t0));
    g.add(event(EventKind::Fire, 1, "/", t0), t0);
    assert!(g.tick(t0 + 10.0, &never).sent.is_none());
    let saved = serde_json::to_vec(&g).unwrap();
    let mut back: Group = serde_json::from_slice(&saved).unwrap();
    assert_eq!(back, g);
    back.add(event(EventKind::Fire, 2, "/", t0 + 20.0), t0 + 20.0);
    let n = back
        .tick(t0 + 30.0, &never)
        .sent
        .expect("the wait ends on time");
    assert_eq!(n.alerts.len(), 2);
}

#[test]
fn durations_are_written_as_people_write_them() {
    let g: Grouping = serde_json::from_value(serde_json::json!({
        "group_by": ["alertname"], "group_wait": "10s", "group_interval": "1m",
        "repeat_interval": 7200}))
    .unwrap();
    let t = g.timers();
    assert_eq!(
        (t.group_wait_s, t.group_interval_s, t.repeat_interval_s),
        (10, 60, 7200)
    );
    let back = serde_json::to_value(&g).unwrap();
    assert_eq!(back["group_interval"], "1m");
    let bad = serde_json::from_value::<Grouping>(serde_json::json!({"group_wait": "soon"}));
    assert!(bad.unwrap_err().to_string().contains("not a duration"));
}

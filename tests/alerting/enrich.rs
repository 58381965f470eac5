//! The `enrich` bolt in a topology, against a real SQLite accounts file: every decision.

use std::sync::Arc;

use squall_alerting::accounts::{Account, AccountPatch, Registration};
use squall_alerting::engine::Observation;
use squall_alerting::store::AccountStore;
use squall_pipeline::enrich::Enrich;
use squall_pipeline::stage::REJECTED;
use squall_runtime::testing::CompleteTopology;
use squall_runtime::RunningTopology;
use squall_store_sqlite::SqliteStore;
use squall_topology::*;

struct Source;
impl Spout for Source {
    fn declare_outputs(&self, d: &mut OutputDeclarer) {
        d.declare(Fields::new(["value"]));
    }
    fn next_tuple(&mut self, _o: &mut SpoutOutputCollector) -> SpoutStatus {
        SpoutStatus::Exhausted
    }
}

fn envelope(account: &str, key: &str, hostname: &str) -> Values {
    envelope_at(account, key, hostname, None)
}

/// An envelope received at 1,700,000,000 s whose payload has `collection_timestamp` `t`
/// (the fixture's, 2017, when `None`).
fn envelope_at(account: &str, key: &str, hostname: &str, t: Option<serde_json::Value>) -> Values {
    let mut payload: serde_json::Value = serde_json::from_slice(
        &std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/payloads/sd-agent-v2.json"
        ))
        .unwrap(),
    )
    .unwrap();
    payload["internalHostname"] = hostname.into();
    payload["agentKey"] = key.into();
    if let Some(t) = t {
        payload["collection_timestamp"] = t;
    }
    let e = serde_json::json!({
        "account": account, "agent_key": key, "received_at_ms": 1_700_000_000_000u64,
        "format": "v2", "payload": payload
    });
    values![serde_json::to_vec(&e).unwrap()]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enrich_accepts_registers_and_rejects_with_reasons() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SqliteStore::open(&dir.path().join("accounts.db")).unwrap());
    let account = |name: &str, quota, active| Account {
        name: name.into(),
        device_quota: quota,
        active,
    };
    store.create_account(&account("acme", 2, true)).unwrap();
    store.create_account(&account("globex", 5, false)).unwrap();
    store.create_account(&account("initech", 5, true)).unwrap();
    let acme = store.issue_agent_key("acme", None).unwrap();
    let globex = store.issue_agent_key("globex", None).unwrap();
    let initech = store.issue_agent_key("initech", None).unwrap();
    let Registration::Registered(old) = store
        .register_device("initech", &initech, "old-box", 1)
        .unwrap()
    else {
        panic!()
    };
    store.set_device_active(old.id, false).unwrap();

    let mut b = TopologyBuilder::new("enrich");
    b.set_spout("payloads", 1, || Source);
    let s: Arc<dyn AccountStore> = store.clone();
    b.set_bolt("enrich", 1, move || Enrich::with_store(s.clone(), 60_000))
        .shuffle_grouping("payloads");
    let inputs = vec![
        envelope("acme", &acme, "web-01"),
        envelope("acme", &acme, "web-01"),
        envelope("acme", &globex, "web-01"),
        envelope("globex", &globex, "db-01"),
        envelope("nope", &acme, "web-01"),
        envelope("acme", &acme, "web-02"),
        envelope("acme", &acme, "web-03"),
        envelope("initech", &initech, "old-box"),
        values![b"not json".to_vec()],
        values![
            br#"{"account":"acme","agent_key":"k","received_at_ms":1,"format":"v2","payload":[1]}"#
                .to_vec()
        ],
    ];
    let done = CompleteTopology::new(b.build().unwrap())
        .mock_spout("payloads", inputs)
        .run()
        .await
        .unwrap();

    let accepted = done.values("enrich", DEFAULT_STREAM);
    let devices: Vec<i64> = accepted.iter().map(|v| v[0].as_int().unwrap()).collect();
    assert_eq!(devices.len(), 3, "{accepted:?}");
    assert_eq!(devices[0], devices[1], "the same device twice");
    assert_ne!(devices[0], devices[2]);
    let observation = accepted[0][1].downcast_ref::<Observation>().unwrap();
    assert_eq!(
        (observation.device.0, observation.hostname.as_str()),
        (devices[0], "web-01")
    );
    assert_eq!(
        observation.time, 1487973674.928511,
        "event time from collection_timestamp"
    );
    let mut reasons: Vec<String> = done
        .values("enrich", REJECTED)
        .iter()
        .map(|v| v[2].as_str().unwrap().to_string())
        .collect();
    reasons.sort();
    assert_eq!(
        reasons,
        [
            "account_inactive",
            "device_inactive",
            "invalid_agent_key",
            "malformed",
            "malformed",
            "quota_exceeded",
            "unknown_account"
        ]
    );
    let report = done.report().component("enrich").unwrap().clone();
    assert_eq!(
        (report.acked, report.failed),
        (10, 0),
        "rejections are answers, not failures"
    );
    assert_eq!(
        store.devices("acme").unwrap().len(),
        2,
        "quota 2: web-03 was not registered"
    );
}

/// Emits what the test sends it, tracked.
struct Feed(crossbeam_channel::Receiver<Values>, u64);
impl Spout for Feed {
    fn declare_outputs(&self, d: &mut OutputDeclarer) {
        d.declare(Fields::new(["value"]));
    }
    fn next_tuple(&mut self, out: &mut SpoutOutputCollector) -> SpoutStatus {
        if let Ok(v) = self.0.try_recv() {
            self.1 += 1;
            out.emit_tracked(v, MessageId(self.1));
        }
        SpoutStatus::Active
    }
}

/// Reports every tuple of both enrich streams.
struct Outcomes(tokio::sync::mpsc::UnboundedSender<(String, String)>);
impl Bolt for Outcomes {
    fn execute(&mut self, t: Tuple, _o: &mut OutputCollector) -> Result<(), BoltError> {
        let what = if t.stream() == REJECTED {
            t.str_by_field("reason").unwrap_or_default().to_string()
        } else {
            "accepted".to_string()
        };
        let _ = self.0.send((t.stream().to_string(), what));
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_changes_reach_a_long_lived_cache_within_a_second() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SqliteStore::open(&dir.path().join("accounts.db")).unwrap());
    store
        .create_account(&Account {
            name: "acme".into(),
            device_quota: 5,
            active: true,
        })
        .unwrap();
    let key = store.issue_agent_key("acme", None).unwrap();
    let (feed, rx) = crossbeam_channel::unbounded();
    let (tx, mut outcomes) = tokio::sync::mpsc::unbounded_channel();
    let mut b = TopologyBuilder::new("enrich-cache");
    b.set_spout("payloads", 1, move || Feed(rx.clone(), 0));
    let s: Arc<dyn AccountStore> = store.clone();
    // A cache that would hold decisions for an hour.
    b.set_bolt("enrich", 1, move || {
        Enrich::with_store(s.clone(), 3_600_000)
    })
    .shuffle_grouping("payloads");
    b.set_bolt("outcomes", 1, move || Outcomes(tx.clone()))
        .shuffle_grouping("enrich")
        .grouping("enrich", REJECTED, Grouping::Shuffle);
    let running = RunningTopology::start(b.build().unwrap()).unwrap();

    feed.send(envelope("acme", &key, "web-01")).unwrap();
    assert_eq!(outcomes.recv().await.unwrap().1, "accepted");
    feed.send(envelope("acme", &key, "web-01")).unwrap();
    assert_eq!(
        outcomes.recv().await.unwrap().1,
        "accepted",
        "served from the cache"
    );

    // The operator deactivates the account; the agent keeps posting every 100 ms.
    store
        .update_account(
            "acme",
            &AccountPatch {
                device_quota: None,
                active: Some(false),
            },
        )
        .unwrap();
    let mut every = tokio::time::interval(std::time::Duration::from_millis(100));
    let mut posts = 0;
    let rejected = tokio::time::timeout(std::time::Duration::from_secs(5), async {
        loop {
            every.tick().await;
            posts += 1;
            feed.send(envelope("acme", &key, "web-01")).unwrap();
            if outcomes.recv().await.unwrap().1 == "account_inactive" {
                return posts;
            }
        }
    })
    .await
    .expect("the deactivation took effect within 5 s");
    assert!(
        rejected <= 15,
        "within about a second of posts ({rejected})"
    );
    running.shutdown_and_join().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn times_too_far_ahead_or_not_numbers_are_rejected_before_any_state() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SqliteStore::open(&dir.path().join("accounts.db")).unwrap());
    store
        .create_account(&Account {
            name: "acme".into(),
            device_quota: 5,
            active: true,
        })
        .unwrap();
    let key = store.issue_agent_key("acme", None).unwrap();
    let received = 1_700_000_000.0;
    let mut b = TopologyBuilder::new("enrich");
    b.set_spout("payloads", 1, || Source);
    let s: Arc<dyn AccountStore> = store.clone();
    b.set_bolt("enrich", 1, move || Enrich::with_store(s.clone(), 60_000))
        .shuffle_grouping("payloads");
    let at = |host: &str, t: serde_json::Value| envelope_at("acme", &key, host, Some(t));
    let inputs = vec![
        at("year-11000", 3e11.into()),
        at("year-5138", 1e11.into()),
        at("milliseconds", (received * 1000.0).into()),
        at("just-past-the-skew", (received + 301.0).into()),
        at("nan", "NaN".into()),
        at("infinite", "inf".into()),
        at("within-the-skew", (received + 299.0).into()),
        at("an-old-one", 1e9.into()),
    ];
    let done = CompleteTopology::new(b.build().unwrap())
        .mock_spout("payloads", inputs)
        .run()
        .await
        .unwrap();
    let accepted: Vec<String> = done
        .values("enrich", DEFAULT_STREAM)
        .iter()
        .map(|v| v[1].downcast_ref::<Observation>().unwrap().hostname.clone())
        .collect();
    assert_eq!(accepted, ["within-the-skew", "an-old-one"]);
    let rejected = done.values("enrich", REJECTED);
    assert_eq!(rejected.len(), 6, "{rejected:?}");
    for r in &rejected {
        assert_eq!(r[2].as_str(), Some("timestamp_out_of_range"), "{r:?}");
        assert!(
            r[3].as_str().unwrap().contains("intake.max_future_skew_s"),
            "the message names the setting: {r:?}"
        );
    }
    let devices = store.devices("acme").unwrap();
    assert_eq!(devices.len(), 2, "rejected payloads register no device");
}

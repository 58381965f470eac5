//! The storage conformance suite: one set of tests over the storage traits that every
//! backend passes ([`super::MemoryStore`] here, SQLite and PostgreSQL in their crates).
//!
//! A backend runs the whole suite with one line in its tests:
//!
//! ```ignore
//! squall_alerting::store_conformance_tests!(|| open_a_fresh_empty_store());
//! ```
//!
//! Each case takes a function that opens a fresh, empty store; it panics (fails the test)
//! on the first broken promise, naming it.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::{
    AccountStore, AlertChange, AlertStateStore, Claim, Delivery, DeliveryLog, DeliveryStatus,
    Fence, GroupRow, HourAggregate, MetricStore, PolicyStore, StateRow, StoreError, TriggeredAlert,
};
use crate::accounts::{Account, AccountPatch, Registration, Sighting};
use crate::configs::AlertConfig;
use crate::engine::{Engine, Observation};
use crate::events::EventKind;
use crate::fixtures::Fixtures;
use crate::ids::{ConfigId, DeviceId};
use crate::payload::{MetricPoint, Payload};
use crate::policy::silence::Silence;

/// Everything a complete backend implements.
pub trait Backend:
    AccountStore + AlertStateStore + DeliveryLog + MetricStore + PolicyStore + 'static
{
}

impl<T: AccountStore + AlertStateStore + DeliveryLog + MetricStore + PolicyStore + 'static> Backend
    for T
{
}

/// Generates one `#[test]` per conformance case for the backend that `$open` (an
/// expression callable as `Fn() -> S`) opens fresh and empty.
#[macro_export]
macro_rules! store_conformance_tests {
    ($open:expr) => {
        $crate::store_conformance_tests!(@cases $open;
            accounts_keys_and_devices,
            a_batch_registers_in_order_and_fills_the_quota_once,
            a_concurrent_burst_of_new_devices_never_exceeds_the_quota,
            alert_configs_are_stored_per_account_and_bump_the_admin_version,
            fixtures_import_once_and_again_idempotently,
            a_failed_import_changes_nothing,
            alerts_open_update_and_close_one_per_key,
            a_partition_claimed_again_fences_its_earlier_owner,
            an_engine_that_lost_its_partition_steps_back,
            the_first_recorded_delivery_outcome_wins,
            a_notification_is_claimed_by_one_sender_at_a_time,
            minutes_hours_and_latest_are_idempotent_under_replay,
            retention_deletes_old_minutes_and_keeps_hours,
            a_roll_up_takes_at_most_its_limit_and_the_rest_later,
            the_engine_resumes_from_committed_state,
            silences_are_stored_listed_and_expired,
            group_states_commit_under_their_partition_fence,
        );
    };
    (@cases $open:expr; $($case:ident),* $(,)?) => {
        $(
            #[test]
            fn $case() {
                $crate::store::conformance::$case(&$open);
            }
        )*
    };
}

fn acme<S: Backend>(store: &S, quota: u32) -> String {
    store
        .create_account(&Account {
            name: "acme".into(),
            device_quota: quota,
            active: true,
        })
        .expect("create acme");
    store.issue_agent_key("acme", None).expect("issue a key")
}

/// A fixtures file with account `acme` (keys `k1`, `k2`) and `alerts` configs.
pub fn fixtures_file(alerts: usize) -> String {
    let alerts: Vec<String> = (0..alerts)
        .map(|i| {
            format!(
                r#"{{"account": "acme", "name": "load {i}", "kind": "threshold",
                "subject": {{"type": "agent_key", "id": "key-{i}"}}, "metric": "system.load.1",
                "comparison": "gte", "value": {i}, "wait": {{"seconds": 60, "enabled": true}},
                "repeat": {{"seconds": 600, "enabled": false}}, "fix": true,
                "recipients": [{{"type": "webhook", "url": "http://127.0.0.1:9/h"}}]}}"#
            )
        })
        .collect();
    format!(
        r#"{{"accounts": [{{"name": "acme", "device_quota": 5, "active": true,
             "agent_keys": ["k1", "k2"]}}], "alerts": [{}]}}"#,
        alerts.join(",")
    )
}

/// A threshold config of `acme` on `system.load.1 >= 4`, wait 120 s, fix, with `patch`
/// applied to its JSON.
pub fn load_config(patch: serde_json::Value) -> AlertConfig {
    let mut c = serde_json::json!({
        "account": "acme", "name": "High load", "kind": "threshold",
        "subject": {"type": "account"}, "metric": "system.load.1",
        "comparison": "gte", "value": 4,
        "wait": {"seconds": 120, "enabled": true},
        "repeat": {"seconds": 600, "enabled": false},
        "fix": true,
        "recipients": [{"type": "webhook", "url": "http://127.0.0.1:9/hook"}]
    });
    for (k, v) in patch.as_object().expect("an object") {
        c[k] = v.clone();
    }
    AlertConfig::from_json(&serde_json::to_vec(&c).expect("json")).expect("a valid config")
}

/// Accounts, keys, devices, quota and the admin version.
pub fn accounts_keys_and_devices<S: Backend>(open: &dyn Fn() -> S) {
    let store = open();
    let key = acme(&store, 2);
    assert_eq!(key.len(), 32, "a new key is 32 hex digits");
    assert_eq!(store.key_account(&key).unwrap().as_deref(), Some("acme"));
    assert!(matches!(
        store.create_account(&Account {
            name: "acme".into(),
            device_quota: 1,
            active: true
        }),
        Err(StoreError::AccountExists(_))
    ));
    assert!(matches!(
        store.create_account(&Account {
            name: "Bad Name".into(),
            device_quota: 1,
            active: true
        }),
        Err(StoreError::Invalid { field: "name", .. })
    ));
    assert_eq!(
        store.issue_agent_key("acme", Some("imported-key")).unwrap(),
        "imported-key"
    );
    assert!(matches!(
        store.issue_agent_key("acme", Some("bad key!")),
        Err(StoreError::Invalid {
            field: "agentKey",
            ..
        })
    ));
    assert!(matches!(
        store.issue_agent_key("nobody", None),
        Err(StoreError::NoAccount(_))
    ));
    store
        .create_account(&Account {
            name: "globex".into(),
            device_quota: 1,
            active: true,
        })
        .unwrap();
    assert!(matches!(
        store.issue_agent_key("globex", Some("imported-key")),
        Err(StoreError::KeyTaken { .. })
    ));

    let Registration::Registered(d) = store.register_device("acme", &key, "web-01", 10).unwrap()
    else {
        panic!("web-01 registers")
    };
    let Registration::Known(again) = store.register_device("acme", &key, "web-01", 20).unwrap()
    else {
        panic!("web-01 is known")
    };
    assert_eq!(
        (again.id, again.first_seen_ms, again.last_seen_ms),
        (d.id, 10, 20)
    );
    assert!(matches!(
        store.register_device("acme", &key, "web-02", 30).unwrap(),
        Registration::Registered(_)
    ));
    assert_eq!(
        store.register_device("acme", &key, "web-03", 40).unwrap(),
        Registration::QuotaExceeded
    );
    assert!(
        !store.set_device_active(d.id, false).unwrap().active,
        "deactivated"
    );
    assert!(
        matches!(
            store.register_device("acme", &key, "web-03", 50).unwrap(),
            Registration::Registered(_)
        ),
        "deactivating a device frees its quota"
    );
    assert_eq!(store.devices("acme").unwrap().len(), 3);
    assert!(
        matches!(
            store.set_device_active(d.id, true),
            Err(StoreError::QuotaExceeded { ref account }) if account == "acme"
        ),
        "reactivating a device counts against the quota"
    );
    assert!(
        !store
            .devices("acme")
            .unwrap()
            .iter()
            .find(|x| x.id == d.id)
            .unwrap()
            .active,
        "a refused reactivation changes nothing"
    );
    assert!(matches!(
        store.devices("nobody"),
        Err(StoreError::NoAccount(_))
    ));
    assert!(matches!(
        store.set_device_active(DeviceId(987_654), true),
        Err(StoreError::NoDevice(DeviceId(987_654)))
    ));
    let patched = store
        .update_account(
            "acme",
            &AccountPatch {
                device_quota: Some(10),
                active: Some(false),
            },
        )
        .unwrap();
    assert_eq!((patched.device_quota, patched.active), (10, false));
    assert_eq!(store.account("acme").unwrap(), Some(patched));
    assert!(matches!(
        store.update_account("nobody", &AccountPatch::default()),
        Err(StoreError::NoAccount(_))
    ));
    let before = store.admin_version().unwrap();
    store.register_device("acme", &key, "web-04", 60).unwrap();
    assert_eq!(
        store.admin_version().unwrap(),
        before,
        "the pipeline's registrations are not admin changes"
    );
    store.set_device_active(d.id, true).unwrap();
    assert!(store.admin_version().unwrap() > before, "an admin change");
}

/// A batch registers in order; a quota filled by an earlier sighting counts for later
/// ones; `last_seen` only moves forward.
pub fn a_batch_registers_in_order_and_fills_the_quota_once<S: Backend>(open: &dyn Fn() -> S) {
    let store = open();
    let key = acme(&store, 2);
    let at = |hostname, now_ms| Sighting {
        account: "acme",
        agent_key: &key,
        hostname,
        now_ms,
    };
    let got = store
        .register_devices(&[at("a", 1), at("b", 2), at("a", 3), at("c", 4)])
        .unwrap();
    assert!(matches!(&got[0], Registration::Registered(d) if d.hostname == "a"));
    assert!(matches!(&got[1], Registration::Registered(d) if d.hostname == "b"));
    assert!(matches!(&got[2], Registration::Known(d) if d.hostname == "a" && d.last_seen_ms == 3));
    assert_eq!(
        got[3],
        Registration::QuotaExceeded,
        "the batch filled the quota"
    );
    let a = |store: &S| {
        store
            .devices("acme")
            .unwrap()
            .into_iter()
            .find(|d| d.hostname == "a")
            .unwrap()
    };
    let id = a(&store).id;
    store.touch_devices(&[(id, 100), (id, 50)]).unwrap();
    assert_eq!(a(&store).last_seen_ms, 100, "last_seen only moves forward");
    assert!(
        matches!(
            store.register_devices(&[
                at("d", 5),
                Sighting {
                    account: "nobody",
                    ..at("e", 6)
                }
            ]),
            Err(StoreError::NoAccount(_))
        ),
        "an unknown account fails the batch"
    );
    assert_eq!(
        store.devices("acme").unwrap().len(),
        2,
        "a failed batch registers nothing"
    );
}

/// Sixteen threads registering new devices at once never exceed a quota of five.
pub fn a_concurrent_burst_of_new_devices_never_exceeds_the_quota<S: Backend>(open: &dyn Fn() -> S) {
    let store = Arc::new(open());
    let key = acme(&*store, 5);
    let handles: Vec<_> = (0..16)
        .map(|i| {
            let (store, key) = (store.clone(), key.clone());
            std::thread::spawn(move || {
                store
                    .register_device("acme", &key, &format!("host-{i}"), i)
                    .unwrap()
            })
        })
        .collect();
    let results: Vec<Registration> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    let registered = results
        .iter()
        .filter(|r| matches!(r, Registration::Registered(_)))
        .count();
    assert_eq!(registered, 5);
    assert_eq!(
        results
            .iter()
            .filter(|r| **r == Registration::QuotaExceeded)
            .count(),
        11
    );
    assert_eq!(store.devices("acme").unwrap().len(), 5);
}

/// Alert configs: create (for an existing account only), read, list per account,
/// replace, delete; each an admin change.
pub fn alert_configs_are_stored_per_account_and_bump_the_admin_version<S: Backend>(
    open: &dyn Fn() -> S,
) {
    let store = open();
    acme(&store, 5);
    let v0 = store.admin_version().unwrap();
    let c = load_config(serde_json::json!({}));
    let stored = store.create_config(&c).unwrap();
    assert_eq!(stored.config, c);
    let v1 = store.admin_version().unwrap();
    assert!(v1 > v0, "creating a config is an admin change");
    assert_eq!(store.config(stored.id).unwrap(), Some(stored.clone()));
    assert_eq!(store.config(ConfigId(stored.id.0 + 1_000)).unwrap(), None);
    let orphan = AlertConfig {
        account: "nobody".into(),
        ..c.clone()
    };
    assert!(matches!(
        store.create_config(&orphan),
        Err(StoreError::NoAccount(_))
    ));
    store
        .create_account(&Account {
            name: "globex".into(),
            device_quota: 1,
            active: true,
        })
        .unwrap();
    let other = store
        .create_config(&AlertConfig {
            account: "globex".into(),
            ..c.clone()
        })
        .unwrap();
    assert!(other.id > stored.id, "ids grow");
    assert_eq!(store.configs(Some("acme")).unwrap(), vec![stored.clone()]);
    assert_eq!(store.configs(None).unwrap().len(), 2);
    let renamed = AlertConfig {
        name: "Very high load".into(),
        ..c.clone()
    };
    let v2 = store.admin_version().unwrap();
    assert!(store.replace_config(stored.id, &renamed).unwrap());
    assert!(
        store.admin_version().unwrap() > v2,
        "replacing is an admin change"
    );
    assert_eq!(store.config(stored.id).unwrap().unwrap().config, renamed);
    assert!(
        matches!(
            store.replace_config(stored.id, &orphan),
            Err(StoreError::NoAccount(_))
        ),
        "a config is replaced only by one of an existing account"
    );
    let v3 = store.admin_version().unwrap();
    assert!(!store.replace_config(ConfigId(999_999), &renamed).unwrap());
    assert_eq!(
        store.admin_version().unwrap(),
        v3,
        "nothing changed: no admin change"
    );
    assert!(store.delete_config(stored.id).unwrap());
    assert!(!store.delete_config(stored.id).unwrap(), "deleted already");
    assert_eq!(store.configs(Some("acme")).unwrap(), vec![]);
}

/// Importing a fixtures file twice creates everything once.
pub fn fixtures_import_once_and_again_idempotently<S: Backend>(open: &dyn Fn() -> S) {
    let store = open();
    let f = Fixtures::from_json(fixtures_file(3).as_bytes()).unwrap();
    assert_eq!(f.only_account(), Some("acme"));
    let first = store.import(&f).unwrap();
    assert_eq!(
        (
            first.accounts_created,
            first.keys_issued,
            first.configs_created
        ),
        (1, 2, 3)
    );
    let again = store.import(&f).unwrap();
    assert_eq!(
        (
            again.accounts_updated,
            again.keys_present,
            again.configs_present,
            again.configs_created
        ),
        (1, 2, 3, 0)
    );
    assert_eq!(store.configs(Some("acme")).unwrap().len(), 3);
    assert_eq!(store.key_account("k2").unwrap().as_deref(), Some("acme"));
    assert_eq!(store.account("acme").unwrap().unwrap().device_quota, 5);
}

/// An import that fails half-way (a key issued to another account) changes nothing.
pub fn a_failed_import_changes_nothing<S: Backend>(open: &dyn Fn() -> S) {
    let store = open();
    store
        .create_account(&Account {
            name: "globex".into(),
            device_quota: 1,
            active: true,
        })
        .unwrap();
    store.issue_agent_key("globex", Some("k2")).unwrap();
    let f = Fixtures::from_json(fixtures_file(2).as_bytes()).unwrap();
    assert!(matches!(store.import(&f), Err(StoreError::KeyTaken { .. })));
    assert_eq!(store.account("acme").unwrap(), None, "rolled back");
    assert_eq!(store.key_account("k1").unwrap(), None, "rolled back");
    assert!(store.configs(None).unwrap().is_empty(), "rolled back");
}

/// Alerts open, take new values and close, one open alert per (config, device, series);
/// device states are written in the same commit.
pub fn alerts_open_update_and_close_one_per_key<S: Backend>(open: &dyn Fn() -> S) {
    let store = open();
    let series: BTreeMap<_, _> = [("device_name".to_string(), "/dev/sda1".to_string())]
        .into_iter()
        .collect();
    let key = super::series_key(&series);
    let opened = TriggeredAlert {
        id: 0,
        config_id: ConfigId(3),
        account: "acme".into(),
        device: DeviceId(7),
        hostname: "web-1".into(),
        metric: Some("disk.used".into()),
        series: series.clone(),
        fired_at: 100.0,
        closed_at: None,
        last_value: Some(91.0),
    };
    store
        .commit(
            &[],
            &[row(7, None, vec![1, 2])],
            &[AlertChange::Open(opened.clone())],
        )
        .unwrap();
    store
        .commit(
            &[],
            &[],
            &[AlertChange::Value {
                config_id: ConfigId(3),
                device: DeviceId(7),
                series: key.clone(),
                value: 95.0,
            }],
        )
        .unwrap();
    let now = store.triggered(false, Some("acme")).unwrap();
    assert_eq!(now.len(), 1);
    assert_eq!(now[0].series, series);
    assert_eq!(now[0].last_value, Some(95.0));
    assert!(store.triggered(false, Some("globex")).unwrap().is_empty());
    assert!(store.triggered(true, None).unwrap().is_empty());
    assert_eq!(store.device_state(DeviceId(7)).unwrap(), Some(vec![1, 2]));
    assert_eq!(store.device_state(DeviceId(8)).unwrap(), None);
    assert_eq!(
        store.device_states(None, &|d| d == DeviceId(7)).unwrap(),
        vec![(DeviceId(7), "acme".to_string(), vec![1, 2])]
    );
    assert!(store
        .device_states(None, &|d| d != DeviceId(7))
        .unwrap()
        .is_empty());

    // Opening again (a config edited under an open alert) closes the leftover first.
    store
        .commit(
            &[],
            &[row(7, None, vec![3])],
            &[AlertChange::Open(TriggeredAlert {
                fired_at: 200.0,
                ..opened.clone()
            })],
        )
        .unwrap();
    assert_eq!(
        store.triggered(false, None).unwrap().len(),
        1,
        "one open per key"
    );
    assert_eq!(
        store.triggered(true, None).unwrap()[0].closed_at,
        Some(200.0)
    );
    assert_eq!(
        store.device_state(DeviceId(7)).unwrap(),
        Some(vec![3]),
        "state replaced"
    );

    store
        .commit(
            &[],
            &[],
            &[AlertChange::Close {
                config_id: ConfigId(3),
                device: DeviceId(7),
                series: key,
                at: 400.0,
                value: Some(10.0),
            }],
        )
        .unwrap();
    assert!(store.triggered(false, None).unwrap().is_empty());
    let closed = store.triggered(true, None).unwrap();
    assert_eq!(closed.len(), 2);
    assert_eq!(
        (
            closed[0].fired_at,
            closed[0].closed_at,
            closed[0].last_value
        ),
        (200.0, Some(400.0), Some(10.0)),
        "newest first"
    );
}

/// A state row of device `device` of account `acme`.
fn row(device: i64, partition: Option<i32>, blob: Vec<u8>) -> StateRow<'static> {
    StateRow {
        device: DeviceId(device),
        account: "acme",
        partition,
        blob,
    }
}

/// Partitions: each claim is a later epoch; a commit under an epoch that is no longer
/// the partition's latest is refused as a whole and writes nothing; states are read back
/// by partition.
pub fn a_partition_claimed_again_fences_its_earlier_owner<S: Backend>(open: &dyn Fn() -> S) {
    let store = open();
    let first = store.claim_partition(0).unwrap();
    let second = store.claim_partition(0).unwrap();
    assert!(second > first, "a later claim, a later epoch");
    let other = store.claim_partition(1).unwrap();
    let opened = TriggeredAlert {
        id: 0,
        config_id: ConfigId(3),
        account: "acme".into(),
        device: DeviceId(7),
        hostname: "web-1".into(),
        metric: Some("system.load.1".into()),
        series: BTreeMap::new(),
        fired_at: 100.0,
        closed_at: None,
        last_value: Some(9.0),
    };
    store
        .commit(
            &[Fence {
                partition: 0,
                epoch: second,
            }],
            &[row(7, Some(0), vec![1])],
            &[],
        )
        .unwrap();
    store
        .commit(
            &[Fence {
                partition: 1,
                epoch: other,
            }],
            &[row(8, Some(1), vec![2])],
            &[],
        )
        .unwrap();
    let refused = store
        .commit(
            &[
                Fence {
                    partition: 1,
                    epoch: other,
                },
                Fence {
                    partition: 0,
                    epoch: first,
                },
            ],
            &[row(7, Some(0), vec![9]), row(8, Some(1), vec![9])],
            &[AlertChange::Open(opened)],
        )
        .unwrap_err();
    assert!(
        matches!(refused, StoreError::Fenced { partition: 0, epoch } if epoch == first),
        "{refused}"
    );
    assert!(!refused.is_transient(), "fenced is for good");
    assert_eq!(store.device_state(DeviceId(7)).unwrap(), Some(vec![1]));
    assert_eq!(
        store.device_state(DeviceId(8)).unwrap(),
        Some(vec![2]),
        "nothing of the refused commit was written"
    );
    assert!(store.triggered(false, None).unwrap().is_empty());
    let of = |p: i32| -> Vec<i64> {
        store
            .device_states(Some(p), &|_| true)
            .unwrap()
            .into_iter()
            .map(|(d, _, _)| d.0)
            .collect()
    };
    assert_eq!((of(0), of(1), of(2)), (vec![7], vec![8], vec![]));
    assert_eq!(store.device_states(None, &|_| true).unwrap().len(), 2);
}

/// Two engines (two processes) and one partition: the second claims it and loads the
/// first's committed state; the first, paused meanwhile, has its next commit refused,
/// steps back from the partition and forgets its devices; the second fires once, at the
/// right event time.
pub fn an_engine_that_lost_its_partition_steps_back<S: Backend>(open: &dyn Fn() -> S) {
    let store = Arc::new(open());
    acme(&*store, 10);
    store
        .create_config(&load_config(serde_json::json!({})))
        .unwrap();
    let on = |t: f64, load: f64| Observation {
        partition: Some(3),
        ..observation(1, t, load)
    };
    let mut a = Engine::new(store.clone(), store.clone());
    let epoch = store.claim_partition(3).unwrap();
    assert_eq!(a.own(3, epoch, 100.5, |_| true).unwrap(), 0);
    assert!(a.observe(&on(100.0, 9.0)).unwrap().is_empty(), "pending");
    a.commit().unwrap();

    // `a` pauses; `b` is assigned the partition and takes it over.
    let mut b = Engine::new(store.clone(), store.clone());
    let taken = store.claim_partition(3).unwrap();
    assert_eq!(
        b.own(3, taken, 101.0, |_| true).unwrap(),
        1,
        "a's state moved to b"
    );

    // `a` wakes up and evaluates a payload it had fetched: its commit is refused.
    let late = a.observe(&on(220.0, 9.0)).unwrap();
    assert_eq!(late.len(), 1, "a would fire...");
    let e = a.commit().unwrap_err();
    assert!(matches!(e, StoreError::Fenced { partition: 3, .. }), "{e}");
    assert_eq!(a.epoch(3), None, "...but steps back");
    assert!(a.tick(1e12).unwrap().is_empty(), "and checks nothing of it");
    assert!(
        store.triggered(false, None).unwrap().is_empty(),
        "nothing of a's written"
    );

    let fired = b.observe(&on(220.0, 9.0)).unwrap();
    b.commit().unwrap();
    assert_eq!(fired.len(), 1, "b fires from a's pending clock");
    assert_eq!(
        fired[0].id, late[0].id,
        "the same notification id a would have sent"
    );
    assert_eq!(store.triggered(false, None).unwrap().len(), 1);
}

/// A notification id is claimed by one owner at a time: the holder extends its claim,
/// another waits until it runs out and then takes it over; a recorded outcome ends it.
pub fn a_notification_is_claimed_by_one_sender_at_a_time<S: Backend>(open: &dyn Fn() -> S) {
    let store = open();
    let id = "a1-d1-fire-1-x-r0";
    assert_eq!(
        store.claim_delivery(id, "p1", 1_000, 31_000).unwrap(),
        Claim::Mine
    );
    assert_eq!(
        store.claim_delivery(id, "p2", 2_000, 32_000).unwrap(),
        Claim::Held {
            owner: "p1".into(),
            until_ms: 31_000
        }
    );
    // The holder renews; the other still waits past the first lease.
    assert_eq!(
        store.claim_delivery(id, "p1", 20_000, 50_000).unwrap(),
        Claim::Mine
    );
    assert!(matches!(
        store.claim_delivery(id, "p2", 40_000, 70_000).unwrap(),
        Claim::Held {
            until_ms: 50_000,
            ..
        }
    ));
    // p1 dies: once its lease ran out, p2 takes over, and p1 (back) waits.
    assert_eq!(
        store.claim_delivery(id, "p2", 50_001, 80_000).unwrap(),
        Claim::Mine
    );
    assert!(matches!(
        store.claim_delivery(id, "p1", 60_000, 90_000).unwrap(),
        Claim::Held { ref owner, .. } if owner == "p2"
    ));
    store
        .record_delivery(&Delivery {
            id: id.into(),
            status: DeliveryStatus::Delivered,
            attempts: 1,
            code: Some(200),
            reason: "ok".into(),
            at_ms: 61_000,
        })
        .unwrap();
    for owner in ["p1", "p2", "p3"] {
        assert_eq!(
            store.claim_delivery(id, owner, 62_000, 92_000).unwrap(),
            Claim::Done,
            "delivered: never again"
        );
    }
    assert_eq!(
        store.claim_delivery("other", "p3", 62_000, 92_000).unwrap(),
        Claim::Mine
    );
}

/// The first outcome recorded for a notification id wins; deliveries list oldest first.
pub fn the_first_recorded_delivery_outcome_wins<S: Backend>(open: &dyn Fn() -> S) {
    let store = open();
    let d = Delivery {
        id: "n1".into(),
        status: DeliveryStatus::Delivered,
        attempts: 3,
        code: Some(200),
        reason: "ok".into(),
        at_ms: 5,
    };
    store.record_delivery(&d).unwrap();
    store
        .record_delivery(&Delivery {
            status: DeliveryStatus::Archived,
            ..d.clone()
        })
        .unwrap();
    assert_eq!(store.delivery("n1").unwrap(), Some(d.clone()));
    assert_eq!(store.delivery("n2").unwrap(), None);
    let earlier = Delivery {
        id: "n0".into(),
        status: DeliveryStatus::Failed,
        attempts: 1,
        code: Some(404),
        reason: "HTTP 404".into(),
        at_ms: 1,
    };
    store.record_delivery(&earlier).unwrap();
    assert_eq!(store.deliveries().unwrap(), vec![earlier, d]);
}

/// Two points of a payload: `system.load.1` = `load`, and `system.disk.in_use` = 0.5 of
/// `/dev/sda1`.
pub fn sample_points(load: f64) -> Vec<MetricPoint> {
    let mut disk = MetricPoint {
        name: "system.disk.in_use".into(),
        labels: Default::default(),
        value: 0.5,
    };
    disk.labels.push(("device_name", "/dev/sda1".into()));
    vec![
        MetricPoint {
            name: "system.load.1".into(),
            labels: Default::default(),
            value: load,
        },
        disk,
    ]
}

/// Minutes keep the latest event time, hours are computed from minutes (rolled up once
/// ended, recomputed when a late minute changes them), latest is the newest minute.
pub fn minutes_hours_and_latest_are_idempotent_under_replay<S: Backend>(open: &dyn Fn() -> S) {
    let s = open();
    let t0 = 1_700_000_000.0 - (1_700_000_000.0 % 3600.0); // an hour boundary
    let (a, b, c) = (sample_points(1.0), sample_points(3.0), sample_points(2.0));
    let batch = [
        (DeviceId(7), t0 + 10.0, a.as_slice()),
        (DeviceId(7), t0 + 70.0, b.as_slice()),
        (DeviceId(7), t0 + 130.0, c.as_slice()),
    ];
    s.write(&batch).unwrap();
    s.write(&batch).unwrap(); // replay
    s.write(&[(DeviceId(7), t0 + 20.0, sample_points(9.0).as_slice())])
        .unwrap(); // late, same minute as the first
    s.write(&[(DeviceId(7), t0 + 5.0, sample_points(100.0).as_slice())])
        .unwrap(); // older than the minute's
    let minutes = s
        .query(
            DeviceId(7),
            "system.load.1",
            Some(""),
            t0 as i64,
            t0 as i64 + 3600,
            false,
        )
        .unwrap();
    let values: Vec<f64> = minutes.iter().map(|p| p.value).collect();
    assert_eq!(
        values,
        [9.0, 3.0, 2.0],
        "the later event time in a minute wins"
    );
    assert_eq!(
        minutes[1].time,
        t0 as i64 + 60,
        "minutes start on the minute"
    );
    let hourly = |s: &S| {
        s.query(
            DeviceId(7),
            "system.load.1",
            None,
            t0 as i64,
            t0 as i64,
            true,
        )
        .unwrap()
    };
    let hours = hourly(&s);
    assert_eq!(
        hours[0].hour,
        Some(HourAggregate {
            count: 3,
            sum: 14.0,
            min: 2.0,
            max: 9.0,
            last: 2.0
        })
    );
    assert_eq!(
        s.roll_up(t0 + 7200.0, usize::MAX).unwrap(),
        1,
        "one device-hour changed"
    );
    assert_eq!(
        hourly(&s),
        hours,
        "the rolled-up hour equals the computed one"
    );
    assert_eq!(
        s.roll_up(t0 + 7200.0, usize::MAX).unwrap(),
        0,
        "nothing changed since"
    );
    s.write(&[(DeviceId(7), t0 + 100.0, sample_points(0.5).as_slice())])
        .unwrap(); // late, after the roll-up
    let late = hourly(&s)[0].hour.clone().unwrap();
    assert_eq!(
        (late.count, late.sum, late.min, late.last),
        (3, 11.5, 0.5, 2.0),
        "the late minute replaced the second; the aggregate follows"
    );
    assert_eq!(s.roll_up(t0 + 7200.0, usize::MAX).unwrap(), 1);
    assert_eq!(hourly(&s)[0].hour, Some(late));
    let disk = s
        .query(
            DeviceId(7),
            "system.disk.in_use",
            Some("device_name=/dev/sda1"),
            0,
            i64::MAX,
            false,
        )
        .unwrap();
    assert_eq!(disk.len(), 3);
    assert!(
        s.query(
            DeviceId(7),
            "system.load.1",
            None,
            t0 as i64 + 1,
            t0 as i64 + 59,
            false
        )
        .unwrap()
        .is_empty(),
        "no minute starts within the range"
    );
    assert!(
        s.query(
            DeviceId(7),
            "system.load.1",
            None,
            t0 as i64 + 1,
            t0 as i64 + 3599,
            true
        )
        .unwrap()
        .is_empty(),
        "no hour starts within the range"
    );
    let (time, latest) = s.latest(DeviceId(7)).unwrap().unwrap();
    assert_eq!(
        time,
        t0 + 130.0,
        "a late payload does not move the latest record back"
    );
    assert_eq!(latest["system.load.1"], 2.0);
    assert_eq!(latest["system.disk.in_use{device_name=/dev/sda1}"], 0.5);
    assert_eq!(s.latest(DeviceId(8)).unwrap(), None);
}

/// A roll-up takes only hours that ended, at most `limit` of them; the next takes the rest.
pub fn a_roll_up_takes_at_most_its_limit_and_the_rest_later<S: Backend>(open: &dyn Fn() -> S) {
    let s = open();
    let t0 = 1_700_000_000.0_f64.div_euclid(3600.0) * 3600.0;
    // Three changed device-hours: device 1 in hours 0 and 1, device 2 in hour 1.
    s.write(&[
        (DeviceId(1), t0 + 60.0, sample_points(1.0).as_slice()),
        (DeviceId(1), t0 + 3660.0, sample_points(2.0).as_slice()),
        (DeviceId(2), t0 + 3660.0, sample_points(3.0).as_slice()),
    ])
    .unwrap();
    assert_eq!(
        s.roll_up(t0 + 3600.0, 5).unwrap(),
        1,
        "only hours that ended: device 1's first"
    );
    let now = t0 + 3.0 * 3600.0;
    assert_eq!(s.roll_up(now, 1).unwrap(), 1, "one at most");
    assert_eq!(
        s.roll_up(now, 5).unwrap(),
        1,
        "fewer than the limit: the rest"
    );
    assert_eq!(s.roll_up(now, 5).unwrap(), 0, "none left");
}

/// Retention deletes old minutes but each device's latest, and keeps hours.
pub fn retention_deletes_old_minutes_and_keeps_hours<S: Backend>(open: &dyn Fn() -> S) {
    let s = open();
    let now = 1_700_000_000.0;
    let old = now - 6.0 * 86_400.0;
    s.write(&[
        (DeviceId(1), old, sample_points(1.0).as_slice()),
        (DeviceId(1), now, sample_points(2.0).as_slice()),
        (DeviceId(2), old, sample_points(3.0).as_slice()),
    ])
    .unwrap();
    assert_eq!(s.retain(now, 5).unwrap(), 1, "the old minute of device 1");
    assert!(s
        .query(
            DeviceId(1),
            "system.load.1",
            None,
            0,
            old as i64 + 60,
            false
        )
        .unwrap()
        .is_empty());
    assert_eq!(
        s.query(DeviceId(1), "system.load.1", None, 0, i64::MAX, false)
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        s.latest(DeviceId(2)).unwrap().unwrap().1["system.load.1"],
        3.0,
        "a device's latest minute stays, however old"
    );
    let hours = s
        .query(DeviceId(1), "system.load.1", None, 0, i64::MAX, true)
        .unwrap();
    assert_eq!(hours.len(), 2, "hourly aggregates stay");
}

fn observation(device: i64, t: f64, load: f64) -> Observation {
    let payload = Payload {
        collection_timestamp: Some(t),
        points: vec![MetricPoint {
            name: "system.load.1".into(),
            labels: Default::default(),
            value: load,
        }],
        ..Payload::default()
    };
    Observation {
        device: DeviceId(device),
        account: "acme".into(),
        agent_key: "k1".into(),
        hostname: format!("host-{device}"),
        time: t,
        received_at: t + 0.5,
        payload: Arc::new(payload),
        partition: None,
    }
}

/// The engine over this backend: a second engine (a restarted process) resumes from the
/// committed state: pending clocks go on, replays move nothing, a replayed firing payload
/// re-emits the same ids.
pub fn the_engine_resumes_from_committed_state<S: Backend>(open: &dyn Fn() -> S) {
    let store = Arc::new(open());
    acme(&*store, 10);
    store
        .create_config(&load_config(serde_json::json!({})))
        .unwrap();
    let observe = |e: &mut Engine, t: f64, load: f64| {
        let events = e.observe(&observation(1, t, load)).unwrap();
        e.commit().unwrap();
        events
    };
    let mut a = Engine::new(store.clone(), store.clone());
    assert!(observe(&mut a, 100.0, 9.0).is_empty(), "pending");
    drop(a);

    let mut b = Engine::new(store.clone(), store.clone());
    assert_eq!(b.load(|_| true).unwrap(), 1);
    assert!(
        observe(&mut b, 100.0, 9.0).is_empty(),
        "replayed: nothing moves"
    );
    let fired = observe(&mut b, 220.0, 9.0);
    assert_eq!(fired.len(), 1, "the pending clock survived");
    assert_eq!(fired[0].kind, EventKind::Fire);
    assert_eq!(store.triggered(false, Some("acme")).unwrap().len(), 1);
    drop(b);

    let mut c = Engine::new(store.clone(), store.clone());
    assert_eq!(
        observe(&mut c, 220.0, 9.0),
        fired,
        "a replay of the firing payload re-emits the same notification ids"
    );
    let cleared = observe(&mut c, 300.0, 1.0);
    assert_eq!(cleared[0].kind, EventKind::Clear);
    assert!(store.triggered(false, None).unwrap().is_empty());
}

fn silence_of(account: &str, device: &str) -> Silence {
    serde_json::from_value(serde_json::json!({
        "account": account,
        "matchers": [{"label": "device", "op": "=~", "value": device}],
        "starts_at": "2026-03-01T10:00:00Z", "ends_at": "2026-03-01T12:00:00Z",
        "comment": "a reboot", "created_by": "ops",
        "recurrence": null
    }))
    .expect("a silence")
}

/// Silences: ids, newest first, per account, expiry keeps them listed, every change bumps
/// the admin version (the caches reload).
pub fn silences_are_stored_listed_and_expired<S: Backend>(open: &dyn Fn() -> S) {
    let store = open();
    let t = |s: &str| s.parse::<jiff::Timestamp>().unwrap();
    let v0 = store.admin_version().unwrap();
    let a = store
        .create_silence(&silence_of("acme", "web-.*"), t("2026-03-01T09:00:00Z"))
        .unwrap();
    let b = store
        .create_silence(&silence_of("other", "db"), t("2026-03-01T09:01:00Z"))
        .unwrap();
    assert!(b.id > a.id, "ids grow");
    assert!(
        store.admin_version().unwrap() > v0,
        "a new silence bumps the admin version"
    );
    assert_eq!(a.silence, silence_of("acme", "web-.*"));
    assert_eq!(a.created_at, t("2026-03-01T09:00:00Z"));
    let all = store.silences(None).unwrap();
    assert_eq!(
        all.iter().map(|s| s.id).collect::<Vec<_>>(),
        [b.id, a.id],
        "newest first"
    );
    assert_eq!(store.silences(Some("acme")).unwrap(), vec![a.clone()]);

    let v1 = store.admin_version().unwrap();
    let expired = store
        .expire_silence(a.id, t("2026-03-01T10:30:00Z"))
        .unwrap()
        .expect("it exists");
    assert_eq!(expired.silence.ends_at, Some(t("2026-03-01T10:30:00Z")));
    assert!(
        store.admin_version().unwrap() > v1,
        "expiry bumps the admin version"
    );
    assert_eq!(
        store.silences(Some("acme")).unwrap(),
        vec![expired.clone()],
        "still listed"
    );
    // Expiring again later does not move the end.
    let again = store
        .expire_silence(a.id, t("2026-03-01T11:00:00Z"))
        .unwrap()
        .unwrap();
    assert_eq!(again.silence.ends_at, Some(t("2026-03-01T10:30:00Z")));
    assert_eq!(
        store
            .expire_silence(9_999, t("2026-03-01T11:00:00Z"))
            .unwrap(),
        None
    );
}

/// Group states: written and deleted per key, listed per partition, refused as a whole
/// under a stale epoch; the records of a refused commit are not written either.
pub fn group_states_commit_under_their_partition_fence<S: Backend>(open: &dyn Fn() -> S) {
    let store = open();
    let e1 = store.claim_group_partition(0).unwrap();
    let row = |key: &str, p: i32, blob: Option<&[u8]>| GroupRow {
        key: key.into(),
        partition: Some(p),
        blob: blob.map(<[u8]>::to_vec),
    };
    let record = |id: &str| Delivery {
        id: id.into(),
        status: DeliveryStatus::Grouped,
        attempts: 0,
        code: None,
        reason: "grouped into g1".into(),
        at_ms: 1,
    };
    let fence = |epoch| Fence {
        partition: 0,
        epoch,
    };
    store
        .commit_groups(
            &[fence(e1)],
            &[row("g1", 0, Some(b"one")), row("g2", 0, Some(b"two"))],
            &[record("n1")],
        )
        .unwrap();
    let e = store.claim_group_partition(1).unwrap();
    store
        .commit_groups(
            &[Fence {
                partition: 1,
                epoch: e,
            }],
            &[row("g3", 1, Some(b"three"))],
            &[],
        )
        .unwrap();
    let mut p0 = store.groups(Some(0)).unwrap();
    p0.sort();
    assert_eq!(
        p0,
        vec![
            ("g1".to_string(), b"one".to_vec()),
            ("g2".to_string(), b"two".to_vec())
        ]
    );
    assert_eq!(store.groups(None).unwrap().len(), 3);
    assert_eq!(
        store.delivery("n1").unwrap().map(|d| d.status),
        Some(DeliveryStatus::Grouped)
    );
    // Rewritten and deleted.
    store
        .commit_groups(
            &[fence(e1)],
            &[row("g1", 0, Some(b"one'")), row("g2", 0, None)],
            &[],
        )
        .unwrap();
    assert_eq!(
        store.groups(Some(0)).unwrap(),
        vec![("g1".to_string(), b"one'".to_vec())]
    );
    // Another owner claims partition 0: the first one's commits are refused, whole.
    let e2 = store.claim_group_partition(0).unwrap();
    assert!(e2 > e1);
    match store.commit_groups(
        &[fence(e1)],
        &[row("g1", 0, Some(b"stale"))],
        &[record("n2")],
    ) {
        Err(StoreError::Fenced { partition: 0, .. }) => {}
        other => panic!("a stale epoch must be fenced, got {other:?}"),
    }
    assert_eq!(store.groups(Some(0)).unwrap()[0].1, b"one'".to_vec());
    assert_eq!(
        store.delivery("n2").unwrap(),
        None,
        "nothing of a refused commit"
    );
    store
        .commit_groups(&[fence(e2)], &[row("g1", 0, Some(b"new"))], &[])
        .unwrap();
    assert_eq!(store.groups(Some(0)).unwrap()[0].1, b"new".to_vec());
}

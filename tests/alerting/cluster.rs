//! Several `squall up` processes as one cluster: one broker, one PostgreSQL database, the
//! consumer groups spreading the partitions over the processes, the alert state moving
//! with its partitions.
//!
//! The broker is librdkafka's mock cluster served by `squall broker` in a process of its
//! own (real Kafka protocol over TCP; its group coordinator handles members that die or
//! pause, which tansu 0.6's mishandles), so the test can also pause the broker itself.
//! The database is the real PostgreSQL server of the tests (`scripts/postgres-up.sh`).
//! With `SQUALL_TEST_KEEP_LOGS=1` each process's data directory and log are kept (their
//! paths are printed).

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value as Json};

use crate::up::{config, postgres_database, t0, Api, Receiver, Up, KEY};

/// `squall broker`: the shared Kafka-protocol cluster, in a process of its own.
struct Broker {
    child: Child,
    brokers: String,
}

impl Broker {
    /// With `partitions` per topic; KIP-848 groups time out members after 6 s, as the
    /// processes' classic session does (`SQUALL__KAFKA__SESSION_TIMEOUT_MS` of `Up`).
    fn start(partitions: u32) -> Broker {
        let mut child = Command::new(env!("CARGO_BIN_EXE_squall"))
            .args(["broker", "--partitions", &partitions.to_string()])
            .arg("--session-timeout-ms=6000")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let brokers = line
            .trim()
            .strip_prefix("KAFKA_BROKERS=")
            .unwrap_or_else(|| panic!("squall broker printed {line:?}"))
            .to_string();
        Broker { child, brokers }
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Sends `signal` (STOP, CONT, ...) to process `pid`, one this test started.
fn signal(pid: u32, signal: &str) {
    let status = Command::new("kill")
        .args([&format!("-{signal}"), &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success(), "kill -{signal} {pid}");
}

/// A free port on 127.0.0.1 for a process's metrics endpoint.
fn free_addr() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().to_string()
}

/// The value of the Prometheus sample `name` (with its labels, as rendered) at `addr`, 0
/// when absent or unreachable.
async fn sample(addr: &str, name: &str) -> f64 {
    let Ok(resp) = reqwest::get(format!("http://{addr}/metrics")).await else {
        return 0.0;
    };
    let text = resp.text().await.unwrap_or_default();
    text.lines()
        .find_map(|l| l.strip_prefix(name).and_then(|v| v.trim().parse().ok()))
        .unwrap_or(0.0)
}

/// The load of agent payload `i`: 1, five times 5, five times 1, ...: an alert fires at
/// every fifth payload and clears at the next fifth.
fn load_of(i: u32) -> f64 {
    if (i / 5) % 2 == 1 {
        5.0
    } else {
        1.0
    }
}

/// Agents posting to `api`'s intake, each its own host and agent key, sending payload `i`
/// (event time `t0 + 60 i`) until it is answered 202, then the next, until `stop`.
struct Fleet {
    accepted: Arc<Mutex<HashMap<String, u32>>>,
    stop: Arc<AtomicBool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Fleet {
    fn start(api: Arc<Api>, hosts: &[(String, String)], t0: f64) -> Fleet {
        let accepted: Arc<Mutex<HashMap<String, u32>>> = Arc::default();
        let stop = Arc::new(AtomicBool::new(false));
        let tasks = hosts
            .iter()
            .cloned()
            .map(|(host, key)| {
                let (api, accepted, stop) = (api.clone(), accepted.clone(), stop.clone());
                tokio::spawn(async move {
                    let mut i = 0u32;
                    while !stop.load(Ordering::Acquire) {
                        let t = t0 + 60.0 * f64::from(i);
                        match api.try_payload_as(t, load_of(i), &host, &key, |_| {}).await {
                            Some(202) => {
                                i += 1;
                                accepted.lock().unwrap().insert(host.clone(), i);
                                tokio::time::sleep(Duration::from_millis(250)).await;
                            }
                            _ => tokio::time::sleep(Duration::from_millis(200)).await,
                        }
                    }
                })
            })
            .collect();
        Fleet {
            accepted,
            stop,
            tasks,
        }
    }

    fn accepted(&self) -> HashMap<String, u32> {
        self.accepted.lock().unwrap().clone()
    }

    async fn stop(self) -> HashMap<String, u32> {
        self.stop.store(true, Ordering::Release);
        for t in self.tasks {
            t.await.unwrap();
        }
        self.accepted.lock().unwrap().clone()
    }
}

/// Host -> device id.
async fn device_ids(api: &Api, hosts: usize) -> HashMap<String, Json> {
    let devices = api
        .wait_get("/accounts/acme/devices", Duration::from_secs(60), |d| {
            d.as_array().is_some_and(|d| d.len() == hosts)
        })
        .await;
    devices
        .as_array()
        .unwrap()
        .iter()
        .map(|d| (d["hostname"].as_str().unwrap().to_string(), d["id"].clone()))
        .collect()
}

/// Waits until every host has at least `want[host]` minutes stored; returns the stored
/// minutes per host (markers: minute index since `t0`).
async fn stored(
    api: &Api,
    ids: &HashMap<String, Json>,
    want: &HashMap<String, u32>,
    t0: f64,
) -> BTreeMap<String, Vec<u32>> {
    let mut out = BTreeMap::new();
    for (host, n) in want {
        let path = format!(
            "/devices/{}/metrics?metric=system.load.1&resolution=minute",
            ids[host]
        );
        let got = api
            .wait_get(&path, Duration::from_secs(90), |d| {
                d["points"]
                    .as_array()
                    .is_some_and(|p| p.len() >= *n as usize)
            })
            .await;
        let minutes: Vec<u32> = got["points"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| ((p["time"].as_f64().unwrap() - (t0 / 60.0).floor() * 60.0) / 60.0) as u32)
            .collect();
        out.insert(host.clone(), minutes);
    }
    out
}

/// The fencing test of the Scale-out issue: process B is paused (SIGSTOP) past its
/// session timeout; A takes its partitions over and makes progress; B resumes while the
/// broker is unreachable (paused too), so it cannot know it lost them, and its no-data
/// checks (its devices look silent to it) try to write under its old epoch: refused by
/// the database, it steps back. Nothing moves backwards: no false no-data notification,
/// every payload answered 202 stored once, each device's alert notifications in order,
/// each once. The consumer groups use the classic protocol (`squall up`'s default).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_process_paused_past_its_session_has_its_late_writes_refused_and_steps_back() {
    paused_past_its_session("classic").await;
}

/// The same with the consumer group protocol of KIP-848 (`kafka.group_protocol =
/// "consumer"`): the broker fences the paused member and hands its partitions to the other
/// at its next heartbeat.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_the_consumer_protocol_a_paused_process_has_its_late_writes_refused_too() {
    paused_past_its_session("consumer").await;
}

async fn paused_past_its_session(group_protocol: &str) {
    let broker = Broker::start(2);
    let db = postgres_database().await;
    let (receiver, url) = Receiver::start().await;
    // Kept (with each process's log) when SQUALL_TEST_KEEP_LOGS is set.
    let keep = std::env::var_os("SQUALL_TEST_KEEP_LOGS").is_some();
    let dir = |name: &str| {
        tempfile::Builder::new()
            .prefix(name)
            .disable_cleanup(keep)
            .tempdir()
            .unwrap()
    };
    let (dir_a, dir_b) = (dir("squall-a-"), dir("squall-b-"));
    let (metrics_a, metrics_b) = (free_addr(), free_addr());
    let env = [
        ("SQUALL__KAFKA__BROKERS", broker.brokers.as_str()),
        ("SQUALL__DB__URL", db.as_str()),
        ("SQUALL__ALERTING__TICK_INTERVAL_MS", "200"),
        ("SQUALL__KAFKA__GROUP_PROTOCOL", group_protocol),
        ("RUST_LOG", "warn,squall_connectors=info,squall_pipeline::threshold=info,squall_pipeline::ownership=info"),
    ];
    let a = Up::start_with(
        dir_a.path(),
        "squall.",
        &env,
        &["--metrics-addr", &metrics_a],
    );
    let b = Up::start_with(
        dir_b.path(),
        "squall.",
        &env,
        &["--metrics-addr", &metrics_b],
    );
    let api = Arc::new(Api::new(&a));
    api.post(
        "/accounts",
        json!({"name": "acme", "device_quota": 40, "active": true}),
    )
    .await;
    // Sixteen agents with keys of their own: payloads are keyed by agent key, so they
    // spread over both partitions (all on one: a chance of 1 in 32,768).
    let hosts: Vec<(String, String)> = (0..16)
        .map(|i| {
            (
                format!("web-{i:02}.example.com"),
                format!("{i:02}{}", &KEY[2..]),
            )
        })
        .collect();
    for (_, key) in &hosts {
        api.post("/accounts/acme/agent-keys", json!({ "agentKey": key }))
            .await;
    }
    api.post(
        "/alerts/configs",
        config(
            &url,
            json!({"wait": {"seconds": 0, "enabled": false},
                   "repeat": {"seconds": 600, "enabled": false},
                   "recipients": [{"type": "webhook", "url": format!("{url}/hook"), "grouping": {"group_by": []}}]}),
        ),
    )
    .await;
    api.post(
        "/alerts/configs",
        config(
            &url,
            json!({"name": "Silent", "kind": "no_data", "metric": null, "comparison": null,
                   "value": null, "wait": {"seconds": 20, "enabled": true},
                   "repeat": {"seconds": 600, "enabled": false},
                   "recipients": [{"type": "webhook", "url": format!("{url}/nodata"), "grouping": {"group_by": []}}]}),
        ),
    )
    .await;
    let t0 = t0() - 86_400.0;
    let fleet = Fleet::start(api.clone(), &hosts, t0);

    // Both processes evaluate payloads: each owns devices.
    let evaluated = "squall_stage_latency_seconds_count{stage=\"evaluated\"}";
    for addr in [&metrics_a, &metrics_b] {
        let mut both = false;
        for _ in 0..600 {
            if sample(addr, evaluated).await > 0.0 {
                both = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(both, "{addr} evaluated nothing: it owns no partition");
    }

    // B pauses. A takes its partitions over (after the 6 s session timeout) and stores
    // what B's agents send meanwhile.
    signal(b.child.id(), "STOP");
    let paused = tokio::time::Instant::now();
    tokio::time::sleep(Duration::from_secs(8)).await;
    let ids = device_ids(&api, hosts.len()).await;
    let so_far = fleet.accepted();
    stored(&api, &ids, &so_far, t0).await;
    // B's devices look silent to B after 20 s (the no-data wait: longer than any stall of
    // the pipeline here, such as a registration waiting up to 10 s for a row lock B held
    // when it was paused, so no device looks silent to A).
    let left = Duration::from_secs(24).saturating_sub(paused.elapsed());
    tokio::time::sleep(left).await;

    // B resumes while the broker is paused: it cannot learn that it lost its partitions.
    // Its no-data checks fire for its devices and try to commit under its old epoch.
    signal(broker.child.id(), "STOP");
    signal(b.child.id(), "CONT");
    let fenced = "squall_alert_state_fenced_total";
    let mut refused = false;
    for _ in 0..300 {
        if sample(&metrics_b, fenced).await > 0.0 {
            refused = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    signal(broker.child.id(), "CONT");
    assert!(refused, "B's late write was refused by the database");

    // Everyone goes on; then the fleet stops and the cluster catches up.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let accepted = fleet.stop().await;
    // From now on the devices are silent for real: no-data may fire 20 s after this.
    let silent_from = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let minutes = stored(&api, &ids, &accepted, t0).await;
    for (host, n) in &accepted {
        let got = &minutes[host];
        let mut unique = got.clone();
        unique.dedup();
        assert_eq!(&unique, got, "{host}: each minute once");
        assert!(
            (0..*n).all(|i| got.contains(&i)),
            "{host}: every payload answered 202 stored ({n}): {got:?}"
        );
    }
    // Each device's alert notifications: fired at every fifth payload, cleared at the
    // next fifth, in order, each once.
    let expected = |n: u32| (1..).map(|k| 5 * k).take_while(|k| *k < n).count();
    let want: usize = accepted.values().map(|n| expected(*n)).sum();
    receiver.wait("/hook", want, Duration::from_secs(90)).await;
    tokio::time::sleep(Duration::from_secs(2)).await; // nothing more arrives
    let hook = receiver.on("/hook");
    let mut keys: HashMap<&str, usize> = HashMap::new();
    for r in &hook {
        *keys.entry(r.key.as_str()).or_default() += 1;
    }
    assert_eq!(keys.len(), want, "one notification per transition");
    // A repeat (the same Idempotency-Key twice) is the at-least-once window: a sender that
    // got the receiver's answer but was paused (or killed) before recording it; its claim
    // ran out and the new owner sent it again. What must never happen is the paused
    // process sending an id after another process already did. (`X-Squall-Sender` is
    // HOST:PID:START.)
    let pid_of = |sender: &str| sender.split(':').nth(1).unwrap_or_default().to_string();
    let b_pid = b.child.id().to_string();
    for (key, n) in keys.iter().filter(|(_, n)| **n > 1) {
        let senders: Vec<String> = hook
            .iter()
            .filter(|r| r.key == *key)
            .map(|r| pid_of(&r.sender))
            .collect();
        eprintln!("repeat: {key} received {n} times, from processes {senders:?}");
        let first_other = senders.iter().position(|p| *p != b_pid);
        let late_b = senders
            .iter()
            .enumerate()
            .any(|(i, p)| *p == b_pid && first_other.is_some_and(|o| o < i));
        assert!(
            !late_b,
            "{key}: the paused process sent it after another had: {senders:?}"
        );
    }
    // Each id once (its first arrival): a repeat above is the same notification again.
    let mut seen_ids = std::collections::HashSet::new();
    let firsts: Vec<_> = hook
        .iter()
        .filter(|r| seen_ids.insert(r.key.as_str()))
        .collect();
    for (host, _) in &hosts {
        let statuses: Vec<&str> = firsts
            .iter()
            .filter(|r| {
                r.body["alerts"][0]["labels"]["device"]
                    .as_str()
                    .is_some_and(|d| d == host)
            })
            .map(|r| r.body["status"].as_str().unwrap())
            .collect();
        let alternating = statuses
            .iter()
            .enumerate()
            .all(|(i, s)| *s == if i % 2 == 0 { "firing" } else { "resolved" });
        assert!(alternating, "{host}: {statuses:?}");
    }
    // No device was silent while the fleet posted, whoever owned it: a no-data alert
    // fired before the fleet stopped would be a false one. (The id carries the time it
    // fired, in ms: `a<config>-d<device>-fire-<ms>-...`.)
    let fired_at = |id: &str| -> f64 {
        id.split('-')
            .nth(3)
            .and_then(|ms| ms.parse::<f64>().ok())
            .unwrap()
            / 1000.0
    };
    for r in receiver.on("/nodata") {
        assert!(
            fired_at(&r.key) >= silent_from + 19.0,
            "a false no-data alert, fired at {} while the fleet posted (it stopped at {silent_from}): {:?}",
            fired_at(&r.key),
            r.body
        );
    }
    let open = api.get("/alerts/triggered").await;
    for a in open.as_array().unwrap() {
        if a["metric"].is_null() {
            assert!(
                a["fired_at"].as_f64().unwrap() >= silent_from + 19.0,
                "a false no-data alert in the table: {a}"
            );
        }
    }
    a.stop();
    b.stop();
}

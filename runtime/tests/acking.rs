//! Guaranteed processing through whole topologies: replay until every message is acked,
//! fail reasons, timeouts on virtual time (stuck vs merely slow bolts), multi-anchoring,
//! `max_spout_pending`, acking off, shutdown.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use squall_connectors::demo::{Chaos, ChaosConfig};
use squall_connectors::demo::{GeneratorConfig, GeneratorSpout};
use squall_runtime::testing::CompleteTopology;
use squall_runtime::RunningTopology;
use squall_topology::*;
use tokio::time::Instant;

/// What a recording spout saw.
#[derive(Default)]
struct Seen {
    acks: Vec<(u64, Duration)>,
    fails: Vec<(u64, FailReason, Duration)>,
    max_in_flight: usize,
}

/// Emits ids 0..n tracked, once each (no replay), recording outcomes with virtual time.
struct Recorder {
    next: u64,
    n: u64,
    start: Instant,
    seen: Arc<Mutex<Seen>>,
}

impl Recorder {
    fn new(n: u64, seen: Arc<Mutex<Seen>>) -> Self {
        Recorder {
            next: 0,
            n,
            start: Instant::now(),
            seen,
        }
    }
}

impl Spout for Recorder {
    fn declare_outputs(&self, d: &mut OutputDeclarer) {
        d.declare(Fields::new(["n"]));
    }
    fn next_tuple(&mut self, out: &mut SpoutOutputCollector) -> SpoutStatus {
        if self.next == self.n {
            return SpoutStatus::Exhausted;
        }
        let mut seen = self.seen.lock().unwrap();
        let in_flight = self.next as usize - seen.acks.len() - seen.fails.len();
        seen.max_in_flight = seen.max_in_flight.max(in_flight + 1);
        out.emit_tracked(values![self.next], MessageId(self.next));
        self.next += 1;
        SpoutStatus::Active
    }
    fn ack(&mut self, id: MessageId) {
        self.seen
            .lock()
            .unwrap()
            .acks
            .push((id.0, self.start.elapsed()));
    }
    fn fail(&mut self, id: MessageId, reason: &FailReason) {
        self.seen
            .lock()
            .unwrap()
            .fails
            .push((id.0, reason.clone(), self.start.elapsed()));
    }
}

/// Records every `n` it receives.
struct Sink(Arc<Mutex<Vec<i64>>>);
impl Bolt for Sink {
    fn execute(&mut self, t: Tuple, _o: &mut OutputCollector) -> Result<(), BoltError> {
        self.0
            .lock()
            .unwrap()
            .push(t.get(0).and_then(Value::as_int).unwrap());
        Ok(())
    }
}

fn chaos(fail_every: u64, panic_every: u64, delay_ms: u64) -> Chaos {
    Chaos::new(ChaosConfig {
        fields: vec!["n".into()],
        fail_every,
        panic_every,
        delay_ms,
        delay_every: 1,
    })
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replaying_spout_gets_every_message_through_failing_and_panicking_bolts() {
    const N: u64 = 300;
    let recorder = metrics_util::debugging::DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let received = Arc::new(Mutex::new(Vec::new()));
    let mut b = TopologyBuilder::new("replay");
    b.config().ackers = 2; // trees spread over two ackers by root
    b.set_spout("gen", 2, || {
        GeneratorSpout::new(GeneratorConfig { count: Some(N) })
    });
    b.set_bolt("flaky", 2, || chaos(3, 0, 0))
        .shuffle_grouping("gen");
    b.set_bolt("fragile", 2, || chaos(0, 7, 0))
        .fields_grouping("flaky", ["n"]);
    let r = received.clone();
    b.set_bolt("sink", 1, move || Sink(r.clone()))
        .shuffle_grouping("fragile");
    let topology = b.build().unwrap();
    let running =
        metrics::with_local_recorder(&recorder, || RunningTopology::start(topology)).unwrap();
    let report = running.join().await;

    let gen = report.component("gen").unwrap();
    assert_eq!(gen.acked, N, "every message is eventually acked");
    assert!(gen.failed > 0, "some attempts failed and were retried");
    let received = received.lock().unwrap();
    let distinct: BTreeSet<i64> = received.iter().copied().collect();
    assert_eq!(
        distinct,
        (0..N as i64).collect(),
        "the sink saw each logical message"
    );
    // A message reaches the sink only on a successful attempt, and each message has
    // exactly one successful attempt (its tree acked once).
    assert_eq!(received.len() as u64, N);
    assert_eq!(
        report.component("fragile").unwrap().panics,
        report.component("fragile").unwrap().failed
    );

    // Retries are visible in metrics, by reason.
    let mut failed_by_reason: BTreeMap<(String, String), u64> = BTreeMap::new();
    for (key, _, _, value) in snapshotter.snapshot().into_vec() {
        let key = key.key();
        if key.name() != "squall_failed_total" {
            continue;
        }
        let label = |n: &str| {
            key.labels()
                .find(|l| l.key() == n)
                .map(|l| l.value().to_string())
                .unwrap()
        };
        if let metrics_util::debugging::DebugValue::Counter(v) = value {
            *failed_by_reason
                .entry((label("component"), label("reason")))
                .or_default() += v;
        }
    }
    let spout_failed_failed = failed_by_reason
        .get(&("gen".into(), "failed".into()))
        .copied()
        .unwrap_or(0);
    let spout_failed_panic = failed_by_reason
        .get(&("gen".into(), "panic".into()))
        .copied()
        .unwrap_or(0);
    assert!(
        spout_failed_failed > 0 && spout_failed_panic > 0,
        "{failed_by_reason:?}"
    );
    assert_eq!(spout_failed_failed + spout_failed_panic, gen.failed);
}

#[tokio::test(start_paused = true)]
async fn fail_reasons_reach_the_spout() {
    struct Judge;
    impl Bolt for Judge {
        fn declare_outputs(&self, d: &mut OutputDeclarer) {
            d.declare(Fields::new(["n"]));
        }
        fn execute(&mut self, t: Tuple, out: &mut OutputCollector) -> Result<(), BoltError> {
            match t.get(0).and_then(Value::as_int).unwrap() {
                1 => Err(BoltError::msg("n is one")),
                2 => panic!("n is two"),
                3 => {
                    out.hold(); // and never ack: stuck
                    Ok(())
                }
                n => {
                    out.emit(values![n]);
                    Ok(())
                }
            }
        }
    }
    let seen = Arc::new(Mutex::new(Seen::default()));
    let mut b = TopologyBuilder::new("reasons");
    b.config().message_timeout_ms = 5_000;
    let s = seen.clone();
    b.set_spout("src", 1, move || Recorder::new(5, s.clone()));
    b.set_bolt("judge", 1, || Judge).shuffle_grouping("src");
    b.set_bolt("sink", 1, || Sink(Arc::default()))
        .shuffle_grouping("judge");
    let report = RunningTopology::start(b.build().unwrap())
        .unwrap()
        .join()
        .await;

    let seen = seen.lock().unwrap();
    let mut acked: Vec<u64> = seen.acks.iter().map(|a| a.0).collect();
    acked.sort();
    assert_eq!(acked, [0, 4]);
    let fails: BTreeMap<u64, (FailReason, Duration)> = seen
        .fails
        .iter()
        .map(|(id, r, t)| (*id, (r.clone(), *t)))
        .collect();
    assert_eq!(
        fails[&1].0,
        FailReason::Failed {
            component: "judge".into(),
            error: "n is one".into(),
            transient: false,
        }
    );
    assert_eq!(
        fails[&2].0,
        FailReason::Panic {
            component: "judge".into(),
            message: "n is two".into()
        }
    );
    assert_eq!(fails[&3].0, FailReason::Timeout);
    assert_eq!(
        fails[&3].1,
        Duration::from_millis(5_000),
        "timed out exactly after message_timeout_ms"
    );
    assert_eq!(report.component("src").unwrap().failed, 3);
    assert_eq!(report.component("judge").unwrap().failed, 3);
}

#[tokio::test(start_paused = true)]
async fn a_stuck_bolt_times_out_its_tuples() {
    struct Stuck;
    impl Bolt for Stuck {
        fn execute(&mut self, _t: Tuple, out: &mut OutputCollector) -> Result<(), BoltError> {
            out.hold();
            Ok(())
        }
    }
    let seen = Arc::new(Mutex::new(Seen::default()));
    let mut b = TopologyBuilder::new("stuck");
    b.config().message_timeout_ms = 1_000;
    let s = seen.clone();
    b.set_spout("src", 1, move || Recorder::new(50, s.clone()));
    b.set_bolt("stuck", 2, || Stuck).shuffle_grouping("src");
    let report = RunningTopology::start(b.build().unwrap())
        .unwrap()
        .join()
        .await;
    let seen = seen.lock().unwrap();
    assert!(seen.acks.is_empty());
    assert_eq!(seen.fails.len(), 50);
    for (_, reason, at) in &seen.fails {
        assert_eq!(reason, &FailReason::Timeout);
        assert_eq!(*at, Duration::from_millis(1_000));
    }
    assert_eq!(report.component("stuck").unwrap().failed, 50);
}

#[tokio::test(start_paused = true)]
async fn a_slow_bolt_under_backpressure_causes_no_timeouts() {
    // 200 tuples through a bolt that takes 100 ms (virtual) each, behind a queue of 16:
    // tuples wait up to ~1.7 s in queues, longer than the 1 s timeout, yet none times out.
    let seen = Arc::new(Mutex::new(Seen::default()));
    let mut b = TopologyBuilder::new("slow");
    b.config().message_timeout_ms = 1_000;
    b.config().queue_capacity = 16;
    b.config().batch_size = 4;
    let s = seen.clone();
    b.set_spout("src", 1, move || Recorder::new(200, s.clone()));
    b.set_bolt("slow", 1, || chaos(0, 0, 100))
        .shuffle_grouping("src");
    b.set_bolt("sink", 1, || Sink(Arc::default()))
        .shuffle_grouping("slow");
    let start = Instant::now();
    let report = RunningTopology::start(b.build().unwrap())
        .unwrap()
        .join()
        .await;
    let seen = seen.lock().unwrap();
    assert!(
        seen.fails.is_empty(),
        "no timeouts: {:?}",
        &seen.fails[..seen.fails.len().min(3)]
    );
    assert_eq!(seen.acks.len(), 200);
    assert!(
        start.elapsed() >= Duration::from_secs(20),
        "the bolt really was slow"
    );
    let slow = report.component("slow").unwrap();
    assert_eq!(slow.max_queue_depth, 16, "backpressure filled the queue");
    // Storm's clock (emit -> ack) would have timed these out.
    let p99 = report.component("src").unwrap().latency_p99.unwrap();
    assert!(
        p99 > Duration::from_millis(1_000),
        "complete latency p99 {p99:?}"
    );
}

/// Holds inputs and, for every two, emits one tuple anchored to both, then acks both.
struct Pairer {
    waiting: Option<Tuple>,
}
impl Bolt for Pairer {
    fn declare_outputs(&self, d: &mut OutputDeclarer) {
        d.declare(Fields::new(["a", "b"]));
    }
    fn execute(&mut self, t: Tuple, out: &mut OutputCollector) -> Result<(), BoltError> {
        out.hold();
        match self.waiting.take() {
            None => self.waiting = Some(t),
            Some(first) => {
                let (a, b) = (first.get(0).unwrap().clone(), t.get(0).unwrap().clone());
                out.emit_anchored(DEFAULT_STREAM, &[&first, &t], values![a, b]);
                out.ack(&first);
                out.ack(&t);
            }
        }
        Ok(())
    }
}

struct FailAll;
impl Bolt for FailAll {
    fn execute(&mut self, _t: Tuple, _o: &mut OutputCollector) -> Result<(), BoltError> {
        Err(BoltError::msg("no"))
    }
}

#[tokio::test(start_paused = true)]
async fn multi_anchored_children_complete_or_fail_both_trees() {
    for fail in [false, true] {
        let seen = Arc::new(Mutex::new(Seen::default()));
        let mut b = TopologyBuilder::new("pairs");
        let s = seen.clone();
        b.set_spout("src", 1, move || Recorder::new(20, s.clone()));
        b.set_bolt("pair", 1, || Pairer { waiting: None })
            .global_grouping("src");
        if fail {
            b.set_bolt("sink", 1, || FailAll).shuffle_grouping("pair");
        } else {
            b.set_bolt("sink", 1, || Sink(Arc::default()))
                .shuffle_grouping("pair");
        }
        RunningTopology::start(b.build().unwrap())
            .unwrap()
            .join()
            .await;
        let seen = seen.lock().unwrap();
        if fail {
            assert_eq!(
                seen.fails.len(),
                20,
                "a failed child fails both parents' trees"
            );
            assert!(seen.acks.is_empty());
            assert!(seen.fails.iter().all(
                |(_, r, _)| matches!(r, FailReason::Failed { component, .. } if component == "sink")
            ));
        } else {
            assert_eq!(seen.acks.len(), 20);
            assert!(seen.fails.is_empty());
        }
    }
}

#[tokio::test(start_paused = true)]
async fn max_spout_pending_bounds_trees_in_flight() {
    let seen = Arc::new(Mutex::new(Seen::default()));
    let mut b = TopologyBuilder::new("pending");
    b.config().max_spout_pending = 7;
    let s = seen.clone();
    b.set_spout("src", 1, move || Recorder::new(100, s.clone()));
    b.set_bolt("slow", 1, || chaos(0, 0, 10))
        .shuffle_grouping("src");
    RunningTopology::start(b.build().unwrap())
        .unwrap()
        .join()
        .await;
    let seen = seen.lock().unwrap();
    assert_eq!(seen.acks.len(), 100);
    assert_eq!(seen.max_in_flight, 7);
}

#[tokio::test]
async fn acking_off_acks_at_emit() {
    struct Never;
    impl Bolt for Never {
        fn execute(&mut self, _t: Tuple, out: &mut OutputCollector) -> Result<(), BoltError> {
            out.hold(); // would time out with acking on
            Ok(())
        }
    }
    let seen = Arc::new(Mutex::new(Seen::default()));
    let mut b = TopologyBuilder::new("off");
    b.config().acking = false;
    let s = seen.clone();
    b.set_spout("src", 1, move || Recorder::new(30, s.clone()));
    b.set_bolt("never", 1, || Never).shuffle_grouping("src");
    RunningTopology::start(b.build().unwrap())
        .unwrap()
        .join()
        .await;
    assert_eq!(seen.lock().unwrap().acks.len(), 30);
}

#[tokio::test(start_paused = true)]
async fn shutdown_fails_trees_still_in_flight_with_reason_shutdown() {
    struct Hold;
    impl Bolt for Hold {
        fn execute(&mut self, _t: Tuple, out: &mut OutputCollector) -> Result<(), BoltError> {
            out.hold();
            Ok(())
        }
    }
    let seen = Arc::new(Mutex::new(Seen::default()));
    let mut b = TopologyBuilder::new("shutdown");
    b.config().message_timeout_ms = 3_600_000;
    b.config().shutdown_timeout_ms = 2_000;
    let s = seen.clone();
    b.set_spout("src", 1, move || Recorder::new(10, s.clone()));
    b.set_bolt("hold", 1, || Hold).shuffle_grouping("src");
    let done = CompleteTopology::new(b.build().unwrap())
        .run_for(Duration::from_secs(1))
        .run()
        .await
        .unwrap();
    let seen = seen.lock().unwrap();
    assert_eq!(seen.fails.len(), 10);
    for (_, reason, at) in &seen.fails {
        assert_eq!(reason, &FailReason::Shutdown);
        assert_eq!(
            *at,
            Duration::from_secs(3),
            "after 1 s of running and the 2 s drain"
        );
    }
    assert_eq!(done.report().component("src").unwrap().failed, 10);
}

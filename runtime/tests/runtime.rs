//! The runtime driven through whole topologies: groupings as routed at run time,
//! backpressure, ticks on virtual time, panic isolation, errors, shutdown.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use squall_runtime::testing::CompleteTopology;
use squall_runtime::{RunOptions, RunningTopology};
use squall_topology::*;

/// Emits `[task, <input values...>]`: which task received each tuple.
struct WhoGotIt {
    task: u32,
    fields: Vec<&'static str>,
}

impl WhoGotIt {
    fn new(fields: &[&'static str]) -> Self {
        WhoGotIt {
            task: 0,
            fields: fields.to_vec(),
        }
    }
}

impl Bolt for WhoGotIt {
    fn declare_outputs(&self, d: &mut OutputDeclarer) {
        let mut f = vec!["task"];
        f.extend(&self.fields);
        d.declare(Fields::new(f));
    }
    fn prepare(&mut self, ctx: &TopologyContext) -> Result<(), ComponentError> {
        self.task = ctx.task_id().0;
        Ok(())
    }
    fn execute(&mut self, t: Tuple, out: &mut OutputCollector) -> Result<(), BoltError> {
        let mut v = values![self.task];
        v.extend(t.into_values());
        out.emit(v);
        Ok(())
    }
}

struct Silent;
impl Spout for Silent {
    fn declare_outputs(&self, d: &mut OutputDeclarer) {
        d.declare(Fields::new(["key", "n"]));
    }
    fn next_tuple(&mut self, _out: &mut SpoutOutputCollector) -> SpoutStatus {
        SpoutStatus::Exhausted
    }
}

fn keyed_input(n: usize) -> Vec<Values> {
    (0..n).map(|i| values![format!("k{}", i % 17), i]).collect()
}

/// Received-by map: task -> list of `n`.
fn receivers(done: &squall_runtime::testing::CompletedTopology, bolt: &str) -> Vec<(u32, Values)> {
    done.values(bolt, DEFAULT_STREAM)
        .into_iter()
        .map(|v| {
            (
                v[0].as_int().unwrap() as u32,
                v[1..].iter().cloned().collect(),
            )
        })
        .collect()
}

async fn run_grouping(grouping: Grouping, n: usize) -> Vec<(u32, Values)> {
    let mut b = TopologyBuilder::new("grouping");
    b.set_spout("src", 2, || Silent);
    b.set_bolt("sink", 4, || WhoGotIt::new(&["key", "n"]))
        .grouping("src", DEFAULT_STREAM, grouping);
    let done = CompleteTopology::new(b.build().unwrap())
        .mock_spout("src", keyed_input(n))
        .run()
        .await
        .unwrap();
    receivers(&done, "sink")
}

#[tokio::test]
async fn fields_grouping_sends_equal_keys_to_one_task_and_spreads_keys() {
    let got = run_grouping(Grouping::Fields(vec!["key".into()]), 340).await;
    assert_eq!(got.len(), 340, "every tuple arrives exactly once");
    let mut task_of: HashMap<String, BTreeSet<u32>> = HashMap::new();
    for (task, v) in &got {
        task_of.entry(v[0].to_string()).or_default().insert(*task);
    }
    assert!(
        task_of.values().all(|tasks| tasks.len() == 1),
        "{task_of:?}"
    );
    let used: BTreeSet<u32> = task_of.values().flatten().copied().collect();
    assert!(
        used.len() >= 3,
        "17 keys over 4 tasks use several tasks: {used:?}"
    );
}

#[tokio::test]
async fn shuffle_grouping_balances_tasks() {
    let got = run_grouping(Grouping::Shuffle, 400).await;
    let mut per_task: BTreeMap<u32, usize> = BTreeMap::new();
    for (task, _) in &got {
        *per_task.entry(*task).or_default() += 1;
    }
    assert_eq!(per_task.len(), 4);
    assert!(per_task.values().all(|&c| c == 100), "{per_task:?}");
}

#[tokio::test]
async fn all_grouping_reaches_every_task() {
    let got = run_grouping(Grouping::All, 50).await;
    assert_eq!(got.len(), 200);
    let mut per_n: HashMap<i64, BTreeSet<u32>> = HashMap::new();
    for (task, v) in &got {
        per_n
            .entry(v[1].as_int().unwrap())
            .or_default()
            .insert(*task);
    }
    assert_eq!(per_n.len(), 50);
    assert!(per_n.values().all(|t| t.len() == 4));
}

#[tokio::test]
async fn global_grouping_reaches_one_task() {
    let got = run_grouping(Grouping::Global, 60).await;
    let tasks: BTreeSet<u32> = got.iter().map(|(t, _)| *t).collect();
    assert_eq!(got.len(), 60);
    assert_eq!(tasks.len(), 1, "{tasks:?}");
}

#[tokio::test]
async fn partial_key_grouping_uses_at_most_two_tasks_per_key() {
    let got = run_grouping(Grouping::PartialKey(vec!["key".into()]), 340).await;
    assert_eq!(got.len(), 340);
    let mut task_of: HashMap<String, BTreeSet<u32>> = HashMap::new();
    for (task, v) in &got {
        task_of.entry(v[0].to_string()).or_default().insert(*task);
    }
    assert!(task_of.values().all(|t| t.len() <= 2), "{task_of:?}");
    assert!(task_of.values().any(|t| t.len() == 2), "hot keys get split");
}

#[tokio::test]
async fn local_or_shuffle_and_none_deliver_everything_evenly() {
    for g in [Grouping::LocalOrShuffle, Grouping::None] {
        let got = run_grouping(g, 80).await;
        assert_eq!(got.len(), 80);
        let tasks: BTreeSet<u32> = got.iter().map(|(t, _)| *t).collect();
        assert_eq!(tasks.len(), 4);
    }
}

/// Routes each number to the task whose id it names, over a direct stream.
struct Director;
impl Bolt for Director {
    fn declare_outputs(&self, d: &mut OutputDeclarer) {
        d.declare_direct_stream("to", Fields::new(["key", "n"]));
    }
    fn execute(&mut self, t: Tuple, out: &mut OutputCollector) -> Result<(), BoltError> {
        let n = t.get_by_field("n").and_then(Value::as_int).unwrap();
        // Sink tasks are 4..=6 (spout 1, director 2..=3).
        let task = TaskId(4 + (n % 3) as u32);
        out.emit_direct(task, "to", t.into_values());
        Ok(())
    }
}

#[tokio::test]
async fn direct_grouping_reaches_the_chosen_task() {
    let mut b = TopologyBuilder::new("direct");
    b.set_spout("src", 1, || Silent);
    b.set_bolt("director", 2, || Director)
        .shuffle_grouping("src");
    b.set_bolt("sink", 3, || WhoGotIt::new(&["key", "n"]))
        .direct_grouping("director", "to");
    let done = CompleteTopology::new(b.build().unwrap())
        .mock_spout("src", keyed_input(30))
        .run()
        .await
        .unwrap();
    let got = receivers(&done, "sink");
    assert_eq!(got.len(), 30);
    for (task, v) in got {
        assert_eq!(task as i64, 4 + v[1].as_int().unwrap() % 3);
    }
}

#[tokio::test]
async fn emit_direct_to_a_task_that_does_not_subscribe_fails_the_input() {
    struct Wrong;
    impl Bolt for Wrong {
        fn declare_outputs(&self, d: &mut OutputDeclarer) {
            d.declare_direct_stream("to", Fields::new(["x"]));
        }
        fn execute(&mut self, _t: Tuple, out: &mut OutputCollector) -> Result<(), BoltError> {
            out.emit_direct(TaskId(999), "to", values![1]);
            Ok(())
        }
    }
    let mut b = TopologyBuilder::new("direct-wrong");
    b.set_spout("src", 1, || Silent);
    b.set_bolt("wrong", 1, || Wrong).shuffle_grouping("src");
    b.set_bolt("sink", 1, || WhoGotIt::new(&["x"]))
        .direct_grouping("wrong", "to");
    let done = CompleteTopology::new(b.build().unwrap())
        .mock_spout("src", keyed_input(3))
        .run()
        .await
        .unwrap();
    assert_eq!(done.report().component("wrong").unwrap().failed, 3);
    assert!(done.values("sink", DEFAULT_STREAM).is_empty());
}

/// A spout that counts what it emitted, endless until `limit`.
struct Counting {
    limit: u64,
    emitted: Arc<AtomicU64>,
    consumed: Arc<AtomicU64>,
    max_gap: Arc<AtomicU64>,
}
impl Spout for Counting {
    fn declare_outputs(&self, d: &mut OutputDeclarer) {
        d.declare(Fields::new(["n"]));
    }
    fn next_tuple(&mut self, out: &mut SpoutOutputCollector) -> SpoutStatus {
        let n = self.emitted.load(Ordering::SeqCst);
        if n == self.limit {
            return SpoutStatus::Exhausted;
        }
        // How far ahead of the consumer the spout is when it is asked for more.
        let gap = n - self.consumed.load(Ordering::SeqCst);
        self.max_gap.fetch_max(gap, Ordering::SeqCst);
        out.emit(values![n]);
        self.emitted.fetch_add(1, Ordering::SeqCst);
        SpoutStatus::Active
    }
}

/// A slow bolt: burns CPU per tuple and records what it saw, in order.
struct Slow {
    consumed: Arc<AtomicU64>,
    seen: Arc<std::sync::Mutex<Vec<i64>>>,
}
impl Bolt for Slow {
    fn execute(&mut self, t: Tuple, _out: &mut OutputCollector) -> Result<(), BoltError> {
        let mut x = 0u64;
        for i in 0..20_000u64 {
            x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(i));
        }
        std::hint::black_box(x);
        self.seen
            .lock()
            .unwrap()
            .push(t.get(0).and_then(Value::as_int).unwrap());
        self.consumed.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
}

async fn backpressure_case() {
    const N: u64 = 5_000;
    const CAPACITY: usize = 64;
    const BATCH: usize = 8;
    let emitted = Arc::new(AtomicU64::new(0));
    let consumed = Arc::new(AtomicU64::new(0));
    let max_gap = Arc::new(AtomicU64::new(0));
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let mut b = TopologyBuilder::new("backpressure");
    b.config().queue_capacity = CAPACITY;
    b.config().batch_size = BATCH;
    let (e, c, g) = (emitted.clone(), consumed.clone(), max_gap.clone());
    b.set_spout("fast", 1, move || Counting {
        limit: N,
        emitted: e.clone(),
        consumed: c.clone(),
        max_gap: g.clone(),
    });
    let (c, s) = (consumed.clone(), seen.clone());
    b.set_bolt("slow", 1, move || Slow {
        consumed: c.clone(),
        seen: s.clone(),
    })
    .shuffle_grouping("fast");
    let report = RunningTopology::start(b.build().unwrap())
        .unwrap()
        .join()
        .await;

    let slow = report.component("slow").unwrap();
    assert_eq!(slow.executed, N, "every tuple arrives");
    assert_eq!(
        *seen.lock().unwrap(),
        (0..N as i64).collect::<Vec<_>>(),
        "in order, none lost"
    );
    assert!(
        slow.max_queue_depth <= CAPACITY,
        "queue depth {} > capacity",
        slow.max_queue_depth
    );
    assert!(
        slow.max_queue_depth > CAPACITY / 2,
        "the fast spout really filled the queue ({})",
        slow.max_queue_depth
    );
    // The spout is asked for more only when there is room: it never runs further ahead
    // of the consumer than the queue plus the batch it holds and the one in execution.
    let gap = max_gap.load(Ordering::SeqCst);
    assert!(
        gap <= (CAPACITY + 2 * BATCH) as u64,
        "spout ran {gap} tuples ahead"
    );
}

#[tokio::test(flavor = "current_thread")]
async fn slow_bolt_backpressures_fast_spout_on_one_thread() {
    backpressure_case().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_bolt_backpressures_fast_spout_across_threads() {
    backpressure_case().await;
}

struct TickCounter;
impl Bolt for TickCounter {
    fn declare_outputs(&self, d: &mut OutputDeclarer) {
        d.declare(Fields::new(["kind"]));
    }
    fn execute(&mut self, t: Tuple, out: &mut OutputCollector) -> Result<(), BoltError> {
        out.emit(values![if t.is_tick() { "tick" } else { "data" }]);
        Ok(())
    }
}

#[tokio::test(start_paused = true)]
async fn ticks_arrive_on_virtual_time() {
    let mut b = TopologyBuilder::new("ticks");
    b.set_spout("src", 1, || Silent);
    b.set_bolt("ticker", 1, || TickCounter)
        .shuffle_grouping("src")
        .tick_interval_ms(1_000);
    let start = tokio::time::Instant::now();
    let done = CompleteTopology::new(b.build().unwrap())
        .mock_spout("src", keyed_input(2))
        .run_for(Duration::from_millis(10_500))
        .run()
        .await
        .unwrap();
    let kinds = done.values("ticker", DEFAULT_STREAM);
    let ticks = kinds
        .iter()
        .filter(|v| v[0].as_str() == Some("tick"))
        .count();
    let data = kinds
        .iter()
        .filter(|v| v[0].as_str() == Some("data"))
        .count();
    assert_eq!(ticks, 10, "one tick per second over 10.5 virtual seconds");
    assert_eq!(data, 2);
    assert!(start.elapsed() >= Duration::from_millis(10_500));
}

struct PanicsOnMultiplesOf3;
impl Bolt for PanicsOnMultiplesOf3 {
    fn declare_outputs(&self, d: &mut OutputDeclarer) {
        d.declare(Fields::new(["n"]));
    }
    fn execute(&mut self, t: Tuple, out: &mut OutputCollector) -> Result<(), BoltError> {
        let n = t.get_by_field("n").and_then(Value::as_int).unwrap();
        if n % 3 == 0 {
            panic!("boom on {n}");
        }
        out.emit(values![n]);
        Ok(())
    }
}

#[tokio::test]
async fn a_panicking_bolt_fails_that_tuple_and_keeps_running() {
    let mut b = TopologyBuilder::new("panics");
    b.set_spout("src", 1, || Silent);
    b.set_bolt("fragile", 2, || PanicsOnMultiplesOf3)
        .shuffle_grouping("src");
    b.set_bolt("sink", 1, || WhoGotIt::new(&["n"]))
        .shuffle_grouping("fragile");
    let done = CompleteTopology::new(b.build().unwrap())
        .mock_spout("src", keyed_input(30))
        .run()
        .await
        .unwrap();
    let fragile = done.report().component("fragile").unwrap();
    assert_eq!(fragile.panics, 10);
    assert_eq!(fragile.failed, 10);
    assert_eq!(fragile.executed, 30);
    let mut ns: Vec<i64> = receivers(&done, "sink")
        .iter()
        .map(|(_, v)| v[0].as_int().unwrap())
        .collect();
    ns.sort();
    assert_eq!(ns, (0..30).filter(|n| n % 3 != 0).collect::<Vec<_>>());
}

#[tokio::test]
async fn bolt_errors_and_bad_emissions_fail_the_tuple_with_a_count() {
    struct Picky;
    impl Bolt for Picky {
        fn declare_outputs(&self, d: &mut OutputDeclarer) {
            d.declare(Fields::new(["n"]));
        }
        fn execute(&mut self, t: Tuple, out: &mut OutputCollector) -> Result<(), BoltError> {
            let n = t.get_by_field("n").and_then(Value::as_int).unwrap();
            match n % 4 {
                0 => Err(BoltError::msg(format!("{n} is divisible by 4"))),
                1 => {
                    out.emit_to("nope", values![n]);
                    Ok(())
                }
                2 => {
                    out.emit(values![n, "extra"]);
                    Ok(())
                }
                _ => {
                    out.emit(values![n]);
                    Ok(())
                }
            }
        }
    }
    let mut b = TopologyBuilder::new("errors");
    b.set_spout("src", 1, || Silent);
    b.set_bolt("picky", 1, || Picky).shuffle_grouping("src");
    let done = CompleteTopology::new(b.build().unwrap())
        .mock_spout("src", keyed_input(20))
        .run()
        .await
        .unwrap();
    let picky = done.report().component("picky").unwrap();
    assert_eq!(picky.failed, 15);
    assert_eq!(picky.panics, 0);
    assert_eq!(done.values("picky", DEFAULT_STREAM).len(), 5);
}

#[tokio::test]
async fn a_failing_prepare_stops_the_start_and_names_the_component() {
    struct Broken;
    impl Bolt for Broken {
        fn prepare(&mut self, _ctx: &TopologyContext) -> Result<(), ComponentError> {
            Err(ComponentError::msg("database unreachable"))
        }
        fn execute(&mut self, _t: Tuple, _o: &mut OutputCollector) -> Result<(), BoltError> {
            Ok(())
        }
    }
    let mut b = TopologyBuilder::new("broken");
    b.set_spout("src", 1, || Silent);
    b.set_bolt("db", 1, || Broken).shuffle_grouping("src");
    let err = RunningTopology::start(b.build().unwrap()).err().unwrap();
    assert_eq!(
        err.to_string(),
        "bolt \"db\" task 2 failed to start: database unreachable"
    );
}

/// Endless spout used to check shutdown.
struct Endless(u64);
impl Spout for Endless {
    fn declare_outputs(&self, d: &mut OutputDeclarer) {
        d.declare(Fields::new(["n"]));
    }
    fn next_tuple(&mut self, out: &mut SpoutOutputCollector) -> SpoutStatus {
        self.0 += 1;
        out.emit(values![self.0]);
        SpoutStatus::Active
    }
}

struct CountInto(Arc<AtomicUsize>, Option<(usize, Arc<tokio::sync::Notify>)>);
impl Bolt for CountInto {
    fn execute(&mut self, _t: Tuple, _o: &mut OutputCollector) -> Result<(), BoltError> {
        let n = self.0.fetch_add(1, Ordering::SeqCst) + 1;
        if let Some((at, notify)) = &self.1 {
            if n == *at {
                notify.notify_one();
            }
        }
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_drains_in_flight_tuples() {
    let received = Arc::new(AtomicUsize::new(0));
    let mut b = TopologyBuilder::new("drain");
    b.set_spout("src", 2, || Endless(0));
    b.set_bolt("mid", 2, || WhoGotIt::new(&["n"]))
        .shuffle_grouping("src");
    let r = received.clone();
    let flowing = Arc::new(tokio::sync::Notify::new());
    let f = flowing.clone();
    b.set_bolt("sink", 1, move || {
        CountInto(r.clone(), Some((1_000, f.clone())))
    })
    .shuffle_grouping("mid");
    let running = RunningTopology::start(b.build().unwrap()).unwrap();
    // Let tuples flow until the sink has seen 1000, then shut down mid-stream.
    flowing.notified().await;
    let report = running.shutdown_and_join().await;
    let emitted = report.component("src").unwrap().emitted;
    assert!(emitted > 0);
    assert_eq!(
        report.component("mid").unwrap().executed,
        emitted,
        "mid drained everything"
    );
    assert_eq!(
        received.load(Ordering::SeqCst) as u64,
        emitted,
        "the sink got every tuple"
    );
}

#[tokio::test]
async fn harness_rejects_unknown_mock() {
    let mut b = TopologyBuilder::new("m");
    b.set_spout("src", 1, || Silent);
    b.set_bolt("sink", 1, || CountInto(Arc::default(), None))
        .shuffle_grouping("src");
    let err = CompleteTopology::new(b.build().unwrap())
        .mock_spout("nope", [values![1]])
        .run()
        .await
        .err()
        .unwrap();
    assert_eq!(
        err.to_string(),
        "cannot mock spout \"nope\": no such spout in the topology"
    );
}

#[tokio::test]
async fn options_keep_the_topology_open_until_shutdown() {
    let mut b = TopologyBuilder::new("open");
    b.set_spout("src", 1, || Silent);
    let r = Arc::new(AtomicUsize::new(0));
    let r2 = r.clone();
    b.set_bolt("sink", 1, move || CountInto(r2.clone(), None))
        .shuffle_grouping("src");
    let running = RunningTopology::start_with(
        b.build().unwrap(),
        RunOptions {
            finish_when_spouts_exhausted: false,
            capture: None,
        },
    )
    .unwrap();
    for _ in 0..100 {
        tokio::task::yield_now().await;
    }
    assert_eq!(running.report().component("src").unwrap().emitted, 0);
    let report = running.shutdown_and_join().await;
    assert_eq!(report.component("sink").unwrap().executed, 0);
}

/// Emits `n` tuples per input in one call.
struct FanOut(usize);
impl Bolt for FanOut {
    fn declare_outputs(&self, d: &mut OutputDeclarer) {
        d.declare(Fields::new(["i"]));
    }
    fn execute(&mut self, _t: Tuple, out: &mut OutputCollector) -> Result<(), BoltError> {
        for i in 0..self.0 {
            out.emit(values![i as i64]);
        }
        Ok(())
    }
}

/// Counts what it receives.
struct Tally(Arc<AtomicUsize>);
impl Bolt for Tally {
    fn execute(&mut self, _t: Tuple, _o: &mut OutputCollector) -> Result<(), BoltError> {
        self.0.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_call_may_emit_more_tuples_than_a_queue_holds() {
    // Queues of 8 tuples; each input fans out to 50 in one execute call. A batch larger
    // than the whole queue used to wait forever for room it could never get.
    let mut b = TopologyBuilder::new("fan-out");
    b.config().queue_capacity = 8;
    b.config().batch_size = 4;
    b.set_spout("src", 1, || Silent);
    b.set_bolt("fan", 1, || FanOut(50)).shuffle_grouping("src");
    let got = Arc::new(AtomicUsize::new(0));
    let g = got.clone();
    b.set_bolt("sink", 1, move || Tally(g.clone()))
        .shuffle_grouping("fan");
    let done = tokio::time::timeout(
        Duration::from_secs(60),
        CompleteTopology::new(b.build().unwrap())
            .mock_spout("src", keyed_input(20))
            .run(),
    )
    .await
    .expect("the topology completes")
    .unwrap();
    assert_eq!(got.load(Ordering::Relaxed), 20 * 50);
    assert_eq!(done.values("fan", DEFAULT_STREAM).len(), 20 * 50);
}

/// Emits each input to the default stream and to an undeclared one, both reporting the
/// tasks they reached; pauses for an hour after each input and ends the pause from `wake`.
struct Reporting {
    routed: Arc<std::sync::Mutex<Vec<Vec<u32>>>>,
    waker: Option<BoltWaker>,
    woken: Arc<AtomicUsize>,
}

impl Bolt for Reporting {
    fn declare_outputs(&self, d: &mut OutputDeclarer) {
        d.declare(Fields::new(["key", "n"]));
    }
    fn prepare(&mut self, ctx: &TopologyContext) -> Result<(), ComponentError> {
        self.waker = ctx.waker();
        Ok(())
    }
    fn execute(&mut self, t: Tuple, out: &mut OutputCollector) -> Result<(), BoltError> {
        let routed = self.routed.clone();
        let sink = TaskIdsSink::new(move |tasks| {
            routed
                .lock()
                .unwrap()
                .push(tasks.iter().map(|t| t.0).collect())
        });
        out.emit_reporting(
            DEFAULT_STREAM,
            &[&t],
            None,
            t.values().iter().cloned().collect(),
            Some(sink.clone()),
        );
        out.emit_reporting("nowhere", &[], None, values![1], Some(sink));
        out.pause(Duration::from_secs(3600));
        self.waker.as_ref().unwrap().wake();
        Ok(())
    }
    fn wake(&mut self, out: &mut OutputCollector) {
        self.woken.fetch_add(1, Ordering::SeqCst);
        out.resume();
    }
}

#[tokio::test(start_paused = true)]
async fn emissions_report_the_tasks_they_reached_and_wake_can_end_a_pause() {
    let routed = Arc::new(std::sync::Mutex::new(Vec::new()));
    let woken = Arc::new(AtomicUsize::new(0));
    let mut b = TopologyBuilder::new("reporting");
    b.set_spout("src", 1, || Silent);
    let (r, w) = (routed.clone(), woken.clone());
    b.set_bolt("bridge", 1, move || Reporting {
        routed: r.clone(),
        waker: None,
        woken: w.clone(),
    })
    .shuffle_grouping("src");
    b.set_bolt("sink", 3, || WhoGotIt::new(&["key", "n"]))
        .shuffle_grouping("bridge");
    let start = tokio::time::Instant::now();
    let done = CompleteTopology::new(b.build().unwrap())
        .mock_spout("src", keyed_input(6))
        .run()
        .await
        .unwrap();
    assert!(
        start.elapsed() < Duration::from_secs(3600),
        "wake ended each hour-long pause (took {:?})",
        start.elapsed()
    );
    assert_eq!(woken.load(Ordering::SeqCst), 6);
    let receivers = receivers(&done, "sink");
    let routed = routed.lock().unwrap().clone();
    assert_eq!(routed.len(), 12, "one report per emission: {routed:?}");
    let mut reached = Vec::new();
    for pair in routed.chunks(2) {
        assert_eq!(pair[0].len(), 1, "a shuffle reaches one task: {pair:?}");
        assert_eq!(
            pair[1],
            Vec::<u32>::new(),
            "a rejected emission reaches none"
        );
        reached.push(pair[0][0]);
    }
    let mut got: Vec<u32> = receivers.iter().map(|(task, _)| *task).collect();
    reached.sort();
    got.sort();
    assert_eq!(
        reached, got,
        "the reported tasks are the ones that received them"
    );
}

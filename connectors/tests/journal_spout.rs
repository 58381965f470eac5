//! The `kafka` spout on the durable journal (`brokers = "journal:DIR"`), driven directly:
//! a record that fails for a transient reason is replayed for as long as it takes and never
//! dead-lettered; one that fails permanently goes to the dead-letter topic after its
//! retries, with the reason; the group's position is committed to the journal.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use squall_connectors::journal::{Journal, StoredRecord};
use squall_connectors::kafka::{KafkaSpout, KafkaSpoutConfig};
use squall_topology::{
    FailReason, MessageId, OutputDeclarer, Spout, SpoutOutputCollector, TaskId, TopologyContext,
};

/// A spout on the journal in `dir` reading `events`, with tiny back-offs.
fn open_spout(dir: &std::path::Path, max_retries: u32) -> (KafkaSpout, SpoutOutputCollector) {
    let config: KafkaSpoutConfig = serde_json::from_value(serde_json::json!({
        "brokers": format!("journal:{}", dir.display()), "topic": "events",
        "group_id": "g", "value": "string", "dead_letter_topic": "dlq",
        "commit_interval_ms": 10,
        "retry": { "initial_delay_ms": 1, "max_delay_ms": 2, "max_retries": max_retries }
    }))
    .unwrap();
    let mut spout = KafkaSpout::new(config).unwrap();
    let mut declarer = OutputDeclarer::new("in");
    spout.declare_outputs(&mut declarer);
    let streams: Arc<[_]> = declarer.into_streams().into();
    let tasks = Arc::new(BTreeMap::from([("in", vec![TaskId(1)])]));
    spout
        .open(&TopologyContext::new("t".into(), "in", TaskId(1), 0, tasks))
        .unwrap();
    (spout, SpoutOutputCollector::new("in", streams))
}

/// Appends `value` to `events` partition 0 and waits until it is durable.
fn append(journal: &Journal, value: &str) {
    let (tx, rx) = std::sync::mpsc::channel();
    let record = StoredRecord {
        timestamp_ms: 1,
        key: Some(b"k".to_vec()),
        value: Some(value.as_bytes().to_vec()),
        headers: Vec::new(),
    };
    journal
        .append(
            "events",
            Some(0),
            record,
            Box::new(move |r| tx.send(r).unwrap()),
        )
        .map_err(|(e, _)| e)
        .unwrap();
    rx.recv_timeout(Duration::from_secs(10)).unwrap().unwrap();
}

fn failed(transient: bool) -> FailReason {
    FailReason::Failed {
        component: "store".into(),
        error: "database is locked".into(),
        transient,
    }
}

/// Polls the spout until it emits; returns the message id (bounded: 10 s).
fn next_id(spout: &mut KafkaSpout, out: &mut SpoutOutputCollector) -> MessageId {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        assert!(Instant::now() < deadline, "no record within 10 s");
        spout.next_tuple(out);
        let (emissions, _) = out.take();
        if let Some(e) = emissions.collect::<Vec<_>>().into_iter().next() {
            return e.message_id.expect("tracked");
        }
        std::thread::yield_now();
    }
}

#[test]
fn transient_failures_are_retried_without_end_and_permanent_ones_dead_lettered() {
    let dir = tempfile::tempdir().unwrap();
    let journal = Journal::open(dir.path()).unwrap();
    journal.ensure_topic("events", 1).unwrap();
    journal.ensure_topic("dlq", 1).unwrap();
    append(&journal, "payload");
    let (mut spout, mut out) = open_spout(dir.path(), 1);

    // Ten transient failures, far past max_retries: replayed each time, nothing dead-lettered.
    for _ in 0..10 {
        let id = next_id(&mut spout, &mut out);
        spout.fail(id, &failed(true));
        assert_eq!(journal.bounds("dlq", 0), Some((0, 0)), "not dead-lettered");
    }
    // Then permanent failures: after max_retries (1) it goes to the dead-letter topic.
    let id = next_id(&mut spout, &mut out);
    spout.fail(id, &failed(false));
    let id = next_id(&mut spout, &mut out);
    spout.fail(id, &failed(false));
    let deadline = Instant::now() + Duration::from_secs(10);
    while journal.bounds("dlq", 0).unwrap().1 == 0 {
        assert!(Instant::now() < deadline, "dead-lettered within 10 s");
        spout.next_tuple(&mut out);
        std::thread::yield_now();
    }
    let mut reader = journal.reader("dlq", 0).unwrap();
    let (_, dead) = reader.next_record().unwrap().unwrap();
    assert_eq!(dead.value.as_deref(), Some(&b"payload"[..]));
    let reason = dead
        .headers
        .iter()
        .find(|(k, _)| k == "squall.failure.reason")
        .and_then(|(_, v)| v.clone())
        .unwrap();
    assert!(
        String::from_utf8(reason)
            .unwrap()
            .contains("database is locked"),
        "the reason travels with it"
    );
    // Done once dead-lettered (the write's report comes back to the spout): the group's
    // position moves past it (commits every 10 ms; at the latest at close).
    let (_, end) = journal.bounds("events", 0).unwrap();
    let past = |journal: &Journal| {
        let committed = journal.committed("g", "events", 0).expect("committed");
        let mut reader = journal.reader("events", 0).unwrap();
        reader.seek(committed).unwrap();
        reader.position() == end
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while !past(&journal) {
        assert!(
            Instant::now() < deadline,
            "the committed position is past the record within 10 s"
        );
        spout.next_tuple(&mut out);
        std::thread::yield_now();
    }
    spout.close();
    assert!(past(&journal), "and stays there after close");
}

/// Polls the spout until it emits; returns the id and the value (bounded: 10 s).
fn next_value(spout: &mut KafkaSpout, out: &mut SpoutOutputCollector) -> (MessageId, String) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        assert!(Instant::now() < deadline, "no record within 10 s");
        spout.next_tuple(out);
        let (emissions, _) = out.take();
        if let Some(e) = emissions.collect::<Vec<_>>().into_iter().next() {
            let value = e.values[1].as_str().unwrap().to_string();
            return (e.message_id.expect("tracked"), value);
        }
        std::thread::yield_now();
    }
}

#[test]
fn a_failed_record_holds_back_the_rest_of_its_partition_so_order_is_kept() {
    let dir = tempfile::tempdir().unwrap();
    let journal = Journal::open(dir.path()).unwrap();
    journal.ensure_topic("events", 1).unwrap();
    journal.ensure_topic("dlq", 1).unwrap();
    for v in ["a", "b", "c"] {
        append(&journal, v);
    }
    let (mut spout, mut out) = open_spout(dir.path(), 5);
    let (a, value) = next_value(&mut spout, &mut out);
    assert_eq!(value, "a");
    spout.fail(a, &failed(true));
    // "b" and "c" wait behind "a": the next emissions are "a" again (twice more).
    for _ in 0..2 {
        let (a, value) = next_value(&mut spout, &mut out);
        assert_eq!(value, "a", "nothing overtakes the failed record");
        spout.fail(a, &failed(true));
    }
    let (a, value) = next_value(&mut spout, &mut out);
    assert_eq!(value, "a");
    spout.ack(a);
    let (b, value) = next_value(&mut spout, &mut out);
    assert_eq!(value, "b");
    let (c, value) = next_value(&mut spout, &mut out);
    assert_eq!(value, "c");
    spout.ack(b);
    spout.ack(c);
    spout.close();
}

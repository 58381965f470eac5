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
    let (tx, rx) = std::sync::mpsc::channel();
    let record = StoredRecord {
        timestamp_ms: 1,
        key: Some(b"k".to_vec()),
        value: Some(b"payload".to_vec()),
        headers: Vec::new(),
    };
    journal
        .append(
            "events",
            None,
            record,
            Box::new(move |r| tx.send(r).unwrap()),
        )
        .map_err(|(e, _)| e)
        .unwrap();
    rx.recv_timeout(Duration::from_secs(10)).unwrap().unwrap();

    let config: KafkaSpoutConfig = serde_json::from_value(serde_json::json!({
        "brokers": format!("journal:{}", dir.path().display()), "topic": "events",
        "group_id": "g", "value": "string", "dead_letter_topic": "dlq",
        "commit_interval_ms": 10,
        "retry": { "initial_delay_ms": 1, "max_delay_ms": 2, "max_retries": 1 }
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
    let mut out = SpoutOutputCollector::new("in", streams);

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
    // Done once dead-lettered: the close commits past it.
    for _ in 0..100 {
        spout.next_tuple(&mut out);
    }
    spout.close();
    let (_, end) = journal.bounds("events", 0).unwrap();
    let committed = journal.committed("g", "events", 0).expect("committed");
    let mut reader = journal.reader("events", 0).unwrap();
    reader.seek(committed).unwrap();
    assert_eq!(
        reader.position(),
        end,
        "the committed position is past the record"
    );
}

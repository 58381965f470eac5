//! A fast check of the `kafka` spout against librdkafka's in-process mock cluster, driving
//! the spout directly (no runtime): records come out with their fields, acks advance the
//! committed offsets, a failure is re-emitted after its back-off. The real-broker tests
//! are in the `squall` package (`tests/kafka.rs`).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::mocking::MockCluster;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use squall_connectors::kafka::{KafkaSpout, KafkaSpoutConfig};
use squall_topology::{
    FailReason, MessageId, OutputDeclarer, Spout, SpoutOutputCollector, TaskId, TopologyContext,
    Value,
};

const N: usize = 50;

#[test]
fn spout_emits_records_retries_failures_and_commits_acked_offsets() {
    // The mock cluster must stay on the thread that made it.
    let mock = MockCluster::new(1).unwrap();
    mock.create_topic("events", 2, 1).unwrap();
    let brokers = mock.bootstrap_servers();
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", &brokers)
        .create()
        .unwrap();
    for i in 0..N {
        producer
            .send(
                BaseRecord::to("events")
                    .key(&format!("k{}", i % 5))
                    .payload(&i.to_string()),
            )
            .unwrap();
    }
    producer.flush(Duration::from_secs(10)).unwrap();

    let config: KafkaSpoutConfig = serde_json::from_value(serde_json::json!({
        "brokers": brokers, "topic": "events", "group_id": "g", "value": "string",
        "commit_interval_ms": 100,
        "retry": { "initial_delay_ms": 1, "max_retries": 3 }
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

    // Collect every record once, failing the first one seen, until it comes back.
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut seen: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    let mut failed = None;
    while seen.len() < N
        || failed
            .as_ref()
            .is_some_and(|(_, v): &(u64, String)| seen[v].len() < 2)
    {
        assert!(
            Instant::now() < deadline,
            "records within 60 s: {}",
            seen.len()
        );
        spout.next_tuple(&mut out);
        let (emissions, error) = out.take();
        assert!(error.is_none());
        for e in emissions.collect::<Vec<_>>() {
            let id = e.message_id.expect("at-least-once emits tracked tuples");
            let value = e.values[1].as_str().unwrap().to_string();
            assert_eq!(e.values[2], Value::from("events"));
            assert!(e.values[0].as_bytes().unwrap().starts_with(b"k"));
            seen.entry(value.clone()).or_default().push(id.0);
            if failed.is_none() {
                failed = Some((id.0, value));
                spout.fail(id, &FailReason::Timeout);
            } else {
                spout.ack(id);
            }
        }
        std::thread::yield_now();
    }
    let (_, retried) = failed.unwrap();
    assert_eq!(
        seen[&retried].len(),
        2,
        "the failed record was emitted again"
    );
    assert!(seen.values().all(|ids| ids.len() == 1 || ids.len() == 2));
    spout.ack(MessageId(seen[&retried][1]));
    spout.close();

    // Everything acked: the committed offsets cover both partitions completely.
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &brokers)
        .set("group.id", "g")
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition("events", 0);
    tpl.add_partition("events", 1);
    let committed = consumer
        .committed_offsets(tpl, Duration::from_secs(10))
        .unwrap();
    let total: i64 = committed
        .elements()
        .iter()
        .map(|e| match e.offset() {
            Offset::Offset(o) => o,
            other => panic!("partition {} not committed: {other:?}", e.partition()),
        })
        .sum();
    assert_eq!(total, N as i64);
}

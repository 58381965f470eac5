//! Helpers for tests against the real Kafka-protocol broker started by
//! `scripts/kafka-up.sh` (tansu). All blocking librdkafka calls run on the test's own
//! threads or in `spawn_blocking`, never on a runtime worker.
#![allow(dead_code)]

use std::collections::HashMap;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};

/// The broker address: `SQUALL_KAFKA_BROKERS`, or the one `scripts/kafka-up.sh` starts.
pub(crate) fn brokers() -> String {
    static BROKERS: OnceLock<String> = OnceLock::new();
    BROKERS
        .get_or_init(|| {
            if let Ok(b) = std::env::var("SQUALL_KAFKA_BROKERS") {
                return b;
            }
            let out = std::process::Command::new("bash")
                .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/kafka-up.sh"))
                .arg("start")
                .output()
                .expect("run scripts/kafka-up.sh");
            assert!(
                out.status.success(),
                "scripts/kafka-up.sh failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            String::from_utf8(out.stdout)
                .unwrap()
                .lines()
                .find_map(|l| l.strip_prefix("KAFKA_BROKERS=").map(String::from))
                .expect("kafka-up.sh prints KAFKA_BROKERS=")
        })
        .clone()
}

/// A name no other test run uses.
pub(crate) fn unique(prefix: &str) -> String {
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("{prefix}-{}-{nanos}-{n}", std::process::id())
}

/// Creates `topic` with `partitions` partitions.
pub(crate) async fn create_topic(topic: &str, partitions: i32) {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", brokers())
        .create()
        .expect("admin client");
    let results = admin
        .create_topics(
            &[NewTopic::new(topic, partitions, TopicReplication::Fixed(1))],
            &AdminOptions::new().operation_timeout(Some(Duration::from_secs(10))),
        )
        .await
        .expect("create_topics");
    for r in results {
        r.unwrap_or_else(|(t, e)| panic!("creating topic {t}: {e}"));
    }
}

/// Produces `records` (key, value) and waits until the broker acknowledged all of them.
pub(crate) fn produce(topic: &str, records: &[(String, String)]) {
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", brokers())
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .create()
        .expect("producer");
    for (k, v) in records {
        let mut record = BaseRecord::to(topic).key(k.as_str()).payload(v.as_str());
        loop {
            match producer.send(record) {
                Ok(()) => break,
                Err((_, r)) => {
                    producer.poll(Duration::from_millis(10));
                    record = r;
                }
            }
        }
    }
    producer
        .flush(Duration::from_secs(30))
        .expect("all records delivered");
}

/// Keyed records `key-<i % keys>` -> `<first + i>` for i in 0..n.
pub(crate) fn keyed(first: usize, n: usize, keys: usize) -> Vec<(String, String)> {
    (0..n)
        .map(|i| (format!("key-{}", i % keys), (first + i).to_string()))
        .collect()
}

/// The committed offsets of `group` for `topic` (-1 where none).
pub(crate) fn committed(group: &str, topic: &str, partitions: i32) -> Vec<i64> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers())
        .set("group.id", group)
        .create()
        .expect("consumer");
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition(topic, p);
    }
    let committed = consumer
        .committed_offsets(tpl, Duration::from_secs(10))
        .expect("committed offsets");
    (0..partitions)
        .map(
            |p| match committed.find_partition(topic, p).map(|e| e.offset()) {
                Some(Offset::Offset(o)) => o,
                _ => -1,
            },
        )
        .collect()
}

/// The end (high-watermark) offsets of `topic`.
pub(crate) fn end_offsets(topic: &str, partitions: i32) -> Vec<i64> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers())
        .create()
        .expect("consumer");
    (0..partitions)
        .map(|p| {
            consumer
                .fetch_watermarks(topic, p, Duration::from_secs(10))
                .expect("watermarks")
                .1
        })
        .collect()
}

/// A consumed record: partition, offset, key, value, headers.
#[derive(Clone, Debug)]
pub(crate) struct Consumed {
    pub partition: i32,
    pub offset: i64,
    pub key: Option<String>,
    pub value: Option<String>,
    pub headers: HashMap<String, String>,
}

/// Reads `n` records of `topic` from the beginning (fails after `timeout`).
pub(crate) fn consume(topic: &str, n: usize, timeout: Duration) -> Vec<Consumed> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers())
        .set("group.id", unique("reader"))
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    consumer.subscribe(&[topic]).expect("subscribe");
    let deadline = Instant::now() + timeout;
    let mut out = Vec::new();
    while out.len() < n {
        assert!(
            Instant::now() < deadline,
            "read {} of {n} records of {topic} in {timeout:?}",
            out.len()
        );
        let Some(m) = consumer.poll(Duration::from_millis(200)) else {
            continue;
        };
        let m = m.expect("consume");
        let text = |b: Option<&[u8]>| b.map(|b| String::from_utf8_lossy(b).into_owned());
        let headers = m
            .headers()
            .map(|hs| {
                hs.iter()
                    .map(|h| (h.key.to_string(), text(h.value).unwrap_or_default()))
                    .collect()
            })
            .unwrap_or_default();
        out.push(Consumed {
            partition: m.partition(),
            offset: m.offset(),
            key: text(m.key()),
            value: text(m.payload()),
            headers,
        });
    }
    out
}

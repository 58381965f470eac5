//! Dead letters: what the `kafka` spout gave up on, read back from the dead-letter topic
//! (a Kafka cluster's or the journal's) and replayed to the topic it came from.
//!
//! Invariants:
//! - **The log says what is pending**: replaying a record appends a marker record to the
//!   dead-letter topic itself (key [`REPLAYED_KEY`], headers naming the partition and offset
//!   of the replayed record), so any process reading the topic knows what was replayed,
//!   whichever broker holds it. A record is pending until a marker names it.
//! - **Replayed before marked**: the marker is written only after the broker acknowledged
//!   the replayed record; a failure between the two leaves the record pending (it may then
//!   be replayed twice, which the pipeline's stages absorb: they are idempotent for a
//!   replay).
//! - Reading and writing block (librdkafka, the journal's files): call these on a blocking
//!   thread.

use std::collections::{BTreeMap, HashSet};
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use rdkafka::ClientConfig;
use serde::Serialize;

use super::producer::{LogProducer, OutRecord};
use crate::journal::{journal_dir, Journal};

/// The key of a marker record.
pub const REPLAYED_KEY: &str = "squall.replayed";

/// One record of a topic, as read back.
#[derive(Clone, Debug, Default)]
pub struct TopicRecord {
    /// Its partition.
    pub partition: i32,
    /// Its offset (a byte position in the journal).
    pub offset: i64,
    /// Its timestamp, in milliseconds since the epoch.
    pub timestamp_ms: Option<i64>,
    /// Its key.
    pub key: Option<Vec<u8>>,
    /// Its value.
    pub payload: Option<Vec<u8>>,
    /// Its headers.
    pub headers: Vec<(String, Option<Vec<u8>>)>,
}

impl TopicRecord {
    fn header(&self, name: &str) -> Option<String> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .and_then(|(_, v)| v.as_deref())
            .map(|v| String::from_utf8_lossy(v).into_owned())
    }
}

/// A dead letter still to be replayed.
#[derive(Clone, Debug, Serialize)]
pub struct DeadLetter {
    /// Its partition in the dead-letter topic.
    pub partition: i32,
    /// Its offset there.
    pub offset: i64,
    /// Why it was given up on (`squall.failure.reason`).
    pub reason: String,
    /// How often it was tried (`squall.attempts`).
    pub attempts: Option<u32>,
    /// The topic it came from (`squall.original.topic`).
    pub original_topic: String,
    /// Its partition there.
    pub original_partition: Option<i32>,
    /// Its offset there.
    pub original_offset: Option<i64>,
    /// When it was dead-lettered, in milliseconds since the epoch.
    pub at_ms: Option<i64>,
    /// Its key, as text (lossy).
    pub key: Option<String>,
    /// Its value's size in bytes.
    pub size: usize,
    /// The record itself.
    #[serde(skip)]
    pub record: TopicRecord,
}

/// Reads `topic` on `brokers` from its oldest record to its end as of now (blocking, at
/// most `timeout` for a Kafka cluster).
pub fn read_topic(
    brokers: &str,
    topic: &str,
    timeout: Duration,
) -> Result<Vec<TopicRecord>, String> {
    if let Some(dir) = journal_dir(brokers) {
        let journal = Journal::open(dir)
            .map_err(|e| format!("cannot open the journal in {}: {e}", dir.display()))?;
        let partitions = journal
            .partition_count(topic)
            .ok_or_else(|| format!("no topic {topic} in the journal"))?;
        let mut out = Vec::new();
        for p in 0..partitions {
            let mut reader = journal.reader(topic, p).map_err(|e| e.to_string())?;
            while let Some((offset, r)) = reader.next_record().map_err(|e| e.to_string())? {
                out.push(TopicRecord {
                    partition: p,
                    offset: offset as i64,
                    timestamp_ms: Some(r.timestamp_ms),
                    key: r.key,
                    payload: r.value,
                    headers: r.headers,
                });
            }
        }
        return Ok(out);
    }
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", "squall-dead-letters-reader")
        .set("enable.auto.commit", "false")
        .create()
        .map_err(|e| format!("cannot create a Kafka consumer: {e}"))?;
    let metadata = consumer
        .fetch_metadata(Some(topic), timeout)
        .map_err(|e| format!("reading the metadata of {topic}: {e}"))?;
    let partitions: Vec<i32> = metadata
        .topics()
        .iter()
        .flat_map(|t| t.partitions().iter().map(|p| p.id()))
        .collect();
    let mut ends = BTreeMap::new();
    let mut tpl = TopicPartitionList::new();
    for p in partitions {
        let (low, high) = consumer
            .fetch_watermarks(topic, p, timeout)
            .map_err(|e| format!("reading the offsets of {topic}/{p}: {e}"))?;
        if high > low {
            ends.insert(p, high);
            tpl.add_partition_offset(topic, p, Offset::Offset(low))
                .map_err(|e| e.to_string())?;
        }
    }
    consumer.assign(&tpl).map_err(|e| e.to_string())?;
    let deadline = Instant::now() + timeout;
    let mut out = Vec::new();
    while !ends.is_empty() {
        if Instant::now() >= deadline {
            return Err(format!("reading {topic} took longer than {timeout:?}"));
        }
        let Some(m) = consumer.poll(Duration::from_millis(100)) else {
            continue;
        };
        let m = m.map_err(|e| format!("reading {topic}: {e}"))?;
        let (p, offset) = (m.partition(), m.offset());
        if ends.get(&p).is_some_and(|end| offset + 1 >= *end) {
            ends.remove(&p);
        }
        out.push(TopicRecord {
            partition: p,
            offset,
            timestamp_ms: m.timestamp().to_millis(),
            key: m.key().map(<[u8]>::to_vec),
            payload: m.payload().map(<[u8]>::to_vec),
            headers: m
                .headers()
                .map(|hs| {
                    hs.iter()
                        .map(|h| (h.key.to_string(), h.value.map(<[u8]>::to_vec)))
                        .collect()
                })
                .unwrap_or_default(),
        });
    }
    Ok(out)
}

/// The dead letters of `topic` not replayed yet, oldest first per partition.
pub fn pending(brokers: &str, topic: &str, timeout: Duration) -> Result<Vec<DeadLetter>, String> {
    let records = read_topic(brokers, topic, timeout)?;
    let replayed: HashSet<(i32, i64)> = records
        .iter()
        .filter(|r| r.key.as_deref() == Some(REPLAYED_KEY.as_bytes()))
        .filter_map(|r| {
            Some((
                r.header("squall.replayed.partition")?.parse().ok()?,
                r.header("squall.replayed.offset")?.parse().ok()?,
            ))
        })
        .collect();
    Ok(records
        .into_iter()
        .filter(|r| r.key.as_deref() != Some(REPLAYED_KEY.as_bytes()))
        .filter(|r| !replayed.contains(&(r.partition, r.offset)))
        .map(|r| DeadLetter {
            partition: r.partition,
            offset: r.offset,
            reason: r.header("squall.failure.reason").unwrap_or_default(),
            attempts: r.header("squall.attempts").and_then(|a| a.parse().ok()),
            original_topic: r.header("squall.original.topic").unwrap_or_default(),
            original_partition: r
                .header("squall.original.partition")
                .and_then(|a| a.parse().ok()),
            original_offset: r
                .header("squall.original.offset")
                .and_then(|a| a.parse().ok()),
            at_ms: r.timestamp_ms,
            key: r
                .key
                .as_deref()
                .map(|k| String::from_utf8_lossy(k).into_owned()),
            size: r.payload.as_ref().map_or(0, Vec::len),
            record: r,
        })
        .collect())
}

/// Replays `letters` (read from `topic`) to the topics they came from, each with its key,
/// value and its own headers (not the `squall.*` ones the spout added), then marks each
/// replayed. Returns how many were replayed; stops at the first that cannot be.
pub fn replay(
    brokers: &str,
    topic: &str,
    letters: &[DeadLetter],
    timeout: Duration,
) -> Result<usize, String> {
    let (tx, rx) = crossbeam_channel::unbounded::<(usize, Result<(), String>)>();
    let producer = LogProducer::new(brokers, [], move |i: usize, r| {
        let _ = tx.send((i, r));
    })?;
    let wait = |what: &str| -> Result<(), String> {
        match rx.recv_timeout(timeout) {
            Ok((_, Ok(()))) => Ok(()),
            Ok((_, Err(e))) => Err(format!("{what}: {e}")),
            Err(_) => Err(format!("{what}: no acknowledgement within {timeout:?}")),
        }
    };
    for (i, d) in letters.iter().enumerate() {
        if d.original_topic.is_empty() {
            return Err(format!(
                "dead letter {}/{} names no original topic",
                d.partition, d.offset
            ));
        }
        let own: Vec<(&str, &[u8])> = d
            .record
            .headers
            .iter()
            .filter(|(k, _)| !k.starts_with("squall."))
            .map(|(k, v)| (k.as_str(), v.as_deref().unwrap_or_default()))
            .collect();
        let record = OutRecord {
            topic: &d.original_topic,
            key: d.record.key.as_deref(),
            payload: d.record.payload.as_deref(),
            headers: &own,
        };
        producer.send(record, i).map_err(|(e, _)| e)?;
        wait(&format!(
            "replaying {}/{} to {}",
            d.partition, d.offset, d.original_topic
        ))?;
        let (partition, offset) = (d.partition.to_string(), d.offset.to_string());
        let marker = OutRecord {
            topic,
            key: Some(REPLAYED_KEY.as_bytes()),
            payload: None,
            headers: &[
                ("squall.replayed.partition", partition.as_bytes()),
                ("squall.replayed.offset", offset.as_bytes()),
            ],
        };
        producer.send(marker, i).map_err(|(e, _)| e)?;
        wait("marking it replayed")?;
        metrics::counter!("squall_dead_letters_replayed_total").increment(1);
    }
    Ok(letters.len())
}

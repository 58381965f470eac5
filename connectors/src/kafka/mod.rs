//! Kafka: the `kafka` spout ([`KafkaSpout`], in `source.rs`), the `kafka` bolt
//! ([`KafkaBolt`], in `sink.rs`), and cluster setup ([`ensure_topics`], the
//! [`EmbeddedBroker`], in `admin.rs`).
//!
//! The spout is a consumer-group member per task, at-least-once by default.
//!
//! - **Polling off the runtime**: each task runs librdkafka's consumer on its own thread
//!   (the *poller*), which hands records to the spout through a bounded channel. When the
//!   spout falls behind, the poller pauses its partitions instead of buffering without
//!   bound, and keeps polling so the group membership stays alive.
//! - **At-least-once** (`mode = "at_least_once"`, the default): an offset is committed only
//!   when every record before it in its partition is done, i.e. acked by the topology or
//!   dead-lettered (see [`PartitionOffsets`]). Commits happen every `commit_interval_ms`,
//!   when partitions are revoked, and at shutdown. `at_most_once` commits each fetched
//!   batch before emitting it; `none` never commits.
//! - **Retries**: a failed tuple is re-emitted after an exponential back-off (`retry`).
//!   A transient failure ([`FailReason::is_transient`](squall_topology::FailReason::is_transient):
//!   a timeout, a locked database, an absent broker) is retried for as long as it takes
//!   and never dead-lettered; after `retry.max_retries` permanent failures (a bolt error
//!   not marked transient, a panic) the record is produced to `dead_letter_topic` with the
//!   failure reason in its headers and counts as done, so one poison record never blocks
//!   its partition. Records that cannot be decoded (`value = "json"` with invalid JSON, or
//!   `string` with invalid UTF-8) go straight to the dead-letter topic.
//! - **Uncommitted limit**: a partition with `max_uncommitted` or more records between its
//!   commit position and its highest fetched offset is paused and resumed below half of
//!   that; retries still flow while it is paused, so it cannot stall for good.
//! - **Rebalances**: revoked partitions commit what is done and stop emitting; acks that
//!   arrive for them afterwards are ignored, and records fetched before the revocation are
//!   dropped. Assigned partitions start from their committed offset (or `start` when they
//!   have none).
//! - **Lag**: `squall_kafka_consumer_lag{topic,partition}` from librdkafka's statistics;
//!   with each partition's pause state, uncommitted records, retries and dead letters in
//!   [`status`] (the web UI's Kafka page).
//! - **Who holds what**: every assignment and revocation is recorded in the process's
//!   [`assignments`] of the group, which components downstream follow (the alert state
//!   moves with its partitions). With several processes in a group, set
//!   `partition.assignment.strategy = "cooperative-sticky"` in `options` (`squall up`
//!   does) so a rebalance moves only the partitions that must move; or use the consumer
//!   group protocol of KIP-848 ([`GroupProtocol::Consumer`]), where the broker assigns
//!   partitions incrementally and a dead member's partitions move at the survivors' next
//!   heartbeat instead of after a group-wide rebalance.

/// The histogram of how long after its Kafka timestamp a record's whole tuple tree was
/// acked at the spout (label `component`), in seconds: the end-to-end latency.
pub const RECORD_LATENCY_METRIC: &str = "squall_kafka_record_latency_seconds";

mod admin;
pub mod assignments;
pub mod dead_letters;
mod journal_poller;
mod offsets;
mod poller;
mod producer;
mod sink;
mod source;
pub mod status;

pub use admin::{ensure_topics, AdminError, EmbeddedBroker, GroupTimeouts};

/// Which consumer group protocol the consumers speak (librdkafka's `group.protocol`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GroupProtocol {
    /// The classic protocol every broker speaks: members send their own session timeout;
    /// a member joining or dying starts a rebalance of the whole group (cooperative-sticky
    /// keeps the survivors' partitions, but the group waits for its members to rejoin).
    #[default]
    Classic,
    /// The consumer group protocol of KIP-848 (Kafka 4.0 and later, `squall broker`):
    /// the broker computes assignments and hands them out with heartbeats, so a dead
    /// member's partitions move at the survivors' next heartbeat. The session timeout and
    /// heartbeat interval are the broker's settings.
    Consumer,
}
pub use offsets::PartitionOffsets;
pub use producer::{LogProducer, OutRecord};
pub use sink::{KafkaBolt, KafkaBoltConfig};
pub use source::KafkaSpout;

use std::collections::BTreeMap;

use serde::Deserialize;

/// Where a partition without a committed offset starts.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Start {
    /// The oldest record.
    #[default]
    Earliest,
    /// Only records produced from now on.
    Latest,
}

/// How record values are emitted.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum ValueFormat {
    /// `Value::Bytes`.
    #[default]
    Bytes,
    /// `Value::Str`; invalid UTF-8 is dead-lettered.
    String,
    /// Parsed JSON (`Value::Any(serde_json::Value)`); invalid JSON is dead-lettered.
    Json,
}

/// Delivery guarantee.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Commit only offsets whose records (and all before them) are done.
    #[default]
    AtLeastOnce,
    /// Commit fetched offsets before emitting; emit untracked.
    AtMostOnce,
    /// Never commit; emit untracked.
    None,
}

/// Exponential back-off of failed records.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct RetryConfig {
    /// Delay before the first retry.
    pub initial_delay_ms: u64,
    /// Factor applied to the delay after each retry.
    pub multiplier: f64,
    /// Longest delay.
    pub max_delay_ms: u64,
    /// Retries before the record is dead-lettered.
    pub max_retries: u32,
}

impl Default for RetryConfig {
    fn default() -> Self {
        RetryConfig {
            initial_delay_ms: 100,
            multiplier: 2.0,
            max_delay_ms: 10_000,
            max_retries: 5,
        }
    }
}

impl RetryConfig {
    /// The delay before retry number `attempt` (1-based).
    pub fn delay(&self, attempt: u32) -> std::time::Duration {
        squall_topology::Backoff::exponential(
            std::time::Duration::from_millis(self.initial_delay_ms),
            std::time::Duration::from_millis(self.max_delay_ms),
        )
        .with_multiplier(self.multiplier)
        .delay(attempt)
    }
}

fn default_commit_interval() -> u64 {
    5_000
}
fn default_max_uncommitted() -> i64 {
    10_000
}
fn default_buffer() -> usize {
    1_024
}
fn default_dead_letter() -> String {
    "squall.dead-letter".into()
}

/// Options of the `kafka` spout.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaSpoutConfig {
    /// Bootstrap servers, `host:port[,host:port]`.
    pub brokers: String,
    /// The topic to consume (or `topics`).
    #[serde(default)]
    pub topic: Option<String>,
    /// Topics to consume (or `topic`).
    #[serde(default)]
    pub topics: Vec<String>,
    /// Consumer group id.
    pub group_id: String,
    /// Where partitions without a committed offset start.
    #[serde(default)]
    pub start: Start,
    /// How values are emitted.
    #[serde(default)]
    pub value: ValueFormat,
    /// Delivery guarantee.
    #[serde(default)]
    pub mode: Mode,
    /// How often done offsets are committed.
    #[serde(default = "default_commit_interval")]
    pub commit_interval_ms: u64,
    /// Back-off of failed records.
    #[serde(default)]
    pub retry: RetryConfig,
    /// Where records go after their last retry.
    #[serde(default = "default_dead_letter")]
    pub dead_letter_topic: String,
    /// Pause a partition at this many uncommitted records (resume below half).
    #[serde(default = "default_max_uncommitted")]
    pub max_uncommitted: i64,
    /// Records the poller hands over ahead of the spout.
    #[serde(default = "default_buffer")]
    pub buffer: usize,
    /// librdkafka settings passed through, e.g. `{ "session.timeout.ms" = "6000" }`.
    #[serde(default)]
    pub options: BTreeMap<String, String>,
}

impl KafkaSpoutConfig {
    /// A consumer of `topic` in group `group_id` on `brokers`, every other option at its
    /// default (as a file that names only these three).
    pub fn new(
        brokers: impl Into<String>,
        topic: impl Into<String>,
        group_id: impl Into<String>,
    ) -> Self {
        KafkaSpoutConfig {
            brokers: brokers.into(),
            topic: Some(topic.into()),
            topics: Vec::new(),
            group_id: group_id.into(),
            start: Start::default(),
            value: ValueFormat::default(),
            mode: Mode::default(),
            commit_interval_ms: default_commit_interval(),
            retry: RetryConfig::default(),
            dead_letter_topic: default_dead_letter(),
            max_uncommitted: default_max_uncommitted(),
            buffer: default_buffer(),
            options: BTreeMap::new(),
        }
    }

    /// The topics to subscribe to, or what is wrong with the options.
    pub fn subscription(&self) -> Result<Vec<String>, String> {
        let mut topics = self.topics.clone();
        topics.extend(self.topic.clone());
        if topics.is_empty() {
            return Err("set `topic` or `topics`".into());
        }
        if self.topic.is_some() && !self.topics.is_empty() {
            return Err("set either `topic` or `topics`, not both".into());
        }
        Ok(topics)
    }

    /// Checks the options.
    pub fn validate(&self) -> Result<(), String> {
        self.subscription()?;
        if self.brokers.trim().is_empty() {
            return Err("`brokers` is empty".into());
        }
        if self.group_id.trim().is_empty() {
            return Err("`group_id` is empty".into());
        }
        if self.max_uncommitted < 1 {
            return Err("`max_uncommitted` must be at least 1".into());
        }
        if self.buffer < 1 {
            return Err("`buffer` must be at least 1".into());
        }
        Ok(())
    }
}

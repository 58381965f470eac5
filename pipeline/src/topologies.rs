//! The built-in topologies, built in code from typed options: the alert topology that
//! `squall up` runs, and the notifier.
//!
//! ```text
//! payloads (kafka) -> enrich -> split -> store
//!                        |          \-> threshold -> notify -> notifications (kafka)
//!                        \-> rejected (kafka)
//! notifications (kafka) -> policy -> deliver
//! ```
//!
//! `examples/topologies/alerting.toml` describes the same alert topology as a file, for
//! `squall run`; a test keeps the two in step.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use squall_connectors::kafka::{
    GroupProtocol, KafkaBolt, KafkaBoltConfig, KafkaSpout, KafkaSpoutConfig,
};
use squall_topology::{ComponentKind, Topology, TopologyBuilder, ValidationErrors};

use crate::deliver::{Deliver, DeliverConfig};
use crate::enrich::{Enrich, EnrichConfig};
use crate::notify::Notify;
use crate::policy::{Policy, PolicyConfig};
use crate::split::Split;
use crate::stage::{DEVICE, REJECTED};
use crate::store::{Store, StoreConfig};
use crate::threshold::{Threshold, ThresholdConfig};

/// The topics (after a prefix, `squall.` by default) and consumer groups of a cluster.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Names {
    /// Payload envelopes from the intake.
    pub payloads: String,
    /// Notifications from the alert topology.
    pub notifications: String,
    /// Rejected payloads.
    pub rejected: String,
    /// Records that failed every retry.
    pub dead_letter: String,
    /// The alert topology's consumer group.
    pub alerting_group: String,
    /// The notifier's consumer group.
    pub notifier_group: String,
}

impl Names {
    /// The names under `prefix`.
    pub fn new(prefix: &str) -> Self {
        Names {
            payloads: format!("{prefix}payloads"),
            notifications: format!("{prefix}notifications"),
            rejected: format!("{prefix}rejected"),
            dead_letter: format!("{prefix}dead-letter"),
            alerting_group: format!("{prefix}alerting"),
            notifier_group: format!("{prefix}notifier"),
        }
    }

    /// Every topic.
    pub fn topics(&self) -> [&str; 4] {
        [
            &self.payloads,
            &self.notifications,
            &self.rejected,
            &self.dead_letter,
        ]
    }
}

/// How the topologies reach the cluster.
#[derive(Clone, Debug)]
pub struct Cluster {
    /// Kafka bootstrap servers.
    pub brokers: String,
    /// Topic and group names.
    pub names: Names,
    /// The database URL (`sqlite://PATH`).
    pub db_url: String,
    /// librdkafka options of the consumers (see [`consumer_options`]).
    pub consumer: BTreeMap<String, String>,
}

/// librdkafka options of the consumers: the group protocol and, for the classic one, the
/// group session timeout, heartbeats well inside it and cooperative (incremental)
/// rebalancing, so when a process joins or leaves the others keep their partitions, and
/// the alert state of those partitions stays where it is (the consumer protocol of KIP-848
/// is incremental by design, and its timeouts are the broker's); and the longest fetch
/// wait (brokers that answer a fetch only when it runs out, tansu among them, add it to
/// every payload's latency).
pub fn consumer_options(
    protocol: GroupProtocol,
    session_timeout_ms: u64,
    fetch_wait_max_ms: u64,
) -> BTreeMap<String, String> {
    let mut options = BTreeMap::from([(
        "fetch.wait.max.ms".to_string(),
        fetch_wait_max_ms.to_string(),
    )]);
    match protocol {
        GroupProtocol::Classic => options.extend([
            (
                "session.timeout.ms".to_string(),
                session_timeout_ms.to_string(),
            ),
            (
                "heartbeat.interval.ms".to_string(),
                (session_timeout_ms / 5).max(100).to_string(),
            ),
            (
                "partition.assignment.strategy".to_string(),
                "cooperative-sticky".to_string(),
            ),
        ]),
        GroupProtocol::Consumer => {
            options.insert("group.protocol".to_string(), "consumer".to_string());
        }
    }
    options
}

/// Tasks per component of the alert topology, and its timers (the `[alerting]` section of
/// `squall.toml`; its defaults are the binary's config module's).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertingOptions {
    /// `payloads` (Kafka consumers in the group).
    pub payloads_parallelism: i64,
    /// `enrich` tasks.
    pub enrich_parallelism: i64,
    /// `split` tasks.
    pub split_parallelism: i64,
    /// `store` tasks.
    pub store_parallelism: i64,
    /// `threshold` tasks (each owns the devices the fields grouping sends it).
    pub threshold_parallelism: i64,
    /// `notify` tasks.
    pub notify_parallelism: i64,
    /// How often `threshold` checks no-data rules.
    pub tick_interval_ms: u64,
    /// Days minute snapshots are kept.
    pub snapshot_retention_days: u32,
    /// Megabytes of verdicts each `enrich` task caches at most.
    pub enrich_cache_max_mb: u64,
    /// How far ahead of its receive time a payload's time may be (`enrich` rejects it
    /// beyond); not part of the `[alerting]` section: the binary sets it from
    /// `intake.max_future_skew_s`.
    #[serde(skip, default = "default_future_skew")]
    pub max_future_skew_s: u64,
}

fn default_future_skew() -> u64 {
    crate::enrich::DEFAULT_MAX_FUTURE_SKEW_S
}

/// The alert topology (see the module docs).
pub fn alerting(cluster: &Cluster, o: &AlertingOptions) -> Result<Topology, ValidationErrors> {
    let names = &cluster.names;
    let db = &cluster.db_url;
    let mut b = TopologyBuilder::new("alerting");
    let mut payloads =
        KafkaSpoutConfig::new(&cluster.brokers, &names.payloads, &names.alerting_group);
    payloads.dead_letter_topic = names.dead_letter.clone();
    payloads.options = cluster.consumer.clone();
    KafkaSpout::new(payloads.clone()).map_err(|e| invalid(ComponentKind::Spout, "payloads", e))?;
    b.set_spout("payloads", o.payloads_parallelism, move || {
        KafkaSpout::new(payloads.clone()).expect("the spout's options were checked")
    });
    let enrich = EnrichConfig {
        db_url: db.clone(),
        cache_ttl_ms: 600_000,
        cache_max_bytes: o.enrich_cache_max_mb.max(1) << 20,
        field: "value".into(),
        max_future_skew_s: o.max_future_skew_s,
    };
    Enrich::new(enrich.clone()).map_err(|e| invalid(ComponentKind::Bolt, "enrich", e))?;
    b.set_bolt("enrich", o.enrich_parallelism, move || {
        Enrich::new(enrich.clone()).expect("checked above")
    })
    .fields_grouping("payloads", ["key"])
    // Ticks publish the verdict caches' gauges when payloads are few.
    .tick_interval_ms(1_000);
    b.set_bolt("split", o.split_parallelism, || Split)
        .shuffle_grouping("enrich");
    let store = StoreConfig {
        db_url: db.clone(),
        snapshot_retention_days: o.snapshot_retention_days,
    };
    b.set_bolt("store", o.store_parallelism, move || {
        Store::new(store.clone()).expect("checked with enrich's URL")
    })
    .fields_grouping("split", [DEVICE]);
    let threshold = ThresholdConfig {
        db_url: db.clone(),
        group: Some(names.alerting_group.clone()),
    };
    b.set_bolt("threshold", o.threshold_parallelism, move || {
        Threshold::new(threshold.clone()).expect("checked with enrich's URL")
    })
    .fields_grouping("split", [DEVICE])
    .tick_interval_ms(o.tick_interval_ms);
    b.set_bolt("notify", o.notify_parallelism, || Notify)
        .shuffle_grouping("threshold");
    let mut notifications = KafkaBoltConfig::new(&cluster.brokers, &names.notifications);
    notifications.key_field = Some("key".into());
    notifications.value_field = Some("value".into());
    KafkaBolt::new(notifications.clone())
        .map_err(|e| invalid(ComponentKind::Bolt, "notifications", e))?;
    b.set_bolt("notifications", 1, move || {
        KafkaBolt::new(notifications.clone()).expect("checked above")
    })
    .shuffle_grouping("notify");
    let rejected = KafkaBoltConfig::new(&cluster.brokers, &names.rejected);
    b.set_bolt("rejected", 1, move || {
        KafkaBolt::new(rejected.clone()).expect("checked with notifications'")
    })
    .grouping("enrich", REJECTED, squall_topology::Grouping::Shuffle);
    b.build()
}

/// Options of the notifier topology (the `[notifier]` section of `squall.toml`; its
/// defaults are the binary's config module's).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotifierOptions {
    /// Delivery tasks.
    pub parallelism: i64,
    /// Notifications older than this are archived, not sent.
    pub max_age_s: u64,
    /// First retry delay (doubling, with jitter).
    pub initial_backoff_ms: u64,
    /// Longest retry delay.
    pub max_backoff_ms: u64,
    /// Timeout of one HTTP request.
    pub request_timeout_ms: u64,
    /// Most requests open to one receiver host at once.
    pub max_in_flight_per_host: usize,
    /// Networks receivers may be in besides public addresses (comma-separated CIDRs).
    pub allowed_networks: String,
}

/// The notifier: the `kafka` spout on the notifications topic (its own group),
/// at-least-once, feeding `policy` (silences, grouping; fields-grouped by key, which is
/// the recipient's group of the alert), feeding `deliver`, fields-grouped by the order
/// key so each group's (each alert's) notifications to one recipient are delivered in
/// order.
pub fn notifier(cluster: &Cluster, o: &NotifierOptions) -> Result<Topology, ValidationErrors> {
    let names = &cluster.names;
    let mut b = TopologyBuilder::new("notifier");
    // A notification may be retried until it is `max_age_s` old: its tuple must not time
    // out before.
    b.config().message_timeout_ms = (o.max_age_s + 300) * 1000;
    let mut spout = KafkaSpoutConfig::new(
        &cluster.brokers,
        &names.notifications,
        &names.notifier_group,
    );
    spout.dead_letter_topic = names.dead_letter.clone();
    spout.options = cluster.consumer.clone();
    // Notifications fail only transiently (an outcome not recorded yet, a delivery another
    // process still holds, a partition changing owners): retried for good, at least every
    // 5 s, so a handover delays them by seconds, not minutes of back-off.
    spout.retry.max_retries = 1_000_000;
    spout.retry.initial_delay_ms = 500;
    spout.retry.max_delay_ms = 5_000;
    KafkaSpout::new(spout.clone())
        .map_err(|e| invalid(ComponentKind::Spout, "notifications", e))?;
    b.set_spout("notifications", 1, move || {
        KafkaSpout::new(spout.clone()).expect("the spout's options were checked")
    });
    let policy = PolicyConfig {
        db_url: cluster.db_url.clone(),
        group: Some(names.notifier_group.clone()),
        value_field: "value".into(),
    };
    Policy::new(policy.clone()).map_err(|e| invalid(ComponentKind::Bolt, "policy", e))?;
    b.set_bolt("policy", 1, move || {
        Policy::new(policy.clone()).expect("checked above")
    })
    .fields_grouping("notifications", ["key"])
    // Group timers (group_wait, group_interval, repeat_interval, silences ending).
    .tick_interval_ms(1_000);
    let deliver = DeliverConfig {
        db_url: cluster.db_url.clone(),
        max_age_s: o.max_age_s,
        request_timeout_ms: o.request_timeout_ms,
        initial_backoff_ms: o.initial_backoff_ms,
        max_backoff_ms: o.max_backoff_ms,
        field: "value".into(),
        max_in_flight_per_host: o.max_in_flight_per_host,
        allowed_networks: o.allowed_networks.clone(),
    };
    Deliver::new(deliver.clone()).map_err(|e| invalid(ComponentKind::Bolt, "deliver", e))?;
    b.set_bolt("deliver", o.parallelism, move || {
        Deliver::new(deliver.clone()).expect("checked above")
    })
    .fields_grouping("policy", ["key"])
    // Ticks renew the claims of the deliveries in flight.
    .tick_interval_ms((crate::deliver::CLAIM_LEASE / 3).as_millis() as u64);
    b.build()
}

fn invalid(kind: ComponentKind, component: &str, message: String) -> ValidationErrors {
    ValidationErrors(vec![squall_topology::ValidationError::Invalid {
        kind,
        component: component.to_string(),
        message,
    }])
}

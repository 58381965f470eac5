//! What the `kafka` spouts of this process see of their partitions, for the web UI's Kafka
//! page: per (spout component, topic, partition) the consumer group, the lag, whether it
//! is paused (too many uncommitted records), the uncommitted records, and how many of its
//! records were retried and dead-lettered. The pollers and spouts write it as they go; a
//! revoked partition leaves it.
//!
//! Invariant: reading it ([`snapshot`]) never waits on a poller for more than one map
//! update; the figures are the latest each poller published.

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard, OnceLock};

use serde::Serialize;

/// One partition as a spout of this process sees it.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct PartitionStatus {
    /// The spout component and task (`payloads#0`).
    pub component: String,
    /// The consumer group.
    pub group: String,
    /// The topic.
    pub topic: String,
    /// The partition.
    pub partition: i32,
    /// How far the group is behind the end of the partition, if known.
    pub lag: Option<i64>,
    /// What `lag` counts: `records` (Kafka) or `bytes` (the embedded journal).
    pub lag_unit: &'static str,
    /// Records between the committed offset and the highest fetched one.
    pub uncommitted: i64,
    /// Paused: too many uncommitted records (`max_uncommitted`).
    pub paused: bool,
    /// Records emitted again after a failure.
    pub retries: u64,
    /// Records produced to the dead-letter topic.
    pub dead_lettered: u64,
}

type Key = (String, String, i32);

fn registry() -> MutexGuard<'static, BTreeMap<Key, PartitionStatus>> {
    static ALL: OnceLock<Mutex<BTreeMap<Key, PartitionStatus>>> = OnceLock::new();
    ALL.get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner())
}

fn with(component: &str, topic: &str, partition: i32, f: impl FnOnce(&mut PartitionStatus)) {
    let mut all = registry();
    let s = all
        .entry((component.to_string(), topic.to_string(), partition))
        .or_insert_with(|| PartitionStatus {
            component: component.to_string(),
            topic: topic.to_string(),
            partition,
            lag_unit: "records",
            ..Default::default()
        });
    f(s);
}

/// A partition was assigned to `component` (of consumer group `group`).
pub(crate) fn assigned(
    component: &str,
    group: &str,
    topic: &str,
    partition: i32,
    unit: &'static str,
) {
    with(component, topic, partition, |s| {
        s.group = group.to_string();
        s.lag_unit = unit;
    });
}

/// A partition was revoked from `component`.
pub(crate) fn revoked(component: &str, topic: &str, partition: i32) {
    registry().remove(&(component.to_string(), topic.to_string(), partition));
}

/// The latest lag, uncommitted count and pause state of a partition (only for a partition
/// held: a revoked one stays out).
pub(crate) fn progress(
    component: &str,
    topic: &str,
    partition: i32,
    lag: Option<i64>,
    uncommitted: Option<i64>,
    paused: Option<bool>,
) {
    let mut all = registry();
    if let Some(s) = all.get_mut(&(component.to_string(), topic.to_string(), partition)) {
        if lag.is_some() {
            s.lag = lag;
        }
        if let Some(u) = uncommitted {
            s.uncommitted = u;
        }
        if let Some(p) = paused {
            s.paused = p;
        }
    }
}

/// A record of the partition was retried.
pub(crate) fn retried(component: &str, topic: &str, partition: i32) {
    with(component, topic, partition, |s| s.retries += 1);
}

/// A record of the partition was dead-lettered.
pub(crate) fn dead_lettered(component: &str, topic: &str, partition: i32) {
    with(component, topic, partition, |s| s.dead_lettered += 1);
}

/// Every partition the spouts of this process hold, by component, topic and partition.
pub fn snapshot() -> Vec<PartitionStatus> {
    registry().values().cloned().collect()
}

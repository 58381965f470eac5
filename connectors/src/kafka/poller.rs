//! The poller: one thread per spout task that owns the librdkafka consumer.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Sender, TrySendError};
use rdkafka::client::ClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::message::{Headers, Message};
use rdkafka::statistics::Statistics;
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};

use super::offsets::PartitionOffsets;
use super::{KafkaSpoutConfig, Mode, Start};

/// One fetched record, owned.
#[derive(Debug)]
pub(crate) struct Record {
    pub(crate) topic: Arc<str>,
    pub(crate) partition: i32,
    pub(crate) offset: i64,
    pub(crate) key: Option<Vec<u8>>,
    pub(crate) payload: Option<Vec<u8>>,
    pub(crate) timestamp: Option<i64>,
    pub(crate) headers: Vec<(String, Option<Vec<u8>>)>,
    /// The assignment generation of its partition when it was fetched.
    pub(crate) generation: u64,
}

/// One assigned partition.
#[derive(Debug)]
pub(crate) struct PartState {
    pub(crate) generation: u64,
    pub(crate) offsets: PartitionOffsets,
    pub(crate) paused: bool,
}

/// State shared by the poller (and its rebalance callbacks) and the spout.
#[derive(Debug, Default)]
pub(crate) struct Shared {
    pub(crate) partitions: HashMap<(Arc<str>, i32), PartState>,
    generations: u64,
}

pub(crate) fn lock(shared: &Mutex<Shared>) -> MutexGuard<'_, Shared> {
    // Every critical section leaves the state consistent, so a poisoned lock is usable.
    shared.lock().unwrap_or_else(|e| e.into_inner())
}

impl Shared {
    /// Whether `generation` is still the current assignment of the partition.
    pub(crate) fn current(&self, topic: &Arc<str>, partition: i32, generation: u64) -> bool {
        self.partitions
            .get(&(topic.clone(), partition))
            .is_some_and(|p| p.generation == generation)
    }

    /// Starts tracking a newly assigned partition; returns its generation.
    pub(crate) fn assign(&mut self, topic: Arc<str>, partition: i32) -> u64 {
        self.generations += 1;
        let generation = self.generations;
        self.partitions.insert(
            (topic, partition),
            PartState {
                generation,
                offsets: PartitionOffsets::new(),
                paused: false,
            },
        );
        generation
    }

    /// Marks a record done if its partition is still assigned in the same generation.
    pub(crate) fn done(&mut self, topic: &Arc<str>, partition: i32, generation: u64, offset: i64) {
        if let Some(p) = self.partitions.get_mut(&(topic.clone(), partition)) {
            if p.generation == generation {
                p.offsets.done(offset);
            }
        }
    }

    /// Positions that moved since they were last committed (successfully).
    fn committable(&self, only: Option<&TopicPartitionList>) -> TopicPartitionList {
        let mut tpl = TopicPartitionList::new();
        for ((topic, partition), state) in &self.partitions {
            if let Some(only) = only {
                if only.find_partition(topic, *partition).is_none() {
                    continue;
                }
            }
            if let Some(position) = state.offsets.committable() {
                let _ = tpl.add_partition_offset(topic, *partition, Offset::Offset(position));
            }
        }
        tpl
    }

    /// Records positions the broker accepted.
    fn mark_committed(&mut self, tpl: &TopicPartitionList) {
        for e in tpl.elements() {
            if let (Offset::Offset(o), Some(state)) = (
                e.offset(),
                self.partitions
                    .get_mut(&(Arc::from(e.topic()), e.partition())),
            ) {
                state.offsets.mark_committed(o);
            }
        }
    }
}

/// Commits `tpl` synchronously and records it; returns whether the broker accepted it.
fn commit_sync<C: ConsumerContext>(
    consumer: &BaseConsumer<C>,
    shared: &Mutex<Shared>,
    tpl: &TopicPartitionList,
    component: &str,
) -> bool {
    match consumer.commit(tpl, CommitMode::Sync) {
        Ok(()) => {
            lock(shared).mark_committed(tpl);
            true
        }
        Err(e) => {
            tracing::warn!(component, error = %e, "offset commit failed");
            false
        }
    }
}

pub(crate) struct PollerContext {
    shared: Arc<Mutex<Shared>>,
    mode: Mode,
    group: String,
    component: String,
}

impl ClientContext for PollerContext {
    fn stats(&self, statistics: Statistics) {
        for (topic, t) in statistics.topics {
            for (partition, p) in t.partitions {
                if partition >= 0 && p.consumer_lag >= 0 {
                    super::status::progress(
                        &self.component,
                        &topic,
                        partition,
                        Some(p.consumer_lag),
                        None,
                        None,
                    );
                    metrics::gauge!(
                        "squall_kafka_consumer_lag",
                        "component" => self.component.clone(),
                        "group" => self.group.clone(),
                        "topic" => topic.clone(),
                        "partition" => partition.to_string()
                    )
                    .set(p.consumer_lag as f64);
                }
            }
        }
    }

    fn error(&self, error: rdkafka::error::KafkaError, reason: &str) {
        tracing::warn!(component = %self.component, %error, reason, "kafka client error");
    }
}

impl ConsumerContext for PollerContext {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        let Rebalance::Revoke(revoked) = rebalance else {
            return;
        };
        let tpl = if self.mode == Mode::AtLeastOnce {
            lock(&self.shared).committable(Some(revoked))
        } else {
            TopicPartitionList::new()
        };
        if tpl.count() > 0 {
            commit_sync(consumer, &self.shared, &tpl, &self.component);
        }
        let mut shared = lock(&self.shared);
        let held = super::assignments::assignments(&self.group);
        for elem in revoked.elements() {
            shared
                .partitions
                .remove(&(Arc::from(elem.topic()), elem.partition()));
            held.revoke(elem.topic(), elem.partition());
            super::status::revoked(&self.component, elem.topic(), elem.partition());
        }
        drop(shared);
        tracing::info!(component = %self.component, partitions = revoked.count(), "partitions revoked");
    }

    fn commit_callback(
        &self,
        result: rdkafka::error::KafkaResult<()>,
        offsets: &TopicPartitionList,
    ) {
        match result {
            Ok(()) => lock(&self.shared).mark_committed(offsets),
            // Not marked: the next interval commits the position again.
            Err(e) => {
                tracing::warn!(component = %self.component, error = %e, "async offset commit failed")
            }
        }
    }

    fn post_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        let Rebalance::Assign(assigned) = rebalance else {
            return;
        };
        let mut shared = lock(&self.shared);
        let held = super::assignments::assignments(&self.group);
        for elem in assigned.elements() {
            shared.assign(Arc::from(elem.topic()), elem.partition());
            held.assign(elem.topic(), elem.partition());
            super::status::assigned(
                &self.component,
                &self.group,
                elem.topic(),
                elem.partition(),
                "records",
            );
        }
        tracing::info!(component = %self.component, partitions = assigned.count(), "partitions assigned");
    }
}

/// The consumer's librdkafka configuration.
pub(crate) fn client_config(config: &KafkaSpoutConfig) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", &config.brokers)
        .set("group.id", &config.group_id)
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set(
            "auto.offset.reset",
            match config.start {
                Start::Earliest => "earliest",
                Start::Latest => "latest",
            },
        )
        .set("statistics.interval.ms", "5000");
    for (k, v) in &config.options {
        c.set(k, v);
    }
    c
}

pub(crate) struct Poller {
    pub(crate) handle: JoinHandle<()>,
    pub(crate) stop: Arc<AtomicBool>,
}

fn tp_list(topic: &str, partition: i32) -> TopicPartitionList {
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition(topic, partition);
    tpl
}

/// Starts the poller thread. The consumer is created (and subscribed) before this returns,
/// so configuration errors surface in the spout's `open`.
pub(crate) fn spawn(
    config: KafkaSpoutConfig,
    component: String,
    records: Sender<Record>,
    shared: Arc<Mutex<Shared>>,
) -> Result<Poller, String> {
    let topics = config.subscription()?;
    let context = PollerContext {
        shared: shared.clone(),
        mode: config.mode,
        group: config.group_id.clone(),
        component: component.clone(),
    };
    let consumer: BaseConsumer<PollerContext> = client_config(&config)
        .create_with_context(context)
        .map_err(|e| format!("cannot create the Kafka consumer: {e}"))?;
    let refs: Vec<&str> = topics.iter().map(String::as_str).collect();
    consumer
        .subscribe(&refs)
        .map_err(|e| format!("cannot subscribe to {topics:?}: {e}"))?;
    let stop = Arc::new(AtomicBool::new(false));
    let stop_flag = stop.clone();
    let handle = std::thread::Builder::new()
        .name(format!("kafka-{component}"))
        .spawn(move || {
            let group = config.group_id.clone();
            run(
                consumer,
                config,
                component,
                records,
                shared.clone(),
                stop_flag,
            );
            // Stopped: this process holds none of its partitions any more.
            let held = super::assignments::assignments(&group);
            for (topic, partition) in lock(&shared).partitions.keys() {
                held.revoke(topic, *partition);
            }
        })
        .map_err(|e| format!("cannot start the poller thread: {e}"))?;
    Ok(Poller { handle, stop })
}

fn run(
    consumer: BaseConsumer<PollerContext>,
    config: KafkaSpoutConfig,
    component: String,
    records: Sender<Record>,
    shared: Arc<Mutex<Shared>>,
    stop: Arc<AtomicBool>,
) {
    let commit_every = Duration::from_millis(config.commit_interval_ms.max(1));
    let mut next_commit = Instant::now() + commit_every;
    let mut stash: VecDeque<Record> = VecDeque::new();
    let mut flow_paused = false;
    let resume_below = (config.max_uncommitted / 2).max(1);
    while !stop.load(Ordering::Acquire) {
        if config.mode == Mode::AtLeastOnce && Instant::now() >= next_commit {
            next_commit = Instant::now() + commit_every;
            let tpl = lock(&shared).committable(None);
            if tpl.count() > 0 {
                // Marked committed in `commit_callback` once the broker accepted it.
                if let Err(e) = consumer.commit(&tpl, CommitMode::Async) {
                    tracing::warn!(component = %component, error = %e, "offset commit failed");
                }
            }
        }

        // Hand over what is stashed; pause everything while the spout is behind.
        while let Some(r) = stash.pop_front() {
            match records.try_send(r) {
                Ok(()) => {}
                Err(TrySendError::Full(r)) => {
                    stash.push_front(r);
                    break;
                }
                Err(TrySendError::Disconnected(_)) => return,
            }
        }
        if let Ok(assignment) = consumer.assignment() {
            if !stash.is_empty() && !flow_paused {
                let _ = consumer.pause(&assignment);
                flow_paused = true;
            } else if stash.is_empty() && flow_paused {
                flow_paused = false;
                let mut resume = TopicPartitionList::new();
                let s = lock(&shared);
                for e in assignment.elements() {
                    let paused = s
                        .partitions
                        .get(&(Arc::from(e.topic()), e.partition()))
                        .is_some_and(|p| p.paused);
                    if !paused {
                        resume.add_partition(e.topic(), e.partition());
                    }
                }
                drop(s);
                let _ = consumer.resume(&resume);
            }
        }

        // The uncommitted limit, per partition.
        {
            let mut s = lock(&shared);
            for ((topic, partition), p) in s.partitions.iter_mut() {
                let uncommitted = p.offsets.uncommitted();
                super::status::progress(
                    &component,
                    topic,
                    *partition,
                    None,
                    Some(uncommitted),
                    Some(p.paused),
                );
                if !p.paused && uncommitted >= config.max_uncommitted {
                    p.paused = true;
                    let _ = consumer.pause(&tp_list(topic, *partition));
                    metrics::counter!("squall_kafka_partition_pauses_total", "component" => component.clone())
                        .increment(1);
                    tracing::info!(component = %component, %topic, partition, uncommitted, "partition paused: too many uncommitted records");
                } else if p.paused && uncommitted < resume_below {
                    p.paused = false;
                    if !flow_paused {
                        let _ = consumer.resume(&tp_list(topic, *partition));
                    }
                    tracing::info!(component = %component, %topic, partition, uncommitted, "partition resumed");
                }
            }
        }

        match consumer.poll(Duration::from_millis(50)) {
            None => {}
            Some(Err(e)) => {
                tracing::warn!(component = %component, error = %e, "kafka poll error");
            }
            Some(Ok(m)) => {
                let topic: Arc<str> = Arc::from(m.topic());
                let partition = m.partition();
                let offset = m.offset();
                let generation = {
                    let mut s = lock(&shared);
                    match s.partitions.get_mut(&(topic.clone(), partition)) {
                        Some(p) => {
                            if config.mode == Mode::AtLeastOnce {
                                p.offsets.fetched(offset);
                            }
                            Some(p.generation)
                        }
                        None => None, // not (or no longer) assigned
                    }
                };
                let Some(generation) = generation else {
                    continue;
                };
                if config.mode == Mode::AtMostOnce {
                    let mut tpl = TopicPartitionList::new();
                    let _ = tpl.add_partition_offset(&topic, partition, Offset::Offset(offset + 1));
                    if let Err(e) = consumer.commit(&tpl, CommitMode::Sync) {
                        tracing::warn!(component = %component, error = %e, "at-most-once commit failed; record not emitted");
                        let _ = consumer.seek(
                            &topic,
                            partition,
                            Offset::Offset(offset),
                            Duration::from_secs(1),
                        );
                        continue;
                    }
                }
                let headers = m
                    .headers()
                    .map(|hs| {
                        hs.iter()
                            .map(|h| (h.key.to_string(), h.value.map(<[u8]>::to_vec)))
                            .collect()
                    })
                    .unwrap_or_default();
                stash.push_back(Record {
                    topic,
                    partition,
                    offset,
                    key: m.key().map(<[u8]>::to_vec),
                    payload: m.payload().map(<[u8]>::to_vec),
                    timestamp: m.timestamp().to_millis(),
                    headers,
                    generation,
                });
            }
        }
    }

    // Shutdown: commit everything done, then leave the group. A commit can fail while the
    // group rebalances (another member leaving at the same time): poll, which runs the
    // rebalance callbacks (they commit revoked partitions), and try again.
    if config.mode == Mode::AtLeastOnce {
        for attempt in 1..=10 {
            let tpl = lock(&shared).committable(None);
            if tpl.count() == 0 || commit_sync(&consumer, &shared, &tpl, &component) {
                break;
            }
            tracing::info!(component = %component, attempt, "retrying the final offset commit");
            let _ = consumer.poll(Duration::from_millis(200));
        }
    }
    consumer.unsubscribe();
    tracing::debug!(component = %component, "kafka poller stopped");
}

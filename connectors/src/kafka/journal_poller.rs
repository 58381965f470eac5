//! The poller of a spout whose `brokers` is the [journal](crate::journal): one thread per
//! spout task, handing records to the spout like the Kafka poller does, with the same
//! at-least-once bookkeeping ([`Shared`], [`PartitionOffsets`](super::PartitionOffsets)).
//!
//! The journal has one owner process, so a group's tasks all run in it and the assignment
//! is static: task `i` of `n` reads the partitions `p` with `p % n == i`. Positions are
//! committed to the journal (durably) every `commit_interval_ms` and when the spout closes.
//! `max_uncommitted` counts records handed over and not done (positions are byte offsets,
//! so the offset distance the Kafka poller uses would count bytes).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crossbeam_channel::{SendTimeoutError, Sender};

use super::poller::{lock, Poller, Record, Shared};
use super::{KafkaSpoutConfig, Mode, Start};
use crate::journal::{journal_dir, Journal, Reader};

struct Assigned {
    topic: Arc<str>,
    partition: i32,
    reader: Reader,
    generation: u64,
}

/// Starts the poller thread for task `task.0` of `task.1`. Unknown topics and an
/// unusable journal are reported here, so they surface in the spout's `open`.
pub(crate) fn spawn(
    config: KafkaSpoutConfig,
    component: String,
    task: (usize, usize),
    records: Sender<Record>,
    shared: Arc<Mutex<Shared>>,
) -> Result<Poller, String> {
    let dir = journal_dir(&config.brokers).ok_or("not a journal")?;
    let journal = Journal::open(dir)
        .map_err(|e| format!("cannot open the journal in {}: {e}", dir.display()))?;
    let (index, tasks) = (task.0, task.1.max(1));
    let mut assigned = Vec::new();
    {
        let mut s = lock(&shared);
        for topic in config.subscription()? {
            let n = journal.partition_count(&topic).ok_or_else(|| {
                format!(
                    "topic {topic} does not exist in the journal in {}",
                    dir.display()
                )
            })?;
            for partition in (0..n).filter(|p| *p as usize % tasks == index) {
                let mut reader = journal
                    .reader(&topic, partition)
                    .map_err(|e| e.to_string())?;
                let (first, end) = journal.bounds(&topic, partition).unwrap_or((0, 0));
                let start = match journal.committed(&config.group_id, &topic, partition) {
                    Some(p) => p,
                    None => {
                        let p = match config.start {
                            Start::Earliest => first,
                            Start::Latest => end,
                        };
                        // The group reads this topic from now on: its position counts for
                        // retention and the backlog bound before its first record is done.
                        if config.mode != Mode::None {
                            journal
                                .commit(&config.group_id, &[(&topic, partition, p)])
                                .map_err(|e| format!("committing the start of {topic}: {e}"))?;
                        }
                        p
                    }
                };
                reader
                    .seek(start)
                    .map_err(|e| format!("reading {topic} partition {partition}: {e}"))?;
                let topic: Arc<str> = Arc::from(topic.as_str());
                let generation = s.assign(topic.clone(), partition);
                super::assignments::assignments(&config.group_id).assign(&topic, partition);
                super::status::assigned(&component, &config.group_id, &topic, partition, "bytes");
                assigned.push(Assigned {
                    topic,
                    partition,
                    reader,
                    generation,
                });
            }
        }
    }
    tracing::info!(component = %component, partitions = assigned.len(), "journal partitions assigned");
    let stop = Arc::new(AtomicBool::new(false));
    let stop_flag = stop.clone();
    let handle = std::thread::Builder::new()
        .name(format!("journal-{component}"))
        .spawn(move || {
            let held: Vec<(Arc<str>, i32)> = assigned
                .iter()
                .map(|a| (a.topic.clone(), a.partition))
                .collect();
            run(
                &journal, &config, &component, &records, &shared, &stop_flag, assigned,
            );
            // Stopped: this process holds none of them any more.
            let group = super::assignments::assignments(&config.group_id);
            for (topic, partition) in held {
                group.revoke(&topic, partition);
                super::status::revoked(&component, &topic, partition);
            }
        })
        .map_err(|e| format!("cannot start the poller thread: {e}"))?;
    Ok(Poller { handle, stop })
}

/// Commits every position that moved; returns whether the journal took them.
fn commit(journal: &Journal, group: &str, shared: &Mutex<Shared>, component: &str) -> bool {
    let positions: Vec<(Arc<str>, i32, i64)> = lock(shared)
        .partitions
        .iter()
        .filter_map(|((t, p), s)| s.offsets.committable().map(|o| (t.clone(), *p, o)))
        .collect();
    if positions.is_empty() {
        return true;
    }
    let list: Vec<(&str, i32, u64)> = positions
        .iter()
        .map(|(t, p, o)| (&**t, *p, (*o).max(0) as u64))
        .collect();
    match journal.commit(group, &list) {
        Ok(()) => {
            let mut s = lock(shared);
            for (t, p, o) in &positions {
                if let Some(state) = s.partitions.get_mut(&(t.clone(), *p)) {
                    state.offsets.mark_committed(*o);
                }
            }
            true
        }
        Err(e) => {
            tracing::warn!(component, error = %e, "journal commit failed");
            false
        }
    }
}

fn run(
    journal: &Journal,
    config: &KafkaSpoutConfig,
    component: &str,
    records: &Sender<Record>,
    shared: &Mutex<Shared>,
    stop: &AtomicBool,
    mut assigned: Vec<Assigned>,
) {
    let commit_every = Duration::from_millis(config.commit_interval_ms.max(1));
    let mut next_commit = Instant::now() + commit_every;
    let mut stash: VecDeque<Record> = VecDeque::new();
    let resume_below = (config.max_uncommitted / 2).max(1);
    while !stop.load(Ordering::Acquire) {
        if config.mode == Mode::AtLeastOnce && Instant::now() >= next_commit {
            next_commit = Instant::now() + commit_every;
            commit(journal, &config.group_id, shared, component);
        }

        // Hand over what is stashed, waiting a little when the spout is behind.
        if let Some(r) = stash.pop_front() {
            match records.send_timeout(r, Duration::from_millis(50)) {
                Ok(()) => {}
                Err(SendTimeoutError::Timeout(r)) => {
                    stash.push_front(r);
                    continue;
                }
                Err(SendTimeoutError::Disconnected(_)) => return,
            }
            while let Some(r) = stash.pop_front() {
                if let Err(e) = records.try_send(r) {
                    match e {
                        crossbeam_channel::TrySendError::Full(r) => stash.push_front(r),
                        crossbeam_channel::TrySendError::Disconnected(_) => return,
                    }
                    break;
                }
            }
            if !stash.is_empty() {
                continue;
            }
        }

        // The uncommitted limit, per partition.
        let mut paused = Vec::with_capacity(assigned.len());
        {
            let mut s = lock(shared);
            for a in &assigned {
                let Some(p) = s.partitions.get_mut(&(a.topic.clone(), a.partition)) else {
                    paused.push(true);
                    continue;
                };
                // Positions are byte offsets here: count the records instead.
                let uncommitted = p.offsets.outstanding() as i64;
                let lag = journal.bounds(&a.topic, a.partition).map(|(first, end)| {
                    let at = journal
                        .committed(&config.group_id, &a.topic, a.partition)
                        .unwrap_or(first);
                    end.saturating_sub(at) as i64
                });
                super::status::progress(
                    component,
                    &a.topic,
                    a.partition,
                    lag,
                    Some(uncommitted),
                    Some(p.paused),
                );
                if !p.paused && uncommitted >= config.max_uncommitted {
                    p.paused = true;
                    metrics::counter!("squall_kafka_partition_pauses_total", "component" => component.to_string())
                        .increment(1);
                    tracing::info!(component, topic = %a.topic, partition = a.partition, uncommitted, "partition paused: too many uncommitted records");
                } else if p.paused && uncommitted < resume_below {
                    p.paused = false;
                    tracing::info!(component, topic = %a.topic, partition = a.partition, uncommitted, "partition resumed");
                }
                paused.push(p.paused);
            }
        }

        let seen = journal.appended();
        let mut read_any = false;
        for (a, paused) in assigned.iter_mut().zip(paused) {
            if paused {
                continue;
            }
            for _ in 0..256 {
                match a.reader.next_record() {
                    Ok(Some((offset, rec))) => {
                        let offset = offset as i64;
                        if config.mode == Mode::AtLeastOnce {
                            let mut s = lock(shared);
                            match s.partitions.get_mut(&(a.topic.clone(), a.partition)) {
                                Some(p) if p.generation == a.generation => {
                                    p.offsets.fetched(offset)
                                }
                                _ => break,
                            }
                        }
                        read_any = true;
                        stash.push_back(Record {
                            topic: a.topic.clone(),
                            partition: a.partition,
                            offset,
                            key: rec.key,
                            payload: rec.value,
                            timestamp: Some(rec.timestamp_ms),
                            headers: rec.headers,
                            generation: a.generation,
                        });
                    }
                    Ok(None) => break,
                    Err(e) => {
                        metrics::counter!("squall_journal_read_errors_total", "component" => component.to_string())
                            .increment(1);
                        tracing::error!(component, topic = %a.topic, partition = a.partition, error = %e, "journal read failed");
                        break;
                    }
                }
            }
        }
        if config.mode == Mode::AtMostOnce && read_any {
            let list: Vec<(&str, i32, u64)> = assigned
                .iter()
                .map(|a| (&*a.topic, a.partition, a.reader.position()))
                .collect();
            if let Err(e) = journal.commit(&config.group_id, &list) {
                tracing::warn!(component, error = %e, "at-most-once commit failed; records not emitted");
                stash.clear();
                continue;
            }
        }
        if !read_any && stash.is_empty() {
            journal.wait_appended(seen, Duration::from_millis(50));
        }
    }
    if config.mode == Mode::AtLeastOnce {
        commit(journal, &config.group_id, shared, component);
    }
    tracing::debug!(component, "journal poller stopped");
}

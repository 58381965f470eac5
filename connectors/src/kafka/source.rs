//! The spout side: emits records, tracks them until done, retries and dead-letters.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};

use crossbeam_channel::Receiver;
use squall_topology::{
    values, ComponentError, FailReason, Fields, MessageId, OutputDeclarer, Spout,
    SpoutOutputCollector, SpoutStatus, TopologyContext, Value,
};
use tokio::time::Instant;

use super::poller::{self, lock, Poller, Record, Shared};
use super::producer::{LogProducer, OutRecord};
use super::{KafkaSpoutConfig, Mode, ValueFormat};
use crate::journal::journal_dir;

struct InFlight {
    record: Arc<Record>,
    attempts: u32,
    /// Whether its last failure was transient (then it is never dead-lettered).
    transient: bool,
    /// Its permanent failures (dead-lettered past `retry.max_retries`).
    permanent: u32,
}

/// A partition's identity.
type PartKey = (Arc<str>, i32);

/// A partition with failed records. Nothing new of it is emitted until they are all done,
/// and they go out again together, in offset order, when the back-off of the first failure
/// runs out: so a device's payloads (one key, one partition) are never reordered by a
/// retry, which the alert engine's event-time guard would take for late arrivals.
#[derive(Default)]
struct Blocked {
    /// Failed and waiting for `due`: offset -> id.
    waiting: BTreeMap<i64, u64>,
    /// Emitted again and not done yet.
    reemitted: HashSet<u64>,
    /// When `waiting` goes out again (`None`: nothing scheduled).
    due: Option<Instant>,
    /// Records fetched meanwhile, emitted in order once the partition is clear.
    held: VecDeque<Record>,
}

impl Blocked {
    fn clear(&self) -> bool {
        self.waiting.is_empty() && self.reemitted.is_empty()
    }
}

struct Running {
    records: Receiver<Record>,
    shared: Arc<Mutex<Shared>>,
    poller: Option<Poller>,
    dlq: LogProducer<u64>,
    dlq_reports: Receiver<(u64, Option<String>)>,
    in_flight: HashMap<u64, InFlight>,
    /// Dead-letter writes to try again (by id).
    retries: BinaryHeap<Reverse<(Instant, u64)>>,
    /// Partitions with failed records, and when each goes out again.
    blocked: HashMap<PartKey, Blocked>,
    blocked_due: BinaryHeap<Reverse<(Instant, Arc<str>, i32)>>,
    next_id: u64,
    component: String,
}

/// The `kafka` spout (see the [module docs](super)). Emits `key`, `value`, `topic`,
/// `partition`, `offset`, `timestamp` and `headers` (a JSON object of UTF-8 header values).
pub struct KafkaSpout {
    config: KafkaSpoutConfig,
    running: Option<Running>,
}

impl std::fmt::Debug for KafkaSpout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaSpout").finish_non_exhaustive()
    }
}

impl KafkaSpout {
    /// A spout with `config` (checked here; connecting happens in `open`).
    pub fn new(config: KafkaSpoutConfig) -> Result<Self, String> {
        config.validate()?;
        Ok(KafkaSpout {
            config,
            running: None,
        })
    }
}

fn headers_json(headers: &[(String, Option<Vec<u8>>)]) -> Value {
    let map: serde_json::Map<String, serde_json::Value> = headers
        .iter()
        .map(|(k, v)| {
            let v = v.as_ref().map_or(serde_json::Value::Null, |v| {
                String::from_utf8_lossy(v).into_owned().into()
            });
            (k.clone(), v)
        })
        .collect();
    Value::Str(serde_json::Value::Object(map).to_string().into())
}

impl Running {
    fn decode(&self, format: ValueFormat, record: &Record) -> Result<Value, String> {
        let Some(payload) = &record.payload else {
            return Ok(Value::Null);
        };
        match format {
            ValueFormat::Bytes => Ok(Value::Bytes(payload.as_slice().into())),
            ValueFormat::String => std::str::from_utf8(payload)
                .map(Value::from)
                .map_err(|e| format!("value is not valid UTF-8: {e}")),
            ValueFormat::Json => serde_json::from_slice::<serde_json::Value>(payload)
                .map(Value::any)
                .map_err(|e| format!("value is not valid JSON: {e}")),
        }
    }

    fn emit(
        &self,
        out: &mut SpoutOutputCollector,
        id: u64,
        record: &Record,
        value: Value,
        tracked: bool,
    ) {
        let values = values![
            record.key.as_deref().map(Value::from),
            value,
            record.topic.clone(),
            record.partition,
            record.offset,
            record.timestamp,
            headers_json(&record.headers)
        ];
        if tracked {
            out.emit_tracked(values, MessageId(id));
        } else {
            out.emit(values);
        }
    }

    /// Produces a record to the dead-letter topic; it is done once the broker has it.
    fn dead_letter(&mut self, topic: &str, id: u64, code: &'static str, reason: &str) {
        let Some(f) = self.in_flight.get(&id) else {
            return;
        };
        let r = f.record.clone();
        let partition = r.partition.to_string();
        let offset = r.offset.to_string();
        let attempts = f.attempts.to_string();
        let mut headers: Vec<(&str, &[u8])> = r
            .headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_deref().unwrap_or_default()))
            .collect();
        for (k, v) in [
            ("squall.failure.reason", reason),
            ("squall.original.topic", &*r.topic),
            ("squall.original.partition", partition.as_str()),
            ("squall.original.offset", offset.as_str()),
            ("squall.attempts", attempts.as_str()),
        ] {
            headers.push((k, v.as_bytes()));
        }
        let record = OutRecord {
            topic,
            key: r.key.as_deref(),
            payload: r.payload.as_deref(),
            headers: &headers,
        };
        if let Err((e, _)) = self.dlq.send(record, id) {
            tracing::error!(component = %self.component, error = %e, "cannot queue dead-letter record; retrying later");
            self.retries.push(Reverse((
                Instant::now() + std::time::Duration::from_secs(1),
                id,
            )));
        } else {
            metrics::counter!("squall_kafka_dead_lettered_total", "component" => self.component.clone(), "reason" => code).increment(1);
            super::status::dead_lettered(&self.component, &r.topic, r.partition);
            tracing::warn!(component = %self.component, topic = %r.topic, partition = r.partition, offset = r.offset, reason, "record dead-lettered");
        }
    }

    fn done(&mut self, id: u64) {
        if let Some(f) = self.in_flight.remove(&id) {
            let r = &f.record;
            lock(&self.shared).done(&r.topic, r.partition, r.generation, r.offset);
            let key = (r.topic.clone(), r.partition);
            if let Some(b) = self.blocked.get_mut(&key) {
                b.reemitted.remove(&id);
                b.waiting.remove(&r.offset);
                if b.clear() && b.held.is_empty() {
                    self.blocked.remove(&key);
                }
            }
        }
    }

    /// A record fetched from the broker: tracked (at-least-once) and emitted, unless its
    /// partition was revoked since.
    fn emit_new(
        &mut self,
        config: &KafkaSpoutConfig,
        out: &mut SpoutOutputCollector,
        record: Record,
    ) {
        if config.mode == Mode::AtLeastOnce
            && !lock(&self.shared).current(&record.topic, record.partition, record.generation)
        {
            return; // fetched before its partition was revoked
        }
        let id = self.next_id;
        self.next_id += 1;
        let record = Arc::new(record);
        let tracked = config.mode == Mode::AtLeastOnce;
        if tracked {
            self.in_flight.insert(
                id,
                InFlight {
                    record: record.clone(),
                    attempts: 0,
                    transient: false,
                    permanent: 0,
                },
            );
        }
        match self.decode(config.value, &record) {
            Ok(value) => self.emit(out, id, &record, value, tracked),
            Err(e) if tracked => self.dead_letter(&config.dead_letter_topic, id, "undecodable", &e),
            Err(e) => {
                tracing::warn!(component = %self.component, error = %e, offset = record.offset, "undecodable record skipped")
            }
        }
    }

    /// Emits the failed records of the partition again, in offset order.
    fn reemit(&mut self, config: &KafkaSpoutConfig, out: &mut SpoutOutputCollector, key: &PartKey) {
        let Some(b) = self.blocked.get_mut(key) else {
            return;
        };
        b.due = None;
        let waiting = std::mem::take(&mut b.waiting);
        for (_, id) in waiting {
            let Some(f) = self.in_flight.get(&id) else {
                continue;
            };
            let record = f.record.clone();
            if !lock(&self.shared).current(&record.topic, record.partition, record.generation) {
                self.in_flight.remove(&id); // partition revoked: its new owner re-reads it
                continue;
            }
            metrics::counter!("squall_kafka_retries_total", "component" => self.component.clone())
                .increment(1);
            super::status::retried(&self.component, &record.topic, record.partition);
            match self.decode(config.value, &record) {
                Ok(value) => {
                    if let Some(b) = self.blocked.get_mut(key) {
                        b.reemitted.insert(id);
                    }
                    self.emit(out, id, &record, value, true);
                }
                Err(e) => self.dead_letter(&config.dead_letter_topic, id, "undecodable", &e),
            }
        }
        if let Some(b) = self.blocked.get(key) {
            if b.clear() && b.held.is_empty() {
                self.blocked.remove(key);
            }
        }
    }
}

impl Spout for KafkaSpout {
    fn declare_outputs(&self, declarer: &mut OutputDeclarer) {
        declarer.declare(Fields::new([
            "key",
            "value",
            "topic",
            "partition",
            "offset",
            "timestamp",
            "headers",
        ]));
    }

    fn open(&mut self, ctx: &TopologyContext) -> Result<(), ComponentError> {
        let component = format!("{}#{}", ctx.component_id(), ctx.task_index());
        let (records_tx, records) = crossbeam_channel::bounded(self.config.buffer);
        let shared = Arc::new(Mutex::new(Shared::default()));
        let (reports_tx, dlq_reports) = crossbeam_channel::unbounded();
        let dlq = LogProducer::new(
            &self.config.brokers,
            [],
            move |id: u64, result: Result<(), String>| {
                let _ = reports_tx.send((id, result.err()));
            },
        )
        .map_err(|e| ComponentError::msg(format!("dead-letter producer: {e}")))?;
        let poller = if journal_dir(&self.config.brokers).is_some() {
            super::journal_poller::spawn(
                self.config.clone(),
                component.clone(),
                (ctx.task_index(), ctx.parallelism()),
                records_tx,
                shared.clone(),
            )
        } else {
            poller::spawn(
                self.config.clone(),
                component.clone(),
                records_tx,
                shared.clone(),
            )
        }
        .map_err(ComponentError)?;
        self.running = Some(Running {
            records,
            shared,
            poller: Some(poller),
            dlq,
            dlq_reports,
            in_flight: HashMap::new(),
            retries: BinaryHeap::new(),
            blocked: HashMap::new(),
            blocked_due: BinaryHeap::new(),
            next_id: 0,
            component,
        });
        Ok(())
    }

    fn next_tuple(&mut self, out: &mut SpoutOutputCollector) -> SpoutStatus {
        let config = &self.config;
        let Some(r) = self.running.as_mut() else {
            return SpoutStatus::Exhausted;
        };
        // Dead-letter deliveries: done, or try again.
        while let Ok((id, error)) = r.dlq_reports.try_recv() {
            match error {
                None => r.done(id),
                Some(e) => {
                    tracing::error!(component = %r.component, error = %e, topic = %config.dead_letter_topic, "dead-letter delivery failed; retrying");
                    r.retries.push(Reverse((
                        Instant::now() + config.retry.delay(config.retry.max_retries + 1),
                        id,
                    )));
                }
            }
        }
        // Dead-letter writes to try again.
        if let Some(&Reverse((due, id))) = r.retries.peek() {
            if due <= Instant::now() {
                r.retries.pop();
                r.dead_letter(
                    &config.dead_letter_topic,
                    id,
                    "retry",
                    "dead-letter delivery retry",
                );
                return SpoutStatus::Active;
            }
        }
        // Partitions whose back-off ran out: their failed records, in order.
        if let Some(Reverse((due, topic, partition))) = r.blocked_due.peek().cloned() {
            if due <= Instant::now() {
                r.blocked_due.pop();
                let key = (topic, partition);
                if r.blocked.get(&key).and_then(|b| b.due) == Some(due) {
                    r.reemit(config, out, &key);
                }
                return SpoutStatus::Active;
            }
        }
        // Partitions clear again: what was fetched meanwhile, in order.
        let released = r
            .blocked
            .iter_mut()
            .find(|(_, b)| b.clear() && !b.held.is_empty())
            .map(|(k, b)| (k.clone(), b.held.pop_front()));
        if let Some((key, record)) = released {
            if r.blocked
                .get(&key)
                .is_some_and(|b| b.clear() && b.held.is_empty())
            {
                r.blocked.remove(&key);
            }
            if let Some(record) = record {
                r.emit_new(config, out, record);
            }
            return SpoutStatus::Active;
        }
        let Ok(record) = r.records.try_recv() else {
            return SpoutStatus::Active;
        };
        if let Some(b) = r.blocked.get_mut(&(record.topic.clone(), record.partition)) {
            b.held.push_back(record); // behind the partition's failed records
            return SpoutStatus::Active;
        }
        r.emit_new(config, out, record);
        SpoutStatus::Active
    }

    fn ack(&mut self, id: MessageId) {
        if let Some(r) = self.running.as_mut() {
            if let Some(ts) = r.in_flight.get(&id.0).and_then(|f| f.record.timestamp) {
                let now_ms = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_millis() as i64);
                metrics::histogram!(super::RECORD_LATENCY_METRIC, "component" => r.component.clone())
                    .record((now_ms - ts).max(0) as f64 / 1000.0);
            }
            r.done(id.0);
        }
    }

    fn fail(&mut self, id: MessageId, reason: &FailReason) {
        let Some(r) = self.running.as_mut() else {
            return;
        };
        let Some(f) = r.in_flight.get_mut(&id.0) else {
            return;
        };
        f.attempts += 1;
        f.transient = reason.is_transient();
        if !f.transient {
            f.permanent += 1;
        }
        let (attempts, permanent, transient) = (f.attempts, f.permanent, f.transient);
        let key = (f.record.topic.clone(), f.record.partition);
        let offset = f.record.offset;
        if let Some(b) = r.blocked.get_mut(&key) {
            b.reemitted.remove(&id.0);
        }
        if !transient && permanent > self.config.retry.max_retries {
            let text = reason.to_string();
            r.dead_letter(&self.config.dead_letter_topic, id.0, reason.code(), &text);
            return;
        }
        if transient && attempts == self.config.retry.max_retries + 1 {
            // It passes (a locked database, an absent broker, a timeout): retried for as
            // long as it takes, at the longest back-off; never dead-lettered.
            tracing::warn!(component = %r.component, attempts, %reason, "a record keeps failing for a transient reason; retrying until it passes");
        }
        let b = r.blocked.entry(key.clone()).or_default();
        b.waiting.insert(offset, id.0);
        if b.due.is_none() {
            let due = Instant::now() + self.config.retry.delay(attempts);
            b.due = Some(due);
            r.blocked_due.push(Reverse((due, key.0, key.1)));
        }
    }

    fn close(&mut self) {
        let Some(mut r) = self.running.take() else {
            return;
        };
        let mut wait = move || {
            r.dlq.flush(std::time::Duration::from_secs(10));
            if let Some(p) = r.poller.take() {
                p.stop.store(true, std::sync::atomic::Ordering::Release);
                let _ = p.handle.join();
            }
        };
        // The final commit and leaving the group are blocking calls.
        match tokio::runtime::Handle::try_current().map(|h| h.runtime_flavor()) {
            Ok(tokio::runtime::RuntimeFlavor::MultiThread) => tokio::task::block_in_place(wait),
            _ => wait(),
        }
    }
}

//! The `kafka` bolt: produces each input tuple to a topic and acks it only once the broker
//! acknowledged the write.

use std::collections::{BTreeMap, HashMap};

use crossbeam_channel::Receiver;
use serde::Deserialize;
use squall_topology::{
    Bolt, BoltError, ComponentError, OutputCollector, TopologyContext, Tuple, Value,
};

use super::producer::{LogProducer, OutRecord};

/// Options of the `kafka` bolt.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaBoltConfig {
    /// Bootstrap servers, `host:port[,host:port]`.
    pub brokers: String,
    /// The topic written to.
    pub topic: String,
    /// The input field used as record key (none: no key).
    #[serde(default)]
    pub key_field: Option<String>,
    /// The input field used as record value; absent: the whole tuple as a JSON object
    /// (field name -> value).
    #[serde(default)]
    pub value_field: Option<String>,
    /// librdkafka settings passed through.
    #[serde(default)]
    pub options: BTreeMap<String, String>,
}

impl KafkaBoltConfig {
    /// A producer to `topic` on `brokers` writing each tuple as a JSON object, unkeyed.
    pub fn new(brokers: impl Into<String>, topic: impl Into<String>) -> Self {
        KafkaBoltConfig {
            brokers: brokers.into(),
            topic: topic.into(),
            key_field: None,
            value_field: None,
            options: BTreeMap::new(),
        }
    }
}

/// Produces each input tuple (an idempotent producer with `acks=all`); holds the tuple
/// until the delivery report, then acks it, or fails it with the delivery error. Tick
/// tuples are ignored. The producer's I/O runs on librdkafka's threads; delivery reports
/// wake the bolt.
pub struct KafkaBolt {
    config: KafkaBoltConfig,
    producer: Option<LogProducer<u64>>,
    reports: Option<Receiver<(u64, Option<String>)>>,
    held: HashMap<u64, Tuple>,
    next: u64,
}

impl std::fmt::Debug for KafkaBolt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaBolt").finish_non_exhaustive()
    }
}

/// The bytes of a field value: strings and bytes as they are, JSON (`Any`) as its text,
/// numbers and booleans as their text, null as absent.
fn bytes_of(v: &Value) -> Option<Vec<u8>> {
    match v {
        Value::Null => None,
        Value::Str(s) => Some(s.as_bytes().to_vec()),
        Value::Bytes(b) => Some(b.to_vec()),
        other => Some(match other.to_json() {
            serde_json::Value::String(s) => s.into_bytes(),
            json => json.to_string().into_bytes(),
        }),
    }
}

impl KafkaBolt {
    /// A bolt with `config`.
    pub fn new(config: KafkaBoltConfig) -> Result<Self, String> {
        if config.topic.is_empty() {
            return Err("`topic` is empty".into());
        }
        Ok(KafkaBolt {
            config,
            producer: None,
            reports: None,
            held: HashMap::new(),
            next: 0,
        })
    }

    fn settle(&mut self, out: &mut OutputCollector) {
        let Some(reports) = &self.reports else { return };
        while let Ok((id, error)) = reports.try_recv() {
            let Some(t) = self.held.remove(&id) else {
                continue;
            };
            match error {
                None => out.ack(&t),
                // The broker may take it later.
                Some(e) => {
                    out.fail_transient(&t, format!("delivery to {} failed: {e}", self.config.topic))
                }
            }
        }
    }
}

impl Bolt for KafkaBolt {
    fn prepare(&mut self, ctx: &TopologyContext) -> Result<(), ComponentError> {
        let (tx, rx) = crossbeam_channel::unbounded();
        let waker = ctx.waker();
        let producer = LogProducer::new(
            &self.config.brokers,
            self.config
                .options
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str())),
            move |id: u64, result: Result<(), String>| {
                let _ = tx.send((id, result.err()));
                if let Some(w) = &waker {
                    w.wake();
                }
            },
        )
        .map_err(ComponentError::msg)?;
        self.producer = Some(producer);
        self.reports = Some(rx);
        Ok(())
    }

    fn execute(&mut self, input: Tuple, out: &mut OutputCollector) -> Result<(), BoltError> {
        self.settle(out);
        if input.is_tick() {
            return Ok(());
        }
        let Some(producer) = &self.producer else {
            return Err(BoltError::msg("kafka bolt used before prepare"));
        };
        let payload = match &self.config.value_field {
            None => Some(
                serde_json::to_vec(&input.to_json_object())
                    .map_err(|e| BoltError::msg(e.to_string()))?,
            ),
            Some(field) => bytes_of(input.get_by_field(field).ok_or_else(|| {
                BoltError::msg(format!(
                    "kafka: input from \"{}\" has no field `{field}` (fields: {})",
                    input.source_component(),
                    input.fields()
                ))
            })?),
        };
        let key = match &self.config.key_field {
            None => None,
            Some(f) => bytes_of(input.get_by_field(f).ok_or_else(|| {
                BoltError::msg(format!(
                    "kafka: input has no key field `{f}` (fields: {})",
                    input.fields()
                ))
            })?),
        };
        let id = self.next;
        self.next += 1;
        let record = OutRecord {
            topic: &self.config.topic,
            key: key.as_deref(),
            payload: payload.as_deref(),
            headers: &[],
        };
        producer.send(record, id).map_err(|(e, _)| {
            BoltError::msg(format!(
                "kafka: cannot queue record for {}: {e}",
                self.config.topic
            ))
        })?;
        out.hold();
        self.held.insert(id, input);
        Ok(())
    }

    fn wake(&mut self, out: &mut OutputCollector) {
        self.settle(out);
    }

    fn cleanup(&mut self) {
        if let Some(p) = self.producer.take() {
            let flush = move || {
                p.flush(std::time::Duration::from_secs(10));
            };
            match tokio::runtime::Handle::try_current().map(|h| h.runtime_flavor()) {
                Ok(tokio::runtime::RuntimeFlavor::MultiThread) => {
                    tokio::task::block_in_place(flush)
                }
                _ => flush(),
            }
        }
    }
}

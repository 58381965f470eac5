//! [`LogProducer`]: one way to write records, whichever broker `brokers` names: a Kafka
//! cluster (librdkafka's idempotent producer, `acks=all`) or the durable embedded
//! [journal](crate::journal) (`journal:DIR`).
//!
//! Every record sent is reported exactly once to the producer's `report` callback with
//! the opaque value it was sent with: `Ok` once the broker has it (for the journal: once it
//! is on disk), `Err` with the reason otherwise. `report` runs on the producer's own
//! threads and must not block.

use std::sync::Arc;
use std::time::Duration;

use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::ClientContext;

use crate::journal::{journal_dir, Journal, StoredRecord};

/// A record to write.
#[derive(Clone, Copy, Debug)]
pub struct OutRecord<'a> {
    /// The topic.
    pub topic: &'a str,
    /// The key (records with the same key go to the same partition).
    pub key: Option<&'a [u8]>,
    /// The value.
    pub payload: Option<&'a [u8]>,
    /// Headers, in order.
    pub headers: &'a [(&'a str, &'a [u8])],
}

type Report<O> = Arc<dyn Fn(O, Result<(), String>) + Send + Sync>;

/// librdkafka's delivery callback, forwarding to `report`.
struct ReportContext<O> {
    report: Report<O>,
}

impl<O> ClientContext for ReportContext<O> {}

impl<O: Send + Sync + 'static> ProducerContext for ReportContext<O> {
    type DeliveryOpaque = Box<O>;
    fn delivery(&self, result: &DeliveryResult<'_>, opaque: Self::DeliveryOpaque) {
        let r = result.as_ref().map(|_| ()).map_err(|(e, _)| e.to_string());
        (self.report)(*opaque, r);
    }
}

enum Inner<O: Send + Sync + 'static> {
    Kafka(ThreadedProducer<ReportContext<O>>),
    Journal(Arc<Journal>, Report<O>),
}

/// A producer to a Kafka cluster or the journal (see the module docs).
pub struct LogProducer<O: Send + Sync + 'static> {
    inner: Inner<O>,
}

impl<O: Send + Sync + 'static> std::fmt::Debug for LogProducer<O> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match &self.inner {
            Inner::Kafka(_) => "kafka",
            Inner::Journal(..) => "journal",
        };
        f.debug_struct("LogProducer")
            .field("kind", &kind)
            .finish_non_exhaustive()
    }
}

impl<O: Send + Sync + 'static> LogProducer<O> {
    /// A producer to `brokers`; `options` are librdkafka settings (ignored by the
    /// journal), applied after `enable.idempotence=true` and `acks=all`.
    pub fn new<'a>(
        brokers: &str,
        options: impl IntoIterator<Item = (&'a str, &'a str)>,
        report: impl Fn(O, Result<(), String>) + Send + Sync + 'static,
    ) -> Result<Self, String> {
        let report: Report<O> = Arc::new(report);
        if let Some(dir) = journal_dir(brokers) {
            let journal = Journal::open(dir)
                .map_err(|e| format!("cannot open the journal in {}: {e}", dir.display()))?;
            return Ok(LogProducer {
                inner: Inner::Journal(journal, report),
            });
        }
        let mut c = rdkafka::ClientConfig::new();
        c.set("bootstrap.servers", brokers)
            .set("enable.idempotence", "true")
            .set("acks", "all");
        for (k, v) in options {
            c.set(k, v);
        }
        let producer = c
            .create_with_context(ReportContext { report })
            .map_err(|e| format!("cannot create the Kafka producer: {e}"))?;
        Ok(LogProducer {
            inner: Inner::Kafka(producer),
        })
    }

    /// Queues `record`; its outcome goes to `report` with `opaque`. Refused at once (with
    /// the opaque value back) when it cannot be queued (a full queue, an unknown topic).
    pub fn send(&self, record: OutRecord<'_>, opaque: O) -> Result<(), (String, O)> {
        match &self.inner {
            Inner::Kafka(p) => {
                let mut headers = OwnedHeaders::new_with_capacity(record.headers.len());
                for (k, v) in record.headers {
                    headers = headers.insert(Header {
                        key: k,
                        value: Some(*v),
                    });
                }
                let mut r: BaseRecord<'_, [u8], [u8], Box<O>> =
                    BaseRecord::with_opaque_to(record.topic, Box::new(opaque));
                if !record.headers.is_empty() {
                    r = r.headers(headers);
                }
                if let Some(k) = record.key {
                    r = r.key(k);
                }
                if let Some(p) = record.payload {
                    r = r.payload(p);
                }
                p.send(r)
                    .map_err(|(e, r)| (e.to_string(), *r.delivery_opaque))
            }
            Inner::Journal(j, report) => {
                let stored = StoredRecord {
                    timestamp_ms: now_ms(),
                    key: record.key.map(<[u8]>::to_vec),
                    value: record.payload.map(<[u8]>::to_vec),
                    headers: record
                        .headers
                        .iter()
                        .map(|(k, v)| ((*k).to_string(), Some(v.to_vec())))
                        .collect(),
                };
                // The opaque value travels in a slot the callback empties, so a refused
                // append can hand it back.
                let slot = Arc::new(std::sync::Mutex::new(Some(opaque)));
                let in_callback = slot.clone();
                let report = report.clone();
                let done = Box::new(move |r: Result<crate::journal::Position, String>| {
                    let taken = in_callback.lock().ok().and_then(|mut s| s.take());
                    if let Some(o) = taken {
                        report(o, r.map(|_| ()));
                    }
                });
                j.append(record.topic, None, stored, done)
                    .map_err(|(e, _)| {
                        let o = slot.lock().ok().and_then(|mut s| s.take());
                        (e, o.expect("a refused append did not run its callback"))
                    })
            }
        }
    }

    /// Waits up to `timeout` for queued records to be reported (blocking).
    pub fn flush(&self, timeout: Duration) {
        match &self.inner {
            Inner::Kafka(p) => {
                let _ = p.flush(timeout);
            }
            Inner::Journal(..) => {
                // Appends are reported by the writer thread as soon as they are durable;
                // there is nothing buffered on this side.
            }
        }
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

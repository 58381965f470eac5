//! The contracts between the pipeline's stages, declared once: stream and field names,
//! and the typed values that travel in them (`Value::Any`, shared, never re-parsed).
//!
//! | stage | stream | fields |
//! |---|---|---|
//! | `enrich` | default | `device` (int), `observation` ([`Observation`]) |
//! | `enrich` | `rejected` | `account`, `agent_key`, `reason`, `error` (strings) |
//! | `split` | default | `device` (int), `observation` ([`Observation`]) |
//! | `threshold` | default | `account`, `device`, `event` ([`AlertEvent`]), `received_at` (epoch s, or null) |
//! | `notify` | default | `key`, `value` (the [`Notification`] as JSON bytes: it leaves the process), `id` |
//!
//! Downstream stages group by `device` (fields grouping), so one task owns each device.
//!
//! [`Notification`]: squall_alerting::notify::Notification

use std::sync::Arc;

use squall_alerting::engine::Observation;
use squall_alerting::events::AlertEvent;
use squall_topology::{values, BoltError, Fields, Tuple, Value, Values};

/// The field that carries the device id (the fields grouping key).
pub const DEVICE: &str = "device";
/// The field that carries an [`Observation`].
pub const OBSERVATION: &str = "observation";
/// The field that carries an [`AlertEvent`].
pub const EVENT: &str = "event";
/// The field that carries when the intake received the payload (epoch seconds).
pub const RECEIVED_AT: &str = "received_at";
/// The stream rejected payloads go to.
pub const REJECTED: &str = "rejected";

/// The fields of an observation stream (`enrich`, `split`).
pub fn observation_fields() -> Fields {
    Fields::new([DEVICE, OBSERVATION])
}

/// The fields of the `rejected` stream.
pub fn rejected_fields() -> Fields {
    Fields::new(["account", "agent_key", "reason", "error"])
}

/// The fields of an event stream (`threshold`).
pub fn event_fields() -> Fields {
    Fields::new(["account", DEVICE, EVENT, RECEIVED_AT])
}

/// The values of an observation tuple.
pub fn observation_values(obs: Arc<Observation>) -> Values {
    values![obs.device.0, Value::Any(obs)]
}

/// The values of an event tuple.
pub fn event_values(event: Arc<AlertEvent>, received_at: Option<f64>) -> Values {
    values![
        event.account.clone(),
        event.device.0,
        Value::Any(event),
        received_at
    ]
}

fn any_of<T: Send + Sync + 'static>(
    t: &Tuple,
    field: &str,
    what: &str,
) -> Result<Arc<T>, BoltError> {
    match t.get_by_field(field) {
        Some(Value::Any(a)) => a.clone().downcast::<T>().map_err(|_| {
            BoltError::msg(format!(
                "`{field}` from \"{}\" does not hold {what}",
                t.source_component()
            ))
        }),
        _ => Err(BoltError::msg(format!(
            "input from \"{}\" has no `{field}` (fields: {})",
            t.source_component(),
            t.fields()
        ))),
    }
}

/// The [`Observation`] of an observation tuple.
pub fn observation_of(t: &Tuple) -> Result<Arc<Observation>, BoltError> {
    any_of(t, OBSERVATION, "an observation")
}

/// The [`AlertEvent`] of an event tuple.
pub fn event_of(t: &Tuple) -> Result<Arc<AlertEvent>, BoltError> {
    any_of(t, EVENT, "an alert event")
}

/// The histogram of how long after the intake received it a payload passed a stage
/// (label `stage`: `enriched`, `stored`, `evaluated`, `notified`), in seconds.
pub const STAGE_LATENCY_METRIC: &str = "squall_stage_latency_seconds";

/// Records how long after the intake received it a payload passed `stage`
/// ([`STAGE_LATENCY_METRIC`]).
pub fn record_stage(stage: &'static str, received_at: f64) {
    metrics::histogram!(STAGE_LATENCY_METRIC, "stage" => stage)
        .record((now_secs() - received_at).max(0.0));
}

/// Wall-clock time in epoch seconds.
pub fn now_secs() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// How many times a bolt's database thread retries a batch in place after a transient
/// failure (a deadlock victim, a lost connection) before failing its tuples: a retry in
/// place keeps the partition's order, while a failed tuple comes back after records of
/// its partition that were already in flight, which the alert engine would take for late.
pub const RETRIES_IN_PLACE: u32 = 3;

/// The pause before in-place retry `attempt` (0-based): 50 ms, 100 ms, 200 ms.
pub fn retry_pause(attempt: u32) -> std::time::Duration {
    std::time::Duration::from_millis(50 << attempt.min(6))
}

/// Why a bolt's database work failed, and whether trying again later can help (a locked or
/// unavailable database: the tuple is failed as transient and the spout replays it for as
/// long as it takes; anything else is permanent).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    /// What went wrong.
    pub message: String,
    /// Whether it passes.
    pub transient: bool,
}

impl Failure {
    /// `what: error`, transient as `error` says.
    pub fn store(what: &str, error: &squall_alerting::store::StoreError) -> Self {
        Failure {
            message: format!("{what}: {error}"),
            transient: error.is_transient(),
        }
    }

    /// A transient failure: the spout tries again later, for as long as it takes.
    pub fn transient(message: impl Into<String>) -> Self {
        Failure {
            message: message.into(),
            transient: true,
        }
    }

    /// A permanent failure.
    pub fn permanent(message: impl Into<String>) -> Self {
        Failure {
            message: message.into(),
            transient: false,
        }
    }

    /// Fails the held `tuple` with it.
    pub fn fail(&self, out: &mut squall_topology::OutputCollector, tuple: &squall_topology::Tuple) {
        if self.transient {
            out.fail_transient(tuple, self.message.clone());
        } else {
            out.fail(tuple, self.message.clone());
        }
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

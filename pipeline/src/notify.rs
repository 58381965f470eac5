//! The `notify` bolt: turns each alert event into one notification per recipient.
//!
//! Output: `key` (the recipient's group of the alert, [`Notification::key`]: one Kafka
//! partition, so one notifier process, holds each group, and each alert's notifications
//! to a recipient stay in order), `value` (the [`Notification`] as JSON: it
//! leaves the process, for the notifier) and `id` (the notification id).

use serde::Deserialize;
use squall_alerting::notify::{recipient_type, Notification};
use squall_topology::{values, Bolt, BoltError, Fields, OutputCollector, OutputDeclarer, Tuple};

use crate::stage::{event_of, record_stage, RECEIVED_AT};

/// Epoch milliseconds now.
pub(crate) fn now_ms() -> i64 {
    (crate::stage::now_secs() * 1000.0) as i64
}

/// Options of `notify` (none).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotifyConfig {}

/// The `notify` bolt (see the module docs). Input: `threshold`'s events.
#[derive(Clone, Copy, Debug, Default)]
pub struct Notify;

impl Bolt for Notify {
    fn declare_outputs(&self, d: &mut OutputDeclarer) {
        d.declare(Fields::new(["key", "value", "id"]));
    }

    fn execute(&mut self, t: Tuple, out: &mut OutputCollector) -> Result<(), BoltError> {
        if t.is_tick() {
            return Ok(());
        }
        let event = event_of(&t)?;
        if let Some(at) = t.get_by_field(RECEIVED_AT).and_then(|v| v.as_f64()) {
            record_stage("notified", at);
        }
        for n in Notification::for_event(&event, now_ms()) {
            let key = Notification::key(&event, &n.recipient);
            let body = serde_json::to_vec(&n).expect("notifications serialise");
            metrics::counter!("squall_notifications_produced_total", "type" => recipient_type(&n.recipient))
                .increment(1);
            out.emit(values![key, body, n.id]);
        }
        Ok(())
    }
}

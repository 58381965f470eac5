//! Notifications: one per alert event and recipient, and the bodies each receiver type
//! takes: the Alertmanager webhook body (version 4), a Slack `{"text"}`, a PagerDuty
//! Events v2 event; and the retry policy of their delivery.
//!
//! Invariant: a notification's id is its event's id and the recipient's index, so the same
//! transition always produces the same notification ids (the `Idempotency-Key`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::configs::Recipient;
use crate::events::{fingerprint, labels, number, rfc3339, summary, AlertEvent, EventKind};

/// One notification: an alert event for one recipient.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Notification {
    /// Stable id (the event id and the recipient's index): the `Idempotency-Key`.
    pub id: String,
    /// When `notify` produced it (epoch ms): `max_age_s` counts from here.
    pub created_at_ms: i64,
    /// Where it goes.
    pub recipient: Recipient,
    /// What happened.
    pub event: AlertEvent,
}

impl Notification {
    /// The notifications of `event`: one per recipient, in the config's order.
    pub fn for_event(event: &AlertEvent, created_at_ms: i64) -> Vec<Notification> {
        event
            .recipients
            .iter()
            .enumerate()
            .map(|(i, recipient)| Notification {
                id: format!("{}-r{i}", event.id),
                created_at_ms,
                recipient: recipient.clone(),
                event: event.clone(),
            })
            .collect()
    }

    /// The Kafka key of notification `i` of `event`: the alert and the recipient, so one
    /// partition keeps each alert's notifications to a recipient in order.
    pub fn key(event: &AlertEvent, recipient_index: usize) -> String {
        format!("{}-r{recipient_index}", fingerprint(event))
    }

    /// The URL it is posted to.
    pub fn recipient_url(&self) -> &str {
        match &self.recipient {
            Recipient::Webhook { url, .. } | Recipient::Slack { url, .. } => url,
            Recipient::Pagerduty { url, .. } => url,
        }
    }
}

/// The URL and JSON body a notification is posted as.
pub fn request(n: &Notification) -> (&str, serde_json::Value) {
    let e = &n.event;
    match &n.recipient {
        Recipient::Webhook { url, .. } => {
            let labels = labels(e);
            let mut annotations = BTreeMap::new();
            annotations.insert("summary".to_string(), summary(e));
            if let Some(v) = e.value {
                annotations.insert("value".into(), number(v));
            }
            if let Some(rule) = &e.expr {
                annotations.insert("rule".into(), rule.clone());
            }
            if let (Some(c), Some(t)) = (e.comparison, e.threshold) {
                annotations.insert(
                    "threshold".into(),
                    format!("{} {}", format!("{c:?}").to_lowercase(), number(t)),
                );
            }
            let ends_at = match e.kind {
                EventKind::Clear => rfc3339(e.at),
                _ => "0001-01-01T00:00:00Z".to_string(),
            };
            let alert = json!({
                "status": e.status(),
                "labels": labels,
                "annotations": annotations,
                "startsAt": rfc3339(e.fired_at),
                "endsAt": ends_at,
                "generatorURL": "",
                "fingerprint": fingerprint(e),
            });
            (
                url,
                json!({
                    "version": "4",
                    "groupKey": format!("{{}}:{{alertname=\"{}\"}}", e.name),
                    "truncatedAlerts": 0,
                    "status": e.status(),
                    "receiver": "squall",
                    "groupLabels": {"alertname": e.name},
                    "commonLabels": labels,
                    "commonAnnotations": annotations,
                    "externalURL": "",
                    "alerts": [alert],
                }),
            )
        }
        Recipient::Slack { url, .. } => {
            let tag = match e.kind {
                EventKind::Clear => "RESOLVED",
                _ => "FIRING",
            };
            (url, json!({ "text": format!("[{tag}] {}", summary(e)) }))
        }
        Recipient::Pagerduty {
            url, routing_key, ..
        } => {
            let action = match e.kind {
                EventKind::Clear => "resolve",
                _ => "trigger",
            };
            (
                url,
                json!({
                    "routing_key": routing_key,
                    "event_action": action,
                    "dedup_key": fingerprint(e),
                    "payload": {
                        "summary": summary(e),
                        "source": e.hostname,
                        "severity": "critical",
                        "timestamp": rfc3339(e.at),
                        "custom_details": {
                            "account": e.account,
                            "device_id": e.device,
                            "metric": e.metric,
                            "series": e.series,
                            "value": e.value,
                            "threshold": e.threshold,
                        },
                    },
                }),
            )
        }
    }
}

/// The recipient's type as configs name it: `webhook`, `slack` or `pagerduty`.
pub fn recipient_type(r: &Recipient) -> &'static str {
    match r {
        Recipient::Webhook { .. } => "webhook",
        Recipient::Slack { .. } => "slack",
        Recipient::Pagerduty { .. } => "pagerduty",
    }
}

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
use crate::policy::group::{group_key, GroupNotification};

/// One notification: an alert event (or a group's alerts) for one recipient.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Notification {
    /// Stable id (the event id and the recipient's index; a group's key and sequence):
    /// the `Idempotency-Key`.
    pub id: String,
    /// When it was produced (epoch ms): `max_age_s` counts from here.
    pub created_at_ms: i64,
    /// Where it goes.
    pub recipient: Recipient,
    /// What happened (a group notification: its first alert).
    pub event: AlertEvent,
    /// Set for a group's notification: the group and every alert it reports.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<GroupPart>,
}

/// The group part of a group's notification.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GroupPart {
    /// The group key (PagerDuty's `dedup_key`).
    pub key: String,
    /// The group labels (`groupLabels`).
    pub labels: BTreeMap<String, String>,
    /// The alerts reported: firing ones, and those resolved since receivers heard them
    /// firing.
    pub alerts: Vec<AlertEvent>,
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
                group: None,
            })
            .collect()
    }

    /// The notification of a group's flush.
    pub fn for_group(
        recipient: &Recipient,
        flushed: GroupNotification,
        created_at_ms: i64,
    ) -> Option<Notification> {
        let first = flushed.alerts.first()?.clone();
        Some(Notification {
            id: flushed.id,
            created_at_ms,
            recipient: recipient.clone(),
            event: first,
            group: Some(GroupPart {
                key: flushed.key,
                labels: flushed.labels,
                alerts: flushed.alerts,
            }),
        })
    }

    /// The Kafka key of `recipient`'s notification of `event`: its group's key
    /// ([`group_key`]), so one partition (one notifier process) holds each group, and each
    /// alert's notifications to a recipient stay in order.
    pub fn key(event: &AlertEvent, recipient: &Recipient) -> String {
        let timers = recipient.grouping().timers();
        group_key(recipient, &timers, &timers.group_labels(event))
    }

    /// The alerts it reports.
    pub fn alerts(&self) -> &[AlertEvent] {
        match &self.group {
            Some(g) => &g.alerts,
            None => std::slice::from_ref(&self.event),
        }
    }

    /// What deliveries run in order by: the group, or the alert (and the recipient).
    pub fn order_key(&self) -> String {
        match &self.group {
            Some(g) => g.key.clone(),
            None => format!("{}-{}", fingerprint(&self.event), self.recipient_url()),
        }
    }

    /// The URL it is posted to.
    pub fn recipient_url(&self) -> &str {
        match &self.recipient {
            Recipient::Webhook { url, .. } | Recipient::Slack { url, .. } => url,
            Recipient::Pagerduty { url, .. } => url,
        }
    }
}

/// One alert of an Alertmanager body, with its labels and annotations.
fn am_alert(
    e: &AlertEvent,
) -> (
    serde_json::Value,
    BTreeMap<String, String>,
    BTreeMap<String, String>,
) {
    let labels = labels(e);
    let mut annotations = BTreeMap::new();
    annotations.insert("summary".to_string(), summary(e));
    if let Some(v) = e.value {
        annotations.insert("value".into(), number(v));
    }
    if let Some(rule) = &e.expr {
        annotations.insert("rule".into(), rule.clone());
    }
    if let Some(p) = e.flapping {
        annotations.insert("flapping".into(), format!("{p:.0}% state change"));
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
    (alert, labels, annotations)
}

/// The pairs every map of `maps` holds.
fn common(maps: &[BTreeMap<String, String>]) -> BTreeMap<String, String> {
    let Some((first, rest)) = maps.split_first() else {
        return BTreeMap::new();
    };
    first
        .iter()
        .filter(|(k, v)| rest.iter().all(|m| m.get(*k) == Some(*v)))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// `{k="v",...}`, as Alertmanager writes a group key.
fn label_set(labels: &BTreeMap<String, String>) -> String {
    let pairs: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v:?}")).collect();
    format!("{{{}}}", pairs.join(","))
}

/// Most alerts a Slack message or a PagerDuty event lists (the rest are counted).
const LISTED: usize = 20;

/// The URL and JSON body a notification is posted as.
pub fn request(n: &Notification) -> (&str, serde_json::Value) {
    if let Some(g) = &n.group {
        return group_request(n, g);
    }
    let e = &n.event;
    match &n.recipient {
        Recipient::Webhook { url, .. } => {
            let (alert, labels, annotations) = am_alert(e);
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

/// A group's notification: one Alertmanager body with every alert, one Slack message,
/// one PagerDuty event per group (its key the `dedup_key`: triggered while any alert
/// fires, resolved when none does).
fn group_request<'a>(n: &'a Notification, g: &GroupPart) -> (&'a str, serde_json::Value) {
    let firing = g
        .alerts
        .iter()
        .filter(|a| a.kind != EventKind::Clear)
        .count();
    let resolved = g.alerts.len() - firing;
    let status = if firing > 0 { "firing" } else { "resolved" };
    let name = g
        .labels
        .get("alertname")
        .cloned()
        .unwrap_or_else(|| n.event.name.clone());
    let title = match (firing, resolved) {
        (f, 0) => format!("[FIRING:{f}] {name}"),
        (0, r) => format!("[RESOLVED:{r}] {name}"),
        (f, r) => format!("[FIRING:{f}, RESOLVED:{r}] {name}"),
    };
    let listed = |limit: usize| {
        let mut lines: Vec<String> = g
            .alerts
            .iter()
            .take(limit)
            .map(|a| {
                format!(
                    "{} {}",
                    if a.kind == EventKind::Clear {
                        "resolved:"
                    } else {
                        "firing:"
                    },
                    summary(a)
                )
            })
            .collect();
        if g.alerts.len() > limit {
            lines.push(format!("and {} more", g.alerts.len() - limit));
        }
        lines
    };
    match &n.recipient {
        Recipient::Webhook { url, .. } => {
            let (mut alerts, mut labels, mut annotations) = (Vec::new(), Vec::new(), Vec::new());
            for e in &g.alerts {
                let (a, l, an) = am_alert(e);
                alerts.push(a);
                labels.push(l);
                annotations.push(an);
            }
            (
                url,
                json!({
                    "version": "4",
                    "groupKey": format!("{{}}:{}", label_set(&g.labels)),
                    "truncatedAlerts": 0,
                    "status": status,
                    "receiver": "squall",
                    "groupLabels": g.labels,
                    "commonLabels": common(&labels),
                    "commonAnnotations": common(&annotations),
                    "externalURL": "",
                    "alerts": alerts,
                }),
            )
        }
        Recipient::Slack { url, .. } => {
            let mut text = vec![title];
            text.extend(listed(LISTED).into_iter().map(|l| format!("• {l}")));
            (url, json!({ "text": text.join("\n") }))
        }
        Recipient::Pagerduty {
            url, routing_key, ..
        } => (
            url,
            json!({
                "routing_key": routing_key,
                "event_action": if firing > 0 { "trigger" } else { "resolve" },
                "dedup_key": g.key,
                "payload": {
                    "summary": title,
                    "source": g.labels.get("device").or_else(|| g.labels.get("account")).cloned().unwrap_or_else(|| n.event.account.clone()),
                    "severity": "critical",
                    "timestamp": rfc3339(g.alerts.iter().map(|a| a.at).fold(f64::MIN, f64::max)),
                    "custom_details": {
                        "group": g.labels,
                        "firing": firing,
                        "resolved": resolved,
                        "alerts": listed(LISTED),
                    },
                },
            }),
        ),
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

//! The envelope: THE contract between the intake and the `enrich` bolt. The intake wraps
//! every accepted agent payload in one, as JSON, and produces it to the payloads topic
//! keyed by agent key; `enrich` reads it back. Nothing else defines these fields.

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

/// Which agent wrote a payload.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AgentFormat {
    /// `POST /postback/`, no timestamp.
    V1,
    /// `POST /intake/`, with `collection_timestamp`.
    V2,
}

impl AgentFormat {
    /// `v1` or `v2`.
    pub fn as_str(self) -> &'static str {
        match self {
            AgentFormat::V1 => "v1",
            AgentFormat::V2 => "v2",
        }
    }
}

/// What the intake produces to the payloads topic (JSON, keyed by agent key).
#[derive(Debug, Serialize, Deserialize)]
pub struct Envelope<'a> {
    /// The account the payload was sent to.
    pub account: String,
    /// The agent key from the query or the body.
    pub agent_key: String,
    /// Receive time, milliseconds since the epoch.
    pub received_at_ms: u64,
    /// The same in microseconds (stage latencies are measured from it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub received_at_us: Option<u64>,
    /// The agent format.
    pub format: AgentFormat,
    /// The payload, as the agent sent it (decompressed JSON).
    #[serde(borrow)]
    pub payload: &'a RawValue,
}

impl Envelope<'_> {
    /// When the intake received the payload, epoch seconds (microsecond precision when
    /// the envelope carries it).
    pub fn received_at(&self) -> f64 {
        self.received_at_us
            .map_or(self.received_at_ms as f64 / 1000.0, |us| us as f64 / 1e6)
    }

    /// Parses an envelope from the bytes of a Kafka record.
    pub fn from_slice(bytes: &[u8]) -> Result<Envelope<'_>, serde_json::Error> {
        serde_json::from_slice(bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_prefers_microseconds() {
        let payload = RawValue::from_string(r#"{"agentKey":"k"}"#.into()).unwrap();
        let e = Envelope {
            account: "acme".into(),
            agent_key: "k".into(),
            received_at_ms: 1_000,
            received_at_us: Some(1_000_250),
            format: AgentFormat::V2,
            payload: &payload,
        };
        let bytes = serde_json::to_vec(&e).unwrap();
        let back = Envelope::from_slice(&bytes).unwrap();
        assert_eq!(back.received_at(), 1.00025);
        assert_eq!(back.format, AgentFormat::V2);
        assert_eq!(back.payload.get(), r#"{"agentKey":"k"}"#);
        let old =
            br#"{"account":"a","agent_key":"k","received_at_ms":1500,"format":"v1","payload":{}}"#;
        assert_eq!(Envelope::from_slice(old).unwrap().received_at(), 1.5);
    }
}

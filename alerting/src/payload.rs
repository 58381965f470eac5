//! Agent payloads (v1 and v2) normalised into metric points.
//!
//! The parser streams over the JSON once (a serde visitor over the top-level object) and
//! builds points directly: no intermediate JSON tree is allocated, and sections that carry
//! no metrics (`meta`, `systemStats`, process command lines, ...) are skipped unread.
//!
//! How every field of both formats is named is documented in the README ("Agent payloads").
//! Values that are not numbers or numeric strings are skipped and counted.

use std::fmt;

use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use smallvec::SmallVec;
use smol_str::SmolStr;

/// One normalised measurement.
#[derive(Clone, Debug, PartialEq)]
pub struct MetricPoint {
    /// Metric name, e.g. `system.load.1` or `ioStats.%util` (inline up to 23 bytes: a
    /// payload's ~70 names cost no allocation).
    pub name: SmolStr,
    /// Series labels, e.g. `device_name=/dev/sda1` (usually none or one).
    pub labels: SmallVec<[(&'static str, SmolStr); 1]>,
    /// The value.
    pub value: f64,
}

impl MetricPoint {
    fn new(name: impl Into<SmolStr>, value: f64) -> Self {
        MetricPoint {
            name: name.into(),
            labels: SmallVec::new(),
            value,
        }
    }

    fn on_device(name: impl Into<SmolStr>, device: &str, value: f64) -> Self {
        let mut p = MetricPoint::new(name, value);
        p.labels.push(("device_name", device.into()));
        p
    }

    /// The series key: the labels as `k=v` pairs joined by `,` (empty if none).
    pub fn series_key(&self) -> String {
        match self.labels.as_slice() {
            [] => String::new(),
            [(k, v)] => format!("{k}={v}"),
            labels => labels
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(","),
        }
    }

    /// The value of label `name`.
    pub fn label(&self, name: &str) -> Option<&str> {
        self.labels
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// A parsed payload.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Payload {
    /// `agentKey`.
    pub agent_key: Option<String>,
    /// `internalHostname`.
    pub hostname: Option<String>,
    /// `uuid` (v2).
    pub uuid: Option<String>,
    /// `collection_timestamp` in epoch seconds (v2); `None` for v1 (or null); NaN when it is
    /// present but not a finite number.
    pub collection_timestamp: Option<f64>,
    /// The metric points.
    pub points: Vec<MetricPoint>,
    /// Values skipped because they are not numeric.
    pub skipped: u32,
    /// How many of `points` are top-level numbers or `metrics` rows (the rest come from
    /// sections: `ioStats`, `processes`, `plugins`, ...). The peer benchmarks' W2 counts
    /// exactly these.
    pub plain_points: u32,
}

impl Payload {
    /// Event time in epoch seconds: `collection_timestamp`, else `received_at`.
    pub fn event_time(&self, received_at: f64) -> f64 {
        self.collection_timestamp.unwrap_or(received_at)
    }
}

/// Why a payload could not be parsed.
#[derive(Debug, thiserror::Error)]
#[error("malformed payload: {0}")]
pub struct PayloadError(String);

/// Parses a payload (the JSON the agent sent, before compression).
pub fn parse(json: &[u8]) -> Result<Payload, PayloadError> {
    let mut de = serde_json::Deserializer::from_slice(json);
    let payload = de
        .deserialize_map(PayloadVisitor)
        .map_err(|e| PayloadError(e.to_string()))?;
    de.end().map_err(|e| PayloadError(e.to_string()))?;
    Ok(payload)
}

/// An envelope's fields and its payload, parsed in one pass over the record: the payload
/// is parsed where it lies instead of being scanned once as a raw value and again as a
/// payload (that second scan was a tenth of the alert pipeline's CPU).
#[derive(Debug)]
pub struct Enveloped {
    /// The envelope's fields (its `payload` is the empty object: it was parsed into
    /// `payload`).
    pub account: String,
    /// The agent key from the query or the body.
    pub agent_key: String,
    /// Receive time, milliseconds since the epoch.
    pub received_at_ms: u64,
    /// The same in microseconds.
    pub received_at_us: Option<u64>,
    /// The payload.
    pub payload: Payload,
}

impl Enveloped {
    /// When the intake received the payload, epoch seconds (as
    /// [`Envelope::received_at`](crate::envelope::Envelope::received_at)).
    pub fn received_at(&self) -> f64 {
        self.received_at_us
            .map_or(self.received_at_ms as f64 / 1000.0, |us| us as f64 / 1e6)
    }
}

/// Parses an envelope (see [`crate::envelope::Envelope`]) and its payload in one pass.
/// `None` when either is malformed: parse them apart then
/// ([`Envelope::from_slice`](crate::envelope::Envelope::from_slice), [`parse`]) for the
/// precise error.
pub fn parse_enveloped(record: &[u8]) -> Option<Enveloped> {
    let mut de = serde_json::Deserializer::from_slice(record);
    let enveloped = de.deserialize_map(EnvelopedVisitor).ok()?;
    de.end().ok()?;
    Some(enveloped)
}

struct EnvelopedVisitor;

/// Deserializes a payload where it lies.
struct PayloadSeed;

impl<'de> DeserializeSeed<'de> for PayloadSeed {
    type Value = Payload;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Payload, D::Error> {
        d.deserialize_map(PayloadVisitor)
    }
}

impl<'de> Visitor<'de> for EnvelopedVisitor {
    type Value = Enveloped;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a payload envelope")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Enveloped, A::Error> {
        use serde::de::Error;
        let (mut account, mut agent_key, mut ms, mut us, mut format, mut payload) =
            (None, None, None, None, None, None);
        while let Some(key) = map.next_key::<Key<'de>>()? {
            match key.as_ref() {
                "account" => account = Some(map.next_value::<String>()?),
                "agent_key" => agent_key = Some(map.next_value::<String>()?),
                "received_at_ms" => ms = Some(map.next_value::<u64>()?),
                "received_at_us" => us = map.next_value::<Option<u64>>()?,
                "format" => {
                    format = Some(map.next_value::<crate::envelope::AgentFormat>()?);
                }
                "payload" => payload = Some(map.next_value_seed(PayloadSeed)?),
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        let missing = |f: &'static str| A::Error::missing_field(f);
        format.ok_or_else(|| missing("format"))?;
        Ok(Enveloped {
            account: account.ok_or_else(|| missing("account"))?,
            agent_key: agent_key.ok_or_else(|| missing("agent_key"))?,
            received_at_ms: ms.ok_or_else(|| missing("received_at_ms"))?,
            received_at_us: us,
            payload: payload.ok_or_else(|| missing("payload"))?,
        })
    }
}

/// A number, a numeric string, or something else (skipped).
enum Num {
    Value(f64),
    Skip,
}

impl<'de> serde::Deserialize<'de> for Num {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Num;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a number")
            }
            fn visit_f64<E>(self, v: f64) -> Result<Num, E> {
                Ok(if v.is_finite() {
                    Num::Value(v)
                } else {
                    Num::Skip
                })
            }
            fn visit_i64<E>(self, v: i64) -> Result<Num, E> {
                Ok(Num::Value(v as f64))
            }
            fn visit_u64<E>(self, v: u64) -> Result<Num, E> {
                Ok(Num::Value(v as f64))
            }
            fn visit_str<E>(self, v: &str) -> Result<Num, E> {
                let v = v.trim().trim_end_matches('%');
                Ok(match v.parse::<f64>() {
                    Ok(x) if x.is_finite() => Num::Value(x),
                    _ => Num::Skip,
                })
            }
            fn visit_bool<E>(self, _: bool) -> Result<Num, E> {
                Ok(Num::Skip)
            }
            fn visit_unit<E>(self) -> Result<Num, E> {
                Ok(Num::Skip)
            }
            fn visit_none<E>(self) -> Result<Num, E> {
                Ok(Num::Skip)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Num, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Num::Skip)
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Num, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(Num::Skip)
            }
        }
        d.deserialize_any(V)
    }
}

/// The `field: value` entries of an object, in order (anything else yields none).
struct FieldList(Vec<(String, Num)>);

impl<'de> serde::Deserialize<'de> for FieldList {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = FieldList;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object of values")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<FieldList, A::Error> {
                let mut out = Vec::new();
                while let Some(entry) = map.next_entry::<String, Num>()? {
                    out.push(entry);
                }
                Ok(FieldList(out))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<FieldList, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(FieldList(Vec::new()))
            }
            fn visit_unit<E>(self) -> Result<FieldList, E> {
                Ok(FieldList(Vec::new()))
            }
            fn visit_str<E>(self, _: &str) -> Result<FieldList, E> {
                Ok(FieldList(Vec::new()))
            }
            fn visit_f64<E>(self, _: f64) -> Result<FieldList, E> {
                Ok(FieldList(Vec::new()))
            }
            fn visit_i64<E>(self, _: i64) -> Result<FieldList, E> {
                Ok(FieldList(Vec::new()))
            }
            fn visit_u64<E>(self, _: u64) -> Result<FieldList, E> {
                Ok(FieldList(Vec::new()))
            }
            fn visit_bool<E>(self, _: bool) -> Result<FieldList, E> {
                Ok(FieldList(Vec::new()))
            }
        }
        d.deserialize_any(V)
    }
}

/// A string that may arrive escaped (owned) or borrowed.
type Key<'a> = std::borrow::Cow<'a, str>;

struct PayloadVisitor;

impl<'de> Visitor<'de> for PayloadVisitor {
    type Value = Payload;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Payload, A::Error> {
        let mut p = Payload::default();
        while let Some(key) = map.next_key::<Key<'de>>()? {
            match key.as_ref() {
                "agentKey" => p.agent_key = map.next_value::<Option<String>>()?,
                "internalHostname" => p.hostname = map.next_value::<Option<String>>()?,
                "uuid" => p.uuid = map.next_value::<Option<String>>()?,
                // Null is absent; anything else that is not a finite number (`"NaN"`,
                // `"inf"`, `true`) is kept as NaN, for enrich to reject by name.
                "collection_timestamp" => {
                    p.collection_timestamp = match map.next_value::<Option<Num>>()? {
                        None => None,
                        Some(Num::Value(t)) => Some(t),
                        Some(Num::Skip) => Some(f64::NAN),
                    };
                }
                "agentVersion" | "sdAgentVersion" | "os" | "python" | "apiKey" | "events"
                | "resources" | "host-tags" | "external_host_tags" | "systemStats" | "meta" => {
                    map.next_value::<IgnoredAny>()?;
                }
                "metrics" => map.next_value_seed(Rows(&mut p))?,
                "ioStats" | "cpuStats" | "networkTraffic" => {
                    let prefix = key.into_owned();
                    map.next_value_seed(PerDevice(&prefix, &mut p))?
                }
                "plugins" => map.next_value_seed(Plugins(&mut p))?,
                "diskUsage" => map.next_value_seed(DiskUsage(&mut p))?,
                "processes" => {
                    let n = map.next_value_seed(CountRows)?;
                    p.points.push(MetricPoint::new("processes.count", n as f64));
                }
                "service_checks" => map.next_value_seed(ServiceChecks(&mut p))?,
                // A metric needs a name: `"": 1` is skipped like a value that is no number.
                _ => match map.next_value::<Num>()? {
                    Num::Value(v) if !key.trim().is_empty() => {
                        p.points.push(MetricPoint::new(key.into_owned(), v));
                        p.plain_points += 1;
                    }
                    _ => p.skipped += 1,
                },
            }
        }
        Ok(p)
    }
}

/// v2 `metrics`: `[name, ts, value, {device_name, ...}]` rows.
struct Rows<'a>(&'a mut Payload);

impl<'de> DeserializeSeed<'de> for Rows<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

#[derive(serde::Deserialize)]
struct RowMeta {
    #[serde(default)]
    device_name: Option<String>,
}

impl<'de> Visitor<'de> for Rows<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a list of [name, timestamp, value, {device_name}] rows")
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while let Some(row) = seq.next_element::<(String, IgnoredAny, Num, Option<RowMeta>)>()? {
            let (name, _, value, meta) = row;
            match value {
                Num::Value(v) if !name.trim().is_empty() => {
                    let device = meta.and_then(|m| m.device_name);
                    self.0.points.push(match device {
                        Some(d) => MetricPoint::on_device(name, &d, v),
                        None => MetricPoint::new(name, v),
                    });
                    self.0.plain_points += 1;
                }
                _ => self.0.skipped += 1,
            }
        }
        Ok(())
    }
}

/// `{device: {field: value}}` sections (`ioStats`, `cpuStats`, `networkTraffic`).
struct PerDevice<'a>(&'a str, &'a mut Payload);

impl<'de> DeserializeSeed<'de> for PerDevice<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for PerDevice<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object of devices")
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(device) = map.next_key::<Key<'de>>()? {
            for (field, value) in map.next_value::<FieldList>()?.0 {
                match value {
                    Num::Value(v) => self.1.points.push(MetricPoint::on_device(
                        format!("{}.{field}", self.0),
                        &device,
                        v,
                    )),
                    Num::Skip => self.1.skipped += 1,
                }
            }
        }
        Ok(())
    }
}

/// `plugins.<Plugin>.<key>`.
struct Plugins<'a>(&'a mut Payload);

impl<'de> DeserializeSeed<'de> for Plugins<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Plugins<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object of plugins")
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(plugin) = map.next_key::<Key<'de>>()? {
            for (field, value) in map.next_value::<FieldList>()?.0 {
                match value {
                    Num::Value(v) => self
                        .0
                        .points
                        .push(MetricPoint::new(format!("plugins.{plugin}.{field}"), v)),
                    Num::Skip => self.0.skipped += 1,
                }
            }
        }
        Ok(())
    }
}

/// v1 `diskUsage` rows from `df`: `[fs, blocks, used, available, "use%", mount]`.
struct DiskUsage<'a>(&'a mut Payload);

impl<'de> DeserializeSeed<'de> for DiskUsage<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for DiskUsage<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a list of df rows")
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while let Some((fs, total, used, free, in_use, _mount)) =
            seq.next_element::<(String, Num, Num, Num, Num, IgnoredAny)>()?
        {
            for (name, value) in [
                ("diskUsage.total", total),
                ("diskUsage.used", used),
                ("diskUsage.free", free),
                ("diskUsage.in_use", in_use),
            ] {
                match value {
                    Num::Value(v) => self.0.points.push(MetricPoint::on_device(name, &fs, v)),
                    Num::Skip => self.0.skipped += 1,
                }
            }
        }
        Ok(())
    }
}

/// Counts process rows: a list (v1) or `{processes: [...]}` (v2).
struct CountRows;

impl<'de> DeserializeSeed<'de> for CountRows {
    type Value = usize;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<usize, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for CountRows {
    type Value = usize;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("process rows")
    }
    fn visit_unit<E>(self) -> Result<usize, E> {
        Ok(0)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<usize, A::Error> {
        let mut n = 0;
        while seq.next_element::<IgnoredAny>()?.is_some() {
            n += 1;
        }
        Ok(n)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<usize, A::Error> {
        let mut n = 0;
        while let Some(key) = map.next_key::<Key<'de>>()? {
            if key == "processes" {
                n = map.next_value_seed(CountRows)?;
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(n)
    }
}

/// v2 `service_checks`: `[{check, status, ...}]`.
struct ServiceChecks<'a>(&'a mut Payload);

impl<'de> DeserializeSeed<'de> for ServiceChecks<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

#[derive(serde::Deserialize)]
struct Check {
    check: String,
    status: Num,
}

impl<'de> Visitor<'de> for ServiceChecks<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a list of service checks")
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while let Some(c) = seq.next_element::<Check>()? {
            match c.status {
                Num::Value(v) => self
                    .0
                    .points
                    .push(MetricPoint::new(format!("service_checks.{}", c.check), v)),
                Num::Skip => self.0.skipped += 1,
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_pass_envelope_parse_equals_the_two_pass_parse() {
        let v2 = include_str!("../../tests/fixtures/payloads/sd-agent-v2.json");
        let raw: &serde_json::value::RawValue = serde_json::from_str(v2).unwrap();
        let envelope = crate::envelope::Envelope {
            account: "acme".into(),
            agent_key: "k1".into(),
            received_at_ms: 1_500,
            received_at_us: Some(1_500_250),
            format: crate::envelope::AgentFormat::V2,
            payload: raw,
        };
        let record = serde_json::to_vec(&envelope).unwrap();
        let one = parse_enveloped(&record).expect("a valid envelope");
        assert_eq!(one.payload, parse(v2.as_bytes()).unwrap());
        assert!(one.payload.points.len() > 30);
        assert_eq!(
            (one.account.as_str(), one.agent_key.as_str()),
            ("acme", "k1")
        );
        assert_eq!(one.received_at(), envelope.received_at());
        // Malformed: left to the two-pass parse, which names what is wrong.
        for bad in [
            r#"{"account":"a","agent_key":"k","received_at_ms":1,"format":"v2","payload":[1]}"#,
            r#"{"account":"a","agent_key":"k","received_at_ms":1,"payload":{}}"#,
            r#"{"account":"a","agent_key":"k","received_at_ms":1,"format":"v2","payload":{}} x"#,
            "not json",
        ] {
            assert!(parse_enveloped(bad.as_bytes()).is_none(), "{bad}");
        }
    }

    fn fixture(name: &str) -> Vec<u8> {
        std::fs::read(format!(
            "{}/../tests/fixtures/payloads/{name}",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap()
    }

    fn point<'a>(p: &'a Payload, name: &str, device: Option<&str>) -> &'a MetricPoint {
        p.points
            .iter()
            .find(|m| m.name == name && m.label("device_name") == device)
            .unwrap_or_else(|| panic!("no point {name} {device:?}"))
    }

    #[test]
    fn v2_fixture_is_normalised() {
        let p = parse(&fixture("sd-agent-v2.json")).unwrap();
        assert_eq!(
            p.agent_key.as_deref(),
            Some("f9ce01e1e962b59798d6350eb8cfce4c")
        );
        assert_eq!(p.hostname.as_deref(), Some("web-01.example.com"));
        assert_eq!(p.collection_timestamp, Some(1487973674.928511));
        assert_eq!(point(&p, "system.load.1", None).value, 0.21);
        assert_eq!(point(&p, "cpuUser", None).value, 0.67);
        assert_eq!(point(&p, "memPhysUsed", None).value, 2223.0);
        assert_eq!(
            point(&p, "system.disk.in_use", Some("/dev/sda1")).value,
            0.332
        );
        assert_eq!(
            point(&p, "system.net.bytes_rcvd", Some("eth0")).value,
            5321.4
        );
        assert_eq!(point(&p, "ioStats.%util", Some("sda")).value, 0.10);
        assert_eq!(point(&p, "ioStats.w/s", Some("sda")).value, 2.04);
        assert_eq!(
            point(&p, "plugins.MyLegacyPlugin.queue_depth", None).value,
            12.0
        );
        assert_eq!(point(&p, "processes.count", None).value, 2.0);
        assert_eq!(
            point(&p, "service_checks.serverdensity.agent.up", None).value,
            0.0
        );
        assert!(!p
            .points
            .iter()
            .any(|m| m.name == "sdAgentVersion" || m.name.starts_with("meta")));
    }

    #[test]
    fn v1_fixture_is_normalised() {
        let p = parse(&fixture("sd-agent-v1.json")).unwrap();
        assert_eq!(p.collection_timestamp, None);
        assert_eq!(p.event_time(1_700_000_000.0), 1_700_000_000.0);
        assert_eq!(
            point(&p, "loadAvrg", None).value,
            0.21,
            "numeric strings are parsed"
        );
        assert_eq!(
            point(&p, "diskUsage.total", Some("/dev/sda1")).value,
            41251136.0
        );
        assert_eq!(point(&p, "diskUsage.in_use", Some("/dev/sda1")).value, 33.0);
        assert_eq!(point(&p, "diskUsage.in_use", Some("tmpfs")).value, 1.0);
        assert_eq!(
            point(&p, "networkTraffic.recv_bytes", Some("eth0")).value,
            319284.0
        );
        assert_eq!(point(&p, "cpuStats.%idle", Some("ALL")).value, 97.99);
        assert_eq!(point(&p, "processes.count", None).value, 1.0);
    }

    #[test]
    fn non_numeric_values_are_skipped_and_counted() {
        let p = parse(br#"{"agentKey":"k","a":"1.5","b":"n/a","c":true,"d":[1,2],"ioStats":{"sda":{"x":"-","y":"2"}}}"#).unwrap();
        assert_eq!(p.points.len(), 2);
        assert_eq!(p.skipped, 4);
    }

    #[test]
    fn malformed_json_is_an_error() {
        assert!(parse(b"{\"agentKey\": ").is_err());
        assert!(parse(b"[1,2]")
            .unwrap_err()
            .to_string()
            .contains("expected a JSON object"));
        assert!(parse(b"{} trailing").is_err());
    }
}

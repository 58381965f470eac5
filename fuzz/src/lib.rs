//! squall's fuzz targets: what an untrusted client controls, fed arbitrary bytes.
//!
//! - `v2_body`: a v2 agent request body ([`squall_alerting::wire::decode_v2`]); the first
//!   byte chooses the `Content-Encoding`, whether a `Content-MD5` (right or wrong) and an
//!   `?agent_key=` come with it.
//! - `v1_body`: a v1 agent's form ([`squall_alerting::wire::decode_v1`]).
//! - `payload`: a payload's JSON ([`squall_alerting::payload::parse`]).
//! - `alert_config`: an alert config as the admin API takes it
//!   ([`squall_alerting::configs::AlertConfig::from_json`]).
//!
//! Each target panics only when an invariant breaks, which is what the fuzzer reports: a
//! body that passes is within every limit and parses; a refusal carries a message; a config
//! that passes validates again after a round trip through JSON and is within
//! [`squall_alerting::configs::LIMITS`].
//!
//! Three harnesses run them: cargo-fuzz (`fuzz/libfuzzer`, coverage-guided, bounded runs in
//! CI), and `cargo test`, which replays [`seeds`] (built from the real agent fixtures) and
//! every input in `fuzz/regressions/<target>/` (each crash found goes there), then random
//! mutations of the seeds as a property test.

use std::io::Write;

use squall_alerting::configs::{AlertConfig, LIMITS as CONFIG_LIMITS};
use squall_alerting::ids::ConfigId;
use squall_alerting::wire::{self, Decoded, Limits, WireError};

/// A fuzz target: its name (the cargo-fuzz target and the corpus directory) and its body.
#[derive(Clone, Copy, Debug)]
pub struct Target {
    /// The name.
    pub name: &'static str,
    /// Runs one input; panics when an invariant breaks.
    pub run: fn(&[u8]),
}

/// Every target.
pub const TARGETS: &[Target] = &[
    Target {
        name: "v2_body",
        run: v2_body,
    },
    Target {
        name: "v1_body",
        run: v1_body,
    },
    Target {
        name: "payload",
        run: payload,
    },
    Target {
        name: "alert_config",
        run: alert_config,
    },
];

/// The limits the body targets decode under: small, so that the fuzzer reaches each of
/// them (a 64 KiB payload, 1,000 points, the intake's 255-byte names).
pub const LIMITS: Limits = Limits {
    max_payload_bytes: 64 * 1024,
    max_points: 1_000,
    max_name_bytes: 255,
};

/// The real v2 agent payload (`tests/fixtures/payloads`).
pub const V2_FIXTURE: &[u8] = include_bytes!("../../tests/fixtures/payloads/sd-agent-v2.json");
/// The real v1 agent payload.
pub const V1_FIXTURE: &[u8] = include_bytes!("../../tests/fixtures/payloads/sd-agent-v1.json");

/// The encodings the first byte of a `v2_body` input chooses from (its two low bits).
const ENCODINGS: [Option<&str>; 4] = [None, Some("deflate"), Some("gzip"), Some("br")];

/// Flags of a `v2_body` input's first byte.
const WITH_MD5: u8 = 1 << 2;
const WRONG_MD5: u8 = 1 << 3;
const WITH_QUERY_KEY: u8 = 1 << 4;

/// Checks what a body decoder answered.
fn check_decoded(result: Result<Decoded, WireError>, query_key: Option<&str>) {
    match result {
        Ok(d) => {
            assert!(
                d.payload.len() <= LIMITS.max_payload_bytes,
                "payload over the limit"
            );
            let parsed =
                squall_alerting::payload::parse(&d.payload).expect("a payload that passed parses");
            assert!(
                parsed.points.len() <= LIMITS.max_points,
                "too many points passed"
            );
            for p in &parsed.points {
                assert!(p.name.len() <= LIMITS.max_name_bytes, "a long name passed");
                assert!(p.value.is_finite(), "a point that is not a number");
                for (_, v) in &p.labels {
                    assert!(v.len() <= LIMITS.max_name_bytes, "a long label passed");
                }
            }
            assert!(!d.agent_key.trim().is_empty(), "an empty agent key passed");
            assert!(
                d.agent_key.len() <= LIMITS.max_name_bytes,
                "a long key passed"
            );
            if let Some(q) = query_key.filter(|q| !q.trim().is_empty()) {
                assert_eq!(d.agent_key, q, "the query's key comes first");
            }
        }
        Err(e) => assert!(!e.message.is_empty(), "a refusal without a message"),
    }
}

/// The `v2_body` target.
pub fn v2_body(data: &[u8]) {
    let Some((&flags, body)) = data.split_first() else {
        return;
    };
    let encoding = ENCODINGS[usize::from(flags & 3)];
    let md5 = (flags & WITH_MD5 != 0).then(|| {
        let right = wire::hex_md5(body);
        if flags & WRONG_MD5 != 0 {
            right.replace(|c: char| c != '0', "0")
        } else {
            right
        }
    });
    let query_key = (flags & WITH_QUERY_KEY != 0).then_some("fuzz-query-key");
    let result = wire::decode_v2(body, encoding, md5.as_deref(), query_key, LIMITS);
    if let (Some(m), Err(e)) = (&md5, &result) {
        if *m == wire::hex_md5(body) {
            assert_ne!(
                e.problem,
                wire::Problem::ChecksumMismatch,
                "right MD5 refused"
            );
        }
    }
    if flags & (WITH_MD5 | WRONG_MD5) == WITH_MD5 | WRONG_MD5 && md5 != Some(wire::hex_md5(body)) {
        assert!(result.is_err(), "a wrong Content-MD5 passed");
    }
    check_decoded(result, query_key);
}

/// The `v1_body` target.
pub fn v1_body(data: &[u8]) {
    check_decoded(wire::decode_v1(data, None, LIMITS), None);
}

/// The `payload` target.
pub fn payload(data: &[u8]) {
    if let Ok(p) = squall_alerting::payload::parse(data) {
        for point in &p.points {
            assert!(point.value.is_finite(), "a point that is not a number");
            assert!(!point.name.is_empty(), "a point without a name");
        }
    }
}

/// The `alert_config` target.
pub fn alert_config(data: &[u8]) {
    let Ok(config) = AlertConfig::from_json(data) else {
        return;
    };
    assert!(
        config.recipients.len() <= CONFIG_LIMITS.recipients,
        "too many recipients"
    );
    assert!(
        config.name.len() <= CONFIG_LIMITS.text,
        "a long name passed"
    );
    let again = serde_json::to_vec(&config).expect("a valid config serialises");
    let mut back = AlertConfig::from_json(&again).expect("a valid config's JSON is valid");
    // serde_json parses floats to within an ulp, not always back to the same bits.
    if let (Some(a), Some(b)) = (config.value, back.value) {
        assert!(
            (a - b).abs() <= a.abs() * 1e-15,
            "value {a} came back as {b}"
        );
        back.value = config.value;
    }
    assert_eq!(back, config, "the JSON round trip changed the config");
    let _ = config.rule(ConfigId(1));
}

fn zlib(bytes: &[u8]) -> Vec<u8> {
    let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    z.write_all(bytes).expect("in memory");
    z.finish().expect("in memory")
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut z = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    z.write_all(bytes).expect("in memory");
    z.finish().expect("in memory")
}

fn with_flags(flags: u8, body: &[u8]) -> Vec<u8> {
    let mut v = vec![flags];
    v.extend_from_slice(body);
    v
}

/// The seed corpus of `target`, built from the real agent fixtures: what a real agent
/// sends, in each encoding, and the near misses the intake refuses.
pub fn seeds(target: &str) -> Vec<Vec<u8>> {
    match target {
        "v2_body" => vec![
            with_flags(0, V2_FIXTURE),
            with_flags(1 | WITH_MD5, &zlib(V2_FIXTURE)),
            with_flags(2 | WITH_QUERY_KEY, &gzip(V2_FIXTURE)),
            with_flags(1 | WITH_MD5 | WRONG_MD5, &zlib(V2_FIXTURE)),
            with_flags(1, &zlib(&vec![b' '; 1 << 20])),
            with_flags(1, &zlib(V2_FIXTURE)[..40]),
            with_flags(0, br#"{"agentKey": "k", "system.load.1": "NaN"}"#),
            with_flags(3, V2_FIXTURE),
        ],
        "v1_body" => {
            let payload = String::from_utf8_lossy(V1_FIXTURE);
            let hash = wire::hex_md5(V1_FIXTURE);
            let form = |pairs: &[(&str, &str)]| {
                let mut s = String::new();
                for (i, (k, v)) in pairs.iter().enumerate() {
                    if i > 0 {
                        s.push('&');
                    }
                    s.push_str(k);
                    s.push('=');
                    for b in v.bytes() {
                        if b.is_ascii_alphanumeric() || b"-_.".contains(&b) {
                            s.push(char::from(b));
                        } else {
                            s.push_str(&format!("%{b:02X}"));
                        }
                    }
                }
                s.into_bytes()
            };
            vec![
                form(&[("payload", &payload), ("hash", &hash)]),
                form(&[("payload", &payload), ("hash", "0")]),
                form(&[("hash", &hash)]),
                form(&[("payload", "[]"), ("hash", &wire::hex_md5(b"[]"))]),
            ]
        }
        "payload" => vec![
            V2_FIXTURE.to_vec(),
            V1_FIXTURE.to_vec(),
            br#"{"agentKey": "k", "collection_timestamp": "NaN", "system.load.1": 1e308}"#.to_vec(),
            format!("{}{}", "[".repeat(200), "]".repeat(200)).into_bytes(),
        ],
        "alert_config" => vec![
            br#"{"account": "acme", "name": "High load", "kind": "threshold",
                "subject": {"type": "account"}, "metric": "system.load.1",
                "series": {"device_name": "/dev/sda1"}, "comparison": "gte", "value": 4,
                "wait": {"seconds": 120, "enabled": true},
                "repeat": {"seconds": 600, "enabled": false}, "fix": true,
                "recipients": [
                  {"type": "webhook", "url": "https://hooks.example.com/hook"},
                  {"type": "slack", "url": "https://hooks.slack.com/services/T/B/X"},
                  {"type": "pagerduty", "url": "https://events.pagerduty.com/v2/enqueue",
                   "routing_key": "R0UT1NG"}]}"#
                .to_vec(),
            br#"{"account": "acme", "name": "Silent", "kind": "no_data",
                "subject": {"type": "agent_key", "id": "k1"},
                "wait": {"seconds": 300, "enabled": true},
                "recipients": [{"type": "webhook", "url": "http://a.example/x"}]}"#
                .to_vec(),
        ],
        _ => Vec::new(),
    }
}

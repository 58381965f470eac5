//! Agent request bodies, decoded and checked: what the intake does to a body before it
//! queues the payload, free of HTTP so that it can be fuzzed on its own.
//!
//! - v2 ([`decode_v2`]): the body is the JSON payload, zlib (`deflate`), gzip or not
//!   compressed; a `Content-MD5`, when sent, is the hex MD5 of the body as sent.
//! - v1 ([`decode_v1`]): a form with `payload` (the JSON) and `hash` (hex MD5 of it).
//!
//! Invariants: no decoded payload is larger than [`Limits::max_payload_bytes`] (inflation
//! stops one byte past it, so a decompression bomb costs at most that much memory); a
//! payload that passes is a JSON object [`crate::payload::parse`] accepts, with at most
//! [`Limits::max_points`] points, and no metric name, label value, hostname, uuid or agent
//! key longer than [`Limits::max_name_bytes`]; every refusal says which [`Problem`] and
//! names what is wrong.

use std::io::Read;

use md5::{Digest, Md5};
use serde::Deserialize;

/// The bounds a body is checked against.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Largest payload, decompressed, in bytes.
    pub max_payload_bytes: usize,
    /// Most metric points in one payload.
    pub max_points: usize,
    /// Longest metric name, label value, hostname, uuid, agent key or account, in bytes.
    pub max_name_bytes: usize,
}

/// What is wrong with a body (the intake's reason codes for these).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Problem {
    /// Not a JSON object, not valid JSON, not a form, or no `payload` field.
    Malformed,
    /// The compressed body does not inflate.
    BadCompression,
    /// `Content-MD5` or the v1 `hash` does not match (or `hash` is missing).
    ChecksumMismatch,
    /// No agent key in the query or the payload.
    MissingAgentKey,
    /// The payload is larger than `max_payload_bytes` (decompressed).
    DecompressedTooLarge,
    /// A `Content-Encoding` other than deflate, gzip or identity.
    UnsupportedEncoding,
    /// More metric points than `max_points`.
    TooManyPoints,
    /// A name longer than `max_name_bytes`.
    NameTooLong,
}

/// A refused body: the problem and a message naming what is wrong.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WireError {
    /// What kind of problem.
    pub problem: Problem,
    /// A precise message (names the field, the size and the limit's setting).
    pub message: String,
}

impl std::fmt::Display for WireError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for WireError {}

fn refuse(problem: Problem, message: impl Into<String>) -> WireError {
    WireError {
        problem,
        message: message.into(),
    }
}

/// A body that passed: its agent key and the payload's JSON text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decoded {
    /// The agent key (the query's, else the payload's `agentKey`).
    pub agent_key: String,
    /// The payload, decompressed (a JSON object).
    pub payload: Vec<u8>,
}

/// The hex MD5 of `bytes`, as agents send it.
pub fn hex_md5(bytes: &[u8]) -> String {
    format!("{:x}", Md5::digest(bytes))
}

/// Reads at most `limit` bytes from `reader`; `None` if there is more.
fn read_limited(reader: impl Read, limit: usize) -> std::io::Result<Option<Vec<u8>>> {
    let mut out = Vec::new();
    reader.take(limit as u64 + 1).read_to_end(&mut out)?;
    Ok((out.len() <= limit).then_some(out))
}

/// Decodes and checks a v2 body sent with `encoding` (`Content-Encoding`), `md5`
/// (`Content-MD5`) and `query_key` (`?agent_key=`).
pub fn decode_v2(
    body: &[u8],
    encoding: Option<&str>,
    md5: Option<&str>,
    query_key: Option<&str>,
    limits: Limits,
) -> Result<Decoded, WireError> {
    if let Some(expected) = md5 {
        let actual = hex_md5(body);
        if !expected.trim().eq_ignore_ascii_case(&actual) {
            return Err(refuse(
                Problem::ChecksumMismatch,
                format!(
                    "Content-MD5 is {}, but the body's MD5 is {actual}",
                    prefix(expected, 40)
                ),
            ));
        }
    }
    let max = limits.max_payload_bytes;
    let encoding = encoding.unwrap_or_default().trim().to_ascii_lowercase();
    let decoded = match encoding.as_str() {
        "" | "identity" => (body.len() <= max).then(|| body.to_vec()),
        "deflate" => read_limited(flate2::read::ZlibDecoder::new(body), max).map_err(|e| {
            refuse(
                Problem::BadCompression,
                format!("the body is not valid zlib data: {e}"),
            )
        })?,
        "gzip" | "x-gzip" => {
            read_limited(flate2::read::GzDecoder::new(body), max).map_err(|e| {
                refuse(
                    Problem::BadCompression,
                    format!("the body is not valid gzip data: {e}"),
                )
            })?
        }
        other => {
            return Err(refuse(
                Problem::UnsupportedEncoding,
                format!(
                    "Content-Encoding {:?} is not supported (deflate, gzip or none)",
                    prefix(other, 40)
                ),
            ))
        }
    };
    let payload = decoded.ok_or_else(|| {
        refuse(
            Problem::DecompressedTooLarge,
            format!("the payload is larger than {max} bytes (intake.max_payload_bytes)"),
        )
    })?;
    let agent_key = check_payload(&payload, query_key, limits)?;
    Ok(Decoded { agent_key, payload })
}

#[derive(Deserialize)]
struct Postback {
    payload: Option<String>,
    hash: Option<String>,
}

/// Decodes and checks a v1 body (the form the v1 agent posts to `/postback/`).
pub fn decode_v1(
    body: &[u8],
    query_key: Option<&str>,
    limits: Limits,
) -> Result<Decoded, WireError> {
    let form: Postback = serde_urlencoded::from_bytes(body)
        .map_err(|e| refuse(Problem::Malformed, format!("the body is not a form: {e}")))?;
    let payload = form
        .payload
        .ok_or_else(|| refuse(Problem::Malformed, "the form has no `payload` field"))?;
    let hash = form
        .hash
        .ok_or_else(|| refuse(Problem::ChecksumMismatch, "the form has no `hash` field"))?;
    let actual = hex_md5(payload.as_bytes());
    if !hash.trim().eq_ignore_ascii_case(&actual) {
        return Err(refuse(
            Problem::ChecksumMismatch,
            format!(
                "hash is {}, but the payload's MD5 is {actual}",
                prefix(&hash, 40)
            ),
        ));
    }
    if payload.len() > limits.max_payload_bytes {
        return Err(refuse(
            Problem::DecompressedTooLarge,
            format!(
                "the payload is {} bytes; the limit is {} (intake.max_payload_bytes)",
                payload.len(),
                limits.max_payload_bytes
            ),
        ));
    }
    let agent_key = check_payload(payload.as_bytes(), query_key, limits)?;
    Ok(Decoded {
        agent_key,
        payload: payload.into_bytes(),
    })
}

/// `name_too_long` for `what` (`text`, over `limit` bytes).
pub fn name_too_long(what: &str, text: &str, limit: usize) -> WireError {
    refuse(
        Problem::NameTooLong,
        format!(
            "{what} \"{}\" is {} bytes; the limit is {limit} (intake.max_name_bytes)",
            prefix(text, 40),
            text.len(),
        ),
    )
}

/// The first `n` characters of `s` (at most), for messages.
fn prefix(s: &str, n: usize) -> String {
    let cut: String = s.chars().take(n).collect();
    if cut.len() < s.len() {
        format!("{cut}...")
    } else {
        cut
    }
}

/// Checks `payload` (a JSON object [`crate::payload::parse`] accepts, within `limits`)
/// and finds its agent key (the query's first).
pub fn check_payload(
    payload: &[u8],
    query_key: Option<&str>,
    limits: Limits,
) -> Result<String, WireError> {
    let first = payload.iter().find(|b| !b.is_ascii_whitespace());
    if first != Some(&b'{') {
        return Err(refuse(
            Problem::Malformed,
            "the payload must be a JSON object",
        ));
    }
    let parsed = crate::payload::parse(payload).map_err(|e| {
        refuse(
            Problem::Malformed,
            format!("the payload is not valid JSON: {e}"),
        )
    })?;
    if parsed.points.len() > limits.max_points {
        return Err(refuse(
            Problem::TooManyPoints,
            format!(
                "the payload has {} metric points; the limit is {} (intake.max_points)",
                parsed.points.len(),
                limits.max_points
            ),
        ));
    }
    for p in &parsed.points {
        let long = (p.name.len() > limits.max_name_bytes)
            .then_some(("metric name", p.name.as_str()))
            .or_else(|| {
                p.labels
                    .iter()
                    .find(|(_, v)| v.len() > limits.max_name_bytes)
                    .map(|(k, v)| (*k, v.as_str()))
            });
        if let Some((what, text)) = long {
            return Err(name_too_long(what, text, limits.max_name_bytes));
        }
    }
    // What names the device and its agent: hostnames are at most 253 bytes in DNS, and
    // none of these may carry an unbounded string into the pipeline's state and caches.
    for (what, text) in [
        ("internalHostname", parsed.hostname.as_deref()),
        ("uuid", parsed.uuid.as_deref()),
        ("agentKey", parsed.agent_key.as_deref()),
        ("the agent_key parameter", query_key),
    ] {
        if let Some(text) = text.filter(|t| t.len() > limits.max_name_bytes) {
            return Err(name_too_long(what, text, limits.max_name_bytes));
        }
    }
    query_key
        .map(str::to_string)
        .filter(|k| !k.trim().is_empty())
        .or(parsed.agent_key.filter(|k| !k.trim().is_empty()))
        .ok_or_else(|| {
            refuse(
                Problem::MissingAgentKey,
                "no agent key: pass ?agent_key= or agentKey in the payload",
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    const LIMITS: Limits = Limits {
        max_payload_bytes: 4096,
        max_points: 100,
        max_name_bytes: 64,
    };

    fn zlib(bytes: &[u8]) -> Vec<u8> {
        let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
        z.write_all(bytes).unwrap();
        z.finish().unwrap()
    }

    #[test]
    fn a_v2_body_is_inflated_checked_and_keyed() {
        let json = br#"{"agentKey": "k1", "system.load.1": 0.5}"#;
        let body = zlib(json);
        let md5 = hex_md5(&body);
        let d = decode_v2(&body, Some("deflate"), Some(&md5), None, LIMITS).unwrap();
        assert_eq!(d.agent_key, "k1");
        assert_eq!(d.payload, json);
        let d = decode_v2(json, None, None, Some("q"), LIMITS).unwrap();
        assert_eq!(d.agent_key, "q", "the query's key first");
    }

    #[test]
    fn each_problem_is_named() {
        let problem = |r: Result<Decoded, WireError>| r.unwrap_err().problem;
        let ok = br#"{"agentKey": "k1"}"#;
        assert_eq!(
            problem(decode_v2(ok, None, Some("00"), None, LIMITS)),
            Problem::ChecksumMismatch
        );
        assert_eq!(
            problem(decode_v2(ok, Some("deflate"), None, None, LIMITS)),
            Problem::BadCompression
        );
        assert_eq!(
            problem(decode_v2(ok, Some("br"), None, None, LIMITS)),
            Problem::UnsupportedEncoding
        );
        let bomb = zlib(&vec![b' '; 1 << 20]);
        assert_eq!(
            problem(decode_v2(&bomb, Some("deflate"), None, None, LIMITS)),
            Problem::DecompressedTooLarge
        );
        assert_eq!(
            problem(decode_v2(b"[1]", None, None, None, LIMITS)),
            Problem::Malformed
        );
        assert_eq!(
            problem(decode_v2(b"{}", None, None, None, LIMITS)),
            Problem::MissingAgentKey
        );
        let long = format!(
            r#"{{"agentKey": "k", "internalHostname": "{}"}}"#,
            "h".repeat(65)
        );
        let e = decode_v2(long.as_bytes(), None, None, None, LIMITS).unwrap_err();
        assert_eq!(e.problem, Problem::NameTooLong);
        assert!(e.message.starts_with("internalHostname \"hhh"), "{e}");
        assert!(e.message.contains("65 bytes; the limit is 64"), "{e}");
    }

    #[test]
    fn a_v1_form_needs_its_hash() {
        let payload = r#"{"agentKey": "k1", "loadAvrg": 0.2}"#;
        let form = |hash: &str| {
            serde_urlencoded::to_string([("payload", payload), ("hash", hash)]).unwrap()
        };
        let d = decode_v1(form(&hex_md5(payload.as_bytes())).as_bytes(), None, LIMITS).unwrap();
        assert_eq!(d.agent_key, "k1");
        let e = decode_v1(form("abc").as_bytes(), None, LIMITS).unwrap_err();
        assert_eq!(e.problem, Problem::ChecksumMismatch);
        let e = decode_v1(b"hash=1", None, LIMITS).unwrap_err();
        assert_eq!(e.message, "the form has no `payload` field");
    }
}

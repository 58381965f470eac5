//! The hostile-input suite (Security issue): `squall up` as a process on the real broker,
//! sent what an attacker sends. Every malformed or oversized input gets its status and
//! reason code, the process keeps serving, a flood of unique junk leaves the verdict caches
//! within their bounds and the resident memory under its ceiling, and a good payload sent
//! afterwards is stored and evaluated.

use std::io::Write;
use std::time::Duration;

use md5::{Digest, Md5};
use serde_json::{json, Value as Json};

use super::up::{config, t0, Api, Receiver, Up, KEY};

/// The enrich verdict cache bound this test runs with (`alerting.enrich_cache_max_mb`).
const CACHE_MB: u64 = 4;

/// What the process may grow by, over its resident memory once warm, while it is flooded,
/// besides its caches' bounds (per enrich task: `CACHE_MB`, and a sixteenth of it or 1 MiB
/// for rejections): bodies being decoded, buffers and the allocator (README, Security).
const WORKING_MARGIN_MB: u64 = 96;

/// A process's resident memory now and at its peak (`VmRSS`, `VmHWM`), in KiB.
fn memory_kib(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or_else(|| panic!("{name} in /proc/{pid}/status"))
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// The Prometheus samples of metric `name` at `addr` whose labels include `label` (one
/// per task, say).
async fn sample_values(addr: &str, name: &str, label: &str) -> Vec<f64> {
    let Ok(resp) = reqwest::get(format!("http://{addr}/metrics")).await else {
        return Vec::new();
    };
    let text = resp.text().await.unwrap_or_default();
    text.lines()
        .filter(|l| l.starts_with(&format!("{name}{{")) && l.contains(label))
        .filter_map(|l| l.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok()))
        .collect()
}

/// [`sample_values`] summed.
async fn samples(addr: &str, name: &str, label: &str) -> f64 {
    sample_values(addr, name, label).await.iter().sum()
}

/// Samples [`samples`] every 200 ms until `done` holds for the sum (panics after
/// `timeout`, naming the last value).
async fn sample_until(
    addr: &str,
    name: &str,
    label: &str,
    timeout: Duration,
    done: impl Fn(f64) -> bool,
) -> f64 {
    let deadline = tokio::time::Instant::now() + timeout;
    let mut every = tokio::time::interval(Duration::from_millis(200));
    loop {
        every.tick().await;
        let n = samples(addr, name, label).await;
        if done(n) {
            return n;
        }
        if tokio::time::Instant::now() >= deadline {
            let all = reqwest::get(format!("http://{addr}/metrics"))
                .await
                .map(|r| r.text());
            let all = match all {
                Ok(text) => text.await.unwrap_or_default(),
                Err(e) => e.to_string(),
            };
            let all: Vec<&str> = all.lines().filter(|l| l.starts_with(name)).collect();
            panic!("{name}{{{label}}} is still {n} after {timeout:?}; every {name}: {all:#?}");
        }
    }
}

fn zlib(bytes: &[u8]) -> Vec<u8> {
    let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    z.write_all(bytes).unwrap();
    z.finish().unwrap()
}

fn fixture() -> Json {
    serde_json::from_slice(
        &std::fs::read(format!(
            "{}/tests/fixtures/payloads/sd-agent-v2.json",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap(),
    )
    .unwrap()
}

/// A v2 request as the agent makes it (zlib, Content-MD5) of `payload`, for `account`.
fn v2(api: &Api, account: &str, key: &str, body: Vec<u8>) -> reqwest::RequestBuilder {
    api.client
        .post(format!("{}/intake/?agent_key={key}", api.intake))
        .header("X-Squall-Account", account)
        .header("Content-Encoding", "deflate")
        .header("Content-MD5", format!("{:x}", Md5::digest(&body)))
        .body(body)
}

/// Sends `request`: its status, reason code and message.
async fn answer(request: reqwest::RequestBuilder) -> (u16, String, String) {
    let r = request.send().await.expect("the process answers");
    let status = r.status().as_u16();
    let body: Json = r.json().await.unwrap_or(Json::Null);
    let text = |k: &str| body[k].as_str().unwrap_or_default().to_string();
    (status, text("reason"), text("error"))
}

/// Sends `request` and checks its status and reason.
async fn expect(what: &str, request: reqwest::RequestBuilder, status: u16, reason: &str) {
    let (s, r, error) = answer(request).await;
    assert_eq!((s, r.as_str()), (status, reason), "{what}: {error}");
    assert!(!error.is_empty(), "{what}: a message");
}

/// A half-sent request: the headers and part of the body, then nothing. The answer.
async fn half_sent(intake: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = intake.trim_start_matches("http://");
    let mut conn = tokio::net::TcpStream::connect(addr).await.unwrap();
    conn.write_all(
        format!(
            "POST /intake/?agent_key={KEY} HTTP/1.1\r\nHost: acme.agent.example.com\r\n\
             Content-Length: 1000\r\n\r\n{{\"os\": \"lin"
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(20), async {
        let mut buf = [0u8; 4096];
        loop {
            let n = conn.read(&mut buf).await.unwrap_or(0);
            answer.extend_from_slice(&buf[..n]);
            if n == 0 || answer.windows(14).any(|w| w == b"\"body_timeout\"") {
                break;
            }
        }
    })
    .await;
    String::from_utf8_lossy(&answer).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_inputs_get_their_reasons_memory_stays_bounded_and_good_payloads_still_alert() {
    let dir = tempfile::tempdir().unwrap();
    let (receiver, url) = Receiver::start().await;
    let metrics = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().to_string()
    };
    let prefix = format!("hostile{}.", std::process::id());
    let cache_mb = CACHE_MB.to_string();
    let up = Up::start_with(
        dir.path(),
        &prefix,
        &[
            ("SQUALL__ALERTING__ENRICH_CACHE_MAX_MB", cache_mb.as_str()),
            ("SQUALL__INTAKE__MAX_POINTS", "1000"),
            ("SQUALL__INTAKE__BODY_TIMEOUT_MS", "500"),
            ("SQUALL__INTAKE__RATE_LIMIT_PER_KEY", "5"),
            ("RUST_LOG", "warn"),
        ],
        &["--metrics-addr", &metrics],
    );
    let pid = up.child.id();
    let api = Api::new(&up);
    api.account().await;
    api.post(
        "/alerts/configs",
        config(
            &url,
            json!({"wait": {"seconds": 0, "enabled": false},
                   "recipients": [{"type": "webhook", "url": format!("{url}/hook"), "grouping": {"group_by": []}}]}),
        ),
    )
    .await;
    // Warm: one good payload through the whole pipeline, then the baseline.
    let t = t0();
    api.payload(t, 1.0).await;
    api.wait_get("/accounts/acme/devices", Duration::from_secs(60), |d| {
        d.as_array().is_some_and(|a| !a.is_empty())
    })
    .await;
    let (baseline_kib, _) = memory_kib(pid);

    // Every malformed input gets its status and reason.
    let good = serde_json::to_vec(&fixture()).unwrap();
    let intake = |path: &str| format!("{}{path}", api.intake);
    let raw = |body: Vec<u8>, encoding: &str| {
        api.client
            .post(intake(&format!("/intake/?agent_key={KEY}")))
            .header("X-Squall-Account", "acme")
            .header("Content-Encoding", encoding)
            .body(body)
    };
    expect(
        "bad zlib",
        raw(b"not zlib at all".to_vec(), "deflate"),
        400,
        "bad_compression",
    )
    .await;
    expect(
        "a zlib bomb (20 MiB of zeros in ~20 KB)",
        raw(zlib(&vec![b'0'; 20 << 20]), "deflate"),
        413,
        "decompressed_too_large",
    )
    .await;
    expect(
        "a wrong Content-MD5",
        raw(zlib(&good), "deflate").header("Content-MD5", "0".repeat(32)),
        400,
        "checksum_mismatch",
    )
    .await;
    expect(
        "brotli",
        raw(good.clone(), "br"),
        415,
        "unsupported_encoding",
    )
    .await;
    expect(
        "an array",
        raw(b"[1, 2]".to_vec(), "identity"),
        400,
        "malformed",
    )
    .await;
    let deep = |inner: &str| {
        format!(
            "{{\"agentKey\": \"{KEY}\", {inner}: {}{}}}",
            "[".repeat(100_000),
            "]".repeat(100_000)
        )
        .into_bytes()
    };
    expect(
        "metrics nested 100,000 deep",
        raw(deep("\"metrics\""), "identity"),
        400,
        "malformed",
    )
    .await;
    // Nesting where nothing is read (no metric in it) is valid JSON: queued, and skipped
    // all the way down the pipeline without recursion (the process stays up: below).
    let (s, _, error) = answer(raw(deep("\"extra\""), "identity")).await;
    assert_eq!(s, 202, "an unread value nested 100,000 deep: {error}");
    expect(
        "a body over max_body_bytes (1 MiB)",
        raw(vec![b' '; (1 << 20) + 1], "identity"),
        413,
        "too_large",
    )
    .await;
    let mut many = fixture();
    for i in 0..1_001 {
        many[format!("junk.metric.{i}")] = json!(i);
    }
    expect(
        "1,001 points over max_points 1,000",
        v2(&api, "acme", KEY, zlib(&serde_json::to_vec(&many).unwrap())),
        413,
        "too_many_points",
    )
    .await;
    expect(
        "no account",
        api.client
            .post(intake(&format!("/intake/?agent_key={KEY}")))
            .body(good.clone()),
        400,
        "missing_account",
    )
    .await;
    let mut keyless = fixture();
    keyless.as_object_mut().unwrap().remove("agentKey");
    expect(
        "no agent key",
        api.client
            .post(intake("/intake/"))
            .header("X-Squall-Account", "acme")
            .body(serde_json::to_vec(&keyless).unwrap()),
        400,
        "missing_agent_key",
    )
    .await;
    let v1 = std::fs::read_to_string(format!(
        "{}/tests/fixtures/payloads/sd-agent-v1.json",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap();
    expect(
        "a v1 form with a bad hash",
        api.client
            .post(intake("/postback/"))
            .header("X-Squall-Account", "acme")
            .form(&[("payload", v1.as_str()), ("hash", "00")]),
        400,
        "checksum_mismatch",
    )
    .await;
    expect(
        "a v1 form without its payload",
        api.client
            .post(intake("/postback/"))
            .header("X-Squall-Account", "acme")
            .form(&[("hash", "00")]),
        400,
        "malformed",
    )
    .await;
    let text = half_sent(&api.intake).await;
    assert!(text.starts_with("HTTP/1.1 408"), "a half-sent body: {text}");
    // One key past its rate (5/s, bursts of 10): 429 with Retry-After, and no more
    // accepted than the burst and the rate allow over the time it took.
    let started = std::time::Instant::now();
    let (mut passed, mut limited) = (0u32, 0u32);
    while limited == 0 && passed < 200 {
        let r = v2(&api, "nobody", "one-busy-key", zlib(&good))
            .send()
            .await
            .unwrap();
        match r.status().as_u16() {
            429 => {
                assert!(r.headers().contains_key("retry-after"), "Retry-After");
                limited += 1;
            }
            202 => passed += 1,
            other => panic!("{other} for a busy key"),
        }
    }
    let allowed = 10.0 + 5.0 * started.elapsed().as_secs_f64() + 1.0;
    assert!(limited == 1, "the key was limited after {passed} payloads");
    assert!(
        f64::from(passed) <= allowed,
        "{passed} passed; at most {allowed:.0} allowed"
    );
    let busy = (passed, started.elapsed());
    // The issue's attack: 900 KB hostnames to an unknown account (~1 KB each on the wire).
    for i in 0..150 {
        let mut p = fixture();
        p["internalHostname"] = json!(format!("{i}-{}", "h".repeat(900_000)));
        expect(
            "a 900 KB hostname",
            v2(
                &api,
                "nobody",
                &format!("key-{i}"),
                zlib(&serde_json::to_vec(&p).unwrap()),
            ),
            400,
            "name_too_long",
        )
        .await;
    }
    // A NaN timestamp passes the intake (it is JSON) and is rejected by enrich by name.
    let mut nan = fixture();
    nan["collection_timestamp"] = json!("NaN");
    let (s, _, _) = answer(v2(
        &api,
        "acme",
        KEY,
        zlib(&serde_json::to_vec(&nan).unwrap()),
    ))
    .await;
    assert_eq!(s, 202, "a NaN time is queued, then rejected");

    // A flood of unique junk: every account, key and hostname new and as long as allowed,
    // 16 at a time. Each is accepted (202) and rejected by enrich (unknown_account).
    const FLOOD: usize = 4_000;
    const AT_ONCE: usize = 16;
    let mut agents = tokio::task::JoinSet::new();
    for first in 0..AT_ONCE {
        let (client, intake) = (api.client.clone(), api.intake.clone());
        agents.spawn(async move {
            let pad = |s: String| format!("{s}-{}", "x".repeat(240 - s.len()));
            let mut accepted = 0;
            for i in (first..FLOOD).step_by(AT_ONCE) {
                let mut p = fixture();
                let key = pad(format!("k{i}"));
                p["internalHostname"] = json!(pad(format!("h{i}")));
                p["uuid"] = json!(pad(format!("u{i}")));
                p["agentKey"] = json!(key);
                let body = zlib(&serde_json::to_vec(&p).unwrap());
                // As an agent does: a 503 (the broker did not take the write in time, on
                // a busy machine) is sent again, a bounded number of times.
                let mut status = 0;
                for _ in 0..5 {
                    status = client
                        .post(format!("{intake}/intake/?agent_key={key}"))
                        .header("X-Squall-Account", pad(format!("a{i}")))
                        .header("Content-Encoding", "deflate")
                        .header("Content-MD5", format!("{:x}", Md5::digest(&body)))
                        .body(body.clone())
                        .send()
                        .await
                        .map(|r| r.status().as_u16())
                        .unwrap_or(0);
                    if status != 503 {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
                assert_eq!(status, 202, "junk payload {i} is well formed");
                accepted += 1;
            }
            accepted
        });
    }
    let mut accepted = 0;
    while let Some(n) = agents.join_next().await {
        accepted += n.unwrap();
    }
    assert_eq!(accepted, FLOOD);
    sample_until(
        &metrics,
        "squall_rejected_total",
        "reason=\"unknown_account\"",
        Duration::from_secs(120),
        |n| n >= FLOOD as f64,
    )
    .await;
    assert!(
        samples(
            &metrics,
            "squall_rejected_total",
            "reason=\"timestamp_out_of_range\""
        )
        .await
            >= 1.0,
        "the NaN time was rejected by name"
    );
    // The caches held to their bounds (their gauges are published every second).
    let rejection_entries = sample_until(
        &metrics,
        "squall_enrich_cache_entries",
        "cache=\"rejections\"",
        Duration::from_secs(30),
        |n| n > 0.0,
    )
    .await;
    // Each enrich task has its caches, each within its bound.
    let rejections = sample_values(
        &metrics,
        "squall_enrich_cache_bytes",
        "cache=\"rejections\"",
    )
    .await;
    let devices = sample_values(&metrics, "squall_enrich_cache_bytes", "cache=\"devices\"").await;
    let tasks = rejections.len() as u64;
    assert!(
        tasks >= 1 && devices.len() as u64 == tasks,
        "{rejections:?} {devices:?}"
    );
    let rejection_bound = ((CACHE_MB << 20) / 16).max(1 << 20) as f64;
    for bytes in &rejections {
        assert!(
            *bytes <= rejection_bound,
            "a rejections cache holds {bytes} bytes, bound {rejection_bound}"
        );
    }
    for bytes in &devices {
        assert!(
            *bytes <= (CACHE_MB << 20) as f64,
            "a devices cache: {bytes} bytes"
        );
    }
    assert!(
        rejection_entries < FLOOD as f64,
        "{rejection_entries} rejections cached: the least used went"
    );
    let rejections: f64 = rejections.iter().sum();

    // Still serving: a good payload sent now is stored and evaluated (it fires).
    api.payload(t + 60.0, 9.0).await;
    let got = receiver.wait("/hook", 1, Duration::from_secs(60)).await;
    assert_eq!(got[0].body["status"], "firing", "{}", got[0].body);
    let devices = api.get("/accounts/acme/devices").await;
    let id = devices[0]["id"].as_i64().unwrap();
    api.wait_get(
        &format!("/devices/{id}/metrics?metric=system.load.1&resolution=minute"),
        Duration::from_secs(60),
        |b| b["points"].as_array().is_some_and(|p| p.len() >= 2),
    )
    .await;

    let (now_kib, peak_kib) = memory_kib(pid);
    let caches_mb = tasks * (CACHE_MB + (rejection_bound as u64 >> 20));
    let ceiling_kib = baseline_kib + (caches_mb + WORKING_MARGIN_MB) * 1024;
    eprintln!(
        "rate limit (5/s, bursts of 10): {} payloads of one key passed in {:?} before its first 429",
        busy.0, busy.1
    );
    eprintln!(
        "memory: baseline {} MiB, now {} MiB, peak {} MiB, ceiling {} MiB; rejection cache {:.0} KiB in {rejection_entries} entries",
        baseline_kib / 1024,
        now_kib / 1024,
        peak_kib / 1024,
        ceiling_kib / 1024,
        rejections / 1024.0
    );
    assert!(
        peak_kib <= ceiling_kib,
        "peak {peak_kib} KiB over the ceiling {ceiling_kib} KiB (baseline {baseline_kib})"
    );
    up.stop();
}

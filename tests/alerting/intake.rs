//! The intake service through real HTTP, with requests built exactly as the agents build
//! them (v2: zlib + Content-MD5 + agent_key; v1: form with an MD5 hash), writing to the real
//! broker; and every way a request can be refused, each with its status and reason.

use std::io::Write;
use std::time::Duration;

use crate::support::*;
use md5::{Digest, Md5};
use squall_services::intake::{serve, Envelope, IntakeConfig};

const V2: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/payloads/sd-agent-v2.json"
);
const V1: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/payloads/sd-agent-v1.json"
);
const KEY: &str = "f9ce01e1e962b59798d6350eb8cfce4c";

struct Intake {
    url: String,
    topic: String,
    _stop: tokio::sync::oneshot::Sender<()>,
}

async fn start(config: IntakeConfig) -> Intake {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let topic = config.topic.clone();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        serve(config, listener, async {
            let _ = stopped.await;
        })
        .await
        .unwrap()
    });
    Intake {
        url,
        topic,
        _stop: stop,
    }
}

async fn start_with_broker() -> Intake {
    let topic = unique("payloads");
    create_topic(&topic, 1).await;
    start(IntakeConfig {
        brokers: brokers(),
        topic,
        max_body_bytes: 64 * 1024,
        max_payload_bytes: 256 * 1024,
        ..squall::config::Config::default().intake("")
    })
    .await
}

fn zlib(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

fn md5_hex(bytes: &[u8]) -> String {
    format!("{:x}", Md5::digest(bytes))
}

/// A v2 request as the agent sends it: zlib body, Content-MD5 of the compressed body.
fn v2_request(
    client: &reqwest::Client,
    intake: &Intake,
    host: &str,
    json: &[u8],
) -> reqwest::RequestBuilder {
    let body = zlib(json);
    client
        .post(format!("{}/intake/?agent_key={KEY}", intake.url))
        .header("Host", host)
        .header("Content-Type", "application/json")
        .header("Content-Encoding", "deflate")
        .header("Content-MD5", md5_hex(&body))
        .body(body)
}

/// A v1 request as the agent sends it: a form with the payload and its MD5.
fn v1_request(client: &reqwest::Client, intake: &Intake, json: &str) -> reqwest::RequestBuilder {
    let form =
        serde_urlencoded::to_string([("payload", json), ("hash", &md5_hex(json.as_bytes()))])
            .unwrap();
    client
        .post(format!("{}/postback/", intake.url))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(form)
}

async fn envelopes(topic: &str, n: usize) -> Vec<(String, serde_json::Value)> {
    let topic = topic.to_string();
    tokio::task::spawn_blocking(move || {
        consume(&topic, n, Duration::from_secs(30))
            .into_iter()
            .map(|r| {
                (
                    r.key.unwrap(),
                    serde_json::from_str(&r.value.unwrap()).unwrap(),
                )
            })
            .collect()
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_agent_requests_are_accepted_and_queued_as_envelopes() {
    let intake = start_with_broker().await;
    let client = reqwest::Client::new();
    assert_eq!(
        client
            .get(format!("{}/healthz", intake.url))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let v2 = std::fs::read(V2).unwrap();
    let v1 = std::fs::read_to_string(V1).unwrap();
    let before = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;

    let r = v2_request(&client, &intake, "acme.agent.example.com", &v2)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202, "{}", r.text().await.unwrap());
    let r = v1_request(&client, &intake, &v1)
        .header("X-Squall-Account", "globex")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202, "{}", r.text().await.unwrap());
    // gzip and uncompressed bodies, account from the query string.
    for (encoding, body) in [("gzip", gzip(&v2)), ("identity", v2.clone())] {
        let r = client
            .post(format!("{}/intake/?account=initech", intake.url))
            .header("Content-Encoding", encoding)
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 202, "{encoding}: {}", r.text().await.unwrap());
    }

    let got = envelopes(&intake.topic, 4).await;
    let after = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let v2_json: serde_json::Value = serde_json::from_slice(&v2).unwrap();
    let v1_json: serde_json::Value = serde_json::from_str(&v1).unwrap();
    let accounts: Vec<&str> = got
        .iter()
        .map(|(_, e)| e["account"].as_str().unwrap())
        .collect();
    assert_eq!(accounts, ["acme", "globex", "initech", "initech"]);
    for (key, e) in &got {
        assert_eq!(key, KEY, "keyed by agent key");
        assert_eq!(e["agent_key"], KEY);
        let t = e["received_at_ms"].as_u64().unwrap();
        assert!((before..=after).contains(&t), "receive time stamped");
    }
    assert_eq!(got[0].1["format"], "v2");
    assert_eq!(
        got[0].1["payload"], v2_json,
        "the payload arrives as the agent sent it"
    );
    assert_eq!(got[1].1["format"], "v1");
    assert_eq!(got[1].1["payload"], v1_json);
    // The envelope type reads them back.
    let raw = serde_json::to_string(&got[0].1).unwrap();
    let envelope: Envelope<'_> = serde_json::from_str(&raw).unwrap();
    assert_eq!(envelope.account, "acme");
}

async fn refused(r: reqwest::Response) -> (u16, String, String) {
    let status = r.status().as_u16();
    let body: serde_json::Value = r.json().await.unwrap();
    (
        status,
        body["reason"].as_str().unwrap().to_string(),
        body["error"].as_str().unwrap().to_string(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_bad_request_gets_its_status_and_reason_and_the_service_keeps_serving() {
    let intake = start_with_broker().await;
    let client = reqwest::Client::new();
    let v2 = std::fs::read(V2).unwrap();
    let host = "acme.agent.example.com";
    let post = |body: Vec<u8>, encoding: &str| {
        client
            .post(format!("{}/intake/?agent_key={KEY}", intake.url))
            .header("Host", host)
            .header("Content-Encoding", encoding)
            .body(body)
    };

    let (s, reason, error) = refused(
        v2_request(&client, &intake, host, b"{\"agentKey\": ")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!((s, reason.as_str()), (400, "malformed"), "{error}");
    assert!(error.contains("not valid JSON"), "{error}");

    let (s, reason, _) = refused(
        v2_request(&client, &intake, host, b"[1, 2]")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!((s, reason.as_str()), (400, "malformed"));

    let (s, reason, error) = refused(
        post(b"definitely not zlib".to_vec(), "deflate")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!((s, reason.as_str()), (400, "bad_compression"), "{error}");

    let body = zlib(&v2);
    let (s, reason, error) = refused(
        post(body, "deflate")
            .header("Content-MD5", "0123456789abcdef0123456789abcdef")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!((s, reason.as_str()), (400, "checksum_mismatch"));
    assert!(
        error.starts_with("Content-MD5 is 0123456789abcdef0123456789abcdef, but the body's MD5 is"),
        "{error}"
    );

    let json = std::fs::read_to_string(V1).unwrap();
    let form =
        serde_urlencoded::to_string([("payload", json.as_str()), ("hash", "deadbeef")]).unwrap();
    let (s, reason, _) = refused(
        client
            .post(format!("{}/postback/", intake.url))
            .header("Host", host)
            .body(form)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!((s, reason.as_str()), (400, "checksum_mismatch"));

    let (s, reason, error) = refused(
        post(vec![b' '; 70 * 1024], "identity")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!((s, reason.as_str()), (413, "too_large"), "{error}");

    // A decompression bomb: 64 MB of zeros in ~64 KB of zlib; cut off at 256 KB.
    let mut bomb = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
    for _ in 0..64 {
        bomb.write_all(&vec![0u8; 1 << 20]).unwrap();
    }
    let bomb = bomb.finish().unwrap();
    assert!(
        bomb.len() < 64 * 1024,
        "the bomb fits the body limit ({} bytes)",
        bomb.len()
    );
    let (s, reason, _) = refused(post(bomb, "deflate").send().await.unwrap()).await;
    assert_eq!((s, reason.as_str()), (413, "decompressed_too_large"));

    let no_key = zlib(br#"{"os": "linux", "cpuUser": 1.0}"#);
    let (s, reason, _) = refused(
        client
            .post(format!("{}/intake/", intake.url))
            .header("Host", host)
            .header("Content-Encoding", "deflate")
            .body(no_key)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!((s, reason.as_str()), (400, "missing_agent_key"));

    let (s, reason, error) = refused(
        client
            .post(format!("{}/intake/?agent_key={KEY}", intake.url))
            .header("Host", "localhost")
            .body(v2.clone())
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!((s, reason.as_str()), (400, "missing_account"), "{error}");

    let (s, reason, error) = refused(post(v2.clone(), "br").send().await.unwrap()).await;
    assert_eq!(
        (s, reason.as_str()),
        (415, "unsupported_encoding"),
        "{error}"
    );

    // Bounded work per payload: 10,001 points (each a few bytes: well inside the body
    // limits), and one metric name of 300 bytes.
    let mut many: serde_json::Value = serde_json::from_slice(&v2).unwrap();
    for i in 0..10_001 {
        many[format!("m{i}")] = serde_json::json!(1);
    }
    let (s, reason, error) = refused(
        post(zlib(&serde_json::to_vec(&many).unwrap()), "deflate")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!((s, reason.as_str()), (413, "too_many_points"), "{error}");
    assert!(error.contains("intake.max_points"), "{error}");
    let mut long: serde_json::Value = serde_json::from_slice(&v2).unwrap();
    long["x".repeat(300)] = serde_json::json!(1);
    let (s, reason, error) = refused(
        post(zlib(&serde_json::to_vec(&long).unwrap()), "deflate")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!((s, reason.as_str()), (400, "name_too_long"), "{error}");
    assert!(
        error.starts_with("metric name \"xxxxxxxx") && error.contains("300 bytes"),
        "{error}"
    );
    // A 200 KB hostname (which enrich would otherwise carry into its caches and the
    // devices table), and an account name of 300 bytes: refused, naming the field.
    let mut host_bomb: serde_json::Value = serde_json::from_slice(&v2).unwrap();
    host_bomb["internalHostname"] = "h".repeat(200_000).into();
    let (s, reason, error) = refused(
        post(zlib(&serde_json::to_vec(&host_bomb).unwrap()), "deflate")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!((s, reason.as_str()), (400, "name_too_long"), "{error}");
    assert!(
        error.starts_with("internalHostname \"hhhh") && error.contains("200000 bytes"),
        "{error}"
    );
    let (s, reason, error) = refused(
        client
            .post(format!("{}/intake/?agent_key={KEY}", intake.url))
            .header("X-Squall-Account", "a".repeat(300))
            .body(v2.clone())
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!((s, reason.as_str()), (400, "name_too_long"), "{error}");
    assert!(error.starts_with("the account \"aaaa"), "{error}");

    // After all that, a good payload still goes through.
    let r = v2_request(&client, &intake, host, &v2)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    assert_eq!(
        envelopes(&intake.topic, 1).await.len(),
        1,
        "only the good payload was queued"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_that_cannot_take_the_write_gets_503_with_retry_after() {
    // Nothing listens on port 1: librdkafka cannot deliver within the produce timeout.
    let intake = start(IntakeConfig {
        brokers: "127.0.0.1:1".into(),
        topic: "squall.payloads".into(),
        produce_timeout_ms: 1_000,
        ..squall::config::Config::default().intake("")
    })
    .await;
    let client = reqwest::Client::new();
    let v2 = std::fs::read(V2).unwrap();
    let r = v2_request(&client, &intake, "acme.agent.example.com", &v2)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 503);
    assert_eq!(r.headers()["retry-after"], "5");
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["reason"], "broker_unavailable");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_squall_intake_command_serves_and_stops_on_ctrl_c() {
    use std::io::BufRead;
    let topic = unique("payloads");
    create_topic(&topic, 1).await;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_squall"))
        .args([
            "intake",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--topic",
            &topic,
        ])
        .args(["--brokers", &brokers(), "--domain", "squall.test"])
        .env("RUST_LOG", "info")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = std::io::BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    while !line.contains("intake listening") {
        line.clear();
        assert!(
            stderr.read_line(&mut line).unwrap() > 0,
            "squall intake exited early"
        );
    }
    let intake = Intake {
        url: format!("http://127.0.0.1:{port}"),
        topic: topic.clone(),
        _stop: tokio::sync::oneshot::channel().0,
    };
    let v2 = std::fs::read(V2).unwrap();
    let r = v2_request(
        &reqwest::Client::new(),
        &intake,
        "acme.agent.squall.test",
        &v2,
    )
    .send()
    .await
    .unwrap();
    assert_eq!(r.status(), 202);
    let got = envelopes(&topic, 1).await;
    assert_eq!(
        got[0].1["account"], "acme",
        "the --domain names the account host"
    );
    let status = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    assert!(child.wait().unwrap().success());
}

/// Limits hold exactly as configured, past the HTTP framework's own 2 MiB default and the
/// producer's 1 MB default: with both limits at 3 MiB, a valid 2.5 MB payload is queued
/// (it was answered 413 by the framework, or 503 for ever by the producer), and a body one
/// byte over the limit gets the JSON refusal with its reason.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limits_above_the_framework_defaults_are_honoured_exactly() {
    let topic = unique("payloads");
    create_topic(&topic, 1).await;
    let limit = 3 << 20;
    let intake = start(IntakeConfig {
        brokers: brokers(),
        topic,
        max_body_bytes: limit,
        max_payload_bytes: limit,
        ..squall::config::Config::default().intake("")
    })
    .await;
    let client = reqwest::Client::new();
    let mut big: serde_json::Value = serde_json::from_slice(&std::fs::read(V2).unwrap()).unwrap();
    big["padding"] = "p".repeat(2_500_000).into();
    let body = serde_json::to_vec(&big).unwrap();
    let r = client
        .post(format!("{}/intake/?agent_key={KEY}", intake.url))
        .header("Host", "acme.agent.example.com")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202, "{}", r.text().await.unwrap());
    assert_eq!(envelopes(&intake.topic, 1).await.len(), 1);

    let (s, reason, error) = refused(
        client
            .post(format!("{}/intake/?agent_key={KEY}", intake.url))
            .header("Host", "acme.agent.example.com")
            .body(vec![b' '; limit + 1])
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!((s, reason.as_str()), (413, "too_large"), "{error}");
    assert!(error.contains("intake.max_body_bytes"), "{error}");
}

/// A client that sends its headers and part of its body, then nothing, gets 408
/// `body_timeout` after `intake.body_timeout_ms` instead of holding the connection (and
/// the server's shutdown) for as long as it likes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_half_sent_body_times_out_with_408() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let intake = start(IntakeConfig {
        brokers: "127.0.0.1:1".into(),
        topic: "squall.payloads".into(),
        body_timeout_ms: 300,
        ..squall::config::Config::default().intake("")
    })
    .await;
    let addr = intake.url.trim_start_matches("http://").to_string();
    let mut conn = tokio::net::TcpStream::connect(&addr).await.unwrap();
    conn.write_all(
        format!(
            "POST /intake/?agent_key={KEY} HTTP/1.1\r\nHost: acme.agent.example.com\r\n\
             Content-Length: 1000\r\n\r\n{{\"os\": \"lin"
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    // The answer comes by itself (bounded here, far above the timeout).
    let mut answer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(20), async {
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
    assert!(
        read.is_ok(),
        "no answer: {}",
        String::from_utf8_lossy(&answer)
    );
    let text = String::from_utf8_lossy(&answer);
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    assert!(text.contains("intake.body_timeout_ms"), "{text}");
}

/// Rate limits per agent key and per account: past its allowance (bursts of twice the
/// rate) a key gets 429 `rate_limited` with `Retry-After`, counted like every refusal,
/// while another key keeps posting; the account's limit covers all its keys.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_or_an_account_over_its_rate_gets_429_with_retry_after() {
    let topic = unique("payloads");
    create_topic(&topic, 1).await;
    let intake = start(IntakeConfig {
        brokers: brokers(),
        topic,
        rate_limit_per_key: 1,
        rate_limit_per_account: 3,
        ..squall::config::Config::default().intake("")
    })
    .await;
    let client = reqwest::Client::new();
    let v2 = std::fs::read(V2).unwrap();
    let post = |key: &str, host: &str| {
        client
            .post(format!("{}/intake/?agent_key={key}", intake.url))
            .header("Host", host.to_string())
            .body(v2.clone())
    };
    // One key: 2 at once (the burst), then one a second.
    let started = std::time::Instant::now();
    let mut accepted = 0;
    let mut limited = None;
    for _ in 0..20 {
        let r = post("key-one", "acme.agent.example.com")
            .send()
            .await
            .unwrap();
        if r.status() == 202 {
            accepted += 1;
            continue;
        }
        let retry = r.headers()["retry-after"].to_str().unwrap().to_string();
        limited = Some((refused(r).await, retry));
        break;
    }
    let ((s, reason, error), retry) = limited.expect("the key was never limited");
    assert_eq!((s, reason.as_str()), (429, "rate_limited"), "{error}");
    assert!(error.contains("intake.rate_limit_per_key"), "{error}");
    assert!(retry.parse::<u64>().unwrap() >= 1, "{retry}");
    let allowed = 2 + started.elapsed().as_secs() as usize;
    assert!(
        accepted <= allowed,
        "{accepted} accepted, {allowed} allowed"
    );

    // Another key of another account is not held back by the first.
    let r = post("key-two", "globex.agent.example.com")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);

    // The account's limit (3/s, bursts of 6) across its keys: acme's keys run out.
    let mut account_limited = None;
    for i in 0..30 {
        let r = post(&format!("acme-key-{i}"), "acme.agent.example.com")
            .send()
            .await
            .unwrap();
        if r.status() != 202 {
            account_limited = Some(refused(r).await);
            break;
        }
    }
    let (s, reason, error) = account_limited.expect("the account was never limited");
    assert_eq!((s, reason.as_str()), (429, "rate_limited"), "{error}");
    assert!(error.contains("intake.rate_limit_per_account"), "{error}");
}

fn tls_options(header_timeout_ms: u64) -> squall_services::serve::ServeOptions {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/tls");
    squall::config::TlsSection {
        cert: format!("{dir}/cert.pem"),
        key: format!("{dir}/key.pem"),
    }
    .serve_options("intake.tls", header_timeout_ms)
    .unwrap()
}

/// HTTPS on the intake (`intake.tls.cert` / `intake.tls.key`): a real agent request over
/// TLS is accepted and queued; plain HTTP to the TLS port gets nothing; a TLS setting with
/// one file only is refused naming it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_intake_serves_https_with_the_configured_certificate() {
    let topic = unique("payloads");
    create_topic(&topic, 1).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let config = IntakeConfig {
        brokers: brokers(),
        topic: topic.clone(),
        ..squall::config::Config::default().intake("")
    };
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(squall_services::intake::serve_with(
        config,
        listener,
        tls_options(10_000),
        async move {
            let _ = stopped.await;
        },
    ));
    let cert = reqwest::Certificate::from_pem(
        &std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/tls/cert.pem"
        ))
        .unwrap(),
    )
    .unwrap();
    let client = reqwest::Client::builder()
        .add_root_certificate(cert)
        .build()
        .unwrap();
    let v2 = std::fs::read(V2).unwrap();
    let body = zlib(&v2);
    let r = client
        .post(format!("https://127.0.0.1:{port}/intake/?agent_key={KEY}"))
        .header("Host", "acme.agent.example.com")
        .header("Content-Encoding", "deflate")
        .header("Content-MD5", md5_hex(&body))
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202, "{}", r.text().await.unwrap_or_default());
    assert_eq!(envelopes(&topic, 1).await.len(), 1);

    let plain = reqwest::Client::new()
        .post(format!("http://127.0.0.1:{port}/intake/?agent_key={KEY}"))
        .body(v2.clone())
        .send()
        .await;
    assert!(
        plain.as_ref().map_or(true, |r| r.status() != 202),
        "plain HTTP on the TLS port: {plain:?}"
    );

    let half = squall::config::TlsSection {
        cert: "cert.pem".into(),
        key: String::new(),
    }
    .serve_options("intake.tls", 10_000)
    .unwrap_err()
    .to_string();
    assert!(half.contains("intake.tls: set both cert and key"), "{half}");
    let _ = stop.send(());
}

/// A client that never finishes its request headers is disconnected after
/// `intake.header_timeout_ms`; and a shutdown does not wait for a client that is slow to
/// send its body for longer than the grace period.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_clients_hold_neither_a_connection_nor_the_shutdown() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let config = IntakeConfig {
        brokers: "127.0.0.1:1".into(),
        topic: "squall.payloads".into(),
        // Longer than the test: only the grace period can end this one's request.
        body_timeout_ms: 600_000,
        ..squall::config::Config::default().intake("")
    };
    let options = squall_services::serve::ServeOptions {
        header_timeout: Duration::from_millis(300),
        grace: Duration::from_millis(500),
        ..Default::default()
    };
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(squall_services::intake::serve_with(
        config,
        listener,
        options,
        async move {
            let _ = stopped.await;
        },
    ));

    // Headers begun, never finished: the server hangs up by itself.
    let mut slow = tokio::net::TcpStream::connect(addr).await.unwrap();
    slow.write_all(b"POST /intake/ HTTP/1.1\r\nHost: acme.agent.example.com\r\n")
        .await
        .unwrap();
    let closed = tokio::time::timeout(Duration::from_secs(20), async {
        let mut buf = [0u8; 1024];
        loop {
            match slow.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => continue,
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "the half-sent headers held the connection");

    // A body that trickles: the shutdown waits the grace period for it, no longer.
    let mut trickle = tokio::net::TcpStream::connect(addr).await.unwrap();
    trickle
        .write_all(
            format!(
                "POST /intake/?agent_key={KEY} HTTP/1.1\r\nHost: acme.agent.example.com\r\n\
                 Content-Length: 1000\r\n\r\n{{\"os\""
            )
            .as_bytes(),
        )
        .await
        .unwrap();
    // The server has the request (its headers are read within the header timeout):
    // `healthz` on another connection answers, so the accept loop is past it.
    let ok = reqwest::get(format!("http://{addr}/healthz"))
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    let _ = stop.send(());
    let ended = tokio::time::timeout(Duration::from_secs(20), server).await;
    assert!(
        matches!(ended, Ok(Ok(Ok(())))),
        "the shutdown waited on the slow client: {ended:?}"
    );
}

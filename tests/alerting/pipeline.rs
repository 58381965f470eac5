//! The alert pipeline's first half end to end: payloads built exactly as the real agents
//! build them, posted over HTTP to the intake, queued on the real broker, consumed by the
//! topology (kafka -> enrich -> split -> store, rejections -> kafka), read back through
//! the query API.

use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use crate::support::*;
use md5::{Digest, Md5};
use serde_json::{json, Value as Json};
use squall_alerting::accounts::Account;
use squall_alerting::store::{AccountStore, MetricStore};
use squall_runtime::RunningTopology;
use squall_services::admin::{router, AdminState};
use squall_services::intake::{serve, IntakeConfig};
use squall_store_sqlite::SqliteStore;
use squall_topology::*;

const KEY: &str = "f9ce01e1e962b59798d6350eb8cfce4c";
const TOKEN: &str = "pipeline-admin-token";

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(format!(
        "{}/tests/fixtures/payloads/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

/// GETs `url` from the API with the admin token and returns its JSON body.
async fn get_json(client: &reqwest::Client, url: String) -> Json {
    client
        .get(url)
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

fn md5_hex(b: &[u8]) -> String {
    format!("{:x}", Md5::digest(b))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_payloads_flow_from_http_to_the_query_api() {
    let dir = tempfile::tempdir().unwrap();
    let db_url = format!("sqlite://{}", dir.path().join("squall.db").display());
    let accounts = Arc::new(SqliteStore::open_url(&db_url).unwrap());
    accounts
        .create_account(&Account {
            name: "acme".into(),
            device_quota: 5,
            active: true,
        })
        .unwrap();
    accounts.issue_agent_key("acme", Some(KEY)).unwrap();
    accounts
        .create_account(&Account {
            name: "globex".into(),
            device_quota: 5,
            active: false,
        })
        .unwrap();
    let globex_key = accounts.issue_agent_key("globex", None).unwrap();

    let (payloads, rejected, group) = (unique("payloads"), unique("rejected"), unique("pipeline"));
    create_topic(&payloads, 2).await;
    create_topic(&rejected, 1).await;

    // The intake, as agents see it.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let intake_url = format!("http://{}", listener.local_addr().unwrap());
    let config = IntakeConfig {
        brokers: brokers(),
        topic: payloads.clone(),
        ..squall::config::Config::default().intake("")
    };
    tokio::spawn(async move {
        serve(config, listener, std::future::pending())
            .await
            .unwrap()
    });

    // The topology.
    let mut b = TopologyBuilder::new("pipeline");
    let options = |v: Json| v.as_object().unwrap().clone();
    b.set_registered_spout(
        "payloads",
        1,
        "kafka",
        options(json!({
            "brokers": brokers(), "topic": payloads, "group_id": group,
            "options": { "session.timeout.ms": "6000" }
        })),
    );
    b.set_registered_bolt("enrich", 2, "enrich", options(json!({ "db_url": db_url })))
        .fields_grouping("payloads", ["key"]);
    b.set_registered_bolt("split", 1, "split", options(json!({})))
        .shuffle_grouping("enrich");
    b.set_registered_bolt("store", 1, "store", options(json!({ "db_url": db_url })))
        .fields_grouping("split", ["device"]);
    b.set_registered_bolt(
        "rejected",
        1,
        "kafka",
        options(json!({ "brokers": brokers(), "topic": rejected })),
    )
    .grouping("enrich", "rejected", Grouping::Shuffle);
    let running = RunningTopology::start(b.build_with(&squall::registry()).unwrap()).unwrap();

    // The query API.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let api = format!("http://{}/api/v1", listener.local_addr().unwrap());
    let state = AdminState {
        store: accounts.clone(),
        token: TOKEN.into(),
        metrics: Some(Arc::new(SqliteStore::open_url(&db_url).unwrap()) as Arc<dyn MetricStore>),
        alerts: None,
        deliveries: None,
        dead_letters: None,
        policy: None,
    };
    tokio::spawn(async move { axum::serve(listener, router(state)).await.unwrap() });

    // A v2 agent: zlib + Content-MD5 + agent_key, to acme's host name.
    let client = reqwest::Client::new();
    let v2 = fixture("sd-agent-v2.json");
    let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    z.write_all(&v2).unwrap();
    let body = z.finish().unwrap();
    let r = client
        .post(format!("{intake_url}/intake/?agent_key={KEY}"))
        .header("Host", "acme.agent.example.com")
        .header("Content-Type", "application/json")
        .header("Content-Encoding", "deflate")
        .header("Content-MD5", md5_hex(&body))
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    // A v1 agent: form with payload and hash.
    let v1 = String::from_utf8(fixture("sd-agent-v1.json")).unwrap();
    let form =
        serde_urlencoded::to_string([("payload", v1.as_str()), ("hash", &md5_hex(v1.as_bytes()))])
            .unwrap();
    let r = client
        .post(format!("{intake_url}/postback/"))
        .header("Host", "acme.agent.example.com")
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(form)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    // An agent of an inactive account: accepted by the intake, rejected by enrich.
    let other = serde_json::to_vec(
        &json!({"agentKey": globex_key, "internalHostname": "db-01", "cpuUser": 3.0}),
    )
    .unwrap();
    let r = client
        .post(format!("{intake_url}/intake/?account=globex"))
        .body(other)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);

    // Wait (bounded) until all three payloads are fully processed: stored, or rejected and
    // written to the rejected topic.
    let mut tick = tokio::time::interval(Duration::from_millis(25));
    tokio::time::timeout(Duration::from_secs(60), async {
        while running.report().component("payloads").unwrap().acked < 3 {
            tick.tick().await;
        }
    })
    .await
    .expect("three payloads processed within a minute");

    // Devices were registered for the two acme agents.
    let devices: Json = get_json(&client, format!("{api}/accounts/acme/devices")).await;
    let id_of = |host: &str| -> i64 {
        devices
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["hostname"] == host)
            .unwrap_or_else(|| panic!("no device {host} in {devices}"))["id"]
            .as_i64()
            .unwrap()
    };
    let (web_v2, web_v1) = (id_of("web-01.example.com"), id_of("web-01"));

    let latest: Json = get_json(&client, format!("{api}/devices/{web_v2}/latest")).await;
    assert_eq!(
        latest["time"], 1487973674.928511,
        "event time is the agent's collection_timestamp"
    );
    assert_eq!(latest["values"]["system.load.1"], 0.21);
    assert_eq!(
        latest["values"]["system.disk.in_use{device_name=/dev/sda1}"],
        0.332
    );

    let minutes: Json = get_json(&client, format!(
            "{api}/devices/{web_v2}/metrics?metric=system.disk.in_use&device_name=/dev/sda1&resolution=minute"
        )).await;
    let points = minutes["points"].as_array().unwrap();
    assert_eq!(points.len(), 1);
    assert_eq!(points[0]["value"], 0.332);
    assert_eq!(
        points[0]["time"], 1487973660,
        "the start of the payload's minute"
    );
    let hours: Json = get_json(
        &client,
        format!("{api}/devices/{web_v2}/metrics?metric=system.load.1&resolution=hour"),
    )
    .await;
    assert_eq!(hours["points"][0]["hour"]["count"], 1);
    assert_eq!(hours["points"][0]["hour"]["last"], 0.21);

    let v1_latest: Json = get_json(&client, format!("{api}/devices/{web_v1}/latest")).await;
    assert_eq!(
        v1_latest["values"]["loadAvrg"], 0.21,
        "v1 numeric strings are parsed"
    );
    assert_eq!(
        v1_latest["values"]["diskUsage.in_use{device_name=/dev/sda1}"],
        33.0
    );

    let bad: Json = get_json(
        &client,
        format!("{api}/devices/{web_v2}/metrics?resolution=day&metric=x"),
    )
    .await;
    assert_eq!(bad["reason"], "invalid");

    // The rejection is on the rejected topic, with its reason.
    let r = rejected.clone();
    let dead = tokio::task::spawn_blocking(move || consume(&r, 1, Duration::from_secs(30)))
        .await
        .unwrap();
    let rejection: Json = serde_json::from_str(dead[0].value.as_deref().unwrap()).unwrap();
    assert_eq!(rejection["reason"], "account_inactive");
    assert_eq!(rejection["account"], "globex");

    let report = running.shutdown_and_join().await;
    assert_eq!(report.component("store").unwrap().acked, 2);
    assert_eq!(report.component("payloads").unwrap().failed, 0, "{report}");
}

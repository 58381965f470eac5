//! The admin API through real HTTP against a real SQLite file.

use std::sync::Arc;

use serde_json::{json, Value};
use squall_alerting::accounts::Registration;
use squall_alerting::store::AccountStore;
use squall_services::admin::{router, AdminState};
use squall_store_sqlite::SqliteStore;

struct Admin {
    url: String,
    store: Arc<SqliteStore>,
    client: reqwest::Client,
    _dir: tempfile::TempDir,
}

const TOKEN: &str = "s3cret-admin-token";

async fn start() -> Admin {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SqliteStore::open(&dir.path().join("accounts.db")).unwrap());
    let state = AdminState {
        store: store.clone(),
        token: TOKEN.into(),
        metrics: None,
        alerts: None,
        deliveries: None,
        dead_letters: None,
        policy: Some(store.clone()),
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/api/v1", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router(state)).await.unwrap() });
    Admin {
        url,
        store,
        client: reqwest::Client::new(),
        _dir: dir,
    }
}

impl Admin {
    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut r = self
            .client
            .request(method, format!("{}{path}", self.url))
            .bearer_auth(TOKEN);
        if let Some(b) = body {
            r = r.json(&b);
        }
        let r = r.send().await.unwrap();
        (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
    }
}

#[tokio::test]
async fn every_call_needs_the_bearer_token() {
    let admin = start().await;
    let r = admin
        .client
        .get(format!("{}/accounts/acme/devices", admin.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["reason"], "unauthorized");
    let r = admin
        .client
        .post(format!("{}/accounts", admin.url))
        .bearer_auth("wrong")
        .json(&json!({"name": "acme", "device_quota": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert!(
        admin.store.account("acme").unwrap().is_none(),
        "nothing was created"
    );
}

#[tokio::test]
async fn accounts_agent_keys_and_devices_are_managed() {
    use reqwest::Method;
    let admin = start().await;
    let (s, body) = admin
        .call(
            Method::POST,
            "/accounts",
            Some(json!({"name": "acme", "device_quota": 2, "active": true})),
        )
        .await;
    assert_eq!(
        (s, &body),
        (
            201,
            &json!({"name": "acme", "device_quota": 2, "active": true})
        )
    );

    let (s, body) = admin
        .call(
            Method::POST,
            "/accounts",
            Some(json!({"name": "acme", "device_quota": 1})),
        )
        .await;
    assert_eq!((s, body["reason"].as_str()), (409, Some("account_exists")));
    let (s, body) = admin
        .call(
            Method::POST,
            "/accounts",
            Some(json!({"name": "Not Valid", "device_quota": 1})),
        )
        .await;
    assert_eq!((s, body["reason"].as_str()), (400, Some("invalid")));
    assert!(
        body["error"].as_str().unwrap().starts_with("name: "),
        "{body}"
    );
    let (s, body) = admin
        .call(Method::POST, "/accounts", Some(json!({"name": "x"})))
        .await;
    assert_eq!(s, 400);
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("missing field `device_quota`"),
        "{body}"
    );

    let (s, body) = admin
        .call(
            Method::PATCH,
            "/accounts/acme",
            Some(json!({"active": false})),
        )
        .await;
    assert_eq!((s, body["active"].as_bool()), (200, Some(false)));
    let (s, body) = admin
        .call(
            Method::PATCH,
            "/accounts/nope",
            Some(json!({"active": false})),
        )
        .await;
    assert_eq!((s, body["reason"].as_str()), (404, Some("unknown_account")));

    let (s, body) = admin
        .call(Method::POST, "/accounts/acme/agent-keys", None)
        .await;
    assert_eq!(s, 201);
    let key = body["agentKey"].as_str().unwrap().to_string();
    assert_eq!(key.len(), 32);
    let (s, body) = admin
        .call(
            Method::POST,
            "/accounts/acme/agent-keys",
            Some(json!({"agentKey": "f9ce01e1e962b59798d6350eb8cfce4c"})),
        )
        .await;
    assert_eq!(
        (s, body["agentKey"].as_str()),
        (201, Some("f9ce01e1e962b59798d6350eb8cfce4c"))
    );
    admin
        .call(
            Method::POST,
            "/accounts",
            Some(json!({"name": "globex", "device_quota": 1})),
        )
        .await;
    let (s, body) = admin
        .call(
            Method::POST,
            "/accounts/globex/agent-keys",
            Some(json!({"agentKey": key})),
        )
        .await;
    assert_eq!((s, body["reason"].as_str()), (409, Some("agent_key_taken")));
    assert_eq!(
        admin.store.key_account(&key).unwrap().as_deref(),
        Some("acme")
    );

    // A device registered by the pipeline shows up and can be deactivated.
    let Registration::Registered(device) = admin
        .store
        .register_device("acme", &key, "web-01", 1_000)
        .unwrap()
    else {
        panic!("registered")
    };
    let (s, body) = admin
        .call(Method::GET, "/accounts/acme/devices", None)
        .await;
    assert_eq!(s, 200);
    assert_eq!(body[0]["hostname"], "web-01");
    assert_eq!(body[0]["active"], true);
    let (s, body) = admin
        .call(
            Method::PATCH,
            &format!("/devices/{}", device.id),
            Some(json!({"active": false})),
        )
        .await;
    assert_eq!((s, body["active"].as_bool()), (200, Some(false)));
    let (s, body) = admin
        .call(
            Method::PATCH,
            "/devices/999",
            Some(json!({"active": false})),
        )
        .await;
    assert_eq!((s, body["reason"].as_str()), (404, Some("unknown_device")));
}

#[tokio::test]
async fn alert_configs_are_created_listed_replaced_and_deleted() {
    use reqwest::Method;
    let admin = start().await;
    admin
        .call(
            Method::POST,
            "/accounts",
            Some(json!({"name": "acme", "device_quota": 2})),
        )
        .await;
    let config = json!({
        "account": "acme", "name": "High load", "kind": "threshold",
        "subject": {"type": "account"}, "metric": "system.load.1",
        "series": {"device_name": "/dev/sda1"}, "comparison": "gte", "value": 4,
        "wait": {"seconds": 120, "enabled": true}, "repeat": {"seconds": 600, "enabled": false},
        "fix": true,
        "recipients": [
            {"type": "webhook", "url": "http://127.0.0.1:9009/hook"},
            {"type": "slack", "url": "http://127.0.0.1:9009/slack"},
            {"type": "pagerduty", "url": "http://127.0.0.1:9009/pd", "routing_key": "R0UT1NG"}
        ]
    });
    let (s, created) = admin
        .call(Method::POST, "/alerts/configs", Some(config.clone()))
        .await;
    assert_eq!(s, 201, "{created}");
    let id = created["id"].as_i64().unwrap();
    assert_eq!(created["metric"], "system.load.1");

    let mut bad = config.clone();
    bad["recipients"][2]["routing_key"] = json!("");
    let (s, body) = admin.call(Method::POST, "/alerts/configs", Some(bad)).await;
    assert_eq!((s, body["reason"].as_str()), (400, Some("invalid")));
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .starts_with("recipients[2].routing_key: "),
        "{body}"
    );
    let mut bad = config.clone();
    bad["comparison"] = json!("bigger");
    let (s, body) = admin.call(Method::POST, "/alerts/configs", Some(bad)).await;
    assert_eq!(s, 400);
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .starts_with("comparison: unknown variant `bigger`"),
        "{body}"
    );
    let mut bad = config.clone();
    bad["account"] = json!("nope");
    let (s, body) = admin.call(Method::POST, "/alerts/configs", Some(bad)).await;
    assert_eq!(
        (s, body["error"].as_str()),
        (400, Some("account: no account \"nope\""))
    );

    let (s, list) = admin
        .call(Method::GET, "/alerts/configs?account=acme", None)
        .await;
    assert_eq!((s, list.as_array().unwrap().len()), (200, 1));
    let mut changed = config.clone();
    changed["value"] = json!(8);
    let (s, body) = admin
        .call(Method::PUT, &format!("/alerts/configs/{id}"), Some(changed))
        .await;
    assert_eq!((s, body["value"].as_f64()), (200, Some(8.0)));
    let (s, body) = admin
        .call(Method::GET, &format!("/alerts/configs/{id}"), None)
        .await;
    assert_eq!((s, body["value"].as_f64()), (200, Some(8.0)));
    let (s, _) = admin
        .call(Method::DELETE, &format!("/alerts/configs/{id}"), None)
        .await;
    assert_eq!(s, 204);
    let (s, body) = admin
        .call(Method::GET, &format!("/alerts/configs/{id}"), None)
        .await;
    assert_eq!((s, body["reason"].as_str()), (404, Some("unknown_config")));
}

#[tokio::test]
async fn configs_of_unknown_accounts_and_reactivations_over_quota_are_refused() {
    use reqwest::Method;
    let admin = start().await;
    admin
        .call(
            Method::POST,
            "/accounts",
            Some(json!({"name": "acme", "device_quota": 1})),
        )
        .await;
    let config = json!({
        "account": "acme", "name": "High load", "kind": "threshold",
        "subject": {"type": "account"}, "metric": "system.load.1",
        "comparison": "gte", "value": 4,
        "wait": {"seconds": 120, "enabled": true}, "repeat": {"seconds": 600, "enabled": false},
        "fix": true, "recipients": [{"type": "webhook", "url": "http://127.0.0.1:9009/hook"}]
    });
    let (s, created) = admin
        .call(Method::POST, "/alerts/configs", Some(config.clone()))
        .await;
    assert_eq!(s, 201, "{created}");
    let id = created["id"].as_i64().unwrap();
    let mut moved = config.clone();
    moved["account"] = json!("nobody");
    let (s, body) = admin
        .call(Method::PUT, &format!("/alerts/configs/{id}"), Some(moved))
        .await;
    assert_eq!(
        (s, body["reason"].as_str()),
        (400, Some("invalid")),
        "{body}"
    );
    assert_eq!(body["error"], "account: no account \"nobody\"");
    let mut long = config.clone();
    long["name"] = json!("n".repeat(100_000));
    let (s, body) = admin
        .call(Method::POST, "/alerts/configs", Some(long))
        .await;
    assert_eq!((s, body["reason"].as_str()), (400, Some("invalid")));
    assert_eq!(body["error"], "name: 100000 bytes; at most 256");

    // Quota 1: web-01 active; deactivated, web-02 takes the slot; web-01 cannot come back.
    let key = admin.store.issue_agent_key("acme", None).unwrap();
    let Registration::Registered(web1) = admin
        .store
        .register_device("acme", &key, "web-01", 1)
        .unwrap()
    else {
        panic!("registered")
    };
    let path = format!("/devices/{}", web1.id.0);
    let (s, _) = admin
        .call(Method::PATCH, &path, Some(json!({"active": false})))
        .await;
    assert_eq!(s, 200);
    assert!(matches!(
        admin
            .store
            .register_device("acme", &key, "web-02", 2)
            .unwrap(),
        Registration::Registered(_)
    ));
    let (s, body) = admin
        .call(Method::PATCH, &path, Some(json!({"active": true})))
        .await;
    assert_eq!(
        (s, body["reason"].as_str()),
        (409, Some("quota_exceeded")),
        "{body}"
    );
    let active = admin
        .store
        .devices("acme")
        .unwrap()
        .iter()
        .filter(|d| d.active)
        .count();
    assert_eq!(active, 1, "the quota held");
}

#[tokio::test]
async fn silences_and_maintenance_windows_are_created_listed_and_expired() {
    use reqwest::Method;
    let admin = start().await;
    admin
        .call(
            Method::POST,
            "/accounts",
            Some(json!({"name": "acme", "device_quota": 2})),
        )
        .await;
    let now = jiff::Timestamp::now();
    let hour = jiff::SignedDuration::from_hours(1);
    let silence = json!({
        "account": "acme",
        "matchers": [{"label": "device", "op": "=~", "value": "web-0[12]"}],
        "starts_at": (now - hour).to_string(), "ends_at": (now + hour).to_string(),
        "comment": "rebooting web-01 and web-02", "created_by": "ops@example.com"
    });
    let (s, active) = admin
        .call(Method::POST, "/silences", Some(silence.clone()))
        .await;
    assert_eq!(s, 201, "{active}");
    assert_eq!(
        active["status"],
        json!({"state": "active", "silencing": true})
    );
    assert_eq!(active["matchers"], silence["matchers"]);
    let id = active["id"].as_i64().unwrap();
    // Pending: starts tomorrow.
    let mut later = silence.clone();
    later["starts_at"] = json!((now + hour * 24).to_string());
    later["ends_at"] = json!((now + hour * 25).to_string());
    let (s, pending) = admin.call(Method::POST, "/silences", Some(later)).await;
    assert_eq!(
        (s, pending["status"]["state"].as_str()),
        (201, Some("pending"))
    );
    // A weekly maintenance window: Sundays 01:00-05:00 in Berlin, no end.
    let window = json!({
        "account": "acme", "matchers": [{"label": "device_id", "op": "=", "value": "12"}],
        "starts_at": "2026-01-01T00:00:00Z", "comment": "weekly patching",
        "recurrence": {"type": "weekly", "time_zone": "Europe/Berlin",
                       "ranges": [{"days": ["sun"], "start": "01:00", "end": "05:00"}]}
    });
    let (s, w) = admin.call(Method::POST, "/silences", Some(window)).await;
    assert_eq!(s, 201, "{w}");
    let wid = w["id"].as_i64().unwrap();

    // What silences at a time: a Sunday at 02:00 Berlin (00:00 UTC in winter) is in the
    // window; a Monday is not.
    let at = |t: &str| format!("/silences?at={t}");
    let (s, list) = admin
        .call(Method::GET, &at("2026-12-06T01:00:00Z"), None)
        .await;
    assert_eq!(s, 200, "{list}");
    let ids: Vec<i64> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids, [wid]);
    let (_, list) = admin
        .call(Method::GET, &at("2026-12-07T01:00:00Z"), None)
        .await;
    assert_eq!(list, json!([]));
    let (_, list) = admin
        .call(Method::GET, "/silences?state=pending", None)
        .await;
    assert_eq!(list.as_array().unwrap().len(), 1);

    // Invalid ones name their field.
    let mut bad = silence.clone();
    bad["matchers"][0]["value"] = json!("web-(");
    let (s, body) = admin.call(Method::POST, "/silences", Some(bad)).await;
    assert_eq!(
        (s, body["field"].as_str()),
        (400, Some("matchers[0].value")),
        "{body}"
    );
    let mut bad = silence.clone();
    bad["account"] = json!("nobody");
    let (s, body) = admin.call(Method::POST, "/silences", Some(bad)).await;
    assert_eq!(
        (s, body["reason"].as_str()),
        (400, Some("invalid")),
        "{body}"
    );
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .starts_with("account: no account"),
        "{body}"
    );

    // Delete expires it now; it stays listed as expired.
    let (s, gone) = admin
        .call(Method::DELETE, &format!("/silences/{id}"), None)
        .await;
    assert_eq!(
        (s, gone["status"]["state"].as_str()),
        (200, Some("expired")),
        "{gone}"
    );
    let (_, list) = admin
        .call(Method::GET, "/silences?state=expired", None)
        .await;
    assert_eq!(list.as_array().unwrap()[0]["id"], id);
    let (s, body) = admin.call(Method::DELETE, "/silences/9999", None).await;
    assert_eq!((s, body["reason"].as_str()), (404, Some("unknown_silence")));
}

//! The web UI in a real browser: Debian's Chromium, headless, driven through chromedriver
//! (WebDriver, with the `fantoccini` client), against `squall up` (embedded broker,
//! SQLite) and a webhook receiver. Signs in through the login form, reads the rendered
//! pages, and saves their screenshots under `docs/ui/` (the README shows them).

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::json;

use super::up::{config, t0, Api, Receiver, Up};

const HOST: &str = "web-01.example.com";

/// chromedriver on a free port, in a process group of its own: dropped (a failing test
/// too), the whole group goes, the browsers it started included.
struct Driver {
    child: Child,
    url: String,
}

impl Drop for Driver {
    fn drop(&mut self) {
        // SAFETY: kill(2) on the group this test started (its leader is the child).
        unsafe {
            libc::kill(-(self.child.id() as i32), libc::SIGKILL);
        }
        let _ = self.child.wait();
    }
}

/// Chromium and chromedriver, installed by `scripts/chromium-up.sh` when missing.
fn binaries() -> (String, String) {
    let out = Command::new("bash")
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/scripts/chromium-up.sh"
        ))
        .stderr(Stdio::inherit())
        .output()
        .expect("run scripts/chromium-up.sh");
    assert!(out.status.success(), "scripts/chromium-up.sh failed");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let get = |k: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{k}=")))
            .unwrap_or_else(|| panic!("{k} in {text}"))
            .to_string()
    };
    (get("CHROMIUM"), get("CHROMEDRIVER"))
}

async fn driver(chromedriver: &str) -> Driver {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    use std::os::unix::process::CommandExt;
    let child = Command::new(chromedriver)
        .process_group(0)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start chromedriver");
    let url = format!("http://127.0.0.1:{port}");
    let d = Driver { child, url };
    let status = format!("{}/status", d.url);
    let ready = async {
        let mut every = tokio::time::interval(Duration::from_millis(100));
        for _ in 0..100 {
            every.tick().await;
            if reqwest::get(&status)
                .await
                .is_ok_and(|r| r.status().is_success())
            {
                return true;
            }
        }
        false
    };
    assert!(ready.await, "chromedriver answers on {status}");
    d
}

async fn browser(driver: &Driver, chromium: &str) -> Client {
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        json!({
            "binary": chromium,
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                     "--disable-background-networking", "--disable-component-update",
                     "--no-first-run", "--window-size=1400,1000", "--disable-dev-shm-usage"]
        }),
    );
    // Plain HTTP to chromedriver on 127.0.0.1: no TLS.
    let connector = hyper_util::client::legacy::connect::HttpConnector::new();
    ClientBuilder::new(connector)
        .capabilities(caps)
        .connect(&driver.url)
        .await
        .expect("a Chromium session")
}

/// The text of `css` on the current page, if it is there.
async fn text(c: &Client, css: &str) -> Option<String> {
    match c.find(Locator::Css(css)).await {
        Ok(e) => e.text().await.ok(),
        Err(_) => None,
    }
}

/// Waits (bounded) until the text of `css` satisfies `ok`; returns it.
async fn wait_text(c: &Client, css: &str, timeout: Duration, ok: impl Fn(&str) -> bool) -> String {
    let deadline = tokio::time::Instant::now() + timeout;
    let mut every = tokio::time::interval(Duration::from_millis(200));
    loop {
        every.tick().await;
        let t = text(c, css).await.unwrap_or_default();
        if ok(&t) {
            return t;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{css}: still {t:?} after {timeout:?}"
        );
    }
}

async fn screenshot(c: &Client, name: &str) {
    let png = c.screenshot().await.expect("a screenshot");
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/ui");
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(format!("{dir}/{name}.png"), png).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ui_shows_the_topology_live_and_an_alert_firing_resolving_and_delivered() {
    let (chromium, chromedriver) = tokio::task::spawn_blocking(binaries).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (receiver, url) = Receiver::start().await;
    let up = Up::start(dir.path(), "squall.", &[("SQUALL__KAFKA__BROKERS", "")]);
    let api = Api::new(&up);
    api.account().await;
    api.post(
        "/alerts/configs",
        config(
            &url,
            json!({"wait": {"seconds": 0, "enabled": false},
                   "recipients": [{"type": "webhook", "url": format!("{url}/hook"),
                                   "grouping": {"group_by": []}}]}),
        ),
    )
    .await;
    let t = t0();
    api.payload(t, 2.0).await;

    let d = driver(&chromedriver).await;
    let c = browser(&d, &chromium).await;
    // Not signed in: every page leads to the login form; the data answers 401.
    c.goto(&format!("{}/ui/", up.admin)).await.unwrap();
    assert!(c.current_url().await.unwrap().path().ends_with("/ui/login"));
    let r = reqwest::get(format!("{}/ui/api/topologies", up.admin))
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    // A wrong token is refused; the right one signs in.
    let token = super::up::TOKEN;
    let form = c
        .form(Locator::Css("form[action='/ui/login']"))
        .await
        .unwrap();
    form.set_by_name("token", "not-the-token").await.unwrap();
    form.submit().await.unwrap();
    wait_text(&c, "#login-error", Duration::from_secs(10), |t| {
        t.contains("Wrong token")
    })
    .await;
    let form = c
        .form(Locator::Css("form[action='/ui/login']"))
        .await
        .unwrap();
    form.set_by_name("token", token).await.unwrap();
    form.submit().await.unwrap();
    c.wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Css("#table-alerting"))
        .await
        .expect("the topology page after signing in");
    assert_eq!(c.current_url().await.unwrap().path(), "/ui/");
    let cookie = c
        .get_named_cookie("squall_ui")
        .await
        .expect("the session cookie");
    assert_eq!(cookie.http_only(), Some(true));

    // Every component of the alerting topology is in the graph.
    let mut drawn = Vec::new();
    for node in c
        .find_all(Locator::Css("section[data-topology='alerting'] g.node"))
        .await
        .unwrap()
    {
        drawn.push(node.attr("data-component").await.unwrap().unwrap());
    }
    drawn.sort();
    let mut expected = vec![
        "payloads",
        "enrich",
        "split",
        "store",
        "threshold",
        "notify",
        "notifications",
        "rejected",
    ];
    expected.sort();
    assert_eq!(drawn, expected);
    // The counts rise between two looks: a payload in between.
    let executed = "#table-alerting tr[data-component='split'] td.executed";
    let before: u64 = wait_text(&c, executed, Duration::from_secs(30), |t| {
        t.parse::<u64>().is_ok_and(|n| n >= 1)
    })
    .await
    .parse()
    .unwrap();
    api.payload(t + 60.0, 9.0).await; // fires
    let after: u64 = wait_text(&c, executed, Duration::from_secs(30), |t| {
        t.parse::<u64>().is_ok_and(|n| n > before)
    })
    .await
    .parse()
    .unwrap();
    assert!(after > before);
    screenshot(&c, "topology").await;

    // The Kafka page: the partitions the spouts hold, with their lag.
    c.goto(&format!("{}/ui/kafka", up.admin)).await.unwrap();
    let kafka = wait_text(&c, "#partitions tbody", Duration::from_secs(20), |t| {
        t.contains("squall.payloads") && t.contains("squall.notifications")
    })
    .await;
    assert!(
        kafka.contains("bytes"),
        "the journal's lag, in bytes: {kafka}"
    );
    screenshot(&c, "kafka").await;

    // A component's page lists its tasks.
    c.goto(&format!("{}/ui/topology/alerting/enrich", up.admin))
        .await
        .unwrap();
    wait_text(&c, "#tasks tbody", Duration::from_secs(10), |t| {
        !t.is_empty()
    })
    .await;
    assert_eq!(
        c.find_all(Locator::Css("#tasks tbody tr"))
            .await
            .unwrap()
            .len(),
        2
    );

    // The alerts page: the alert fires, is listed, then resolves, and its notification
    // shows delivered.
    receiver.wait("/hook", 1, Duration::from_secs(60)).await;
    c.goto(&format!("{}/ui/alerts", up.admin)).await.unwrap();
    let firing = wait_text(&c, "#firing tbody", Duration::from_secs(30), |t| {
        t.contains(HOST)
    })
    .await;
    assert!(
        firing.contains("High load") && firing.contains("system.load.1"),
        "{firing}"
    );
    wait_text(&c, "#notifications tbody", Duration::from_secs(30), |t| {
        t.contains("delivered")
    })
    .await;
    wait_text(&c, "#configs tbody", Duration::from_secs(10), |t| {
        t.contains("system.load.1 >= 4")
    })
    .await;
    api.payload(t + 120.0, 1.0).await; // clears
    receiver.wait("/hook", 2, Duration::from_secs(60)).await;
    let resolved = wait_text(&c, "#resolved tbody", Duration::from_secs(30), |t| {
        t.contains(HOST)
    })
    .await;
    assert!(resolved.contains("High load"), "{resolved}");
    wait_text(&c, "#firing tbody", Duration::from_secs(30), str::is_empty).await;
    let log = wait_text(&c, "#notifications tbody", Duration::from_secs(30), |t| {
        t.matches("delivered").count() >= 2
    })
    .await;
    assert!(log.contains("-fire-") && log.contains("-clear-"), "{log}");
    screenshot(&c, "alerts").await;

    c.close().await.unwrap();
    drop(d);
    up.stop();
}

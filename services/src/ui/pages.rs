//! The UI's pages: HTML rendered here; their script (`/ui/assets/app.js`) fills in the
//! figures from the JSON endpoints.

use std::sync::Arc;

use super::graph::esc;
use super::TopologyView;

fn page(title: &str, nav: &str, body: &str, script: &str) -> String {
    format!(
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title} · squall</title><link rel="stylesheet" href="/ui/assets/style.css"></head>
<body>
<header><span class="brand">squall</span>{nav}</header>
<main>{body}</main>
<footer><span id="status">live: waiting for data</span></footer>
<script src="/ui/assets/app.js"></script>
<script>{script}</script>
</body></html>"#,
        title = esc(title)
    )
}

fn nav(current: &str, alerts: bool) -> String {
    let link = |href: &str, name: &str| {
        let class = if name == current {
            " class=\"current\""
        } else {
            ""
        };
        format!(r#"<a href="{href}"{class}>{name}</a>"#)
    };
    let mut s = String::from("<nav>");
    s.push_str(&link("/ui/", "Topology"));
    s.push_str(&link("/ui/kafka", "Kafka"));
    if alerts {
        s.push_str(&link("/ui/alerts", "Alerts"));
    }
    s.push_str(r#"</nav><form method="post" action="/ui/logout" class="logout"><button>Sign out</button></form>"#);
    s
}

/// The sign-in page, with an error if the last attempt failed.
pub(super) fn login(error: Option<&str>) -> String {
    let error = error
        .map(|e| format!(r#"<p class="error" id="login-error">{}</p>"#, esc(e)))
        .unwrap_or_default();
    page(
        "Sign in",
        "",
        &format!(
            r#"<section class="login"><h1>Sign in</h1>{error}
<form method="post" action="/ui/login">
<label for="token">Admin token</label>
<input id="token" name="token" type="password" autocomplete="current-password" required autofocus>
<button id="sign-in" type="submit">Sign in</button>
</form>
<p class="hint"><code>squall up</code> prints the token, and a link that signs in.</p></section>"#
        ),
        "",
    )
}

/// A page saying what was not found.
pub(super) fn not_found(what: &str) -> String {
    page(
        "Not found",
        "",
        &format!(
            r#"<h1>Not found</h1><p>{}</p><p><a href="/ui/">Back</a></p>"#,
            esc(what)
        ),
        "",
    )
}

/// The topology page: each topology's graph and component table.
pub(super) fn topologies(views: &[Arc<TopologyView>], alerts: bool) -> String {
    let mut body = String::new();
    if views.is_empty() {
        body.push_str("<p>No topology runs in this process.</p>");
    }
    for v in views {
        let name = v.name();
        body.push_str(&format!(
            r#"<section class="topology" data-topology="{n}"><h1>Topology <code>{n}</code></h1>
<p class="legend"><span class="swatch load-low"></span>low <span class="swatch load-medium"></span>medium <span class="swatch load-high"></span>high load (capacity: time busy; or input queue fill) <span class="swatch culprit"></span>backpressure culprit</p>
<div class="graph-box">{svg}</div>
<p class="culprit-line" id="culprits-{d}"></p>
<table class="components" id="table-{d}"><thead><tr><th>component</th><th>kind</th><th>tasks</th><th>emitted</th><th>emitted/s</th><th>executed</th><th>acked</th><th>failed (by reason)</th><th>latency</th><th>capacity</th><th>backpressure</th><th>queue</th><th>last error</th></tr></thead><tbody></tbody></table>
</section>"#,
            n = esc(name),
            d = super::graph::dom(name),
            svg = v.graph.svg(),
        ));
    }
    page(
        "Topology",
        &nav("Topology", alerts),
        &body,
        "squall.topologies();",
    )
}

/// One component's page: its tasks.
pub(super) fn component(topology: &str, component: &str, alerts: bool) -> String {
    let body = format!(
        r#"<h1>Component <code>{c}</code> of <a href="/ui/">{t}</a></h1>
<table class="tasks" id="tasks"><thead><tr><th>task</th><th>emitted</th><th>executed</th><th>acked</th><th>failed (by reason)</th><th>panics</th><th>latency</th><th>busy (s)</th><th>backpressure (s)</th><th>queue</th><th>last error</th></tr></thead><tbody></tbody></table>"#,
        c = esc(component),
        t = esc(topology)
    );
    let script = format!(
        "squall.component({}, {});",
        serde_json::to_string(topology).unwrap_or_default(),
        serde_json::to_string(component).unwrap_or_default()
    );
    page(component, &nav("", alerts), &body, &script)
}

/// The alerts page.
pub(super) fn alerts() -> String {
    let body = r#"<h1>Alerts</h1>
<section><h2>Firing</h2><table class="alerts" id="firing"><thead><tr><th>rule</th><th>device</th><th>metric</th><th>series</th><th>value</th><th>since</th></tr></thead><tbody></tbody></table></section>
<section><h2>Pending</h2><table class="alerts" id="pending"><thead><tr><th>rule</th><th>device</th><th>series</th><th>since</th></tr></thead><tbody></tbody></table></section>
<section><h2>Recently resolved</h2><table class="alerts" id="resolved"><thead><tr><th>rule</th><th>device</th><th>metric</th><th>series</th><th>value</th><th>fired</th><th>resolved</th></tr></thead><tbody></tbody></table></section>
<section><h2>Notifications</h2><table class="notifications" id="notifications"><thead><tr><th>id</th><th>status</th><th>attempts</th><th>last code</th><th>reason</th><th>at</th></tr></thead><tbody></tbody></table></section>
<section><h2>Alert configs</h2><table class="configs" id="configs"><thead><tr><th>id</th><th>account</th><th>name</th><th>rule</th><th>recipients</th></tr></thead><tbody></tbody></table></section>"#;
    page("Alerts", &nav("Alerts", true), body, "squall.alerts();")
}

/// The Kafka page: the partitions the spouts of this process hold.
pub(super) fn kafka(alerts: bool) -> String {
    let body = r#"<h1>Kafka</h1>
<p class="hint">The partitions the <code>kafka</code> spouts of this process hold: consumer lag (records on Kafka; bytes on the embedded journal), whether the partition is paused (too many uncommitted records), and its records retried and dead-lettered here. Dead letters are listed (and replayed) through <code>/api/v1/dead-letters</code>.</p>
<table class="kafka" id="partitions"><thead><tr><th>spout</th><th>group</th><th>topic</th><th>partition</th><th>lag</th><th>uncommitted</th><th>paused</th><th>retries</th><th>dead letters</th></tr></thead><tbody></tbody></table>"#;
    page("Kafka", &nav("Kafka", alerts), body, "squall.kafka();")
}

//! The `squall` binary as an operator uses it: `validate`, `run`, metrics, Ctrl-C.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Command, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_squall");

fn write(dir: &tempfile::TempDir, name: &str, text: &str) -> std::path::PathBuf {
    let path = dir.path().join(name);
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn validate_prints_the_resolved_graph() {
    let out = Command::new(BIN)
        .args([
            "validate",
            "examples/topologies/word_count.toml",
            "--set",
            "bolts.count.parallelism=4",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.starts_with("topology \"word-count\": 4 components, 8 tasks"),
        "{text}"
    );
    assert!(text.contains("count            x4"), "{text}");
    assert!(
        text.contains("<- split:default grouping fields(word)"),
        "{text}"
    );
}

#[test]
fn validate_reports_every_mistake_with_exit_code_2() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(
        &dir,
        "broken.toml",
        r#"
[topology]
name = "broken"
[spouts.text]
type = "lines"
[bolts.split]
type = "split_wrods"
parallelism = 0
inputs = [{ from = "txt" }]
[bolts.count]
type = "count"
field = "word"
inputs = [{ from = "split", grouping = "fields", fields = ["word"] }, { from = "count" }]
"#,
    );
    let out = Command::new(BIN)
        .arg("validate")
        .arg(&file)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8(out.stderr).unwrap();
    for needle in [
        "5 problems in the topology:",
        "spout \"text\": invalid options for type \"lines\": missing field `path`",
        "bolt \"split\": parallelism must be at least 1, got 0",
        "bolt \"split\": unknown component type \"split_wrods\" (did you mean \"split_words\"?)",
        "bolt \"split\": input \"txt\" doesn't match any component (did you mean \"text\"?)",
        "cycle: count -> count",
    ] {
        assert!(err.contains(needle), "missing {needle:?} in\n{err}");
    }
}

#[test]
fn run_prints_per_component_counts_and_writes_output() {
    let dir = tempfile::tempdir().unwrap();
    let out_path = dir.path().join("out.jsonl");
    let out = Command::new(BIN)
        .args(["run", "examples/topologies/word_count.toml", "--set"])
        .arg(format!("bolts.out.path={}", out_path.display()))
        .env("SQUALL__BOLTS__SPLIT__PARALLELISM", "3")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let words = std::fs::read_to_string("examples/data/words.txt").unwrap();
    let lines = words.lines().count();
    let word_count = words.split_whitespace().count();
    let row = |id: &str| -> Vec<String> {
        text.lines()
            .find(|l| l.split_whitespace().next() == Some(id))
            .unwrap_or_else(|| panic!("no row {id} in {text}"))
            .split_whitespace()
            .map(String::from)
            .collect()
    };
    assert_eq!(
        row("text")[3],
        lines.to_string(),
        "spout emitted one tuple per line"
    );
    assert_eq!(
        row("split")[2],
        "3",
        "the environment override set 3 split tasks"
    );
    assert_eq!(row("split")[3], word_count.to_string());
    assert_eq!(row("count")[4], word_count.to_string());
    assert_eq!(
        std::fs::read_to_string(&out_path).unwrap().lines().count(),
        word_count
    );
}

#[test]
fn run_serves_prometheus_metrics_and_drains_on_ctrl_c() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(
        &dir,
        "endless.toml",
        r#"
[topology]
name = "endless"
[spouts.gen]
type = "generator"
[bolts.sink]
type = "count"
field = "n"
parallelism = 2
inputs = [{ from = "gen", grouping = "fields", fields = ["n"] }]
"#,
    );
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = Command::new(BIN)
        .arg("run")
        .arg(&file)
        .args(["--metrics-addr", &format!("127.0.0.1:{port}")])
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The binary logs once the topology runs (the exporter is installed before it).
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    while !line.contains("topology started") {
        line.clear();
        assert!(
            stderr.read_line(&mut line).unwrap() > 0,
            "squall exited early"
        );
    }
    let mut body = String::new();
    for _ in 0..5_000 {
        let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.write_all(b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
            .unwrap();
        body.clear();
        s.read_to_string(&mut body).unwrap();
        if body.contains("squall_executed_total{component=\"sink\"")
            && body.contains("squall_capacity")
        {
            break;
        }
    }
    for metric in [
        "squall_emitted_total{component=\"gen\",task=\"1\"}",
        "squall_executed_total{component=\"sink\"",
        "squall_queue_depth{component=\"sink\"",
        "squall_execute_latency_seconds",
    ] {
        assert!(body.contains(metric), "missing {metric} in\n{body}");
    }
    let status = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let row: Vec<&str> = text
        .lines()
        .find(|l| l.trim_start().starts_with("gen "))
        .unwrap()
        .split_whitespace()
        .collect();
    let sink: Vec<&str> = text
        .lines()
        .find(|l| l.trim_start().starts_with("sink "))
        .unwrap()
        .split_whitespace()
        .collect();
    assert_eq!(
        row[3], sink[4],
        "every emitted tuple was executed before exit:\n{text}"
    );
}

#[test]
fn chaos_bolt_failures_are_replayed_and_counts_stay_exact() {
    let dir = tempfile::tempdir().unwrap();
    let out_path = dir.path().join("out.jsonl");
    let out = Command::new(BIN)
        .args(["run", "examples/topologies/word_count.toml"])
        .arg("--set")
        .arg(r#"bolts.chaos={"type":"chaos","fields":["line"],"fail_every":3,"panic_every":5,"inputs":[{"from":"text"}]}"#)
        .args(["--set", r#"bolts.split.inputs=[{"from":"chaos"}]"#])
        .arg("--set")
        .arg(format!("bolts.out.path={}", out_path.display()))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let row = |id: &str| -> Vec<String> {
        text.lines()
            .find(|l| l.split_whitespace().next() == Some(id))
            .unwrap_or_else(|| panic!("no row {id} in {text}"))
            .split_whitespace()
            .map(String::from)
            .collect()
    };
    let words = std::fs::read_to_string("examples/data/words.txt").unwrap();
    // columns: component kind tasks emitted executed acked failed panics ...
    let text_row = row("text");
    assert_eq!(
        text_row[5],
        words.lines().count().to_string(),
        "every line acked in the end"
    );
    assert!(
        text_row[6].parse::<u64>().unwrap() > 0,
        "and some attempts failed: {text}"
    );
    assert!(
        row("chaos")[7].parse::<u64>().unwrap() > 0,
        "chaos panicked: {text}"
    );
    assert_eq!(
        row("count")[4],
        words.split_whitespace().count().to_string(),
        "no word counted twice"
    );
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(stderr.contains("chaos: failing tuple #3"), "{stderr}");
}

#[test]
fn the_alert_pipeline_file_validates() {
    let out = Command::new(BIN)
        .args(["validate", "examples/topologies/alert_pipeline.toml"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains("<- enrich:rejected grouping shuffle"),
        "{text}"
    );
    assert!(
        text.contains("<- payloads:default grouping fields(key)"),
        "{text}"
    );
}

#[test]
fn the_python_word_count_file_validates_and_a_missing_program_is_named() {
    let file = "examples/topologies/python_word_count.toml";
    let out = Command::new(BIN).args(["validate", file]).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains("<- sentences:default grouping shuffle"),
        "{text}"
    );
    let out = Command::new(BIN)
        .args([
            "validate",
            file,
            "--set",
            r#"bolts.split.command=["pyhton3", "split.py"]"#,
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(
        stderr.contains("split")
            && stderr.contains("`command`: program \"pyhton3\" is not on PATH"),
        "{stderr}"
    );
}

#[test]
fn admin_import_loads_a_fixtures_file_once_and_names_bad_fields() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("squall.db").display());
    let config = |i: usize, comparison: &str| {
        format!(
            r#"{{"account": "acme", "name": "load {i}", "kind": "threshold",
               "subject": {{"type": "agent_key", "id": "key-{i}"}}, "metric": "system.load.1",
               "comparison": "{comparison}", "value": 4, "wait": {{"seconds": 60, "enabled": true}},
               "repeat": {{"seconds": 600, "enabled": false}}, "fix": true,
               "recipients": [{{"type": "slack", "url": "http://127.0.0.1:9/s"}}]}}"#
        )
    };
    let file = write(
        &dir,
        "fixtures.json",
        &format!(
            r#"{{"accounts": [{{"name": "acme", "device_quota": 10, "active": true,
                 "agent_keys": ["key-0", "key-1"]}}], "alerts": [{}, {}]}}"#,
            config(0, "gte"),
            config(1, "lt")
        ),
    );
    let import = |file: &std::path::Path| {
        Command::new(BIN)
            .args(["admin", "import"])
            .arg(file)
            .args(["--db", &db])
            .output()
            .unwrap()
    };
    let first = import(&file);
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&first.stdout).unwrap();
    assert_eq!(report["accounts_created"], 1);
    assert_eq!(report["keys_issued"], 2);
    assert_eq!(report["configs_created"], 2);
    let again: serde_json::Value = serde_json::from_slice(&import(&file).stdout).unwrap();
    assert_eq!(
        again["configs_created"], 0,
        "importing again changes nothing"
    );
    assert_eq!(again["configs_present"], 2);

    let bad = write(
        &dir,
        "bad.json",
        &format!(
            r#"{{"accounts": [], "alerts": [{}, {}]}}"#,
            config(0, "gte"),
            config(1, "bigger")
        ),
    );
    let out = import(&bad);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("alerts[1].comparison"), "{err}");
}

#[test]
fn bench_pipeline_counts_what_the_alert_topology_produced() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let gen = Command::new(BIN)
        .args(["bench", "generate", "--devices", "20", "--per-device", "6"])
        .args(["--rules", "2", "--out"])
        .arg(&data)
        .output()
        .unwrap();
    assert!(
        gen.status.success(),
        "{}",
        String::from_utf8_lossy(&gen.stderr)
    );
    let out = Command::new(BIN)
        .args(["bench", "pipeline", "--payloads"])
        .arg(data.join("payloads.ndjson"))
        .arg("--fixtures")
        .arg(data.join("fixtures.json"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(r["payloads"], 120);
    assert_eq!(r["rejected"], 0);
    // The load rule (wait 120 s) fires on each device's third payload and clears on its
    // sixth; the cpuUser rule never holds.
    assert_eq!(r["triggers"], 20, "{r}");
    assert_eq!(r["clears"], 20, "{r}");
    assert_eq!(r["notifications"], 40, "one recipient each: {r}");
    assert_eq!(r["replays"], 0, "a clean run replays nothing: {r}");
    assert_eq!(r["events"], 40, "{r}");
    assert_eq!(r["checksum"].as_str().unwrap().len(), 16, "{r}");
    assert!(r["points"].as_u64().unwrap() >= 120 * 30, "{r}");
    assert!(
        r["all_points"].as_u64().unwrap() >= r["points"].as_u64().unwrap(),
        "{r}"
    );
    assert!(r["payloads_per_s"].as_f64().unwrap() > 0.0);
}

#[test]
fn a_misspelt_configuration_section_is_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(&dir, "squall.toml", "[intkae]\nlisten = \"127.0.0.1:0\"\n");
    let out = Command::new(BIN)
        .args(["up", "--config"])
        .arg(&file)
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("unknown field `intkae`"),
        "the error names the section: {stderr}"
    );
    assert!(
        !dir.path().join("data").exists(),
        "nothing started before the configuration was read"
    );
}

#[test]
fn the_service_commands_refuse_to_start_without_what_they_need() {
    let dir = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        let out = Command::new(BIN)
            .args(args)
            .current_dir(dir.path())
            // Neither the configuration's variables nor the old ones (CI exports
            // SQUALL_KAFKA_BROKERS for the Kafka tests) may name what is missing.
            .env_remove("SQUALL__KAFKA__BROKERS")
            .env_remove("SQUALL__ADMIN__TOKEN")
            .env_remove("SQUALL_KAFKA_BROKERS")
            .env_remove("SQUALL_ADMIN_TOKEN")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // A command that started after all is stopped after a minute, and the test fails.
        let pid = out.id();
        let (done, watch) = std::sync::mpsc::channel::<()>();
        let watchdog = std::thread::spawn(move || {
            if watch
                .recv_timeout(std::time::Duration::from_secs(60))
                .is_err()
            {
                let _ = Command::new("kill").arg(pid.to_string()).status();
            }
        });
        let out = out.wait_with_output().unwrap();
        let _ = done.send(());
        watchdog.join().unwrap();
        assert!(!out.status.success(), "{args:?} started");
        String::from_utf8_lossy(&out.stderr).to_string()
    };
    assert!(run(&["intake"]).contains("--brokers (kafka.brokers) is required"));
    assert!(run(&["notifier"]).contains("--brokers (kafka.brokers) is required"));
    assert!(run(&["admin", "--token", "short"])
        .contains("--token (admin.token) must be at least 16 characters"));
}

#[test]
fn admin_import_creates_the_default_database_and_honours_the_old_variable() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(
        &dir,
        "fixtures.json",
        r#"{"accounts": [{"name": "acme", "device_quota": 1, "agent_keys": ["k1"]}]}"#,
    );
    let import = |env: &[(&str, String)]| {
        let mut cmd = Command::new(BIN);
        cmd.args(["admin", "import"])
            .arg(&file)
            .current_dir(dir.path())
            .env_remove("SQUALL_DB_URL")
            .env_remove("SQUALL__DB__URL");
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd.output().unwrap()
    };
    let out = import(&[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        dir.path().join("squall-data/squall.db").exists(),
        "the default database, under data_dir, created with its directory"
    );
    let legacy = dir.path().join("legacy.db");
    let out = import(&[("SQUALL_DB_URL", format!("sqlite://{}", legacy.display()))]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(legacy.exists(), "SQUALL_DB_URL is still read");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("deprecated variable"),
        "with a warning"
    );
}

#[test]
fn rules_check_prints_the_normal_form_or_each_error_with_a_caret() {
    let out = Command::new(BIN)
        .args([
            "rules",
            "check",
            "memPhysUsed/memPhysTotal>0.9 for 300s",
            "avg(system.load.1, 5m) >= 4 resolve when avg(system.load.1, 5m) < 3",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        "memPhysUsed / memPhysTotal > 0.9 for 5m\n\
         avg(system.load.1, 5m) >= 4 resolve when avg(system.load.1, 5m) < 3\n"
    );

    let dir = tempfile::tempdir().unwrap();
    let file = write(
        &dir,
        "rules.txt",
        "# load\nsystem.load.1 >= 4 for 2m\n\nsystem.load.1 >= 4 for x\nabsent(system.load.1, 10m)\n",
    );
    let out = Command::new(BIN)
        .args(["rules", "check", "--file"])
        .arg(&file)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "errors exit with 2");
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        "system.load.1 >= 4 for 2m\nabsent(system.load.1, 10m)\n",
        "the good ones are still printed"
    );
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.contains(&format!(
            "{}:4: line 1, column 24: expected a duration after `for`, found `x`\n  system.load.1 >= 4 for x\n                         ^\n",
            file.display()
        )),
        "{err}"
    );
    assert!(err.ends_with("1 of 3 rules have errors\n"), "{err}");
}

/// `squall run FILE --ui-addr`: a chain whose third bolt is slow (the `chaos` bolt's delay)
/// backs up every queue before it; the UI marks that bolt, and only it, as the
/// backpressure culprit (the relay before it is backed up too, but waits on it).
#[test]
fn the_ui_marks_the_slow_bolt_and_only_it_as_the_backpressure_culprit() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(
        &dir,
        "slow.toml",
        r#"
[topology]
name = "slow-chain"
acking = false
queue_capacity = 256
batch_size = 16
[spouts.numbers]
type = "generator"
[bolts.relay]
type = "chaos"
fields = ["n"]
inputs = [{ from = "numbers", grouping = "shuffle" }]
[bolts.slow]
type = "chaos"
fields = ["n"]
delay_ms = 5
inputs = [{ from = "relay", grouping = "shuffle" }]
[bolts.sink]
type = "count"
field = "n"
inputs = [{ from = "slow", grouping = "shuffle" }]
"#,
    );
    let token = "a-test-token-for-the-ui-0123456789";
    let mut child = Command::new(BIN)
        .arg("run")
        .arg(&file)
        .args(["--ui-addr", "127.0.0.1:0"])
        .env("SQUALL_UI_TOKEN", token)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    while !line.starts_with("web UI") {
        line.clear();
        assert!(
            stdout.read_line(&mut line).unwrap() > 0,
            "squall exited early"
        );
    }
    let link = line.split_whitespace().nth(2).unwrap().to_string();
    assert!(link.ends_with(&format!("/ui/?token={token}")), "{line}");
    let base = link
        .trim_end_matches(&format!("/ui/?token={token}"))
        .to_string();
    let addr = base.trim_start_matches("http://").to_string();
    let get = |path: &str, auth: bool| -> (u16, String) {
        let mut s = TcpStream::connect(&addr).unwrap();
        let auth = if auth {
            format!("Authorization: Bearer {token}\r\n")
        } else {
            String::new()
        };
        s.write_all(
            format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\n{auth}Connection: close\r\n\r\n")
                .as_bytes(),
        )
        .unwrap();
        let mut text = String::new();
        s.read_to_string(&mut text).unwrap();
        let status = text[9..12].parse().unwrap();
        let body = text
            .split("\r\n\r\n")
            .nth(1)
            .unwrap_or_default()
            .to_string();
        (status, body)
    };
    assert_eq!(
        get("/ui/api/topologies", false).0,
        401,
        "no data without signing in"
    );
    // Sampled once a second: look until the culprit shows (bounded), then read it all.
    let mut view = serde_json::Value::Null;
    for _ in 0..60 {
        std::thread::sleep(std::time::Duration::from_millis(500));
        let (status, body) = get("/ui/api/topologies", true);
        assert_eq!(status, 200, "{body}");
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        let t = v["topologies"][0].clone();
        if t["culprits"].as_array().is_some_and(|c| !c.is_empty())
            && t["sampled_over_s"].as_f64() > Some(0.5)
        {
            view = t;
            break;
        }
    }
    let _ = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status();
    let _ = child.wait();
    assert_eq!(view["culprits"], serde_json::json!(["slow"]), "{view:#}");
    let component = |id: &str| {
        view["components"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["id"] == id)
            .unwrap()
            .clone()
    };
    let (relay, slow, sink) = (component("relay"), component("slow"), component("sink"));
    assert!(slow["queue_fill"].as_f64().unwrap() >= 0.5, "{slow}");
    assert!(slow["capacity"].as_f64().unwrap() >= 0.7, "{slow}");
    assert_eq!(slow["load"], "high");
    // The relay is backed up too, but waits on the slow bolt: not marked.
    assert!(relay["queue_fill"].as_f64().unwrap() >= 0.5, "{relay}");
    assert_eq!(relay["culprit"], false);
    assert_eq!(sink["culprit"], false);
    assert!(sink["queue_fill"].as_f64().unwrap() < 0.5, "{sink}");
}

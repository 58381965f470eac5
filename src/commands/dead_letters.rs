//! `squall dead-letters list|replay`: the dead letters of a running `squall up`, through
//! its admin API (the process that owns the broker connection, or the journal, reads and
//! writes them; this command only asks).

use std::collections::BTreeMap;
use std::process::ExitCode;

use anyhow::Context;
use serde::Deserialize;

use crate::cli::DeadLettersAction;
use crate::config::Config;

/// One dead letter as the admin API lists it.
#[derive(Debug, Deserialize)]
struct Letter {
    partition: i32,
    offset: i64,
    reason: String,
    attempts: Option<u32>,
    original_topic: String,
    original_partition: Option<i32>,
    original_offset: Option<i64>,
    at_ms: Option<i64>,
    size: usize,
}

/// The admin token: `admin.token`, else the one `squall up` generated in `DATA_DIR`.
fn token(config: &Config) -> anyhow::Result<String> {
    let given = config.admin.token.trim();
    if !given.is_empty() {
        return Ok(given.to_string());
    }
    let path = config.data_dir.join("admin-token");
    let t = std::fs::read_to_string(&path).with_context(|| {
        format!(
            "no admin.token, and no token in {} (is `squall up` running with this data directory?)",
            path.display()
        )
    })?;
    Ok(t.trim().to_string())
}

/// Runs the action; exit code 1 when the API refuses.
pub(super) fn main(
    action: DeadLettersAction,
    admin: Option<String>,
    config: Config,
) -> anyhow::Result<ExitCode> {
    let base = admin
        .unwrap_or_else(|| format!("http://{}", config.admin.listen))
        .trim_end_matches('/')
        .to_string();
    let token = token(&config)?;
    let rt = super::runtime(Some(1))?;
    rt.block_on(async move {
        let client = reqwest::Client::new();
        let (request, reason) = match &action {
            DeadLettersAction::List { reason, .. } => (
                client.get(format!("{base}/api/v1/dead-letters")),
                reason.clone(),
            ),
            DeadLettersAction::Replay { reason } => (
                client.post(format!("{base}/api/v1/dead-letters/replay")),
                reason.clone(),
            ),
        };
        let request = match &reason {
            Some(r) => request.query(&[("reason", r)]),
            None => request,
        };
        let response = request
            .bearer_auth(&token)
            .send()
            .await
            .with_context(|| format!("asking {base} (is `squall up` running?)"))?;
        let status = response.status();
        let body = response.text().await.unwrap_or_default();
        if !status.is_success() {
            eprintln!("{base}: {status}: {body}");
            return Ok(ExitCode::from(1));
        }
        match action {
            DeadLettersAction::List { json: true, .. } | DeadLettersAction::Replay { .. } => {
                println!("{body}");
            }
            DeadLettersAction::List { json: false, .. } => {
                let letters: Vec<Letter> =
                    serde_json::from_str(&body).context("reading the admin API's answer")?;
                print_table(&letters);
            }
        }
        Ok(ExitCode::SUCCESS)
    })
}

fn print_table(letters: &[Letter]) {
    println!(
        "{:>9} {:>12} {:>24} {:>8} {:>8}  {:<36} reason",
        "partition", "offset", "dead-lettered at", "attempts", "bytes", "from"
    );
    let mut per_reason: BTreeMap<&str, usize> = BTreeMap::new();
    for l in letters {
        let at = l
            .at_ms
            .map(|ms| squall_alerting::events::rfc3339(ms as f64 / 1000.0))
            .unwrap_or_default();
        let from = format!(
            "{}/{}/{}",
            l.original_topic,
            l.original_partition.map_or("?".into(), |p| p.to_string()),
            l.original_offset.map_or("?".into(), |o| o.to_string())
        );
        println!(
            "{:>9} {:>12} {:>24} {:>8} {:>8}  {:<36} {}",
            l.partition,
            l.offset,
            at,
            l.attempts.map_or("?".into(), |a| a.to_string()),
            l.size,
            from,
            l.reason
        );
        *per_reason.entry(l.reason.as_str()).or_default() += 1;
    }
    println!("{} pending", letters.len());
    for (reason, n) in per_reason {
        println!("  {n:>6}  {reason}");
    }
}

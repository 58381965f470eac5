//! The alert pipeline's domain logic: agent payloads, accounts, enrichment, metric storage,
//! rule evaluation with durable alert state, and notifications.

pub mod accounts;
pub mod alerts;
pub mod configs;
pub mod enrich;
pub mod fixtures;
pub mod metrics_store;
pub mod notify;
pub mod payload;
pub mod rules;
pub mod store;
pub mod threshold;

/// Checks a bolt's `db_url` option: `sqlite://PATH`.
pub(crate) fn require_sqlite_url(url: &str) -> Result<(), String> {
    if url.starts_with("sqlite://") {
        Ok(())
    } else {
        Err(format!("`db_url` must be sqlite://PATH, got \"{url}\""))
    }
}

/// Records how long after the intake received it a payload passed `stage` (histogram
/// `squall_stage_latency_seconds{stage}`: `enriched`, `stored`, `evaluated`, `notified`).
pub(crate) fn record_stage(stage: &'static str, received_at: f64) {
    metrics::histogram!("squall_stage_latency_seconds", "stage" => stage)
        .record((now_secs() - received_at).max(0.0));
}

/// Wall-clock time in epoch seconds.
pub(crate) fn now_secs() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

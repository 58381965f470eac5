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

/// Wall-clock time in epoch seconds.
pub(crate) fn now_secs() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

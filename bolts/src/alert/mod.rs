//! The alert pipeline's domain logic: agent payloads, accounts, enrichment, metric storage,
//! and rule evaluation.

pub mod accounts;
pub mod configs;
pub mod enrich;
pub mod metrics_store;
pub mod payload;
pub mod rules;
pub mod store;

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

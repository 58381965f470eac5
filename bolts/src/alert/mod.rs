//! The alert pipeline's domain logic (issue 5 onwards): agent payload parsing and the
//! accounts store so far.

pub mod accounts;
pub mod enrich;
pub mod metrics_store;
pub mod payload;
pub mod store;

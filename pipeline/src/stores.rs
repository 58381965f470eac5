//! The stores factory: a database URL -> the backend that implements the storage traits.
//!
//! `sqlite://PATH` (and `sqlite::memory:`) is the embedded default; the scheme picks the
//! backend, so bolts, the admin API and the CLI name a database the same way and check
//! its URL in one place.

use std::sync::Arc;

use squall_alerting::store::{AccountStore, AlertStateStore, DeliveryLog, MetricStore, StoreError};
use squall_store_sqlite::SqliteStore;

/// Every store of one database.
#[derive(Clone)]
pub struct Stores {
    /// Accounts, keys, devices, alert configs.
    pub accounts: Arc<dyn AccountStore>,
    /// Alert state and alerts.
    pub alerts: Arc<dyn AlertStateStore>,
    /// Notification outcomes.
    pub deliveries: Arc<dyn DeliveryLog>,
    /// Metric minutes, hours, latest values.
    pub metrics: Arc<dyn MetricStore>,
}

impl std::fmt::Debug for Stores {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stores").finish_non_exhaustive()
    }
}

/// Checks a database URL without opening it: the error names the option and says which
/// URLs are known.
pub fn check_url(url: &str) -> Result<(), String> {
    squall_store_sqlite::parse_url(url)
        .map(|_| ())
        .map_err(|e| match e {
            StoreError::Invalid { message, .. } if url.starts_with(squall_store_sqlite::SCHEME) => {
                format!("`db_url`: {message}")
            }
            _ => format!("`db_url` must be sqlite://PATH, got \"{url}\""),
        })
}

/// Opens the database `url` names (one connection, shared by its stores) and runs its
/// pending migrations.
pub fn open(url: &str) -> Result<Stores, StoreError> {
    let db = Arc::new(SqliteStore::open_url(url)?);
    Ok(Stores {
        accounts: db.clone(),
        alerts: db.clone(),
        deliveries: db.clone(),
        metrics: db,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_schemes_are_refused_naming_the_option() {
        assert!(check_url("sqlite:///tmp/x.db").is_ok());
        assert!(check_url("sqlite::memory:").is_ok());
        let e = check_url("mysql://db").unwrap_err();
        assert_eq!(e, "`db_url` must be sqlite://PATH, got \"mysql://db\"");
        assert!(open("mysql://db").is_err());
        let s = open("sqlite::memory:").unwrap();
        assert_eq!(s.accounts.admin_version().unwrap(), 0);
    }
}

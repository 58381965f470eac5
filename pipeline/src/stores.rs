//! The stores factory: a database URL -> the backend that implements the storage traits.
//!
//! `sqlite://PATH` (and `sqlite::memory:`) is the embedded default, `postgres://...` the
//! cluster backend (several processes share it); the scheme picks the backend, so bolts,
//! the admin API and the CLI name a database the same way and check its URL in one place.

use std::sync::Arc;

use squall_alerting::store::{
    AccountStore, AlertStateStore, DeliveryLog, MetricStore, PolicyStore, StoreError,
};
use squall_store_postgres::PgStore;
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
    /// Silences and notification groups.
    pub policy: Arc<dyn PolicyStore>,
}

impl std::fmt::Debug for Stores {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stores").finish_non_exhaustive()
    }
}

/// Checks a database URL without opening it: the error names the option and says which
/// URLs are known.
pub fn check_url(url: &str) -> Result<(), String> {
    let checked = if squall_store_postgres::is_postgres_url(url) {
        squall_store_postgres::check_url(url)
    } else {
        squall_store_sqlite::parse_url(url).map(|_| ())
    };
    checked.map_err(|e| match e {
        StoreError::Invalid { message, .. }
            if url.starts_with(squall_store_sqlite::SCHEME)
                || squall_store_postgres::is_postgres_url(url) =>
        {
            format!("`db_url`: {message}")
        }
        _ => format!(
            "`db_url` must be sqlite://PATH or postgres://USER@HOST:PORT/DB, got \"{}\"",
            squall_store_postgres::redact(url)
        ),
    })
}

/// Opens the database `url` names and runs its pending migrations: SQLite (one
/// connection, shared by its stores) or PostgreSQL (the process's pool for the URL).
pub fn open(url: &str) -> Result<Stores, StoreError> {
    if squall_store_postgres::is_postgres_url(url) {
        return Ok(Stores::of(Arc::new(PgStore::open_url(url)?)));
    }
    Ok(Stores::of(Arc::new(SqliteStore::open_url(url)?)))
}

/// `url` without its password, for messages and logs.
pub fn redact(url: &str) -> String {
    squall_store_postgres::redact(url)
}

impl Stores {
    /// Every store of one backend.
    pub fn of<B>(db: Arc<B>) -> Self
    where
        B: AccountStore + AlertStateStore + DeliveryLog + MetricStore + PolicyStore + 'static,
    {
        Stores {
            accounts: db.clone(),
            alerts: db.clone(),
            deliveries: db.clone(),
            metrics: db.clone(),
            policy: db,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_schemes_are_refused_naming_the_option() {
        assert!(check_url("sqlite:///tmp/x.db").is_ok());
        assert!(check_url("sqlite::memory:").is_ok());
        let e = check_url("mysql://db").unwrap_err();
        assert_eq!(
            e,
            "`db_url` must be sqlite://PATH or postgres://USER@HOST:PORT/DB, got \"mysql://db\""
        );
        assert!(check_url("postgres://squall@127.0.0.1:5432/squall").is_ok());
        let e = check_url("postgres://u:pw@h:1/db?pool_size=none").unwrap_err();
        assert!(
            e.starts_with("`db_url`: pool_size=none") && !e.contains("pw@"),
            "{e}"
        );
        assert!(open("mysql://db").is_err());
        let s = open("sqlite::memory:").unwrap();
        assert_eq!(s.accounts.admin_version().unwrap(), 0);
    }
}

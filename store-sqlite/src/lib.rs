//! squall's embedded storage backend: every storage trait of `squall-alerting`
//! ([`AccountStore`], [`AlertStateStore`], [`DeliveryLog`], [`MetricStore`]) on one SQLite
//! file, so `squall up` needs no database server.
//!
//! - One URL and pragma helper ([`SqliteStore::open_url`]: `sqlite://PATH` or
//!   `sqlite::memory:`): WAL mode, `synchronous = NORMAL` (durable against a killed
//!   process; a power cut may lose the last commits), foreign keys on, a 5 s busy timeout.
//! - One migration runner ([`migrate`]) over one ordered list of migrations, applied in
//!   one write transaction at open, so processes opening the same file at once agree.
//! - One module per trait: `accounts` (accounts, keys, devices, alert configs, import),
//!   `alerts` (alert state), `deliveries`, `metrics`.
//! - Errors: SQLite's busy, locked, full-disk and I/O failures are transient
//!   ([`StoreError::is_transient`]); everything else is permanent.
//!
//! Each [`SqliteStore`] holds one connection behind a mutex; calls block on I/O, so callers
//! on an async runtime run them on a dedicated thread. Open one store per thread that
//! needs its own connection (each bolt task does).

mod accounts;
mod alerts;
mod deliveries;
mod metrics;
pub mod migrate;
mod policy;

use std::path::Path;
use std::sync::{Mutex, MutexGuard};

use rusqlite::{Connection, ErrorCode};
use squall_alerting::store::StoreError;

pub use squall_alerting::store::{AccountStore, AlertStateStore, DeliveryLog, MetricStore};

/// The URL scheme of this backend: `sqlite://PATH`.
pub const SCHEME: &str = "sqlite://";

/// What a database URL names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target<'a> {
    /// `sqlite://PATH`: a file (created if missing).
    File(&'a Path),
    /// `sqlite::memory:`: a private in-memory database (tests).
    Memory,
}

/// How long a statement waits for a lock another connection holds before it fails (with a
/// transient error) unless the URL says otherwise (`?busy_timeout_ms=N`).
pub const DEFAULT_BUSY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// The options a URL may carry after `?`: `busy_timeout_ms=N`.
fn url_options(url: &str) -> Result<std::time::Duration, StoreError> {
    let Some((_, query)) = url.split_once('?') else {
        return Ok(DEFAULT_BUSY_TIMEOUT);
    };
    let mut busy = DEFAULT_BUSY_TIMEOUT;
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        match pair.split_once('=') {
            Some(("busy_timeout_ms", v)) => {
                busy = std::time::Duration::from_millis(v.parse().map_err(|_| {
                    StoreError::Invalid {
                        field: "db.url",
                        message: format!("busy_timeout_ms={v} is not a number of milliseconds"),
                    }
                })?);
            }
            _ => {
                return Err(StoreError::Invalid {
                    field: "db.url",
                    message: format!("unknown option \"{pair}\" (known: busy_timeout_ms=N)"),
                })
            }
        }
    }
    Ok(busy)
}

/// Reads `sqlite://PATH[?busy_timeout_ms=N]` or `sqlite::memory:`; any other URL is an
/// error naming `db.url`.
pub fn parse_url(url: &str) -> Result<Target<'_>, StoreError> {
    url_options(url)?;
    let url = url.split_once('?').map_or(url, |(u, _)| u);
    match url.strip_prefix(SCHEME) {
        Some(path) if !path.is_empty() => Ok(Target::File(Path::new(path))),
        _ if url == "sqlite::memory:" => Ok(Target::Memory),
        _ => Err(StoreError::Invalid {
            field: "db.url",
            message: format!("\"{url}\" is not sqlite://PATH"),
        }),
    }
}

/// Errors inside this crate: SQLite's, or the domain's.
#[derive(Debug)]
pub(crate) enum Error {
    Sql(rusqlite::Error),
    Store(StoreError),
}

pub(crate) type Result<T, E = Error> = std::result::Result<T, E>;

impl From<rusqlite::Error> for Error {
    fn from(e: rusqlite::Error) -> Self {
        Error::Sql(e)
    }
}

impl From<StoreError> for Error {
    fn from(e: StoreError) -> Self {
        Error::Store(e)
    }
}

impl From<Error> for StoreError {
    fn from(e: Error) -> Self {
        match e {
            Error::Store(e) => e,
            Error::Sql(e) => StoreError::backend(is_transient(&e), e),
        }
    }
}

/// Runs `f`, turning this crate's errors into the domain's.
pub(crate) fn run<T>(f: impl FnOnce() -> Result<T>) -> std::result::Result<T, StoreError> {
    f().map_err(StoreError::from)
}

/// Whether trying again later can help: the database is busy or locked by another
/// connection, the disk is full, or I/O failed.
fn is_transient(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(
            ErrorCode::DatabaseBusy
                | ErrorCode::DatabaseLocked
                | ErrorCode::DiskFull
                | ErrorCode::SystemIoFailure
                | ErrorCode::CannotOpen
        )
    )
}

/// Encodes a value stored as a MessagePack blob.
pub(crate) fn encode<T: serde::Serialize + ?Sized>(
    field: &'static str,
    value: &T,
) -> Result<Vec<u8>> {
    Ok(rmp_serde::to_vec(value).map_err(|e| StoreError::Invalid {
        field,
        message: format!("cannot encode: {e}"),
    })?)
}

/// Decodes a value stored as a MessagePack blob.
pub(crate) fn decode<T: serde::de::DeserializeOwned>(
    field: &'static str,
    blob: &[u8],
) -> Result<T> {
    Ok(
        rmp_serde::from_slice(blob).map_err(|e| StoreError::Invalid {
            field,
            message: format!("a stored row does not decode: {e}"),
        })?,
    )
}

/// The connection and what this connection caches.
pub(crate) struct Inner {
    pub(crate) conn: Connection,
    pub(crate) series: metrics::SeriesIds,
}

/// The embedded backend: one SQLite file (see the crate docs).
pub struct SqliteStore {
    inner: Mutex<Inner>,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore").finish_non_exhaustive()
    }
}

impl SqliteStore {
    /// Opens `sqlite://PATH[?busy_timeout_ms=N]` (or `sqlite::memory:`) and runs pending
    /// migrations.
    pub fn open_url(url: &str) -> Result<Self, StoreError> {
        let busy = url_options(url)?;
        match parse_url(url)? {
            Target::File(path) => Self::open_with(path, busy),
            Target::Memory => Self::in_memory(),
        }
    }

    /// Opens (creating it, and its directory, if needed) the database file at `path` and
    /// runs pending migrations.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        Self::open_with(path, DEFAULT_BUSY_TIMEOUT)
    }

    /// [`open`](Self::open), waiting at most `busy` for another connection's lock.
    pub fn open_with(path: &Path, busy: std::time::Duration) -> Result<Self, StoreError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| {
                StoreError::backend(false, format!("cannot create {}: {e}", dir.display()))
            })?;
        }
        Ok(Connection::open(path)
            .map_err(Error::from)
            .and_then(|c| Self::init(c, busy))?)
    }

    /// A private in-memory database (tests).
    pub fn in_memory() -> Result<Self, StoreError> {
        Ok(Connection::open_in_memory()
            .map_err(Error::from)
            .and_then(|c| Self::init(c, DEFAULT_BUSY_TIMEOUT))?)
    }

    fn init(mut conn: Connection, busy: std::time::Duration) -> Result<Self> {
        // First: a second process opening a new file at once waits instead of failing.
        conn.busy_timeout(busy)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        // Durable against a killed process (the WAL survives); a power cut may lose the
        // last commits, as with every WAL database in NORMAL mode.
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        migrate::run(&mut conn)?;
        Ok(SqliteStore {
            inner: Mutex::new(Inner {
                conn,
                series: metrics::SeriesIds::default(),
            }),
        })
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The connection, locked.
    pub(crate) fn conn(&self) -> Conn<'_> {
        Conn(self.lock())
    }
}

/// A locked connection.
pub(crate) struct Conn<'a>(MutexGuard<'a, Inner>);

impl std::ops::Deref for Conn<'_> {
    type Target = Connection;
    fn deref(&self) -> &Connection {
        &self.0.conn
    }
}

impl std::ops::DerefMut for Conn<'_> {
    fn deref_mut(&mut self) -> &mut Connection {
        &mut self.0.conn
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use squall_alerting::accounts::Account;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::OnceLock;

    /// A fresh database file per call, in one directory the test process keeps.
    fn fresh() -> SqliteStore {
        static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = DIR.get_or_init(|| tempfile::tempdir().expect("a temporary directory"));
        let path = dir.path().join(format!(
            "conformance-{}.db",
            N.fetch_add(1, Ordering::Relaxed)
        ));
        SqliteStore::open(&path).expect("open a fresh database")
    }

    squall_alerting::store_conformance_tests!(fresh);

    #[test]
    fn migrations_run_once_and_data_survives_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("accounts.db");
        {
            let store = SqliteStore::open(&path).unwrap();
            store
                .create_account(&Account {
                    name: "acme".into(),
                    device_quota: 3,
                    active: true,
                })
                .unwrap();
            store.issue_agent_key("acme", Some("k1")).unwrap();
        }
        let store = SqliteStore::open_url(&format!("sqlite://{}", path.display())).unwrap();
        assert_eq!(store.key_account("k1").unwrap().as_deref(), Some("acme"));
        let applied = migrate::applied(&store.lock().conn).unwrap();
        assert_eq!(
            applied,
            migrate::MIGRATIONS.len() as i64,
            "each migration once"
        );
    }

    #[test]
    fn alert_state_survives_reopening_the_file() {
        use squall_alerting::engine::{Engine, Observation};
        use squall_alerting::payload::{MetricPoint, Payload};
        use squall_alerting::store::conformance::load_config;
        use std::sync::Arc;

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("alerts.db");
        let obs = |t: f64| Observation {
            device: squall_alerting::ids::DeviceId(1),
            account: "acme".into(),
            agent_key: "k1".into(),
            hostname: "web-1".into(),
            time: t,
            received_at: t,
            payload: Arc::new(Payload {
                points: vec![MetricPoint {
                    name: "system.load.1".into(),
                    labels: Default::default(),
                    value: 9.0,
                }],
                ..Payload::default()
            }),
            partition: None,
        };
        {
            let store = Arc::new(SqliteStore::open(&path).unwrap());
            store
                .create_account(&Account {
                    name: "acme".into(),
                    device_quota: 3,
                    active: true,
                })
                .unwrap();
            store
                .create_config(&load_config(serde_json::json!({})))
                .unwrap();
            let mut e = Engine::new(store.clone(), store.clone());
            assert!(e.observe(&obs(100.0)).unwrap().is_empty(), "pending");
            e.commit().unwrap();
        } // the process dies: only the file is left
        let store = Arc::new(SqliteStore::open(&path).unwrap());
        let mut e = Engine::new(store.clone(), store.clone());
        assert_eq!(e.load(|_| true).unwrap(), 1);
        assert_eq!(
            e.observe(&obs(220.0)).unwrap().len(),
            1,
            "the pending clock survived"
        );
        e.commit().unwrap();
        assert_eq!(store.triggered(false, None).unwrap().len(), 1);
    }

    #[test]
    fn the_quota_holds_across_connections_registering_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nested").join("quota.db");
        let first = SqliteStore::open(&path).unwrap();
        first
            .create_account(&Account {
                name: "acme".into(),
                device_quota: 5,
                active: true,
            })
            .unwrap();
        first.issue_agent_key("acme", Some("k1")).unwrap();
        let handles: Vec<_> = (0..12)
            .map(|i| {
                let path = path.clone();
                std::thread::spawn(move || {
                    // One connection per thread, as separate processes would have.
                    let store = SqliteStore::open(&path).unwrap();
                    store
                        .register_device("acme", "k1", &format!("host-{i}"), i)
                        .unwrap()
                })
            })
            .collect();
        let registered = handles
            .into_iter()
            .map(|h| h.join().unwrap())
            .filter(|r| matches!(r, squall_alerting::accounts::Registration::Registered(_)))
            .count();
        assert_eq!(registered, 5);
        assert_eq!(first.devices("acme").unwrap().len(), 5);
    }

    #[test]
    fn the_url_sets_the_busy_timeout_and_refuses_unknown_options() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("busy.db");
        let url = format!("sqlite://{}?busy_timeout_ms=50", path.display());
        let store = SqliteStore::open_url(&url).unwrap();
        let other = Connection::open(&path).unwrap();
        other.execute_batch("BEGIN EXCLUSIVE").unwrap();
        let started = std::time::Instant::now();
        let e = store
            .create_account(&Account {
                name: "acme".into(),
                device_quota: 1,
                active: true,
            })
            .unwrap_err();
        assert!(e.is_transient(), "{e}");
        assert!(
            started.elapsed() < std::time::Duration::from_secs(4),
            "50 ms, not 5 s"
        );
        other.execute_batch("ROLLBACK").unwrap();
        for bad in ["?busy_timeout_ms=soon", "?cache=shared"] {
            let e =
                SqliteStore::open_url(&format!("sqlite://{}{bad}", path.display())).unwrap_err();
            assert!(
                matches!(
                    e,
                    StoreError::Invalid {
                        field: "db.url",
                        ..
                    }
                ),
                "{e}"
            );
        }
    }

    #[test]
    fn urls_other_than_sqlite_are_refused_naming_the_option() {
        for url in ["postgres://x", "sqlite://", "/var/lib/squall.db"] {
            let e = SqliteStore::open_url(url).unwrap_err();
            assert!(
                matches!(
                    e,
                    StoreError::Invalid {
                        field: "db.url",
                        ..
                    }
                ),
                "{url}: {e}"
            );
            assert!(e.to_string().contains(url), "{e}");
        }
        assert_eq!(parse_url("sqlite::memory:").unwrap(), Target::Memory);
    }

    #[test]
    fn a_locked_database_is_a_transient_failure() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("locked.db");
        let store = SqliteStore::open(&path).unwrap();
        store
            .lock()
            .conn
            .busy_timeout(std::time::Duration::ZERO)
            .unwrap();
        let other = Connection::open(&path).unwrap();
        other.execute_batch("BEGIN EXCLUSIVE").unwrap();
        let e = store
            .create_account(&Account {
                name: "acme".into(),
                device_quota: 1,
                active: true,
            })
            .unwrap_err();
        assert!(e.is_transient(), "locked is transient: {e}");
        other.execute_batch("ROLLBACK").unwrap();
        assert!(store.account("acme").unwrap().is_none());
        let e = StoreError::from(Error::Sql(rusqlite::Error::InvalidColumnName("x".into())));
        assert!(!e.is_transient(), "a programming error is permanent");
    }
}

//! squall's cluster backend: every storage trait of `squall-alerting` ([`AccountStore`],
//! [`AlertStateStore`], [`DeliveryLog`], [`MetricStore`]) on PostgreSQL, so several
//! `squall up` processes share one database.
//!
//! - URL: `postgres://USER[:PASS]@HOST[:PORT]/DB[?pool_size=N&connect_timeout=S]`
//!   (`postgresql://` too); `pool_size` (default [`DEFAULT_POOL_SIZE`]) is squall's, the
//!   other options are tokio-postgres's. No TLS yet: use it on a trusted network.
//! - One pool per URL and process ([`PgStore::open_url`] hands out the same pool to every
//!   bolt task that opens the URL), driven by a runtime of its own (one thread named
//!   `squall-postgres`): the trait calls block the calling thread, which must not be a
//!   tokio worker (bolts call them on their `Offload` threads, services in
//!   `spawn_blocking`).
//! - One migration runner ([`migrate`]), applied at the first open in a process, in one
//!   transaction under an advisory lock, so processes starting together agree.
//! - One module per trait: `accounts`, `alerts`, `deliveries`, `metrics`; writes are
//!   batched into multi-row statements over arrays (`unnest`), one transaction per call.
//! - Concurrency between processes: registering devices locks the accounts' rows, so a
//!   burst of new devices on several processes never exceeds a quota; every other write
//!   is an idempotent upsert. A session idle inside a transaction for
//!   [`IDLE_IN_TRANSACTION`] is ended by the server, so a paused process never holds its
//!   locks for longer.
//! - Errors: a lost or refused connection, a pool timeout, a serialization failure or
//!   deadlock, a server shutting down or out of resources are transient
//!   ([`StoreError::is_transient`]); everything else is permanent.

mod accounts;
mod alerts;
mod deliveries;
mod metrics;
pub mod migrate;
mod policy;

use std::collections::HashMap;
use std::future::Future;
use std::str::FromStr;
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, PoolError, RecyclingMethod};
use squall_alerting::store::StoreError;
use tokio_postgres::error::SqlState;
use tokio_postgres::NoTls;

pub use squall_alerting::store::{AccountStore, AlertStateStore, DeliveryLog, MetricStore};

/// Connections per process and URL unless the URL says otherwise (`?pool_size=N`).
pub const DEFAULT_POOL_SIZE: usize = 16;

/// How long a call waits for a free connection, or for a new one to connect, before it
/// fails with a transient error.
pub const POOL_WAIT: Duration = Duration::from_secs(30);

/// How long a session may sit idle inside a transaction before the server ends it (and
/// its locks): a process paused or cut off mid-transaction blocks the others at most this
/// long.
pub const IDLE_IN_TRANSACTION: Duration = Duration::from_secs(10);

/// Whether `url` names this backend (`postgres://` or `postgresql://`).
pub fn is_postgres_url(url: &str) -> bool {
    url.starts_with("postgres://") || url.starts_with("postgresql://")
}

/// What a URL says: the driver's configuration and the pool size.
#[derive(Debug)]
struct Parsed {
    config: tokio_postgres::Config,
    pool_size: usize,
}

fn invalid(message: String) -> StoreError {
    StoreError::Invalid {
        field: "db.url",
        message,
    }
}

/// Reads a `postgres://` URL: squall's own option (`pool_size`) is taken out, the rest is
/// tokio-postgres's. The error names `db.url` and never echoes a password.
fn parse(url: &str) -> Result<Parsed, StoreError> {
    if !is_postgres_url(url) {
        return Err(invalid(format!(
            "\"{}\" is not postgres://USER@HOST:PORT/DB",
            redact(url)
        )));
    }
    let (base, query) = url.split_once('?').unwrap_or((url, ""));
    let mut pool_size = DEFAULT_POOL_SIZE;
    let mut rest = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        match pair.split_once('=') {
            Some(("pool_size", v)) => {
                pool_size =
                    v.parse().ok().filter(|n| *n > 0).ok_or_else(|| {
                        invalid(format!("pool_size={v} is not a positive number"))
                    })?;
            }
            _ => rest.push(pair),
        }
    }
    let driver_url = if rest.is_empty() {
        base.to_string()
    } else {
        format!("{base}?{}", rest.join("&"))
    };
    let mut config = tokio_postgres::Config::from_str(&driver_url)
        .map_err(|e| invalid(format!("\"{}\": {e}", redact(url))))?;
    if config.get_dbname().is_none() {
        return Err(invalid(format!(
            "\"{}\" names no database (postgres://USER@HOST:PORT/DB)",
            redact(url)
        )));
    }
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(Duration::from_secs(10));
    }
    // A process paused (or cut off) inside a transaction must not hold its row locks for
    // good: the server ends such a session after IDLE_IN_TRANSACTION (the URL's own
    // `options` come after, so they win).
    let ours = format!(
        "-c idle_in_transaction_session_timeout={}",
        IDLE_IN_TRANSACTION.as_millis()
    );
    let options = match config.get_options() {
        Some(given) => format!("{ours} {given}"),
        None => ours,
    };
    config.options(&options);
    config.application_name("squall");
    Ok(Parsed { config, pool_size })
}

/// `url` without its password, for messages and logs.
pub fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let (authority, tail) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    match authority.rsplit_once('@') {
        Some((user, host)) => match user.split_once(':') {
            Some((name, _)) => format!("{scheme}://{name}:***@{host}{tail}"),
            None => url.to_string(),
        },
        None => url.to_string(),
    }
}

/// Checks a `postgres://` URL without connecting.
pub fn check_url(url: &str) -> Result<(), StoreError> {
    parse(url).map(|_| ())
}

/// Errors inside this crate: the driver's, the pool's, or the domain's.
#[derive(Debug)]
pub(crate) enum Error {
    Pg(tokio_postgres::Error),
    Pool(PoolError),
    Store(StoreError),
}

pub(crate) type Result<T, E = Error> = std::result::Result<T, E>;

impl From<tokio_postgres::Error> for Error {
    fn from(e: tokio_postgres::Error) -> Self {
        Error::Pg(e)
    }
}

impl From<PoolError> for Error {
    fn from(e: PoolError) -> Self {
        Error::Pool(e)
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
            Error::Pg(e) => StoreError::backend(is_transient(&e), describe(&e)),
            Error::Pool(e) => {
                let transient = match &e {
                    PoolError::Backend(e) => is_transient(e),
                    PoolError::Timeout(_) | PoolError::PostCreateHook(_) => true,
                    PoolError::Closed | PoolError::NoRuntimeSpecified => false,
                };
                StoreError::backend(transient, e)
            }
        }
    }
}

/// The driver's error with the server's own words (its `Display` says only "db error"):
/// `SQLSTATE: message (detail)`.
fn describe(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => match db.detail() {
            Some(detail) => format!("{}: {} ({detail})", db.code().code(), db.message()),
            None => format!("{}: {}", db.code().code(), db.message()),
        },
        None => match std::error::Error::source(e) {
            Some(source) => format!("{e}: {source}"),
            None => e.to_string(),
        },
    }
}

/// Whether trying again later can help: the connection failed or was lost, the server is
/// starting, shutting down, out of resources or read-only (a failover), or the
/// transaction lost a serialization race or a deadlock.
fn is_transient(e: &tokio_postgres::Error) -> bool {
    let Some(code) = e.code() else {
        // No SQLSTATE: the connection (I/O, closed, timed out), or a programming error
        // (a type conversion), which is permanent.
        return e.is_closed()
            || std::error::Error::source(e).is_some_and(|s| s.is::<std::io::Error>())
            || e.to_string().contains("timed out")
            || e.to_string().contains("connection");
    };
    let class = &code.code()[..2];
    matches!(class, "08" | "53" | "57" | "58")
        || [
            SqlState::T_R_SERIALIZATION_FAILURE,
            SqlState::T_R_DEADLOCK_DETECTED,
            SqlState::LOCK_NOT_AVAILABLE,
            SqlState::OBJECT_IN_USE,
            SqlState::READ_ONLY_SQL_TRANSACTION,
        ]
        .contains(code)
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

/// What every store of one URL in this process shares: the runtime, the pool, and the
/// series ids seen so far.
struct Shared {
    runtime: Option<tokio::runtime::Runtime>,
    pool: Pool,
    series: Mutex<metrics::SeriesIds>,
}

impl Drop for Shared {
    fn drop(&mut self) {
        // Never blocks, so the last store may be dropped anywhere (even on a worker).
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

/// The cluster backend (see the crate docs). Cheap to open again: every store of a URL in
/// a process shares one pool.
#[derive(Clone)]
pub struct PgStore {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgStore").finish_non_exhaustive()
    }
}

/// The pools of this process, by URL.
fn pools() -> &'static Mutex<HashMap<String, Weak<Shared>>> {
    static POOLS: OnceLock<Mutex<HashMap<String, Weak<Shared>>>> = OnceLock::new();
    POOLS.get_or_init(Default::default)
}

impl PgStore {
    /// Opens `postgres://...` (see the crate docs): the pool this process already has for
    /// the URL, or a new one, whose first connection runs the pending migrations.
    pub fn open_url(url: &str) -> Result<Self, StoreError> {
        let parsed = parse(url)?;
        let mut pools = pools().lock().unwrap_or_else(|e| e.into_inner());
        if let Some(shared) = pools.get(url).and_then(Weak::upgrade) {
            return Ok(PgStore { shared });
        }
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("squall-postgres")
            .enable_all()
            .build()
            .map_err(|e| StoreError::backend(true, e))?;
        let manager = Manager::from_config(
            parsed.config,
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(parsed.pool_size)
            .runtime(deadpool_postgres::Runtime::Tokio1)
            .wait_timeout(Some(POOL_WAIT))
            .create_timeout(Some(POOL_WAIT))
            .recycle_timeout(Some(POOL_WAIT))
            .build()
            .map_err(|e| invalid(format!("cannot make a pool: {e}")))?;
        let store = PgStore {
            shared: Arc::new(Shared {
                runtime: Some(runtime),
                pool,
                series: Mutex::new(metrics::SeriesIds::default()),
            }),
        };
        // On a thread of its own: open may be called where blocking on a runtime is not
        // allowed (a bolt's prepare on a worker); it waits, as opening a file would.
        std::thread::scope(|s| {
            s.spawn(|| {
                store.block_on(async {
                    let mut client = store.client().await?;
                    migrate::run(&mut client).await
                })
            })
            .join()
            .unwrap_or_else(|_| Err(StoreError::backend(false, "the migration panicked")))
        })?;
        pools.insert(url.to_string(), Arc::downgrade(&store.shared));
        Ok(store)
    }

    /// Runs `work` on this store's runtime, blocking the caller, as a SQLite call would:
    /// on a plain thread (an `Offload` thread, a test) directly; on a multi-threaded tokio
    /// runtime (a bolt's `prepare`, `spawn_blocking`) inside `block_in_place`, so the
    /// runtime moves its other tasks away first; on a current-thread runtime on a thread
    /// of its own.
    pub(crate) fn block_on<T: Send>(
        &self,
        work: impl Future<Output = Result<T>> + Send,
    ) -> Result<T, StoreError> {
        let rt = self
            .shared
            .runtime
            .as_ref()
            .expect("the runtime lives as long as the store");
        let result = match tokio::runtime::Handle::try_current().map(|h| h.runtime_flavor()) {
            Err(_) => rt.block_on(work),
            Ok(tokio::runtime::RuntimeFlavor::MultiThread) => {
                tokio::task::block_in_place(|| rt.block_on(work))
            }
            Ok(_) => std::thread::scope(|s| {
                s.spawn(|| rt.block_on(work))
                    .join()
                    .unwrap_or_else(|_| Err(StoreError::backend(false, "a query panicked").into()))
            }),
        };
        result.map_err(StoreError::from)
    }

    /// A pooled connection (waits at most [`POOL_WAIT`]).
    pub(crate) async fn client(&self) -> Result<deadpool_postgres::Object> {
        Ok(self.shared.pool.get().await?)
    }

    /// The series ids this process has seen.
    pub(crate) fn series(&self) -> std::sync::MutexGuard<'_, metrics::SeriesIds> {
        self.shared.series.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(any(test, feature = "testing"))]
pub mod testing;

#[cfg(test)]
mod tests;

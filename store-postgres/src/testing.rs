//! Test support (feature `testing`): a real PostgreSQL server for tests, and a fresh empty
//! database on it per call.
//!
//! The server is `SQUALL_POSTGRES_URL` (any database on it; the user must be allowed to
//! create databases), or else the throwaway cluster `scripts/postgres-up.sh` starts on
//! 127.0.0.1 (initialised on the first run, from Debian's PostgreSQL).

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;

/// The server's URL: `SQUALL_POSTGRES_URL`, or the one `scripts/postgres-up.sh` starts.
pub fn server_url() -> String {
    static URL: OnceLock<String> = OnceLock::new();
    URL.get_or_init(|| {
        if let Ok(url) = std::env::var("SQUALL_POSTGRES_URL") {
            return url;
        }
        let out = std::process::Command::new("bash")
            .arg(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../scripts/postgres-up.sh"
            ))
            .arg("start")
            .output()
            .expect("run scripts/postgres-up.sh");
        assert!(
            out.status.success(),
            "scripts/postgres-up.sh failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout)
            .expect("utf-8")
            .lines()
            .find_map(|l| l.strip_prefix("POSTGRES_URL=").map(String::from))
            .expect("postgres-up.sh prints POSTGRES_URL=")
    })
    .clone()
}

/// Runs `sql` on the server (outside a transaction), on a runtime of its own.
pub fn execute(sql: &str) {
    let url = server_url();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    rt.block_on(async {
        let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
            .await
            .unwrap_or_else(|e| panic!("connect to {}: {e}", crate::redact(&url)));
        let task = tokio::spawn(connection);
        client
            .batch_execute(sql)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
        drop(client);
        let _ = task.await;
    });
}

/// Creates a new empty database and returns its URL (the server's URL with the new
/// database's name).
pub fn fresh_database() -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .subsec_nanos();
    let name = format!(
        "squall_test_{}_{nanos}_{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    );
    execute(&format!("CREATE DATABASE {name}"));
    let url = server_url();
    let (base, query) = url
        .split_once('?')
        .map_or((url.as_str(), None), |(b, q)| (b, Some(q)));
    let server = base.rsplit_once('/').map_or(base, |(s, _)| s);
    match query {
        Some(q) => format!("{server}/{name}?{q}"),
        None => format!("{server}/{name}"),
    }
}

//! The conformance suite and PostgreSQL-specific behaviour, against a real server
//! (`testing::server_url`).

use super::*;
use squall_alerting::accounts::{Account, Registration};

fn fresh() -> PgStore {
    PgStore::open_url(&testing::fresh_database()).expect("open a fresh database")
}

squall_alerting::store_conformance_tests!(fresh);

fn acme() -> Account {
    Account {
        name: "acme".into(),
        device_quota: 5,
        active: true,
    }
}

#[test]
fn migrations_run_once_and_stores_of_one_url_share_a_pool() {
    let url = testing::fresh_database();
    let a = PgStore::open_url(&url).unwrap();
    let b = PgStore::open_url(&url).unwrap();
    assert!(Arc::ptr_eq(&a.shared, &b.shared), "one pool per URL");
    a.create_account(&acme()).unwrap();
    drop((a, b));
    // A new pool (as a restarted process has) finds the schema and the data.
    let c = PgStore::open_url(&url).unwrap();
    assert_eq!(c.account("acme").unwrap().unwrap().device_quota, 5);
    let applied = c
        .block_on(async { migrate::applied(&**c.client().await?).await })
        .unwrap();
    assert_eq!(
        applied,
        migrate::MIGRATIONS.len() as i64,
        "each migration once"
    );
}

#[test]
fn processes_starting_together_migrate_once() {
    let url = testing::fresh_database();
    // Different pool sizes: different pools, as separate processes would have.
    let handles: Vec<_> = (1..=6)
        .map(|i| {
            let url = format!("{url}?pool_size={i}");
            std::thread::spawn(move || PgStore::open_url(&url).map(|_| ()))
        })
        .collect();
    for h in handles {
        h.join().unwrap().unwrap();
    }
    let store = PgStore::open_url(&url).unwrap();
    let names: Vec<String> = store
        .block_on(async {
            let c = store.client().await?;
            Ok(
                c.query("SELECT name FROM squall_schema ORDER BY version", &[])
                    .await?
                    .iter()
                    .map(|r| r.get(0))
                    .collect(),
            )
        })
        .unwrap();
    assert_eq!(names.len(), migrate::MIGRATIONS.len());
}

#[test]
fn the_quota_holds_across_processes_registering_at_once() {
    let url = testing::fresh_database();
    let first = PgStore::open_url(&url).unwrap();
    first.create_account(&acme()).unwrap();
    first.issue_agent_key("acme", Some("k1")).unwrap();
    let handles: Vec<_> = (0..12)
        .map(|i| {
            // A pool of its own per thread: twelve processes registering at once.
            let url = format!("{url}?pool_size={}", i + 1);
            std::thread::spawn(move || {
                let store = PgStore::open_url(&url).unwrap();
                store
                    .register_device("acme", "k1", &format!("host-{}", i % 8), i)
                    .unwrap()
            })
        })
        .collect();
    let results: Vec<Registration> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    let devices = first.devices("acme").unwrap();
    assert_eq!(devices.len(), 5, "{devices:?}");
    let registered = results
        .iter()
        .filter(|r| matches!(r, Registration::Registered(_)))
        .count();
    assert_eq!(registered, 5, "{results:?}");
}

#[test]
fn a_lock_timeout_and_an_unreachable_server_are_transient() {
    let url = testing::fresh_database();
    let store = PgStore::open_url(&url).unwrap();
    // The driver's own options pass through the URL: here a lock timeout of 100 ms.
    let impatient = PgStore::open_url(&format!(
        "{url}?pool_size=2&options=-c%20lock_timeout%3D100"
    ))
    .unwrap();
    let holder = store.clone();
    let (locked_tx, locked_rx) = std::sync::mpsc::channel();
    let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
    let t = std::thread::spawn(move || {
        holder
            .block_on(async {
                let mut c = holder.client().await?;
                let tx = c.transaction().await?;
                tx.batch_execute("LOCK TABLE accounts IN ACCESS EXCLUSIVE MODE")
                    .await?;
                locked_tx.send(()).unwrap();
                // Held until the test says so (a thread of this runtime waits).
                tokio::task::spawn_blocking(move || release_rx.recv())
                    .await
                    .unwrap()
                    .unwrap();
                tx.rollback().await?;
                Ok(())
            })
            .unwrap();
    });
    locked_rx.recv().unwrap();
    let e = impatient.create_account(&acme()).unwrap_err();
    assert!(e.is_transient(), "a lock timeout is transient: {e}");
    release_tx.send(()).unwrap();
    t.join().unwrap();
    impatient.create_account(&acme()).unwrap();

    // Nothing listens on port 1.
    let nowhere =
        PgStore::open_url("postgres://squall@127.0.0.1:1/squall?connect_timeout=2").unwrap_err();
    assert!(
        nowhere.is_transient(),
        "unreachable is transient: {nowhere}"
    );
}

#[test]
fn urls_are_checked_naming_the_option_and_never_echo_a_password() {
    for url in [
        "mysql://db",
        "postgres://squall:hunter2@127.0.0.1:5432",
        "postgres://squall:hunter2@127.0.0.1:5432/db?pool_size=0",
        "postgres://squall:hunter2@127.0.0.1:5432/db?bogus=1",
    ] {
        let e = check_url(url).unwrap_err();
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
        assert!(!e.to_string().contains("hunter2"), "{e}");
    }
    assert!(check_url("postgresql://u@h:1/db?pool_size=3&connect_timeout=5").is_ok());
    assert_eq!(
        redact("postgres://u:secret@h:1/db"),
        "postgres://u:***@h:1/db"
    );
    assert!(is_postgres_url("postgresql://x/y") && !is_postgres_url("sqlite://x"));
}

#[test]
fn a_roll_up_skips_an_hour_being_written_and_takes_it_once_written() {
    use squall_alerting::ids::DeviceId;
    use squall_alerting::store::conformance::sample_points;
    let url = testing::fresh_database();
    let store = PgStore::open_url(&url).unwrap();
    let d = DeviceId(1);
    store
        .write(&[(d, 3600.0, sample_points(1.0).as_slice())])
        .unwrap();
    // Another process writes the same hour: its transaction has changed the minute and
    // bumped the hour's mark, and has not committed yet.
    let writer = store.clone();
    let (wrote_tx, wrote_rx) = std::sync::mpsc::channel();
    let (commit_tx, commit_rx) = std::sync::mpsc::channel::<()>();
    let w = std::thread::spawn(move || {
        writer
            .block_on(async {
                let mut c = writer.client().await?;
                let tx = c.transaction().await?;
                // The load point (the row's first: id, then the value) becomes 3.0.
                let mut points: Vec<u8> = tx
                    .query_one(
                        "SELECT points FROM metric_minutes WHERE device = 1 AND minute = 60",
                        &[],
                    )
                    .await?
                    .get(0);
                points[5..13].copy_from_slice(&3.0f64.to_le_bytes());
                tx.execute(
                    "UPDATE metric_minutes SET time = 3601, points = $1
                     WHERE device = 1 AND minute = 60",
                    &[&points],
                )
                .await?;
                tx.execute(
                    "UPDATE metric_hours_changed SET changes = changes + 1
                     WHERE device = 1 AND hour = 1",
                    &[],
                )
                .await?;
                wrote_tx.send(()).unwrap();
                tokio::task::spawn_blocking(move || commit_rx.recv())
                    .await
                    .unwrap()
                    .unwrap();
                tx.commit().await?;
                Ok(())
            })
            .unwrap();
    });
    wrote_rx.recv().unwrap();
    // A roll-up (another process's, say) skips the mark the writer holds instead of
    // waiting for it, or rolling up the hour without the write.
    let roller = PgStore::open_url(&format!("{url}?pool_size=3")).unwrap();
    let rolled = std::thread::spawn(move || roller.roll_up(7200.0, usize::MAX).unwrap())
        .join()
        .unwrap();
    assert_eq!(rolled, 0, "the hour being written is left for later");
    commit_tx.send(()).unwrap();
    w.join().unwrap();
    let hour = |store: &PgStore| {
        store
            .query(d, "system.load.1", None, 3600, 3600, true)
            .unwrap()[0]
            .value
    };
    assert_eq!(hour(&store), 3.0, "computed from the minutes meanwhile");
    assert_eq!(
        store.roll_up(7200.0, usize::MAX).unwrap(),
        1,
        "its turn now"
    );
    assert_eq!(hour(&store), 3.0, "the rolled-up hour holds the write");
    assert_eq!(store.roll_up(7200.0, usize::MAX).unwrap(), 0);
}

//! Accounts, agent keys and devices: the store the `enrich` bolt and the admin API use.
//!
//! [`AccountStore`] is the interface; [`SqliteStore`] is the embedded default (one SQLite
//! file, WAL mode, schema migrations applied at open). All calls block on I/O: callers on
//! an async runtime run them with `spawn_blocking` or on a dedicated thread.
//!
//! Quota: a device counts against its account's `device_quota` while it is active.
//! Registering a new device checks and inserts in one immediate (write-locked)
//! transaction, so a burst of new devices never exceeds the quota.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Mutex;

use rand::RngCore;

use super::configs::{self, AlertConfig, StoredConfig};
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};
use serde::{Deserialize, Serialize};

/// An account.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Account {
    /// Unique name (also the `<account>` of `<account>.agent.<domain>`).
    pub name: String,
    /// Most active devices.
    pub device_quota: u32,
    /// Whether payloads are accepted.
    pub active: bool,
}

/// A monitored device.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Device {
    /// Id.
    pub id: i64,
    /// Its account.
    pub account: String,
    /// The agent key it posts with.
    pub agent_key: String,
    /// The agent's hostname.
    pub hostname: String,
    /// Whether its payloads are accepted.
    pub active: bool,
    /// First payload, ms since the epoch.
    pub first_seen_ms: i64,
    /// Latest payload, ms since the epoch.
    pub last_seen_ms: i64,
}

/// The outcome of [`AccountStore::register_device`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Registration {
    /// The device was known.
    Known(Device),
    /// The device is new and was registered within the quota.
    Registered(Device),
    /// The device is new and the account has no quota left.
    QuotaExceeded,
}

/// A change to an account.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccountPatch {
    /// New quota.
    pub device_quota: Option<u32>,
    /// New state.
    pub active: Option<bool>,
}

/// What went wrong in the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// No such account.
    #[error("no account \"{0}\"")]
    NoAccount(String),
    /// No such device.
    #[error("no device {0}")]
    NoDevice(i64),
    /// The account exists already.
    #[error("account \"{0}\" exists already")]
    AccountExists(String),
    /// The agent key is issued to another account.
    #[error("agent key {key} is issued to another account")]
    KeyTaken {
        /// The key.
        key: String,
    },
    /// A value is not acceptable.
    #[error("{field}: {message}")]
    Invalid {
        /// The field.
        field: &'static str,
        /// Why.
        message: String,
    },
    /// The database failed.
    #[error("database: {0}")]
    Database(#[from] rusqlite::Error),
}

/// Accounts, agent keys and devices.
pub trait AccountStore: Send + Sync {
    /// Creates an account.
    fn create_account(&self, account: &Account) -> Result<Account, StoreError>;
    /// Changes an account.
    fn update_account(&self, name: &str, patch: &AccountPatch) -> Result<Account, StoreError>;
    /// The account named `name`.
    fn account(&self, name: &str) -> Result<Option<Account>, StoreError>;
    /// Issues `key` (or a new random one) to `account`; returns the key.
    fn issue_agent_key(&self, account: &str, key: Option<&str>) -> Result<String, StoreError>;
    /// The account `key` is issued to.
    fn key_account(&self, key: &str) -> Result<Option<String>, StoreError>;
    /// The devices of `account`.
    fn devices(&self, account: &str) -> Result<Vec<Device>, StoreError>;
    /// Activates or deactivates a device.
    fn set_device_active(&self, id: i64, active: bool) -> Result<Device, StoreError>;
    /// Stores a new alert config (its account must exist).
    fn create_config(&self, config: &AlertConfig) -> Result<StoredConfig, StoreError>;
    /// The alert config `id`.
    fn config(&self, id: i64) -> Result<Option<StoredConfig>, StoreError>;
    /// Every alert config, or those of `account`.
    fn configs(&self, account: Option<&str>) -> Result<Vec<StoredConfig>, StoreError>;
    /// Replaces alert config `id`; `false` if there is none.
    fn replace_config(&self, id: i64, config: &AlertConfig) -> Result<bool, StoreError>;
    /// Deletes alert config `id`; `false` if there is none.
    fn delete_config(&self, id: i64) -> Result<bool, StoreError>;
    /// A number that changes whenever an admin call changed accounts, keys or devices:
    /// caches compare it to know when to drop what they hold.
    fn admin_version(&self) -> Result<i64, StoreError>;
    /// Finds the device (account, agent key, hostname), or registers it if the account has
    /// quota left; updates `last_seen`.
    fn register_device(
        &self,
        account: &str,
        agent_key: &str,
        hostname: &str,
        now_ms: i64,
    ) -> Result<Registration, StoreError> {
        let mut out = self.register_devices(&[Sighting {
            account,
            agent_key,
            hostname,
            now_ms,
        }])?;
        Ok(out.pop().expect("one answer per sighting"))
    }
    /// [`AccountStore::register_device`] for several sightings in one transaction, in
    /// order (a quota filled by an earlier one counts for the later ones).
    fn register_devices(&self, batch: &[Sighting<'_>]) -> Result<Vec<Registration>, StoreError>;
    /// Moves `last_seen` of devices forward to the given times `(device id, ms)`, in one
    /// transaction.
    fn touch_devices(&self, seen: &[(i64, i64)]) -> Result<(), StoreError>;
}

/// A payload's device as [`AccountStore::register_devices`] takes it.
#[derive(Clone, Copy, Debug)]
pub struct Sighting<'a> {
    /// Account name.
    pub account: &'a str,
    /// Agent key.
    pub agent_key: &'a str,
    /// Hostname (or uuid).
    pub hostname: &'a str,
    /// When the payload was received, epoch ms.
    pub now_ms: i64,
}

/// The schema, one migration per entry; `PRAGMA user_version` records how many ran.
const MIGRATIONS: &[&str] = &[
    "CREATE TABLE accounts (
        name TEXT PRIMARY KEY,
        device_quota INTEGER NOT NULL,
        active INTEGER NOT NULL
    );
    CREATE TABLE agent_keys (
        key TEXT PRIMARY KEY,
        account TEXT NOT NULL REFERENCES accounts(name)
    );
    CREATE TABLE devices (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        account TEXT NOT NULL REFERENCES accounts(name),
        agent_key TEXT NOT NULL,
        hostname TEXT NOT NULL,
        active INTEGER NOT NULL,
        first_seen_ms INTEGER NOT NULL,
        last_seen_ms INTEGER NOT NULL,
        UNIQUE (account, agent_key, hostname)
    );
    CREATE INDEX devices_by_account ON devices(account, active);",
    "CREATE TABLE admin_changes (version INTEGER NOT NULL);
    INSERT INTO admin_changes (version) VALUES (0);",
];

/// The embedded store: one SQLite file.
pub struct SqliteStore {
    conn: Mutex<Connection>,
}

pub(crate) fn valid_name(name: &str) -> Result<(), StoreError> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !name.starts_with('-');
    if ok {
        Ok(())
    } else {
        Err(StoreError::Invalid {
            field: "name",
            message: format!(
                "\"{name}\" must be 1-63 lowercase letters, digits or '-' (it is a host name label)"
            ),
        })
    }
}

fn device_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<Device> {
    Ok(Device {
        id: row.get(0)?,
        account: row.get(1)?,
        agent_key: row.get(2)?,
        hostname: row.get(3)?,
        active: row.get(4)?,
        first_seen_ms: row.get(5)?,
        last_seen_ms: row.get(6)?,
    })
}

const DEVICE_COLUMNS: &str =
    "id, account, agent_key, hostname, active, first_seen_ms, last_seen_ms";

impl SqliteStore {
    /// Opens (creating if needed) the database at `path` and runs pending migrations.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        Self::init(Connection::open(path)?)
    }

    /// Opens `sqlite://PATH` (or `sqlite::memory:`).
    pub fn open_url(url: &str) -> Result<Self, StoreError> {
        match url.strip_prefix("sqlite://") {
            Some(path) => Self::open(Path::new(path)),
            None if url == "sqlite::memory:" => Self::in_memory(),
            None => Err(StoreError::Invalid {
                field: "db.url",
                message: format!("\"{url}\" is not sqlite://PATH"),
            }),
        }
    }

    /// A private in-memory database (tests).
    pub fn in_memory() -> Result<Self, StoreError> {
        Self::init(Connection::open_in_memory()?)
    }

    fn init(mut conn: Connection) -> Result<Self, StoreError> {
        conn.pragma_update(None, "journal_mode", "WAL")?;
        // Durable against a killed process (the WAL survives); a power cut may lose the
        // last commits, as with every WAL database in NORMAL mode.
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        let done: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
        for (i, sql) in MIGRATIONS.iter().enumerate().skip(done.max(0) as usize) {
            let tx = conn.transaction()?;
            tx.execute_batch(sql)?;
            tx.pragma_update(None, "user_version", i as i64 + 1)?;
            tx.commit()?;
            tracing::info!(migration = i + 1, "database migrated");
        }
        Ok(SqliteStore {
            conn: Mutex::new(conn),
        })
    }

    pub(crate) fn conn(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(|e| e.into_inner())
    }
}

pub(crate) fn bump(conn: &Connection) -> Result<(), StoreError> {
    conn.execute("UPDATE admin_changes SET version = version + 1", [])?;
    Ok(())
}

fn get_account(conn: &Connection, name: &str) -> Result<Option<Account>, StoreError> {
    Ok(conn
        .prepare_cached("SELECT name, device_quota, active FROM accounts WHERE name = ?1")?
        .query_row(params![name], |r| {
            Ok(Account {
                name: r.get(0)?,
                device_quota: r.get(1)?,
                active: r.get(2)?,
            })
        })
        .optional()?)
}

impl AccountStore for SqliteStore {
    fn create_account(&self, account: &Account) -> Result<Account, StoreError> {
        valid_name(&account.name)?;
        let conn = self.conn();
        let inserted = conn.execute(
            "INSERT OR IGNORE INTO accounts (name, device_quota, active) VALUES (?1, ?2, ?3)",
            params![account.name, account.device_quota, account.active],
        )?;
        if inserted == 0 {
            return Err(StoreError::AccountExists(account.name.clone()));
        }
        bump(&conn)?;
        Ok(account.clone())
    }

    fn update_account(&self, name: &str, patch: &AccountPatch) -> Result<Account, StoreError> {
        let conn = self.conn();
        let mut account =
            get_account(&conn, name)?.ok_or_else(|| StoreError::NoAccount(name.into()))?;
        if let Some(q) = patch.device_quota {
            account.device_quota = q;
        }
        if let Some(a) = patch.active {
            account.active = a;
        }
        conn.execute(
            "UPDATE accounts SET device_quota = ?2, active = ?3 WHERE name = ?1",
            params![account.name, account.device_quota, account.active],
        )?;
        bump(&conn)?;
        Ok(account)
    }

    fn account(&self, name: &str) -> Result<Option<Account>, StoreError> {
        get_account(&self.conn(), name)
    }

    fn issue_agent_key(&self, account: &str, key: Option<&str>) -> Result<String, StoreError> {
        let key = match key {
            Some(k) => {
                let k = k.trim();
                if k.is_empty()
                    || k.len() > 128
                    || !k.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                {
                    return Err(StoreError::Invalid {
                        field: "agentKey",
                        message: "must be 1-128 letters, digits or '-'".into(),
                    });
                }
                k.to_string()
            }
            None => {
                let mut bytes = [0u8; 16];
                rand::thread_rng().fill_bytes(&mut bytes);
                bytes.iter().map(|b| format!("{b:02x}")).collect()
            }
        };
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        if get_account(&tx, account)?.is_none() {
            return Err(StoreError::NoAccount(account.into()));
        }
        let owner: Option<String> = tx
            .query_row(
                "SELECT account FROM agent_keys WHERE key = ?1",
                params![key],
                |r| r.get(0),
            )
            .optional()?;
        match owner {
            Some(o) if o == account => {}
            Some(_) => return Err(StoreError::KeyTaken { key }),
            None => {
                tx.execute(
                    "INSERT INTO agent_keys (key, account) VALUES (?1, ?2)",
                    params![key, account],
                )?;
            }
        }
        tx.commit()?;
        Ok(key)
    }

    fn key_account(&self, key: &str) -> Result<Option<String>, StoreError> {
        Ok(self
            .conn()
            .prepare_cached("SELECT account FROM agent_keys WHERE key = ?1")?
            .query_row(params![key], |r| r.get(0))
            .optional()?)
    }

    fn devices(&self, account: &str) -> Result<Vec<Device>, StoreError> {
        let conn = self.conn();
        if get_account(&conn, account)?.is_none() {
            return Err(StoreError::NoAccount(account.into()));
        }
        let mut stmt = conn.prepare(&format!(
            "SELECT {DEVICE_COLUMNS} FROM devices WHERE account = ?1 ORDER BY id"
        ))?;
        let devices = stmt
            .query_map(params![account], device_from_row)?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(devices)
    }

    fn set_device_active(&self, id: i64, active: bool) -> Result<Device, StoreError> {
        let conn = self.conn();
        let n = conn.execute(
            "UPDATE devices SET active = ?2 WHERE id = ?1",
            params![id, active],
        )?;
        if n == 0 {
            return Err(StoreError::NoDevice(id));
        }
        bump(&conn)?;
        Ok(conn.query_row(
            &format!("SELECT {DEVICE_COLUMNS} FROM devices WHERE id = ?1"),
            params![id],
            device_from_row,
        )?)
    }

    fn create_config(&self, config: &AlertConfig) -> Result<StoredConfig, StoreError> {
        let conn = self.conn();
        let stored = configs::create(&conn, config)?;
        bump(&conn)?;
        Ok(stored)
    }

    fn config(&self, id: i64) -> Result<Option<StoredConfig>, StoreError> {
        configs::get(&self.conn(), id)
    }

    fn configs(&self, account: Option<&str>) -> Result<Vec<StoredConfig>, StoreError> {
        configs::list(&self.conn(), account)
    }

    fn replace_config(&self, id: i64, config: &AlertConfig) -> Result<bool, StoreError> {
        let conn = self.conn();
        let done = configs::replace(&conn, id, config)?;
        bump(&conn)?;
        Ok(done)
    }

    fn delete_config(&self, id: i64) -> Result<bool, StoreError> {
        let conn = self.conn();
        let done = configs::delete(&conn, id)?;
        bump(&conn)?;
        Ok(done)
    }

    fn admin_version(&self) -> Result<i64, StoreError> {
        Ok(self
            .conn()
            .query_row("SELECT version FROM admin_changes", [], |r| r.get(0))?)
    }

    fn register_devices(&self, batch: &[Sighting<'_>]) -> Result<Vec<Registration>, StoreError> {
        let mut conn = self.conn();
        // Immediate: the quota checks and the inserts hold the write lock together.
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        // Devices in use per account, counted once per batch.
        let mut used: HashMap<&str, (u32, u32)> = HashMap::new();
        let mut out = Vec::with_capacity(batch.len());
        {
            let mut find = tx.prepare_cached(&format!(
                "SELECT {DEVICE_COLUMNS} FROM devices WHERE account = ?1 AND agent_key = ?2 AND hostname = ?3"
            ))?;
            let mut seen = tx.prepare_cached(
                "UPDATE devices SET last_seen_ms = max(last_seen_ms, ?2) WHERE id = ?1",
            )?;
            let mut insert = tx.prepare_cached(
                "INSERT INTO devices (account, agent_key, hostname, active, first_seen_ms, last_seen_ms)
                 VALUES (?1, ?2, ?3, 1, ?4, ?4)",
            )?;
            for s in batch {
                let known = find
                    .query_row(params![s.account, s.agent_key, s.hostname], device_from_row)
                    .optional()?;
                if let Some(mut device) = known {
                    seen.execute(params![device.id, s.now_ms])?;
                    device.last_seen_ms = device.last_seen_ms.max(s.now_ms);
                    out.push(Registration::Known(device));
                    continue;
                }
                let (quota, in_use) = match used.entry(s.account) {
                    std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
                    std::collections::hash_map::Entry::Vacant(e) => {
                        let quota = match get_account(&tx, s.account)? {
                            Some(a) => a.device_quota,
                            None => return Err(StoreError::NoAccount(s.account.into())),
                        };
                        let n: u32 = tx.query_row(
                            "SELECT COUNT(*) FROM devices WHERE account = ?1 AND active = 1",
                            params![s.account],
                            |r| r.get(0),
                        )?;
                        e.insert((quota, n))
                    }
                };
                if *in_use >= *quota {
                    out.push(Registration::QuotaExceeded);
                    continue;
                }
                insert.execute(params![s.account, s.agent_key, s.hostname, s.now_ms])?;
                *in_use += 1;
                out.push(Registration::Registered(Device {
                    id: tx.last_insert_rowid(),
                    account: s.account.into(),
                    agent_key: s.agent_key.into(),
                    hostname: s.hostname.into(),
                    active: true,
                    first_seen_ms: s.now_ms,
                    last_seen_ms: s.now_ms,
                }));
            }
        }
        tx.commit()?;
        Ok(out)
    }

    fn touch_devices(&self, seen: &[(i64, i64)]) -> Result<(), StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        {
            let mut update = tx.prepare_cached(
                "UPDATE devices SET last_seen_ms = max(last_seen_ms, ?2) WHERE id = ?1",
            )?;
            for (id, ms) in seen {
                update.execute(params![id, ms])?;
            }
        }
        tx.commit()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn acme(store: &SqliteStore, quota: u32) -> String {
        store
            .create_account(&Account {
                name: "acme".into(),
                device_quota: quota,
                active: true,
            })
            .unwrap();
        store.issue_agent_key("acme", None).unwrap()
    }

    #[test]
    fn a_batch_registers_in_order_and_fills_the_quota_once() {
        let store = SqliteStore::in_memory().unwrap();
        let key = acme(&store, 2);
        let at = |hostname, now_ms| Sighting {
            account: "acme",
            agent_key: &key,
            hostname,
            now_ms,
        };
        let got = store
            .register_devices(&[at("a", 1), at("b", 2), at("a", 3), at("c", 4)])
            .unwrap();
        assert!(matches!(&got[0], Registration::Registered(d) if d.hostname == "a"));
        assert!(matches!(&got[1], Registration::Registered(d) if d.hostname == "b"));
        assert!(
            matches!(&got[2], Registration::Known(d) if d.hostname == "a" && d.last_seen_ms == 3)
        );
        assert_eq!(
            got[3],
            Registration::QuotaExceeded,
            "the batch filled the quota"
        );
        let a = store
            .devices("acme")
            .unwrap()
            .into_iter()
            .find(|d| d.hostname == "a")
            .unwrap();
        store.touch_devices(&[(a.id, 100), (a.id, 50)]).unwrap();
        let a = store
            .devices("acme")
            .unwrap()
            .into_iter()
            .find(|d| d.hostname == "a")
            .unwrap();
        assert_eq!(a.last_seen_ms, 100, "last_seen only moves forward");
    }

    #[test]
    fn accounts_keys_and_devices() {
        let store = SqliteStore::in_memory().unwrap();
        let key = acme(&store, 2);
        assert_eq!(key.len(), 32);
        assert_eq!(store.key_account(&key).unwrap().as_deref(), Some("acme"));
        assert!(matches!(
            store.create_account(&Account {
                name: "acme".into(),
                device_quota: 1,
                active: true
            }),
            Err(StoreError::AccountExists(_))
        ));
        assert!(matches!(
            store.create_account(&Account {
                name: "Bad Name".into(),
                device_quota: 1,
                active: true
            }),
            Err(StoreError::Invalid { field: "name", .. })
        ));
        assert_eq!(
            store.issue_agent_key("acme", Some("imported-key")).unwrap(),
            "imported-key"
        );
        store
            .create_account(&Account {
                name: "globex".into(),
                device_quota: 1,
                active: true,
            })
            .unwrap();
        assert!(matches!(
            store.issue_agent_key("globex", Some("imported-key")),
            Err(StoreError::KeyTaken { .. })
        ));

        let Registration::Registered(d) =
            store.register_device("acme", &key, "web-01", 10).unwrap()
        else {
            panic!("registered")
        };
        let Registration::Known(again) = store.register_device("acme", &key, "web-01", 20).unwrap()
        else {
            panic!("known")
        };
        assert_eq!(
            (again.id, again.first_seen_ms, again.last_seen_ms),
            (d.id, 10, 20)
        );
        assert!(matches!(
            store.register_device("acme", &key, "web-02", 30).unwrap(),
            Registration::Registered(_)
        ));
        assert_eq!(
            store.register_device("acme", &key, "web-03", 40).unwrap(),
            Registration::QuotaExceeded
        );
        // Deactivating a device frees its quota.
        assert!(!store.set_device_active(d.id, false).unwrap().active);
        assert!(matches!(
            store.register_device("acme", &key, "web-03", 50).unwrap(),
            Registration::Registered(_)
        ));
        assert_eq!(store.devices("acme").unwrap().len(), 3);
        let patched = store
            .update_account(
                "acme",
                &AccountPatch {
                    device_quota: Some(10),
                    active: Some(false),
                },
            )
            .unwrap();
        assert_eq!((patched.device_quota, patched.active), (10, false));
        let before = store.admin_version().unwrap();
        store.register_device("acme", &key, "web-04", 60).unwrap();
        assert_eq!(
            store.admin_version().unwrap(),
            before,
            "the pipeline's registrations are not admin changes"
        );
        store.set_device_active(d.id, true).unwrap();
        assert_eq!(store.admin_version().unwrap(), before + 1);
    }

    #[test]
    fn a_concurrent_burst_of_new_devices_never_exceeds_the_quota() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(SqliteStore::open(&dir.path().join("accounts.db")).unwrap());
        let key = acme(&store, 5);
        let handles: Vec<_> = (0..16)
            .map(|i| {
                let (store, key) = (store.clone(), key.clone());
                std::thread::spawn(move || {
                    store
                        .register_device("acme", &key, &format!("host-{i}"), i)
                        .unwrap()
                })
            })
            .collect();
        let results: Vec<Registration> = handles.into_iter().map(|h| h.join().unwrap()).collect();
        let registered = results
            .iter()
            .filter(|r| matches!(r, Registration::Registered(_)))
            .count();
        assert_eq!(registered, 5);
        assert_eq!(
            results
                .iter()
                .filter(|r| **r == Registration::QuotaExceeded)
                .count(),
            11
        );
        assert_eq!(store.devices("acme").unwrap().len(), 5);
    }

    #[test]
    fn migrations_run_once_and_data_survives_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("accounts.db");
        let key = acme(&SqliteStore::open(&path).unwrap(), 3);
        let store = SqliteStore::open_url(&format!("sqlite://{}", path.display())).unwrap();
        assert_eq!(store.key_account(&key).unwrap().as_deref(), Some("acme"));
        assert!(matches!(
            SqliteStore::open_url("postgres://x"),
            Err(StoreError::Invalid {
                field: "db.url",
                ..
            })
        ));
    }
}

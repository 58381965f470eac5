//! Storage: the traits every backend implements, the values they store, and
//! [`StoreError`], which says whether a failure is transient or permanent.
//!
//! - [`AccountStore`]: accounts, agent keys, devices (with the quota), alert configs, and
//!   an admin version that changes with every admin change (caches compare it).
//! - [`AlertStateStore`]: each device's rule state (an opaque blob the engine encodes),
//!   and the alerts that fired; both written in one transaction per batch
//!   ([`AlertStateStore::commit`]), so state and alert rows never disagree.
//! - [`DeliveryLog`]: the final outcome of every notification (the first one recorded
//!   wins, so a notification id is delivered once).
//! - [`MetricStore`]: minute snapshots (idempotent under replay: a minute keeps the point
//!   with the latest event time), hourly aggregates computed from them, and each device's
//!   latest values.
//!
//! Every call may block on I/O: callers on an async runtime run them on a dedicated thread
//! (the `offload` helper of `squall-topology`) or `spawn_blocking`. [`MemoryStore`] is the
//! in-memory implementation that docs, tests and benches use; `squall-store-sqlite` is the
//! embedded default. `conformance` (feature `conformance`) is the one test suite every
//! backend passes.

#[cfg(any(test, feature = "conformance"))]
pub mod conformance;
mod memory;

pub use crate::error::StoreError;
pub use memory::MemoryStore;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::accounts::{Account, AccountPatch, Device, Registration, Sighting};
use crate::configs::{AlertConfig, StoredConfig};
use crate::fixtures::{Fixtures, ImportReport};
use crate::ids::{ConfigId, DeviceId};
use crate::payload::MetricPoint;
use crate::policy::silence::{Silence, StoredSilence};

/// Accounts, agent keys, devices, and the accounts' alert configs.
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
    /// Activates or deactivates a device; activating one that is inactive counts against
    /// its account's quota ([`StoreError::QuotaExceeded`] when none is left).
    fn set_device_active(&self, id: DeviceId, active: bool) -> Result<Device, StoreError>;
    /// Stores a new alert config (its account must exist).
    fn create_config(&self, config: &AlertConfig) -> Result<StoredConfig, StoreError>;
    /// The alert config `id`.
    fn config(&self, id: ConfigId) -> Result<Option<StoredConfig>, StoreError>;
    /// Every alert config, or those of `account`.
    fn configs(&self, account: Option<&str>) -> Result<Vec<StoredConfig>, StoreError>;
    /// Replaces alert config `id` (the config's account must exist); `false` if there is
    /// none.
    fn replace_config(&self, id: ConfigId, config: &AlertConfig) -> Result<bool, StoreError>;
    /// Deletes alert config `id`; `false` if there is none.
    fn delete_config(&self, id: ConfigId) -> Result<bool, StoreError>;
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
    fn touch_devices(&self, seen: &[(DeviceId, i64)]) -> Result<(), StoreError>;
    /// Loads a fixtures file in one transaction (see [`crate::fixtures`]): existing
    /// accounts take the file's quota and active flag, keys already issued to the account
    /// and configs identical to a stored one are left alone.
    fn import(&self, fixtures: &Fixtures) -> Result<ImportReport, StoreError>;
}

/// The durable alert state: what the engine needs to resume after a crash, and the alerts
/// that fired.
///
/// **Ownership** (several processes): a device's state belongs to the input partition its
/// payloads arrive on. The process that is assigned a partition claims it
/// ([`AlertStateStore::claim_partition`]: a new epoch, later than every earlier claim)
/// and writes its devices' states under that epoch; a commit carrying an epoch that is no
/// longer the partition's latest is refused as a whole ([`StoreError::Fenced`]), so an
/// owner that lost a partition without knowing it (a long pause, a network cut) never
/// overwrites what the new owner wrote.
pub trait AlertStateStore: Send + Sync {
    /// The persisted state blob of `device`.
    fn device_state(&self, device: DeviceId) -> Result<Option<Vec<u8>>, StoreError>;
    /// Every persisted (device, account, state blob) for which `keep(device)` holds; of
    /// partition `partition` only, if given.
    fn device_states(
        &self,
        partition: Option<i32>,
        keep: &dyn Fn(DeviceId) -> bool,
    ) -> Result<Vec<(DeviceId, String, Vec<u8>)>, StoreError>;
    /// Claims `partition` for the caller: returns a new epoch, greater than any earlier
    /// claim's, after which commits under older epochs of the partition are refused.
    fn claim_partition(&self, partition: i32) -> Result<i64, StoreError>;
    /// Writes device states and alert changes in one transaction: all of them or none.
    /// Every fence must hold (its epoch is still the partition's latest), else nothing is
    /// written and the error is [`StoreError::Fenced`] naming the first that does not.
    fn commit(
        &self,
        fences: &[Fence],
        states: &[StateRow<'_>],
        changes: &[AlertChange],
    ) -> Result<(), StoreError>;
    /// Open (`closed = false`) or closed alerts, newest first (at most 1,000), optionally
    /// of one account.
    fn triggered(
        &self,
        closed: bool,
        account: Option<&str>,
    ) -> Result<Vec<TriggeredAlert>, StoreError>;
}

/// A partition's claim a commit is made under (see [`AlertStateStore`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Fence {
    /// The partition.
    pub partition: i32,
    /// The epoch its owner claimed.
    pub epoch: i64,
}

/// One device's state as [`AlertStateStore::commit`] writes it.
#[derive(Clone, Debug, PartialEq)]
pub struct StateRow<'a> {
    /// The device.
    pub device: DeviceId,
    /// Its account.
    pub account: &'a str,
    /// The input partition its payloads arrive on (`None`: not partitioned).
    pub partition: Option<i32>,
    /// The engine's encoded state.
    pub blob: Vec<u8>,
}

/// The outcome of every notification delivery, and who is delivering what.
///
/// Several processes may read the same notification (a rebalance hands it to another
/// consumer while the first is still sending it): a sender claims the id first
/// ([`DeliveryLog::claim_delivery`]), for a lease it renews while it works, so two live
/// processes never both send it; the claim of a dead process runs out and is taken over.
pub trait DeliveryLog: Send + Sync {
    /// The recorded outcome of notification `id`.
    fn delivery(&self, id: &str) -> Result<Option<Delivery>, StoreError>;
    /// Every recorded delivery, oldest first.
    fn deliveries(&self) -> Result<Vec<Delivery>, StoreError>;
    /// Records the final outcome of a delivery (the first one recorded wins) and ends
    /// its claim.
    fn record_delivery(&self, delivery: &Delivery) -> Result<(), StoreError>;
    /// Claims notification `id` for `owner` until `until_ms` (epoch ms), or extends the
    /// claim `owner` holds: [`Claim::Mine`]. [`Claim::Done`] if an outcome is recorded;
    /// [`Claim::Held`] while another owner's claim runs (until it is past `now_ms`).
    fn claim_delivery(
        &self,
        id: &str,
        owner: &str,
        now_ms: i64,
        until_ms: i64,
    ) -> Result<Claim, StoreError>;
}

/// The answer to [`DeliveryLog::claim_delivery`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Claim {
    /// The caller holds the id: send it.
    Mine,
    /// Its outcome is recorded: never send it again.
    Done,
    /// Another owner holds it until `until_ms`: wait.
    Held {
        /// Who.
        owner: String,
        /// Until when (epoch ms).
        until_ms: i64,
    },
}

/// Silences and the state of notification groups ([`crate::policy`]).
///
/// Silences are admin objects: creating or expiring one bumps the admin version, so the
/// caches of every process reload them. Groups belong to the partition of the
/// notifications topic their key hashes to, claimed like the alert state's partitions
/// ([`PolicyStore::claim_group_partition`]: a new epoch; commits under an older one are
/// refused as a whole with [`StoreError::Fenced`]).
pub trait PolicyStore: Send + Sync {
    /// Stores a checked silence, created at `now`; returns it with its id.
    fn create_silence(
        &self,
        silence: &Silence,
        now: jiff::Timestamp,
    ) -> Result<StoredSilence, StoreError>;
    /// Every silence (active, pending and expired), of one account if given, newest first.
    fn silences(&self, account: Option<&str>) -> Result<Vec<StoredSilence>, StoreError>;
    /// Expires silence `id` at `now` (it ends then, if it ended later); the silence as it
    /// is now, or `None` if there is none with that id.
    fn expire_silence(
        &self,
        id: i64,
        now: jiff::Timestamp,
    ) -> Result<Option<StoredSilence>, StoreError>;
    /// Claims partition `partition` of the notification groups: a new epoch.
    fn claim_group_partition(&self, partition: i32) -> Result<i64, StoreError>;
    /// Every stored group (key, state blob), of one partition if given.
    fn groups(&self, partition: Option<i32>) -> Result<Vec<(String, Vec<u8>)>, StoreError>;
    /// Writes group states (a row without a blob deletes its group) and the outcomes of
    /// the notifications the groups took in ([`DeliveryLog::record_delivery`]: the first
    /// recorded wins) in one transaction, if every fence holds.
    fn commit_groups(
        &self,
        fences: &[Fence],
        groups: &[GroupRow],
        records: &[Delivery],
    ) -> Result<(), StoreError>;
}

/// One group's state as [`PolicyStore::commit_groups`] writes it.
#[derive(Clone, Debug, PartialEq)]
pub struct GroupRow {
    /// The group key.
    pub key: String,
    /// The notifications partition it belongs to (`None`: not partitioned).
    pub partition: Option<i32>,
    /// Its encoded state; `None` deletes it.
    pub blob: Option<Vec<u8>>,
}

/// Metric storage: minute snapshots (kept for a retention window), hourly aggregates
/// (kept for good) and each device's latest values.
///
/// Writes are idempotent under replay: a minute keeps the payload with the latest event
/// time, so the newest minute only moves forward, and aggregates are computed from the
/// minutes, never incremented.
pub trait MetricStore: Send + Sync {
    /// Writes the points of several payloads `(device, event time, points)` in one
    /// transaction.
    fn write(&self, batch: &[(DeviceId, f64, &[MetricPoint])]) -> Result<(), StoreError>;
    /// Rolls up at most `limit` changed hours that ended before `now` (epoch seconds) into
    /// their aggregates, the oldest hours first. Returns how many were rolled up: fewer
    /// than `limit` means none is left. Bounded so the caller interleaves it with writes
    /// (at the top of an hour every device's last hour changed); processes sharing a
    /// database may roll up at the same time, each taking hours the others do not hold.
    fn roll_up(&self, now: f64, limit: usize) -> Result<usize, StoreError>;
    /// The latest values of `device`: (event time, `{metric{series}: value}`).
    fn latest(&self, device: DeviceId) -> Result<Option<(f64, serde_json::Value)>, StoreError>;
    /// Minute snapshots or hourly aggregates of `metric` (optionally one series) of
    /// `device` between `from` and `to` (epoch seconds, inclusive), ordered by series and
    /// time.
    fn query(
        &self,
        device: DeviceId,
        metric: &str,
        series: Option<&str>,
        from: i64,
        to: i64,
        hourly: bool,
    ) -> Result<Vec<StoredPoint>, StoreError>;
    /// Rolls up the hours that have ended, then deletes minute snapshots older than
    /// `days` before `now` (epoch seconds), except each device's latest; hourly
    /// aggregates stay. Returns how many minute snapshots were deleted.
    fn retain(&self, now: f64, days: u32) -> Result<usize, StoreError>;
}

/// An alert as `GET /api/v1/alerts/triggered` lists it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TriggeredAlert {
    /// Row id.
    pub id: i64,
    /// The alert config.
    pub config_id: ConfigId,
    /// The account.
    pub account: String,
    /// The device id.
    pub device: DeviceId,
    /// The device's host name.
    pub hostname: String,
    /// The metric (`None` for no-data alerts).
    pub metric: Option<String>,
    /// The series labels.
    pub series: BTreeMap<String, String>,
    /// Event time it fired (epoch seconds).
    pub fired_at: f64,
    /// Event time it cleared; `None` while open.
    pub closed_at: Option<f64>,
    /// The last value evaluated.
    pub last_value: Option<f64>,
}

/// A change to the alerts table, written with the state in [`AlertStateStore::commit`].
#[derive(Clone, Debug, PartialEq)]
pub enum AlertChange {
    /// An alert opened.
    Open(TriggeredAlert),
    /// The open alert of (config, device, series) has a new last value.
    Value {
        /// Config id.
        config_id: ConfigId,
        /// Device id.
        device: DeviceId,
        /// Series key.
        series: String,
        /// The value.
        value: f64,
    },
    /// The open alert of (config, device, series) closed.
    Close {
        /// Config id.
        config_id: ConfigId,
        /// Device id.
        device: DeviceId,
        /// Series key.
        series: String,
        /// When (event time).
        at: f64,
        /// The value that cleared it, if any.
        value: Option<f64>,
    },
}

/// The final outcome of a notification delivery.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryStatus {
    /// The receiver answered 2xx.
    Delivered,
    /// The receiver refused it for good (a 4xx other than 429).
    Failed,
    /// Not sent: older than `max_age_s` (before or while retrying).
    Archived,
    /// Not sent on its own: it went out in its group's notification (the reason names
    /// the group).
    Grouped,
    /// Not sent: a silence covered it (the reason names the silence).
    Silenced,
    /// Not sent: the alert was flapping.
    Flapping,
}

impl DeliveryStatus {
    /// The name stored and shown: `delivered`, `failed`, `archived`, `grouped`,
    /// `silenced` or `flapping`.
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryStatus::Delivered => "delivered",
            DeliveryStatus::Failed => "failed",
            DeliveryStatus::Archived => "archived",
            DeliveryStatus::Grouped => "grouped",
            DeliveryStatus::Silenced => "silenced",
            DeliveryStatus::Flapping => "flapping",
        }
    }

    /// The status named `s`.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "delivered" => DeliveryStatus::Delivered,
            "failed" => DeliveryStatus::Failed,
            "archived" => DeliveryStatus::Archived,
            "grouped" => DeliveryStatus::Grouped,
            "silenced" => DeliveryStatus::Silenced,
            "flapping" => DeliveryStatus::Flapping,
            _ => return None,
        })
    }
}

/// A recorded delivery.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Delivery {
    /// The notification id.
    pub id: String,
    /// The outcome.
    pub status: DeliveryStatus,
    /// HTTP requests made.
    pub attempts: u32,
    /// The last HTTP status, if any answered.
    pub code: Option<u16>,
    /// Why (error text, or "ok").
    pub reason: String,
    /// When it was recorded (epoch ms).
    pub at_ms: i64,
}

/// One stored value.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct StoredPoint {
    /// Metric name.
    pub metric: String,
    /// Series labels as `k=v,...`.
    pub series: String,
    /// Start of the minute or hour, epoch seconds.
    pub time: i64,
    /// The value (minutes), or the last value of the hour.
    pub value: f64,
    /// Hourly aggregates (absent for minutes).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hour: Option<HourAggregate>,
}

/// An hour's aggregate of its minute snapshots.
#[derive(Clone, Debug, PartialEq, Serialize, serde::Deserialize)]
pub struct HourAggregate {
    /// Minutes with a value.
    pub count: i64,
    /// Their sum.
    pub sum: f64,
    /// Smallest.
    pub min: f64,
    /// Largest.
    pub max: f64,
    /// Of the latest minute.
    pub last: f64,
}

impl HourAggregate {
    /// An hour of one value.
    pub fn first(value: f64) -> Self {
        HourAggregate {
            count: 1,
            sum: value,
            min: value,
            max: value,
            last: value,
        }
    }

    /// Adds the next minute's value.
    pub fn add(&mut self, value: f64) {
        self.count += 1;
        self.sum += value;
        self.min = self.min.min(value);
        self.max = self.max.max(value);
        self.last = value;
    }
}

/// Series labels as one canonical key: `k=v` pairs sorted by key, joined by `,`.
pub fn series_key<K: AsRef<str>, V: AsRef<str>>(
    labels: impl IntoIterator<Item = (K, V)>,
) -> String {
    let mut s = String::new();
    for (k, v) in labels {
        if !s.is_empty() {
            s.push(',');
        }
        s.push_str(k.as_ref());
        s.push('=');
        s.push_str(v.as_ref());
    }
    s
}

/// The labels of a series key made by [`series_key`].
pub fn series_labels(key: &str) -> BTreeMap<String, String> {
    key.split(',')
        .filter(|p| !p.is_empty())
        .filter_map(|p| p.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Writes `metric\0series` of `p` into `key` (cleared first): how the backends name a
/// series when they give it an id.
pub fn series_id_key(p: &MetricPoint, key: &mut String) {
    key.clear();
    key.push_str(&p.name);
    key.push('\0');
    for (i, (k, v)) in p.labels.iter().enumerate() {
        if i > 0 {
            key.push(',');
        }
        key.push_str(k);
        key.push('=');
        key.push_str(v);
    }
}

/// `metric` or `metric{series}`: the keys of [`MetricStore::latest`].
pub fn latest_key(metric: &str, series: &str) -> String {
    if series.is_empty() {
        metric.to_string()
    } else {
        format!("{metric}{{{series}}}")
    }
}

/// A minute's points as backends store them: (metric, series, value).
pub type MinutePoints = Vec<(String, String, f64)>;
/// An hour's aggregates as backends store them: (metric, series, aggregate), sorted.
pub type HourRows = Vec<(String, String, HourAggregate)>;

/// The aggregates of an hour per (metric, series), from its minutes' points in minute
/// order: every backend computes hours this way.
pub fn aggregate_hour<'a>(
    minutes: impl IntoIterator<Item = &'a [(String, String, f64)]>,
) -> HourRows {
    let mut out: BTreeMap<(String, String), HourAggregate> = BTreeMap::new();
    for points in minutes {
        for (metric, series, value) in points {
            match out.get_mut(&(metric.clone(), series.clone())) {
                Some(a) => a.add(*value),
                None => {
                    out.insert(
                        (metric.clone(), series.clone()),
                        HourAggregate::first(*value),
                    );
                }
            }
        }
    }
    out.into_iter().map(|((m, s), a)| (m, s, a)).collect()
}

fn wanted(metric: &str, series: Option<&str>, m: &str, s: &str) -> bool {
    m == metric && series.is_none_or(|want| want == s)
}

fn by_series_and_time(mut points: Vec<StoredPoint>) -> Vec<StoredPoint> {
    points.sort_by(|a, b| a.series.cmp(&b.series).then(a.time.cmp(&b.time)));
    points
}

/// A [`MetricStore::query`] answer from minute rows `(epoch minute, points)`: the points of
/// `metric` (and `series`, if given), ordered by series and time.
pub fn minute_points(
    minutes: impl IntoIterator<Item = (i64, MinutePoints)>,
    metric: &str,
    series: Option<&str>,
) -> Vec<StoredPoint> {
    let mut out = Vec::new();
    for (minute, points) in minutes {
        for (m, s, value) in points {
            if wanted(metric, series, &m, &s) {
                out.push(StoredPoint {
                    metric: m,
                    series: s,
                    time: minute * 60,
                    value,
                    hour: None,
                });
            }
        }
    }
    by_series_and_time(out)
}

/// A [`MetricStore::query`] answer from hour rows `(epoch hour, aggregates)`: the
/// aggregates of `metric` (and `series`, if given), ordered by series and time.
pub fn hour_points(
    hours: impl IntoIterator<Item = (i64, HourRows)>,
    metric: &str,
    series: Option<&str>,
) -> Vec<StoredPoint> {
    let mut out = Vec::new();
    for (hour, rows) in hours {
        for (m, s, a) in rows {
            if wanted(metric, series, &m, &s) {
                out.push(StoredPoint {
                    metric: m,
                    series: s,
                    time: hour * 3600,
                    value: a.last,
                    hour: Some(a),
                });
            }
        }
    }
    by_series_and_time(out)
}

/// The whole minutes (epoch minutes) that start within `from..=to` (epoch seconds).
pub fn minutes_within(from: i64, to: i64) -> (i64, i64) {
    (
        from.div_euclid(60) + i64::from(from.rem_euclid(60) != 0),
        to.div_euclid(60),
    )
}

/// The hours (epoch hours) that start within `from..=to` (epoch seconds).
pub fn hours_within(from: i64, to: i64) -> (i64, i64) {
    (
        from.div_euclid(3600) + i64::from(from.rem_euclid(3600) != 0),
        to.div_euclid(3600),
    )
}

/// The epoch minute of event time `time` (epoch seconds).
pub fn minute_of(time: f64) -> i64 {
    (time / 60.0).floor() as i64
}

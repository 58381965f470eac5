//! The journal: squall's durable embedded broker. Topics of partitions on the local disk,
//! under one directory, owned by one process; the `kafka` spout, the `kafka` bolt and the
//! intake use it in place of a Kafka cluster when their `brokers` is `journal:DIR`
//! ([`JOURNAL_SCHEME`]), with the same delivery semantics (keyed records stay in one
//! partition, consumer groups commit positions, at-least-once).
//!
//! Layout: `DIR/LOCK` (locked by the process that has the journal open),
//! `DIR/topics/TOPIC/PARTITION/BASE.log` (segments; `BASE` is the byte position of the
//! segment's first record in its partition) and `DIR/groups/GROUP.json` (the positions
//! each consumer group committed).
//!
//! Invariants:
//! - **Durable before acknowledged, and before visible**: an append is reported done, and
//!   readers see the record, only after its segment was `fsync`ed. Appends that queue up
//!   while a sync runs share the next one (group commit), one writer thread for the journal.
//! - **Positions** are byte positions in the partition: increasing, with gaps. Reading
//!   from position P yields the first record that starts at or after P, so a committed
//!   "one past the last record done" resumes exactly after it.
//! - **Torn writes are cut off**: when a partition is opened, the records of its last
//!   segment are checked (length and CRC-32) and the file is cut at the first bad one;
//!   such records were never acknowledged. A failed write is cut off the same way at once.
//! - **Retention**: a segment is deleted only when every group that committed on its topic
//!   has committed past its end (never the segment being written). Topics no group reads
//!   (rejected, dead letters) keep everything.
//! - **Bounded backlog**: an append to a partition that groups read is refused while
//!   more than `max_backlog_bytes` of it lies past the slowest group's committed position,
//!   so a consumer that cannot make progress (its database locked for an hour) pushes back
//!   to the producers (the intake answers 503 and agents retry) instead of filling the
//!   disk.
//! - **One owner**: a second process opening the directory gets an error naming it; in one
//!   process, [`Journal::open`] returns the same journal for the same directory.

mod reader;
mod record;

pub use reader::Reader;
pub use record::StoredRecord;

use std::collections::{BTreeMap, HashMap};
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, RwLock, Weak};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, TrySendError};

/// `brokers = "journal:DIR"` names the journal in `DIR`.
pub const JOURNAL_SCHEME: &str = "journal:";

/// The journal directory a `brokers` setting names, if it names one.
pub fn journal_dir(brokers: &str) -> Option<&Path> {
    brokers.trim().strip_prefix(JOURNAL_SCHEME).map(Path::new)
}

/// Where an appended record landed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Position {
    /// Its partition.
    pub partition: i32,
    /// Its byte position in the partition.
    pub offset: u64,
}

/// Called once an append is durable (or failed, with why).
pub type AppendDone = Box<dyn FnOnce(Result<Position, String>) + Send>;

struct Append {
    partition: Arc<Partition>,
    record: StoredRecord,
    done: AppendDone,
}

/// One partition: its segments and where its durable records end.
pub(crate) struct Partition {
    topic: String,
    index: i32,
    dir: PathBuf,
    state: Mutex<PartState>,
}

pub(crate) struct PartState {
    /// Segment base -> file (read and written with positional I/O).
    pub(crate) segments: BTreeMap<u64, Arc<File>>,
    /// One past the last durable record.
    pub(crate) end: u64,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every critical section leaves the state consistent, so a poisoned lock is usable.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn segment_path(dir: &Path, base: u64) -> PathBuf {
    dir.join(format!("{base:020}.log"))
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

impl Partition {
    pub(crate) fn state(&self) -> MutexGuard<'_, PartState> {
        lock(&self.state)
    }

    /// Opens the partition in `dir`, cutting a torn tail off its last segment.
    fn open(topic: &str, index: i32, dir: PathBuf) -> io::Result<Partition> {
        std::fs::create_dir_all(&dir)?;
        let mut bases = Vec::new();
        for entry in std::fs::read_dir(&dir)? {
            let name = entry?.file_name();
            let name = name.to_string_lossy();
            if let Some(base) = name
                .strip_suffix(".log")
                .and_then(|b| b.parse::<u64>().ok())
            {
                bases.push(base);
            }
        }
        bases.sort_unstable();
        if bases.is_empty() {
            bases.push(0);
        }
        let mut segments = BTreeMap::new();
        let mut end = 0;
        let last = *bases.last().unwrap_or(&0);
        for base in bases {
            let path = segment_path(&dir, base);
            let file = OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(&path)?;
            if base == last {
                let len = file.metadata()?.len();
                let valid = record::valid_end(&file, len)?;
                if valid < len {
                    tracing::warn!(path = %path.display(), valid, len, "journal: cutting off a torn write");
                    file.set_len(valid)?;
                    file.sync_all()?;
                }
                end = base + valid;
            }
            segments.insert(base, Arc::new(file));
        }
        sync_dir(&dir)?;
        Ok(Partition {
            topic: topic.to_string(),
            index,
            dir,
            state: Mutex::new(PartState { segments, end }),
        })
    }
}

/// How the journal writes.
#[derive(Clone, Debug)]
pub struct JournalOptions {
    /// A new segment starts once the current one holds this many bytes.
    pub segment_bytes: u64,
    /// Appends waiting for the writer before [`Journal::append`] refuses more.
    pub queue: usize,
    /// Bytes a partition may hold past its slowest group's committed position before
    /// appends to it are refused.
    pub max_backlog_bytes: u64,
}

impl Default for JournalOptions {
    fn default() -> Self {
        JournalOptions {
            segment_bytes: 64 << 20,
            queue: 65_536,
            max_backlog_bytes: 1 << 30,
        }
    }
}

/// Topic -> partition -> committed position, of one group.
type GroupPositions = BTreeMap<String, BTreeMap<i32, u64>>;

struct Inner {
    dir: PathBuf,
    topics: RwLock<HashMap<String, Arc<[Arc<Partition>]>>>,
    /// Bumped after each written batch; readers wait on it.
    appended: (Mutex<u64>, Condvar),
    /// Group -> topic -> partition -> committed position.
    groups: Mutex<HashMap<String, GroupPositions>>,
    options: JournalOptions,
}

/// A journal directory, open for writing (see the module docs).
pub struct Journal {
    inner: Arc<Inner>,
    appends: Sender<Append>,
    round_robin: AtomicU64,
    _lock: File,
}

impl std::fmt::Debug for Journal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Journal")
            .field("dir", &self.inner.dir)
            .finish_non_exhaustive()
    }
}

static OPEN: Mutex<Vec<(PathBuf, Weak<Journal>)>> = Mutex::new(Vec::new());

/// A topic name the journal accepts: Kafka's rule (letters, digits, `.`, `_`, `-`; at
/// most 249 characters; not `.` or `..`).
fn valid_topic(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 249
        && name != "."
        && name != ".."
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

impl Journal {
    /// Opens (creating it if needed) the journal in `dir`, or returns the one this process
    /// already has open there.
    pub fn open(dir: &Path) -> io::Result<Arc<Journal>> {
        Self::open_with(dir, JournalOptions::default())
    }

    /// [`open`](Self::open) with `options` (used when this process does not have it open
    /// yet).
    pub fn open_with(dir: &Path, options: JournalOptions) -> io::Result<Arc<Journal>> {
        std::fs::create_dir_all(dir)?;
        let dir = dir.canonicalize()?;
        let mut open = lock(&OPEN);
        open.retain(|(_, w)| w.strong_count() > 0);
        if let Some(j) = open
            .iter()
            .find(|(d, _)| *d == dir)
            .and_then(|(_, w)| w.upgrade())
        {
            return Ok(j);
        }
        let lock_file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(dir.join("LOCK"))?;
        if lock_file.try_lock().is_err() {
            return Err(io::Error::new(
                io::ErrorKind::WouldBlock,
                format!(
                    "the journal in {} is in use by another process",
                    dir.display()
                ),
            ));
        }
        let mut topics = HashMap::new();
        let topics_dir = dir.join("topics");
        std::fs::create_dir_all(&topics_dir)?;
        for entry in std::fs::read_dir(&topics_dir)? {
            let entry = entry?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if !valid_topic(&name) {
                continue;
            }
            let mut parts = Vec::new();
            for p in 0.. {
                let pdir = entry.path().join(p.to_string());
                if !pdir.is_dir() {
                    break;
                }
                parts.push(Arc::new(Partition::open(&name, p, pdir)?));
            }
            if !parts.is_empty() {
                topics.insert(name, Arc::from(parts));
            }
        }
        let groups_dir = dir.join("groups");
        std::fs::create_dir_all(&groups_dir)?;
        let mut groups = HashMap::new();
        for entry in std::fs::read_dir(&groups_dir)? {
            let path = entry?.path();
            let Some(group) = path
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.strip_suffix(".json"))
            else {
                continue;
            };
            let text = std::fs::read_to_string(&path)?;
            let positions: GroupPositions = serde_json::from_str(&text).map_err(|e| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("{}: {e}", path.display()),
                )
            })?;
            groups.insert(group.to_string(), positions);
        }
        let inner = Arc::new(Inner {
            dir: dir.clone(),
            topics: RwLock::new(topics),
            appended: (Mutex::new(0), Condvar::new()),
            groups: Mutex::new(groups),
            options: options.clone(),
        });
        let (tx, rx) = crossbeam_channel::bounded(options.queue.max(1));
        let writer = inner.clone();
        std::thread::Builder::new()
            .name("journal-writer".into())
            .spawn(move || write_loop(&writer, &rx))?;
        let journal = Arc::new(Journal {
            inner,
            appends: tx,
            round_robin: AtomicU64::new(0),
            _lock: lock_file,
        });
        open.push((dir, Arc::downgrade(&journal)));
        Ok(journal)
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    /// Creates `topic` with `partitions` partitions if it does not exist (an existing
    /// topic keeps its partitions).
    pub fn ensure_topic(&self, topic: &str, partitions: i32) -> io::Result<()> {
        if !valid_topic(topic) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("invalid topic name {topic:?} (letters, digits, `.`, `_`, `-`)"),
            ));
        }
        let mut topics = self.inner.topics.write().unwrap_or_else(|e| e.into_inner());
        if topics.contains_key(topic) {
            return Ok(());
        }
        let tdir = self.inner.dir.join("topics").join(topic);
        let parts = (0..partitions.max(1))
            .map(|p| Partition::open(topic, p, tdir.join(p.to_string())).map(Arc::new))
            .collect::<io::Result<Vec<_>>>()?;
        sync_dir(&tdir)?;
        sync_dir(&self.inner.dir.join("topics"))?;
        topics.insert(topic.to_string(), Arc::from(parts));
        Ok(())
    }

    pub(crate) fn partitions_of(&self, topic: &str) -> Option<Arc<[Arc<Partition>]>> {
        self.inner
            .topics
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(topic)
            .cloned()
    }

    /// The number of partitions of `topic`, if it exists.
    pub fn partition_count(&self, topic: &str) -> Option<i32> {
        self.partitions_of(topic).map(|p| p.len() as i32)
    }

    /// The topics and their partition counts.
    pub fn topics(&self) -> Vec<(String, i32)> {
        let mut t: Vec<_> = self
            .inner
            .topics
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|(k, v)| (k.clone(), v.len() as i32))
            .collect();
        t.sort();
        t
    }

    /// Queues `record` for `topic` (partition: `partition`, else the CRC-32 of the key
    /// modulo the partition count, else round robin); `done` runs on the writer thread once
    /// it is durable or failed. Refused at once when the topic does not exist or the queue
    /// is full (`queue` appends waiting).
    pub fn append(
        &self,
        topic: &str,
        partition: Option<i32>,
        record: StoredRecord,
        done: AppendDone,
    ) -> Result<(), (String, AppendDone)> {
        let Some(parts) = self.partitions_of(topic) else {
            return Err((format!("unknown topic {topic}"), done));
        };
        let n = parts.len() as u64;
        let index = match (partition, &record.key) {
            (Some(p), _) if p >= 0 && (p as u64) < n => p as u64,
            (Some(p), _) => {
                return Err((format!("topic {topic} has no partition {p}"), done));
            }
            (None, Some(key)) => u64::from(crc32fast::hash(key)) % n,
            (None, None) => self.round_robin.fetch_add(1, Ordering::Relaxed) % n,
        };
        let part = &parts[index as usize];
        if let Some(committed) = self.slowest_group(topic, part.index) {
            let backlog = part.state().end.saturating_sub(committed);
            if backlog > self.inner.options.max_backlog_bytes {
                metrics::counter!("squall_journal_backlog_refusals_total", "topic" => topic.to_string())
                    .increment(1);
                return Err((
                    format!(
                        "{topic} partition {} holds {backlog} bytes its readers have not committed (max_backlog_bytes {}); try again later",
                        part.index, self.inner.options.max_backlog_bytes
                    ),
                    done,
                ));
            }
        }
        let append = Append {
            partition: parts[index as usize].clone(),
            record,
            done,
        };
        match self.appends.try_send(append) {
            Ok(()) => Ok(()),
            Err(TrySendError::Full(a)) => Err(("the journal's queue is full".into(), a.done)),
            Err(TrySendError::Disconnected(a)) => {
                Err(("the journal writer stopped".into(), a.done))
            }
        }
    }

    /// The smallest position committed on `topic`'s `partition` by the groups that read the
    /// topic (`None`: no group does).
    fn slowest_group(&self, topic: &str, partition: i32) -> Option<u64> {
        lock(&self.inner.groups)
            .values()
            .filter_map(|g| g.get(topic))
            .map(|t| t.get(&partition).copied().unwrap_or(0))
            .min()
    }

    /// A reader of `topic`'s `partition`, at its oldest record.
    pub fn reader(&self, topic: &str, partition: i32) -> io::Result<Reader> {
        let part = self
            .partitions_of(topic)
            .and_then(|p| p.get(usize::try_from(partition).ok()?).cloned())
            .ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::NotFound,
                    format!("no partition {partition} of topic {topic}"),
                )
            })?;
        Ok(Reader::new(part))
    }

    /// A counter bumped after every written batch (pass it to
    /// [`wait_appended`](Self::wait_appended)).
    pub fn appended(&self) -> u64 {
        *lock(&self.inner.appended.0)
    }

    /// Waits until a batch is written after `seen` was read from
    /// [`appended`](Self::appended), or `timeout`.
    pub fn wait_appended(&self, seen: u64, timeout: Duration) {
        let (m, cv) = &self.inner.appended;
        let guard = lock(m);
        if *guard != seen {
            return;
        }
        let _ = cv.wait_timeout_while(guard, timeout, |n| *n == seen);
    }

    /// The position `group` committed for `topic`'s `partition`.
    pub fn committed(&self, group: &str, topic: &str, partition: i32) -> Option<u64> {
        lock(&self.inner.groups)
            .get(group)?
            .get(topic)?
            .get(&partition)
            .copied()
    }

    /// Records `positions` (topic, partition, position) as committed by `group`, durably
    /// (the group's file is replaced atomically).
    pub fn commit(&self, group: &str, positions: &[(&str, i32, u64)]) -> io::Result<()> {
        if !valid_topic(group) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("invalid group name {group:?} (letters, digits, `.`, `_`, `-`)"),
            ));
        }
        let mut groups = lock(&self.inner.groups);
        let g = groups.entry(group.to_string()).or_default();
        for (topic, partition, position) in positions {
            g.entry((*topic).to_string())
                .or_default()
                .insert(*partition, *position);
        }
        let text = serde_json::to_string(g).map_err(io::Error::other)?;
        let dir = self.inner.dir.join("groups");
        let tmp = dir.join(format!(".{group}.json.tmp"));
        {
            use std::io::Write;
            let mut f = File::create(&tmp)?;
            f.write_all(text.as_bytes())?;
            f.sync_all()?;
        }
        std::fs::rename(&tmp, dir.join(format!("{group}.json")))?;
        sync_dir(&dir)
    }

    /// The oldest and one-past-the-newest positions of `topic`'s `partition`.
    pub fn bounds(&self, topic: &str, partition: i32) -> Option<(u64, u64)> {
        let parts = self.partitions_of(topic)?;
        let p = parts.get(usize::try_from(partition).ok()?)?;
        let s = p.state();
        Some((s.segments.keys().next().copied().unwrap_or(0), s.end))
    }
}

/// The writer thread: batches of appends, one `fsync` per touched partition per batch;
/// retention when idle.
fn write_loop(inner: &Inner, rx: &Receiver<Append>) {
    let mut next_retention = Instant::now() + Duration::from_secs(10);
    loop {
        let first = match rx.recv_timeout(Duration::from_secs(1)) {
            Ok(a) => a,
            Err(RecvTimeoutError::Timeout) => {
                if Instant::now() >= next_retention {
                    next_retention = Instant::now() + Duration::from_secs(10);
                    retention(inner);
                }
                continue;
            }
            Err(RecvTimeoutError::Disconnected) => return,
        };
        let mut batch = vec![first];
        while batch.len() < 4_096 {
            match rx.try_recv() {
                Ok(a) => batch.push(a),
                Err(_) => break,
            }
        }
        write_batch(inner, batch);
        if Instant::now() >= next_retention {
            next_retention = Instant::now() + Duration::from_secs(10);
            retention(inner);
        }
    }
}

type Pending = (Arc<Partition>, Vec<u8>, Vec<(u64, AppendDone)>);

fn write_batch(inner: &Inner, batch: Vec<Append>) {
    // Per partition, in arrival order: the bytes and who waits for which offset.
    let mut pending: Vec<Pending> = Vec::new();
    let mut failed: Vec<(AppendDone, String)> = Vec::new();
    for a in batch {
        let i = match pending
            .iter()
            .position(|(p, _, _)| Arc::ptr_eq(p, &a.partition))
        {
            Some(i) => i,
            None => {
                pending.push((a.partition.clone(), Vec::new(), Vec::new()));
                pending.len() - 1
            }
        };
        let (_, buf, waiting) = &mut pending[i];
        let at = buf.len() as u64;
        match a.record.encode(buf) {
            Ok(()) => waiting.push((at, a.done)),
            Err(e) => failed.push((a.done, e)),
        }
    }
    let mut results: Vec<(AppendDone, Result<Position, String>)> = Vec::new();
    for (part, buf, waiting) in pending {
        match write_partition(inner, &part, &buf) {
            Ok(start) => {
                for (at, done) in waiting {
                    results.push((
                        done,
                        Ok(Position {
                            partition: part.index,
                            offset: start + at,
                        }),
                    ));
                }
            }
            Err(e) => {
                metrics::counter!("squall_journal_write_errors_total").increment(1);
                tracing::error!(topic = %part.topic, partition = part.index, error = %e, "journal write failed");
                let msg = format!("writing the journal ({}): {e}", part.dir.display());
                for (_, done) in waiting {
                    results.push((done, Err(msg.clone())));
                }
            }
        }
    }
    {
        let (m, cv) = &inner.appended;
        *lock(m) += 1;
        cv.notify_all();
    }
    for (done, e) in failed {
        done(Err(e));
    }
    for (done, r) in results {
        done(r);
    }
}

/// Appends `buf` at the end of the partition (a new segment first if the current one is
/// full), syncs it, and returns the position it starts at. On failure the partition is
/// cut back to where it ended.
fn write_partition(inner: &Inner, part: &Partition, buf: &[u8]) -> io::Result<u64> {
    let (base, file, end) = {
        let s = part.state();
        let (base, file) = s
            .segments
            .iter()
            .next_back()
            .map(|(b, f)| (*b, f.clone()))
            .ok_or_else(|| io::Error::other("partition without a segment"))?;
        (base, file, s.end)
    };
    let (base, file) = if end - base >= inner.options.segment_bytes {
        let path = segment_path(&part.dir, end);
        let file = Arc::new(
            OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(true)
                .open(&path)?,
        );
        sync_dir(&part.dir)?;
        part.state().segments.insert(end, file.clone());
        (end, file)
    } else {
        (base, file)
    };
    let write = file
        .write_all_at(buf, end - base)
        .and_then(|()| file.sync_data());
    if let Err(e) = write {
        let _ = file.set_len(end - base);
        return Err(e);
    }
    part.state().end = end + buf.len() as u64;
    Ok(end)
}

/// Deletes segments every group reading their topic has committed past.
fn retention(inner: &Inner) {
    let topics: Vec<(String, Arc<[Arc<Partition>]>)> = inner
        .topics
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let groups = lock(&inner.groups).clone();
    for (topic, parts) in topics {
        for part in parts.iter() {
            let committed = groups
                .values()
                .filter_map(|g| g.get(&topic))
                .map(|t| t.get(&part.index).copied().unwrap_or(0))
                .min();
            let Some(committed) = committed else {
                continue; // nobody reads it
            };
            let mut s = part.state();
            let bases: Vec<u64> = s.segments.keys().copied().collect();
            for w in bases.windows(2) {
                let (base, next) = (w[0], w[1]);
                if next > committed {
                    break;
                }
                s.segments.remove(&base);
                let path = segment_path(&part.dir, base);
                match std::fs::remove_file(&path) {
                    Ok(()) => {
                        tracing::debug!(path = %path.display(), "journal: segment deleted (committed by every group)")
                    }
                    Err(e) => {
                        tracing::warn!(path = %path.display(), error = %e, "journal: cannot delete a segment")
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;

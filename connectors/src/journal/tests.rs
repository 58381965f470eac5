use super::*;

fn rec(key: &str, value: &str) -> StoredRecord {
    StoredRecord {
        timestamp_ms: 1,
        key: Some(key.as_bytes().to_vec()),
        value: Some(value.as_bytes().to_vec()),
        headers: Vec::new(),
    }
}

/// Appends and waits until it is durable.
fn append(j: &Journal, topic: &str, partition: Option<i32>, r: StoredRecord) -> Position {
    let (tx, rx) = std::sync::mpsc::channel();
    j.append(
        topic,
        partition,
        r,
        Box::new(move |res| {
            let _ = tx.send(res);
        }),
    )
    .map_err(|(e, _)| e)
    .unwrap();
    rx.recv_timeout(Duration::from_secs(10)).unwrap().unwrap()
}

fn read_all(j: &Journal, topic: &str, partition: i32, from: u64) -> Vec<String> {
    let mut r = j.reader(topic, partition).unwrap();
    r.seek(from).unwrap();
    let mut out = Vec::new();
    while let Some((_, rec)) = r.next_record().unwrap() {
        out.push(String::from_utf8(rec.value.unwrap()).unwrap());
    }
    out
}

#[test]
fn keyed_records_stay_in_one_partition_in_order_and_survive_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let j = Journal::open(dir.path()).unwrap();
    j.ensure_topic("t", 3).unwrap();
    let mut parts = std::collections::HashSet::new();
    for i in 0..20 {
        parts.insert(append(&j, "t", None, rec("device-7", &i.to_string())).partition);
    }
    assert_eq!(parts.len(), 1, "one key, one partition");
    let p = *parts.iter().next().unwrap();
    let expected: Vec<String> = (0..20).map(|i| i.to_string()).collect();
    assert_eq!(read_all(&j, "t", p, 0), expected);
    assert!(
        Journal::open(dir.path())
            .map(|k| Arc::ptr_eq(&k, &j))
            .unwrap(),
        "one journal per directory per process"
    );
    drop(j);
    let j = Journal::open(dir.path()).unwrap();
    assert_eq!(j.partition_count("t"), Some(3));
    assert_eq!(read_all(&j, "t", p, 0), expected);
    assert!(j
        .append("nope", None, rec("k", "v"), Box::new(|_| {}))
        .is_err());
}

#[test]
fn reading_from_a_committed_position_resumes_after_the_last_record_done() {
    let dir = tempfile::tempdir().unwrap();
    let j = Journal::open(dir.path()).unwrap();
    j.ensure_topic("t", 1).unwrap();
    let positions: Vec<u64> = (0..5)
        .map(|i| append(&j, "t", Some(0), rec("k", &format!("v{i}"))).offset)
        .collect();
    // "One past record 2" lands inside record 2: reading resumes at record 3.
    j.commit("g", &[("t", 0, positions[2] + 1)]).unwrap();
    drop(j);
    let j = Journal::open(dir.path()).unwrap();
    let from = j.committed("g", "t", 0).unwrap();
    assert_eq!(read_all(&j, "t", 0, from), vec!["v3", "v4"]);
    assert_eq!(read_all(&j, "t", 0, positions[3]), vec!["v3", "v4"]);
}

#[test]
fn a_torn_write_is_cut_off_on_open_and_appends_continue_after_it() {
    let dir = tempfile::tempdir().unwrap();
    let j = Journal::open(dir.path()).unwrap();
    j.ensure_topic("t", 1).unwrap();
    append(&j, "t", Some(0), rec("k", "kept"));
    drop(j);
    // A crash in the middle of a write: half a record at the end of the segment.
    let seg = dir.path().join("topics/t/0").join(format!("{:020}.log", 0));
    let mut half = Vec::new();
    rec("k", "torn").encode(&mut half).unwrap();
    half.truncate(half.len() / 2);
    {
        use std::io::Write;
        let mut f = OpenOptions::new().append(true).open(&seg).unwrap();
        f.write_all(&half).unwrap();
    }
    let j = Journal::open(dir.path()).unwrap();
    assert_eq!(read_all(&j, "t", 0, 0), vec!["kept"]);
    append(&j, "t", Some(0), rec("k", "next"));
    assert_eq!(read_all(&j, "t", 0, 0), vec!["kept", "next"]);
}

#[test]
fn segments_roll_and_are_deleted_once_every_group_committed_past_them() {
    let dir = tempfile::tempdir().unwrap();
    let j = Journal::open_with(
        dir.path(),
        JournalOptions {
            segment_bytes: 200,
            ..JournalOptions::default()
        },
    )
    .unwrap();
    j.ensure_topic("t", 1).unwrap();
    let mut last = 0;
    for i in 0..40 {
        last = append(&j, "t", Some(0), rec("k", &format!("value-{i:04}"))).offset;
    }
    let segments = || {
        std::fs::read_dir(dir.path().join("topics/t/0"))
            .unwrap()
            .count()
    };
    assert!(segments() > 5, "{} segments", segments());
    let all: Vec<String> = (0..40).map(|i| format!("value-{i:04}")).collect();
    assert_eq!(read_all(&j, "t", 0, 0), all, "reads cross segments");
    j.commit("a", &[("t", 0, last)]).unwrap();
    j.commit("b", &[("t", 0, 0)]).unwrap();
    retention(&j.inner);
    assert!(segments() > 5, "group b holds everything");
    j.commit("b", &[("t", 0, last)]).unwrap();
    retention(&j.inner);
    assert_eq!(segments(), 1, "only the segment holding the last record");
    let kept = read_all(&j, "t", 0, 0);
    assert!(kept.len() < 10, "{kept:?}");
    assert_eq!(kept[..], all[40 - kept.len()..], "the newest records stay");
    assert_eq!(read_all(&j, "t", 0, last), vec!["value-0039"]);
}

#[test]
fn a_second_owner_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let _j = Journal::open(dir.path()).unwrap();
    let other = OpenOptions::new()
        .read(true)
        .write(true)
        .open(dir.path().join("LOCK"))
        .unwrap();
    assert!(other.try_lock().is_err(), "the LOCK file is held");
}

#[test]
fn appends_are_refused_while_the_slowest_group_is_too_far_behind() {
    let dir = tempfile::tempdir().unwrap();
    let j = Journal::open_with(
        dir.path(),
        JournalOptions {
            max_backlog_bytes: 100,
            ..JournalOptions::default()
        },
    )
    .unwrap();
    j.ensure_topic("t", 1).unwrap();
    // Nobody reads it yet: no bound.
    for i in 0..10 {
        append(&j, "t", Some(0), rec("k", &format!("value-{i}")));
    }
    // A group that committed nothing is 10 records (> 100 bytes) behind.
    j.commit("slow", &[("t", 0, 0)]).unwrap();
    let refused = j
        .append("t", Some(0), rec("k", "more"), Box::new(|_| {}))
        .map_err(|(e, _)| e)
        .unwrap_err();
    assert!(refused.contains("max_backlog_bytes"), "{refused}");
    // Once it catches up, appends go through again.
    let (_, end) = j.bounds("t", 0).unwrap();
    j.commit("slow", &[("t", 0, end)]).unwrap();
    append(&j, "t", Some(0), rec("k", "more"));
}

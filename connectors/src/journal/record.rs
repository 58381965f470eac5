//! The on-disk record format and segment scanning.
//!
//! A record is `len: u32 LE | crc: u32 LE | body`, where `crc` is the CRC-32 of `body` and
//! `len` its length. The body: `timestamp_ms: i64`, the key and the value (each `u32`
//! length + 1, 0 meaning absent, then the bytes), `u16` header count, then per header its
//! `u16` name length, name, `u32` value length + 1 (0: absent) and value. All little
//! endian. A record whose length runs past the end of the file or whose CRC does not match
//! is a torn write: it and everything after it are cut off when the partition is opened.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;

/// Bytes before the body: length and CRC.
pub(crate) const HEADER: u64 = 8;

/// Largest body accepted (a record bigger than this is refused at append time, and a
/// length past it is taken for garbage when scanning).
pub(crate) const MAX_BODY: u32 = 64 << 20;

/// A record as stored.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StoredRecord {
    /// When it was appended, in milliseconds since the Unix epoch.
    pub timestamp_ms: i64,
    /// Its key.
    pub key: Option<Vec<u8>>,
    /// Its value.
    pub value: Option<Vec<u8>>,
    /// Its headers, in order.
    pub headers: Vec<(String, Option<Vec<u8>>)>,
}

fn put_bytes(out: &mut Vec<u8>, b: Option<&[u8]>) {
    match b {
        None => out.extend_from_slice(&0u32.to_le_bytes()),
        Some(b) => {
            out.extend_from_slice(&(b.len() as u32 + 1).to_le_bytes());
            out.extend_from_slice(b);
        }
    }
}

impl StoredRecord {
    /// Appends the framed record (header and body) to `out`; fails if it is too large.
    pub(crate) fn encode(&self, out: &mut Vec<u8>) -> Result<(), String> {
        let start = out.len();
        out.extend_from_slice(&[0u8; HEADER as usize]);
        out.extend_from_slice(&self.timestamp_ms.to_le_bytes());
        put_bytes(out, self.key.as_deref());
        put_bytes(out, self.value.as_deref());
        let count = u16::try_from(self.headers.len())
            .map_err(|_| format!("{} headers; at most 65535", self.headers.len()))?;
        out.extend_from_slice(&count.to_le_bytes());
        for (name, value) in &self.headers {
            let len = u16::try_from(name.len())
                .map_err(|_| format!("header name of {} bytes", name.len()))?;
            out.extend_from_slice(&len.to_le_bytes());
            out.extend_from_slice(name.as_bytes());
            put_bytes(out, value.as_deref());
        }
        let body_len = out.len() - start - HEADER as usize;
        if body_len > MAX_BODY as usize {
            out.truncate(start);
            return Err(format!(
                "a record of {body_len} bytes; the journal takes at most {MAX_BODY}"
            ));
        }
        let crc = crc32fast::hash(&out[start + HEADER as usize..]);
        out[start..start + 4].copy_from_slice(&(body_len as u32).to_le_bytes());
        out[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
        Ok(())
    }

    /// Decodes a body whose CRC was checked.
    pub(crate) fn decode(body: &[u8]) -> io::Result<Self> {
        let mut r = Cursor { b: body, at: 0 };
        let timestamp_ms = i64::from_le_bytes(r.take(8)?.try_into().map_err(|_| bad("ts"))?);
        let key = r.bytes()?;
        let value = r.bytes()?;
        let count = u16::from_le_bytes(r.take(2)?.try_into().map_err(|_| bad("count"))?);
        let mut headers = Vec::with_capacity(count as usize);
        for _ in 0..count {
            let len = u16::from_le_bytes(r.take(2)?.try_into().map_err(|_| bad("name"))?);
            let name = String::from_utf8_lossy(r.take(len as usize)?).into_owned();
            headers.push((name, r.bytes()?));
        }
        Ok(StoredRecord {
            timestamp_ms,
            key,
            value,
            headers,
        })
    }
}

fn bad(what: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("corrupt record ({what})"),
    )
}

struct Cursor<'a> {
    b: &'a [u8],
    at: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> io::Result<&'a [u8]> {
        let end = self.at.checked_add(n).ok_or_else(|| bad("length"))?;
        let s = self.b.get(self.at..end).ok_or_else(|| bad("length"))?;
        self.at = end;
        Ok(s)
    }

    fn bytes(&mut self) -> io::Result<Option<Vec<u8>>> {
        let n = u32::from_le_bytes(self.take(4)?.try_into().map_err(|_| bad("length"))?);
        if n == 0 {
            return Ok(None);
        }
        Ok(Some(self.take(n as usize - 1)?.to_vec()))
    }
}

/// Reads the record at byte `at` of `file` whose valid data ends at `end`: `Ok(None)` when
/// there is no whole, intact record there (the end, or a torn write); else the record and
/// its length on disk.
pub(crate) fn read_at(file: &File, at: u64, end: u64) -> io::Result<Option<(StoredRecord, u64)>> {
    match check_at(file, at, end)? {
        None => Ok(None),
        Some(body) => {
            let len = HEADER + body.len() as u64;
            Ok(Some((StoredRecord::decode(&body)?, len)))
        }
    }
}

/// The body of the intact record at `at`, if there is one before `end`.
fn check_at(file: &File, at: u64, end: u64) -> io::Result<Option<Vec<u8>>> {
    if at + HEADER > end {
        return Ok(None);
    }
    let mut header = [0u8; HEADER as usize];
    file.read_exact_at(&mut header, at)?;
    let len = u32::from_le_bytes([header[0], header[1], header[2], header[3]]);
    let crc = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
    if len > MAX_BODY || at + HEADER + u64::from(len) > end {
        return Ok(None);
    }
    let mut body = vec![0u8; len as usize];
    file.read_exact_at(&mut body, at + HEADER)?;
    if crc32fast::hash(&body) != crc {
        return Ok(None);
    }
    Ok(Some(body))
}

/// Where the intact records of a segment of `len` bytes end (each checked in turn).
pub(crate) fn valid_end(file: &File, len: u64) -> io::Result<u64> {
    let mut at = 0;
    while let Some(body) = check_at(file, at, len)? {
        at += HEADER + body.len() as u64;
    }
    Ok(at)
}

/// The first record boundary at or after `target` in a segment whose records end at
/// `end` (lengths only, no CRC: the segment was checked when it was opened or written).
pub(crate) fn boundary_at_or_after(file: &File, target: u64, end: u64) -> io::Result<u64> {
    let mut at = 0;
    let mut header = [0u8; HEADER as usize];
    while at < target && at + HEADER <= end {
        file.read_exact_at(&mut header, at)?;
        let len = u32::from_le_bytes([header[0], header[1], header[2], header[3]]);
        at += HEADER + u64::from(len);
    }
    Ok(at.min(end))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn sample(i: u8) -> StoredRecord {
        StoredRecord {
            timestamp_ms: 1_700_000_000_000 + i64::from(i),
            key: Some(vec![b'k', i]),
            value: i.is_multiple_of(2).then(|| vec![i; i as usize * 10]),
            headers: vec![
                ("reason".into(), Some(b"x".to_vec())),
                ("empty".into(), None),
            ],
        }
    }

    #[test]
    fn records_round_trip_and_a_torn_tail_is_found() {
        let mut buf = Vec::new();
        let mut ends = Vec::new();
        for i in 0..5 {
            sample(i).encode(&mut buf).unwrap();
            ends.push(buf.len() as u64);
        }
        let mut f = tempfile::tempfile().unwrap();
        f.write_all(&buf).unwrap();
        let mut at = 0;
        for i in 0..5 {
            let (r, len) = read_at(&f, at, buf.len() as u64).unwrap().unwrap();
            assert_eq!(r, sample(i));
            at += len;
            assert_eq!(at, ends[i as usize]);
        }
        assert!(read_at(&f, at, buf.len() as u64).unwrap().is_none());
        assert_eq!(valid_end(&f, buf.len() as u64).unwrap(), buf.len() as u64);
        // A write cut short, then a flipped bit: both end the valid part.
        f.set_len(ends[3] + 5).unwrap();
        assert_eq!(valid_end(&f, ends[3] + 5).unwrap(), ends[3]);
        f.write_all_at(&[0xff], ends[1] + 12).unwrap();
        assert_eq!(valid_end(&f, ends[3] + 5).unwrap(), ends[1]);
        assert_eq!(
            boundary_at_or_after(&f, ends[0] + 1, ends[3]).unwrap(),
            ends[1]
        );
        assert_eq!(boundary_at_or_after(&f, ends[0], ends[3]).unwrap(), ends[0]);
    }
}

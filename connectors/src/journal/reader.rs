//! Reading a partition from a position.

use std::io;
use std::sync::Arc;

use super::record::{self, StoredRecord};
use super::Partition;

/// Reads one partition's durable records in order (see the module docs for positions).
pub struct Reader {
    part: Arc<Partition>,
    pos: u64,
}

impl std::fmt::Debug for Reader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reader")
            .field("topic", &self.part.topic)
            .field("partition", &self.part.index)
            .field("position", &self.pos)
            .finish()
    }
}

impl Reader {
    pub(crate) fn new(part: Arc<Partition>) -> Self {
        let pos = part.state().segments.keys().next().copied().unwrap_or(0);
        Reader { part, pos }
    }

    /// The position of the next record to read.
    pub fn position(&self) -> u64 {
        self.pos
    }

    /// Moves to the first record at or after `target` (the oldest one if `target` was
    /// deleted by retention, the end if it is past it).
    pub fn seek(&mut self, target: u64) -> io::Result<()> {
        let s = self.part.state();
        let first = s.segments.keys().next().copied().unwrap_or(0);
        if target >= s.end {
            self.pos = s.end;
            return Ok(());
        }
        if target <= first {
            self.pos = first;
            return Ok(());
        }
        let Some((base, file)) = s.segments.range(..=target).next_back() else {
            self.pos = first;
            return Ok(());
        };
        let seg_end = s
            .segments
            .range(base + 1..)
            .next()
            .map_or(s.end, |(b, _)| *b);
        self.pos = base + record::boundary_at_or_after(file, target - base, seg_end - base)?;
        Ok(())
    }

    /// The next durable record and its position, or `None` at the end for now.
    pub fn next_record(&mut self) -> io::Result<Option<(u64, StoredRecord)>> {
        let (base, file, seg_end) = {
            let s = self.part.state();
            if self.pos >= s.end {
                return Ok(None);
            }
            let first = s.segments.keys().next().copied().unwrap_or(0);
            if self.pos < first {
                tracing::warn!(topic = %self.part.topic, partition = self.part.index, from = self.pos, to = first, "journal: position deleted by retention; skipping ahead");
                self.pos = first;
            }
            let Some((base, file)) = s.segments.range(..=self.pos).next_back() else {
                return Ok(None);
            };
            let seg_end = s
                .segments
                .range(base + 1..)
                .next()
                .map_or(s.end, |(b, _)| *b);
            (*base, file.clone(), seg_end)
        };
        match record::read_at(&file, self.pos - base, seg_end - base)? {
            Some((rec, len)) => {
                let at = self.pos;
                self.pos += len;
                Ok(Some((at, rec)))
            }
            None => Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "journal: no intact record at position {} of {} partition {}",
                    self.pos, self.part.topic, self.part.index
                ),
            )),
        }
    }
}

//! Stdin through the write-ahead log: every chunk of input lines is appended to the WAL
//! before it is decoded, and a restarted run replays the chunks a checkpoint does not
//! cover before it reads stdin again.
//!
//! A chunk is one WAL record of kind `InputLines`:
//! ```text
//!  [lines: u32 LE] [first line number: u64 LE] [breaks: u32 LE]
//!  ([index: u32 LE] [line number: u64 LE]) × breaks   [bytes: the lines, each ending in \n]
//! ```
//! Line `i` has the number of line `i - 1` plus one, except at a break (after blank lines
//! that were skipped), which gives it; each line's offset is found again at its newline.
//! Records of the earlier kind `Input` (every number and offset stored:
//! `[lines: u32] [line number: u64] × lines [start: u32] × lines [bytes]`) are still read.
//! Group commit: appends are synced together (the WAL's interval and size), and at once
//! when stdin has nothing more buffered, so input that stops arriving is acknowledged
//! without waiting. A line is *acknowledged* once the record holding it is synced. The
//! writes and syncs run on the WAL's own thread ([`BackgroundWal`]), so reading and
//! decoding go on while the disk flushes.

use std::path::PathBuf;
use std::sync::Arc;

use super::lines::LineChunk;
use crate::checkpoint::SourcePosition;
use crate::error::{Error, Result};
use crate::storage::Storage;
use crate::wal::{
    BackgroundWal, Lsn, RecordKind, WalConfig, WalError, WalReader, WalRecord, WalWriter,
};

/// The WAL of one stdin source, and the records a restarted run replays first.
#[derive(Debug)]
pub struct InputLog {
    wal: BackgroundWal,
    /// The WAL's directory, for messages.
    dir: PathBuf,
    /// The records beyond the checkpoint, read one at a time (a segment in memory at
    /// most) and handed out before stdin is read; `None` once replay is done.
    replay: Option<WalReader>,
    /// The last record handed out (replayed or appended), and its last line.
    lsn: Lsn,
    line: u64,
    /// The last input line the log holds.
    logged_line: u64,
    /// A stopping run closed the log: appends are refused.
    closed: bool,
}

impl InputLog {
    /// Opens the WAL in `dir` (cutting a torn tail) and prepares to replay the records after
    /// `position`, the checkpoint recovery starts from (`Start` without one).
    pub fn open(
        storage: Arc<dyn Storage>,
        dir: &std::path::Path,
        config: WalConfig,
        position: &SourcePosition,
    ) -> Result<Self> {
        let (lsn, line) = match position {
            SourcePosition::Start => (0, 0),
            SourcePosition::Wal { lsn, line } => (*lsn, *line),
            other => {
                return Err(Error::Execution(format!(
                    "a stdin source cannot resume from {other:?}"
                )))
            }
        };
        let (wal, recovery) =
            WalWriter::open(Arc::clone(&storage), dir, config).map_err(wal_error)?;
        let replay = recovery
            .read_from(Arc::clone(&storage), lsn + 1)
            .map_err(wal_error)?;
        // The last line logged is in the last record: read it alone, not the whole tail.
        let mut logged_line = line;
        if recovery.last_lsn() > lsn {
            let last = recovery
                .read_from(storage, recovery.last_lsn())
                .map_err(wal_error)?
                .next()
                .transpose()
                .map_err(wal_error)?;
            if let Some(record) = last {
                let chunk = chunk_of(&record, dir)?;
                logged_line = chunk.numbers.last().copied().unwrap_or(line);
            }
        }
        Ok(Self {
            wal: BackgroundWal::spawn(wal).map_err(wal_error)?,
            dir: dir.to_path_buf(),
            replay: Some(replay),
            lsn,
            line,
            logged_line,
            closed: false,
        })
    }

    /// The next chunk the WAL holds beyond the checkpoint, or `None` once replay is done.
    pub(crate) fn next_replayed(&mut self) -> Result<Option<LineChunk>> {
        let Some(reader) = &mut self.replay else {
            return Ok(None);
        };
        let Some(record) = reader.next().transpose().map_err(wal_error)? else {
            self.replay = None;
            return Ok(None);
        };
        let chunk = chunk_of(&record, &self.dir)?;
        self.lsn = record.lsn;
        self.line = chunk.numbers.last().copied().unwrap_or(self.line);
        Ok(Some(chunk))
    }

    /// The last input line the WAL in `dir` holds, read without changing anything (for
    /// `state inspect`); `None` when it holds no record.
    pub fn logged_line_in(storage: Arc<dyn Storage>, dir: &std::path::Path) -> Result<Option<u64>> {
        let log = crate::wal::scan_intact(storage.as_ref(), dir).map_err(wal_error)?;
        if log.last_lsn() == 0 {
            return Ok(None);
        }
        let last = log
            .read_from(storage, log.last_lsn())
            .map_err(wal_error)?
            .next()
            .transpose()
            .map_err(wal_error)?;
        match last {
            Some(record) => Ok(chunk_of(&record, dir)?.numbers.last().copied()),
            None => Ok(None),
        }
    }

    /// The last input line the log holds: a producer resends the lines after it.
    pub fn last_logged_line(&self) -> u64 {
        self.logged_line
    }

    /// Logs a chunk just read from stdin; it is synced at once when `idle` (nothing more
    /// is buffered and nothing waits on stdin), else when the group-commit interval or
    /// size is reached.
    pub(crate) fn append(&mut self, chunk: &LineChunk, idle: bool) -> Result<()> {
        if self.closed {
            return Err(Error::Execution(format!(
                "the write-ahead log in {} was closed: the run is stopping",
                self.dir.display()
            )));
        }
        self.lsn = self
            .wal
            .append(RecordKind::InputLines, encode(chunk), idle)
            .map_err(wal_error)?;
        self.line = chunk.numbers.last().copied().unwrap_or(self.line);
        self.logged_line = self.line;
        crate::checkpoint::crash_point("wal-after-append");
        Ok(())
    }

    /// Refuses every later append (a stopping run), so that the last logged line stays
    /// the one a producer is told to resend after.
    pub(crate) fn close(&mut self) {
        self.closed = true;
    }

    /// Makes every appended chunk durable.
    pub fn sync(&mut self) -> Result<()> {
        self.wal.sync().map_err(wal_error)?;
        Ok(())
    }

    /// The LSN and last line of the chunk last handed out (replayed or appended).
    pub(crate) fn cursor(&self) -> (u64, u64) {
        (self.lsn, self.line)
    }

    /// Where the source stands: the last chunk handed out.
    pub fn position(&self) -> SourcePosition {
        SourcePosition::Wal {
            lsn: self.lsn,
            line: self.line,
        }
    }

    /// Drops the segments a committed checkpoint at `position` no longer needs.
    pub fn release(&mut self, position: &SourcePosition) -> Result<()> {
        if let SourcePosition::Wal { lsn, .. } = position {
            self.wal
                .remove_segments_before(lsn + 1)
                .map_err(wal_error)?;
        }
        Ok(())
    }
}

/// Whether more input already waits on stdin (a read would not block). Where this cannot
/// be asked, the answer is no, and every chunk is synced at once.
pub(crate) fn stdin_has_input() -> bool {
    #[cfg(unix)]
    {
        use rustix::event::{poll, PollFd, PollFlags, Timespec};
        let stdin = std::io::stdin();
        let mut fds = [PollFd::new(&stdin, PollFlags::IN)];
        let now = Timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        matches!(poll(&mut fds, Some(&now)), Ok(n) if n > 0)
    }
    #[cfg(not(unix))]
    false
}

/// The chunk of input lines a WAL record holds.
fn chunk_of(record: &WalRecord, dir: &std::path::Path) -> Result<LineChunk> {
    let chunk = match record.kind {
        RecordKind::InputLines => decode(&record.payload),
        _ => decode_with_offsets(&record.payload),
    };
    chunk.ok_or_else(|| {
        Error::Execution(format!(
            "WAL record {} in {} is not a chunk of input lines",
            record.lsn,
            dir.display()
        ))
    })
}

fn wal_error(err: WalError) -> Error {
    Error::Execution(err.to_string())
}

/// The WAL payload (`InputLines`) of a chunk.
fn encode(chunk: &LineChunk) -> Vec<u8> {
    let breaks: Vec<(usize, u64)> = chunk
        .numbers
        .windows(2)
        .enumerate()
        .filter(|(_, pair)| pair[1] != pair[0] + 1)
        .map(|(i, pair)| (i + 1, pair[1]))
        .collect();
    let mut out = Vec::with_capacity(16 + breaks.len() * 12 + chunk.bytes.len());
    out.extend_from_slice(&(chunk.len() as u32).to_le_bytes());
    out.extend_from_slice(&chunk.numbers.first().copied().unwrap_or(0).to_le_bytes());
    out.extend_from_slice(&(breaks.len() as u32).to_le_bytes());
    for (index, number) in &breaks {
        out.extend_from_slice(&(*index as u32).to_le_bytes());
        out.extend_from_slice(&number.to_le_bytes());
    }
    out.extend_from_slice(&chunk.bytes);
    out
}

/// A chunk from its `InputLines` payload; `None` if the payload is not one.
fn decode(payload: &[u8]) -> Option<LineChunk> {
    let u32_at = |at: usize| -> Option<u32> {
        Some(u32::from_le_bytes(
            payload.get(at..at + 4)?.try_into().ok()?,
        ))
    };
    let u64_at = |at: usize| -> Option<u64> {
        Some(u64::from_le_bytes(
            payload.get(at..at + 8)?.try_into().ok()?,
        ))
    };
    let lines = u32_at(0)? as usize;
    let first = u64_at(4)?;
    let breaks = u32_at(12)? as usize;
    let bytes_at = 16usize.checked_add(breaks.checked_mul(12)?)?;
    let bytes = payload.get(bytes_at..)?.to_vec();
    let mut starts = Vec::with_capacity(lines);
    let mut start = 0;
    for newline in memchr::memchr_iter(b'\n', &bytes) {
        starts.push(start);
        start = newline + 1;
    }
    if starts.len() != lines || start != bytes.len() {
        return None;
    }
    let mut numbers: Vec<u64> = Vec::with_capacity(lines);
    let mut next_break = 0;
    for i in 0..lines {
        let at = 16 + next_break * 12;
        let number = if next_break < breaks && u32_at(at)? as usize == i {
            next_break += 1;
            u64_at(at + 4)?
        } else if i == 0 {
            first
        } else {
            numbers[i - 1].checked_add(1)?
        };
        numbers.push(number);
    }
    (next_break == breaks).then_some(LineChunk {
        bytes,
        starts,
        numbers,
    })
}

/// A chunk from its payload of the earlier kind `Input`; `None` if the payload is not one.
fn decode_with_offsets(payload: &[u8]) -> Option<LineChunk> {
    let lines = u32::from_le_bytes(payload.get(..4)?.try_into().ok()?) as usize;
    let numbers_end = 4 + lines.checked_mul(8)?;
    let starts_end = numbers_end + lines.checked_mul(4)?;
    let numbers = payload
        .get(4..numbers_end)?
        .chunks_exact(8)
        .map(|b| u64::from_le_bytes(b.try_into().unwrap_or_default()))
        .collect();
    let starts: Vec<usize> = payload
        .get(numbers_end..starts_end)?
        .chunks_exact(4)
        .map(|b| u32::from_le_bytes(b.try_into().unwrap_or_default()) as usize)
        .collect();
    let bytes = payload.get(starts_end..)?.to_vec();
    let ordered = starts.windows(2).all(|w| w[0] <= w[1]);
    if !ordered
        || starts.first().is_some_and(|&s| s != 0)
        || starts.last().is_some_and(|&s| s > bytes.len())
    {
        return None;
    }
    Some(LineChunk {
        bytes,
        starts,
        numbers,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chunk_round_trips_through_its_payload() {
        let chunk = LineChunk {
            bytes: b"a,1\nb,2\nc,3\nd,4\n".to_vec(),
            starts: vec![0, 4, 8, 12],
            numbers: vec![3, 5, 6, 9],
        };
        let payload = encode(&chunk);
        assert_eq!(
            payload.len(),
            16 + 2 * 12 + chunk.bytes.len(),
            "two breaks stored"
        );
        let back = decode(&payload).unwrap();
        assert_eq!(back.bytes, chunk.bytes);
        assert_eq!(back.starts, chunk.starts);
        assert_eq!(back.numbers, chunk.numbers);
        for cut in [0, 6, 15, payload.len() - 1] {
            assert!(decode(&payload[..cut]).is_none(), "cut at {cut}");
        }
        let consecutive = LineChunk {
            bytes: b"x\ny\n".to_vec(),
            starts: vec![0, 2],
            numbers: vec![7, 8],
        };
        assert_eq!(encode(&consecutive).len(), 16 + 4);
        assert_eq!(decode(&encode(&consecutive)).unwrap().numbers, vec![7, 8]);
    }

    #[test]
    fn a_chunk_of_the_earlier_kind_is_still_read() {
        let mut payload = Vec::new();
        payload.extend_from_slice(&2u32.to_le_bytes());
        payload.extend_from_slice(&3u64.to_le_bytes());
        payload.extend_from_slice(&5u64.to_le_bytes());
        payload.extend_from_slice(&0u32.to_le_bytes());
        payload.extend_from_slice(&4u32.to_le_bytes());
        payload.extend_from_slice(b"a,1\nb,2\n");
        let back = decode_with_offsets(&payload).unwrap();
        assert_eq!(back.numbers, vec![3, 5]);
        assert_eq!(back.starts, vec![0, 4]);
        assert!(decode_with_offsets(&payload[..6]).is_none());
        assert!(decode_with_offsets(b"").is_none());
    }
}

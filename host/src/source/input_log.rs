//! Stdin through the write-ahead log: every chunk of input lines is appended to the WAL
//! before it is decoded, and a restarted run replays the chunks a checkpoint does not
//! cover before it reads stdin again.
//!
//! A chunk is one WAL record (kind `Input`):
//! ```text
//!  [lines: u32 LE] [line number: u64 LE] × lines [start: u32 LE] × lines [bytes]
//! ```
//! Group commit: appends are synced together (the WAL's interval and size), and at once
//! when stdin has nothing more buffered, so input that stops arriving is acknowledged
//! without waiting. A line is *acknowledged* once the record holding it is synced. The
//! writes and syncs run on the WAL's own thread ([`BackgroundWal`]), so reading and
//! decoding go on while the disk flushes.

use std::collections::VecDeque;
use std::sync::Arc;

use super::lines::LineChunk;
use crate::checkpoint::SourcePosition;
use crate::error::{Error, Result};
use crate::storage::Storage;
use crate::wal::{BackgroundWal, Lsn, RecordKind, WalConfig, WalError, WalWriter};

/// The WAL of one stdin source, and the records a restarted run replays first.
#[derive(Debug)]
pub struct InputLog {
    wal: BackgroundWal,
    /// Records beyond the checkpoint, read at open, handed out before stdin is read.
    replay: VecDeque<(Lsn, LineChunk)>,
    /// The last record handed out (replayed or appended), and its last line.
    lsn: Lsn,
    line: u64,
    /// The last input line the log holds.
    logged_line: u64,
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
        let mut replay = VecDeque::new();
        let mut logged_line = line;
        for record in recovery.read_from(storage, lsn + 1).map_err(wal_error)? {
            let record = record.map_err(wal_error)?;
            let chunk = decode(&record.payload).ok_or_else(|| {
                Error::Execution(format!(
                    "WAL record {} in {} is not a chunk of input lines",
                    record.lsn,
                    dir.display()
                ))
            })?;
            logged_line = chunk.numbers.last().copied().unwrap_or(logged_line);
            replay.push_back((record.lsn, chunk));
        }
        Ok(Self {
            wal: BackgroundWal::spawn(wal).map_err(wal_error)?,
            replay,
            lsn,
            line,
            logged_line,
        })
    }

    /// The next chunk the WAL holds beyond the checkpoint, or `None` once replay is done.
    pub(crate) fn next_replayed(&mut self) -> Option<LineChunk> {
        let (lsn, chunk) = self.replay.pop_front()?;
        self.lsn = lsn;
        self.line = chunk.numbers.last().copied().unwrap_or(self.line);
        Some(chunk)
    }

    /// The last input line the log holds: a producer resends the lines after it.
    pub fn last_logged_line(&self) -> u64 {
        self.logged_line
    }

    /// Logs a chunk just read from stdin; it is synced at once when `idle` (nothing more
    /// is buffered and nothing waits on stdin), else when the group-commit interval or
    /// size is reached.
    pub(crate) fn append(&mut self, chunk: &LineChunk, idle: bool) -> Result<()> {
        self.lsn = self
            .wal
            .append(RecordKind::Input, encode(chunk), idle)
            .map_err(wal_error)?;
        self.line = chunk.numbers.last().copied().unwrap_or(self.line);
        self.logged_line = self.line;
        crate::checkpoint::crash_point("wal-after-append");
        Ok(())
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

fn wal_error(err: WalError) -> Error {
    Error::Execution(err.to_string())
}

/// The WAL payload of a chunk.
fn encode(chunk: &LineChunk) -> Vec<u8> {
    let lines = chunk.len();
    let mut out = Vec::with_capacity(4 + lines * 12 + chunk.bytes.len());
    out.extend_from_slice(&(lines as u32).to_le_bytes());
    for number in &chunk.numbers {
        out.extend_from_slice(&number.to_le_bytes());
    }
    for start in &chunk.starts {
        out.extend_from_slice(&(*start as u32).to_le_bytes());
    }
    out.extend_from_slice(&chunk.bytes);
    out
}

/// A chunk from its WAL payload; `None` if the payload is not one.
fn decode(payload: &[u8]) -> Option<LineChunk> {
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
            bytes: b"a,1\nb,2\n".to_vec(),
            starts: vec![0, 4],
            numbers: vec![3, 5],
        };
        let back = decode(&encode(&chunk)).unwrap();
        assert_eq!(back.bytes, chunk.bytes);
        assert_eq!(back.starts, chunk.starts);
        assert_eq!(back.numbers, chunk.numbers);
        assert!(decode(&encode(&chunk)[..6]).is_none());
        assert!(decode(b"").is_none());
    }
}

//! [`WalWriter`]: appends records to the active segment and makes them durable by group
//! commit; rotates segments and removes the ones a checkpoint no longer needs.
//!
//! Designed for one writer thread (the thread reading stdin): `append` only buffers (plus
//! a segment rotation now and then); `maybe_sync(now)` after each append, or when
//! [`sync_due`](WalWriter::sync_due) passes, writes and fsyncs everything buffered at
//! once. Input is acknowledged only up to [`durable_lsn`](WalWriter::durable_lsn).

use std::collections::VecDeque;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use super::entry::{encode, encode_header, Lsn, RecordKind, FRAME_HEADER_LEN, MAX_PAYLOAD_LEN};

/// Records at least this long are written to the file directly instead of through the
/// buffer (one copy less for stdin's chunks of input lines).
const DIRECT_WRITE_LEN: usize = 64 << 10;
use super::recovery::{recover, Recovery};
use super::segment::{self, HEADER_LEN};
use super::{SyncMode, WalConfig, WalError};
use crate::storage::{Storage, StorageFile};

/// The appending end of a WAL directory. After any failed write or sync it is poisoned
/// ([`WalError::Poisoned`]): drop it and [`open`](Self::open) again, which recovers what is
/// intact. Dropping it loses appends that were not synced.
#[derive(Debug)]
pub struct WalWriter {
    // PROPERTIES:
    storage: Arc<dyn Storage>,
    dir: PathBuf,
    config: WalConfig,
    // STATES:
    /// Closed segments, oldest first: (first LSN, file).
    closed: VecDeque<(Lsn, PathBuf)>,
    active: Box<dyn StorageFile>,
    active_path: PathBuf,
    active_first: Lsn,
    /// Bytes of the active segment handed to the storage (not counting `buf`).
    active_len: u64,
    /// Framed records not yet written.
    buf: Vec<u8>,
    /// Bytes of the records appended since the last sync (buffered or written).
    unsynced: usize,
    last_lsn: Lsn,
    durable_lsn: Lsn,
    last_sync: Option<Instant>,
    poisoned: Option<String>,
}

impl WalWriter {
    /// Opens (creating if needed) the WAL in `dir`: recovers it (cutting a torn tail, see
    /// [`recover`]), syncs what was recovered, and continues after the last intact record.
    /// The [`Recovery`] tells what was found and reads the records for replay.
    pub fn open(
        storage: Arc<dyn Storage>,
        dir: impl AsRef<Path>,
        config: WalConfig,
    ) -> Result<(Self, Recovery), WalError> {
        let dir = dir.as_ref().to_path_buf();
        storage.create_dir_all_durable(&dir).map_err(|e| {
            WalError::io(format!("cannot create WAL directory {}", dir.display()), e)
        })?;
        let recovery = recover(&*storage, &dir)?;
        let next = recovery.next_lsn();
        let mut closed: VecDeque<(Lsn, PathBuf)> = recovery
            .segments
            .iter()
            .map(|s| (s.first_lsn, s.path.clone()))
            .collect();
        let (active, active_path, active_first, active_len) = match recovery.segments.last() {
            Some(last) => {
                closed.pop_back();
                let context = || format!("cannot open WAL segment {}", last.path.display());
                let mut file = storage
                    .open_append(&last.path)
                    .map_err(|e| WalError::io(context(), e))?;
                if config.sync_mode == SyncMode::SyncData {
                    // Recovered records may have reached only the page cache before a crash.
                    file.sync_data().map_err(|e| WalError::io(context(), e))?;
                }
                (file, last.path.clone(), last.first_lsn, last.len)
            }
            None => {
                let (file, path) = create_segment(&*storage, &dir, next, config.sync_mode)
                    .map_err(|(path, e)| {
                        WalError::io(format!("cannot create WAL segment {}", path.display()), e)
                    })?;
                (file, path, next, HEADER_LEN as u64)
            }
        };
        let writer = Self {
            storage,
            dir,
            config,
            closed,
            active,
            active_path,
            active_first,
            active_len,
            buf: Vec::with_capacity(64 << 10),
            unsynced: 0,
            last_lsn: next - 1,
            durable_lsn: next - 1,
            last_sync: None,
            poisoned: None,
        };
        Ok((writer, recovery))
    }

    /// Buffers one record and returns its LSN. Not durable until a sync covers it. Starts
    /// a new segment first (syncing the old one) when the record would overflow the active
    /// one.
    pub fn append(&mut self, kind: RecordKind, payload: &[u8]) -> Result<Lsn, WalError> {
        self.check()?;
        if payload.len() > MAX_PAYLOAD_LEN {
            return Err(WalError::RecordTooLarge {
                len: payload.len(),
                max: MAX_PAYLOAD_LEN,
            });
        }
        let size = self.active_len + self.buf.len() as u64;
        let has_records = self.last_lsn >= self.active_first;
        if has_records
            && size + (FRAME_HEADER_LEN + payload.len()) as u64 > self.config.segment_size
        {
            self.rotate()?;
        }
        self.unsynced += FRAME_HEADER_LEN + payload.len();
        if payload.len() < DIRECT_WRITE_LEN {
            encode(&mut self.buf, kind, payload);
        } else {
            // A large record goes to the file as it is, after what is buffered, rather than
            // being copied into the buffer first. Still not durable until a sync.
            self.write_buffered()?;
            let mut header = Vec::with_capacity(FRAME_HEADER_LEN);
            encode_header(&mut header, kind, payload);
            for part in [&header[..], payload] {
                if let Err(e) = self.active.write_all(part) {
                    return Err(self.fail("cannot write WAL segment", e));
                }
                self.active_len += part.len() as u64;
            }
        }
        self.last_lsn += 1;
        Ok(self.last_lsn)
    }

    /// Hands the buffered records to the storage (not a sync).
    fn write_buffered(&mut self) -> Result<(), WalError> {
        if !self.buf.is_empty() {
            if let Err(e) = self.active.write_all(&self.buf) {
                return Err(self.fail("cannot write WAL segment", e));
            }
            self.active_len += self.buf.len() as u64;
            self.buf.clear();
        }
        Ok(())
    }

    /// Writes everything buffered and syncs it now (per [`SyncMode`]); returns the durable
    /// LSN. Cheap when nothing is pending.
    pub fn sync(&mut self) -> Result<Lsn, WalError> {
        self.check()?;
        if self.last_lsn == self.durable_lsn {
            return Ok(self.durable_lsn);
        }
        self.write_buffered()?;
        if self.config.sync_mode == SyncMode::SyncData {
            if let Err(e) = self.active.sync_data() {
                return Err(self.fail("cannot sync WAL segment", e));
            }
        }
        self.durable_lsn = self.last_lsn;
        self.unsynced = 0;
        self.last_sync = Some(Instant::now());
        Ok(self.durable_lsn)
    }

    /// Group commit: syncs when records are pending and either `interval` has passed since
    /// the last sync (or there was none) or `max_pending_bytes` are buffered. Returns the new
    /// durable LSN when it synced.
    pub fn maybe_sync(&mut self, now: Instant) -> Result<Option<Lsn>, WalError> {
        self.check()?;
        if self.last_lsn == self.durable_lsn {
            return Ok(None);
        }
        let due = self.unsynced >= self.config.max_pending_bytes
            || self
                .last_sync
                .is_none_or(|at| now.saturating_duration_since(at) >= self.config.interval);
        if due {
            self.sync().map(Some)
        } else {
            Ok(None)
        }
    }

    /// When [`maybe_sync`](Self::maybe_sync) will next sync by time, if records are pending:
    /// a reader thread blocked on input should wake by then.
    pub fn sync_due(&self) -> Option<Instant> {
        (self.last_lsn > self.durable_lsn).then(|| {
            self.last_sync
                .map_or_else(Instant::now, |at| at + self.config.interval)
        })
    }

    /// The last LSN made durable (0 when none): input up to here may be acknowledged.
    pub fn durable_lsn(&self) -> Lsn {
        self.durable_lsn
    }

    /// The LSN of the last appended record (0 when none).
    pub fn last_lsn(&self) -> Lsn {
        self.last_lsn
    }

    /// Bytes appended and not yet written.
    pub fn pending_bytes(&self) -> usize {
        self.buf.len()
    }

    /// The WAL directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Deletes the closed segments all of whose records have LSN < `lsn` (a checkpoint
    /// covers them), oldest first; never the active segment. Returns how many were removed.
    /// A failure here leaves the log intact and does not poison the writer.
    pub fn remove_segments_before(&mut self, lsn: Lsn) -> Result<usize, WalError> {
        let mut removed = 0;
        while let Some((_, path)) = self.closed.front() {
            let next_first = self
                .closed
                .get(1)
                .map_or(self.active_first, |(first, _)| *first);
            if next_first > lsn {
                break;
            }
            self.storage.remove_file(path).map_err(|e| {
                WalError::io(format!("cannot remove WAL segment {}", path.display()), e)
            })?;
            self.closed.pop_front();
            removed += 1;
        }
        if removed > 0 && self.config.sync_mode == SyncMode::SyncData {
            self.storage.sync_dir(&self.dir).map_err(|e| {
                WalError::io(
                    format!("cannot sync WAL directory {}", self.dir.display()),
                    e,
                )
            })?;
        }
        Ok(removed)
    }

    /// The segment files, oldest first (the last is the active one).
    pub fn segment_files(&self) -> Vec<PathBuf> {
        let mut files: Vec<PathBuf> = self.closed.iter().map(|(_, p)| p.clone()).collect();
        files.push(self.active_path.clone());
        files
    }

    /// Closes the active segment (synced) and starts the next one.
    fn rotate(&mut self) -> Result<(), WalError> {
        self.sync()?;
        let next = self.last_lsn + 1;
        let (file, path) =
            match create_segment(&*self.storage, &self.dir, next, self.config.sync_mode) {
                Ok(created) => created,
                Err((_, e)) => return Err(self.fail("cannot create WAL segment", e)),
            };
        let old_path = std::mem::replace(&mut self.active_path, path);
        self.closed.push_back((self.active_first, old_path));
        self.active = file;
        self.active_first = next;
        self.active_len = HEADER_LEN as u64;
        Ok(())
    }

    fn check(&self) -> Result<(), WalError> {
        match &self.poisoned {
            None => Ok(()),
            Some(first_error) => Err(WalError::Poisoned {
                dir: self.dir.clone(),
                first_error: first_error.clone(),
            }),
        }
    }

    /// Poisons the writer with the failure of `what` on the active segment.
    fn fail(&mut self, what: &str, e: io::Error) -> WalError {
        let context = format!("{what} {}", self.active_path.display());
        self.poisoned = Some(format!("{context}: {e}"));
        WalError::io(context, e)
    }
}

/// Creates the segment starting at `first_lsn` in `dir` with its header (synced, with the
/// directory, under [`SyncMode::SyncData`]).
fn create_segment(
    storage: &dyn Storage,
    dir: &Path,
    first_lsn: Lsn,
    mode: SyncMode,
) -> Result<(Box<dyn StorageFile>, PathBuf), (PathBuf, io::Error)> {
    let path = segment::path(dir, first_lsn);
    let create = || -> io::Result<Box<dyn StorageFile>> {
        let mut file = storage.create(&path)?;
        file.write_all(&segment::encode_header(first_lsn))?;
        if mode == SyncMode::SyncData {
            file.sync_data()?;
            storage.sync_dir(dir)?;
        }
        Ok(file)
    };
    match create() {
        Ok(file) => Ok((file, path)),
        Err(e) => Err((path, e)),
    }
}

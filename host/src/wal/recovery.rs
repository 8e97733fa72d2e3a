//! Recovery of a WAL directory: validate every segment in LSN order, cut a torn tail, and
//! refuse (naming file and byte offset) any damage before it. Also [`inspect`], the same
//! validation as a read-only per-segment summary.
//!
//! A *torn tail* is a damaged or incomplete record at the end of the **last** segment with
//! no intact record anywhere after it: what a crash leaves of an unfinished write. It is cut
//! (the file truncated to the last intact record) and reported. Anything else — a damaged
//! record followed by an intact one, damage in an earlier segment, a bad header, a gap in
//! LSNs between segments, an unknown record kind — is [`WalError::Corrupt`].

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::entry::{decode, next_valid_record, Frame, Lsn};
use super::reader::WalReader;
use super::segment::{self, HEADER_LEN};
use super::WalError;
use crate::storage::Storage;

/// A validated segment: its records are intact up to `len` bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Segment {
    /// The segment file.
    pub(crate) path: PathBuf,
    /// LSN of its first record.
    pub(crate) first_lsn: Lsn,
    /// Intact records.
    pub(crate) records: u64,
    /// Bytes up to the end of the last intact record.
    pub(crate) len: u64,
}

/// A torn tail found (and, by [`recover`], cut) at the end of the last segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TornTail {
    /// The segment file.
    pub file: PathBuf,
    /// Where the torn record (or header) starts: the file's length after the cut (0 when
    /// only a partial header was there; the file is then removed).
    pub offset: u64,
    /// Bytes cut.
    pub bytes_cut: u64,
}

/// What recovery found: the intact log and the torn tail it cut.
#[derive(Debug, Clone)]
pub struct Recovery {
    pub(crate) dir: PathBuf,
    pub(crate) segments: Vec<Segment>,
    torn_tail: Option<TornTail>,
    next_lsn: Lsn,
}

impl Recovery {
    /// The torn tail that was cut, if there was one.
    pub fn torn_tail(&self) -> Option<&TornTail> {
        self.torn_tail.as_ref()
    }

    /// The LSN the next appended record gets (1 for an empty log).
    pub fn next_lsn(&self) -> Lsn {
        self.next_lsn
    }

    /// The last intact LSN, 0 when the log holds no record.
    pub fn last_lsn(&self) -> Lsn {
        self.next_lsn - 1
    }

    /// The first LSN the log still holds (older segments may have been removed).
    pub fn first_lsn(&self) -> Lsn {
        self.segments.first().map_or(self.next_lsn, |s| s.first_lsn)
    }

    /// Reads the records with LSN >= `from`, in order. `from` must lie in
    /// `first_lsn() ..= next_lsn()` (`next_lsn()` reads nothing), or records are missing.
    pub fn read_from(&self, storage: Arc<dyn Storage>, from: Lsn) -> Result<WalReader, WalError> {
        if from < self.first_lsn() || from > self.next_lsn {
            return Err(WalError::MissingRecords {
                dir: self.dir.clone(),
                first: self.first_lsn(),
                next: self.next_lsn,
                from,
            });
        }
        Ok(WalReader::new(storage, self.segments.clone(), from))
    }
}

/// How the bytes of one segment end.
#[derive(Debug, Clone, PartialEq, Eq)]
enum End {
    Clean,
    /// Shorter than the header.
    TornHeader,
    /// A torn record starts at `offset`, nothing intact after it.
    Torn {
        offset: u64,
    },
    Corrupt {
        offset: u64,
        message: String,
    },
}

/// One segment's scan.
#[derive(Debug)]
struct Scanned {
    segment: Segment,
    file_len: u64,
    end: End,
}

/// Scans the bytes of the segment named by `name_lsn`.
fn scan(path: &Path, name_lsn: Lsn, bytes: &[u8]) -> Scanned {
    let mut segment = Segment {
        path: path.to_path_buf(),
        first_lsn: name_lsn,
        records: 0,
        len: 0,
    };
    let file_len = bytes.len() as u64;
    let done = |segment, end| Scanned {
        segment,
        file_len,
        end,
    };
    if bytes.len() < HEADER_LEN {
        return done(segment, End::TornHeader);
    }
    match segment::decode_header(bytes) {
        Err(message) => return done(segment, End::Corrupt { offset: 0, message }),
        Ok(lsn) if lsn != name_lsn => {
            let message = format!("header says first LSN {lsn}, the file name says {name_lsn}");
            return done(
                segment,
                End::Corrupt {
                    offset: 12,
                    message,
                },
            );
        }
        Ok(_) => {}
    }
    let mut at = HEADER_LEN;
    loop {
        segment.len = at as u64;
        if at == bytes.len() {
            return done(segment, End::Clean);
        }
        let damage = match decode(bytes, at) {
            Frame::Record { next, .. } => {
                segment.records += 1;
                at = next;
                continue;
            }
            Frame::UnknownKind(kind) => {
                let message = format!("unknown record kind {kind} (written by a newer Laminar?)");
                return done(
                    segment,
                    End::Corrupt {
                        offset: at as u64,
                        message,
                    },
                );
            }
            Frame::Incomplete => "incomplete record".to_string(),
            Frame::Bad(why) => why,
        };
        let lsn = segment.first_lsn + segment.records;
        let end = match next_valid_record(bytes, at + 1) {
            None => End::Torn { offset: at as u64 },
            Some(valid) => End::Corrupt {
                offset: at as u64,
                message: format!(
                    "record LSN {lsn}: {damage}, but an intact record follows at byte offset {valid}"
                ),
            },
        };
        return done(segment, end);
    }
}

/// Scans every segment of `dir` in LSN order and classifies damage: a torn end is only a
/// torn tail in the last segment; a gap in LSNs is corruption.
fn scan_dir(storage: &dyn Storage, dir: &Path) -> Result<Vec<Scanned>, WalError> {
    let entries = match storage.read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => {
            return Err(WalError::io(
                format!("cannot list WAL directory {}", dir.display()),
                e,
            ))
        }
    };
    let mut named: Vec<(Lsn, PathBuf)> = entries
        .into_iter()
        .filter_map(|path| segment::parse_name(&path).map(|lsn| (lsn, path)))
        .collect();
    named.sort();
    let count = named.len();
    let mut scans: Vec<Scanned> = Vec::with_capacity(count);
    for (i, (lsn, path)) in named.into_iter().enumerate() {
        let bytes = storage
            .read(&path)
            .map_err(|e| WalError::io(format!("cannot read WAL segment {}", path.display()), e))?;
        let mut scanned = scan(&path, lsn, &bytes);
        if let Some(prev) = scans.last() {
            let expected = prev.segment.first_lsn + prev.segment.records;
            if lsn != expected && scanned.end != End::TornHeader {
                let message = format!(
                    "gap in LSNs: expected first LSN {expected} after {}, found {lsn}",
                    prev.segment.path.display()
                );
                scanned.end = End::Corrupt {
                    offset: 12,
                    message,
                };
            }
        }
        if i + 1 < count {
            let torn_at = match scanned.end {
                End::TornHeader => Some(0),
                End::Torn { offset } => Some(offset),
                _ => None,
            };
            if let Some(offset) = torn_at {
                let message = "the segment ends inside a record, but later segments follow".into();
                scanned.end = End::Corrupt { offset, message };
            }
        }
        scans.push(scanned);
    }
    Ok(scans)
}

/// Validates the WAL in `dir` (a missing directory is an empty log), cuts a torn tail
/// (truncating the last segment to its last intact record, synced; a segment holding only
/// part of its header is removed) and returns what is intact.
pub fn recover(storage: &dyn Storage, dir: &Path) -> Result<Recovery, WalError> {
    scan_log(storage, dir, true)
}

/// What [`recover`] would find, read without changing anything: a torn tail is left in
/// place (and not read) rather than cut. For read-only tools such as `state inspect`.
pub fn scan_intact(storage: &dyn Storage, dir: &Path) -> Result<Recovery, WalError> {
    scan_log(storage, dir, false)
}

fn scan_log(storage: &dyn Storage, dir: &Path, cut_torn_tail: bool) -> Result<Recovery, WalError> {
    let mut segments = Vec::new();
    let mut torn_tail = None;
    let mut next_lsn = 1;
    for scanned in scan_dir(storage, dir)? {
        let Scanned {
            segment,
            file_len,
            end,
        } = scanned;
        let path = segment.path.clone();
        match end {
            End::Corrupt { offset, message } => {
                return Err(WalError::Corrupt {
                    file: path,
                    offset,
                    message,
                });
            }
            End::TornHeader if !cut_torn_tail => {
                next_lsn = segment.first_lsn;
                continue;
            }
            End::TornHeader => {
                storage
                    .remove_file(&path)
                    .and_then(|()| storage.sync_dir(dir))
                    .map_err(|e| {
                        WalError::io(
                            format!("cannot remove torn WAL segment {}", path.display()),
                            e,
                        )
                    })?;
                next_lsn = segment.first_lsn;
                torn_tail = Some(TornTail {
                    file: path,
                    offset: 0,
                    bytes_cut: file_len,
                });
                continue;
            }
            End::Torn { .. } if !cut_torn_tail => {}
            End::Torn { offset } => {
                let cut = || -> std::io::Result<()> {
                    let mut file = storage.open_append(&path)?;
                    file.set_len(offset)?;
                    file.sync_data()
                };
                cut().map_err(|e| {
                    WalError::io(
                        format!("cannot cut the torn tail of WAL segment {}", path.display()),
                        e,
                    )
                })?;
                torn_tail = Some(TornTail {
                    file: path,
                    offset,
                    bytes_cut: file_len - offset,
                });
            }
            End::Clean => {}
        }
        next_lsn = segment.first_lsn + segment.records;
        segments.push(segment);
    }
    Ok(Recovery {
        dir: dir.to_path_buf(),
        segments,
        torn_tail,
        next_lsn,
    })
}

/// The state of one segment in an [`inspect`] summary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SegmentStatus {
    /// Every byte belongs to an intact record.
    Ok,
    /// The last segment ends in a torn record (or header) that recovery would cut.
    TornTail {
        /// Where the torn bytes start.
        offset: u64,
        /// How many bytes recovery would cut.
        bytes: u64,
    },
    /// Damage recovery refuses.
    Corrupt {
        /// Byte offset of the damage.
        offset: u64,
        /// What is wrong.
        message: String,
    },
}

/// One segment as [`inspect`] sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentSummary {
    /// The segment file.
    pub file: PathBuf,
    /// The LSN of its first record (from its name).
    pub first_lsn: Lsn,
    /// The LSN of its last intact record, if it has one.
    pub last_lsn: Option<Lsn>,
    /// Intact records.
    pub records: u64,
    /// File length in bytes.
    pub bytes: u64,
    /// Intact, torn tail or corrupt.
    pub status: SegmentStatus,
}

/// A read-only summary of every segment in `dir` (for `laminar state inspect`): changes
/// nothing, and reports damage per segment instead of stopping at the first.
pub fn inspect(storage: &dyn Storage, dir: &Path) -> Result<Vec<SegmentSummary>, WalError> {
    Ok(scan_dir(storage, dir)?
        .into_iter()
        .map(
            |Scanned {
                 segment,
                 file_len,
                 end,
             }| SegmentSummary {
                status: match end {
                    End::Clean => SegmentStatus::Ok,
                    End::TornHeader => SegmentStatus::TornTail {
                        offset: 0,
                        bytes: file_len,
                    },
                    End::Torn { offset } => SegmentStatus::TornTail {
                        offset,
                        bytes: file_len - offset,
                    },
                    End::Corrupt { offset, message } => SegmentStatus::Corrupt { offset, message },
                },
                last_lsn: (segment.records > 0).then(|| segment.first_lsn + segment.records - 1),
                file: segment.path,
                first_lsn: segment.first_lsn,
                records: segment.records,
                bytes: file_len,
            },
        )
        .collect())
}

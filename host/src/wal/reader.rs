//! [`WalReader`]: replays the records of validated segments from an LSN on.

use std::collections::VecDeque;
use std::sync::Arc;

use super::entry::{decode, Frame, Lsn, RecordKind};
use super::recovery::Segment;
use super::segment::HEADER_LEN;
use super::WalError;
use crate::storage::Storage;

/// One record read back from the WAL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WalRecord {
    /// Its LSN.
    pub lsn: Lsn,
    /// Its kind.
    pub kind: RecordKind,
    /// Its payload.
    pub payload: Vec<u8>,
}

/// An iterator over the records with LSN >= a start, in LSN order, made by
/// [`Recovery::read_from`](super::Recovery::read_from). It reads one segment at a time, up
/// to the length recovery validated, checking every checksum again; after an error it ends.
#[derive(Debug)]
pub struct WalReader {
    storage: Arc<dyn Storage>,
    segments: VecDeque<Segment>,
    from: Lsn,
    /// The segment being read: its bytes, the offset of the next record and its LSN.
    current: Option<(Segment, Vec<u8>, usize, Lsn)>,
    failed: bool,
}

impl WalReader {
    pub(crate) fn new(storage: Arc<dyn Storage>, segments: Vec<Segment>, from: Lsn) -> Self {
        let segments = segments
            .into_iter()
            .filter(|s| s.first_lsn + s.records > from)
            .collect();
        Self {
            storage,
            segments,
            from,
            current: None,
            failed: false,
        }
    }

    /// Reads every remaining record.
    pub fn read_all(self) -> Result<Vec<WalRecord>, WalError> {
        self.collect()
    }

    fn next_record(&mut self) -> Result<Option<WalRecord>, WalError> {
        loop {
            if self.current.is_none() {
                let Some(segment) = self.segments.pop_front() else {
                    return Ok(None);
                };
                let mut bytes = self.storage.read(&segment.path).map_err(|e| {
                    WalError::io(
                        format!("cannot read WAL segment {}", segment.path.display()),
                        e,
                    )
                })?;
                if (bytes.len() as u64) < segment.len {
                    return Err(WalError::Corrupt {
                        file: segment.path.clone(),
                        offset: bytes.len() as u64,
                        message: format!(
                            "the segment shrank to {} bytes since recovery validated {}",
                            bytes.len(),
                            segment.len
                        ),
                    });
                }
                // Bytes appended since recovery are not part of what was validated.
                bytes.truncate(usize::try_from(segment.len).unwrap_or(usize::MAX));
                let lsn = segment.first_lsn;
                self.current = Some((segment, bytes, HEADER_LEN, lsn));
            }
            let Some((segment, bytes, at, lsn)) = self.current.as_mut() else {
                continue;
            };
            if *at >= bytes.len() {
                self.current = None;
                continue;
            }
            let Frame::Record {
                kind,
                payload,
                next,
            } = decode(bytes, *at)
            else {
                return Err(WalError::Corrupt {
                    file: segment.path.clone(),
                    offset: *at as u64,
                    message: format!("record LSN {lsn} changed since recovery validated it"),
                });
            };
            let record = (*lsn >= self.from).then(|| WalRecord {
                lsn: *lsn,
                kind,
                payload: payload.to_vec(),
            });
            *at = next;
            *lsn += 1;
            if record.is_some() {
                return Ok(record);
            }
        }
    }
}

impl Iterator for WalReader {
    type Item = Result<WalRecord, WalError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        let next = self.next_record();
        self.failed = next.is_err();
        next.transpose()
    }
}

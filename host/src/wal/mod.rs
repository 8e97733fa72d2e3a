//! The write-ahead log: input that cannot be read again (stdin) is appended here, made
//! durable by group commit, and replayed on recovery from a checkpoint's LSN.
//!
//! Layout (fjall's `journal/`): [`entry`] frames records, [`segment`] names and heads the
//! segment files, [`writer`] appends and syncs ([`background`] on a thread of its own), [`recovery`] validates a directory and cuts
//! a torn tail, [`reader`] replays records. This module owns the bytes of the WAL
//! directory; it knows nothing of checkpoints or of what a payload means.
//!
//! ```text
//! <dir>/wal-00000000000000000001.log   records 1 ..= k        (closed, fully synced)
//! <dir>/wal-0000000000000000000k+1.log records k+1 ..         (active)
//! ```

mod background;
mod config;
mod entry;
mod error;
mod reader;
mod recovery;
mod segment;
mod writer;

pub use background::BackgroundWal;
pub use config::{SyncMode, WalConfig};
pub use entry::{Lsn, RecordKind};
pub use error::WalError;
pub use reader::{WalReader, WalRecord};
pub use recovery::{
    inspect, recover, scan_intact, Recovery, SegmentStatus, SegmentSummary, TornTail,
};
pub use writer::WalWriter;

#[cfg(test)]
mod test;
#[cfg(test)]
mod test_faults;
#[cfg(test)]
mod test_prop;

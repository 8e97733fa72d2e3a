//! [`WalError`]: what can go wrong writing, recovering or reading the WAL.

use std::path::PathBuf;

use super::entry::Lsn;

/// Errors of the write-ahead log. Every message names the file (and byte offset) involved.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WalError {
    /// A file operation failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done, naming the file.
        context: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A damaged record or header before the tail of the log (or a gap between segments):
    /// recovery stops here rather than skip acknowledged input.
    #[error("corrupt WAL segment {}, byte offset {offset}: {message}", file.display())]
    Corrupt {
        /// The segment file.
        file: PathBuf,
        /// Byte offset in the file of the damaged record or header field.
        offset: u64,
        /// What is wrong.
        message: String,
    },
    /// Replay was asked to start at an LSN the log does not hold.
    #[error("WAL in {} holds LSNs {first}..{next} (exclusive) but replay must start at LSN {from}", dir.display())]
    MissingRecords {
        /// The WAL directory.
        dir: PathBuf,
        /// The first LSN held.
        first: Lsn,
        /// The LSN the next append gets.
        next: Lsn,
        /// The LSN asked for.
        from: Lsn,
    },
    /// A payload larger than one record may hold.
    #[error("WAL record of {len} bytes exceeds the limit of {max} bytes")]
    RecordTooLarge {
        /// The payload length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// An earlier write or sync failed, so what reached the disk is unknown: the writer
    /// refuses further work. Drop it and recover (reopen) to continue from what is intact.
    #[error("the WAL writer for {} failed earlier ({first_error}); reopen it to recover", dir.display())]
    Poisoned {
        /// The WAL directory.
        dir: PathBuf,
        /// The first failure.
        first_error: String,
    },
}

impl WalError {
    /// An I/O error with context.
    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Self::Io {
            context: context.into(),
            source,
        }
    }
}

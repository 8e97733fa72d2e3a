//! [`StateError`]: what can go wrong storing, writing or opening state.

/// Errors of the state store. Every message names the file (or "in-memory state") and,
/// for a value, its key.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StateError {
    /// A file operation failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done, naming the file.
        context: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A state file is damaged: truncated, bad header, checksum mismatch, bad entry table.
    #[error("corrupt state file {file}: {message}")]
    Corrupt {
        /// The file.
        file: String,
        /// What is wrong.
        message: String,
    },
    /// A value's bytes are not a valid archive of the type asked for.
    #[error("state value for key '{key}' in {origin} is not a valid archive: {message}")]
    InvalidValue {
        /// The file, or "in-memory state".
        origin: String,
        /// The key, printable.
        key: String,
        /// What the validator found.
        message: String,
    },
    /// A value could not be serialized.
    #[error("cannot serialize the state value for key '{key}': {message}")]
    Serialize {
        /// The key, printable.
        key: String,
        /// Why.
        message: String,
    },
}

impl StateError {
    /// An I/O error with context.
    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Self::Io {
            context: context.into(),
            source,
        }
    }
}

/// A key as text for messages: printable ASCII kept, other bytes escaped.
pub(crate) fn printable(key: &[u8]) -> String {
    key.escape_ascii().to_string()
}

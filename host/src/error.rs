//! The one error type of the library: every message says what went wrong and where.

use std::fmt;

use datafusion_common::DataFusionError;

/// Where in a SQL script an error was found (1-based line and column).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SqlLocation {
    /// 1-based line in the script.
    pub line: u64,
    /// 1-based column in the line.
    pub column: u64,
}

impl fmt::Display for SqlLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.column)
    }
}

/// Errors returned by Laminar.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The SQL text could not be parsed.
    #[error("SQL syntax error at {location}: {message}")]
    SqlSyntax {
        /// Where the parser stopped.
        location: SqlLocation,
        /// What the parser expected or found.
        message: String,
    },
    /// The SQL parsed but cannot be planned (unknown column, type mismatch, …).
    #[error("{}{message}", location.map(|l| format!("SQL error at {l}: ")).unwrap_or_else(|| "SQL error: ".to_string()))]
    Plan {
        /// Where in the script, when known.
        location: Option<SqlLocation>,
        /// What is wrong.
        message: String,
    },
    /// The query is valid SQL but uses something a streaming query does not support yet.
    #[error("unsupported in a streaming query: {what}; {instead}")]
    Unsupported {
        /// What is not supported.
        what: String,
        /// What to write instead.
        instead: String,
    },
    /// A row of input could not be decoded.
    #[error("{origin}:{line}: {message}")]
    BadRow {
        /// The input (a file path, `stdin`, or a source name).
        origin: String,
        /// 1-based line (or row number for in-memory sources).
        line: u64,
        /// What is wrong with the row.
        message: String,
    },
    /// A file or stream could not be read or written.
    #[error("{context}: {source}")]
    Io {
        /// What was being done, naming the file.
        context: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A failure while running a query.
    #[error("{0}")]
    Execution(String),
    /// A command-line flag or argument has a value it cannot take; the message names it.
    #[error("{0}")]
    Usage(String),
    /// A state dir cannot be used: it holds another query's state, is in use, or no
    /// checkpoint in it can be read.
    #[error("state dir {dir}: {message}")]
    StateDir {
        /// The directory.
        dir: String,
        /// What is wrong.
        message: String,
    },
    /// State could not be stored, written or read back.
    #[error(transparent)]
    State(#[from] crate::state::StateError),
    /// A Kafka broker or topic could not be used: unreachable within the timeout, a
    /// missing topic, refused authorisation, a fenced producer, a failed delivery.
    #[error("kafka topic '{topic}' on {brokers}: {message}")]
    Kafka {
        /// The bootstrap brokers as configured.
        brokers: String,
        /// The topic.
        topic: String,
        /// What went wrong (one line; text from the client is escaped).
        message: String,
    },
    /// A Wasm plugin could not be loaded: unreadable, not a component, the wrong interface
    /// or version, or a description the host cannot use.
    #[error("cannot load plugin {path}: {message}")]
    PluginLoad {
        /// The plugin file.
        path: String,
        /// What is wrong with it.
        message: String,
    },
    /// A Wasm plugin failed during a call: a trap, a timeout, a memory limit, an error it
    /// returned, or a malformed result.
    #[error("plugin '{plugin}' failed in {function}: {message}")]
    Plugin {
        /// The name the plugin is registered under.
        plugin: String,
        /// The exported function that failed.
        function: String,
        /// What happened, with the plugin's captured stderr when it wrote any.
        message: String,
    },
}

/// Result type of the library.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// A planning error without a known location.
    pub(crate) fn plan(message: impl Into<String>) -> Self {
        Error::Plan {
            location: None,
            message: message.into(),
        }
    }

    /// A command-line usage error (a flag's value), reported without any SQL prefix.
    pub(crate) fn usage(message: impl Into<String>) -> Self {
        Error::Usage(message.into())
    }

    /// An unsupported-feature error with a hint of what to write instead.
    pub(crate) fn unsupported(what: impl Into<String>, instead: impl Into<String>) -> Self {
        Error::Unsupported {
            what: what.into(),
            instead: instead.into(),
        }
    }

    /// An I/O error with context naming the file or stream.
    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Error::Io {
            context: context.into(),
            source,
        }
    }

    /// Attaches a statement location to a planning error that has none.
    pub(crate) fn at(self, at: SqlLocation) -> Self {
        match self {
            Error::Plan {
                location: None,
                message,
            } => Error::Plan {
                location: Some(at),
                message,
            },
            other => other,
        }
    }
}

impl From<DataFusionError> for Error {
    fn from(err: DataFusionError) -> Self {
        let location = err
            .diagnostic()
            .and_then(|d| d.span)
            .map(|span| SqlLocation {
                line: span.start.line,
                column: span.start.column,
            });
        Error::Plan {
            location,
            message: one_line(&err.strip_backtrace()),
        }
    }
}

impl From<arrow::error::ArrowError> for Error {
    fn from(err: arrow::error::ArrowError) -> Self {
        Error::Execution(one_line(&err.to_string()))
    }
}

/// Collapses a multi-line message into one line.
pub(crate) fn one_line(message: &str) -> String {
    message.split_whitespace().collect::<Vec<_>>().join(" ")
}

//! The stdin source: standard input read as a live (unbounded) stream of lines, made
//! durable by a write-ahead log that every chunk goes to before it is decoded.

use std::io::Read;
use std::sync::{Arc, Mutex};

use super::input_log::InputLog;
use super::line_source::LineSource;
use crate::sql::SourceDef;

impl LineSource {
    /// Source `def` over standard input (`reader`: the process's stdin, or what an
    /// embedder hands in); `batch_size` applies unless the source sets its own.
    pub fn stdin(def: &SourceDef, reader: Box<dyn Read + Send>, batch_size: usize) -> Self {
        Self::from_reader(def, reader, "stdin".into(), true, batch_size)
    }

    /// Makes this (stdin) source durable: chunks the log holds beyond the checkpoint are
    /// replayed first, and every chunk read afterwards is logged before it is decoded.
    pub fn with_log(mut self, log: InputLog, bad_rows: u64) -> Self {
        let line = log.last_logged_line();
        self.start_at(0, line);
        // The header, if any, was in the first chunk a run ever read.
        self.first_chunk = line == 0;
        self.bad_rows = bad_rows;
        self.log = Some(Arc::new(Mutex::new(log)));
        self
    }
}

//! A source over a byte stream of CSV or JSON lines: a file or standard input.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};

use arrow::array::UInt32Array;
use arrow::compute::take_record_batch;
use arrow::datatypes::SchemaRef;

use super::decode::{Decoded, RowDecoder};
use super::input_log::InputLog;
use super::lines::{LineChunk, LineReader};
use super::{Source, SourceBatch};
use crate::checkpoint::SourcePosition;
use crate::error::{Error, Result};
use crate::sql::{Connector, FormatKind, OnError, SourceDef};

/// Decodes lines of a file or of stdin into batches.
pub struct LineSource {
    lines: LineReader<Box<dyn Read + Send>>,
    decoder: RowDecoder,
    schema: SchemaRef,
    origin: String,
    unbounded: bool,
    batch_size: usize,
    on_error: OnError,
    header: Option<bool>,
    format: FormatKind,
    delimiter: u8,
    first_chunk: bool,
    bad_rows: u64,
    /// Stdin of a durable run: every chunk goes to the write-ahead log first.
    log: Option<InputLog>,
}

impl LineSource {
    /// Opens the connector of `def`; `batch_size` applies unless the source sets its own.
    pub fn open(def: &SourceDef, batch_size: usize) -> Result<Self> {
        Self::open_at(def, batch_size, &SourcePosition::Start)
    }

    /// Opens the connector of `def` to read on from `position` (a file's byte offset and
    /// line; for stdin, see [`with_log`](Self::with_log)).
    pub fn open_at(def: &SourceDef, batch_size: usize, position: &SourcePosition) -> Result<Self> {
        let (reader, origin, unbounded): (Box<dyn Read + Send>, String, bool) = match &def
            .options
            .connector
        {
            Connector::File(path) => {
                let context =
                    || format!("cannot open source '{}' file {}", def.name, path.display());
                let mut file = File::open(path).map_err(|e| Error::io(context(), e))?;
                if let SourcePosition::File { offset, line } = position {
                    let len = file.metadata().map_err(|e| Error::io(context(), e))?.len();
                    if len < *offset {
                        return Err(Error::Execution(format!(
                                "source '{}' file {} holds {len} bytes, fewer than the {offset} a checkpoint read: it was changed since",
                                def.name,
                                path.display()
                            )));
                    }
                    file.seek(SeekFrom::Start(*offset))
                        .map_err(|e| Error::io(context(), e))?;
                    let mut source = Self::from_reader(
                        def,
                        Box::new(file),
                        path.display().to_string(),
                        false,
                        batch_size,
                    );
                    source.lines.start_at(*offset, *line);
                    source.first_chunk = *offset == 0;
                    return Ok(source);
                }
                (Box::new(file), path.display().to_string(), false)
            }
            Connector::Stdio => (Box::new(std::io::stdin()), "stdin".into(), true),
            Connector::Memory => {
                return Err(Error::plan(format!(
                    "source '{}' holds in-memory batches, not a stream",
                    def.name
                )))
            }
        };
        Ok(Self::from_reader(
            def, reader, origin, unbounded, batch_size,
        ))
    }

    /// A source over any reader (used for stdin, files and tests).
    pub fn from_reader(
        def: &SourceDef,
        reader: Box<dyn Read + Send>,
        origin: String,
        unbounded: bool,
        batch_size: usize,
    ) -> Self {
        Self {
            lines: LineReader::new(reader, unbounded),
            decoder: RowDecoder::new(
                def.options.format,
                def.schema.clone(),
                def.options.delimiter,
            ),
            schema: def.schema.clone(),
            origin,
            unbounded,
            batch_size: def.options.batch_size.unwrap_or(batch_size),
            on_error: def.options.on_error,
            header: def.options.header,
            format: def.options.format,
            delimiter: def.options.delimiter,
            first_chunk: true,
            bad_rows: 0,
            log: None,
        }
    }

    /// Makes this (stdin) source durable: chunks the log holds beyond the checkpoint are
    /// replayed first, and every chunk read afterwards is logged before it is decoded.
    pub fn with_log(mut self, log: InputLog, bad_rows: u64) -> Self {
        let line = log.last_logged_line();
        self.lines.start_at(0, line);
        // The header, if any, was in the first chunk a run ever read.
        self.first_chunk = line == 0;
        self.bad_rows = bad_rows;
        self.log = Some(log);
        self
    }

    /// Sets the count of rows skipped before a checkpoint (a resumed run goes on from it).
    pub fn set_bad_rows(&mut self, bad_rows: u64) {
        self.bad_rows = bad_rows;
    }

    /// The log of a durable stdin source.
    pub fn log(&self) -> Option<&InputLog> {
        self.log.as_ref()
    }

    /// Whether `line` is a CSV header naming the declared columns.
    fn is_header(&self, line: &[u8]) -> Result<bool> {
        let text = String::from_utf8_lossy(line);
        let names: Vec<String> = text
            .trim_end()
            .split(self.delimiter as char)
            .map(|f| f.trim().trim_matches('"').to_ascii_lowercase())
            .collect();
        let declared: Vec<String> = self
            .schema
            .fields()
            .iter()
            .map(|f| f.name().to_ascii_lowercase())
            .collect();
        match self.header {
            Some(false) => Ok(false),
            None => Ok(names == declared),
            Some(true) if names.len() == declared.len() => Ok(true),
            Some(true) => Err(Error::BadRow {
                origin: self.origin.clone(),
                line: 1,
                message: format!(
                    "header has {} columns, the source declares {} ({})",
                    names.len(),
                    declared.len(),
                    declared.join(", ")
                ),
            }),
        }
    }
}

impl LineSource {
    /// Decodes a chunk, failing or counting its bad lines as the source says.
    fn decode(&mut self, chunk: LineChunk) -> Result<SourceBatch> {
        let Decoded { batch, kept, bad } = self.decoder.decode(&chunk);
        if let Some(first) = bad.first() {
            if self.on_error == OnError::Fail {
                return Err(Error::BadRow {
                    origin: self.origin.clone(),
                    line: chunk.numbers[first.index],
                    message: format!(
                        "{} (add on_error = 'skip' to the source's WITH options to skip bad rows)",
                        first.message
                    ),
                });
            }
            self.bad_rows += bad.len() as u64;
        }
        let lines = kept.iter().map(|&i| chunk.numbers[i]).collect();
        Ok(SourceBatch { batch, lines })
    }
}

impl Source for LineSource {
    fn next_batch(&mut self) -> Result<Option<SourceBatch>> {
        loop {
            if let Some(chunk) = self.log.as_mut().and_then(InputLog::next_replayed) {
                self.first_chunk = false;
                return self.decode(chunk).map(Some);
            }
            let Some(mut chunk) = self
                .lines
                .next_chunk(self.batch_size)
                .map_err(|e| Error::io(format!("cannot read {}", self.origin), e))?
            else {
                return Ok(None);
            };
            if std::mem::take(&mut self.first_chunk)
                && self.format == FormatKind::Csv
                && self.is_header(chunk.line(0))?
            {
                let skip = chunk.starts.get(1).copied().unwrap_or(chunk.bytes.len());
                chunk.bytes.drain(..skip);
                chunk.starts.remove(0);
                chunk.numbers.remove(0);
                chunk.starts.iter_mut().for_each(|s| *s -= skip);
                if chunk.len() == 0 {
                    continue;
                }
            }
            if let Some(log) = &mut self.log {
                let idle = self.lines.nothing_buffered();
                log.append(&chunk, idle)?;
            }
            return self.decode(chunk).map(Some);
        }
    }

    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn origin(&self) -> &str {
        &self.origin
    }

    fn is_unbounded(&self) -> bool {
        self.unbounded
    }

    fn bad_rows_skipped(&self) -> u64 {
        self.bad_rows
    }

    fn position(&self) -> SourcePosition {
        match &self.log {
            Some(log) => log.position(),
            None => {
                let (offset, line) = self.lines.position();
                SourcePosition::File { offset, line }
            }
        }
    }

    fn sync_input(&mut self) -> Result<()> {
        match &mut self.log {
            Some(log) => log.sync(),
            None => Ok(()),
        }
    }

    fn release_input(&mut self, position: &SourcePosition) -> Result<()> {
        match &mut self.log {
            Some(log) => log.release(position),
            None => Ok(()),
        }
    }
}

/// Keeps the rows of `batch` at `indices` (used when later stages drop rows).
pub(crate) fn keep_rows(batch: &SourceBatch, indices: &[u32]) -> Result<SourceBatch> {
    let take = UInt32Array::from(indices.to_vec());
    Ok(SourceBatch {
        batch: take_record_batch(&batch.batch, &take)?,
        lines: indices.iter().map(|&i| batch.lines[i as usize]).collect(),
    })
}

//! The core of the line sources: decoding a byte stream of CSV or JSON lines into
//! batches, on the calling thread or a pipeline of decoder threads, with the header rule
//! and bad-row accounting. Opening a file is [`super::file`], standard input
//! [`super::stdin`].

use std::fs::File;
use std::io::{BufReader, Read};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;

use super::decode::{Decoded, RowDecoder};
use super::file_input::{read_file_at, skip_blank_lines, ReadChecksum};
use super::header::Header;
use super::input_log::{stdin_has_input, InputLog};
use super::lines::{LineChunk, LineReader};
use super::pipeline::{Cut, Pipeline, PipelineEnd, Position};
use super::ranges::{range_bytes, FileRanges};
use super::{Source, SourceBatch};
use crate::checkpoint::{FileIdentity, SourcePosition};
use crate::error::{Error, Result};
use crate::sql::{OnError, SourceDef};
use crate::time::EventTimeRule;

/// Bytes read from the input at a time on the calling thread or stdin's reading thread.
const READ_BUFFER: usize = 1 << 20;

/// How long a live input (stdin) may deliver nothing before [`Source::next_batch`]
/// returns an empty batch, so that a durable run checkpoints while its input pauses.
const IDLE_TICK: Duration = Duration::from_millis(100);

/// The lines of a source's input, read through a buffer.
type InputLines = LineReader<BufReader<Box<dyn Read + Send>>>;

/// Decodes lines of a file or of stdin into batches: on the calling thread, or (with
/// [`with_decode_threads`](Self::with_decode_threads)) on a pipeline of decoder threads
/// that hands batches back in input order.
pub struct LineSource {
    /// The input, until a pipeline takes it.
    pub(super) lines: Option<InputLines>,
    /// A file input's handle for a pipeline, whose decoders read byte ranges of it.
    pub(super) file: Option<File>,
    /// A file input's length when it was opened: the source reads that much, whatever
    /// is appended while it runs, at any thread count.
    pub(super) file_len: u64,
    /// The decoder threads, once started (at the first batch).
    pub(super) pipeline: Option<Pipeline>,
    /// Decoder threads to start; 0 decodes on the calling thread.
    pub(super) decode_threads: usize,
    /// With a pipeline: the input position after the last batch returned.
    pub(super) position: Position,
    pub(super) decoder: RowDecoder,
    pub(super) schema: SchemaRef,
    pub(super) origin: String,
    pub(super) unbounded: bool,
    pub(super) batch_size: usize,
    pub(super) on_error: OnError,
    pub(super) header: Header,
    pub(super) first_chunk: bool,
    pub(super) bad_rows: u64,
    /// Stdin of a durable run: every chunk goes to the write-ahead log first (on the
    /// reading thread when there is a pipeline; checkpoints sync it from the query thread).
    pub(super) log: Option<Arc<Mutex<InputLog>>>,
    /// A file source: the checksum of the bytes read so far, kept up at each checkpoint.
    pub(super) read_so_far: Option<ReadChecksum>,
}

impl LineSource {
    /// A source over any reader (used for stdin, files and tests).
    pub fn from_reader(
        def: &SourceDef,
        reader: Box<dyn Read + Send>,
        origin: String,
        unbounded: bool,
        batch_size: usize,
    ) -> Self {
        Self {
            lines: Some(LineReader::new(
                BufReader::with_capacity(READ_BUFFER, reader),
                unbounded,
            )),
            file: None,
            file_len: 0,
            pipeline: None,
            decode_threads: 0,
            position: (0, 0),
            decoder: RowDecoder::new(
                def.options.format,
                def.schema.clone(),
                def.options.delimiter,
            ),
            schema: def.schema.clone(),
            header: Header::new(def, &origin),
            origin,
            unbounded,
            batch_size: def.options.batch_size.unwrap_or(batch_size),
            on_error: def.options.on_error,
            first_chunk: true,
            bad_rows: 0,
            log: None,
            read_so_far: None,
        }
    }

    /// Decodes only the columns at `columns` (indices into the source's schema), the
    /// others all NULL; an empty list decodes every column.
    pub fn with_projection(mut self, columns: &[usize]) -> Self {
        self.decoder.set_projection(columns);
        self
    }

    /// Runs the event-time local pass of `rule` (a query's, see
    /// [`EventTimeStage::rule`](crate::time::EventTimeStage::rule)) on every batch where
    /// it is decoded, on the decoder threads when there are some; `None` leaves it to the
    /// query's event-time stage.
    pub fn with_event_time(mut self, rule: Option<EventTimeRule>) -> Self {
        if let Some(rule) = rule {
            self.decoder.set_event_time(rule);
        }
        self
    }

    /// Decodes on `threads` decoder threads (0, the default: read and decode on the
    /// thread that calls `next_batch`). A file is read by the decoders themselves, each
    /// its own byte ranges; stdin by a feeding thread, which cuts it into chunks (and decodes a live chunk itself when it has caught up
    /// with the input and the caller with it). Rows, line numbers, bad-row handling,
    /// counters and [`Source::position`] are the same at any count (batches may end at a
    /// range's end).
    /// A source with a write-ahead log ([`with_log`](Self::with_log)) appends each chunk
    /// to it on the feeding thread, in input order, before the chunk is decoded.
    pub fn with_decode_threads(mut self, threads: usize) -> Self {
        self.decode_threads = threads;
        self
    }

    /// Says the input (already positioned there) starts `offset` bytes and `line` lines
    /// into the stream.
    pub(super) fn start_at(&mut self, offset: u64, line: u64) {
        if let Some(lines) = &mut self.lines {
            lines.start_at(offset, line);
        }
        self.position = (offset, line);
    }

    /// Sets the count of rows skipped before a checkpoint (a resumed run goes on from it).
    pub fn set_bad_rows(&mut self, bad_rows: u64) {
        self.bad_rows = bad_rows;
    }
}

impl LineSource {
    /// Fails or counts the bad lines of a decoded chunk as the source says, and numbers
    /// its rows.
    fn finish(&mut self, numbers: Vec<u64>, decoded: Decoded) -> Result<SourceBatch> {
        let Decoded {
            batch,
            kept,
            bad,
            times,
        } = decoded;
        if let Some(first) = bad.first() {
            if self.on_error == OnError::Fail {
                // A bad event time on an earlier row is the input's first error, whatever
                // the batch size (the event-time stage would raise it with the next batch).
                let earlier = times
                    .as_ref()
                    .and_then(|t| t.first_bad.as_ref())
                    .filter(|(row, _)| kept.get(*row).is_some_and(|&i| i < first.index));
                if let Some((row, message)) = earlier {
                    return Err(Error::BadRow {
                        origin: self.origin.clone(),
                        line: numbers[kept[*row]],
                        message: format!(
                            "{message} (add on_error = 'skip' to the source's WITH options to skip bad rows)"
                        ),
                    });
                }
                return Err(Error::BadRow {
                    origin: self.origin.clone(),
                    line: numbers[first.index],
                    message: format!(
                        "{} (add on_error = 'skip' to the source's WITH options to skip bad rows)",
                        first.message
                    ),
                });
            }
            self.bad_rows += bad.len() as u64;
        }
        // Every line kept (the usual case): its numbers are the rows' numbers as they are.
        let lines = if kept.len() == numbers.len() {
            numbers
        } else {
            kept.iter().map(|&i| numbers[i]).collect()
        };
        Ok(SourceBatch {
            batch,
            lines,
            times,
            partition: None,
        })
    }

    /// Decodes a chunk on this thread.
    fn decode(&mut self, chunk: LineChunk) -> Result<SourceBatch> {
        let decoded = self.decoder.decode(&chunk);
        self.finish(chunk.numbers, decoded)
    }

    /// Starts the decoder threads, handing them the input.
    fn start_pipeline(&mut self) -> Result<()> {
        let Some(mut lines) = self.lines.take() else {
            return Ok(());
        };
        if let (Some(file), None) = (self.file.take(), &self.log) {
            let mut start = lines.position();
            let header = std::mem::take(&mut self.first_chunk).then(|| self.header.clone());
            if header.is_some() {
                // The header rule applies to the first line that is not blank: the ranges
                // start there, so that it is in the first range however many blank lines
                // come before it.
                start = skip_blank_lines(&file, start)
                    .map_err(|e| Error::io(format!("cannot read {}", self.origin), e))?;
            }
            let bytes = range_bytes(self.batch_size);
            let ranges =
                FileRanges::up_to(file, &self.origin, start.0, header, bytes, self.file_len);
            self.position = start;
            let pipeline = Pipeline::spawn_ranges(
                ranges,
                &self.decoder,
                self.decode_threads,
                self.batch_size,
                start,
            )?;
            self.pipeline = Some(pipeline);
            return Ok(());
        }
        let log = self.log.clone();
        self.position = match &log {
            Some(log) => locked(log).cursor(),
            None => lines.position(),
        };
        let header = self.header.clone();
        let origin = self.origin.clone();
        let batch_size = self.batch_size;
        let mut first = std::mem::take(&mut self.first_chunk);
        let cut = move || {
            let Some(log) = &log else {
                return Ok(
                    match next_chunk(&mut lines, &header, &mut first, batch_size, &origin)? {
                        Some(chunk) => Cut::Chunk(chunk, lines.position()),
                        None => Cut::End(lines.position()),
                    },
                );
            };
            // Durable stdin: the WAL's chunks beyond the checkpoint first, then each chunk
            // read is appended before it goes to a decoder; positions are (LSN, line).
            let replayed = locked(log).next_replayed()?;
            if let Some(chunk) = replayed {
                first = false;
                return Ok(Cut::Chunk(chunk, locked(log).cursor()));
            }
            Ok(
                match next_chunk(&mut lines, &header, &mut first, batch_size, &origin)? {
                    Some(chunk) => {
                        let idle = lines.nothing_buffered() && !stdin_has_input();
                        let mut log = locked(log);
                        log.append(&chunk, idle)?;
                        Cut::Chunk(chunk, log.cursor())
                    }
                    None => Cut::End(locked(log).cursor()),
                },
            )
        };
        let mut pipeline = Pipeline::spawn(
            cut,
            &self.decoder,
            self.decode_threads,
            self.batch_size,
            self.position,
            !self.unbounded,
        )?;
        if self.unbounded {
            pipeline = pipeline.with_idle_after(IDLE_TICK);
        }
        self.pipeline = Some(pipeline);
        Ok(())
    }

    /// The next batch from the decoder threads, in input order.
    fn next_decoded(&mut self) -> Result<Option<SourceBatch>> {
        let Some(pipeline) = &mut self.pipeline else {
            return Ok(None);
        };
        match pipeline.next() {
            Ok(piece) => {
                let batch = self.finish(piece.numbers, piece.decoded)?;
                self.position = piece.end;
                Ok(Some(batch))
            }
            Err(PipelineEnd::End(position)) => {
                self.position = position;
                Ok(None)
            }
            Err(PipelineEnd::Failed(e)) => Err(e),
            Err(PipelineEnd::Done) => Ok(None),
            Err(PipelineEnd::Idle) => Ok(Some(SourceBatch {
                batch: RecordBatch::new_empty(self.schema.clone()),
                lines: Vec::new(),
                times: None,
                partition: None,
            })),
        }
    }
}

/// The next chunk of `lines` with a CSV header cut from the first one, or `None` at the
/// end of the input.
fn next_chunk(
    lines: &mut InputLines,
    header: &Header,
    first: &mut bool,
    batch_size: usize,
    origin: &str,
) -> Result<Option<LineChunk>> {
    loop {
        let Some(mut chunk) = lines
            .next_chunk(batch_size)
            .map_err(|e| Error::io(format!("cannot read {origin}"), e))?
        else {
            return Ok(None);
        };
        if std::mem::take(first) && !header.strip(&mut chunk)? {
            continue;
        }
        return Ok(Some(chunk));
    }
}

impl Source for LineSource {
    fn next_batch(&mut self) -> Result<Option<SourceBatch>> {
        if self.decode_threads > 0 && self.pipeline.is_none() {
            self.start_pipeline()?;
        }
        if self.pipeline.is_some() {
            return self.next_decoded();
        }
        let replayed = match &self.log {
            Some(log) => locked(log).next_replayed()?,
            None => None,
        };
        if let Some(chunk) = replayed {
            self.first_chunk = false;
            return self.decode(chunk).map(Some);
        }
        let Some(lines) = &mut self.lines else {
            return Ok(None);
        };
        let Some(chunk) = next_chunk(
            lines,
            &self.header,
            &mut self.first_chunk,
            self.batch_size,
            &self.origin,
        )?
        else {
            return Ok(None);
        };
        if let Some(log) = &self.log {
            // A log belongs to stdin: it is idle when nothing is buffered and nothing waits.
            let idle = lines.nothing_buffered() && !stdin_has_input();
            locked(log).append(&chunk, idle)?;
        }
        self.decode(chunk).map(Some)
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
            // With a pipeline the log runs ahead of the batches returned.
            Some(_) if self.pipeline.is_some() => SourcePosition::Wal {
                lsn: self.position.0,
                line: self.position.1,
            },
            Some(log) => locked(log).position(),
            None => {
                let (offset, line) = match &self.lines {
                    Some(lines) => lines.position(),
                    None => self.position,
                };
                SourcePosition::File { offset, line }
            }
        }
    }

    fn sync_input(&mut self) -> Result<()> {
        match &self.log {
            Some(log) => locked(log).sync(),
            None => Ok(()),
        }
    }

    fn stop_reading(&mut self) -> Option<u64> {
        let log = self.log.as_ref()?;
        let mut log = locked(log);
        log.close();
        Some(log.last_logged_line())
    }

    fn release_input(&mut self, position: &SourcePosition) -> Result<()> {
        match &self.log {
            Some(log) => locked(log).release(position),
            None => Ok(()),
        }
    }

    fn file_identity(&mut self) -> Result<Option<FileIdentity>> {
        let SourcePosition::File { offset, .. } = self.position() else {
            return Ok(None);
        };
        let Some(read) = &mut self.read_so_far else {
            return Ok(None);
        };
        let file = &read.file;
        read.checksum
            .extend_to(offset, |buf, at| read_file_at(file, buf, at))
            .map_err(|e| Error::io(format!("cannot read {}", self.origin), e))?;
        Ok(Some(read.checksum.identity(read.device, read.inode)))
    }
}

/// The log, locked. A thread that panicked while holding it left it as it was between
/// calls (every change is one call), so it is used on.
fn locked(log: &Mutex<InputLog>) -> MutexGuard<'_, InputLog> {
    log.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
#[path = "line_source_tests.rs"]
mod tests;

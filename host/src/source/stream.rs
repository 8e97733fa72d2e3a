//! A source over a byte stream of CSV or JSON lines: a file or standard input.

use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;

use super::decode::{Decoded, RowDecoder};
use super::file_input::{device_and_inode, read_file_at, skip_blank_lines, ReadChecksum};
use super::header::Header;
use super::input_log::{stdin_has_input, InputLog};
use super::lines::{LineChunk, LineReader};
use super::pipeline::{Cut, Pipeline, PipelineEnd, Position};
use super::ranges::{range_bytes, FileRanges};
use super::{Source, SourceBatch};
use crate::checkpoint::{check_prefix, FileIdentity, RunningChecksum, SourcePosition};
use crate::error::{Error, Result};
use crate::sql::{Connector, OnError, SourceDef};
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
    lines: Option<InputLines>,
    /// A file input's handle for a pipeline, whose decoders read byte ranges of it.
    file: Option<File>,
    /// A file input's length when it was opened: the source reads that much, whatever
    /// is appended while it runs, at any thread count.
    file_len: u64,
    /// The decoder threads, once started (at the first batch).
    pipeline: Option<Pipeline>,
    /// Decoder threads to start; 0 decodes on the calling thread.
    decode_threads: usize,
    /// With a pipeline: the input position after the last batch returned.
    position: Position,
    decoder: RowDecoder,
    schema: SchemaRef,
    origin: String,
    unbounded: bool,
    batch_size: usize,
    on_error: OnError,
    header: Header,
    first_chunk: bool,
    bad_rows: u64,
    /// Stdin of a durable run: every chunk goes to the write-ahead log first (on the
    /// reading thread when there is a pipeline; checkpoints sync it from the query thread).
    log: Option<Arc<Mutex<InputLog>>>,
    /// A file source: the checksum of the bytes read so far, kept up at each checkpoint.
    read_so_far: Option<ReadChecksum>,
}

impl LineSource {
    /// Opens the connector of `def`; `batch_size` applies unless the source sets its own.
    pub fn open(def: &SourceDef, batch_size: usize) -> Result<Self> {
        Self::open_at(def, batch_size, &SourcePosition::Start, None)
    }

    /// Opens the connector of `def` to read on from `position` (a file's byte offset and
    /// line; for stdin, see [`with_log`](Self::with_log)). A file is checked against the
    /// `identity` the checkpoint recorded: one whose bytes before the offset changed is
    /// refused, saying so.
    pub fn open_at(
        def: &SourceDef,
        batch_size: usize,
        position: &SourcePosition,
        identity: Option<&FileIdentity>,
    ) -> Result<Self> {
        let (reader, origin, unbounded): (Box<dyn Read + Send>, String, bool) = match &def
            .options
            .connector
        {
            Connector::File(path) => {
                let context =
                    || format!("cannot open source '{}' file {}", def.name, path.display());
                let mut file = File::open(path).map_err(|e| Error::io(context(), e))?;
                let ranges = file.try_clone().map_err(|e| Error::io(context(), e))?;
                let (offset, line) = match position {
                    SourcePosition::File { offset, line } => (*offset, *line),
                    _ => (0, 0),
                };
                let meta = file.metadata().map_err(|e| Error::io(context(), e))?;
                let (device, inode) = device_and_inode(&meta);
                let changed = |what: String| {
                    Error::Execution(format!(
                        "source '{}' file {} is not the one the checkpoint read: {what}; restore it, or remove the state dir to start over",
                        def.name,
                        path.display()
                    ))
                };
                let checksum = match identity {
                    Some(recorded) if offset > 0 => {
                        check_prefix(recorded, (device, inode), meta.len(), |buf, at| {
                            read_file_at(&file, buf, at)
                        })
                        .map_err(changed)?
                    }
                    _ if meta.len() < offset => {
                        return Err(changed(format!(
                            "it holds {} bytes, fewer than the {offset} the checkpoint read",
                            meta.len()
                        )))
                    }
                    _ => {
                        let mut sum = RunningChecksum::default();
                        sum.extend_to(offset, |buf, at| read_file_at(&file, buf, at))
                            .map_err(|e| Error::io(context(), e))?;
                        sum
                    }
                };
                let read_so_far = ReadChecksum {
                    file: file.try_clone().map_err(|e| Error::io(context(), e))?,
                    checksum,
                    device,
                    inode,
                };
                if offset > 0 {
                    file.seek(SeekFrom::Start(offset))
                        .map_err(|e| Error::io(context(), e))?;
                }
                // The file as long as it is now, as the decoder threads' ranges read it:
                // rows appended while the run goes on are read by the next run, whatever
                // the thread count.
                let mut source = Self::from_reader(
                    def,
                    Box::new(file.take(meta.len().saturating_sub(offset))),
                    path.display().to_string(),
                    false,
                    batch_size,
                );
                source.start_at(offset, line);
                source.first_chunk = offset == 0;
                source.file = Some(ranges);
                source.file_len = meta.len();
                source.read_so_far = Some(read_so_far);
                return Ok(source);
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
    fn start_at(&mut self, offset: u64, line: u64) {
        if let Some(lines) = &mut self.lines {
            lines.start_at(offset, line);
        }
        self.position = (offset, line);
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
#[path = "stream_tests.rs"]
mod tests;

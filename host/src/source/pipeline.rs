//! Pipelined decoding: a feeding thread hands out work, a small pool of decoder threads
//! decodes it, and the caller takes the decoded chunks back strictly in input order.
//!
//! The work is either chunks of lines the feeder cut itself (stdin, which only one thread
//! can read) or byte ranges of a file, which each decoder reads and cuts on its own
//! ([`ByteRange`]), so reading a file scales with the decoders. Job `n` goes to decoder
//! `n % threads` and comes back whole, as one message, from that decoder's output, so
//! order needs no reordering buffer: each decoder handles its jobs in order, and the
//! caller reads the decoders' outputs in turn. Every channel is bounded (a few jobs per
//! decoder), so a slow caller holds the feeder back. End of input and
//! errors of the feeding side travel in sequence like jobs; a panic on any thread becomes
//! an error. Dropping the [`Pipeline`] closes the outputs: decoders and feeder stop at
//! their next send, and for a bounded input the drop waits for them.

use std::collections::VecDeque;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::thread::JoinHandle;

use super::decode::{Decoded, RowDecoder};
use super::lines::LineChunk;
use super::ranges::ByteRange;
use crate::error::{Error, Result};

/// Jobs (chunks or ranges) waiting in each channel, in front of and behind every decoder.
const QUEUED_PER_DECODER: usize = 2;

/// A byte offset and a line number: where the input stands after a chunk.
pub(crate) type Position = (u64, u64);

/// What the feeding side produces each time it is asked: a chunk and the position just
/// after it, a file range for a decoder to read, or the end of the input.
pub(crate) enum Cut {
    /// The next chunk of lines.
    Chunk(LineChunk, Position),
    /// The next range of a file; its lines are numbered on from the ranges before it.
    Range(ByteRange),
    /// The input has ended, at this position (`None`: where the last range ended).
    End(Option<Position>),
}

/// A decoded chunk, in input order.
pub(crate) struct Piece {
    /// Line number of each line of the chunk.
    pub(crate) numbers: Vec<u64>,
    /// The decoded rows and the bad lines.
    pub(crate) decoded: Decoded,
    /// The input position just after the chunk.
    pub(crate) end: Position,
}

/// What a decoder hands back for one job: one message a job, so each decoder can run a
/// whole job ahead of the caller.
enum Step {
    /// A decoded chunk.
    Piece(Piece),
    /// A decoded range: its chunks (line numbers counted from 1 in the range), the byte
    /// offset after it and the lines it held (`None`: no line starts in it, or it
    /// failed), and the error that stopped it after those chunks, if one did.
    Range {
        pieces: Vec<Piece>,
        end: Option<(u64, u64)>,
        failure: Option<Error>,
    },
    End(Option<Position>),
}

/// What the feeder hands a decoder.
enum Job {
    Chunk(LineChunk, Position),
    Range(ByteRange),
    Fail(Error),
    End(Option<Position>),
}

/// The running pipeline: the feeding thread, the decoders, and the next job to take.
pub(crate) struct Pipeline {
    outputs: Vec<Receiver<Result<Step>>>,
    threads: Vec<JoinHandle<()>>,
    /// Sequence number of the next job to take.
    next: usize,
    /// The pieces of the range taken last that are still to hand out, and the error that
    /// comes after them.
    pending: VecDeque<Piece>,
    pending_failure: Option<Error>,
    /// Where the ranges taken so far end: the byte offset, and the lines before the next
    /// range (what its line numbers count on from).
    ranges_end: Position,
    /// The end (or an error) was taken: nothing more comes.
    finished: bool,
    /// Join the threads on drop (a bounded input; stdin's reader may wait on a read).
    join_on_drop: bool,
}

impl Pipeline {
    /// Starts a feeding thread that calls `cut` until it returns the end or an error, and
    /// `decoders` (at least one) threads decoding with `decoder` and cutting the ranges
    /// they are handed into chunks of `batch_size` lines. The input starts at `start`.
    pub(crate) fn spawn<C>(
        mut cut: C,
        decoder: &RowDecoder,
        decoders: usize,
        batch_size: usize,
        start: Position,
        join_on_drop: bool,
    ) -> Result<Self>
    where
        C: FnMut() -> Result<Cut> + Send + 'static,
    {
        let decoders = decoders.max(1);
        let mut inputs = Vec::with_capacity(decoders);
        let mut outputs = Vec::with_capacity(decoders);
        let mut threads = Vec::with_capacity(decoders + 1);
        for index in 0..decoders {
            let (job_tx, job_rx) = sync_channel::<Job>(QUEUED_PER_DECODER);
            let (step_tx, step_rx) = sync_channel::<Result<Step>>(QUEUED_PER_DECODER);
            let mut decoder = decoder.clone();
            let thread = std::thread::Builder::new()
                .name(format!("laminar-decode-{index}"))
                .spawn(move || decode_loop(&mut decoder, batch_size, &job_rx, &step_tx))
                .map_err(|e| Error::io("cannot start a decoder thread", e))?;
            inputs.push(job_tx);
            outputs.push(step_rx);
            threads.push(thread);
        }
        let reader = std::thread::Builder::new()
            .name("laminar-read".into())
            .spawn(move || read_loop(&mut cut, &inputs))
            .map_err(|e| Error::io("cannot start the reader thread", e))?;
        threads.push(reader);
        Ok(Self {
            outputs,
            threads,
            next: 0,
            pending: VecDeque::new(),
            pending_failure: None,
            ranges_end: start,
            finished: false,
            join_on_drop,
        })
    }

    /// The next decoded chunk in input order, or why there is none: the end of the input
    /// (once), an error of the feeder or a decoder (once), and then always `Done`.
    pub(crate) fn next(&mut self) -> std::result::Result<Piece, PipelineEnd> {
        loop {
            if let Some(piece) = self.pending.pop_front() {
                return Ok(piece);
            }
            if let Some(e) = self.pending_failure.take() {
                self.finished = true;
                return Err(PipelineEnd::Failed(e));
            }
            if self.finished {
                return Err(PipelineEnd::Done);
            }
            let slot = self.next % self.outputs.len();
            self.next += 1;
            let step = self.outputs[slot].recv().unwrap_or_else(|_| {
                Err(Error::Execution(
                    "a decoder thread of the source stopped unexpectedly".into(),
                ))
            });
            match step {
                Ok(Step::Piece(piece)) => return Ok(piece),
                Ok(Step::Range {
                    mut pieces,
                    end,
                    failure,
                }) => {
                    let base = self.ranges_end.1;
                    for piece in &mut pieces {
                        piece.numbers.iter_mut().for_each(|n| *n += base);
                        piece.end.1 += base;
                    }
                    if let Some((offset, lines)) = end {
                        self.ranges_end = (offset, base + lines);
                    }
                    self.pending = pieces.into();
                    self.pending_failure = failure;
                }
                Ok(Step::End(position)) => {
                    self.finished = true;
                    return Err(PipelineEnd::End(position.unwrap_or(self.ranges_end)));
                }
                Err(e) => {
                    self.finished = true;
                    return Err(PipelineEnd::Failed(e));
                }
            }
        }
    }
}

/// Why [`Pipeline::next`] returned no chunk.
pub(crate) enum PipelineEnd {
    /// The input ended at this position.
    End(Position),
    /// The reader or a decoder failed.
    Failed(Error),
    /// The end or an error was already returned.
    Done,
}

impl Drop for Pipeline {
    fn drop(&mut self) {
        // Closing the outputs makes every thread stop at its next send.
        self.outputs.clear();
        if self.join_on_drop {
            for thread in self.threads.drain(..) {
                // Each thread catches its own panics; a join error cannot carry anything.
                let _ = thread.join();
            }
        }
    }
}

/// The feeding thread: cuts chunks (or hands out ranges) and deals them out to the
/// decoders in turn.
fn read_loop<C>(cut: &mut C, inputs: &[SyncSender<Job>])
where
    C: FnMut() -> Result<Cut>,
{
    for sequence in 0.. {
        let job = match catch_unwind(AssertUnwindSafe(&mut *cut)) {
            Ok(Ok(Cut::Chunk(chunk, end))) => Job::Chunk(chunk, end),
            Ok(Ok(Cut::Range(range))) => Job::Range(range),
            Ok(Ok(Cut::End(position))) => Job::End(position),
            Ok(Err(e)) => Job::Fail(e),
            Err(panic) => Job::Fail(panicked("reader", panic.as_ref())),
        };
        let last = matches!(job, Job::Fail(_) | Job::End(_));
        if inputs[sequence % inputs.len()].send(job).is_err() || last {
            return;
        }
    }
}

/// A decoder thread: decodes the jobs it is handed, in order, until the input closes.
fn decode_loop(
    decoder: &mut RowDecoder,
    batch_size: usize,
    jobs: &Receiver<Job>,
    steps: &SyncSender<Result<Step>>,
) {
    let mut buffer = Vec::new();
    for job in jobs {
        let step = match job {
            Job::Chunk(chunk, end) => {
                match catch_unwind(AssertUnwindSafe(|| decoder.decode(&chunk))) {
                    Ok(decoded) => Ok(Step::Piece(Piece {
                        numbers: chunk.numbers,
                        decoded,
                        end,
                    })),
                    Err(panic) => Err(panicked("decoder", panic.as_ref())),
                }
            }
            Job::Range(range) => {
                match catch_unwind(AssertUnwindSafe(|| {
                    decode_range(decoder, &range, batch_size, &mut buffer)
                })) {
                    Ok(step) => Ok(step),
                    Err(panic) => Err(panicked("decoder", panic.as_ref())),
                }
            }
            Job::End(position) => Ok(Step::End(position)),
            Job::Fail(e) => Err(e),
        };
        if steps.send(step).is_err() {
            return;
        }
    }
}

/// Reads (into `buffer`), cuts and decodes one range into chunks of `batch_size` lines.
fn decode_range(
    decoder: &mut RowDecoder,
    range: &ByteRange,
    batch_size: usize,
    buffer: &mut Vec<u8>,
) -> Step {
    let mut pieces = Vec::new();
    let failure = match range.lines(buffer) {
        Ok(None) => None,
        Ok(Some(mut lines)) => loop {
            match lines.next_chunk(batch_size) {
                Ok(Some(chunk)) => {
                    let decoded = decoder.decode(&chunk);
                    pieces.push(Piece {
                        numbers: chunk.numbers,
                        decoded,
                        end: lines.position(),
                    });
                }
                Ok(None) => {
                    return Step::Range {
                        pieces,
                        end: Some(lines.position()),
                        failure: None,
                    }
                }
                Err(e) => break Some(e),
            }
        },
        Err(e) => Some(e),
    };
    Step::Range {
        pieces,
        end: None,
        failure,
    }
}

/// The error a panic on a pipeline thread becomes.
fn panicked(thread: &str, panic: &(dyn std::any::Any + Send)) -> Error {
    Error::Execution(format!(
        "the source's {thread} thread panicked: {}",
        crate::text::panic_message(panic)
    ))
}

#[cfg(test)]
mod tests {
    use super::super::lines::LineReader;
    use super::*;
    use crate::sql::FormatKind;
    use arrow::array::{Array, Int64Array};
    use arrow::datatypes::{DataType, Field, Schema};
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    fn decoder() -> RowDecoder {
        let schema = Arc::new(Schema::new(vec![Field::new("v", DataType::Int64, true)]));
        RowDecoder::new(FormatKind::Csv, schema, b',')
    }

    /// A cut over `text` in chunks of `rows` lines.
    fn cutter(text: String, rows: usize) -> impl FnMut() -> Result<Cut> + Send {
        let mut lines = LineReader::new(
            std::io::BufReader::new(std::io::Cursor::new(text.into_bytes())),
            false,
        );
        move || match lines.next_chunk(rows) {
            Ok(Some(chunk)) => Ok(Cut::Chunk(chunk, lines.position())),
            Ok(None) => Ok(Cut::End(Some(lines.position()))),
            Err(e) => Err(Error::io("read", e)),
        }
    }

    fn values(piece: &Piece) -> Vec<i64> {
        let column = piece.decoded.batch.column(0);
        let ints = column.as_any().downcast_ref::<Int64Array>().unwrap();
        (0..ints.len()).map(|i| ints.value(i)).collect()
    }

    #[test]
    fn chunks_come_back_in_input_order_at_any_thread_count() {
        let text: String = (0..2000).map(|i| format!("{i}\n")).collect();
        for threads in [1, 2, 3, 5] {
            for rows in [1, 7, 64] {
                let mut pipeline = Pipeline::spawn(
                    cutter(text.clone(), rows),
                    &decoder(),
                    threads,
                    rows,
                    (0, 0),
                    true,
                )
                .unwrap();
                let mut seen = Vec::new();
                let mut lines = Vec::new();
                let end = loop {
                    match pipeline.next() {
                        Ok(piece) => {
                            assert_eq!(piece.end.1, *piece.numbers.last().unwrap());
                            seen.extend(values(&piece));
                            lines.extend(piece.numbers);
                        }
                        Err(PipelineEnd::End(position)) => break position,
                        Err(_) => panic!("the pipeline failed"),
                    }
                };
                assert_eq!(seen, (0..2000).collect::<Vec<_>>(), "{threads} threads");
                assert_eq!(lines, (1..=2000).collect::<Vec<_>>());
                assert_eq!(end, (text.len() as u64, 2000));
                assert!(matches!(pipeline.next(), Err(PipelineEnd::Done)));
            }
        }
    }

    #[test]
    fn file_ranges_come_back_in_file_order_with_their_line_numbers() {
        use super::super::ranges::FileRanges;
        use std::io::Write;
        // Blank lines and a resumed start: numbers are the file's line numbers.
        let text: String = (0..3000)
            .map(|i| {
                if i % 7 == 3 {
                    "\n".to_string()
                } else {
                    format!("{i}\n")
                }
            })
            .collect();
        let mut file = tempfile::NamedTempFile::new().unwrap();
        file.write_all(text.as_bytes()).unwrap();
        let skip = "0\n1\n2\n\n";
        for threads in [1, 2, 3] {
            for (range_bytes, rows) in [(1, 1), (10, 3), (100, 8192), (1 << 20, 64)] {
                let mut ranges = FileRanges::new(
                    file.reopen().unwrap(),
                    "t",
                    skip.len() as u64,
                    None,
                    range_bytes,
                )
                .unwrap();
                let cut = move || {
                    Ok(match ranges.next_range() {
                        Some(range) => Cut::Range(range),
                        None => Cut::End(None),
                    })
                };
                let mut pipeline =
                    Pipeline::spawn(cut, &decoder(), threads, rows, (skip.len() as u64, 4), true)
                        .unwrap();
                let (mut seen, mut lines) = (Vec::new(), Vec::new());
                let end = loop {
                    match pipeline.next() {
                        Ok(piece) => {
                            assert!(piece.numbers.len() <= rows);
                            // Blank lines after the last row are behind the position too.
                            assert!(piece.end.1 >= *piece.numbers.last().unwrap());
                            seen.extend(values(&piece));
                            lines.extend(piece.numbers);
                        }
                        Err(PipelineEnd::End(position)) => break position,
                        Err(_) => panic!("the pipeline failed"),
                    }
                };
                let kept: Vec<i64> = (4..3000).filter(|i| i % 7 != 3).collect();
                let numbers: Vec<u64> = kept.iter().map(|&i| i as u64 + 1).collect();
                assert_eq!(seen, kept, "{threads} threads, {range_bytes}-byte ranges");
                assert_eq!(lines, numbers);
                assert_eq!(end, (text.len() as u64, 3000));
            }
        }
    }

    #[test]
    fn dropping_early_stops_every_thread() {
        let cuts = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&cuts);
        let mut inner = cutter((0..100_000).map(|i| format!("{i}\n")).collect(), 10);
        let cut = move || {
            counter.fetch_add(1, Ordering::SeqCst);
            inner()
        };
        let mut pipeline = Pipeline::spawn(cut, &decoder(), 2, 1, (0, 0), true).unwrap();
        assert!(pipeline.next().is_ok());
        // The drop joins the reader and both decoders.
        drop(pipeline);
        let read = cuts.load(Ordering::SeqCst);
        // Bounded: only a few chunks per decoder were read ahead, far from all 10 000.
        assert!(read < 20, "{read} chunks were cut");
        std::thread::sleep(std::time::Duration::from_millis(20));
        assert_eq!(cuts.load(Ordering::SeqCst), read);
    }

    #[test]
    fn a_reader_error_arrives_after_the_chunks_before_it() {
        let mut calls = 0;
        let cut = move || {
            calls += 1;
            match calls {
                1..=4 => Ok(Cut::Chunk(
                    LineReader::new(format!("{calls}\n").as_bytes(), false)
                        .next_chunk(1)
                        .map_err(|e| Error::io("read", e))?
                        .ok_or_else(|| Error::Execution("no line".into()))?,
                    (0, calls),
                )),
                _ => Err(Error::Execution("disk on fire".into())),
            }
        };
        let mut pipeline = Pipeline::spawn(cut, &decoder(), 3, 1, (0, 0), true).unwrap();
        for expected in 1..=4 {
            let Ok(piece) = pipeline.next() else {
                panic!("chunk {expected} is missing");
            };
            assert_eq!(values(&piece), vec![expected as i64]);
        }
        match pipeline.next() {
            Err(PipelineEnd::Failed(e)) => assert!(e.to_string().contains("disk on fire")),
            _ => panic!("the error is missing"),
        }
        assert!(matches!(pipeline.next(), Err(PipelineEnd::Done)));
    }

    #[test]
    fn a_panic_on_the_reader_becomes_an_error() {
        let cut = || -> Result<Cut> { panic!("boom") };
        let mut pipeline = Pipeline::spawn(cut, &decoder(), 2, 1, (0, 0), true).unwrap();
        match pipeline.next() {
            Err(PipelineEnd::Failed(e)) => assert!(e.to_string().contains("boom"), "{e}"),
            _ => panic!("the panic was not reported"),
        }
    }
}

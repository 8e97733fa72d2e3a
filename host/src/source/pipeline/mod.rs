//! Pipelined decoding: a feeding thread hands out work, a small pool of decoder threads
//! decodes it, and the caller takes the decoded chunks back strictly in input order.
//!
//! The work is either chunks of lines the feeder cut itself (stdin, which only one thread
//! can read) or byte ranges of a file ([`FileRanges`](super::ranges::FileRanges), in
//! `files`), which each decoder reads and cuts on its own, so reading a file scales with
//! the decoders; a file needs no feeder at all, since each decoder claims the next range
//! itself when it is free (`claims`). A job comes back whole, as one message, on the
//! output of the decoder that has it (stdin's chunk `n`: decoder `n % threads`; a file's
//! range: its claimer), so order needs no reordering buffer: each decoder handles its
//! jobs in order, and the caller reads each job from its decoder's output. Every channel is
//! bounded (a few jobs per decoder), so a slow caller holds the decoders and the feeder
//! back. End of input and errors of the feeding side travel in sequence like jobs (the end
//! of a file comes from the decoder whose turn follows the last range); a panic on any
//! thread becomes an error. Dropping the [`Pipeline`] closes the outputs: decoders and
//! feeder stop at their next send, and for a bounded input the drop waits for them.
//!
//! A live input that the feeder has caught up with (a chunk of fewer lines than a batch:
//! nothing more was there to read) while the caller has taken every job before it is
//! decoded by the feeder itself and put straight into its decoder's output, which is
//! empty then, so order holds: the rows of a trickling stream cross one thread fewer on
//! their way to the query (less latency), and a backlog still goes to the decoders.

use std::collections::VecDeque;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError, SyncSender};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use super::decode::{Decoded, RowDecoder};
use super::lines::LineChunk;
use crate::error::{Error, Result};

mod claims;
mod files;

/// Jobs (chunks or ranges) waiting in each channel, in front of and behind every decoder.
const QUEUED_PER_DECODER: usize = 2;

/// A byte offset and a line number: where the input stands after a chunk.
pub(crate) type Position = (u64, u64);

/// What the feeding side produces each time it is asked: a chunk and the position just
/// after it, or the end of the input.
pub(crate) enum Cut {
    /// The next chunk of lines.
    Chunk(LineChunk, Position),
    /// The input has ended, at this position.
    End(Position),
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
    /// The end of the input, at this position (`None`: where the last range ended).
    End(Option<Position>),
}

/// What the feeder hands a decoder.
enum Job {
    Chunk(LineChunk, Position),
    Fail(Error),
    End(Position),
}

/// The running pipeline: the feeding thread, the decoders, and the next job to take.
pub(crate) struct Pipeline {
    outputs: Vec<Receiver<Result<Step>>>,
    threads: Vec<JoinHandle<()>>,
    /// A file's claims, which say whose output holds the next range (`None`: job `n` is
    /// decoder `n % threads`'s).
    claims: Option<Arc<claims::RangeClaims>>,
    /// Sequence number of the next job to take.
    next: usize,
    /// For a live input (stdin): how long [`next`](Self::next) waits for the next chunk
    /// before it returns [`PipelineEnd::Idle`].
    idle_after: Option<Duration>,
    /// Jobs taken so far, shared with the feeder (see [`Feeder::caught_up`]).
    taken: Arc<AtomicUsize>,
    /// Chunks the feeder decoded itself (read by the tests).
    #[cfg_attr(not(test), allow(dead_code))]
    decoded_by_feeder: Arc<AtomicUsize>,
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
        let mut feeder = Feeder {
            inputs: Vec::with_capacity(decoders),
            outputs: Vec::with_capacity(decoders),
            decoder: decoder.clone(),
            batch_size,
            taken: Arc::new(AtomicUsize::new(0)),
            decoded: Arc::new(AtomicUsize::new(0)),
        };
        let (taken, decoded_by_feeder) = (Arc::clone(&feeder.taken), Arc::clone(&feeder.decoded));
        let mut outputs = Vec::with_capacity(decoders);
        let mut threads = Vec::with_capacity(decoders + 1);
        for index in 0..decoders {
            let (job_tx, job_rx) = sync_channel::<Job>(QUEUED_PER_DECODER);
            let (step_tx, step_rx) = sync_channel::<Result<Step>>(QUEUED_PER_DECODER);
            feeder.inputs.push(job_tx);
            feeder.outputs.push(step_tx.clone());
            let mut decoder = decoder.clone();
            let thread =
                spawn_decoder(index, move || decode_loop(&mut decoder, &job_rx, &step_tx))?;
            outputs.push(step_rx);
            threads.push(thread);
        }
        let reader = std::thread::Builder::new()
            .name("laminar-read".into())
            .spawn(move || feeder.run(&mut cut))
            .map_err(|e| Error::io("cannot start the reader thread", e))?;
        threads.push(reader);
        Ok(Self::taking(
            outputs,
            threads,
            start,
            join_on_drop,
            taken,
            decoded_by_feeder,
        ))
    }

    /// The caller's side of the pipeline whose decoders write `outputs`.
    fn taking(
        outputs: Vec<Receiver<Result<Step>>>,
        threads: Vec<JoinHandle<()>>,
        start: Position,
        join_on_drop: bool,
        taken: Arc<AtomicUsize>,
        decoded_by_feeder: Arc<AtomicUsize>,
    ) -> Self {
        Self {
            outputs,
            threads,
            claims: None,
            next: 0,
            idle_after: None,
            taken,
            decoded_by_feeder,
            pending: VecDeque::new(),
            pending_failure: None,
            ranges_end: start,
            finished: false,
            join_on_drop,
        }
    }

    /// Makes [`next`](Self::next) return [`PipelineEnd::Idle`] when a live input has
    /// delivered nothing for `wait`, so that the caller can do timed work (a checkpoint)
    /// while the input pauses.
    pub(crate) fn with_idle_after(mut self, wait: Duration) -> Self {
        self.idle_after = Some(wait);
        self
    }

    /// How many chunks the feeder decoded itself (a live input it had caught up with).
    #[cfg(test)]
    pub(crate) fn decoded_by_feeder(&self) -> usize {
        self.decoded_by_feeder.load(Ordering::Relaxed)
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
            let slot = match &self.claims {
                None => Some(self.next % self.outputs.len()),
                Some(claims) => {
                    let threads = &self.threads;
                    claims.owner_of_next(|| !threads.iter().all(JoinHandle::is_finished))
                }
            };
            let stopped = || {
                Err(Error::Execution(
                    "a decoder thread of the source stopped unexpectedly".into(),
                ))
            };
            let step = match (slot, self.idle_after) {
                (Some(slot), Some(wait)) if self.claims.is_none() => {
                    match self.outputs[slot].recv_timeout(wait) {
                        Ok(step) => step,
                        Err(RecvTimeoutError::Timeout) => return Err(PipelineEnd::Idle),
                        Err(RecvTimeoutError::Disconnected) => stopped(),
                    }
                }
                (Some(slot), _) => self.outputs[slot].recv().unwrap_or_else(|_| stopped()),
                (None, _) => stopped(),
            };
            self.next += 1;
            self.taken.store(self.next, Ordering::Release);
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
    /// A live input delivered nothing within the idle wait
    /// ([`with_idle_after`](Pipeline::with_idle_after)); it may still deliver more.
    Idle,
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

/// The feeding thread's side: the decoders' inputs, and what it needs to decode a chunk
/// itself and put it in its decoder's output.
struct Feeder {
    inputs: Vec<SyncSender<Job>>,
    outputs: Vec<SyncSender<Result<Step>>>,
    decoder: RowDecoder,
    batch_size: usize,
    /// Jobs the caller has taken.
    taken: Arc<AtomicUsize>,
    /// Chunks decoded here.
    decoded: Arc<AtomicUsize>,
}

impl Feeder {
    /// Cuts chunks and deals them out to the decoders in turn.
    fn run<C>(&mut self, cut: &mut C)
    where
        C: FnMut() -> Result<Cut>,
    {
        for sequence in 0.. {
            let job = match catch_unwind(AssertUnwindSafe(&mut *cut)) {
                Ok(Ok(Cut::Chunk(chunk, end))) if self.caught_up(sequence, &chunk) => {
                    // Decoder `sequence % n` has handed over all its jobs: its output is
                    // empty, and this step goes where the caller looks for it next.
                    let step = decode_chunk(&mut self.decoder, chunk, end);
                    self.decoded.fetch_add(1, Ordering::Relaxed);
                    let slot = sequence % self.outputs.len();
                    if self.outputs[slot].send(step).is_err() {
                        return;
                    }
                    continue;
                }
                Ok(Ok(Cut::Chunk(chunk, end))) => Job::Chunk(chunk, end),
                Ok(Ok(Cut::End(position))) => Job::End(position),
                Ok(Err(e)) => Job::Fail(e),
                Err(panic) => Job::Fail(panicked("reader", panic.as_ref())),
            };
            let last = matches!(job, Job::Fail(_) | Job::End(_));
            if self.inputs[sequence % self.inputs.len()].send(job).is_err() || last {
                return;
            }
        }
    }

    /// Whether job `sequence`, `chunk`, is a live input's latest lines (fewer than a
    /// batch: the input had no more) and the caller has taken every job before it, so
    /// decoding it here is quicker than handing it on and every decoder is idle.
    fn caught_up(&self, sequence: usize, chunk: &LineChunk) -> bool {
        chunk.len() < self.batch_size && self.taken.load(Ordering::Acquire) == sequence
    }
}

/// Starts decoder thread `index`, running `work`.
fn spawn_decoder(index: usize, work: impl FnOnce() + Send + 'static) -> Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name(format!("laminar-decode-{index}"))
        .spawn(work)
        .map_err(|e| Error::io("cannot start a decoder thread", e))
}

/// A decoder thread: decodes the jobs it is handed, in order, until the input closes.
fn decode_loop(decoder: &mut RowDecoder, jobs: &Receiver<Job>, steps: &SyncSender<Result<Step>>) {
    for job in jobs {
        let step = match job {
            Job::Chunk(chunk, end) => decode_chunk(decoder, chunk, end),
            Job::End(position) => Ok(Step::End(Some(position))),
            Job::Fail(e) => Err(e),
        };
        if steps.send(step).is_err() {
            return;
        }
    }
}

/// Decodes one chunk of lines ending at `end`.
fn decode_chunk(decoder: &mut RowDecoder, chunk: LineChunk, end: Position) -> Result<Step> {
    match catch_unwind(AssertUnwindSafe(|| decoder.decode(&chunk))) {
        Ok(decoded) => Ok(Step::Piece(Piece {
            numbers: chunk.numbers,
            decoded,
            end,
        })),
        Err(panic) => Err(panicked("decoder", panic.as_ref())),
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

    pub(super) fn decoder() -> RowDecoder {
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
            Ok(None) => Ok(Cut::End(lines.position())),
            Err(e) => Err(Error::io("read", e)),
        }
    }

    pub(super) fn values(piece: &Piece) -> Vec<i64> {
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

    /// A live input: one line at a time, each a little after the last, so every chunk is
    /// shorter than a batch and the caller is often waiting for it.
    fn trickle(lines: i64, rows: usize) -> impl FnMut() -> Result<Cut> + Send {
        let mut next = 0;
        move || {
            if next == lines {
                return Ok(Cut::End((0, next as u64)));
            }
            if next % 3 == 0 {
                std::thread::sleep(std::time::Duration::from_micros(200));
            }
            next += 1;
            let mut chunk = LineReader::new(format!("{next}\n").as_bytes(), false)
                .next_chunk(rows)
                .map_err(|e| Error::io("read", e))?
                .ok_or_else(|| Error::Execution("no line".into()))?;
            chunk.numbers = vec![next as u64];
            Ok(Cut::Chunk(chunk, (0, next as u64)))
        }
    }

    #[test]
    fn a_live_input_decoded_by_the_feeder_keeps_its_order() {
        for threads in [1, 2, 3] {
            let mut pipeline =
                Pipeline::spawn(trickle(300, 64), &decoder(), threads, 64, (0, 0), true).unwrap();
            let mut seen = Vec::new();
            loop {
                match pipeline.next() {
                    Ok(piece) => {
                        assert_eq!(piece.numbers, vec![piece.end.1]);
                        seen.extend(values(&piece));
                        // A slow caller now and then: the feeder gets ahead and hands
                        // chunks to the decoders again.
                        if seen.len() % 50 == 0 {
                            std::thread::sleep(std::time::Duration::from_millis(3));
                        }
                    }
                    Err(PipelineEnd::End(position)) => {
                        assert_eq!(position, (0, 300));
                        break;
                    }
                    Err(_) => panic!("the pipeline failed"),
                }
            }
            assert_eq!(seen, (1..=300).collect::<Vec<_>>(), "{threads} threads");
            let by_feeder = pipeline.decoded_by_feeder();
            assert!(
                (1..300).contains(&by_feeder),
                "{threads} threads: the feeder decoded {by_feeder} of 300 chunks"
            );
        }
    }

    #[test]
    fn full_chunks_go_to_the_decoders() {
        let text: String = (0..640).map(|i| format!("{i}\n")).collect();
        let mut pipeline =
            Pipeline::spawn(cutter(text, 64), &decoder(), 2, 64, (0, 0), true).unwrap();
        let mut rows = 0;
        while let Ok(piece) = pipeline.next() {
            rows += piece.numbers.len();
        }
        assert_eq!(rows, 640);
        assert_eq!(pipeline.decoded_by_feeder(), 0);
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

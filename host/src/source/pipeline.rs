//! Pipelined decoding: one thread cuts the input into chunks of lines, a small pool of
//! decoder threads decodes them, and the caller takes the decoded chunks back strictly in
//! input order.
//!
//! Chunk `n` goes to decoder `n % threads` and comes back from that decoder's output, so
//! order needs no reordering buffer: each decoder handles its chunks in order, and the
//! caller reads the decoders' outputs in turn. Every channel is bounded (a few chunks per
//! decoder), so a slow caller holds the reader back. End of input and errors of the
//! reading side travel in sequence like chunks; a panic on any thread becomes an error.
//! Dropping the [`Pipeline`] closes the outputs: decoders and reader stop at their next
//! send, and for a bounded input the drop waits for them.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::thread::JoinHandle;

use super::decode::{Decoded, RowDecoder};
use super::lines::LineChunk;
use crate::error::{Error, Result};

/// Chunks waiting in each channel (in front of and behind every decoder).
const QUEUED_PER_DECODER: usize = 2;

/// A byte offset and a line number: where the input stands after a chunk.
pub(crate) type Position = (u64, u64);

/// What the reading side produces each time it is asked: a chunk and the position just
/// after it, or the end of the input and the position there.
pub(crate) enum Cut {
    /// The next chunk of lines.
    Chunk(LineChunk, Position),
    /// The input has ended.
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

/// What a decoder hands back for one chunk.
enum Step {
    Piece(Piece),
    End(Position),
}

/// What the reader hands a decoder.
enum Job {
    Chunk(LineChunk, Position),
    Fail(Error),
    End(Position),
}

/// The running pipeline: the reader thread, the decoders, and the next chunk to take.
pub(crate) struct Pipeline {
    outputs: Vec<Receiver<Result<Step>>>,
    threads: Vec<JoinHandle<()>>,
    /// Sequence number of the next chunk to take.
    next: usize,
    /// The end (or an error) was taken: nothing more comes.
    finished: bool,
    /// Join the threads on drop (a bounded input; stdin's reader may wait on a read).
    join_on_drop: bool,
}

impl Pipeline {
    /// Starts a reader thread that calls `cut` until it returns the end or an error, and
    /// `decoders` (at least one) threads decoding with `decoder`.
    pub(crate) fn spawn<C>(
        mut cut: C,
        decoder: &RowDecoder,
        decoders: usize,
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
                .spawn(move || decode_loop(&mut decoder, &job_rx, &step_tx))
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
            finished: false,
            join_on_drop,
        })
    }

    /// The next decoded chunk in input order, or why there is none: the end of the input
    /// (once), an error of the reader or a decoder (once), and then always `Done`.
    pub(crate) fn next(&mut self) -> std::result::Result<Piece, PipelineEnd> {
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
            Ok(Step::Piece(piece)) => Ok(piece),
            Ok(Step::End(position)) => {
                self.finished = true;
                Err(PipelineEnd::End(position))
            }
            Err(e) => {
                self.finished = true;
                Err(PipelineEnd::Failed(e))
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

/// The reader thread: cuts chunks and deals them out to the decoders in turn.
fn read_loop<C>(cut: &mut C, inputs: &[SyncSender<Job>])
where
    C: FnMut() -> Result<Cut>,
{
    for sequence in 0.. {
        let job = match catch_unwind(AssertUnwindSafe(&mut *cut)) {
            Ok(Ok(Cut::Chunk(chunk, end))) => Job::Chunk(chunk, end),
            Ok(Ok(Cut::End(position))) => Job::End(position),
            Ok(Err(e)) => Job::Fail(e),
            Err(panic) => Job::Fail(panicked("reader", panic.as_ref())),
        };
        let last = !matches!(job, Job::Chunk(..));
        if inputs[sequence % inputs.len()].send(job).is_err() || last {
            return;
        }
    }
}

/// A decoder thread: decodes the chunks it is handed, in order, until the input closes.
fn decode_loop(decoder: &mut RowDecoder, jobs: &Receiver<Job>, steps: &SyncSender<Result<Step>>) {
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
            Job::End(position) => Ok(Step::End(position)),
            Job::Fail(e) => Err(e),
        };
        if steps.send(step).is_err() {
            return;
        }
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
        let mut lines = LineReader::new(std::io::Cursor::new(text.into_bytes()), false);
        move || match lines.next_chunk(rows) {
            Ok(Some(chunk)) => Ok(Cut::Chunk(chunk, lines.position())),
            Ok(None) => Ok(Cut::End(lines.position())),
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
                let mut pipeline =
                    Pipeline::spawn(cutter(text.clone(), rows), &decoder(), threads, true).unwrap();
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
    fn dropping_early_stops_every_thread() {
        let cuts = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&cuts);
        let mut inner = cutter((0..100_000).map(|i| format!("{i}\n")).collect(), 10);
        let cut = move || {
            counter.fetch_add(1, Ordering::SeqCst);
            inner()
        };
        let mut pipeline = Pipeline::spawn(cut, &decoder(), 2, true).unwrap();
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
        let mut pipeline = Pipeline::spawn(cut, &decoder(), 3, true).unwrap();
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
        let mut pipeline = Pipeline::spawn(cut, &decoder(), 2, true).unwrap();
        match pipeline.next() {
            Err(PipelineEnd::Failed(e)) => assert!(e.to_string().contains("boom"), "{e}"),
            _ => panic!("the panic was not reported"),
        }
    }
}

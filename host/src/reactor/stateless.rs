//! A query without an aggregate on several cores: batch `n` goes to core `n % N`, which
//! runs the query's filters and projections over it (each core has its own copy of the
//! operators), and the results are released strictly in batch order, so output, errors
//! and counters are those of one core.
//!
//! ```text
//!  query thread ─(n, batch)─▶ bounded queue of core n % N ─▶ filter → project
//!               ◀─(n, result)── reorder by n ◀────────────────────────┘
//! ```
//! A failing batch fails the run when its turn comes, so the error is the one a single
//! core would have reported first.

use std::collections::BTreeMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::mpsc::{channel, sync_channel, Receiver, Sender, SyncSender, TryRecvError};
use std::thread::JoinHandle;

use arrow::record_batch::RecordBatch;

use crate::error::{Error, Result};
use crate::operator::Operator;

/// Batches queued per core before the query thread waits.
const QUEUED_PER_CORE: usize = 4;

/// One core's result for batch `n`.
type Done = (u64, Result<RecordBatch>);

/// The cores of a query without an aggregate.
#[derive(Debug)]
pub(crate) struct StatelessCores {
    queues: Vec<SyncSender<(u64, RecordBatch)>>,
    results: Receiver<Done>,
    threads: Vec<JoinHandle<()>>,
    /// Sequence number of the next batch submitted.
    next_in: u64,
    /// Sequence number of the next result released.
    next_out: u64,
    waiting: BTreeMap<u64, Result<RecordBatch>>,
}

impl StatelessCores {
    /// Starts one core per operator chain (copies of one query's operators), pinned when
    /// `pin`; returns them and, for a warning, why cores could not be pinned.
    pub(crate) fn start(
        chains: Vec<Vec<Box<dyn Operator>>>,
        pin: bool,
    ) -> Result<(Self, Vec<String>)> {
        let (result_tx, results) = channel();
        let (started_tx, started) = channel();
        let cores = chains.len();
        let mut queues = Vec::with_capacity(cores);
        let mut threads = Vec::with_capacity(cores);
        for (index, chain) in chains.into_iter().enumerate() {
            let (queue_tx, queue) = sync_channel(QUEUED_PER_CORE);
            let result_tx = result_tx.clone();
            let started_tx = started_tx.clone();
            let thread = std::thread::Builder::new()
                .name(format!("laminar-core-{index}"))
                .spawn(move || {
                    let pinned = if pin {
                        super::pin::pin_current_thread(index)
                    } else {
                        Ok(())
                    };
                    let _ = started_tx.send(pinned.map_err(|why| format!("core {index}: {why}")));
                    serve(index, chain, &queue, &result_tx);
                })
                .map_err(|e| Error::io("cannot start a core thread", e))?;
            queues.push(queue_tx);
            threads.push(thread);
        }
        drop(started_tx);
        // One report per core (each thread keeps its sender while it runs).
        let unpinned = started.iter().take(cores).filter_map(|s| s.err()).collect();
        Ok((
            Self {
                queues,
                results,
                threads,
                next_in: 0,
                next_out: 0,
                waiting: BTreeMap::new(),
            },
            unpinned,
        ))
    }

    /// Hands `batch` to the next core and adds to `out` the results that are ready.
    pub(crate) fn submit(&mut self, batch: RecordBatch, out: &mut Vec<RecordBatch>) -> Result<()> {
        let core = (self.next_in % self.queues.len() as u64) as usize;
        if self.queues[core].send((self.next_in, batch)).is_err() {
            return Err(self.stopped());
        }
        self.next_in += 1;
        loop {
            match self.results.try_recv() {
                Ok((n, result)) => {
                    self.waiting.insert(n, result);
                }
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => return Err(self.stopped()),
            }
        }
        self.release(out)
    }

    /// Waits for the result of every batch submitted, in order, into `out`.
    pub(crate) fn settle(&mut self, out: &mut Vec<RecordBatch>) -> Result<()> {
        self.release(out)?;
        while self.next_out < self.next_in {
            let (n, result) = self.results.recv().map_err(|_| self.stopped())?;
            self.waiting.insert(n, result);
            self.release(out)?;
        }
        Ok(())
    }

    /// Moves the results that are next in order to `out`; the first failure in order
    /// fails the run.
    fn release(&mut self, out: &mut Vec<RecordBatch>) -> Result<()> {
        while let Some(result) = self.waiting.remove(&self.next_out) {
            self.next_out += 1;
            out.push(result?);
        }
        Ok(())
    }

    fn stopped(&mut self) -> Error {
        while let Ok((_, result)) = self.results.try_recv() {
            if let Err(e) = result {
                return e;
            }
        }
        super::core_gone()
    }
}

impl Drop for StatelessCores {
    /// Closes the queues and waits for the cores.
    fn drop(&mut self) {
        super::stop_cores(&mut self.queues, &mut self.threads);
    }
}

/// The loop of one core: runs the operators over each batch it is handed.
fn serve(
    index: usize,
    mut chain: Vec<Box<dyn Operator>>,
    queue: &Receiver<(u64, RecordBatch)>,
    results: &Sender<Done>,
) {
    while let Ok((n, batch)) = queue.recv() {
        let result = catch_unwind(AssertUnwindSafe(|| {
            chain
                .iter_mut()
                .try_fold(batch, |batch, op| op.process(batch))
        }))
        .unwrap_or_else(|panic| {
            Err(Error::Execution(format!(
                "core {index} panicked: {}",
                crate::text::panic_message(&*panic)
            )))
        });
        if results.send((n, result)).is_err() {
            return;
        }
    }
}

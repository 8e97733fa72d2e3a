//! One core: a thread that owns the window aggregate of the groups routed to it and works
//! through its bounded queue in order.
//!
//! ```text
//!  queue ─▶ Batch([rows, keys]) ─▶ aggregate.update_keyed, part by part
//!             + round(epoch)   ─▶ aggregate.advance ─▶ Report::Emitted(epoch, windows)
//!        ─▶ Barrier            ─▶ aggregate.snapshot ─▶ Report::Snapshot
//!        ─▶ Restore(snapshot)  ─▶ aggregate.restore
//!        ─▶ Prepare(job)       ─▶ job(aggregate) ─▶ Report::Prepared (a live plugin swap;
//!                                 its failure is reported, the core goes on)
//!        ─▶ Install(accs)      ─▶ aggregate.install
//!        ─▶ End(epoch)         ─▶ aggregate.finish ─▶ Report::Emitted(epoch, windows), exit
//! ```
//! An error or a panic is reported once and ends the thread; the coordinator then fails
//! the run with it.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::mpsc::{Receiver, Sender};

use arrow::record_batch::RecordBatch;

use super::route::Routed;
use crate::error::{Error, Result};
use crate::operator::{ReplaceJob, Replacement, WindowAggregate, WindowSnapshot};

/// What the coordinator sends a core, in order.
pub(crate) enum Message {
    /// This core's rows of the input batches since its last message, in arrival order,
    /// then, if the last of those batches moved the watermark past a window end, an
    /// emission round. One message for several batches, so a core wakes once for them.
    Batch {
        /// Rows of this core's groups, oldest first.
        rows: Vec<Routed>,
        /// The round to answer after the rows.
        round: Option<Round>,
    },
    /// Report the open state (a checkpoint barrier).
    Barrier,
    /// Load the groups of a checkpoint routed to this core (before any data).
    Restore(WindowSnapshot),
    /// Build the accumulators of a live plugin swap, changing nothing yet.
    Prepare(ReplaceJob),
    /// Install what `Prepare` built (every core prepared without failure).
    Install(Replacement),
    /// The input ended: emit every open window as epoch `epoch` and stop.
    End {
        /// Sequence number of the last emission round.
        epoch: u64,
    },
}

/// An emission round: the watermark reached `watermark`, so emit what closed, as epoch
/// `epoch`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Round {
    /// Sequence number of the round.
    pub(crate) epoch: u64,
    /// The watermark (epoch ms).
    pub(crate) watermark: i64,
}

/// What a core sends back.
pub(crate) enum Report {
    /// The thread started, pinned to a CPU or not (why not).
    Started(std::result::Result<(), String>),
    /// The windows an emission round closed on this core, oldest first.
    Emitted {
        /// The round.
        epoch: u64,
        /// Each closed window's id and this core's rows of it.
        windows: Vec<(i64, RecordBatch)>,
        /// Session rows this core counted late so far.
        late: u64,
    },
    /// The open state at a barrier.
    Snapshot(WindowSnapshot),
    /// What a `Prepare` built, or why it could not (the core goes on unchanged).
    Prepared(Result<Replacement>),
    /// The core failed and stopped.
    Failed(Error),
}

/// The loop of core `index`: pins itself when `pin`, then serves `queue` until its end.
pub(crate) fn run_core(
    index: usize,
    pin: bool,
    mut aggregate: WindowAggregate,
    queue: &Receiver<Message>,
    reports: &Sender<(usize, Report)>,
) {
    let pinned = if pin {
        super::pin::pin_current_thread(index)
    } else {
        Ok(())
    };
    let _ = reports.send((index, Report::Started(pinned)));
    let served = catch_unwind(AssertUnwindSafe(|| {
        serve(&mut aggregate, queue, reports, index)
    }));
    let failure = match served {
        Ok(Ok(())) => return,
        Ok(Err(e)) => e,
        Err(panic) => Error::Execution(format!(
            "core {index} panicked: {}",
            crate::text::panic_message(&*panic)
        )),
    };
    let _ = reports.send((index, Report::Failed(failure)));
}

fn serve(
    aggregate: &mut WindowAggregate,
    queue: &Receiver<Message>,
    reports: &Sender<(usize, Report)>,
    index: usize,
) -> Result<()> {
    // A closed queue means the coordinator has gone (it failed): nothing to report.
    while let Ok(message) = queue.recv() {
        let report = match message {
            Message::Batch { rows, round } => {
                for routed in rows {
                    aggregate.update_keyed(&routed.batch, &routed.keys)?;
                }
                let Some(Round { epoch, watermark }) = round else {
                    continue;
                };
                Report::Emitted {
                    epoch,
                    windows: aggregate.advance_windows(watermark)?,
                    late: aggregate.late_events(),
                }
            }
            Message::Barrier => Report::Snapshot(aggregate.snapshot()?),
            Message::Restore(snapshot) => {
                aggregate.restore(&snapshot)?;
                continue;
            }
            Message::Prepare(job) => Report::Prepared(job(aggregate)),
            Message::Install(replacement) => {
                aggregate.install(replacement);
                continue;
            }
            Message::End { epoch } => {
                let windows = aggregate.finish_windows()?;
                let late = aggregate.late_events();
                let _ = reports.send((
                    index,
                    Report::Emitted {
                        epoch,
                        windows,
                        late,
                    },
                ));
                return Ok(());
            }
        };
        if reports.send((index, report)).is_err() {
            return Ok(());
        }
    }
    Ok(())
}

//! One partition's dataflow in a scale-out run: taken over (lease, restore from its
//! checkpoint), stepped one batch at a time under its lease, checkpointed and let go, or
//! completed.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::super::dataflow::PlannedQuery;
use super::super::durable::Checkpointer;
use super::super::run::{Flow, Read};
use super::super::{Engine, RunSummary};
use super::{partition_path, PartitionScope};
use crate::checkpoint::{partition_dir, DataflowDir, Fingerprint, PartitionLease, TakeOver};
use crate::error::{Error, Result};
use crate::kafka::GroupMember;
use crate::sink::Sink;
use crate::sql::Connector;

/// One partition's dataflow while this process owns it.
pub(super) struct PartitionRun {
    pub(super) flow: Flow,
    pub(super) checkpointer: Checkpointer,
    pub(super) lease: PartitionLease,
    pub(super) summary: RunSummary,
    pub(super) started: Instant,
}

/// What opening a partition came to.
pub(super) enum Opened {
    Running(Box<PartitionRun>),
    /// Its run completed earlier (a bounded run): nothing to read.
    Completed,
    /// Its previous owner is inside a write step: try again shortly.
    Busy,
}

impl Engine {
    /// Takes partition `p` over and opens its dataflow at its newest checkpoint.
    pub(super) fn open_partition(
        &mut self,
        planned: &[PlannedQuery],
        state_dir: &Path,
        fingerprint: &Fingerprint,
        group: &str,
        p: i32,
        member: &GroupMember,
    ) -> Result<Opened> {
        let storage = Arc::clone(&self.config.storage);
        let dir = partition_dir(state_dir, p);
        let lease =
            match PartitionLease::try_take_over(Arc::clone(&storage), &dir, member.member())? {
                TakeOver::Taken(lease) => lease,
                TakeOver::Busy => return Ok(Opened::Busy),
            };
        // Recovery cuts the sink files back: a write, so under the guard.
        let Some(guard) = lease.guard()? else {
            return Ok(Opened::Busy);
        };
        let mut checkpointer = Checkpointer::new(
            DataflowDir::open_leased(Arc::clone(&storage), &dir, fingerprint)?,
            self.config.checkpoint_interval,
        );
        let scope = PartitionScope {
            partition: p,
            group: group.to_string(),
        };
        if checkpointer.dir().completed()?.is_some() {
            for sink in self.sinks_written(planned) {
                if let Connector::File(path) = &sink.connector {
                    crate::sink::finish_commit(storage.as_ref(), &partition_path(path, p))?;
                }
            }
            (self.notices.0)(&format!("partition {p}: completed earlier"));
            drop(guard);
            return Ok(Opened::Completed);
        }
        let queries = self.replan(planned)?;
        self.scope = Some(scope);
        let mut no_default = |_: &arrow::datatypes::SchemaRef| -> Result<Box<dyn Sink>> {
            Err(Error::plan("a scale-out run writes to sinks only"))
        };
        let opened = self.open_flow(queries, &mut no_default, Some(&mut checkpointer));
        self.scope = None;
        let (mut flow, loaded) = opened?;
        // The partitions are read in turn: a quiet one must not hold the others up.
        flow.set_idle_wait(Duration::ZERO);
        let label = format!("partition {p} (epoch {}): ", lease.epoch());
        let resumed = self.resume_flow(&mut flow, loaded.as_ref(), &mut checkpointer, &label)?;
        if resumed.is_none() {
            (self.notices.0)(&format!("{label}starting without a checkpoint"));
        }
        drop(guard);
        let mut summary = RunSummary::default();
        if let Some((id, events)) = resumed {
            summary.resumed_from = Some(id);
            summary.resumed_events = events;
        }
        Ok(Opened::Running(Box::new(PartitionRun {
            flow,
            checkpointer,
            lease,
            summary,
            started: Instant::now(),
        })))
    }

    /// Partition `p` was taken away: checkpointed and let go (or, if another process took
    /// it over already, dropped without writing).
    pub(super) fn close_partition(
        &mut self,
        p: i32,
        mut run: PartitionRun,
        closed: &mut RunSummary,
    ) -> Result<()> {
        let guard = run.lease.guard()?;
        match guard {
            Some(_guard) => {
                run.checkpointer
                    .checkpoint(&mut run.flow, &mut run.summary)?;
                (self.notices.0)(&format!(
                    "partition {p}: checkpointed and let go ({} checkpoints)",
                    run.summary.checkpoints
                ));
            }
            None => {
                run.flow.drop_unwritten();
                (self.notices.0)(&format!(
                    "partition {p}: already taken over by another process; let go of it without writing"
                ));
            }
        }
        run.flow.fill_summary(&mut run.summary, run.started);
        closed.add(&run.summary);
        Ok(())
    }

    /// Partition `p`'s input ended (`stop_at = 'end'`): its run completes.
    pub(super) fn complete_partition(
        &mut self,
        p: i32,
        mut run: PartitionRun,
        closed: &mut RunSummary,
    ) -> Result<()> {
        match run.lease.guard()? {
            Some(_guard) => {
                run.flow.complete(Some(&mut run.checkpointer))?;
                (self.notices.0)(&format!("partition {p}: completed"));
            }
            None => run.flow.drop_unwritten(),
        }
        run.flow.fill_summary(&mut run.summary, run.started);
        closed.add(&run.summary);
        Ok(())
    }

    /// The counters of every partition this process ran, closed or running.
    pub(super) fn summary_now(
        &self,
        runs: &BTreeMap<i32, PartitionRun>,
        closed: &RunSummary,
        started: Instant,
    ) -> RunSummary {
        let mut summary = closed.clone();
        for run in runs.values() {
            let mut now = run.summary.clone();
            run.flow.fill_summary(&mut now, run.started);
            summary.add(&now);
        }
        summary.elapsed = started.elapsed();
        summary
    }

    /// A fresh copy of the planned dataflow (each partition's dataflow has operators of
    /// its own).
    fn replan(&self, planned: &[PlannedQuery]) -> Result<Vec<PlannedQuery>> {
        planned
            .iter()
            .map(|q| {
                Ok(PlannedQuery {
                    location: q.location,
                    statement: q.statement.clone(),
                    stream: q.stream.clone(),
                    compiled: self.plan(&q.statement).map_err(|e| e.at(q.location))?,
                    input: q.input.clone(),
                    output: q.output.clone(),
                    feeds: q.feeds.clone(),
                })
            })
            .collect()
    }
}

/// What one step of a partition's dataflow came to.
pub(super) enum Stepped {
    /// It went on: whether rows came, and whether a checkpoint was taken.
    Went {
        rows: bool,
        checkpointed: bool,
    },
    Ended,
    /// Another process owns the partition now.
    Fenced,
}

/// Reads one batch of the partition and, if the process still owns it, runs it through
/// the dataflow and checkpoints when due, all under the partition's lock.
pub(super) fn step(run: &mut PartitionRun) -> Result<Stepped> {
    let read = run.flow.read(0)?;
    let ended = matches!(read, Read::Ended);
    let rows = matches!(read, Read::Rows(_));
    // Outside the lock: a pause here lets the group move the partition on.
    crate::checkpoint::pause_point("scale-out-before-write");
    let Some(_guard) = run.lease.guard()? else {
        return Ok(Stepped::Fenced);
    };
    run.flow.apply(0, read)?;
    if ended || run.flow.all_ended() {
        return Ok(Stepped::Ended);
    }
    let checkpointed = run.checkpointer.due();
    if checkpointed {
        run.checkpointer
            .checkpoint(&mut run.flow, &mut run.summary)?;
    }
    Ok(Stepped::Went { rows, checkpointed })
}

/// Whether every partition of the topic has completed, in the shared state dir.
pub(super) fn all_completed(
    storage: &dyn crate::storage::Storage,
    state_dir: &Path,
    partitions: &[i32],
) -> Result<bool> {
    for &p in partitions {
        if !DataflowDir::is_completed(storage, &partition_dir(state_dir, p))? {
            return Ok(false);
        }
    }
    Ok(true)
}

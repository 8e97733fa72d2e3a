//! Scale-out by Kafka consumer group: a script whose source has `group_id` runs as one
//! member of that group, and the group decides which partitions this process reads.
//!
//! ```text
//!   process A (member)            process B (member)          shared --state-dir
//!   ├─ partition 0: dataflow ─┐   ├─ partition 1: dataflow    partitions/0/ owner, checkpoints/
//!   └─ partition 2: dataflow  │   └─ partition 3: dataflow    partitions/1/ …
//!                             └── sinks: out.p0.csv, Kafka transactional id …-p0
//! ```
//!
//! Each assigned partition runs the whole dataflow of the script over its own messages,
//! with its own state directory (`partitions/<p>/`: checkpoints, the sink files' lengths,
//! the partition's offset), its own file sink files (`out.p<p>.csv`) and, for an
//! exactly-once Kafka sink, its own transactional id. This is correct because every group
//! of every aggregate lives in one partition: the source's `key_column` is what the
//! producer keys messages by, every aggregate must GROUP BY it (checked before the run),
//! and a message whose key disagrees with its value is a bad row.
//!
//! When the group takes a partition away, the process checkpoints it and lets go; the
//! process given it takes it over ([`PartitionLease`]: the owner epoch goes up, under a
//! lock), restores its newest checkpoint (or the one its exactly-once sink committed) and
//! reads on from its offset. A process that missed the rebalance (paused past the session
//! timeout) finds a newer epoch before its next write and drops the partition without
//! writing anything; a transactional producer of the new owner has fenced its old one too.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use datafusion_sql::sqlparser::ast;

use super::dataflow::{Output, PlannedQuery};
use super::durable::Checkpointer;
use super::run::{Flow, Read};
use super::{Engine, RunSummary};
use crate::checkpoint::{partition_dir, DataflowDir, Fingerprint, PartitionLease, TakeOver};
use crate::error::{Error, Result};
use crate::kafka::{GroupEvent, GroupMember, KafkaSourceOptions};
use crate::sink::Sink;
use crate::sql::{normalize_name_text, Connector};

/// How long the group's poll waits when no partition had rows: the longest a row that
/// arrives in a quiet spell waits before it is read.
const QUIET_WAIT: Duration = Duration::from_millis(5);

/// How often a bounded scale-out run checks whether every partition of the topic has
/// completed, and how often progress is reported.
const COMPLETION_CHECK: Duration = Duration::from_millis(250);

/// The partition of a scale-out run whose dataflow is being opened, and its group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct PartitionScope {
    /// The partition.
    pub(super) partition: i32,
    /// The consumer group (`group_id`).
    pub(super) group: String,
}

/// The file partition `partition` of a scale-out run writes for file sink `destination`:
/// `out.csv` → `out.p3.csv`, `out` → `out.p3`.
pub fn partition_path(destination: &Path, partition: i32) -> PathBuf {
    let stem = destination
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let name = match destination.extension() {
        Some(ext) => format!("{stem}.p{partition}.{}", ext.to_string_lossy()),
        None => format!("{stem}.p{partition}"),
    };
    destination.with_file_name(name)
}

/// The scale-out state dir layout is `partitions/<p>/`; a one-process run's state dir
/// holds its fingerprint at the top. Each refuses the other's.
pub(super) fn check_layout(
    storage: &dyn crate::storage::Storage,
    dir: &Path,
    scaled: bool,
) -> Result<()> {
    let (marker, message) = match scaled {
        true => (
            dir.join("fingerprint"),
            "it holds the state of a one-process run; a scale-out run (group_id) keeps its state per partition, so give it another --state-dir",
        ),
        false => (
            dir.join("partitions"),
            "it holds the state of a scale-out run (a source with group_id); run the same script with it, or give this run another --state-dir",
        ),
    };
    let exists = storage
        .exists(&marker)
        .map_err(|e| Error::io(format!("cannot read state dir {}", dir.display()), e))?;
    match exists {
        true => Err(Error::StateDir {
            dir: dir.display().to_string(),
            message: message.into(),
        }),
        false => Ok(()),
    }
}

/// One partition's dataflow while this process owns it.
struct PartitionRun {
    flow: Flow,
    checkpointer: Checkpointer,
    lease: PartitionLease,
    summary: RunSummary,
    started: Instant,
}

/// What opening a partition came to.
enum Opened {
    Running(Box<PartitionRun>),
    /// Its run completed earlier (a bounded run): nothing to read.
    Completed,
    /// Its previous owner is inside a write step: try again shortly.
    Busy,
}

impl Engine {
    /// The options of the script's scale-out source (one with `group_id`), after checking
    /// that the script can scale out: one source, every aggregate grouped by the source's
    /// `key_column`, every result going to a sink. `None`: not a scale-out script.
    pub(super) fn scale_out_source(
        &self,
        planned: &[PlannedQuery],
    ) -> Result<Option<KafkaSourceOptions>> {
        let mut roots: Vec<&str> = planned.iter().map(|q| q.root(planned)).collect();
        roots.sort_unstable();
        roots.dedup();
        let grouped =
            roots
                .iter()
                .find_map(|name| match &self.sources.get(*name)?.options.connector {
                    Connector::KafkaSource(options) if options.group_id.is_some() => {
                        Some((*name, options.as_ref().clone()))
                    }
                    _ => None,
                });
        let Some((name, options)) = grouped else {
            return Ok(None);
        };
        if roots.len() > 1 {
            return Err(Error::unsupported(
                format!("source '{name}' with group_id beside other sources in one script"),
                "a scale-out script reads one Kafka source with group_id; run the other sources in a script of their own",
            ));
        }
        let key = options.metadata.key.as_deref().map(normalize_name_text);
        for query in planned {
            let at = |e: Error| e.at(query.location);
            if query.output == Output::Default {
                return Err(at(Error::plan(format!(
                    "source '{name}' has group_id, so each process of the group computes the results of its own partitions: write them with INSERT INTO a sink (a file sink writes one file per partition), not to stdout"
                ))));
            }
            if query.compiled.aggregate.is_none() {
                continue;
            }
            let Some(key) = &key else {
                return Err(at(Error::plan(format!(
                    "source '{name}' has group_id, so its partitions are aggregated by different processes: declare key_column, the column the producer keys messages by, and GROUP BY it, so that every group lives in one partition"
                ))));
            };
            if !groups_by(&query.statement.query, key) {
                return Err(at(Error::plan(format!(
                    "source '{name}' has group_id, so its partitions are aggregated by different processes: GROUP BY must include its key_column '{key}', or a group would be split between partitions and its results would be wrong"
                ))));
            }
        }
        Ok(Some(options))
    }

    /// Runs a scale-out script as a member of its source's group until every partition of
    /// the topic has completed (`stop_at = 'end'`) or the run is stopped.
    pub(super) fn run_scaled_out(
        &mut self,
        planned: Vec<PlannedQuery>,
        state_dir: &Path,
        fingerprint: &Fingerprint,
        options: &KafkaSourceOptions,
        progress: &mut dyn FnMut(&RunSummary),
    ) -> Result<RunSummary> {
        let storage = Arc::clone(&self.config.storage);
        check_layout(storage.as_ref(), state_dir, true)?;
        let member = GroupMember::join(options)?;
        let topic_partitions = member.topic_partitions(options.timeout)?;
        let group = member.group().to_string();
        (self.notices.0)(&format!(
            "joined consumer group '{}' as {} ({} partitions in the topic)",
            crate::text::shown(&group, 200),
            member.member(),
            topic_partitions.len()
        ));
        let started = Instant::now();
        let mut runs: BTreeMap<i32, PartitionRun> = BTreeMap::new();
        let mut pending: BTreeSet<i32> = BTreeSet::new();
        let mut waiting_said: BTreeSet<i32> = BTreeSet::new();
        let mut closed = RunSummary::default();
        let mut last_check = Instant::now();
        let mut ever_assigned = false;
        let mut interrupted = false;
        let mut busy = true;
        loop {
            if self.config.stop.is_stopped() {
                interrupted = true;
                break;
            }
            // Nothing to do (no partition, or none had rows last time): wait a little in
            // the group's poll rather than spin.
            let wait = match (runs.is_empty(), busy) {
                (true, _) => Duration::from_millis(100),
                (false, false) => QUIET_WAIT,
                (false, true) => Duration::ZERO,
            };
            busy = false;
            for event in member.poll(wait) {
                match event {
                    GroupEvent::Assigned(partitions) => {
                        ever_assigned = true;
                        (self.notices.0)(&format!("assigned partitions {partitions:?}"));
                        pending.extend(partitions);
                    }
                    GroupEvent::Revoked { partitions, lost } => {
                        (self.notices.0)(&format!(
                            "{} partitions {partitions:?}",
                            if lost { "lost" } else { "revoked" }
                        ));
                        for p in partitions {
                            pending.remove(&p);
                            if let Some(run) = runs.remove(&p) {
                                self.close_partition(p, run, &mut closed)?;
                            }
                        }
                    }
                    GroupEvent::Error(text) => {
                        (self.notices.0)(&format!("warning: consumer group: {text}"))
                    }
                }
            }
            for p in pending.clone() {
                match self.open_partition(&planned, state_dir, fingerprint, &group, p, &member)? {
                    Opened::Running(run) => {
                        pending.remove(&p);
                        runs.insert(p, *run);
                    }
                    Opened::Completed => {
                        pending.remove(&p);
                    }
                    Opened::Busy => {
                        if waiting_said.insert(p) {
                            (self.notices.0)(&format!(
                                "partition {p}: waiting for its previous owner to let it go"
                            ));
                        }
                    }
                }
            }
            let mut fenced = Vec::new();
            let mut ended = Vec::new();
            for (&p, run) in runs.iter_mut() {
                match step(run)? {
                    Stepped::Fenced => fenced.push(p),
                    Stepped::Ended => ended.push(p),
                    Stepped::Went { rows, checkpointed } => {
                        busy |= rows;
                        if checkpointed {
                            // For lag monitoring: the group's committed offsets follow
                            // the checkpoints (never read back; checkpoints are).
                            if let Some(position) = run.flow.kafka_position() {
                                member.commit(&position);
                            }
                        }
                    }
                }
            }
            for p in fenced {
                if let Some(mut run) = runs.remove(&p) {
                    run.flow.drop_unwritten();
                    let owner = run
                        .lease
                        .current_owner()
                        .ok()
                        .flatten()
                        .map(|o| o.describe())
                        .unwrap_or_else(|| "another process".into());
                    (self.notices.0)(&format!(
                        "partition {p}: taken over by {owner} while this process was not heard from; let go of it without writing"
                    ));
                }
            }
            for p in ended {
                if let Some(run) = runs.remove(&p) {
                    self.complete_partition(p, run, &mut closed)?;
                }
            }
            if last_check.elapsed() >= COMPLETION_CHECK {
                last_check = Instant::now();
                let mut summary = self.summary_now(&runs, &closed, started);
                progress(&summary);
                if options.stop_at_end
                    && ever_assigned
                    && runs.is_empty()
                    && pending.is_empty()
                    && all_completed(storage.as_ref(), state_dir, &topic_partitions)?
                {
                    summary.elapsed = started.elapsed();
                    break;
                }
            }
        }
        // Stopped or done: every partition still held is checkpointed and let go, then
        // the group is left, so that the others get the partitions at once.
        let partitions: Vec<i32> = runs.keys().copied().collect();
        for p in partitions {
            if let Some(run) = runs.remove(&p) {
                self.close_partition(p, run, &mut closed)?;
            }
        }
        member.leave();
        let mut summary = self.summary_now(&runs, &closed, started);
        summary.interrupted = interrupted;
        Ok(summary)
    }

    /// Takes partition `p` over and opens its dataflow at its newest checkpoint.
    fn open_partition(
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
        let mut checkpointer = Checkpointer::open_partition(
            Arc::clone(&storage),
            &dir,
            fingerprint,
            self.config.checkpoint_interval,
        )?;
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
    fn close_partition(
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
    fn complete_partition(
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
    fn summary_now(
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
enum Stepped {
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
fn step(run: &mut PartitionRun) -> Result<Stepped> {
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
fn all_completed(
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

/// Whether `query`'s GROUP BY names column `key`.
fn groups_by(query: &ast::Query, key: &str) -> bool {
    let ast::SetExpr::Select(select) = query.body.as_ref() else {
        return false;
    };
    let ast::GroupByExpr::Expressions(expressions, _) = &select.group_by else {
        return false;
    };
    expressions.iter().any(|e| match e {
        ast::Expr::Identifier(ident) => normalize_name_text(&ident.to_string()) == key,
        ast::Expr::CompoundIdentifier(parts) => parts
            .last()
            .is_some_and(|ident| normalize_name_text(&ident.to_string()) == key),
        _ => false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partition_files_keep_their_extension() {
        assert_eq!(
            partition_path(Path::new("/o/out.csv"), 3),
            PathBuf::from("/o/out.p3.csv")
        );
        assert_eq!(partition_path(Path::new("out"), 0), PathBuf::from("out.p0"));
    }
}

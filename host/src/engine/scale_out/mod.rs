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

mod checks;
mod partition;

pub(super) use checks::check_layout;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::dataflow::PlannedQuery;
use super::{Engine, RunSummary};
use crate::checkpoint::Fingerprint;
use crate::error::Result;
use crate::kafka::{GroupEvent, GroupMember, KafkaSourceOptions};
use partition::{all_completed, step, Opened, PartitionRun, Stepped};

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

/// What the process holds while it runs as a member of the group.
struct GroupRun<'a> {
    planned: &'a [PlannedQuery],
    state_dir: &'a Path,
    fingerprint: &'a Fingerprint,
    member: GroupMember,
    group: String,
    /// The partitions this process runs now.
    runs: BTreeMap<i32, PartitionRun>,
    /// Assigned, not yet taken over (the previous owner is inside a write step).
    pending: BTreeSet<i32>,
    /// Partitions whose wait was reported.
    waiting_said: BTreeSet<i32>,
    /// The counters of the partitions it ran and let go of.
    closed: RunSummary,
    started: Instant,
    ever_assigned: bool,
    /// A partition had rows in the last round.
    busy: bool,
}

impl Engine {
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
        (self.notices.0)(&format!(
            "joined consumer group '{}' as {} ({} partitions in the topic)",
            crate::text::shown(member.group(), 200),
            member.member(),
            topic_partitions.len()
        ));
        let mut group = GroupRun {
            planned: &planned,
            state_dir,
            fingerprint,
            group: member.group().to_string(),
            member,
            runs: BTreeMap::new(),
            pending: BTreeSet::new(),
            waiting_said: BTreeSet::new(),
            closed: RunSummary::default(),
            started: Instant::now(),
            ever_assigned: false,
            busy: true,
        };
        let mut last_check = Instant::now();
        let mut interrupted = false;
        loop {
            if self.config.stop.is_stopped() {
                interrupted = true;
                break;
            }
            // Nothing to do (no partition, or none had rows last round): wait a little in
            // the group's poll rather than spin.
            let wait = match (group.runs.is_empty(), group.busy) {
                (true, _) => Duration::from_millis(100),
                (false, false) => QUIET_WAIT,
                (false, true) => Duration::ZERO,
            };
            let events = group.member.poll(wait);
            self.on_group_events(&mut group, events)?;
            self.take_over_pending(&mut group)?;
            self.step_partitions(&mut group)?;
            if last_check.elapsed() >= COMPLETION_CHECK {
                last_check = Instant::now();
                progress(&self.summary_now(&group.runs, &group.closed, group.started));
                if options.stop_at_end
                    && group.ever_assigned
                    && group.runs.is_empty()
                    && group.pending.is_empty()
                    && all_completed(storage.as_ref(), state_dir, &topic_partitions)?
                {
                    break;
                }
            }
        }
        // Stopped or done: every partition still held is checkpointed and let go, then
        // the group is left, so that the others get the partitions at once.
        for (p, run) in std::mem::take(&mut group.runs) {
            self.close_partition(p, run, &mut group.closed)?;
        }
        group.member.leave();
        let mut summary = self.summary_now(&group.runs, &group.closed, group.started);
        summary.interrupted = interrupted;
        Ok(summary)
    }

    /// Follows the group's changes: assigned partitions wait to be taken over, revoked
    /// ones are checkpointed and let go.
    fn on_group_events(&mut self, group: &mut GroupRun<'_>, events: Vec<GroupEvent>) -> Result<()> {
        for event in events {
            match event {
                GroupEvent::Assigned(partitions) => {
                    group.ever_assigned = true;
                    (self.notices.0)(&format!("assigned partitions {partitions:?}"));
                    group.pending.extend(partitions);
                }
                GroupEvent::Revoked { partitions, lost } => {
                    (self.notices.0)(&format!(
                        "{} partitions {partitions:?}",
                        if lost { "lost" } else { "revoked" }
                    ));
                    for p in partitions {
                        group.pending.remove(&p);
                        if let Some(run) = group.runs.remove(&p) {
                            self.close_partition(p, run, &mut group.closed)?;
                        }
                    }
                }
                GroupEvent::Error(text) => {
                    (self.notices.0)(&format!("warning: consumer group: {text}"))
                }
            }
        }
        Ok(())
    }

    /// Takes over the assigned partitions whose previous owner has let go.
    fn take_over_pending(&mut self, group: &mut GroupRun<'_>) -> Result<()> {
        for p in group.pending.clone() {
            let opened = self.open_partition(
                group.planned,
                group.state_dir,
                group.fingerprint,
                &group.group,
                p,
                &group.member,
            )?;
            match opened {
                Opened::Running(run) => {
                    group.pending.remove(&p);
                    group.runs.insert(p, *run);
                }
                Opened::Completed => {
                    group.pending.remove(&p);
                }
                Opened::Busy => {
                    if group.waiting_said.insert(p) {
                        (self.notices.0)(&format!(
                            "partition {p}: waiting for its previous owner to let it go"
                        ));
                    }
                }
            }
        }
        Ok(())
    }

    /// One batch of every partition held; a partition another process took over is
    /// dropped unwritten, one whose input ended completes.
    fn step_partitions(&mut self, group: &mut GroupRun<'_>) -> Result<()> {
        group.busy = false;
        let mut fenced = Vec::new();
        let mut ended = Vec::new();
        for (&p, run) in group.runs.iter_mut() {
            match step(run)? {
                Stepped::Fenced => fenced.push(p),
                Stepped::Ended => ended.push(p),
                Stepped::Went { rows, checkpointed } => {
                    group.busy |= rows;
                    if checkpointed {
                        // For lag monitoring: the group's committed offsets follow the
                        // checkpoints (never read back; checkpoints are).
                        if let Some(position) = run.flow.kafka_position() {
                            group.member.commit(&position);
                        }
                    }
                }
            }
        }
        for p in fenced {
            if let Some(mut run) = group.runs.remove(&p) {
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
            if let Some(run) = group.runs.remove(&p) {
                self.complete_partition(p, run, &mut group.closed)?;
            }
        }
        Ok(())
    }
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

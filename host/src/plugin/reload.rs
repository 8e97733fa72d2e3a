//! Live plugin swaps (`--reload-plugins`), the plugin's side: whether a new build of a
//! running aggregate may take over its groups ([`successor_refusal`]), and the job that
//! converts one window operator's open groups to the new build ([`replace_job`]): each
//! call's states from the running accumulator → the new build's `migrate` (when the state
//! version differs) → `merge` into a fresh instance of the new build, in the same slots.
//! This is the restart upgrade's path ([`super::upgrade`]) applied to live operators; it
//! must not know about files, barriers or state dirs.

use std::sync::Arc;

use arrow::array::Array;

use super::accumulator::PluginAccumulator;
use super::instance::plugin_error;
use super::load::{Plugin, PluginKind};
use super::upgrade::Upgrader;
use crate::aggregate::GroupAccumulator;
use crate::operator::{ReplaceJob, Replacement, WindowAggregate};

/// Groups whose states cross into Wasm in one call while they move to a new build.
const SLOTS_PER_CALL: usize = 4096;

/// Groups the new build evaluates on trial before it may take over.
const TRIAL_GROUPS: usize = 64;

/// Why `new` may not replace `running` in a live query, in words (`None`: it may): it
/// must be an aggregate of the same argument and result types that reads the running
/// build's state version.
pub fn successor_refusal(running: &Plugin, new: &Plugin) -> Option<String> {
    let (old, now) = (running.info(), new.info());
    if now.kind != PluginKind::Aggregate {
        return Some(format!("it is a {}, not an aggregate", now.kind));
    }
    if now.args != old.args || now.returns != old.returns {
        return Some(format!(
            "it declares {}, the running build {}: a live swap keeps the query's types",
            signature(&now.args, now.returns),
            signature(&old.args, old.returns)
        ));
    }
    if now.state_version != old.state_version
        && !now.reads_state_versions.contains(&old.state_version)
    {
        return Some(format!(
            "it has state version {} and does not read state version {} of the running build \
             (interface `upgrade` in wit/laminar-udaf.wit)",
            now.state_version, old.state_version
        ));
    }
    None
}

fn signature(args: &[super::PluginType], returns: super::PluginType) -> String {
    let args: Vec<String> = args.iter().map(|t| t.to_string()).collect();
    format!("({}) -> {returns}", args.join(", "))
}

/// The job that moves the open groups of calls `calls` (of one query's operator, on every
/// core) from their running accumulators, whose states have version `from`, to fresh
/// instances of `new`. It changes nothing in the operator; a failure (a trap in
/// `migrate` or `merge`, a wrong count) is its error.
pub(crate) fn replace_job(new: Arc<Plugin>, from: u32, calls: Vec<usize>) -> ReplaceJob {
    Arc::new(move |aggregate: &mut WindowAggregate| {
        let name = new.name();
        let (slots, num_slots) = aggregate.open_slots();
        let mut upgrader = match from == new.info().state_version {
            true => None,
            false => Some(Upgrader::new(&new, name)?.ok_or_else(|| {
                plugin_error(name, "migrate", "it exports no upgrade interface".into())
            })?),
        };
        let mut replacement = Replacement::default();
        for &call in &calls {
            let running = aggregate.accumulator_mut(call).ok_or_else(|| {
                crate::error::Error::Execution(format!("internal: no aggregate call {call}"))
            })?;
            let mut fresh = PluginAccumulator::new(Arc::clone(&new))?;
            let mut sample = None;
            // A bounded piece at a time: no call's bytes grow with the number of groups.
            for piece in slots.chunks(SLOTS_PER_CALL) {
                let states = running.state(piece)?;
                let states = match &mut upgrader {
                    Some(upgrader) => upgrader.migrate(&new, from, &states)?,
                    None => states,
                };
                fresh.merge(&states, piece, num_slots)?;
                replacement.groups += (states.len() - states.null_count()) as u64;
                if sample.is_none() {
                    sample = Some(states.slice(0, states.len().min(TRIAL_GROUPS)));
                }
            }
            try_evaluate(&new, sample.as_ref())?;
            replacement.calls.push((call, Box::new(fresh)));
        }
        Ok(replacement)
    })
}

/// Evaluates some of the moved group states (`sample`; a group that saw no rows when
/// there is none) in a trial instance of `new`, whose result must have one value per
/// group: a build whose `evaluate` traps or answers wrongly is refused before it takes
/// over, not at the next window it closes.
fn try_evaluate(
    new: &Arc<Plugin>,
    sample: Option<&arrow::array::BinaryArray>,
) -> crate::error::Result<()> {
    let mut trial = PluginAccumulator::new(Arc::clone(new))?;
    let groups = sample.map_or(0, |s| s.len()).max(1);
    let slots: Vec<u32> = (0..groups as u32).collect();
    if let Some(states) = sample.filter(|s| !s.is_empty()) {
        trial.merge(states, &slots, groups)?;
    }
    let result = trial.evaluate(&slots)?;
    if result.len() != groups {
        return Err(plugin_error(
            new.name(),
            "evaluate",
            format!("it returned {} values for {groups} groups", result.len()),
        ));
    }
    Ok(())
}

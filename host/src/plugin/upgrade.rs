//! Upgrading a plugin under a durable query (`wit/laminar-udaf.wit`, interface `upgrade`):
//! which older state versions a build reads, and carrying a checkpoint's states of another
//! build over to the build running now.
//!
//! ```text
//!  resume with a new build: checkpoint window ─▶ state column of each call of the plugin
//!      ─▶ migrate (upgrade.migrate, when the version differs) ─▶ trial merge into a fresh
//!         instance of the new build ─▶ the column, now in the new encoding ─▶ operators
//! ```
//! Everything runs before the run reads its first row and before the state dir's
//! fingerprint moves on, so a build that fails (an error, a trap, a wrong count) refuses
//! the run and leaves the state dir to the build that wrote it. The module must not know
//! about state dirs or windows beyond the snapshot batches it is handed.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, BinaryArray};
use arrow::record_batch::RecordBatch;
use wasmtime::Store;

use super::columns::MergeStates;
use super::instance::PluginInstance;
use super::instance::{guarded, instantiate_failed, new_store, plugin_error, Failure};
use super::load::{root_cause, Plugin};
use super::sandbox::HostState;
use super::upgrade_bindings::exports::laminar::udaf::upgrade::{Guest, GuestIndices, VarBinary};
use crate::checkpoint::PluginChange;
use crate::error::{Error, Result};

/// Most older state versions a build may declare it reads.
pub const MAX_READ_VERSIONS: usize = 64;

/// The older state versions `plugin` reads, ascending, from its optional `upgrade` export
/// (none without it). `label` names the plugin in errors while it loads.
pub(super) fn reads_state_versions(plugin: &Plugin, label: &str, own: u32) -> Result<Vec<u32>> {
    let Some(mut upgrade) = Upgrader::new(plugin, label)? else {
        return Ok(Vec::new());
    };
    let limits = plugin.limits();
    let mut versions = guarded(
        &mut upgrade.store,
        label,
        "reads-state-versions",
        limits,
        |s| upgrade.guest.call_reads_state_versions(s).map(Ok),
    )
    .map_err(Failure::into_error)?;
    if versions.len() > MAX_READ_VERSIONS {
        return Err(plugin_error(
            label,
            "reads-state-versions",
            format!(
                "returned {} versions; a build reads at most {MAX_READ_VERSIONS}",
                versions.len()
            ),
        ));
    }
    versions.retain(|&v| v != own);
    versions.sort_unstable();
    versions.dedup();
    Ok(versions)
}

/// An instance of a plugin's `upgrade` export.
pub(super) struct Upgrader {
    store: Store<HostState>,
    guest: Guest,
}

impl Upgrader {
    /// A fresh instance, or `None` when the component does not export `upgrade`.
    pub(super) fn new(plugin: &Plugin, name: &str) -> Result<Option<Self>> {
        let Some(pre) = plugin.aggregate_pre() else {
            return Ok(None);
        };
        let Ok(indices) = GuestIndices::new(pre.instance_pre()) else {
            return Ok(None);
        };
        let mut store = new_store(plugin, name)?;
        let instance = pre
            .instance_pre()
            .instantiate(&mut store)
            .map_err(|e| instantiate_failed(&e, &store, plugin.limits(), name))?;
        let guest = indices.load(&mut store, &instance).map_err(|e| {
            plugin_error(
                name,
                "instantiate",
                format!(
                    "it exports laminar:udaf/upgrade with other types than \
                     wit/laminar-udaf.wit declares: {}",
                    root_cause(&e)
                ),
            )
        })?;
        Ok(Some(Self { store, guest }))
    }

    /// `states` (written under `from`) in the plugin's current encoding.
    pub(super) fn migrate(
        &mut self,
        plugin: &Plugin,
        from: u32,
        states: &BinaryArray,
    ) -> Result<BinaryArray> {
        let name = plugin.name();
        let input = MergeStates::new(states);
        let param = input.as_param();
        let states_in = VarBinary {
            offsets: param.offsets.to_vec(),
            data: param.data.to_vec(),
        };
        let out = guarded(&mut self.store, name, "migrate", plugin.limits(), |s| {
            self.guest.call_migrate(s, from, &states_in)
        })
        .map_err(Failure::into_error)?;
        let count = out.offsets.len().saturating_sub(1);
        if count != states.len() {
            return Err(plugin_error(
                name,
                "migrate",
                format!("returned {count} states for {} groups", states.len()),
            ));
        }
        let offsets = super::columns::offsets(out.offsets, out.data.len())
            .map_err(|m| plugin_error(name, "migrate", m))?;
        // A group with no state stays without one.
        BinaryArray::try_new(offsets, out.data.into(), states.nulls().cloned())
            .map_err(|e| plugin_error(name, "migrate", format!("returned malformed states: {e}")))
    }
}

/// The carrying over of every changed plugin's states while a checkpoint is restored.
pub(crate) struct StateUpgrade {
    changes: Vec<PluginChange>,
    /// Per plugin name: its upgrade instance (when the version differs), a fresh
    /// accumulator for the trial merge, and the group states carried over.
    work: HashMap<String, Work>,
}

struct Work {
    upgrader: Option<Upgrader>,
    trial: PluginInstance,
    groups: u64,
}

impl StateUpgrade {
    /// Carries over the states of the plugins in `changes` (from the state dir: which
    /// build wrote them); empty `changes` change nothing.
    pub(crate) fn new(changes: Vec<PluginChange>) -> Self {
        Self {
            changes,
            work: HashMap::new(),
        }
    }

    /// Converts the state columns of the changed plugins in `windows` (one checkpointed
    /// query's open windows: `key_count` key columns, then one state column per call;
    /// `calls[i]` is the plugin of call `i`, `None` for a native aggregate) into the
    /// current builds' encoding, proving on a throw-away instance that each build merges
    /// them.
    pub(crate) fn carry_over(
        &mut self,
        calls: &[Option<Arc<Plugin>>],
        key_count: usize,
        windows: &mut [(i64, RecordBatch)],
    ) -> Result<()> {
        if self.changes.is_empty() {
            return Ok(());
        }
        for (call, plugin) in calls.iter().enumerate() {
            let Some(plugin) = plugin else { continue };
            let Some(change) = self.changes.iter().find(|c| c.to.name == plugin.name()) else {
                continue;
            };
            let from = change.from.state_version;
            let (name, own) = (plugin.name(), plugin.info().state_version);
            if from != own && !plugin.info().reads_state_versions.contains(&from) {
                return Err(plugin_error(
                    name,
                    "migrate",
                    format!(
                        "the checkpoint holds states of {}, which {} does not read",
                        change.from.build_text(),
                        change.to.build_text()
                    ),
                ));
            }
            if !self.work.contains_key(name) {
                let upgrader = match from == own {
                    true => None,
                    false => Some(Upgrader::new(plugin, name)?.ok_or_else(|| {
                        plugin_error(name, "migrate", "it exports no upgrade interface".into())
                    })?),
                };
                let trial = PluginInstance::new(plugin)?;
                let work = Work {
                    upgrader,
                    trial,
                    groups: 0,
                };
                self.work.insert(name.to_string(), work);
            }
            let Some(work) = self.work.get_mut(name) else {
                continue;
            };
            for (start, batch) in windows.iter_mut() {
                let column = key_count + call;
                let states = batch
                    .columns()
                    .get(column)
                    .and_then(|c| c.as_binary_opt::<i32>())
                    .ok_or_else(|| {
                        Error::Execution(format!(
                            "checkpointed window {start}: no state column for call {}",
                            call + 1
                        ))
                    })?
                    .clone();
                let states = match &mut work.upgrader {
                    Some(upgrader) => upgrader.migrate(plugin, from, &states)?,
                    None => states,
                };
                let rows = u32::try_from(states.len()).map_err(|_| {
                    plugin_error(name, "merge", "more than 2^32 groups in a window".into())
                })?;
                let ids: Vec<u32> = (0..rows).collect();
                work.trial.merge(&ids, rows, &states)?;
                // Frees the trial groups (and proves they evaluate).
                work.trial.evaluate(&ids)?;
                work.groups += (states.len() - states.null_count()) as u64;
                let mut columns: Vec<ArrayRef> = batch.columns().to_vec();
                columns[column] = Arc::new(states);
                *batch = RecordBatch::try_new(batch.schema(), columns)?;
            }
        }
        Ok(())
    }

    /// One line per changed plugin: which build it was, which it is, how many groups moved.
    pub(crate) fn report(&self) -> Vec<String> {
        self.changes
            .iter()
            .map(|change| {
                let groups = self.work.get(&change.to.name).map_or(0, |w| w.groups);
                let how = if change.from.state_version == change.to.state_version {
                    "carried over".to_string()
                } else {
                    format!(
                        "migrated from state version {} to {}",
                        change.from.state_version, change.to.state_version
                    )
                };
                format!(
                    "plugin '{}' upgraded from {} to {}: {groups} group states {how}",
                    change.to.name,
                    change.from.build_text(),
                    change.to.build_text()
                )
            })
            .collect()
    }
}

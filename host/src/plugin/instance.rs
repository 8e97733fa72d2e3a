//! One sandboxed instance of a plugin with its accumulator: every call runs under the
//! per-call deadline and memory cap, and every failure becomes an error naming the plugin
//! and the function.

use arrow::array::{ArrayRef, BinaryArray};
use wasmtime::component::ResourceAny;
use wasmtime::{PoolConcurrencyLimitError, Store, Trap};

use super::bindings::exports::laminar::udaf::aggregate::Signature;
use super::bindings::{ColumnParam, Udaf};
use super::columns::{from_column, states_from_plugin, MergeStates};
use super::load::{root_cause, Plugin};
use super::runtime::{Runtime, MAX_LIVE_INSTANCES};
use super::sandbox::{HostState, SandboxLimits, CAPTURED_OUTPUT_BYTES};
use crate::error::{Error, Result};
use crate::text::{shown, ERROR_CHARS};

/// A plugin instance holding one accumulator resource.
pub(crate) struct PluginInstance {
    name: String,
    store: Store<HostState>,
    bindings: Udaf,
    accumulator: ResourceAny,
    limits: SandboxLimits,
    returns: super::types::PluginType,
    /// Set after a trap: the instance's memory may be inconsistent, so it is not called again.
    poisoned: Option<String>,
}

impl std::fmt::Debug for PluginInstance {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PluginInstance")
            .field("plugin", &self.name)
            .field("memory_bytes", &self.memory_bytes())
            .finish()
    }
}

impl PluginInstance {
    /// Instantiates `plugin` and creates its accumulator.
    pub(crate) fn new(plugin: &Plugin) -> Result<Self> {
        let name = plugin.name().to_string();
        let (mut store, bindings) = instantiate(plugin, &name)?;
        let accumulator = guarded(&mut store, &name, "constructor", plugin.limits(), |store| {
            bindings
                .laminar_udaf_aggregate()
                .accumulator()
                .call_constructor(store)
                .map(Ok)
        })
        .map_err(Failure::into_error)?;
        Ok(Self {
            name,
            store,
            bindings,
            accumulator,
            limits: plugin.limits(),
            returns: plugin.info().returns,
            poisoned: None,
        })
    }

    /// Calls `describe` in a throw-away instance (used while loading).
    pub(crate) fn describe(plugin: &Plugin, name: &str) -> Result<Signature> {
        let (mut store, bindings) = instantiate(plugin, name)?;
        guarded(&mut store, name, "describe", plugin.limits(), |store| {
            bindings
                .laminar_udaf_aggregate()
                .call_describe(store)
                .map(Ok)
        })
        .map_err(Failure::into_error)
    }

    /// Bytes of linear memory the instance holds.
    pub(crate) fn memory_bytes(&self) -> usize {
        self.store.data().limiter.current
    }

    /// Adds a batch: row `i` of `args` belongs to group `group_ids[i]`.
    pub(crate) fn update(
        &mut self,
        group_ids: &[u32],
        total_groups: u32,
        args: &[ColumnParam<'_>],
    ) -> Result<()> {
        self.call("update", |bindings, accumulator, store| {
            bindings.laminar_udaf_aggregate().accumulator().call_update(
                store,
                accumulator,
                group_ids,
                total_groups,
                args,
            )
        })
    }

    /// Final values of `group_ids` (which the plugin then resets).
    pub(crate) fn evaluate(&mut self, group_ids: &[u32]) -> Result<ArrayRef> {
        let column = self.call("evaluate", |bindings, accumulator, store| {
            bindings
                .laminar_udaf_aggregate()
                .accumulator()
                .call_evaluate(store, accumulator, group_ids)
        })?;
        from_column(column, self.returns, group_ids.len()).map_err(|m| self.error("evaluate", m))
    }

    /// State bytes of `group_ids`, unchanged in the plugin.
    pub(crate) fn state(&mut self, group_ids: &[u32]) -> Result<BinaryArray> {
        let states = self.call("state", |bindings, accumulator, store| {
            bindings.laminar_udaf_aggregate().accumulator().call_state(
                store,
                accumulator,
                group_ids,
            )
        })?;
        states_from_plugin(states, group_ids.len()).map_err(|m| self.error("state", m))
    }

    /// Merges `states` (one per id) into `group_ids`.
    pub(crate) fn merge(
        &mut self,
        group_ids: &[u32],
        total_groups: u32,
        states: &BinaryArray,
    ) -> Result<()> {
        let states = MergeStates::new(states);
        self.call("merge", |bindings, accumulator, store| {
            bindings.laminar_udaf_aggregate().accumulator().call_merge(
                store,
                accumulator,
                group_ids,
                total_groups,
                states.as_param(),
            )
        })
    }

    fn call<T>(
        &mut self,
        function: &str,
        f: impl FnOnce(
            &Udaf,
            ResourceAny,
            &mut Store<HostState>,
        ) -> wasmtime::Result<std::result::Result<T, String>>,
    ) -> Result<T> {
        if let Some(reason) = &self.poisoned {
            return Err(self.error(
                function,
                format!("not called again after an earlier failure: {reason}"),
            ));
        }
        let (bindings, accumulator) = (&self.bindings, self.accumulator);
        let result = guarded(
            &mut self.store,
            &self.name,
            function,
            self.limits,
            |store| f(bindings, accumulator, store),
        );
        result.map_err(|failure| {
            if let Failure::Trapped(Error::Plugin { message, .. }) = &failure {
                self.poisoned = Some(message.clone());
            }
            failure.into_error()
        })
    }

    fn error(&self, function: &str, message: String) -> Error {
        Error::Plugin {
            plugin: self.name.clone(),
            function: function.to_string(),
            message,
        }
    }
}

impl Drop for PluginInstance {
    fn drop(&mut self) {
        if self.poisoned.is_none() {
            self.store
                .set_epoch_deadline(Runtime::deadline_ticks(self.limits.call_timeout_ms));
            let _ = self.accumulator.resource_drop(&mut self.store);
        }
    }
}

/// Makes a store under the plugin's limits and instantiates the aggregate component in it.
fn instantiate(plugin: &Plugin, name: &str) -> Result<(Store<HostState>, Udaf)> {
    let mut store = new_store(plugin, name)?;
    let pre = plugin.aggregate_pre().ok_or_else(|| {
        plugin_error(
            name,
            "instantiate",
            "it is a scalar function, not an aggregate".to_string(),
        )
    })?;
    let bindings = pre
        .instantiate(&mut store)
        .map_err(|e| instantiate_failed(&e, &store, plugin.limits(), name))?;
    Ok((store, bindings))
}

/// A store under the plugin's limits: memory cap, epoch deadline, sandboxed WASI.
pub(super) fn new_store(plugin: &Plugin, name: &str) -> Result<Store<HostState>> {
    let runtime = Runtime::shared().map_err(|m| plugin_error(name, "instantiate", m))?;
    let limits = plugin.limits();
    let mut store = Store::new(&runtime.engine, HostState::new(limits));
    store.limiter(|state| &mut state.limiter);
    store.epoch_deadline_trap();
    store.set_epoch_deadline(Runtime::deadline_ticks(limits.call_timeout_ms));
    Ok(store)
}

/// The error of a failed instantiation: the instance pool full, a trap in a start
/// function, a limit hit.
pub(super) fn instantiate_failed(
    e: &wasmtime::Error,
    store: &Store<HostState>,
    limits: SandboxLimits,
    name: &str,
) -> Error {
    let message = if e.downcast_ref::<PoolConcurrencyLimitError>().is_some() {
        format!(
            "{}: at most {MAX_LIVE_INSTANCES} plugin instances (one per query operator \
                 using a plugin aggregate) can be alive at once, fewer of components made \
                 of many modules such as Python ones",
            root_cause(e)
        )
    } else {
        explain_trap(e, store, limits)
    };
    plugin_error(name, "instantiate", message)
}

/// How a call into a plugin failed.
pub(super) enum Failure {
    /// The plugin returned an error; the instance is still usable.
    Returned(Error),
    /// The call trapped (or timed out, or hit the memory cap): the instance's state may be
    /// inconsistent and it must not be called again.
    Trapped(Error),
}

impl Failure {
    pub(super) fn into_error(self) -> Error {
        match self {
            Failure::Returned(e) | Failure::Trapped(e) => e,
        }
    }
}

/// Runs one call under a fresh deadline and turns every way it can fail into an error.
pub(super) fn guarded<T>(
    store: &mut Store<HostState>,
    name: &str,
    function: &str,
    limits: SandboxLimits,
    f: impl FnOnce(&mut Store<HostState>) -> wasmtime::Result<std::result::Result<T, String>>,
) -> std::result::Result<T, Failure> {
    store.set_epoch_deadline(Runtime::deadline_ticks(limits.call_timeout_ms));
    store.data_mut().sleep.reset();
    match f(store) {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(message)) => Err(Failure::Returned(plugin_error(
            name,
            function,
            format!("returned an error: {}", shown(&message, ERROR_CHARS)),
        ))),
        Err(err) => Err(Failure::Trapped(plugin_error(
            name,
            function,
            format!("trapped: {}", explain_trap(&err, store, limits)),
        ))),
    }
}

/// A readable account of a trap: timeout, memory limit or the guest's own failure, with
/// whatever the plugin printed.
fn explain_trap(err: &wasmtime::Error, store: &Store<HostState>, limits: SandboxLimits) -> String {
    let state = store.data();
    let mut message = if err.downcast_ref::<Trap>() == Some(&Trap::Interrupt) {
        format!(
            "exceeded the time limit of {} ms per call (an endless loop?)",
            limits.call_timeout_ms
        )
    } else if state.sleep.exceeded {
        format!(
            "exceeded the time limit of {} ms per call: it asked to sleep for {} ms in all \
             (plugins run on a virtual clock: sleeping does not wait, and no call may sleep \
             longer than its time limit)",
            limits.call_timeout_ms,
            state.sleep.slept_ns / 1_000_000
        )
    } else if let Some(wanted) = state.limiter.refused {
        format!(
            "exceeded the memory limit of {} MiB (it asked for {} MiB)",
            state.limiter.limit() >> 20,
            wanted.div_ceil(1 << 20)
        )
    } else {
        shown(&root_cause(err), ERROR_CHARS)
    };
    let output = state.output.text();
    if !output.is_empty() {
        message.push_str(&format!(
            "; plugin output: {}",
            shown(&crate::error::one_line(&output), OUTPUT_CHARS)
        ));
    }
    message
}

/// Most characters of a plugin's captured output shown (the capture keeps its first and
/// last [`CAPTURED_OUTPUT_BYTES`] bytes and a note of what it left out between them).
const OUTPUT_CHARS: usize = 2 * CAPTURED_OUTPUT_BYTES + 128;

pub(super) fn plugin_error(name: &str, function: &str, message: String) -> Error {
    Error::Plugin {
        plugin: name.to_string(),
        function: function.to_string(),
        message,
    }
}

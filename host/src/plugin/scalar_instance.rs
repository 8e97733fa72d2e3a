//! One sandboxed instance of a scalar plugin: the Arrow arguments cross as the columns of
//! `wit/laminar-scalar.wit` (the aggregate's layouts, lent without copying values), and the
//! result is checked as an aggregate's is (type, length, offsets, UTF-8, bitmap).

use arrow::array::ArrayRef;
use wasmtime::Store;

use super::bindings::{ColumnDataParam, ColumnDataResult, ColumnParam, ColumnResult};
use super::bindings::{VarBinaryParam, VarBinaryResult};
use super::columns::{from_column, ArgColumn};
use super::instance::{guarded, new_store, plugin_error, Failure};
use super::load::Plugin;
use super::sandbox::{HostState, SandboxLimits};
use super::scalar_bindings::{self as scalar, Udf};
use super::types::PluginType;
use crate::error::Result;

/// A scalar plugin instance.
pub(crate) struct ScalarInstance {
    name: String,
    store: Store<HostState>,
    bindings: Udf,
    limits: SandboxLimits,
    args: Vec<PluginType>,
    returns: PluginType,
    /// Set after a trap: the instance is not called again.
    poisoned: bool,
}

impl std::fmt::Debug for ScalarInstance {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScalarInstance")
            .field("plugin", &self.name)
            .finish()
    }
}

impl ScalarInstance {
    /// Instantiates the scalar `plugin`.
    pub(crate) fn new(plugin: &Plugin) -> Result<Self> {
        let name = plugin.name().to_string();
        let (store, bindings) = instantiate(plugin, &name)?;
        Ok(Self {
            name,
            store,
            bindings,
            limits: plugin.limits(),
            args: plugin.info().args.clone(),
            returns: plugin.info().returns,
            poisoned: false,
        })
    }

    /// Calls `describe` in a throw-away instance (used while loading).
    pub(crate) fn describe(plugin: &Plugin, name: &str) -> Result<scalar::Signature> {
        let (mut store, bindings) = instantiate(plugin, name)?;
        guarded(&mut store, name, "describe", plugin.limits(), |store| {
            bindings.laminar_udaf_scalar().call_describe(store).map(Ok)
        })
        .map_err(Failure::into_error)
    }

    /// Whether the instance may be called again (it has not trapped).
    pub(crate) fn usable(&self) -> bool {
        !self.poisoned
    }

    /// The function over `rows` rows of `args` (one array per declared argument).
    pub(crate) fn evaluate(&mut self, rows: usize, args: &[ArrayRef]) -> Result<ArrayRef> {
        let error = |message: String| plugin_error(&self.name, "evaluate", message);
        if args.len() != self.args.len() {
            return Err(error(format!(
                "called with {} arguments; it takes {}",
                args.len(),
                self.args.len()
            )));
        }
        let rows_u32 = u32::try_from(rows)
            .map_err(|_| error(format!("{rows} rows exceed the 2^32 a plugin can take")))?;
        let columns = args
            .iter()
            .zip(&self.args)
            .map(|(array, &to)| ArgColumn::new(array, to))
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(error)?;
        let params: Vec<scalar::ColumnParam<'_>> =
            columns.iter().map(|c| to_scalar(c.as_param())).collect();
        let bindings = &self.bindings;
        let result = guarded(
            &mut self.store,
            &self.name,
            "evaluate",
            self.limits,
            |store| {
                bindings
                    .laminar_udaf_scalar()
                    .call_evaluate(store, rows_u32, &params)
            },
        );
        let column = result.map_err(|failure| {
            if matches!(failure, Failure::Trapped(_)) {
                self.poisoned = true;
            }
            failure.into_error()
        })?;
        from_column(from_scalar(column), self.returns, rows)
            .map_err(|m| plugin_error(&self.name, "evaluate", m.replace("groups", "rows")))
    }
}

/// Makes a store under the plugin's limits and instantiates the scalar component in it.
fn instantiate(plugin: &Plugin, name: &str) -> Result<(Store<HostState>, Udf)> {
    let mut store = new_store(plugin, name)?;
    let pre = plugin.scalar_pre().ok_or_else(|| {
        plugin_error(
            name,
            "instantiate",
            "it is not a scalar function".to_string(),
        )
    })?;
    let bindings = pre
        .instantiate(&mut store)
        .map_err(|e| super::instance::instantiate_failed(&e, &store, plugin.limits(), name))?;
    Ok((store, bindings))
}

/// An argument column as the scalar interface takes it (the same layout, lent).
fn to_scalar(column: ColumnParam<'_>) -> scalar::ColumnParam<'_> {
    let data = match column.data {
        ColumnDataParam::Float64(v) => scalar::ColumnDataParam::Float64(v),
        ColumnDataParam::Int64(v) => scalar::ColumnDataParam::Int64(v),
        ColumnDataParam::Timestamp(v) => scalar::ColumnDataParam::Timestamp(v),
        ColumnDataParam::Boolean(v) => scalar::ColumnDataParam::Boolean(v),
        ColumnDataParam::Utf8(VarBinaryParam { offsets, data }) => {
            scalar::ColumnDataParam::Utf8(scalar::VarBinaryParam { offsets, data })
        }
    };
    scalar::ColumnParam {
        data,
        validity: column.validity,
    }
}

/// A scalar result as the aggregate's result type, for the shared checks (values moved).
fn from_scalar(column: scalar::ColumnResult) -> ColumnResult {
    let data = match column.data {
        scalar::ColumnDataResult::Float64(v) => ColumnDataResult::Float64(v),
        scalar::ColumnDataResult::Int64(v) => ColumnDataResult::Int64(v),
        scalar::ColumnDataResult::Timestamp(v) => ColumnDataResult::Timestamp(v),
        scalar::ColumnDataResult::Boolean(v) => ColumnDataResult::Boolean(v),
        scalar::ColumnDataResult::Utf8(scalar::VarBinaryResult { offsets, data }) => {
            ColumnDataResult::Utf8(VarBinaryResult { offsets, data })
        }
    };
    ColumnResult {
        data,
        validity: column.validity,
    }
}

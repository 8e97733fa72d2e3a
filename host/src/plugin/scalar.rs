//! A scalar plugin (`wit/laminar-scalar.wit`, world `udf`) as a DataFusion `ScalarUDF`:
//! usable in `WHERE`, the `SELECT` list, `GROUP BY` keys and aggregate arguments, by the
//! streaming operators (through DataFusion's physical expressions) and by batch SQL alike.
//!
//! Each call of the function is one call into Wasm for the whole batch. Instances are kept
//! in a small pool: a call takes an idle one (or makes one), and gives it back afterwards
//! unless it trapped; so several cores evaluate the function at once, each in an instance
//! of its own.

use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex};

use arrow::array::ArrayRef;
use arrow::datatypes::DataType;
use datafusion_common::{Result as DfResult, ScalarValue};
use datafusion_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};

use super::load::Plugin;
use super::scalar_instance::ScalarInstance;
use super::udaf::df_error;

/// Idle instances kept per function; more are made when more calls run at once, and
/// dropped when they come back to a full pool.
const IDLE_INSTANCES: usize = 64;

/// The DataFusion face of a loaded scalar plugin.
#[derive(Debug)]
pub struct PluginScalar {
    plugin: Arc<Plugin>,
    signature: Signature,
    idle: Mutex<Vec<ScalarInstance>>,
}

impl PluginScalar {
    /// Wraps a scalar `plugin` for DataFusion. Arguments are coerced to the declared types
    /// as for aggregates (a TIMESTAMP of any unit passes as microseconds).
    pub fn new(plugin: Arc<Plugin>) -> Self {
        let volatility = if plugin.info().deterministic {
            Volatility::Immutable
        } else {
            Volatility::Volatile
        };
        Self {
            signature: Signature::user_defined(volatility),
            plugin,
            idle: Mutex::new(Vec::new()),
        }
    }

    /// The same, as a `ScalarUDF` to register with a `SessionContext`.
    pub fn udf(plugin: Arc<Plugin>) -> ScalarUDF {
        ScalarUDF::new_from_impl(Self::new(plugin))
    }

    /// The loaded plugin.
    pub fn plugin(&self) -> &Arc<Plugin> {
        &self.plugin
    }

    /// Calls the plugin over `args` (`rows` rows each).
    fn call(&self, rows: usize, args: &[ArrayRef]) -> crate::Result<ArrayRef> {
        let taken = self.idle.lock().ok().and_then(|mut idle| idle.pop());
        let mut instance = match taken {
            Some(instance) => instance,
            None => ScalarInstance::new(&self.plugin)?,
        };
        let result = instance.evaluate(rows, args);
        if instance.usable() {
            if let Ok(mut idle) = self.idle.lock() {
                if idle.len() < IDLE_INSTANCES {
                    idle.push(instance);
                }
            }
        }
        result
    }
}

impl PartialEq for PluginScalar {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.plugin, &other.plugin)
    }
}

impl Eq for PluginScalar {}

impl Hash for PluginScalar {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.plugin.name().hash(state);
        self.plugin.info().path.hash(state);
    }
}

impl ScalarUDFImpl for PluginScalar {
    fn name(&self) -> &str {
        self.plugin.name()
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> DfResult<DataType> {
        Ok(self.plugin.info().returns.arrow_type())
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> DfResult<Vec<DataType>> {
        super::udaf::coerce_arguments(self.plugin.name(), &self.plugin.info().args, arg_types)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        // Constant arguments only: one row, and a constant result.
        let constant = !args.args.is_empty()
            && args
                .args
                .iter()
                .all(|a| matches!(a, ColumnarValue::Scalar(_)));
        let rows = if constant { 1 } else { args.number_rows };
        let arrays = args
            .args
            .iter()
            .map(|a| a.to_array(rows))
            .collect::<DfResult<Vec<_>>>()?;
        let result = self.call(rows, &arrays).map_err(df_error)?;
        if constant {
            Ok(ColumnarValue::Scalar(ScalarValue::try_from_array(
                &result, 0,
            )?))
        } else {
            Ok(ColumnarValue::Array(result))
        }
    }
}

/// The scalar plugins `plan` calls, each once, in the order first met: for the query's
/// fingerprint (a resumed durable query must run the same builds).
pub(crate) fn scalar_plugins(plan: &datafusion_expr::LogicalPlan) -> Vec<Arc<Plugin>> {
    use datafusion_common::tree_node::{TreeNode, TreeNodeRecursion};
    let mut found: Vec<Arc<Plugin>> = Vec::new();
    let _ = plan.apply_with_subqueries(|node| {
        node.apply_expressions(|expr| {
            expr.apply(|e| {
                if let datafusion_expr::Expr::ScalarFunction(f) = e {
                    let inner: &dyn std::any::Any = f.func.inner().as_ref();
                    if let Some(scalar) = inner.downcast_ref::<PluginScalar>() {
                        if !found.iter().any(|p| Arc::ptr_eq(p, scalar.plugin())) {
                            found.push(Arc::clone(scalar.plugin()));
                        }
                    }
                }
                Ok(TreeNodeRecursion::Continue)
            })
        })
    });
    found
}

//! `COUNT(*)` is never a plugin call. A plugin registered explicitly under the name `count`
//! takes over `COUNT(x)`, but DataFusion's planner turns `COUNT(*)` (and `COUNT()`) into a
//! call of whatever `count` resolves to with the literal `1`: this module puts the
//! built-in `count` back into those calls, so counting rows stays counting rows.

use std::cell::Cell;

use datafusion_common::tree_node::{Transformed, TreeNode};
use datafusion_common::Result as DfResult;
use datafusion_expr::expr::AggregateFunction;
use datafusion_expr::utils::COUNT_STAR_EXPANSION;
use datafusion_expr::{Expr, LogicalPlan};

use super::udaf::PluginUdaf;

/// `plan` with every `COUNT(*)` that resolved to a plugin named `count` calling the
/// built-in `count` again, and the schemas above it recomputed for its BIGINT result.
pub(crate) fn count_star_stays_built_in(plan: LogicalPlan) -> DfResult<LogicalPlan> {
    let changed = Cell::new(false);
    let transformed = plan.transform_up(|node| {
        let node = node.map_expressions(|expr| {
            expr.transform(|e| match e {
                Expr::AggregateFunction(mut f) if is_plugin_count_star(&f) => {
                    f.func = datafusion_functions_aggregate::count::count_udaf();
                    changed.set(true);
                    Ok(Transformed::yes(Expr::AggregateFunction(f)))
                }
                other => Ok(Transformed::no(other)),
            })
        })?;
        // Every node above a changed call sees a new type: recompute its schema.
        if changed.get() {
            node.map_data(|n| n.recompute_schema())
        } else {
            Ok(node)
        }
    })?;
    Ok(transformed.data)
}

/// Whether `f` is `COUNT(*)` as the planner expands it, resolved to a plugin.
fn is_plugin_count_star(f: &AggregateFunction) -> bool {
    let inner: &dyn std::any::Any = f.func.inner().as_ref();
    f.func.name() == "count"
        && inner.downcast_ref::<PluginUdaf>().is_some()
        && matches!(f.params.args.as_slice(), [Expr::Literal(v, None)] if *v == COUNT_STAR_EXPANSION)
}

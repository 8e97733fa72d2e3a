//! Compiles a DataFusion `LogicalPlan` into Laminar's operator chain:
//!
//! ```text
//!  TableScan ─▶ [event-time stage] ─▶ Filter/Projection* ─▶ [WindowAggregate] ─▶ Filter/Projection*
//! ```
//! Expressions become DataFusion `PhysicalExpr`s; the window aggregate is ours. Every plan
//! shape outside this chain is rejected with what to write instead.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::datatypes::{Field, Schema, SchemaRef};
use datafusion_common::DFSchema;
use datafusion_expr::execution_props::ExecutionProps;
use datafusion_expr::expr::AggregateFunction;
use datafusion_expr::physical_planning_context::PhysicalPlanningContext;
use datafusion_expr::{Expr, ExprSchemable, LogicalPlan};
use datafusion_physical_expr::expressions::Column;
use datafusion_physical_expr::{create_physical_expr, PhysicalExpr};

use crate::aggregate::{native_accumulator, GroupAccumulator};
use crate::error::{Error, Result};
use crate::operator::{
    AggregateCall, FilterOperator, GroupColumn, Operand, Operator, ProjectOperator, WindowAggregate,
};
use crate::plugin::{Plugin, PluginAccumulator, PluginUdaf};
use crate::sql::{SourceDef, WindowClause, WINDOW_END, WINDOW_START};
use crate::time::EventTimeStage;
use crate::window::WindowSpec;

/// A query ready to run: which source it reads and its operators.
#[derive(Debug)]
pub(crate) struct CompiledQuery {
    /// The source it reads.
    pub(crate) source: String,
    /// Watermarks and windows, for windowed queries.
    pub(crate) event_time: Option<EventTimeStage>,
    /// Operators before the aggregate (or all of them, without one).
    pub(crate) before: Vec<Box<dyn Operator>>,
    /// The window aggregate.
    pub(crate) aggregate: Option<WindowAggregate>,
    /// Operators after the aggregate (HAVING, the SELECT list).
    pub(crate) after: Vec<Box<dyn Operator>>,
    /// Schema of the results.
    pub(crate) schema: SchemaRef,
    /// The plan, as text: what a durable run's state belongs to.
    pub(crate) plan_text: String,
    /// The plugins the query calls.
    pub(crate) plugins: Vec<Arc<Plugin>>,
    /// The plugin of each aggregate call, in call order (`None`: a native aggregate): whose
    /// states each state column of a checkpointed window holds.
    pub(crate) call_plugins: Vec<Option<Arc<Plugin>>>,
    /// The source columns the query reads (indices, ascending): the only ones decoded.
    pub(crate) read_columns: Vec<usize>,
}

const WINDOW_HINT: &str = "group by an event-time window: GROUP BY key, TUMBLE(ts, INTERVAL '10' SECOND) \
     (or HOP(ts, slide, size), SESSION(ts, gap)), or FROM TUMBLE(TABLE source, DESCRIPTOR(ts), INTERVAL '10' SECOND) \
     (or HOP, CUMULATE, SESSION) … GROUP BY window_start, window_end, key";

/// Compiles `plan` (already type-coerced) into operators. `late_rows`: the query writes
/// its late rows to a sink; a SESSION aggregate, which judges lateness itself, then gets
/// every source column of its rows (carried through the operators before it).
pub(crate) fn compile(
    plan: &LogicalPlan,
    sources: &HashMap<String, SourceDef>,
    window: Option<&WindowClause>,
    late_rows: bool,
) -> Result<CompiledQuery> {
    let mut chain = Vec::new();
    let mut plugins: Vec<Arc<Plugin>> = Vec::new();
    let mut call_plugins: Vec<Option<Arc<Plugin>>> = Vec::new();
    let mut node = plan;
    loop {
        reject_unsupported(node)?;
        chain.push(node);
        match node.inputs().as_slice() {
            [] => break,
            [input] => node = input,
            _ => {
                return Err(Error::unsupported(
                    format!("{} (a query over several inputs)", node.display()),
                    "read one source per query; joins and unions of streams are not supported yet",
                ))
            }
        }
    }
    chain.reverse();
    let LogicalPlan::TableScan(scan) = chain[0] else {
        return Err(Error::unsupported(
            "a query without a source",
            "select FROM a source declared with CREATE SOURCE",
        ));
    };
    let source_name = scan.table_name.table().to_string();
    let source = sources
        .get(&source_name)
        .ok_or_else(|| Error::plan(format!("unknown source '{source_name}'")))?;
    if scan.projection.is_some() || !scan.filters.is_empty() || scan.fetch.is_some() {
        return Err(Error::plan("internal: unexpected table scan options"));
    }
    let event_time = match window {
        Some(clause) => Some(event_time_stage(source, clause)?),
        None => None,
    };

    // Columns holding the window bounds, by name, as they flow up the chain.
    let mut window_columns: HashMap<String, GroupColumn> = match window {
        Some(_) => HashMap::from([
            (WINDOW_START.to_string(), GroupColumn::WindowStart),
            (WINDOW_END.to_string(), GroupColumn::WindowEnd),
        ]),
        None => HashMap::new(),
    };
    let props = ExecutionProps::new();
    let physical = |expr: &Expr, schema: &DFSchema| -> Result<Arc<dyn PhysicalExpr>> {
        Ok(create_physical_expr(
            expr,
            schema,
            &props,
            &PhysicalPlanningContext::default(),
        )?)
    };
    // SESSION late rows: the source columns ride along after each projection's own
    // columns, up to the aggregate; `carried_at` is where they are in the current rows.
    let carried: Option<Vec<Field>> = match &event_time {
        Some(stage) if late_rows && window.is_some_and(|w| w.spec.is_session()) => {
            let schema = stage.schema();
            let columns = schema.fields().len().saturating_sub(2);
            Some(
                schema.fields()[..columns]
                    .iter()
                    .map(|f| f.as_ref().clone())
                    .collect(),
            )
        }
        _ => None,
    };
    let mut carried_at = 0;
    let mut before: Vec<Box<dyn Operator>> = Vec::new();
    let mut after: Vec<Box<dyn Operator>> = Vec::new();
    let mut aggregate = None;
    // Whether an expression before (or in) the aggregate computes with a window column:
    // then HOP and CUMULATE rows must carry their windows' bounds, not their panes'.
    let mut computes_with_window = false;
    for node in &chain[1..] {
        if aggregate.is_none() {
            computes_with_window |= uses_window_columns(node, &window_columns);
        }
        let ops = if aggregate.is_some() {
            &mut after
        } else {
            &mut before
        };
        match node {
            LogicalPlan::Filter(filter) => {
                ops.push(Box::new(FilterOperator::new(physical(
                    &filter.predicate,
                    filter.input.schema(),
                )?)));
            }
            LogicalPlan::Projection(projection) => {
                let input = projection.input.schema();
                let mut exprs = projection
                    .expr
                    .iter()
                    .map(|e| physical(e, input))
                    .collect::<Result<Vec<_>>>()?;
                let mut schema = nullable_schema(&projection.schema);
                if let (Some(fields), None) = (&carried, &aggregate) {
                    (schema, carried_at) = carry(&mut exprs, &schema, fields, carried_at);
                }
                let mut renamed = HashMap::new();
                for (expr, field) in projection.expr.iter().zip(projection.schema.fields()) {
                    if let Expr::Column(c) = strip_alias(expr) {
                        if let Some(kind) = window_columns.get(&c.name) {
                            renamed.insert(field.name().clone(), *kind);
                        }
                    }
                }
                window_columns = renamed;
                ops.push(Box::new(ProjectOperator::new(exprs, schema)));
            }
            LogicalPlan::SubqueryAlias(_) => {}
            LogicalPlan::Aggregate(agg) => {
                if aggregate.is_some() {
                    return Err(Error::unsupported(
                        "an aggregate over the result of another aggregate",
                        "aggregate once per query",
                    ));
                }
                let Some(clause) = window else {
                    return Err(Error::unsupported(
                        "an aggregate over a stream without a window",
                        WINDOW_HINT,
                    ));
                };
                let input = agg.input.schema();
                let mut group_columns = Vec::new();
                let mut key_exprs = Vec::new();
                let mut key_types = Vec::new();
                let mut window_expr = None;
                let mut window_bounds: HashMap<GroupColumn, Arc<dyn PhysicalExpr>> = HashMap::new();
                let mut key_names = Vec::new();
                for expr in &agg.group_expr {
                    if let Expr::GroupingSet(_) = expr {
                        return Err(Error::unsupported(
                            "GROUPING SETS, CUBE and ROLLUP",
                            WINDOW_HINT,
                        ));
                    }
                    let window_kind = match strip_alias(expr) {
                        Expr::Column(c) => window_columns.get(&c.name).copied(),
                        _ => None,
                    };
                    match window_kind {
                        Some(kind) => {
                            if window_expr.is_none() {
                                window_expr =
                                    Some((physical(expr, input)?, kind == GroupColumn::WindowEnd));
                            }
                            window_bounds.insert(kind, physical(expr, input)?);
                            group_columns.push(kind);
                        }
                        None => {
                            key_names.push(match strip_alias(expr) {
                                Expr::Column(c) => Some(c.name.clone()),
                                _ => None,
                            });
                            group_columns.push(GroupColumn::Key(key_exprs.len()));
                            key_types.push(expr.get_type(input)?);
                            key_exprs.push(physical(expr, input)?);
                        }
                    }
                }
                let Some((mut window_expr, mut window_is_end)) = window_expr else {
                    return Err(Error::unsupported(
                        "GROUP BY without the window",
                        WINDOW_HINT,
                    ));
                };
                let spec = clause.spec;
                let mut watermark_column = None;
                if spec.id_is_end() {
                    // CUMULATE windows are told apart by their end; a SESSION row carries
                    // its event time and watermark in the two window columns.
                    let (Some(start), Some(end)) = (
                        window_bounds.get(&GroupColumn::WindowStart),
                        window_bounds.get(&GroupColumn::WindowEnd),
                    ) else {
                        return Err(Error::unsupported(
                            format!("a {} window grouped by one of its bounds", spec.name()),
                            "GROUP BY window_start, window_end, key (or GROUP BY key, SESSION(ts, gap))",
                        ));
                    };
                    if spec.is_session() {
                        window_expr = Arc::clone(start);
                        window_is_end = false;
                        watermark_column = Some(Arc::clone(end));
                    } else {
                        window_expr = Arc::clone(end);
                        window_is_end = true;
                    }
                }
                if let Some(partition) = &clause.partition_by {
                    let mut keys: Vec<Option<String>> = key_names.clone();
                    let mut wanted: Vec<Option<String>> =
                        partition.iter().cloned().map(Some).collect();
                    keys.sort();
                    wanted.sort();
                    if keys != wanted {
                        return Err(Error::unsupported(
                            format!(
                                "SESSION(… PARTITION BY {}) with other GROUP BY keys",
                                partition.join(", ")
                            ),
                            "partition by exactly the GROUP BY keys: SESSION(TABLE t PARTITION BY k, DESCRIPTOR(ts), gap) … GROUP BY window_start, window_end, k",
                        ));
                    }
                }
                let mut calls = Vec::new();
                for (i, expr) in agg.aggr_expr.iter().enumerate() {
                    let Expr::AggregateFunction(AggregateFunction { func, params }) =
                        strip_alias(expr)
                    else {
                        return Err(Error::plan(format!(
                            "internal: unexpected aggregate {expr}"
                        )));
                    };
                    let name = func.name().to_ascii_lowercase();
                    if params.distinct {
                        return Err(Error::unsupported(
                            format!("{}(DISTINCT …)", name.to_uppercase()),
                            "aggregate without DISTINCT",
                        ));
                    }
                    if params.filter.is_some() || !params.order_by.is_empty() {
                        return Err(Error::unsupported(
                            format!("FILTER or ORDER BY inside {}(…)", name.to_uppercase()),
                            "filter rows in WHERE",
                        ));
                    }
                    call_plugins.push(plugin_of(func).cloned());
                    let accumulator: Box<dyn GroupAccumulator> = match plugin_of(func) {
                        Some(plugin) => {
                            if !plugins.iter().any(|p| Arc::ptr_eq(p, plugin)) {
                                plugins.push(Arc::clone(plugin));
                            }
                            Box::new(PluginAccumulator::new(Arc::clone(plugin))?)
                        }
                        None => {
                            let arg_type =
                                params.args.first().map(|a| a.get_type(input)).transpose()?;
                            let return_type = agg.schema.field(group_columns.len() + i).data_type();
                            native_accumulator(&name, arg_type.as_ref(), return_type)?
                        }
                    };
                    let args = params
                        .args
                        .iter()
                        .map(|a| physical(a, input).map(Operand::new))
                        .collect::<Result<Vec<_>>>()?;
                    calls.push(AggregateCall { args, accumulator });
                }
                let mut renamed = HashMap::new();
                for (kind, field) in group_columns.iter().zip(agg.schema.fields()) {
                    if matches!(kind, GroupColumn::WindowStart | GroupColumn::WindowEnd) {
                        renamed.insert(field.name().clone(), *kind);
                    }
                }
                window_columns = renamed;
                let mut operator = WindowAggregate::new(
                    spec,
                    window_expr,
                    window_is_end,
                    group_columns,
                    key_exprs,
                    key_types,
                    calls,
                    nullable_schema(&agg.schema),
                )?;
                if let Some(watermarks) = watermark_column {
                    operator = operator.with_watermark_column(watermarks);
                }
                if let Some(fields) = &carried {
                    let schema = Arc::new(Schema::new(fields.clone()));
                    operator = operator.with_late_rows(carried_at, schema);
                }
                aggregate = Some(operator);
            }
            other => {
                return Err(Error::plan(format!(
                    "internal: cannot compile {}",
                    other.display()
                )))
            }
        }
    }
    if window.is_some() && aggregate.is_none() {
        return Err(Error::unsupported(
            "a window (TUMBLE, HOP, CUMULATE or SESSION) without an aggregate",
            "aggregate over the window, e.g. SELECT window_start, COUNT(*) … GROUP BY window_start, window_end",
        ));
    }
    let read_columns = read_columns(&chain, source, window);
    let mut event_time = event_time;
    let sliced = !computes_with_window
        && window.is_some_and(|w| {
            matches!(w.spec, WindowSpec::Hop { .. } | WindowSpec::Cumulate { .. })
        });
    if sliced {
        aggregate = aggregate.map(WindowAggregate::with_panes);
        if let Some(stage) = &mut event_time {
            stage.slice();
        }
    }
    Ok(CompiledQuery {
        source: source_name,
        event_time,
        before,
        aggregate,
        after,
        schema: nullable_schema(plan.schema()),
        // The window leads the plan's text: the plan itself holds it only as the plain
        // columns it was rewritten to.
        plan_text: match window {
            Some(clause) => format!(
                "window: {:?} on {}{}\n{}",
                clause.spec,
                clause.time_column,
                if sliced { ", by pane" } else { "" },
                plan.display_indent_schema()
            ),
            None => plan.display_indent_schema().to_string(),
        },
        // Scalar plugins too: a resumed durable query must run the same builds.
        plugins: plugins
            .into_iter()
            .chain(crate::plugin::scalar_plugins(plan))
            .collect(),
        call_plugins,
        read_columns,
    })
}

/// The source columns any node of the plan refers to by name, and the event-time column:
/// a superset of what the query reads (a later alias that shares a source column's name
/// only adds a column).
fn read_columns(
    chain: &[&LogicalPlan],
    source: &SourceDef,
    window: Option<&WindowClause>,
) -> Vec<usize> {
    let mut names: std::collections::HashSet<String> = std::collections::HashSet::new();
    for node in chain {
        for expr in node.expressions() {
            names.extend(expr.column_refs().into_iter().map(|c| c.name.clone()));
        }
    }
    if let Some(clause) = window {
        names.insert(clause.time_column.clone());
    }
    source
        .schema
        .fields()
        .iter()
        .enumerate()
        .filter(|(_, field)| names.contains(field.name()))
        .map(|(i, _)| i)
        .collect()
}

fn event_time_stage(source: &SourceDef, clause: &WindowClause) -> Result<EventTimeStage> {
    let index = source.schema.index_of(&clause.time_column).map_err(|_| {
        Error::plan(format!(
            "{} names column '{}', which source '{}' does not have",
            clause.spec.name(),
            clause.time_column,
            source.name
        ))
    })?;
    crate::time::EventTimeColumn::check_type(
        &clause.time_column,
        source.schema.field(index).data_type(),
    )?;
    let delay_ms = match &source.watermark {
        Some(spec) if spec.column != clause.time_column => {
            return Err(Error::plan(format!(
                "the window uses column '{}' but source '{}' declares its watermark on '{}'; window by the watermark column",
                clause.time_column, source.name, spec.column
            )))
        }
        Some(spec) => spec.delay_ms,
        None => 0,
    };
    Ok(EventTimeStage::new(
        &source.schema,
        index,
        clause.spec,
        delay_ms,
        source.options.on_error,
    ))
}

/// Appends to a projection's `exprs` (producing `schema`) the source columns `fields`,
/// which its input holds from `at` on; returns the projection's schema with them and
/// where they are in its output.
fn carry(
    exprs: &mut Vec<Arc<dyn PhysicalExpr>>,
    schema: &SchemaRef,
    fields: &[Field],
    at: usize,
) -> (SchemaRef, usize) {
    let width = exprs.len();
    let mut all: Vec<Field> = schema.fields().iter().map(|f| f.as_ref().clone()).collect();
    for (i, field) in fields.iter().enumerate() {
        let name = format!("{CARRIED_PREFIX}{}", field.name());
        exprs.push(Arc::new(Column::new(&name, at + i)));
        all.push(Field::new(name, field.data_type().clone(), true));
    }
    (Arc::new(Schema::new(all)), width)
}

/// The names of source columns carried to a SESSION aggregate for its late rows.
const CARRIED_PREFIX: &str = "__late_";

/// Whether `node` computes with one of the window columns `window_columns` (passing one
/// through a projection, or grouping by it, does not count).
fn uses_window_columns(node: &LogicalPlan, window_columns: &HashMap<String, GroupColumn>) -> bool {
    let refers = |expr: &Expr| {
        expr.column_refs()
            .iter()
            .any(|c| window_columns.contains_key(&c.name))
    };
    let plain = |expr: &Expr| matches!(strip_alias(expr), Expr::Column(_));
    match node {
        LogicalPlan::Filter(filter) => refers(&filter.predicate),
        LogicalPlan::Projection(projection) => {
            projection.expr.iter().any(|e| !plain(e) && refers(e))
        }
        LogicalPlan::Aggregate(agg) => {
            agg.group_expr.iter().any(|e| !plain(e) && refers(e))
                || agg.aggr_expr.iter().any(refers)
        }
        _ => false,
    }
}

/// Rejects plan nodes a streaming query cannot run, saying what to write instead.
fn reject_unsupported(node: &LogicalPlan) -> Result<()> {
    let (what, instead) = match node {
        LogicalPlan::Sort(_) => (
            "ORDER BY over a stream",
            "windows are emitted in order as they close; sort the output downstream",
        ),
        LogicalPlan::Limit(_) => ("LIMIT over a stream", "filter with WHERE or HAVING"),
        LogicalPlan::Join(_) => ("joins", "read one source per query"),
        LogicalPlan::Union(_) => ("UNION", "run one query per source"),
        LogicalPlan::Window(_) => (
            "OVER (…) window functions",
            "use event-time windows: GROUP BY TUMBLE(ts, INTERVAL '10' SECOND)",
        ),
        LogicalPlan::Distinct(_) => ("SELECT DISTINCT", "GROUP BY the columns, with a window"),
        LogicalPlan::Unnest(_) => ("UNNEST", "select plain columns"),
        LogicalPlan::EmptyRelation(_) | LogicalPlan::Values(_) => (
            "a query without a source",
            "select FROM a source declared with CREATE SOURCE",
        ),
        LogicalPlan::Filter(_)
        | LogicalPlan::Projection(_)
        | LogicalPlan::Aggregate(_)
        | LogicalPlan::SubqueryAlias(_)
        | LogicalPlan::TableScan(_) => return Ok(()),
        other => {
            return Err(Error::unsupported(
                other.display().to_string(),
                "use SELECT … FROM source [WHERE …] [GROUP BY key, TUMBLE(…)] [HAVING …]",
            ))
        }
    };
    Err(Error::unsupported(what, instead))
}

fn strip_alias(expr: &Expr) -> &Expr {
    match expr {
        Expr::Alias(alias) => strip_alias(&alias.expr),
        other => other,
    }
}

/// The Arrow schema of a plan node, every field nullable (streaming results may hold
/// NULLs where DataFusion's batch planner proved none).
fn nullable_schema(schema: &DFSchema) -> SchemaRef {
    Arc::new(Schema::new(
        schema
            .fields()
            .iter()
            .map(|f| Field::new(f.name(), f.data_type().clone(), true))
            .collect::<Vec<_>>(),
    ))
}

/// The Wasm plugin behind an aggregate call, if it is one.
fn plugin_of(func: &datafusion_expr::AggregateUDF) -> Option<&Arc<Plugin>> {
    let inner: &dyn std::any::Any = func.inner().as_ref();
    inner.downcast_ref::<PluginUdaf>().map(PluginUdaf::plugin)
}

//! Rewrites the window forms a user writes into plain columns DataFusion can plan.
//!
//! The GROUP BY forms `TUMBLE(ts, size)`, `HOP(ts, slide, size)` and `SESSION(ts, gap)`
//! with their `…_START(…)` / `…_END(…)` functions, and the table-valued forms
//! `FROM TUMBLE|HOP|CUMULATE(TABLE src, DESCRIPTOR(ts), …)` and
//! `FROM SESSION(TABLE src PARTITION BY k, DESCRIPTOR(ts), gap)`, become references to two
//! columns, `window_start` and `window_end`, that the event-time stage appends to every
//! row of the source (one row per window for HOP and CUMULATE). The window itself (time
//! column and kind) is returned as a [`WindowClause`] for the streaming planner.

use std::ops::ControlFlow;

use datafusion_sql::sqlparser::ast::{
    self, visit_expressions_mut, Expr, FunctionArg, FunctionArgExpr, FunctionArguments, Ident,
    ObjectName, SetExpr, TableFactor,
};

use super::context::PlanningContext;
use super::ident::normalize_ident;
use super::interval::interval_millis;
use crate::error::{Error, Result};
use crate::window::WindowSpec;

/// Name of the column holding a row's window start.
pub const WINDOW_START: &str = "window_start";
/// Name of the column holding a row's (exclusive) window end.
pub const WINDOW_END: &str = "window_end";

/// The window a query groups by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct WindowClause {
    /// The event-time column.
    pub(crate) time_column: String,
    /// The window kind and its sizes.
    pub(crate) spec: WindowSpec,
    /// The columns of a table-valued SESSION's `PARTITION BY`, which must be the GROUP BY
    /// keys.
    pub(crate) partition_by: Option<Vec<String>>,
}

/// One window call found in a query: its kind, event-time column, interval arguments and
/// (table-valued SESSION) partition columns.
#[derive(Debug)]
struct Found {
    kind: &'static str,
    time_column: String,
    intervals: Vec<Expr>,
    partition_by: Option<Vec<String>>,
}

/// The window kind a function name names in the GROUP BY form, and what the call stands
/// for: the window itself, its start or its end.
fn group_by_function(name: &str) -> Option<(&'static str, &'static str)> {
    Some(match name {
        "tumble" => ("TUMBLE", WINDOW_PLACEHOLDER),
        "tumble_start" => ("TUMBLE", WINDOW_START),
        "tumble_end" => ("TUMBLE", WINDOW_END),
        "hop" => ("HOP", WINDOW_PLACEHOLDER),
        "hop_start" => ("HOP", WINDOW_START),
        "hop_end" => ("HOP", WINDOW_END),
        "session" => ("SESSION", WINDOW_PLACEHOLDER),
        "session_start" => ("SESSION", WINDOW_START),
        "session_end" => ("SESSION", WINDOW_END),
        "cumulate" | "cumulate_start" | "cumulate_end" => ("CUMULATE", WINDOW_PLACEHOLDER),
        _ => return None,
    })
}

/// The error for a call of `name`, a function nobody defines that takes an interval: a
/// window kind that does not exist (`TUMBLING`, `SLIDE`), answered with the ones that do.
fn unknown_window(name: &str) -> Error {
    Error::plan(format!(
        "unknown window function '{}'; the windows are TUMBLE(ts, size), HOP(ts, slide, size) and SESSION(ts, gap) in GROUP BY, and TUMBLE, HOP, CUMULATE and SESSION table-valued in FROM (e.g. FROM TUMBLE(TABLE source, DESCRIPTOR(ts), INTERVAL '10' SECOND))",
        crate::text::shown(name, 60)
    ))
}

/// Whether a call's arguments include an `INTERVAL` literal.
fn has_interval_arg(args: &FunctionArguments) -> bool {
    let FunctionArguments::List(list) = args else {
        return false;
    };
    list.args.iter().any(|arg| {
        matches!(
            arg,
            FunctionArg::Unnamed(FunctionArgExpr::Expr(Expr::Interval(_)))
                | FunctionArg::Named {
                    arg: FunctionArgExpr::Expr(Expr::Interval(_)),
                    ..
                }
        )
    })
}

/// Whether table-function arguments include a `DESCRIPTOR(…)`: a windowing call.
fn has_descriptor_arg(args: &[FunctionArg]) -> bool {
    args.iter().any(|arg| {
        matches!(arg, FunctionArg::Unnamed(FunctionArgExpr::Expr(Expr::Function(f)))
            if f.name.to_string().eq_ignore_ascii_case("descriptor"))
    })
}

/// How many interval arguments a kind takes, and their names for messages.
fn interval_args(kind: &str) -> &'static str {
    match kind {
        "HOP" => "INTERVAL slide, INTERVAL size",
        "CUMULATE" => "INTERVAL step, INTERVAL max_size",
        "SESSION" => "INTERVAL gap",
        _ => "INTERVAL size",
    }
}

fn interval_count(kind: &str) -> usize {
    match kind {
        "HOP" | "CUMULATE" => 2,
        _ => 1,
    }
}

/// Replaces every TUMBLE form in `query` and returns the window it uses, if any.
pub(crate) fn rewrite_windows(
    query: &mut ast::Query,
    context: &PlanningContext,
) -> Result<Option<WindowClause>> {
    let mut found: Vec<Found> = Vec::new();
    rewrite_query_relations(query, &mut found)?;
    let mut error = None;
    let _ = visit_expressions_mut(query, |expr| {
        if let Expr::Function(function) = expr {
            let name = function.name.to_string().to_ascii_lowercase();
            let Some((kind, column)) = group_by_function(&name) else {
                if !context.knows_function(&name) && has_interval_arg(&function.args) {
                    error = Some(unknown_window(&function.name.to_string()));
                    return ControlFlow::Break(());
                }
                return ControlFlow::Continue(());
            };
            if kind == "CUMULATE" {
                error = Some(Error::unsupported(
                    format!("{}(…) in GROUP BY", name.to_uppercase()),
                    "CUMULATE is table-valued: FROM CUMULATE(TABLE source, DESCRIPTOR(ts), INTERVAL step, INTERVAL max_size) … GROUP BY window_start, window_end, key",
                ));
                return ControlFlow::Break(());
            }
            match window_call_args(&function.args, &name, kind) {
                Ok((time_column, intervals)) => {
                    found.push(Found {
                        kind,
                        time_column,
                        intervals,
                        partition_by: None,
                    });
                    *expr = Expr::Identifier(Ident::new(column));
                }
                Err(e) => {
                    error = Some(e);
                    return ControlFlow::Break(());
                }
            }
        }
        ControlFlow::Continue(())
    });
    if let Some(e) = error {
        return Err(e);
    }
    expand_window_in_group_by(&mut query.body);
    let _ = visit_expressions_mut(query, |expr| {
        if matches!(expr, Expr::Identifier(id) if id.value == WINDOW_PLACEHOLDER) {
            *expr = Expr::Identifier(Ident::new(WINDOW_START));
        }
        ControlFlow::<()>::Continue(())
    });
    let mut clause: Option<WindowClause> = None;
    for found in found {
        let mut millis = Vec::with_capacity(found.intervals.len());
        for interval in &found.intervals {
            millis.push(interval_millis(context, interval)?);
        }
        let spec = match (found.kind, millis.as_slice()) {
            ("TUMBLE", [size]) => WindowSpec::tumble(*size)?,
            ("HOP", [slide, size]) => WindowSpec::hop(*slide, *size)?,
            ("CUMULATE", [step, max]) => WindowSpec::cumulate(*step, *max)?,
            ("SESSION", [gap]) => WindowSpec::session(*gap)?,
            _ => return Err(Error::plan("internal: window arguments")),
        };
        let this = WindowClause {
            time_column: found.time_column,
            spec,
            partition_by: found.partition_by,
        };
        match &mut clause {
            Some(existing)
                if existing.time_column != this.time_column || existing.spec != this.spec =>
            {
                return Err(Error::unsupported(
                    format!(
                        "two different windows in one query ({} and {})",
                        describe(existing),
                        describe(&this)
                    ),
                    "group by one window: write the same window call, with the same column and intervals, everywhere in the query",
                ))
            }
            Some(existing) => {
                if existing.partition_by.is_none() {
                    existing.partition_by = this.partition_by;
                }
            }
            None => clause = Some(this),
        }
    }
    Ok(clause)
}

/// `KIND(column, sizes in ms)`, for messages.
fn describe(clause: &WindowClause) -> String {
    let sizes = match clause.spec {
        WindowSpec::Tumble { size } => vec![size],
        WindowSpec::Hop { slide, size } => vec![slide, size],
        WindowSpec::Cumulate { step, max } => vec![step, max],
        WindowSpec::Session { gap } => vec![gap],
    };
    let sizes: Vec<String> = sizes.iter().map(|s| format!("{s} ms")).collect();
    format!(
        "{}({}, {})",
        clause.spec.name(),
        clause.time_column,
        sizes.join(", ")
    )
}

/// Stands in for `TUMBLE(…)`, `HOP(…)` or `SESSION(…)` until GROUP BY lists are expanded.
const WINDOW_PLACEHOLDER: &str = "__laminar_window";

/// `GROUP BY …, TUMBLE(ts, size)` (or HOP, SESSION) groups by both window bounds, so that
/// `…_START` and `…_END` may both be selected.
fn expand_window_in_group_by(body: &mut SetExpr) {
    match body {
        SetExpr::Select(select) => {
            if let ast::GroupByExpr::Expressions(exprs, _) = &mut select.group_by {
                let mut expanded = Vec::with_capacity(exprs.len() + 1);
                for expr in exprs.drain(..) {
                    if matches!(&expr, Expr::Identifier(id) if id.value == WINDOW_PLACEHOLDER) {
                        expanded.push(Expr::Identifier(Ident::new(WINDOW_START)));
                        expanded.push(Expr::Identifier(Ident::new(WINDOW_END)));
                    } else {
                        expanded.push(expr);
                    }
                }
                *exprs = expanded;
            }
            for from in &mut select.from {
                if let TableFactor::Derived { subquery, .. } = &mut from.relation {
                    expand_window_in_group_by(&mut subquery.body);
                }
            }
        }
        SetExpr::Query(q) => expand_window_in_group_by(&mut q.body),
        SetExpr::SetOperation { left, right, .. } => {
            expand_window_in_group_by(left);
            expand_window_in_group_by(right);
        }
        _ => {}
    }
}

/// `(time column, interval expressions)` of `KIND(ts, INTERVAL …[, INTERVAL …])`.
fn window_call_args(
    args: &FunctionArguments,
    name: &str,
    kind: &str,
) -> Result<(String, Vec<Expr>)> {
    let usage = || {
        Error::plan(format!(
            "{}(time_column, {}) takes an event-time column and {}",
            name.to_uppercase(),
            interval_args(kind),
            if interval_count(kind) == 1 {
                "one interval"
            } else {
                "two intervals"
            }
        ))
    };
    let FunctionArguments::List(list) = args else {
        return Err(usage());
    };
    let exprs: Vec<&Expr> = list
        .args
        .iter()
        .filter_map(|a| match a {
            FunctionArg::Unnamed(FunctionArgExpr::Expr(e)) => Some(e),
            _ => None,
        })
        .collect();
    match exprs.as_slice() {
        [column, intervals @ ..]
            if exprs.len() == list.args.len() && intervals.len() == interval_count(kind) =>
        {
            let column = column_name(column).ok_or_else(|| {
                Error::unsupported(
                    format!("{}({column}, …) over an expression", name.to_uppercase()),
                    "window by the source's watermark column itself, e.g. HOP(ts, …)",
                )
            })?;
            Ok((column, intervals.iter().map(|e| (*e).clone()).collect()))
        }
        _ => Err(usage()),
    }
}

fn column_name(expr: &Expr) -> Option<String> {
    let ident = match expr {
        Expr::Identifier(id) => id,
        Expr::CompoundIdentifier(ids) => ids.last()?,
        _ => return None,
    };
    Some(normalize_ident(ident))
}

fn rewrite_query_relations(query: &mut ast::Query, found: &mut Vec<Found>) -> Result<()> {
    if let Some(with) = &mut query.with {
        for cte in &mut with.cte_tables {
            rewrite_query_relations(&mut cte.query, found)?;
        }
    }
    rewrite_set_expr(&mut query.body, found)
}

fn rewrite_set_expr(body: &mut SetExpr, found: &mut Vec<Found>) -> Result<()> {
    match body {
        SetExpr::Select(select) => {
            for from in &mut select.from {
                rewrite_factor(&mut from.relation, found)?;
                for join in &mut from.joins {
                    rewrite_factor(&mut join.relation, found)?;
                }
            }
            Ok(())
        }
        SetExpr::Query(q) => rewrite_query_relations(q, found),
        SetExpr::SetOperation { left, right, .. } => {
            rewrite_set_expr(left, found)?;
            rewrite_set_expr(right, found)
        }
        _ => Ok(()),
    }
}

/// The window kind a table-valued function name names.
fn table_function(name: &str) -> Option<&'static str> {
    Some(match name.to_ascii_lowercase().as_str() {
        "tumble" => "TUMBLE",
        "hop" => "HOP",
        "cumulate" => "CUMULATE",
        "session" => "SESSION",
        _ => return None,
    })
}

/// `KIND(src, DESCRIPTOR(ts), intervals…)` in FROM (after the `TABLE` keyword was blanked,
/// and a SESSION's `PARTITION BY k` turned into a `PARTITION(k)` argument) becomes plain
/// `src`.
fn rewrite_factor(factor: &mut TableFactor, found: &mut Vec<Found>) -> Result<()> {
    match factor {
        TableFactor::Table { name, args, .. }
            if table_function(&name.to_string()).is_some() && args.is_some() =>
        {
            let kind = table_function(&name.to_string()).unwrap_or("TUMBLE");
            let usage = || {
                let source = if kind == "SESSION" {
                    "TABLE source PARTITION BY key"
                } else {
                    "TABLE source"
                };
                Error::plan(format!(
                    "{kind}({source}, DESCRIPTOR(time_column), {}) takes a source, its event-time column and {}",
                    interval_args(kind),
                    if interval_count(kind) == 1 { "one interval" } else { "two intervals" }
                ))
            };
            let list = args.as_ref().map(|a| a.args.clone()).unwrap_or_default();
            let mut exprs: Vec<Expr> = list
                .into_iter()
                .filter_map(|a| match a {
                    FunctionArg::Unnamed(FunctionArgExpr::Expr(e)) => Some(e),
                    FunctionArg::Named {
                        arg: FunctionArgExpr::Expr(e),
                        ..
                    } => Some(e),
                    _ => None,
                })
                .collect();
            let mut partition_by = None;
            if let Some(Expr::Function(f)) = exprs.get(1) {
                if f.name.to_string().eq_ignore_ascii_case(PARTITION_FUNCTION) {
                    if kind != "SESSION" {
                        return Err(Error::unsupported(
                            format!("PARTITION BY in {kind}(…)"),
                            "partition only a SESSION window; for other windows GROUP BY the key",
                        ));
                    }
                    let FunctionArguments::List(list) = &f.args else {
                        return Err(usage());
                    };
                    let mut columns = Vec::new();
                    for arg in &list.args {
                        match arg {
                            FunctionArg::Unnamed(FunctionArgExpr::Expr(e)) => {
                                columns.push(column_name(e).ok_or_else(|| {
                                    Error::unsupported(
                                        format!("PARTITION BY {e}"),
                                        "partition by plain columns, the GROUP BY keys",
                                    )
                                })?)
                            }
                            _ => return Err(usage()),
                        }
                    }
                    partition_by = Some(columns);
                    exprs.remove(1);
                }
            }
            let [source, descriptor, intervals @ ..] = exprs.as_slice() else {
                return Err(usage());
            };
            if intervals.len() != interval_count(kind) {
                return Err(usage());
            }
            let source = match source {
                Expr::Identifier(id) => id.clone(),
                _ => return Err(usage()),
            };
            let time_column = match descriptor {
                Expr::Function(f) if f.name.to_string().eq_ignore_ascii_case("descriptor") => {
                    single_arg_column(&f.args).ok_or_else(usage)?
                }
                _ => return Err(usage()),
            };
            found.push(Found {
                kind,
                time_column,
                intervals: intervals.to_vec(),
                partition_by,
            });
            *name = ObjectName::from(vec![source]);
            *args = None;
            Ok(())
        }
        TableFactor::Table {
            name,
            args: Some(args),
            ..
        } if has_descriptor_arg(&args.args) => Err(unknown_window(&name.to_string())),
        TableFactor::Derived { subquery, .. } => rewrite_query_relations(subquery, found),
        TableFactor::NestedJoin {
            table_with_joins, ..
        } => {
            rewrite_factor(&mut table_with_joins.relation, found)?;
            for join in &mut table_with_joins.joins {
                rewrite_factor(&mut join.relation, found)?;
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

/// The function a table-valued SESSION's `PARTITION BY a, b` becomes: `PARTITION(a, b)`.
pub(crate) const PARTITION_FUNCTION: &str = "__laminar_partition";

fn single_arg_column(args: &FunctionArguments) -> Option<String> {
    let FunctionArguments::List(list) = args else {
        return None;
    };
    match list.args.as_slice() {
        [FunctionArg::Unnamed(FunctionArgExpr::Expr(e))] => column_name(e),
        _ => None,
    }
}

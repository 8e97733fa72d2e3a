//! Rewrites the window forms a user writes into plain columns DataFusion can plan.
//!
//! Both `GROUP BY key, TUMBLE(ts, INTERVAL '10' SECOND)` with `TUMBLE_START(…)` /
//! `TUMBLE_END(…)` and the table-valued `FROM TUMBLE(TABLE src, DESCRIPTOR(ts), INTERVAL …)`
//! become references to two columns, `window_start` and `window_end`, that the event-time
//! stage appends to every row of the source. The window itself (time column and size) is
//! returned as a [`WindowClause`] for the streaming planner.

use std::ops::ControlFlow;

use datafusion_sql::sqlparser::ast::{
    self, visit_expressions_mut, Expr, FunctionArg, FunctionArgExpr, FunctionArguments, Ident,
    ObjectName, SetExpr, TableFactor,
};

use super::context::PlanningContext;
use super::ident::normalize_ident;
use super::interval::interval_millis;
use crate::error::{Error, Result};

/// Name of the column holding a row's window start.
pub const WINDOW_START: &str = "window_start";
/// Name of the column holding a row's (exclusive) window end.
pub const WINDOW_END: &str = "window_end";

/// The tumbling window a query groups by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct WindowClause {
    /// The event-time column.
    pub(crate) time_column: String,
    /// Window size in milliseconds.
    pub(crate) size_ms: i64,
}

/// Replaces every TUMBLE form in `query` and returns the window it uses, if any.
pub(crate) fn rewrite_windows(
    query: &mut ast::Query,
    context: &PlanningContext,
) -> Result<Option<WindowClause>> {
    let mut found: Vec<(String, Expr)> = Vec::new();
    rewrite_query_relations(query, &mut found)?;
    let mut error = None;
    let _ = visit_expressions_mut(query, |expr| {
        if let Expr::Function(function) = expr {
            let name = function.name.to_string().to_ascii_lowercase();
            let column = match name.as_str() {
                "tumble" => TUMBLE_PLACEHOLDER,
                "tumble_start" => WINDOW_START,
                "tumble_end" => WINDOW_END,
                _ => return ControlFlow::Continue(()),
            };
            match window_call_args(&function.args, &name) {
                Ok((time_column, size)) => {
                    found.push((time_column, size));
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
    expand_tumble_in_group_by(&mut query.body);
    let _ = visit_expressions_mut(query, |expr| {
        if matches!(expr, Expr::Identifier(id) if id.value == TUMBLE_PLACEHOLDER) {
            *expr = Expr::Identifier(Ident::new(WINDOW_START));
        }
        ControlFlow::<()>::Continue(())
    });
    let mut clause: Option<WindowClause> = None;
    for (time_column, size) in found {
        let size_ms = interval_millis(context, &size)?;
        if size_ms <= 0 {
            return Err(Error::plan(format!("window size {size} must be positive")));
        }
        let this = WindowClause {
            time_column,
            size_ms,
        };
        match &clause {
            Some(existing) if *existing != this => {
                return Err(Error::unsupported(
                    format!(
                    "two different windows in one query (TUMBLE({}, {} ms) and TUMBLE({}, {} ms))",
                    existing.time_column, existing.size_ms, this.time_column, this.size_ms
                ),
                    "use the same TUMBLE(column, size) everywhere in the query",
                ))
            }
            _ => clause = Some(this),
        }
    }
    Ok(clause)
}

/// Stands in for `TUMBLE(…)` until GROUP BY lists are expanded.
const TUMBLE_PLACEHOLDER: &str = "__laminar_tumble";

/// `GROUP BY …, TUMBLE(ts, size)` groups by both window bounds, so that `TUMBLE_START` and
/// `TUMBLE_END` may both be selected.
fn expand_tumble_in_group_by(body: &mut SetExpr) {
    match body {
        SetExpr::Select(select) => {
            if let ast::GroupByExpr::Expressions(exprs, _) = &mut select.group_by {
                let mut expanded = Vec::with_capacity(exprs.len() + 1);
                for expr in exprs.drain(..) {
                    if matches!(&expr, Expr::Identifier(id) if id.value == TUMBLE_PLACEHOLDER) {
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
                    expand_tumble_in_group_by(&mut subquery.body);
                }
            }
        }
        SetExpr::Query(q) => expand_tumble_in_group_by(&mut q.body),
        SetExpr::SetOperation { left, right, .. } => {
            expand_tumble_in_group_by(left);
            expand_tumble_in_group_by(right);
        }
        _ => {}
    }
}

/// `(time column, size expression)` of `TUMBLE(ts, INTERVAL …)`.
fn window_call_args(args: &FunctionArguments, name: &str) -> Result<(String, Expr)> {
    let usage = || {
        Error::plan(format!(
            "{}(time_column, INTERVAL '…' SECOND) takes an event-time column and a window size",
            name.to_uppercase()
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
        [column, size] if exprs.len() == list.args.len() => {
            Ok((column_name(column).ok_or_else(usage)?, (*size).clone()))
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

fn rewrite_query_relations(query: &mut ast::Query, found: &mut Vec<(String, Expr)>) -> Result<()> {
    if let Some(with) = &mut query.with {
        for cte in &mut with.cte_tables {
            rewrite_query_relations(&mut cte.query, found)?;
        }
    }
    rewrite_set_expr(&mut query.body, found)
}

fn rewrite_set_expr(body: &mut SetExpr, found: &mut Vec<(String, Expr)>) -> Result<()> {
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

/// `TUMBLE(src, DESCRIPTOR(ts), size)` in FROM (after the `TABLE` keyword was blanked)
/// becomes plain `src`.
fn rewrite_factor(factor: &mut TableFactor, found: &mut Vec<(String, Expr)>) -> Result<()> {
    match factor {
        TableFactor::Table { name, args, .. }
            if name.to_string().eq_ignore_ascii_case("tumble") && args.is_some() =>
        {
            let usage = || {
                Error::plan(
                    "TUMBLE(TABLE source, DESCRIPTOR(time_column), INTERVAL '…' SECOND) takes a source, \
                     its event-time column and a window size",
                )
            };
            let list = args.as_ref().map(|a| a.args.clone()).unwrap_or_default();
            let exprs: Vec<Expr> = list
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
            let [source, descriptor, size] = exprs.as_slice() else {
                return Err(usage());
            };
            let source = match source {
                Expr::Identifier(id) => id.clone(),
                _ => return Err(usage()),
            };
            let time_column = match descriptor {
                Expr::Function(f) if f.name.to_string().eq_ignore_ascii_case("descriptor") => {
                    window_call_args(&f.args, "descriptor")
                        .ok()
                        .map(|(c, _)| c)
                        .or_else(|| single_arg_column(&f.args))
                        .ok_or_else(usage)?
                }
                _ => return Err(usage()),
            };
            found.push((time_column, size.clone()));
            *name = ObjectName::from(vec![source]);
            *args = None;
            Ok(())
        }
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

fn single_arg_column(args: &FunctionArguments) -> Option<String> {
    let FunctionArguments::List(list) = args else {
        return None;
    };
    match list.args.as_slice() {
        [FunctionArg::Unnamed(FunctionArgExpr::Expr(e))] => column_name(e),
        _ => None,
    }
}

//! Plans one query statement: inline named streams, rewrite windows, let DataFusion plan
//! and type-check, then compile to operators.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::datatypes::{Field, Schema, SchemaRef};
use datafusion_optimizer::Analyzer;
use datafusion_sql::planner::SqlToRel;
use datafusion_sql::sqlparser::ast::{self, SelectItem, SetExpr, TableAlias, TableFactor};

use super::compile::{compile, CompiledQuery};
use crate::error::{Error, Result};
use crate::plugin::{Plugin, PluginKind, PluginScalar, PluginUdaf};
use crate::sql::{
    ident_for, normalize_object_name, rewrite_windows, PlanningContext, SourceDef, WINDOW_END,
    WINDOW_START,
};
use crate::time::EventTimeStage;

/// Plans `query` against the declared sources and streams; `late_sink`: its late rows go
/// to a sink (`EMIT ON WINDOW CLOSE LATE DATA TO sink`), with every source column.
/// `stream_sources` are the sources that are a windowed stream's results: a windowed query
/// over one (a roll-up) reads their `window_start` / `window_end` as
/// `stream_window_start` / `stream_window_end` (its own window's bounds take the names),
/// and its window may name either as its event time.
pub(crate) fn plan_query(
    mut query: ast::Query,
    sources: &HashMap<String, SourceDef>,
    stream_sources: &HashMap<String, SourceDef>,
    streams: &HashMap<String, ast::Query>,
    plugins: &HashMap<String, Arc<Plugin>>,
    late_sink: bool,
) -> Result<CompiledQuery> {
    let mut context = PlanningContext::new();
    for plugin in plugins.values() {
        match plugin.info().kind {
            PluginKind::Aggregate => {
                context.add_aggregate(Arc::new(PluginUdaf::udaf(Arc::clone(plugin))))
            }
            PluginKind::Scalar => {
                context.add_scalar(Arc::new(PluginScalar::udf(Arc::clone(plugin))))
            }
        }
    }
    // Windows first: a table-valued window names its stream as a table, which becomes a
    // plain reference the inlining then replaces.
    let mut window = rewrite_windows(&mut query, &context)?;
    inline_streams(&mut query, streams, window.is_some(), 0)?;
    let mut sources = sources.clone();
    for (name, def) in stream_sources {
        let def = match &mut window {
            Some(clause) => roll_up_source(def, clause),
            None => def.clone(),
        };
        sources.insert(name.clone(), def);
    }
    let sources = &sources;
    for (name, def) in sources {
        let schema = match &window {
            Some(_) => with_window_columns(&def.schema, name)?,
            None => def.schema.clone(),
        };
        context.add_table(name, schema);
    }
    let plan =
        SqlToRel::new(&context).sql_statement_to_plan(ast::Statement::Query(Box::new(query)))?;
    // A plugin registered as `count` takes COUNT(x), never COUNT(*).
    let plan = crate::plugin::count_star_stays_built_in(plan)?;
    let plan = Analyzer::new().execute_and_check(plan, context.config(), |_, _| {})?;
    let mut compiled = compile(&plan, sources, window.as_ref(), late_sink)?;
    if late_sink {
        let Some(stage) = &mut compiled.event_time else {
            return Err(Error::unsupported(
                "LATE DATA TO a sink in a query without a window",
                "group by an event-time window (TUMBLE, HOP, CUMULATE, SESSION): only windowed queries have late rows",
            ));
        };
        // SESSION rows are judged late by the aggregate, per key (`compile` gave it every
        // source column); the stage keeps the late rows of the other kinds.
        stage.keep_late_rows();
        let columns = sources
            .get(&compiled.source)
            .map_or(0, |source| source.schema.fields().len());
        compiled.read_columns = (0..columns).collect();
    }
    Ok(compiled)
}

/// The prefix a roll-up gives the window columns of the stream it reads.
const STREAM_PREFIX: &str = "stream_";

/// A windowed stream's results as a roll-up's source: its window columns renamed, and the
/// roll-up's event time with them.
fn roll_up_source(stream: &SourceDef, clause: &mut crate::sql::WindowClause) -> SourceDef {
    let renamed = |name: &str| match name {
        WINDOW_START | WINDOW_END => format!("{STREAM_PREFIX}{name}"),
        other => other.to_string(),
    };
    let fields: Vec<Field> = stream
        .schema
        .fields()
        .iter()
        .map(|f| f.as_ref().clone().with_name(renamed(f.name())))
        .collect();
    clause.time_column = renamed(&clause.time_column);
    SourceDef {
        schema: Arc::new(Schema::new(fields)),
        ..stream.clone()
    }
}

fn with_window_columns(schema: &SchemaRef, source: &str) -> Result<SchemaRef> {
    for name in [WINDOW_START, WINDOW_END] {
        if schema.field_with_name(name).is_ok() {
            return Err(Error::plan(format!(
                "source '{source}' has a column named '{name}', which a windowed query uses for the window bounds; rename the column"
            )));
        }
    }
    let mut fields: Vec<Field> = schema.fields().iter().map(|f| f.as_ref().clone()).collect();
    for name in [WINDOW_START, WINDOW_END] {
        fields.push(Field::new(name, EventTimeStage::window_type(), false));
    }
    Ok(Arc::new(Schema::new(fields)))
}

/// Replaces every reference to a stream declared with `CREATE STREAM` by its query; in a
/// `windowed` query, the stream passes on the window columns the event-time stage appends
/// to its source's rows.
fn inline_streams(
    query: &mut ast::Query,
    streams: &HashMap<String, ast::Query>,
    windowed: bool,
    depth: usize,
) -> Result<()> {
    if depth > 16 {
        return Err(Error::plan(
            "streams reference each other too deeply (or in a cycle)",
        ));
    }
    if let Some(with) = &mut query.with {
        for cte in &mut with.cte_tables {
            inline_streams(&mut cte.query, streams, windowed, depth + 1)?;
        }
    }
    inline_set_expr(&mut query.body, streams, windowed, depth)
}

fn inline_set_expr(
    body: &mut SetExpr,
    streams: &HashMap<String, ast::Query>,
    windowed: bool,
    depth: usize,
) -> Result<()> {
    match body {
        SetExpr::Select(select) => {
            for from in &mut select.from {
                inline_factor(&mut from.relation, streams, windowed, depth)?;
                for join in &mut from.joins {
                    inline_factor(&mut join.relation, streams, windowed, depth)?;
                }
            }
            Ok(())
        }
        SetExpr::Query(q) => inline_streams(q, streams, windowed, depth + 1),
        SetExpr::SetOperation { left, right, .. } => {
            inline_set_expr(left, streams, windowed, depth)?;
            inline_set_expr(right, streams, windowed, depth)
        }
        _ => Ok(()),
    }
}

/// Adds `window_start` and `window_end` to the SELECT list of an inlined stream (one
/// without a wildcard, which has them already).
fn pass_window_columns(stream: &mut ast::Query) {
    let SetExpr::Select(select) = stream.body.as_mut() else {
        return;
    };
    let wildcard = select.projection.iter().any(|item| {
        matches!(
            item,
            SelectItem::Wildcard(_) | SelectItem::QualifiedWildcard(..)
        )
    });
    if wildcard {
        return;
    }
    for name in [WINDOW_START, WINDOW_END] {
        select
            .projection
            .push(SelectItem::UnnamedExpr(ast::Expr::Identifier(
                ast::Ident::new(name),
            )));
    }
}

fn inline_factor(
    factor: &mut TableFactor,
    streams: &HashMap<String, ast::Query>,
    windowed: bool,
    depth: usize,
) -> Result<()> {
    match factor {
        TableFactor::Table {
            name,
            alias,
            args: None,
            ..
        } => {
            let key = normalize_object_name(name);
            if let Some(stream) = streams.get(&key) {
                let mut subquery = stream.clone();
                inline_streams(&mut subquery, streams, windowed, depth + 1)?;
                if windowed {
                    pass_window_columns(&mut subquery);
                }
                let alias = alias.clone().unwrap_or(TableAlias {
                    explicit: true,
                    name: ident_for(&key),
                    columns: vec![],
                    at: None,
                });
                *factor = TableFactor::Derived {
                    lateral: false,
                    subquery: Box::new(subquery),
                    alias: Some(alias),
                    sample: None,
                };
            }
            Ok(())
        }
        TableFactor::Derived { subquery, .. } => {
            inline_streams(subquery, streams, windowed, depth + 1)
        }
        _ => Ok(()),
    }
}

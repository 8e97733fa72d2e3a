//! Plans a whole script as one dataflow before any input is read: every statement is
//! declared and every query planned first, so that an error anywhere fails the run before
//! it starts, naming `script:line:column`.
//!
//! ```text
//!  source ──▶ query (filter, projection, window) ──▶ sink | stdout
//!         ├─▶ query over a stream (inlined: it reads the source) ──▶ sink
//!         └─▶ windowed stream ──▶ roll-up query (windows of its windows) ──▶ sink
//! ```
//! A stream without a window (a filter, a projection) is inlined into each query that
//! reads it, so that query reads the source itself, with the source's event time and
//! watermark. A windowed stream runs as a query of its own whose results feed the queries
//! that read it, in the same pass; its columns (`window_start`, `window_end` among them)
//! are their input, and their windows close on its results' event time, which its windows
//! emit in order.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::datatypes::SchemaRef;

use super::Engine;
use crate::error::{Error, Result, SqlLocation};
use crate::plan::CompiledQuery;
use crate::sql::{
    Connector, FormatKind, OnError, QueryStatement, SourceDef, SourceOptions, Statement,
};

/// Where a query's rows come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Input {
    /// A declared source.
    Source(String),
    /// The results of an earlier query of the dataflow (a windowed stream).
    Stream(usize),
}

/// Where a query's results go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Output {
    /// A declared sink (`INSERT INTO`).
    Sink(String),
    /// The script's default output (stdout for the CLI).
    Default,
    /// Only the later queries that read it (a windowed stream).
    Streams,
}

/// One query of the dataflow, planned.
#[derive(Debug)]
pub(super) struct PlannedQuery {
    /// Where the statement starts in the script.
    pub(super) location: SqlLocation,
    /// The statement.
    pub(super) statement: QueryStatement,
    /// Its stream name, for `CREATE STREAM`.
    pub(super) stream: Option<String>,
    /// Its compiled operators (the first copy; more cores plan more).
    pub(super) compiled: CompiledQuery,
    /// Where its rows come from.
    pub(super) input: Input,
    /// Where its results go.
    pub(super) output: Output,
    /// The later queries reading its results.
    pub(super) feeds: Vec<usize>,
}

impl PlannedQuery {
    /// The source the query's rows come from, through the streams it reads.
    pub(super) fn root<'a>(&'a self, queries: &'a [PlannedQuery]) -> &'a str {
        match &self.input {
            Input::Source(name) => name,
            Input::Stream(upstream) => queries[*upstream].root(queries),
        }
    }

    /// Where its results go, in words, for the run summary.
    pub(super) fn output_text(&self) -> String {
        match &self.output {
            Output::Sink(name) => format!("sink '{name}'"),
            Output::Default => "stdout".into(),
            Output::Streams => format!("stream '{}'", self.stream.as_deref().unwrap_or("?")),
        }
    }
}

impl Engine {
    /// Declares every statement of `statements` and plans every query, in script order.
    pub(super) fn plan_dataflow(
        &mut self,
        statements: &[(SqlLocation, Statement)],
    ) -> Result<Vec<PlannedQuery>> {
        self.stream_sources.clear();
        let mut queries: Vec<PlannedQuery> = Vec::new();
        let mut stream_nodes: HashMap<String, usize> = HashMap::new();
        for (i, (location, statement)) in statements.iter().enumerate() {
            let at = |e: Error| e.at(*location);
            match statement {
                Statement::CreateSource(def) => self.declare_source(def.clone()).map_err(at)?,
                Statement::CreateSink(def) => {
                    if self.sinks.insert(def.name.clone(), def.clone()).is_some() {
                        return Err(at(Error::plan(format!(
                            "sink '{}' is declared twice",
                            def.name
                        ))));
                    }
                }
                Statement::CreateAggregate { name, path } => {
                    self.load_plugin(std::path::Path::new(path), Some(name))
                        .map_err(at)?;
                }
                Statement::CreateStream { name, query } => {
                    if self.sources.contains_key(name)
                        || self.streams.contains_key(name)
                        || self.stream_sources.contains_key(name)
                    {
                        return Err(at(Error::plan(format!("'{name}' is already declared"))));
                    }
                    let read_later = super::read_later(name, &statements[i + 1..]);
                    let compiled = self.plan(query).map_err(at)?;
                    if compiled.aggregate.is_none() {
                        // Inlined into every query that reads it.
                        self.streams.insert(name.clone(), (*query.query).clone());
                        if read_later {
                            continue;
                        }
                    } else if read_later {
                        self.stream_sources
                            .insert(name.clone(), stream_source(name, &compiled.schema));
                        stream_nodes.insert(name.clone(), queries.len());
                    }
                    let output = match read_later {
                        true => Output::Streams,
                        false => Output::Default,
                    };
                    let mut planned = planned(*location, query, compiled, &stream_nodes);
                    planned.stream = Some(name.clone());
                    planned.output = output;
                    link(&mut queries, planned);
                }
                Statement::Query(query) => {
                    let compiled = self.plan(query).map_err(at)?;
                    let mut planned = planned(*location, query, compiled, &stream_nodes);
                    if let Some(sink) = &query.sink {
                        self.check_sink_writers(sink, &planned, &queries)
                            .map_err(at)?;
                        planned.output = Output::Sink(sink.clone());
                    }
                    if let Some(late) = &query.late_sink {
                        if !self.sinks.contains_key(late) {
                            return Err(at(no_such_sink(late)));
                        }
                    }
                    link(&mut queries, planned);
                }
            }
        }
        Ok(queries)
    }

    /// Several queries may write one sink: their rows are appended to it, so they must
    /// have the same columns.
    fn check_sink_writers(
        &self,
        sink: &str,
        query: &PlannedQuery,
        earlier: &[PlannedQuery],
    ) -> Result<()> {
        if !self.sinks.contains_key(sink) {
            return Err(no_such_sink(sink));
        }
        let Some(first) = earlier
            .iter()
            .find(|q| q.output == Output::Sink(sink.to_string()))
        else {
            return Ok(());
        };
        let columns = |schema: &SchemaRef| {
            schema
                .fields()
                .iter()
                .map(|f| format!("{} {}", f.name(), f.data_type()))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let (theirs, ours) = (
            columns(&first.compiled.schema),
            columns(&query.compiled.schema),
        );
        if theirs != ours {
            return Err(Error::plan(format!(
                "INSERT INTO '{sink}': the query at line {}, column {} writes ({theirs}) to it, this one ({ours}); queries writing one sink must give the same columns",
                first.location.line, first.location.column
            )));
        }
        Ok(())
    }
}

fn no_such_sink(name: &str) -> Error {
    Error::plan(format!(
        "INSERT INTO '{name}': no such sink; declare it with CREATE SINK"
    ))
}

/// A planned query reading the source or windowed stream `compiled` names.
fn planned(
    location: SqlLocation,
    statement: &QueryStatement,
    compiled: CompiledQuery,
    stream_nodes: &HashMap<String, usize>,
) -> PlannedQuery {
    let input = match stream_nodes.get(&compiled.source) {
        Some(&upstream) => Input::Stream(upstream),
        None => Input::Source(compiled.source.clone()),
    };
    PlannedQuery {
        location,
        statement: statement.clone(),
        stream: None,
        compiled,
        input,
        output: Output::Default,
        feeds: Vec::new(),
    }
}

/// Adds `query` to the dataflow, after the stream it reads.
fn link(queries: &mut Vec<PlannedQuery>, query: PlannedQuery) {
    if let Input::Stream(upstream) = query.input {
        let index = queries.len();
        queries[upstream].feeds.push(index);
    }
    queries.push(query);
}

/// How a later query sees a windowed stream: a source of its result columns, without a
/// declared watermark (its results arrive in event-time order: windows close in order).
fn stream_source(name: &str, schema: &SchemaRef) -> SourceDef {
    SourceDef {
        name: name.to_string(),
        schema: Arc::clone(schema),
        watermark: None,
        options: SourceOptions {
            connector: Connector::Memory,
            format: FormatKind::Csv,
            header: None,
            delimiter: b',',
            on_error: OnError::Skip,
            batch_size: None,
        },
    }
}

//! The embedded engine: runs SQL scripts of sources, sinks, streams and queries.

mod config;
mod durable;
mod pipeline;
mod run;
mod script_check;
mod summary;

pub use config::{EngineConfig, NoticeHandler, StdinReader};
pub use summary::RunSummary;

use std::collections::{HashMap, HashSet};
use std::ops::ControlFlow;
use std::path::Path;
use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use datafusion_sql::sqlparser::ast::{self, visit_relations};

use crate::checkpoint::Counters;
use crate::error::{Error, Result, SqlLocation};
use crate::plan::CompiledQuery;
use crate::plugin::{Plugin, PluginInfo};
use crate::sink::{CollectSink, Sink};
use crate::sql::{
    normalize_name_text, normalize_object_name, parse_script, Connector, FormatKind, OnError,
    PlanningContext, QueryStatement, SinkDef, SourceDef, SourceOptions, Statement,
};
use crate::time::{EventTimeColumn, WatermarkSpec};
use config::Notices;
use durable::Checkpointer;

/// Opens the sink that receives a query's rows when it has no `INSERT INTO`.
pub type OutputFactory<'a> = dyn FnMut(&SchemaRef) -> Result<Box<dyn Sink>> + 'a;

/// An embedded Laminar engine.
///
/// ```
/// use laminar::Engine;
///
/// let mut engine = Engine::new();
/// let csv = std::env::temp_dir().join("laminar_doc_bids.csv");
/// std::fs::write(&csv, "ts,auction,price\n1000,7,2.5\n4000,7,1.5\n12000,7,9.0\n").unwrap();
/// let results = engine.execute(&format!(
///     "CREATE SOURCE bids (ts BIGINT, auction BIGINT, price DOUBLE,
///          WATERMARK FOR ts AS ts - INTERVAL '1' SECOND)
///      WITH (connector = 'file', path = '{}', format = 'csv');
///      SELECT auction, window_start, COUNT(*) AS bids, SUM(price) AS volume
///      FROM TUMBLE(TABLE bids, DESCRIPTOR(ts), INTERVAL '10' SECOND)
///      GROUP BY auction, window_start, window_end;",
///     csv.display()
/// ))?;
/// let rows: usize = results.iter().map(|b| b.num_rows()).sum();
/// assert_eq!(rows, 2); // windows [0 s, 10 s) and [10 s, 20 s)
/// # Ok::<(), laminar::Error>(())
/// ```
#[derive(Debug, Default)]
pub struct Engine {
    config: EngineConfig,
    sources: HashMap<String, SourceDef>,
    memory: HashMap<String, Vec<RecordBatch>>,
    sinks: HashMap<String, SinkDef>,
    streams: HashMap<String, ast::Query>,
    plugins: HashMap<String, Arc<Plugin>>,
    notices: Notices,
    /// Queries run so far by the current script (names their state directories).
    queries_run: usize,
}

impl Engine {
    /// An engine with default settings.
    pub fn new() -> Self {
        Self::default()
    }

    /// An engine with the given settings.
    pub fn with_config(config: EngineConfig) -> Self {
        Self {
            config,
            ..Self::default()
        }
    }

    /// Sends notices (warnings, resume positions) to `handler` instead of stderr.
    pub fn set_notice_handler(&mut self, handler: NoticeHandler) {
        self.notices = Notices(handler);
    }

    /// Declares a bounded source over in-memory batches, as `CREATE SOURCE` would. The
    /// name is read as an SQL identifier: `Bids` is `bids`, `"Bids"` keeps its case.
    pub fn register_batches(
        &mut self,
        name: &str,
        schema: SchemaRef,
        batches: Vec<RecordBatch>,
        watermark: Option<WatermarkSpec>,
    ) -> Result<()> {
        let name = normalize_name_text(name);
        let name = name.as_str();
        if let Some(spec) = &watermark {
            let index = schema.index_of(&spec.column).map_err(|_| {
                Error::plan(format!("no column '{}' in source '{name}'", spec.column))
            })?;
            EventTimeColumn::check_type(&spec.column, schema.field(index).data_type())?;
        }
        let def = SourceDef {
            name: name.to_string(),
            schema,
            watermark,
            options: SourceOptions {
                connector: Connector::Memory,
                format: FormatKind::Csv,
                header: None,
                delimiter: b',',
                on_error: OnError::Fail,
                batch_size: None,
            },
        };
        self.declare_source(def)?;
        self.memory.insert(name.to_string(), batches);
        Ok(())
    }

    /// Loads the Wasm aggregate at `path` and makes it callable in SQL as `name` (or the
    /// name the plugin declares), as `CREATE AGGREGATE name FROM 'path'` does. A plugin
    /// of the same name replaces the earlier one. A plugin that declares a built-in's name
    /// (`sum`, `count`, …) is refused unless `name` is given, which replaces the built-in
    /// (`COUNT(*)` always stays the built-in).
    pub fn load_plugin(&mut self, path: &Path, name: Option<&str>) -> Result<PluginInfo> {
        let plugin = Plugin::load(path, name, &self.config.plugins)?;
        let info = plugin.info().clone();
        self.plugins.insert(info.name.clone(), plugin);
        Ok(info)
    }

    /// Makes an already loaded plugin callable under its name.
    pub fn register_plugin(&mut self, plugin: Arc<Plugin>) {
        self.plugins.insert(plugin.name().to_string(), plugin);
    }

    /// Runs a script and returns the rows of its queries that have no `INSERT INTO`.
    pub fn execute(&mut self, sql: &str) -> Result<Vec<RecordBatch>> {
        let collected = CollectSink::new();
        let mut output =
            |_: &SchemaRef| -> Result<Box<dyn Sink>> { Ok(Box::new(collected.clone())) };
        self.run_script(sql, &mut output, &mut |_| {})?;
        Ok(collected.take())
    }

    /// Runs every statement of a script in order. Queries without `INSERT INTO` write to a
    /// sink opened by `output`; `progress` is called periodically during long queries.
    pub fn run_script(
        &mut self,
        sql: &str,
        output: &mut OutputFactory<'_>,
        progress: &mut dyn FnMut(&RunSummary),
    ) -> Result<RunSummary> {
        let statements = parse_script(sql, &PlanningContext::new())?;
        script_check::check_script(&statements)?;
        let mut total = RunSummary::default();
        self.queries_run = 0;
        for (i, (location, statement)) in statements.iter().enumerate() {
            match statement {
                Statement::CreateSource(def) => self
                    .declare_source(def.clone())
                    .map_err(|e| e.at(*location))?,
                Statement::CreateSink(def) => {
                    if self.sinks.insert(def.name.clone(), def.clone()).is_some() {
                        return Err(
                            Error::plan(format!("sink '{}' is declared twice", def.name))
                                .at(*location),
                        );
                    }
                }
                Statement::CreateStream { name, query } => {
                    if self.sources.contains_key(name) || self.streams.contains_key(name) {
                        return Err(
                            Error::plan(format!("'{name}' is already declared")).at(*location)
                        );
                    }
                    self.streams.insert(name.clone(), (*query.query).clone());
                    if !read_later(name, &statements[i + 1..]) {
                        let summary = self.run_query(query, *location, output, progress)?;
                        total.add(&summary);
                    }
                }
                Statement::CreateAggregate { name, path } => {
                    self.load_plugin(std::path::Path::new(path), Some(name))
                        .map_err(|e| e.at(*location))?;
                }
                Statement::Query(query) => {
                    let summary = self.run_query(query, *location, output, progress)?;
                    total.add(&summary);
                }
            }
        }
        Ok(total)
    }

    fn declare_source(&mut self, def: SourceDef) -> Result<()> {
        if self.sources.contains_key(&def.name) || self.streams.contains_key(&def.name) {
            return Err(Error::plan(format!("'{}' is already declared", def.name)));
        }
        self.sources.insert(def.name.clone(), def);
        Ok(())
    }

    fn run_query(
        &mut self,
        statement: &QueryStatement,
        location: SqlLocation,
        output: &mut OutputFactory<'_>,
        progress: &mut dyn FnMut(&RunSummary),
    ) -> Result<RunSummary> {
        let compiled = self.plan(statement).map_err(|e| e.at(location))?;
        self.queries_run += 1;
        if let Some(state_dir) = self.config.state_dir.clone() {
            let dir = state_dir.join(format!("query-{}", self.queries_run));
            return self
                .run_durable(compiled, statement, &dir, output, progress)
                .map_err(|e| e.at(location));
        }
        let def = self.sources[&compiled.source].clone();
        let mut source = self.open_source(&def, &compiled, None)?;
        let mut sink = match &statement.sink {
            None => output(&compiled.schema)?,
            Some(name) => self
                .open_sink(name, source.is_unbounded(), false)
                .map_err(|e| e.at(location))?,
        };
        let mut late_sink = match &statement.late_sink {
            None => None,
            Some(name) => Some(
                self.open_sink(name, source.is_unbounded(), false)
                    .map_err(|e| e.at(location))?,
            ),
        };
        let mut compiled = compiled;
        let work = self
            .work(&mut compiled, statement)
            .map_err(|e| e.at(location))?;
        let late: Option<&mut dyn Sink> = match &mut late_sink {
            Some(late) => Some(late.as_mut()),
            None => None,
        };
        run::run_query(
            compiled,
            work,
            source.as_mut(),
            sink.as_mut(),
            late,
            progress,
            None,
            &Counters::default(),
        )
    }

    /// Runs a query with its state in `dir`: resumes from the newest checkpoint, and does
    /// not run a query whose run already completed.
    fn run_durable(
        &mut self,
        mut compiled: CompiledQuery,
        statement: &QueryStatement,
        dir: &Path,
        output: &mut OutputFactory<'_>,
        progress: &mut dyn FnMut(&RunSummary),
    ) -> Result<RunSummary> {
        let def = self.sources[&compiled.source].clone();
        let sink_def = statement
            .sink
            .as_ref()
            .and_then(|s| self.sinks.get(s))
            .cloned();
        let late_def = statement
            .late_sink
            .as_ref()
            .and_then(|s| self.sinks.get(s))
            .cloned();
        let fingerprint = durable::fingerprint(
            &compiled,
            statement,
            &def,
            sink_def.as_ref(),
            late_def.as_ref(),
        );
        let mut checkpointer = Checkpointer::open(
            Arc::clone(&self.config.storage),
            dir,
            &fingerprint,
            self.config.checkpoint_interval,
        )?;
        if let Some(counters) = checkpointer.dir().completed()? {
            if let Some(SinkDef {
                connector: Connector::File(path),
                ..
            }) = &sink_def
            {
                crate::sink::finish_commit(self.config.storage.as_ref(), path)?;
            }
            if let Some(SinkDef {
                connector: Connector::File(path),
                ..
            }) = &late_def
            {
                crate::sink::finish_commit(self.config.storage.as_ref(), path)?;
            }
            (self.notices.0)(&format!(
                "this query already ran to completion with state dir {}; its results were written then (remove the state dir to run it again)",
                dir.display()
            ));
            return Ok(durable::summary_of(&counters));
        }
        let notices = &mut self.notices.0;
        let resumed = checkpointer.recover(&mut compiled, &mut |text| {
            notices(&format!("warning: {text}"))
        })?;
        let mut source = self.open_source(&def, &compiled, Some((&checkpointer, &resumed)))?;
        let mut sink = match &statement.sink {
            None => output(&compiled.schema)?,
            Some(name) => self.open_sink(name, source.is_unbounded(), true)?,
        };
        sink.resume(resumed.sink_file.as_ref())?;
        let mut late_sink = match &statement.late_sink {
            None => None,
            Some(name) => {
                let mut late = self.open_sink(name, source.is_unbounded(), true)?;
                // One record per late row, cut back to the bytes the checkpoint recorded.
                late.resume(resumed.late_sink_file.as_ref())?;
                Some(late)
            }
        };
        let mut work = self.work(&mut compiled, statement)?;
        if let (Some(aggregation), Some(windows)) = (work.aggregation_mut(), &resumed.windows) {
            aggregation.restore(windows)?;
        }
        if let (Some(id), Some(position)) = (resumed.checkpoint, &resumed.position) {
            (self.notices.0)(&format!(
                "resuming from checkpoint {id} ({})",
                crate::checkpoint::position_text(position)
            ));
        }
        let mut summary = run::run_query(
            compiled,
            work,
            source.as_mut(),
            sink.as_mut(),
            match &mut late_sink {
                Some(late) => Some(late.as_mut()),
                None => None,
            },
            progress,
            Some(&mut checkpointer),
            &resumed.counters,
        )?;
        summary.resumed_from = resumed.checkpoint;
        summary.resumed_events = resumed.counters.events_read;
        Ok(summary)
    }
}

/// Whether any later statement reads relation `name`.
fn read_later(name: &str, later: &[(SqlLocation, Statement)]) -> bool {
    let mut names = HashSet::new();
    for (_, statement) in later {
        let query = match statement {
            Statement::Query(q) | Statement::CreateStream { query: q, .. } => &q.query,
            _ => continue,
        };
        let _ = visit_relations(query.as_ref(), |relation| {
            names.insert(normalize_object_name(relation));
            ControlFlow::<()>::Continue(())
        });
    }
    names.contains(name)
}

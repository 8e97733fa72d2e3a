//! The embedded engine: runs SQL scripts of sources, sinks, streams and queries.

mod config;
mod dataflow;
mod durable;
mod pipeline;
mod plugin_reload;
mod query_run;
mod run;
mod scale_out;
mod script_check;
mod summary;

pub use config::{EngineConfig, NoticeHandler, StdinReader, StopSignal};
pub use plugin_reload::ReloadSignal;
pub use summary::{QuerySummary, RunSummary};

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use datafusion_sql::sqlparser::ast;

use crate::error::{Error, Result, SqlLocation};
use crate::plugin::{Plugin, PluginInfo};
use crate::sink::{CollectSink, Sink};
use crate::sql::{
    normalize_name_text, parse_script, Connector, FormatKind, OnError, PlanningContext, SinkDef,
    SourceDef, SourceOptions, Statement,
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
    /// Streams without a window, inlined into the queries that read them.
    streams: HashMap<String, ast::Query>,
    /// The windowed streams of the script being run, as the sources later queries read.
    stream_sources: HashMap<String, SourceDef>,
    plugins: HashMap<String, Arc<Plugin>>,
    notices: Notices,
    /// The partition of a scale-out run whose dataflow is being opened: its source reads
    /// that partition alone, its sinks are the partition's own.
    scope: Option<scale_out::PartitionScope>,
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

    /// Runs a script as one dataflow: every statement is planned before any input is
    /// read, then each source is read once, feeding every query and stream that reads
    /// it. Queries without `INSERT INTO` write to a sink opened by `output` (called once
    /// per such query, before any input is read); `progress` is called periodically
    /// during long runs. With a state dir, the whole dataflow checkpoints at one barrier
    /// and resumes from its newest checkpoint.
    pub fn run_script(
        &mut self,
        sql: &str,
        output: &mut OutputFactory<'_>,
        progress: &mut dyn FnMut(&RunSummary),
    ) -> Result<RunSummary> {
        let statements = parse_script(sql, &PlanningContext::new())?;
        script_check::check_script(&statements)?;
        let planned = self.plan_dataflow(&statements)?;
        if planned.is_empty() {
            return Ok(RunSummary::default());
        }
        let scale_out = self.scale_out_source(&planned)?;
        let Some(state_dir) = self.config.state_dir.clone() else {
            if scale_out.is_some() {
                return Err(Error::plan(
                    "a source with group_id scales out over several processes, each resuming the partitions it is given from their checkpoints: run it with --state-dir (one directory the processes share)",
                ));
            }
            if self.config.reload_plugins.is_some() {
                return Err(Error::unsupported(
                    "live plugin swaps (--reload-plugins) without a state dir",
                    "a new build is swapped in at a checkpoint barrier: give the run a --state-dir",
                ));
            }
            let (mut flow, _) = self.open_flow(planned, output, None)?;
            return flow.run(progress, None, &self.config.stop);
        };
        let fingerprint = {
            let sources = self.sources_read(&planned);
            let sinks = self.sinks_written(&planned);
            durable::fingerprint(&planned, &sources, &sinks)
        };
        if let Some(options) = scale_out {
            if self.config.reload_plugins.is_some() {
                return Err(Error::unsupported(
                    "live plugin swaps (--reload-plugins) in a scale-out run (group_id)",
                    "each partition has a checkpoint barrier of its own; restart the processes one by one with the new build instead (a build that reads the checkpoints' state version takes over)",
                ));
            }
            return self.run_scaled_out(planned, &state_dir, &fingerprint, &options, progress);
        }
        scale_out::check_layout(self.config.storage.as_ref(), &state_dir, false)?;
        let mut checkpointer = Checkpointer::new(
            crate::checkpoint::DataflowDir::open(
                Arc::clone(&self.config.storage),
                &state_dir,
                &fingerprint,
            )?,
            self.config.checkpoint_interval,
        );
        if let Some(last) = checkpointer.dir().completed()? {
            for sink in self.sinks_written(&planned) {
                if let Connector::File(path) = &sink.connector {
                    crate::sink::finish_commit(self.config.storage.as_ref(), path)?;
                }
            }
            (self.notices.0)(&format!(
                "this script already ran to completion with state dir {}; its results were written then (remove the state dir to run it again)",
                state_dir.display()
            ));
            return Ok(durable::summary_of(&last));
        }
        let (mut flow, loaded) = self.open_flow(planned, output, Some(&mut checkpointer))?;
        let resumed = self.resume_flow(&mut flow, loaded.as_ref(), &mut checkpointer, "")?;
        checkpointer.reload = plugin_reload::start(&self.config, &mut self.notices, &flow)?;
        let run = flow.run(progress, Some(&mut checkpointer), &self.config.stop);
        plugin_reload::finish(checkpointer.reload.take(), &mut self.plugins);
        let mut summary = run?;
        if let Some((id, events)) = resumed {
            summary.resumed_from = Some(id);
            summary.resumed_events = events;
        }
        Ok(summary)
    }

    /// Restores a freshly opened durable dataflow from checkpoint `loaded` (carrying the
    /// states of upgraded plugins over) and says where it resumes, each line led by
    /// `label`; returns the checkpoint's id and the events read before it.
    fn resume_flow(
        &mut self,
        flow: &mut run::Flow,
        loaded: Option<&crate::checkpoint::LoadedCheckpoint>,
        checkpointer: &mut Checkpointer,
        label: &str,
    ) -> Result<Option<(u64, u64)>> {
        // Plugin upgrades (plugin::upgrade): states of another build of a plugin are carried
        // over while restoring; only then does the state dir move on to the new build.
        let changes = checkpointer
            .dir()
            .plugin_changes(loaded.map(|l| l.manifest.id));
        let mut upgrade = crate::plugin::StateUpgrade::new(changes);
        let mut resumed = None;
        if let Some(loaded) = loaded {
            durable::restore(loaded, flow, &mut upgrade)?;
            let manifest = &loaded.manifest;
            let positions = manifest
                .sources
                .iter()
                .map(|s| {
                    format!(
                        "source '{}' at {}",
                        s.name,
                        crate::checkpoint::mark_position_text(s)
                    )
                })
                .collect::<Vec<_>>()
                .join(", ");
            (self.notices.0)(&format!(
                "{label}resuming from checkpoint {} ({positions})",
                manifest.id
            ));
            let events = manifest.sources.iter().map(|s| s.events_read).sum();
            resumed = Some((manifest.id, events));
        }
        checkpointer.dir_mut().accept_plugin_changes()?;
        for line in upgrade.report() {
            (self.notices.0)(&format!("{label}{line}"));
        }
        Ok(resumed)
    }

    fn declare_source(&mut self, def: SourceDef) -> Result<()> {
        if self.sources.contains_key(&def.name) || self.streams.contains_key(&def.name) {
            return Err(Error::plan(format!("'{}' is already declared", def.name)));
        }
        self.sources.insert(def.name.clone(), def);
        Ok(())
    }

    /// The declared sources the dataflow reads, by name.
    fn sources_read(&self, planned: &[dataflow::PlannedQuery]) -> Vec<&SourceDef> {
        let mut names: Vec<&str> = planned.iter().map(|q| q.root(planned)).collect();
        names.sort_unstable();
        names.dedup();
        names.iter().filter_map(|n| self.sources.get(*n)).collect()
    }

    /// The declared sinks the dataflow writes (results and late rows), by name.
    fn sinks_written(&self, planned: &[dataflow::PlannedQuery]) -> Vec<&SinkDef> {
        let mut names: Vec<&String> = planned
            .iter()
            .flat_map(|q| q.statement.sink.iter().chain(&q.statement.late_sink))
            .collect();
        names.sort_unstable();
        names.dedup();
        names.iter().filter_map(|n| self.sinks.get(*n)).collect()
    }
}

/// Whether any later statement reads relation `name`.
fn read_later(name: &str, later: &[(SqlLocation, Statement)]) -> bool {
    later.iter().any(|(_, statement)| match statement {
        Statement::Query(q) | Statement::CreateStream { query: q, .. } => {
            crate::sql::relations_read(&q.query)
                .iter()
                .any(|r| r == name)
        }
        _ => false,
    })
}

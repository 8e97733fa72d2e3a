//! Building a script's dataflow: planning each query, spreading its aggregate over the
//! cores, and opening each source once (at a checkpoint's position, for a durable run) and
//! each sink once.

use std::collections::HashMap;
use std::sync::Arc;

use super::dataflow::{Input, Output, PlannedQuery};
use super::durable::Checkpointer;
use super::query_run::QueryRun;
use super::run::{Flow, SinkRun, SourceRun};
use super::{Engine, OutputFactory};
use crate::checkpoint::{LoadedCheckpoint, SourceMark, SourcePosition};
use crate::error::{Error, Result};
use crate::plan::CompiledQuery;
use crate::reactor::{Aggregation, StatelessCores, Work};
use crate::sink::{FileSink, OutputFormat, Replace, Sink, WriterSink};
use crate::source::{InputLog, LineSource, MemorySource, Source};
use crate::sql::{Connector, FormatKind, QueryStatement, SourceDef};
use crate::time::EventTimeStage;

impl Engine {
    /// Plans a query statement against what the script declared so far (its windowed
    /// streams among the sources).
    pub(super) fn plan(&self, statement: &QueryStatement) -> Result<CompiledQuery> {
        crate::plan::plan_query(
            (*statement.query).clone(),
            &self.sources,
            &self.stream_sources,
            &self.streams,
            &self.plugins,
            statement.late_sink.is_some(),
        )
    }

    /// Opens the dataflow of `planned`: each source it reads once, each sink once, and
    /// every query's work. A durable run passes its checkpointer and the checkpoint it
    /// recovers from, whose positions the sources read on from and whose lengths the file
    /// sinks are cut back to.
    pub(super) fn open_flow(
        &mut self,
        planned: Vec<PlannedQuery>,
        output: &mut OutputFactory<'_>,
        durable: Option<(&Checkpointer, Option<&LoadedCheckpoint>)>,
    ) -> Result<Flow> {
        let manifest = durable.and_then(|(_, loaded)| loaded.map(|l| &l.manifest));
        // Each source read, in the order queries first read it, with the queries that
        // read it directly.
        let mut readers: Vec<(String, Vec<usize>)> = Vec::new();
        let mut roots = Vec::with_capacity(planned.len());
        for (index, query) in planned.iter().enumerate() {
            let root = query.root(&planned);
            let source = match readers.iter().position(|(name, _)| name == root) {
                Some(source) => source,
                None => {
                    readers.push((root.to_string(), Vec::new()));
                    readers.len() - 1
                }
            };
            if query.input == Input::Source(root.to_string()) {
                readers[source].1.push(index);
            }
            roots.push(source);
        }
        let mut sources = Vec::with_capacity(readers.len());
        for (name, consumers) in readers {
            let def = self.sources[&name].clone();
            let compiled: Vec<&CompiledQuery> =
                consumers.iter().map(|&q| &planned[q].compiled).collect();
            let mark = manifest.and_then(|m| m.source(&name));
            let source = self.open_source(&def, &compiled, durable.map(|(c, _)| c), mark)?;
            sources.push(SourceRun {
                name,
                source,
                consumers,
                events_read: mark.map_or(0, |m| m.events_read),
                done: false,
            });
        }
        let mut sinks: Vec<SinkRun> = Vec::new();
        let mut named: HashMap<String, usize> = HashMap::new();
        let mut queries = Vec::with_capacity(planned.len());
        let mut labels = Vec::with_capacity(planned.len());
        for (index, query) in planned.into_iter().enumerate() {
            let unbounded = sources[roots[index]].source.is_unbounded();
            let at = |e: Error| e.at(query.location);
            let sink = match &query.output {
                Output::Sink(name) => {
                    let index = self
                        .open_named(name, unbounded, durable, &mut sinks, &mut named)
                        .map_err(at)?;
                    // An empty result is still written with its CSV header.
                    sinks[index].sink.set_schema(&query.compiled.schema);
                    Some(index)
                }
                Output::Streams => None,
                Output::Default => {
                    let mut sink = output(&query.compiled.schema).map_err(at)?;
                    if durable.is_some() {
                        sink.resume(None)?;
                    }
                    sinks.push(SinkRun { name: None, sink });
                    Some(sinks.len() - 1)
                }
            };
            let late_sink = match &query.statement.late_sink {
                Some(name) => Some(
                    self.open_named(name, unbounded, durable, &mut sinks, &mut named)
                        .map_err(at)?,
                ),
                None => None,
            };
            labels.push((query.location, query.output_text()));
            let mut compiled = query.compiled;
            let work = self.work(&mut compiled, &query.statement).map_err(at)?;
            let origin = match &query.input {
                Input::Source(_) => sources[roots[index]].source.origin().to_string(),
                Input::Stream(_) => format!("stream '{}'", compiled.source),
            };
            queries.push(QueryRun {
                query: compiled,
                work,
                sink,
                late_sink,
                feeds: query.feeds,
                unbounded,
                origin,
                events_read: 0,
                rows_emitted: 0,
                rows_in: 0,
                finished: false,
            });
        }
        Ok(Flow {
            sources,
            queries,
            sinks,
            roots,
            labels,
        })
    }

    /// Where the query's work runs: takes the window aggregate out of `compiled` and
    /// spreads it over the configured cores, or, without an aggregate, its filters and
    /// projections. Every further core gets its own copy of the operators (its own plugin
    /// instances), planned from the same statement. Warns when cores cannot be pinned.
    pub(super) fn work(
        &mut self,
        compiled: &mut CompiledQuery,
        statement: &QueryStatement,
    ) -> Result<Work> {
        let cores = self.config.cores.max(1);
        let (work, unpinned) = match compiled.aggregate.take() {
            Some(first) => {
                let mut more = Vec::new();
                for _ in 1..cores {
                    more.extend(self.plan(statement)?.aggregate);
                }
                let (aggregation, unpinned) = Aggregation::new(first, more, self.config.pin_cores)?;
                (Work::Aggregate(aggregation), unpinned)
            }
            None if cores == 1 || compiled.before.is_empty() => (Work::Inline, Vec::new()),
            None => {
                let mut chains = vec![std::mem::take(&mut compiled.before)];
                for _ in 1..cores {
                    chains.push(self.plan(statement)?.before);
                }
                let (cores, unpinned) = StatelessCores::start(chains, self.config.pin_cores)?;
                (Work::Stateless(cores), unpinned)
            }
        };
        if !unpinned.is_empty() {
            (self.notices.0)(&format!(
                "warning: the query's core threads run unpinned ({})",
                unpinned.join("; ")
            ));
        }
        Ok(work)
    }

    /// The index in `sinks` of sink `name`, opened on its first use (and, for a durable
    /// run, cut back to the bytes the checkpoint recorded: nothing without one).
    fn open_named(
        &self,
        name: &str,
        unbounded: bool,
        durable: Option<(&Checkpointer, Option<&LoadedCheckpoint>)>,
        sinks: &mut Vec<SinkRun>,
        named: &mut HashMap<String, usize>,
    ) -> Result<usize> {
        if let Some(&index) = named.get(name) {
            return Ok(index);
        }
        let mut sink = self.open_sink(name, unbounded, durable.is_some())?;
        if let Some((_, loaded)) = durable {
            sink.resume(loaded.and_then(|l| l.manifest.sink_file(name)))?;
        }
        sinks.push(SinkRun {
            name: Some(name.to_string()),
            sink,
        });
        named.insert(name.to_string(), sinks.len() - 1);
        Ok(sinks.len() - 1)
    }

    /// Opens sink `name`; a file sink of a `durable` run writes a file a restarted run
    /// can resume.
    pub(super) fn open_sink(
        &self,
        name: &str,
        unbounded: bool,
        durable: bool,
    ) -> Result<Box<dyn Sink>> {
        let def = self.sinks.get(name).ok_or_else(|| {
            Error::plan(format!(
                "INSERT INTO '{name}': no such sink; declare it with CREATE SINK"
            ))
        })?;
        let format = match def.format {
            FormatKind::Csv => OutputFormat::Csv,
            FormatKind::Json => OutputFormat::Json,
        };
        Ok(match &def.connector {
            Connector::File(path) => {
                let replace = if unbounded {
                    Replace::OnFirstWrite
                } else {
                    Replace::OnCommit
                };
                let storage = Arc::clone(&self.config.storage);
                if durable {
                    Box::new(FileSink::durable(storage, path, replace, format))
                } else {
                    Box::new(FileSink::new(storage, path, replace, format))
                }
            }
            Connector::Stdio | Connector::Memory => {
                Box::new(WriterSink::new(std::io::stdout(), format, "stdout"))
            }
        })
    }

    /// Opens source `def` for the queries `readers` that read it, decoding the columns
    /// any of them reads; with one reader, its event-time local pass runs where the rows
    /// are decoded. A durable run passes its checkpointer and where the checkpoint it
    /// recovers from left the source.
    pub(super) fn open_source(
        &mut self,
        def: &SourceDef,
        readers: &[&CompiledQuery],
        durable: Option<&Checkpointer>,
        mark: Option<&SourceMark>,
    ) -> Result<Box<dyn Source>> {
        let read_columns = columns_read(readers);
        let event_time = match readers {
            [only] => only.event_time.as_ref().map(EventTimeStage::rule),
            _ => None,
        };
        let batch_size = self.config.batch_size;
        let decode_threads = self.config.decode_threads;
        let position = mark.map_or(SourcePosition::Start, |m| m.position);
        let bad_rows = mark.map_or(0, |m| m.bad_rows);
        Ok(match &def.options.connector {
            Connector::Memory => {
                let mut source = MemorySource::new(
                    &def.name,
                    def.schema.clone(),
                    self.memory.get(&def.name).cloned().unwrap_or_default(),
                    def.options.batch_size.unwrap_or(batch_size),
                );
                if let SourcePosition::Rows { rows } = position {
                    source.skip_rows(rows);
                }
                Box::new(source)
            }
            Connector::Stdio => {
                let log = match durable {
                    Some(checkpointer) => {
                        let log = InputLog::open(
                            Arc::clone(&self.config.storage),
                            &checkpointer.dir().wal_dir(),
                            self.config.wal.clone(),
                            &position,
                        )?;
                        // What a producer must resend from, before stdin is read.
                        let notice = match log.last_logged_line() {
                            0 => "reading stdin from its first line (no earlier input to resume after)".to_string(),
                            line => format!("resuming after input line {line}"),
                        };
                        (self.notices.0)(&notice);
                        Some(log)
                    }
                    None => None,
                };
                let source = LineSource::from_reader(
                    def,
                    self.config.stdin.open(),
                    "stdin".into(),
                    true,
                    batch_size,
                )
                .with_projection(&read_columns)
                .with_event_time(event_time);
                Box::new(match log {
                    // A feeding thread reads stdin, so that the run can checkpoint while
                    // the input pauses (a read on the query thread would block it).
                    Some(log) => source
                        .with_decode_threads(decode_threads.max(1))
                        .with_log(log, bad_rows),
                    None => source.with_decode_threads(decode_threads),
                })
            }
            Connector::File(_) => {
                let identity = mark.and_then(|m| m.file.as_ref());
                let mut source = LineSource::open_at(def, batch_size, &position, identity)?
                    .with_projection(&read_columns)
                    .with_event_time(event_time)
                    .with_decode_threads(decode_threads);
                source.set_bad_rows(bad_rows);
                Box::new(source)
            }
        })
    }
}

/// The source columns any of `readers` reads (ascending); empty, which decodes every
/// column, when one of them reads every column.
fn columns_read(readers: &[&CompiledQuery]) -> Vec<usize> {
    if readers.iter().any(|q| q.read_columns.is_empty()) {
        return Vec::new();
    }
    let mut columns: Vec<usize> = readers
        .iter()
        .flat_map(|q| q.read_columns.iter().copied())
        .collect();
    columns.sort_unstable();
    columns.dedup();
    columns
}

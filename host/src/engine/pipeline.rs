//! Building a script's dataflow: planning each query, spreading its aggregate over the
//! cores, and opening each source once (at a checkpoint's position, for a durable run) and
//! each sink once.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::datatypes::SchemaRef;

use super::dataflow::{Input, Output, PlannedQuery};
use super::durable::Checkpointer;
use super::query_run::QueryRun;
use super::run::{Flow, SinkRun, SourceRun};
use super::{Engine, OutputFactory};
use crate::checkpoint::{LoadedCheckpoint, SourceMark, SourcePosition};
use crate::error::{Error, Result};
use crate::kafka::KafkaSink;
use crate::plan::CompiledQuery;
use crate::reactor::{Aggregation, StatelessCores, Work};
use crate::sink::{FileSink, OutputFormat, Replace, Sink, WriterSink};
use crate::source::{InputLog, KafkaSource, LineSource, MemorySource, Source};
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

    /// Opens the dataflow of `planned`: each sink once, each source it reads once, and
    /// every query's work. A durable run passes its checkpointer: recovery picks the
    /// checkpoint to restore (the newest, or the newest an exactly-once sink committed),
    /// the file sinks are cut back to its lengths and the sources read on from its
    /// positions; the checkpoint is returned for the queries' state.
    pub(super) fn open_flow(
        &mut self,
        planned: Vec<PlannedQuery>,
        output: &mut OutputFactory<'_>,
        mut durable: Option<&mut Checkpointer>,
    ) -> Result<(Flow, Option<LoadedCheckpoint>)> {
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
        let unbounded: Vec<bool> = readers
            .iter()
            .map(|(name, _)| self.sources[name].options.connector.is_unbounded())
            .collect();

        // The sinks first: an exactly-once sink says which checkpoint recovery restores.
        let mut sinks: Vec<SinkRun> = Vec::new();
        let mut named: HashMap<String, usize> = HashMap::new();
        let mut query_sinks = Vec::with_capacity(planned.len());
        for (index, query) in planned.iter().enumerate() {
            let unbounded = unbounded[roots[index]];
            let at = |e: Error| e.at(query.location);
            let is_durable = durable.is_some();
            let schema = &query.compiled.schema;
            let sink = match &query.output {
                Output::Sink(name) => {
                    let index = self
                        .open_named(name, schema, unbounded, is_durable, &mut sinks, &mut named)
                        .map_err(at)?;
                    // An empty result is still written with its CSV header.
                    sinks[index].sink.set_schema(schema);
                    Some(index)
                }
                Output::Streams => None,
                Output::Default => {
                    let sink = output(schema).map_err(at)?;
                    sinks.push(SinkRun { name: None, sink });
                    Some(sinks.len() - 1)
                }
            };
            let late_sink = match &query.statement.late_sink {
                Some(name) => Some(
                    self.open_named(name, schema, unbounded, is_durable, &mut sinks, &mut named)
                        .map_err(at)?,
                ),
                None => None,
            };
            query_sinks.push((sink, late_sink));
        }
        let mut loaded = None;
        let mut committing = false;
        if let Some(checkpointer) = durable.as_deref_mut() {
            let mut committed = None;
            for run in &sinks {
                if let Some(id) = run.sink.committed_checkpoint()? {
                    if committing {
                        return Err(Error::unsupported(
                            "two exactly-once Kafka sinks in one script",
                            "give one of them delivery = 'at_least_once', or run them in two scripts: one script commits one transaction per checkpoint",
                        ));
                    }
                    committing = true;
                    committed = Some(id);
                }
            }
            let notices = &mut self.notices.0;
            loaded = checkpointer
                .recover(committed, &mut |text| notices(&format!("warning: {text}")))?;
            let manifest = loaded.as_ref().map(|l| &l.manifest);
            for run in &mut sinks {
                let at = match (&run.name, manifest) {
                    (Some(name), Some(m)) => m.sink_file(name),
                    _ => None,
                };
                // Cut back to the bytes the checkpoint recorded (nothing without one).
                run.sink.resume(at)?;
            }
        }
        let manifest = loaded.as_ref().map(|l| &l.manifest);

        let mut sources = Vec::with_capacity(readers.len());
        for (name, consumers) in readers {
            let def = self.sources[&name].clone();
            let compiled: Vec<&CompiledQuery> =
                consumers.iter().map(|&q| &planned[q].compiled).collect();
            let mark = manifest.and_then(|m| m.source(&name));
            let source = self.open_source(&def, &compiled, durable.as_deref(), mark)?;
            sources.push(SourceRun {
                name,
                source,
                consumers,
                events_read: mark.map_or(0, |m| m.events_read),
                done: false,
            });
        }
        let mut queries = Vec::with_capacity(planned.len());
        let mut labels = Vec::with_capacity(planned.len());
        for ((index, query), (sink, late_sink)) in planned.into_iter().enumerate().zip(query_sinks)
        {
            let at = |e: Error| e.at(query.location);
            labels.push((query.location, query.output_text()));
            let mut compiled = query.compiled;
            let source = &sources[roots[index]].source;
            if let (Input::Source(_), Some(stage), Some(partitions)) =
                (&query.input, &mut compiled.event_time, source.partitions())
            {
                // Event time per partition: lateness on the row's own partition's
                // watermark, windows closing on the minimum over partitions.
                stage.partition_by(partitions);
            }
            let work = self.work(&mut compiled, &query.statement).map_err(at)?;
            let origin = match &query.input {
                Input::Source(_) => source.origin().to_string(),
                Input::Stream(_) => format!("stream '{}'", compiled.source),
            };
            queries.push(QueryRun {
                query: compiled,
                work,
                sink,
                late_sink,
                feeds: query.feeds,
                unbounded: unbounded[roots[index]],
                origin,
                events_read: 0,
                rows_emitted: 0,
                rows_in: 0,
                finished: false,
            });
        }
        let flow = Flow {
            sources,
            queries,
            sinks,
            roots,
            labels,
            committing,
        };
        Ok((flow, loaded))
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
                // An aggregate keeping its late rows runs inline: no copies for the cores.
                let copies = if first.keeps_late_rows() { 1 } else { cores };
                let mut more = Vec::new();
                for _ in 1..copies {
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

    /// The index in `sinks` of sink `name` (receiving rows of `schema`), opened on its
    /// first use.
    fn open_named(
        &self,
        name: &str,
        schema: &SchemaRef,
        unbounded: bool,
        durable: bool,
        sinks: &mut Vec<SinkRun>,
        named: &mut HashMap<String, usize>,
    ) -> Result<usize> {
        if let Some(&index) = named.get(name) {
            return Ok(index);
        }
        let sink = self.open_sink(name, schema, unbounded, durable)?;
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
        schema: &SchemaRef,
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
                // A partition of a scale-out run writes a file of its own.
                let partitioned;
                let path = match &self.scope {
                    Some(scope) => {
                        partitioned = super::scale_out::partition_path(path, scope.partition);
                        &partitioned
                    }
                    None => path,
                };
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
            Connector::Stdio | Connector::Memory | Connector::KafkaSource(_) => {
                Box::new(WriterSink::new(std::io::stdout(), format, "stdout"))
            }
            Connector::KafkaSink(options) => {
                let id = self.transactional_id(name);
                Box::new(KafkaSink::open(
                    &format!("sink '{name}'"),
                    options,
                    schema,
                    id.as_deref(),
                )?)
            }
        })
    }

    /// The transactional id of exactly-once Kafka sink `name`: stable across the restarts
    /// of one state dir (which holds one script), distinct between state dirs.
    fn transactional_id(&self, name: &str) -> Option<String> {
        if let Some(scope) = &self.scope {
            // Every process of the group derives the same id for a partition, so that the
            // process taking a partition over fences the one it took it from.
            return Some(format!(
                "laminar-{}-{name}-p{}",
                scope.group, scope.partition
            ));
        }
        let dir = self.config.state_dir.as_ref()?;
        let dir = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.clone());
        let hash = crc32c::crc32c(dir.to_string_lossy().as_bytes());
        Some(format!("laminar-{hash:08x}-{name}"))
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
                let source = LineSource::stdin(def, self.config.stdin.open(), batch_size)
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
            Connector::KafkaSource(options) => Box::new(KafkaSource::open_partitions(
                &def.name,
                def.schema.clone(),
                options,
                batch_size,
                mark.and_then(|m| m.kafka.as_ref()),
                self.scope
                    .as_ref()
                    .map(|s| std::slice::from_ref(&s.partition)),
            )?),
            Connector::KafkaSink(_) => {
                return Err(Error::plan(format!(
                    "source '{}': a Kafka sink's options cannot read",
                    def.name
                )))
            }
            Connector::File(path) => {
                let identity = mark.and_then(|m| m.file.as_ref());
                let mut source = LineSource::open_file(def, path, batch_size, &position, identity)?
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

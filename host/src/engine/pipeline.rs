//! Building a query's pipeline: planning it, spreading its aggregate over the cores, and
//! opening its source (at a checkpoint's position, for a durable run) and its sink.

use std::sync::Arc;

use super::durable::{Checkpointer, Resumed};
use super::Engine;
use crate::checkpoint::SourcePosition;
use crate::error::{Error, Result};
use crate::plan::CompiledQuery;
use crate::reactor::{Aggregation, StatelessCores, Work};
use crate::sink::{FileSink, OutputFormat, Replace, Sink, WriterSink};
use crate::source::{InputLog, LineSource, MemorySource, Source};
use crate::sql::{Connector, FormatKind, QueryStatement, SourceDef};
use crate::time::EventTimeStage;

impl Engine {
    /// Plans a query statement against what the script declared so far.
    pub(super) fn plan(&self, statement: &QueryStatement) -> Result<CompiledQuery> {
        crate::plan::plan_query(
            (*statement.query).clone(),
            &self.sources,
            &self.streams,
            &self.plugins,
            statement.late_sink.is_some(),
        )
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

    /// Opens the source `def` of `query`, decoding the columns the query reads and
    /// running its event-time local pass where the rows are decoded; a durable run passes
    /// its checkpointer and what recovery brought back, and the source resumes from the
    /// checkpoint's position.
    pub(super) fn open_source(
        &mut self,
        def: &SourceDef,
        query: &CompiledQuery,
        durable: Option<(&Checkpointer, &Resumed)>,
    ) -> Result<Box<dyn Source>> {
        let read_columns = &query.read_columns;
        let event_time = query.event_time.as_ref().map(EventTimeStage::rule);
        let batch_size = self.config.batch_size;
        let decode_threads = self.config.decode_threads;
        let position = durable
            .and_then(|(_, resumed)| resumed.position)
            .unwrap_or(SourcePosition::Start);
        let bad_rows = durable.map_or(0, |(_, resumed)| resumed.counters.source_bad_rows);
        Ok(match (&def.options.connector, durable) {
            (Connector::Memory, _) => {
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
            (Connector::Stdio, _) => {
                let log = match durable {
                    Some((checkpointer, _)) => {
                        let log = InputLog::open(
                            Arc::clone(&self.config.storage),
                            &checkpointer.dir().wal_dir(),
                            self.config.wal.clone(),
                            &position,
                        )?;
                        (self.notices.0)(&format!(
                            "resuming after input line {}",
                            log.last_logged_line()
                        ));
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
                .with_projection(read_columns)
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
            (Connector::File(_), _) => {
                let identity = durable.and_then(|(_, resumed)| resumed.source_file.as_ref());
                let mut source = LineSource::open_at(def, batch_size, &position, identity)?
                    .with_projection(read_columns)
                    .with_event_time(event_time)
                    .with_decode_threads(decode_threads);
                source.set_bad_rows(bad_rows);
                Box::new(source)
            }
        })
    }
}

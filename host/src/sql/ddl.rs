//! Definitions made by `CREATE SOURCE` and `CREATE SINK`.

use std::collections::BTreeMap;
use std::path::PathBuf;

use arrow::datatypes::SchemaRef;

use crate::error::{Error, Result};
use crate::time::WatermarkSpec;

/// Where a source reads from or a sink writes to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Connector {
    /// A file.
    File(PathBuf),
    /// Standard input (sources) or standard output (sinks).
    Stdio,
    /// Batches registered through [`crate::Engine::register_batches`].
    Memory,
    /// A Kafka topic read by a source (every partition).
    KafkaSource(Box<crate::kafka::KafkaSourceOptions>),
    /// A Kafka topic a sink writes to.
    KafkaSink(Box<crate::kafka::KafkaSinkOptions>),
}

impl Connector {
    /// What a state dir's fingerprint records of it: what decides the output (a file's
    /// path, a topic and how it is read), not where a broker listens.
    pub fn describe(&self) -> String {
        match self {
            Connector::File(path) => format!("file {}", path.display()),
            Connector::Stdio => "stdio".to_string(),
            Connector::Memory => "memory".to_string(),
            // The metadata columns decide what a column holds; the group decides where
            // the state lives and the exactly-once sink's transactional ids.
            Connector::KafkaSource(o) => format!(
                "kafka topic {}, start {:?}, stop at end {}, group {:?}, metadata columns {:?}",
                o.topic,
                o.start_offset,
                o.stop_at_end,
                o.group_id,
                o.metadata.declared()
            ),
            Connector::KafkaSink(o) => {
                format!("kafka topic {}, key {:?}, {:?}", o.topic, o.key, o.delivery)
            }
        }
    }

    /// Whether a source over it may never end (its results are then written as they
    /// come, and a file sink replaces its destination at the first write).
    pub fn is_unbounded(&self) -> bool {
        match self {
            Connector::Stdio => true,
            Connector::KafkaSource(options) => !options.stop_at_end,
            Connector::File(_) | Connector::Memory | Connector::KafkaSink(_) => false,
        }
    }
}

/// Encoding of rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FormatKind {
    /// Comma-separated values.
    Csv,
    /// One JSON object per line.
    Json,
}

/// What a source does with a row it cannot decode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OnError {
    /// Stop the query with the row's location (the default).
    #[default]
    Fail,
    /// Skip the row and count it in the run summary.
    Skip,
}

/// Options of `CREATE SOURCE … WITH (…)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceOptions {
    /// Where rows come from.
    pub connector: Connector,
    /// How rows are encoded.
    pub format: FormatKind,
    /// CSV only: `Some(true)` the first line is a header, `Some(false)` it is data,
    /// `None` detect (a first line naming the declared columns is a header).
    pub header: Option<bool>,
    /// CSV field delimiter.
    pub delimiter: u8,
    /// Bad-row policy.
    pub on_error: OnError,
    /// Rows per batch, when set for this source.
    pub batch_size: Option<usize>,
}

/// A source declared with `CREATE SOURCE`.
#[derive(Debug, Clone)]
pub struct SourceDef {
    /// Source name.
    pub name: String,
    /// Declared columns.
    pub schema: SchemaRef,
    /// The declared watermark, if any.
    pub watermark: Option<WatermarkSpec>,
    /// Connector options.
    pub options: SourceOptions,
}

/// A sink declared with `CREATE SINK`.
#[derive(Debug, Clone)]
pub struct SinkDef {
    /// Sink name.
    pub name: String,
    /// Where results go.
    pub connector: Connector,
    /// How results are encoded.
    pub format: FormatKind,
}

/// `WITH (key = 'value', …)` pairs with lower-case keys; every key must be consumed.
#[derive(Debug, Default)]
pub(crate) struct WithOptions {
    what: String,
    values: BTreeMap<String, String>,
}

impl WithOptions {
    pub(crate) fn new(what: impl Into<String>, values: BTreeMap<String, String>) -> Self {
        Self {
            what: what.into(),
            values,
        }
    }

    pub(crate) fn take(&mut self, key: &str) -> Option<String> {
        self.values.remove(key)
    }

    /// Removes every option whose key starts with `prefix` and returns them, the prefix
    /// cut off (`properties.fetch.min.bytes` → `fetch.min.bytes`), in key order.
    pub(crate) fn take_prefixed(&mut self, prefix: &str) -> Vec<(String, String)> {
        let keys: Vec<String> = (self.values.keys())
            .filter(|k| k.starts_with(prefix))
            .cloned()
            .collect();
        keys.into_iter()
            .filter_map(|k| {
                let value = self.values.remove(&k)?;
                Some((k[prefix.len()..].to_string(), value))
            })
            .collect()
    }

    /// What the options belong to, for messages (`source 'bids'`).
    pub(crate) fn what(&self) -> &str {
        &self.what
    }

    /// The sink connector: a file, stdout or a Kafka topic (which takes its own options,
    /// the format among them).
    pub(crate) fn sink_connector(&mut self) -> Result<(Connector, FormatKind)> {
        if self.is_kafka() {
            self.take("connector");
            let options = crate::kafka::KafkaSinkOptions::take_from(self)?;
            let format = options.format;
            return Ok((Connector::KafkaSink(Box::new(options)), format));
        }
        Ok((self.connector()?, self.format()?))
    }

    fn is_kafka(&self) -> bool {
        self.values
            .get("connector")
            .is_some_and(|c| c.eq_ignore_ascii_case("kafka"))
    }

    pub(crate) fn connector(&mut self) -> Result<Connector> {
        let kind = self.take("connector").ok_or_else(|| {
            Error::plan(format!(
                "{} needs WITH (connector = 'file' | 'stdin' | 'stdout' | 'kafka')",
                self.what
            ))
        })?;
        match kind.to_ascii_lowercase().as_str() {
            "file" => {
                let path = self.take("path").ok_or_else(|| {
                    Error::plan(format!("{}: connector 'file' needs path = '…'", self.what))
                })?;
                Ok(Connector::File(PathBuf::from(path)))
            }
            "stdin" | "stdout" => Ok(Connector::Stdio),
            other => Err(Error::plan(format!(
                "{}: unknown connector '{other}'; use 'file', 'stdin', 'stdout' or 'kafka'",
                self.what
            ))),
        }
    }

    pub(crate) fn format(&mut self) -> Result<FormatKind> {
        match self
            .take("format")
            .as_deref()
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            None | Some("csv") => Ok(FormatKind::Csv),
            Some("json") | Some("jsonl") | Some("ndjson") => Ok(FormatKind::Json),
            Some(other) => Err(Error::plan(format!(
                "{}: unknown format '{other}'; use 'csv' or 'json'",
                self.what
            ))),
        }
    }

    pub(crate) fn source_options(mut self) -> Result<SourceOptions> {
        if self.is_kafka() {
            self.take("connector");
            let kafka = crate::kafka::KafkaSourceOptions::take_from(&mut self)?;
            self.finish()?;
            return Ok(SourceOptions {
                format: kafka.format,
                header: Some(false),
                delimiter: b',',
                on_error: kafka.on_error,
                batch_size: kafka.batch_size,
                connector: Connector::KafkaSource(Box::new(kafka)),
            });
        }
        let connector = self.connector()?;
        let format = self.format()?;
        let header = match self
            .take("header")
            .as_deref()
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            None | Some("auto") => None,
            Some("true") => Some(true),
            Some("false") => Some(false),
            Some(other) => {
                return Err(Error::plan(format!(
                    "{}: header must be 'true', 'false' or 'auto', got '{other}'",
                    self.what
                )))
            }
        };
        let delimiter = match self.take("delimiter").as_deref() {
            None => b',',
            // SQL strings have no escapes: a tab is written as '\t' or 'tab'.
            Some("\\t") | Some("tab") => b'\t',
            Some(d) if d.len() == 1 && d != "\n" && d != "\r" && d != "\"" => d.as_bytes()[0],
            Some(d) => {
                return Err(Error::plan(format!(
                    "{}: delimiter must be one ASCII character other than a quote or a line break (write a tab as '\\t'), got '{}'",
                    self.what,
                    crate::text::shown(d, 40)
                )))
            }
        };
        let on_error = match self
            .take("on_error")
            .as_deref()
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            None | Some("fail") => OnError::Fail,
            Some("skip") => OnError::Skip,
            Some(other) => {
                return Err(Error::plan(format!(
                    "{}: on_error must be 'fail' or 'skip', got '{other}'",
                    self.what
                )))
            }
        };
        let batch_size = match self.take("batch_size") {
            None => None,
            Some(n) => Some(n.parse::<usize>().ok().filter(|&n| n > 0).ok_or_else(|| {
                Error::plan(format!(
                    "{}: batch_size must be a positive integer, got '{n}'",
                    self.what
                ))
            })?),
        };
        self.finish()?;
        Ok(SourceOptions {
            connector,
            format,
            header,
            delimiter,
            on_error,
            batch_size,
        })
    }

    /// Fails on any option nobody consumed (a typo would otherwise be ignored silently).
    pub(crate) fn finish(self) -> Result<()> {
        match self.values.keys().next() {
            None => Ok(()),
            Some(key) => Err(Error::plan(format!(
                "{}: unknown option '{key}'",
                self.what
            ))),
        }
    }
}

//! The `WITH (connector = 'kafka', …)` options of a Kafka source and a Kafka sink: parsed,
//! validated, defaults filled in. Every error names the option. Nothing here talks to a
//! broker; the options that name columns are checked against the schema when the source
//! or sink is opened.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::error::{Error, Result};
use crate::sql::{FormatKind, OnError, WithOptions};
use crate::text::shown;

/// Default of `timeout`: how long a call that must reach the brokers (metadata, end
/// offsets, offsets for a time, starting transactions) may take before it is an error.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// Default of a sink's `commit_timeout`: how long a flush at a checkpoint (every row
/// acknowledged) and a transaction commit may take. Also the producer's
/// `message.timeout.ms`, after which a row not delivered is a failed delivery.
pub const DEFAULT_COMMIT_TIMEOUT: Duration = Duration::from_secs(60);

/// librdkafka settings Laminar sets itself; `properties.<key>` may not override them.
const OWNED_PROPERTIES: &[(&str, &str)] = &[
    ("bootstrap.servers", "brokers"),
    ("metadata.broker.list", "brokers"),
    ("group.id", "group_id"),
    (
        "transactional.id",
        "the transactional id the engine derives from the query",
    ),
    (
        "enable.auto.commit",
        "nothing: offsets live in Laminar's checkpoints",
    ),
    (
        "enable.auto.offset.store",
        "nothing: offsets live in Laminar's checkpoints",
    ),
    ("enable.partition.eof", "nothing: stop_at = 'end' needs it"),
];

/// Where a source starts reading a partition that no checkpoint has a position for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StartOffset {
    /// The oldest message kept (`start_offset = 'earliest'`, the default).
    #[default]
    Earliest,
    /// After the newest message at start (`'latest'`).
    Latest,
    /// The first message whose timestamp is at or after this epoch millisecond.
    Timestamp(i64),
}

/// Columns of the declared schema filled from the message rather than its value.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MetadataColumns {
    /// `key_column`: the column the producer keys messages by, filled from the message
    /// key read as text in the column's type (VARBINARY: the key's bytes; NULL without a
    /// key). A JSON value may carry the column too; a key that disagrees with it makes
    /// the message a bad row. With `group_id`, every message must have a key.
    pub key: Option<String>,
    /// `partition_column`: the partition (INT or BIGINT).
    pub partition: Option<String>,
    /// `offset_column`: the offset (BIGINT).
    pub offset: Option<String>,
    /// `timestamp_column`: the message timestamp (TIMESTAMP or BIGINT epoch ms; NULL
    /// when the message has none).
    pub timestamp: Option<String>,
}

impl MetadataColumns {
    /// (option name, column) of each declared metadata column.
    pub fn declared(&self) -> Vec<(&'static str, &str)> {
        [
            ("key_column", &self.key),
            ("partition_column", &self.partition),
            ("offset_column", &self.offset),
            ("timestamp_column", &self.timestamp),
        ]
        .into_iter()
        .filter_map(|(option, column)| column.as_deref().map(|c| (option, c)))
        .collect()
    }
}

/// The options of a Kafka source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KafkaSourceOptions {
    /// `brokers` (required): the bootstrap servers, `host:port[,host:port…]`.
    pub brokers: String,
    /// `topic` (required).
    pub topic: String,
    /// `format`: `csv` (the default, as for files) or `json`; a message value is one row.
    pub format: FormatKind,
    /// `on_error`: `fail` (default; the error names topic, partition and offset) or `skip`
    /// (counted).
    pub on_error: OnError,
    /// `batch_size`: rows per batch, when set for this source.
    pub batch_size: Option<usize>,
    /// `start_offset`: `earliest` (default), `latest` or an epoch-ms timestamp. A
    /// checkpoint's offsets take precedence.
    pub start_offset: StartOffset,
    /// `stop_at = 'end'`: stop once every partition reached the end offset it had at
    /// start (`true`); unset: run until stopped.
    pub stop_at_end: bool,
    /// `idle_timeout` (e.g. `'30s'`, `'500ms'`, a bare number is milliseconds): a
    /// partition without a message for this long that has caught up with its end is idle
    /// and left out of the combined watermark. Off by default.
    pub idle_timeout: Option<Duration>,
    /// `group_id`: scale-out. The engine joins this consumer group and runs the
    /// dataflow once per partition the group assigns to the process, each with its own
    /// state under the shared state dir; partitions move between processes as the group
    /// rebalances. Without it, one process reads every partition. (A [`KafkaReader`]
    /// opened on every partition commits offsets to it for lag monitoring.)
    ///
    /// [`KafkaReader`]: super::KafkaReader
    pub group_id: Option<String>,
    /// `timeout`: see [`DEFAULT_TIMEOUT`].
    pub timeout: Duration,
    /// Columns filled from message metadata.
    pub metadata: MetadataColumns,
    /// `properties.<key> = 'value'`: librdkafka settings passed through, after Laminar's.
    pub properties: Vec<(String, String)>,
}

/// How a Kafka sink delivers rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Delivery {
    /// Idempotent producer, `acks=all`; a checkpoint completes only once every row is
    /// acknowledged. A replay after a crash may write rows again (the default).
    #[default]
    AtLeastOnce,
    /// A transactional producer: one transaction per checkpoint interval, committed
    /// after the checkpoint; `read_committed` readers see every row once.
    ExactlyOnce,
}

/// The options of a Kafka sink.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KafkaSinkOptions {
    /// `brokers` (required).
    pub brokers: String,
    /// `topic` (required; it must exist).
    pub topic: String,
    /// `format`: `csv` (default) or `json`; one row a message, CSV without a header.
    pub format: FormatKind,
    /// `key`: the column whose value (as text) is the message key; unset: no key.
    pub key: Option<String>,
    /// `delivery`: `at_least_once` (default) or `exactly_once`.
    pub delivery: Delivery,
    /// `timeout`: see [`DEFAULT_TIMEOUT`].
    pub timeout: Duration,
    /// `commit_timeout`: see [`DEFAULT_COMMIT_TIMEOUT`].
    pub commit_timeout: Duration,
    /// `properties.<key> = 'value'`: librdkafka settings passed through, after Laminar's.
    pub properties: Vec<(String, String)>,
}

impl KafkaSourceOptions {
    /// Parses the options of `CREATE SOURCE … WITH (connector = 'kafka', …)` from `pairs`
    /// (lower-case keys, `connector` already taken or absent); `what` names the source
    /// in errors. Unknown options are an error.
    pub fn parse(what: &str, pairs: BTreeMap<String, String>) -> Result<Self> {
        parse_all(what, pairs, Self::take_from)
    }

    /// Takes the Kafka source options out of `options`, leaving the others.
    pub(crate) fn take_from(options: &mut WithOptions) -> Result<Self> {
        let what = options.what().to_string();
        let brokers = required(options, &what, "brokers")?;
        let topic = required(options, &what, "topic")?;
        let format = options.format()?;
        let on_error = match lower(options.take("on_error")).as_deref() {
            None | Some("fail") => OnError::Fail,
            Some("skip") => OnError::Skip,
            Some(other) => return Err(bad(&what, "on_error", "'fail' or 'skip'", other)),
        };
        let batch_size = match options.take("batch_size") {
            None => None,
            Some(n) => Some(
                n.parse::<usize>()
                    .ok()
                    .filter(|&n| n > 0)
                    .ok_or_else(|| bad(&what, "batch_size", "a positive integer", &n))?,
            ),
        };
        let start_offset = match lower(options.take("start_offset")).as_deref() {
            None | Some("earliest") => StartOffset::Earliest,
            Some("latest") => StartOffset::Latest,
            Some(ms) => StartOffset::Timestamp(
                ms.parse::<i64>().ok().filter(|&t| t >= 0).ok_or_else(|| {
                    bad(
                        &what,
                        "start_offset",
                        "'earliest', 'latest' or epoch milliseconds",
                        ms,
                    )
                })?,
            ),
        };
        let stop_at_end = match lower(options.take("stop_at")).as_deref() {
            None => false,
            Some("end") => true,
            Some(other) => return Err(bad(&what, "stop_at", "'end'", other)),
        };
        let idle_timeout = match options.take("idle_timeout") {
            None => None,
            Some(text) => Some(duration(&what, "idle_timeout", &text)?),
        };
        let group_id = options.take("group_id");
        if group_id.as_deref() == Some("") {
            return Err(bad(&what, "group_id", "a non-empty group id", ""));
        }
        let timeout = timeout_of(options, &what, "timeout", DEFAULT_TIMEOUT)?;
        let metadata = MetadataColumns {
            key: options.take("key_column"),
            partition: options.take("partition_column"),
            offset: options.take("offset_column"),
            timestamp: options.take("timestamp_column"),
        };
        let declared = metadata.declared();
        for (i, (option, column)) in declared.iter().enumerate() {
            if let Some((other, _)) = declared[..i].iter().find(|(_, c)| c == column) {
                return Err(Error::plan(format!(
                    "{what}: {other} and {option} both name column '{}'",
                    shown(column, 80)
                )));
            }
        }
        let properties = properties(options, &what)?;
        Ok(Self {
            brokers,
            topic,
            format,
            on_error,
            batch_size,
            start_offset,
            stop_at_end,
            idle_timeout,
            group_id,
            timeout,
            metadata,
            properties,
        })
    }
}

impl KafkaSinkOptions {
    /// Parses the options of `CREATE SINK … WITH (connector = 'kafka', …)` from `pairs`
    /// (lower-case keys, `connector` already taken or absent); `what` names the sink.
    pub fn parse(what: &str, pairs: BTreeMap<String, String>) -> Result<Self> {
        parse_all(what, pairs, Self::take_from)
    }

    /// Takes the Kafka sink options out of `options`, leaving the others.
    pub(crate) fn take_from(options: &mut WithOptions) -> Result<Self> {
        let what = options.what().to_string();
        let brokers = required(options, &what, "brokers")?;
        let topic = required(options, &what, "topic")?;
        let format = options.format()?;
        let key = options.take("key");
        let delivery = match lower(options.take("delivery")).as_deref() {
            None | Some("at_least_once") => Delivery::AtLeastOnce,
            Some("exactly_once") => Delivery::ExactlyOnce,
            Some(other) => {
                return Err(bad(
                    &what,
                    "delivery",
                    "'exactly_once' or 'at_least_once'",
                    other,
                ))
            }
        };
        let timeout = timeout_of(options, &what, "timeout", DEFAULT_TIMEOUT)?;
        let commit_timeout = timeout_of(options, &what, "commit_timeout", DEFAULT_COMMIT_TIMEOUT)?;
        let properties = properties(options, &what)?;
        Ok(Self {
            brokers,
            topic,
            format,
            key,
            delivery,
            timeout,
            commit_timeout,
            properties,
        })
    }
}

fn lower(value: Option<String>) -> Option<String> {
    value.map(|v| v.to_ascii_lowercase())
}

fn bad(what: &str, option: &str, expected: &str, got: &str) -> Error {
    Error::plan(format!(
        "{what}: {option} must be {expected}, got '{}'",
        shown(got, 80)
    ))
}

fn required(options: &mut WithOptions, what: &str, option: &str) -> Result<String> {
    match options.take(option) {
        Some(value) if !value.trim().is_empty() => Ok(value),
        _ => Err(Error::plan(format!(
            "{what}: connector 'kafka' needs {option} = '…'"
        ))),
    }
}

fn timeout_of(
    options: &mut WithOptions,
    what: &str,
    option: &str,
    default: Duration,
) -> Result<Duration> {
    match options.take(option) {
        None => Ok(default),
        Some(text) => {
            let d = duration(what, option, &text)?;
            if d.is_zero() {
                return Err(bad(what, option, "more than zero", &text));
            }
            Ok(d)
        }
    }
}

/// `'250ms'`, `'10s'`, `'2m'` or a bare number of milliseconds.
/// Parses every option of `pairs` with `take`: `connector` may be there, anything left
/// over is an error.
fn parse_all<T>(
    what: &str,
    pairs: BTreeMap<String, String>,
    take: impl FnOnce(&mut WithOptions) -> Result<T>,
) -> Result<T> {
    let mut options = WithOptions::new(what, pairs);
    options.take("connector");
    let parsed = take(&mut options)?;
    options.finish()?;
    Ok(parsed)
}

pub(crate) fn duration(what: &str, option: &str, text: &str) -> Result<Duration> {
    let t = text.trim().to_ascii_lowercase();
    let (number, unit_ms) = if let Some(n) = t.strip_suffix("ms") {
        (n, 1)
    } else if let Some(n) = t.strip_suffix('s') {
        (n, 1000)
    } else if let Some(n) = t.strip_suffix('m') {
        (n, 60_000)
    } else {
        (t.as_str(), 1)
    };
    number
        .trim()
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(unit_ms))
        .map(Duration::from_millis)
        .ok_or_else(|| {
            bad(
                what,
                option,
                "a duration such as '500ms', '10s' or '2m'",
                text,
            )
        })
}

fn properties(options: &mut WithOptions, what: &str) -> Result<Vec<(String, String)>> {
    let properties = options.take_prefixed("properties.");
    for (key, _) in &properties {
        if key.is_empty() {
            return Err(Error::plan(format!(
                "{what}: write a client setting as properties.<librdkafka key>"
            )));
        }
        if let Some((_, instead)) = OWNED_PROPERTIES.iter().find(|(k, _)| k == key) {
            return Err(Error::plan(format!(
                "{what}: properties.{} cannot be set; use {instead}",
                shown(key, 80)
            )));
        }
    }
    Ok(properties)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(list: &[(&str, &str)]) -> BTreeMap<String, String> {
        list.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn source(list: &[(&str, &str)]) -> Result<KafkaSourceOptions> {
        KafkaSourceOptions::parse("source 'bids'", pairs(list))
    }

    fn sink(list: &[(&str, &str)]) -> Result<KafkaSinkOptions> {
        KafkaSinkOptions::parse("sink 'out'", pairs(list))
    }

    #[test]
    fn source_defaults() {
        let o = source(&[("connector", "kafka"), ("brokers", "b:1"), ("topic", "t")]).unwrap();
        assert_eq!(o.format, FormatKind::Csv);
        assert_eq!(o.start_offset, StartOffset::Earliest);
        assert!(!o.stop_at_end);
        assert_eq!(o.idle_timeout, None);
        assert_eq!(o.timeout, DEFAULT_TIMEOUT);
        assert_eq!(o.on_error, OnError::Fail);
        assert!(o.properties.is_empty());
    }

    #[test]
    fn source_options_are_read() {
        let o = source(&[
            ("brokers", "b:1,c:2"),
            ("topic", "bids"),
            ("format", "json"),
            ("start_offset", "1700000000000"),
            ("stop_at", "END"),
            ("idle_timeout", "30s"),
            ("timeout", "1500ms"),
            ("group_id", "g"),
            ("on_error", "skip"),
            ("key_column", "k"),
            ("partition_column", "p"),
            ("offset_column", "o"),
            ("timestamp_column", "ts"),
            ("properties.fetch.min.bytes", "1"),
        ])
        .unwrap();
        assert_eq!(o.format, FormatKind::Json);
        assert_eq!(o.start_offset, StartOffset::Timestamp(1_700_000_000_000));
        assert!(o.stop_at_end);
        assert_eq!(o.idle_timeout, Some(Duration::from_secs(30)));
        assert_eq!(o.timeout, Duration::from_millis(1500));
        assert_eq!(o.metadata.declared().len(), 4);
        assert_eq!(
            o.properties,
            vec![("fetch.min.bytes".to_string(), "1".to_string())]
        );
    }

    #[test]
    fn source_errors_name_the_option() {
        for (list, expected) in [
            (vec![], "needs brokers"),
            (vec![], "needs topic"),
            (vec![("start_offset", "soon")], "start_offset must be"),
            (vec![("stop_at", "never")], "stop_at must be 'end'"),
            (
                vec![("idle_timeout", "5 parsecs")],
                "idle_timeout must be a duration",
            ),
            (vec![("timeout", "0")], "timeout must be more than zero"),
            (
                vec![("partition_column", "p"), ("offset_column", "p")],
                "both name column 'p'",
            ),
            (
                vec![("properties.group.id", "x")],
                "properties.group.id cannot be set; use group_id",
            ),
            (vec![("colour", "red")], "unknown option 'colour'"),
        ] {
            // The required options, unless the case leaves one out.
            let mut all: Vec<(&str, &str)> = [("brokers", "b:1"), ("topic", "t")]
                .into_iter()
                .filter(|(k, _)| !expected.contains(&format!("needs {k}")))
                .collect();
            all.extend(list);
            let err = source(&all).unwrap_err().to_string();
            assert!(err.contains(expected), "{err}");
            assert!(err.contains("source 'bids'"), "{err}");
        }
    }

    #[test]
    fn sink_options() {
        let o = sink(&[("brokers", "b:1"), ("topic", "t")]).unwrap();
        assert_eq!(o.delivery, Delivery::AtLeastOnce);
        assert_eq!(o.commit_timeout, DEFAULT_COMMIT_TIMEOUT);
        let o = sink(&[
            ("brokers", "b:1"),
            ("topic", "t"),
            ("key", "auction"),
            ("delivery", "exactly_once"),
            ("format", "json"),
            ("commit_timeout", "2m"),
        ])
        .unwrap();
        assert_eq!(o.delivery, Delivery::ExactlyOnce);
        assert_eq!(o.key.as_deref(), Some("auction"));
        assert_eq!(o.commit_timeout, Duration::from_secs(120));
        let err = sink(&[("brokers", "b:1"), ("topic", "t"), ("delivery", "maybe")])
            .unwrap_err()
            .to_string();
        assert!(err.contains("sink 'out': delivery must be"), "{err}");
        let err = sink(&[
            ("brokers", "b:1"),
            ("topic", "t"),
            ("properties.transactional.id", "x"),
        ])
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("properties.transactional.id cannot be set"),
            "{err}"
        );
    }
}

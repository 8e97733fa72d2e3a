//! A Kafka topic as a source: the messages of [`KafkaReader`] decoded into rows by the
//! same decoders as file lines (one message value is one CSV record or JSON object),
//! one partition per batch, with the declared metadata columns (key, partition, offset,
//! timestamp) filled from the messages. Bad messages follow `on_error`: an error naming
//! topic, partition and offset, or skipped and counted.
//!
//! It keeps no position of its own beyond the reader's per-partition offsets
//! ([`KafkaSource::kafka_position`]), which a checkpoint must record in place of
//! [`Source::position`].

use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, BooleanArray, Int32Array, Int64Array, TimestampMillisecondArray,
};
use arrow::compute::filter_record_batch;
use arrow::datatypes::{DataType, Schema, SchemaRef, TimeUnit};
use arrow::record_batch::{RecordBatch, RecordBatchOptions};

use super::decode::{Decoded, RowDecoder};
use super::kafka_key::KeyColumn;
use super::lines::LineChunk;
use super::{Source, SourceBatch};
use crate::checkpoint::SourcePosition;
use crate::error::{Error, Result};
use crate::kafka::{
    KafkaPosition, KafkaReader, KafkaSourceOptions, MessageChunk, NO_VALUE, TOO_LONG_VALUE,
};
use crate::sql::{FormatKind, OnError};
use crate::text::{shown, ERROR_CHARS};

/// A batch of rows of one partition.
#[derive(Debug, Clone)]
pub struct PartitionBatch {
    /// The partition every row came from.
    pub partition: i32,
    /// The rows; `lines` holds each row's offset.
    pub batch: SourceBatch,
}

/// Which message field a metadata column holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
    Key,
    Partition,
    Offset,
    Timestamp,
}

/// A Kafka source: every partition of one topic.
#[derive(Debug)]
pub struct KafkaSource {
    reader: KafkaReader,
    decoder: RowDecoder,
    schema: SchemaRef,
    /// For each declared column: where it comes from.
    columns: Vec<Column>,
    /// The `key_column`, where declared.
    key: Option<KeyColumn>,
    on_error: OnError,
    origin: String,
    batch_size: usize,
    bad_rows: u64,
    messages: u64,
}

#[derive(Debug, Clone, Copy)]
enum Column {
    /// Column `i` of the decoded value.
    Value(usize),
    /// A message field.
    Meta(Field),
}

impl KafkaSource {
    /// Opens source `name` of `schema` on the topic in `options`, at `resume` (a
    /// checkpoint's offsets) or at `start_offset`. A metadata column that is not declared
    /// or has the wrong type is an error naming the option.
    pub fn open(
        name: &str,
        schema: SchemaRef,
        options: &KafkaSourceOptions,
        batch_size: usize,
        resume: Option<&KafkaPosition>,
    ) -> Result<Self> {
        Self::open_partitions(name, schema, options, batch_size, resume, None)
    }

    /// [`open`](Self::open), reading only the partitions in `only` (one partition of a
    /// scale-out run; see [`KafkaReader::open_partitions`]).
    pub fn open_partitions(
        name: &str,
        schema: SchemaRef,
        options: &KafkaSourceOptions,
        batch_size: usize,
        resume: Option<&KafkaPosition>,
        only: Option<&[i32]>,
    ) -> Result<Self> {
        let what = format!("source '{name}'");
        let mut meta: Vec<(usize, Field)> = Vec::new();
        for (option, column) in options.metadata.declared() {
            let index = schema
                .fields()
                .iter()
                .position(|f| f.name() == column)
                .or_else(|| {
                    schema
                        .fields()
                        .iter()
                        .position(|f| f.name().eq_ignore_ascii_case(column))
                })
                .ok_or_else(|| {
                    Error::plan(format!(
                        "{what}: {option} = '{}' is not a declared column",
                        shown(column, 80)
                    ))
                })?;
            let field = match option {
                "key_column" => Field::Key,
                "partition_column" => Field::Partition,
                "offset_column" => Field::Offset,
                _ => Field::Timestamp,
            };
            let data_type = schema.field(index).data_type();
            let fits = match field {
                // Read from the key's text in the column's type (see `kafka_key`).
                Field::Key => !matches!(data_type, DataType::Null),
                Field::Partition => matches!(data_type, DataType::Int32 | DataType::Int64),
                Field::Offset => matches!(data_type, DataType::Int64),
                Field::Timestamp => matches!(
                    data_type,
                    DataType::Int64 | DataType::Timestamp(TimeUnit::Millisecond, _)
                ),
            };
            if !fits {
                let expected = match field {
                    Field::Key => "a type a key's text can be read as",
                    Field::Partition => "INT or BIGINT",
                    Field::Offset => "BIGINT",
                    Field::Timestamp => "TIMESTAMP or BIGINT (epoch milliseconds)",
                };
                return Err(Error::plan(format!(
                    "{what}: {option} column '{}' must be {expected}, not {data_type}",
                    shown(column, 80)
                )));
            }
            meta.push((index, field));
        }
        let mut value_fields = Vec::new();
        let mut key = None;
        let columns: Vec<Column> = (0..schema.fields().len())
            .map(|i| match meta.iter().find(|(index, _)| *index == i) {
                Some(&(_, Field::Key)) => {
                    let field = schema.field(i);
                    // A JSON value may carry the key column too; it must then agree.
                    let in_value = (options.format == FormatKind::Json
                        && KeyColumn::read_from_json(field.data_type()))
                    .then(|| {
                        value_fields.push(field.clone());
                        value_fields.len() - 1
                    });
                    key = Some(KeyColumn {
                        name: field.name().clone(),
                        data_type: field.data_type().clone(),
                        in_value,
                        required: options.group_id.is_some(),
                    });
                    Column::Meta(Field::Key)
                }
                Some(&(_, field)) => Column::Meta(field),
                None => {
                    value_fields.push(schema.field(i).clone());
                    Column::Value(value_fields.len() - 1)
                }
            })
            .collect();
        if !columns.iter().any(|c| matches!(c, Column::Value(_))) {
            return Err(Error::plan(format!(
                "{what}: every column is a metadata column; declare at least one column read from the message value"
            )));
        }
        let value_schema = Arc::new(Schema::new(value_fields));
        let reader = KafkaReader::open_partitions(options, resume, only)?;
        Ok(Self {
            origin: format!("kafka topic '{}'", shown(&options.topic, 200)),
            reader,
            decoder: RowDecoder::new(options.format, value_schema, b','),
            schema,
            columns,
            key,
            on_error: options.on_error,
            batch_size: options.batch_size.unwrap_or(batch_size).max(1),
            bad_rows: 0,
            messages: 0,
        })
    }

    /// The reader: partitions, idleness, the group's committed offsets and metadata.
    pub fn reader(&self) -> &KafkaReader {
        &self.reader
    }

    /// The next offset of every partition: what a checkpoint records (every row before
    /// it has been returned).
    pub fn kafka_position(&self) -> KafkaPosition {
        self.reader.position()
    }

    /// The next batch with the partition its rows came from: `None` at the end of a
    /// bounded run (`stop_at = 'end'`), a batch of no rows when nothing came for a while.
    pub fn next_partition_batch(&mut self) -> Result<Option<PartitionBatch>> {
        let Some(chunk) = self.reader.next_chunk(self.batch_size)? else {
            return Ok(None);
        };
        let partition = chunk.partition;
        let mut batch = if chunk.is_empty() {
            SourceBatch {
                batch: RecordBatch::new_empty(self.schema.clone()),
                lines: Vec::new(),
                times: None,
                partition: None,
            }
        } else {
            self.messages += chunk.len() as u64;
            self.decode(chunk)?
        };
        batch.partition = Some(partition);
        Ok(Some(PartitionBatch { partition, batch }))
    }

    /// The rows of one chunk, metadata columns filled in.
    fn decode(&mut self, chunk: MessageChunk) -> Result<SourceBatch> {
        let lines = LineChunk {
            bytes: chunk.bytes,
            starts: chunk.starts,
            numbers: chunk.offsets.iter().map(|&o| o as u64).collect(),
        };
        let Decoded {
            batch,
            mut kept,
            mut bad,
            ..
        } = self.decoder.decode(&lines);
        let mut batch = batch;
        // The key column: filled from the key, checked against the value's.
        let mut keys = None;
        if let Some(key) = &self.key {
            let message_keys: Vec<Option<&[u8]>> =
                kept.iter().map(|&i| chunk.keys[i].as_deref()).collect();
            let value = key.in_value.map(|i| batch.column(i).clone());
            let resolved = key.resolve(&message_keys, value.as_ref())?;
            let mut column = resolved.column;
            if resolved.bad.iter().any(Option::is_some) {
                let good: BooleanArray = resolved.bad.iter().map(|b| Some(b.is_none())).collect();
                batch = filter_record_batch(&batch, &good)?;
                column = arrow::compute::filter(&column, &good)?;
                let mut still = Vec::new();
                for (&i, why) in kept.iter().zip(resolved.bad) {
                    match why {
                        None => still.push(i),
                        Some(message) => bad.push(super::decode::BadLine { index: i, message }),
                    }
                }
                kept = still;
                bad.sort_by_key(|b| b.index);
            }
            keys = Some(column);
        }
        if let Some(first) = bad.first() {
            if self.on_error == OnError::Fail {
                let line = lines.line(first.index);
                let why = if line == NO_VALUE {
                    "the message has no value".to_string()
                } else if line == TOO_LONG_VALUE {
                    format!(
                        "the message value is longer than {} MiB",
                        crate::kafka::MAX_VALUE_BYTES >> 20
                    )
                } else {
                    shown(&first.message, ERROR_CHARS)
                };
                return Err(self.reader.target().error(format!(
                    "partition {} offset {}: {why} (add on_error = 'skip' to the source's WITH options to skip bad messages)",
                    chunk.partition, chunk.offsets[first.index]
                )));
            }
            self.bad_rows += bad.len() as u64;
        }
        let rows = kept.len();
        let columns = (self.columns.iter().zip(self.schema.fields()))
            .map(|(column, field)| -> Result<ArrayRef> {
                Ok(match column {
                    Column::Value(i) => batch.column(*i).clone(),
                    Column::Meta(Field::Partition) => match field.data_type() {
                        DataType::Int32 => Arc::new(Int32Array::from(vec![chunk.partition; rows])),
                        _ => Arc::new(Int64Array::from(vec![chunk.partition as i64; rows])),
                    },
                    Column::Meta(Field::Offset) => Arc::new(Int64Array::from_iter_values(
                        kept.iter().map(|&i| chunk.offsets[i]),
                    )),
                    Column::Meta(Field::Timestamp) => {
                        let values: Int64Array =
                            kept.iter().map(|&i| chunk.timestamps[i]).collect();
                        match field.data_type() {
                            DataType::Timestamp(_, zone) => Arc::new(
                                TimestampMillisecondArray::from(values.into_data())
                                    .with_timezone_opt(zone.clone()),
                            ),
                            _ => Arc::new(values),
                        }
                    }
                    Column::Meta(Field::Key) => match &keys {
                        Some(column) => column.clone(),
                        None => arrow::array::new_null_array(field.data_type(), rows),
                    },
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let options = RecordBatchOptions::new().with_row_count(Some(rows));
        let batch = RecordBatch::try_new_with_options(self.schema.clone(), columns, &options)?;
        Ok(SourceBatch {
            batch,
            lines: kept.iter().map(|&i| chunk.offsets[i] as u64).collect(),
            times: None,
            partition: None,
        })
    }
}

impl Source for KafkaSource {
    /// [`next_partition_batch`](KafkaSource::next_partition_batch) without the partition.
    fn next_batch(&mut self) -> Result<Option<SourceBatch>> {
        Ok(self.next_partition_batch()?.map(|b| b.batch))
    }

    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn origin(&self) -> &str {
        &self.origin
    }

    fn is_unbounded(&self) -> bool {
        !self.reader.is_bounded()
    }

    fn bad_rows_skipped(&self) -> u64 {
        self.bad_rows
    }

    /// Messages returned so far, as `Rows`: a count only, not a replay position. A
    /// checkpoint records [`Source::kafka_position`] too, which recovery reads on from.
    fn position(&self) -> SourcePosition {
        SourcePosition::Rows {
            rows: self.messages,
        }
    }

    fn partitions(&self) -> Option<Vec<i32>> {
        Some(self.reader.partitions())
    }

    fn idle_partitions(&self) -> Vec<i32> {
        self.reader.idle_partitions()
    }

    fn kafka_position(&self) -> Option<KafkaPosition> {
        Some(self.reader.position())
    }

    fn set_idle_wait(&mut self, wait: std::time::Duration) {
        self.reader.set_idle_wait(wait);
    }
}

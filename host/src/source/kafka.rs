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
    Array, ArrayRef, BinaryArray, BooleanArray, Int32Array, Int64Array, StringArray,
    TimestampMillisecondArray,
};
use arrow::compute::filter_record_batch;
use arrow::datatypes::{DataType, Schema, SchemaRef, TimeUnit};
use arrow::record_batch::{RecordBatch, RecordBatchOptions};

use super::decode::{Decoded, RowDecoder};
use super::lines::LineChunk;
use super::{Source, SourceBatch};
use crate::checkpoint::SourcePosition;
use crate::error::{Error, Result};
use crate::kafka::{
    KafkaPosition, KafkaReader, KafkaSourceOptions, MessageChunk, NO_VALUE, TOO_LONG_VALUE,
};
use crate::sql::OnError;
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
                Field::Key => matches!(data_type, DataType::Utf8 | DataType::Binary),
                Field::Partition => matches!(data_type, DataType::Int32 | DataType::Int64),
                Field::Offset => matches!(data_type, DataType::Int64),
                Field::Timestamp => matches!(
                    data_type,
                    DataType::Int64 | DataType::Timestamp(TimeUnit::Millisecond, _)
                ),
            };
            if !fits {
                let expected = match field {
                    Field::Key => "VARCHAR or VARBINARY",
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
        let columns = (0..schema.fields().len())
            .map(|i| match meta.iter().find(|(index, _)| *index == i) {
                Some(&(_, field)) => Column::Meta(field),
                None => {
                    value_fields.push(schema.field(i).clone());
                    Column::Value(value_fields.len() - 1)
                }
            })
            .collect();
        if value_fields.is_empty() {
            return Err(Error::plan(format!(
                "{what}: every column is a metadata column; declare at least one column read from the message value"
            )));
        }
        let value_schema = Arc::new(Schema::new(value_fields));
        let reader = KafkaReader::open(options, resume)?;
        Ok(Self {
            origin: format!("kafka topic '{}'", shown(&options.topic, 200)),
            reader,
            decoder: RowDecoder::new(options.format, value_schema, b','),
            schema,
            columns,
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
        // A key column of text: a key that is not UTF-8 makes its message a bad row.
        let text_key = self
            .columns
            .iter()
            .any(|c| matches!(c, Column::Meta(Field::Key)))
            && self
                .schema
                .fields()
                .iter()
                .zip(&self.columns)
                .any(|(f, c)| {
                    matches!(c, Column::Meta(Field::Key)) && f.data_type() == &DataType::Utf8
                });
        if text_key {
            let good: Vec<bool> = kept
                .iter()
                .map(|&i| {
                    chunk.keys[i]
                        .as_deref()
                        .is_none_or(|k| std::str::from_utf8(k).is_ok())
                })
                .collect();
            if good.iter().any(|g| !g) {
                batch = filter_record_batch(&batch, &BooleanArray::from(good.clone()))?;
                let mut still = Vec::new();
                for (&i, ok) in kept.iter().zip(&good) {
                    match ok {
                        true => still.push(i),
                        false => bad.push(super::decode::BadLine {
                            index: i,
                            message: "the message key is not UTF-8".into(),
                        }),
                    }
                }
                kept = still;
                bad.sort_by_key(|b| b.index);
            }
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
                    Column::Meta(Field::Key) => {
                        let keys = kept.iter().map(|&i| chunk.keys[i].as_deref());
                        match field.data_type() {
                            DataType::Binary => Arc::new(keys.collect::<BinaryArray>()),
                            _ => Arc::new(
                                keys.map(|k| k.and_then(|k| std::str::from_utf8(k).ok()))
                                    .collect::<StringArray>(),
                            ),
                        }
                    }
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
}

//! One arrow-csv or arrow-json decoder fed a line at a time: the slow path of
//! [`RowDecoder`](super::decode::RowDecoder), which counts the records each line holds so
//! that a bad line is pinned to its number.

use std::sync::Arc;

use arrow::array::AsArray;
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use arrow::error::ArrowError;
use arrow::record_batch::RecordBatch;

use super::timestamps;
use crate::sql::FormatKind;

/// One arrow-csv or arrow-json decoder, fed one line at a time.
#[derive(Debug)]
pub(super) struct LineDecoder {
    format: FormatDecoder,
    /// Records the decoder takes before it must be flushed.
    batch_size: usize,
    /// The timestamp columns, which arrow decodes as text and [`timestamps`] converts.
    timestamps: Vec<TextTimestamp>,
    /// The decoded batch's schema (the source's, projected) once they are converted.
    decoded_schema: SchemaRef,
}

/// A timestamp column decoded as text.
#[derive(Debug)]
struct TextTimestamp {
    /// Its position in the decoded batch.
    position: usize,
    /// Its index in the source's schema (for errors).
    index: usize,
    unit: TimeUnit,
    zone: Option<Arc<str>>,
}

enum FormatDecoder {
    Csv(Box<arrow::csv::reader::Decoder>),
    Json(Box<arrow::json::reader::Decoder>),
}

impl std::fmt::Debug for FormatDecoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Csv(_) => "Csv",
            Self::Json(_) => "Json",
        })
    }
}

impl LineDecoder {
    /// A decoder of `format` rows of `schema` (CSV fields split at `delimiter`) that
    /// decodes the columns `projection` (`None`: all), with room for one record more than
    /// `lines`, so that a surplus record is seen rather than left undecoded.
    pub(super) fn new(
        format: FormatKind,
        schema: &SchemaRef,
        delimiter: u8,
        projection: Option<&[usize]>,
        lines: usize,
    ) -> Result<Self, ArrowError> {
        let batch_size = lines + 1;
        let decoded_schema = match projection {
            Some(columns) => Arc::new(schema.project(columns)?),
            None => schema.clone(),
        };
        // Timestamps are read as text (a JSON number as its digits) and parsed by
        // `timestamps`, so that CSV and JSON read one value alike: ISO 8601 text, or a
        // bare integer as epoch milliseconds.
        let decoded: Vec<usize> = match projection {
            Some(columns) => columns.to_vec(),
            None => (0..schema.fields().len()).collect(),
        };
        let mut timestamps = Vec::new();
        for (position, &index) in decoded.iter().enumerate() {
            if let DataType::Timestamp(unit, zone) = schema.field(index).data_type() {
                timestamps.push(TextTimestamp {
                    position,
                    index,
                    unit: *unit,
                    zone: zone.clone(),
                });
            }
        }
        let fields: Vec<Field> = (schema.fields().iter())
            .map(|field| match field.data_type() {
                DataType::Timestamp(..) => field.as_ref().clone().with_data_type(DataType::Utf8),
                _ => field.as_ref().clone(),
            })
            .collect();
        let text_schema = Schema::new_with_metadata(fields, schema.metadata().clone());
        let format = match format {
            FormatKind::Csv => {
                let mut builder = arrow::csv::ReaderBuilder::new(Arc::new(text_schema))
                    .with_header(false)
                    .with_delimiter(delimiter)
                    .with_batch_size(batch_size);
                if let Some(columns) = projection {
                    builder = builder.with_projection(columns.to_vec());
                }
                FormatDecoder::Csv(Box::new(builder.build_decoder()))
            }
            FormatKind::Json => {
                // Fields outside the decoded schema are skipped unread. Primitives are
                // read as text in text columns: a number in a TIMESTAMP column (and so in
                // a VARCHAR one) as its digits.
                FormatDecoder::Json(Box::new(
                    arrow::json::ReaderBuilder::new(Arc::new(text_schema.project(&decoded)?))
                        .with_batch_size(batch_size)
                        .with_coerce_primitive(true)
                        .build_decoder()?,
                ))
            }
        };
        Ok(Self {
            format,
            batch_size,
            timestamps,
            decoded_schema,
        })
    }

    /// Whether it has room for `lines` lines (and the surplus record it looks for).
    pub(super) fn fits(&self, lines: usize) -> bool {
        self.batch_size > lines
    }

    /// Complete records buffered so far (arrow-json counts a partly decoded one too).
    pub(super) fn buffered(&self) -> usize {
        match &self.format {
            FormatDecoder::Csv(d) => self.batch_size - d.capacity(),
            FormatDecoder::Json(d) => d.len(),
        }
    }

    /// Feeds one whole line (ending in a newline) and returns how many complete records
    /// it held; a line that leaves a record unfinished counts as none.
    pub(super) fn feed(&mut self, line: &[u8]) -> Result<usize, ArrowError> {
        let before = self.buffered();
        let mut offset = 0;
        while offset < line.len() {
            let read = match &mut self.format {
                FormatDecoder::Csv(d) => d.decode(&line[offset..])?,
                FormatDecoder::Json(d) => d.decode(&line[offset..])?,
            };
            if read == 0 {
                // Full: the lines so far hold more records than there are lines.
                return Ok(usize::MAX);
            }
            offset += read;
        }
        // arrow-csv counts a record once its terminator is read, so an unfinished one
        // (an open quote) adds nothing; arrow-json counts it and says it is partial.
        if let FormatDecoder::Json(d) = &self.format {
            if d.has_partial_record() {
                return Ok(0);
            }
        }
        Ok(self.buffered() - before)
    }

    /// The decoded rows (possibly none); the decoder is empty again afterwards.
    pub(super) fn flush(&mut self) -> Result<RecordBatch, ArrowError> {
        let batch = match &mut self.format {
            FormatDecoder::Csv(d) => d.flush()?,
            FormatDecoder::Json(d) => d.flush()?,
        };
        // No rows: an empty batch, which `RowDecoder::widen` gives the source's schema.
        let Some(batch) = batch else {
            return Ok(RecordBatch::new_empty(Arc::new(
                arrow::datatypes::Schema::empty(),
            )));
        };
        if self.timestamps.is_empty() {
            return Ok(batch);
        }
        let mut columns = batch.columns().to_vec();
        for column in &self.timestamps {
            let text = columns[column.position]
                .as_string_opt::<i32>()
                .ok_or_else(|| {
                    ArrowError::SchemaError("a timestamp column was not decoded as text".into())
                })?;
            columns[column.position] =
                timestamps::parse_column(text, column.unit, column.zone.clone(), column.index)?;
        }
        RecordBatch::try_new(self.decoded_schema.clone(), columns)
    }
}

//! Decodes chunks of CSV or JSON lines into Arrow batches with arrow-csv / arrow-json, and
//! pins a decoding failure to the exact line.

use arrow::compute::concat_batches;
use arrow::datatypes::SchemaRef;
use arrow::error::ArrowError;
use arrow::record_batch::RecordBatch;

use super::lines::LineChunk;
use crate::sql::FormatKind;

/// A line that could not be decoded.
#[derive(Debug)]
pub(crate) struct BadLine {
    /// Index of the line in its chunk.
    pub(crate) index: usize,
    /// Why, in words.
    pub(crate) message: String,
}

/// The outcome of decoding a chunk: the good rows and the bad lines.
#[derive(Debug)]
pub(crate) struct Decoded {
    /// The rows that decoded, in order.
    pub(crate) batch: RecordBatch,
    /// Chunk index of each row of `batch`.
    pub(crate) kept: Vec<usize>,
    /// Lines that could not be decoded.
    pub(crate) bad: Vec<BadLine>,
}

/// Decodes rows of one format into batches of one schema.
pub(crate) struct RowDecoder {
    format: FormatKind,
    schema: SchemaRef,
    delimiter: u8,
}

impl RowDecoder {
    pub(crate) fn new(format: FormatKind, schema: SchemaRef, delimiter: u8) -> Self {
        Self {
            format,
            schema,
            delimiter,
        }
    }

    /// Decodes every line of `chunk`. On failure, decodes line by line to find every bad
    /// line; the good ones still come back, in order, with their indices.
    pub(crate) fn decode(&self, chunk: &LineChunk) -> Decoded {
        if let Ok(batch) = self.decode_bytes(&chunk.bytes, chunk.len()) {
            if batch.num_rows() == chunk.len() {
                return Decoded {
                    batch,
                    kept: (0..chunk.len()).collect(),
                    bad: Vec::new(),
                };
            }
        }
        let mut good = Vec::new();
        let mut kept = Vec::new();
        let mut bad = Vec::new();
        for index in 0..chunk.len() {
            match self.decode_bytes(chunk.line(index), 1) {
                Ok(batch) if batch.num_rows() == 1 => {
                    good.push(batch);
                    kept.push(index);
                }
                Ok(batch) => bad.push(BadLine {
                    index,
                    message: format!("expected one row, decoded {}", batch.num_rows()),
                }),
                Err(err) => bad.push(BadLine {
                    index,
                    message: self.describe(&err),
                }),
            }
        }
        let batch = concat_batches(&self.schema, &good)
            .unwrap_or_else(|_| RecordBatch::new_empty(self.schema.clone()));
        Decoded { batch, kept, bad }
    }

    fn decode_bytes(&self, bytes: &[u8], rows: usize) -> Result<RecordBatch, ArrowError> {
        let rows = rows.max(1);
        let batch = match self.format {
            FormatKind::Csv => {
                let mut decoder = arrow::csv::ReaderBuilder::new(self.schema.clone())
                    .with_header(false)
                    .with_delimiter(self.delimiter)
                    .with_batch_size(rows)
                    .build_decoder();
                let mut offset = 0;
                while offset < bytes.len() {
                    let read = decoder.decode(&bytes[offset..])?;
                    if read == 0 {
                        break;
                    }
                    offset += read;
                }
                decoder.decode(&[])?;
                decoder.flush()?
            }
            FormatKind::Json => {
                let mut decoder = arrow::json::ReaderBuilder::new(self.schema.clone())
                    .with_batch_size(rows)
                    .build_decoder()?;
                let mut offset = 0;
                while offset < bytes.len() {
                    let read = decoder.decode(&bytes[offset..])?;
                    if read == 0 {
                        break;
                    }
                    offset += read;
                }
                decoder.flush()?
            }
        };
        Ok(batch.unwrap_or_else(|| RecordBatch::new_empty(self.schema.clone())))
    }

    /// A readable reason for a one-line decoding error, naming the column.
    fn describe(&self, err: &ArrowError) -> String {
        let text = match err {
            ArrowError::ParseError(s) | ArrowError::CsvError(s) | ArrowError::JsonError(s) => {
                s.clone()
            }
            other => other.to_string(),
        };
        if let Some(rest) = text.strip_prefix("Error while parsing value '") {
            // "Error while parsing value 'x' as type 'Int64' for column 1 at line 0. Row data: …"
            let value = rest.split("' as type '").next().unwrap_or_default();
            let data_type = rest
                .split("' as type '")
                .nth(1)
                .and_then(|r| r.split('\'').next())
                .unwrap_or_default();
            let column = rest
                .split("for column ")
                .nth(1)
                .and_then(|r| r.split(' ').next())
                .and_then(|c| c.parse::<usize>().ok())
                .and_then(|i| self.schema.fields().get(i))
                .map(|f| f.name().clone())
                .unwrap_or_default();
            return format!("cannot parse '{value}' as {data_type} for column '{column}'");
        }
        if let Some(rest) = text.strip_prefix("Error parsing column ") {
            // "Error parsing column 0 at line 0: Parser error: Error parsing timestamp from 'x': …"
            let column = rest
                .split(' ')
                .next()
                .and_then(|c| c.parse::<usize>().ok())
                .and_then(|i| self.schema.fields().get(i))
                .map(|f| f.name().clone())
                .unwrap_or_default();
            let reason = rest.split_once(": ").map(|(_, r)| r).unwrap_or(rest);
            let reason = reason.strip_prefix("Parser error: ").unwrap_or(reason);
            return format!("column '{column}': {}", crate::error::one_line(reason));
        }
        if text.contains("incorrect number of fields") {
            let got = text.rsplit("got ").next().unwrap_or("?");
            return format!(
                "wrong number of columns: expected {}, found {got}",
                self.schema.fields().len()
            );
        }
        crate::error::one_line(&text)
    }
}

#[cfg(test)]
mod tests {
    use super::super::lines::LineReader;
    use super::*;
    use arrow::datatypes::{DataType, Field, Schema};
    use std::sync::Arc;

    fn chunk(text: &str) -> LineChunk {
        LineReader::new(text.as_bytes(), false)
            .next_chunk(100)
            .unwrap()
            .unwrap()
    }

    fn schema() -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("a", DataType::Int64, true),
            Field::new("b", DataType::Utf8, true),
        ]))
    }

    #[test]
    fn csv_bad_lines_are_located() {
        let d = RowDecoder::new(FormatKind::Csv, schema(), b',');
        let Decoded { batch, kept, bad } = d.decode(&chunk("1,x\nzz,y\n3\n4,w\n"));
        assert_eq!(batch.num_rows(), 2);
        assert_eq!(kept, vec![0, 3]);
        assert_eq!(bad.len(), 2);
        assert!(
            bad[0].message.contains("'zz' as Int64 for column 'a'"),
            "{}",
            bad[0].message
        );
        assert!(
            bad[1].message.contains("expected 2, found 1"),
            "{}",
            bad[1].message
        );
    }

    #[test]
    fn json_lines_decode() {
        let d = RowDecoder::new(FormatKind::Json, schema(), b',');
        let decoded = d.decode(&chunk("{\"a\":1,\"b\":\"x\"}\n{\"a\":2}\n"));
        assert_eq!(decoded.batch.num_rows(), 2);
        assert!(decoded.bad.is_empty());
        let bad = d.decode(&chunk("{\"a\":1}\n{\"a\":\n")).bad;
        assert_eq!(bad[0].index, 1);
    }
}

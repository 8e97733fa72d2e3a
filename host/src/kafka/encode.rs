//! Result rows as Kafka messages: one row a message, its value a JSON object or a CSV
//! record without a header (written by arrow's writers, as the file sink writes them),
//! its key the text of one column (none when that value is NULL).

use arrow::array::Array;
use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use arrow::util::display::{ArrayFormatter, FormatOptions};

use crate::error::{Error, Result};
use crate::sql::FormatKind;
use crate::text::shown;

/// One encoded row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct EncodedRow {
    /// The message key.
    pub(crate) key: Option<Vec<u8>>,
    /// The message value, without a trailing newline.
    pub(crate) value: Vec<u8>,
}

/// Encodes the rows of one schema.
#[derive(Debug, Clone)]
pub(crate) struct RowEncoder {
    format: FormatKind,
    /// Index of the key column.
    key: Option<usize>,
}

impl RowEncoder {
    /// An encoder of `schema`'s rows in `format`, keyed by the column `key` (checked to
    /// exist; `what` names the sink in the error).
    pub(crate) fn new(
        what: &str,
        format: FormatKind,
        schema: &SchemaRef,
        key: Option<&str>,
    ) -> Result<Self> {
        let key = match key {
            None => None,
            Some(name) => Some(
                schema
                    .fields()
                    .iter()
                    .position(|f| f.name().eq_ignore_ascii_case(name))
                    .ok_or_else(|| {
                        Error::plan(format!(
                            "{what}: key = '{}' is not a column of the results ({})",
                            shown(name, 80),
                            schema
                                .fields()
                                .iter()
                                .map(|f| f.name().as_str())
                                .collect::<Vec<_>>()
                                .join(", ")
                        ))
                    })?,
            ),
        };
        Ok(Self { format, key })
    }

    /// Every row of `batch`, in order.
    pub(crate) fn encode(&self, batch: &RecordBatch) -> Result<Vec<EncodedRow>> {
        let rows = batch.num_rows();
        let values = match self.format {
            FormatKind::Json => {
                let mut out = Vec::new();
                let mut writer = arrow::json::LineDelimitedWriter::new(&mut out);
                writer.write(batch)?;
                writer.finish()?;
                // JSON escapes newlines inside strings: every line is one row.
                let values: Vec<Vec<u8>> = out
                    .split(|&b| b == b'\n')
                    .take(rows)
                    .map(<[u8]>::to_vec)
                    .collect();
                if values.len() != rows {
                    return Err(Error::Execution(
                        "internal: the JSON writer wrote fewer lines than rows".into(),
                    ));
                }
                values
            }
            FormatKind::Csv => {
                // A CSV field may hold a quoted newline: one writer call per row.
                let mut values = Vec::with_capacity(rows);
                for row in 0..rows {
                    let mut out = Vec::new();
                    let mut writer = arrow::csv::WriterBuilder::new()
                        .with_header(false)
                        .build(&mut out);
                    writer.write(&batch.slice(row, 1))?;
                    drop(writer);
                    if out.last() == Some(&b'\n') {
                        out.pop();
                    }
                    values.push(out);
                }
                values
            }
        };
        let keys: Vec<Option<Vec<u8>>> = match self.key {
            None => vec![None; rows],
            Some(column) => {
                let array = batch.column(column);
                let formatter = ArrayFormatter::try_new(array.as_ref(), &FormatOptions::default())?;
                (0..rows)
                    .map(|row| {
                        array
                            .is_valid(row)
                            .then(|| formatter.value(row).to_string().into_bytes())
                    })
                    .collect()
            }
        };
        Ok(keys
            .into_iter()
            .zip(values)
            .map(|(key, value)| EncodedRow { key, value })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Int64Array, StringArray};
    use std::sync::Arc;

    fn batch() -> RecordBatch {
        RecordBatch::try_from_iter([
            (
                "auction",
                Arc::new(Int64Array::from(vec![Some(7), None])) as _,
            ),
            (
                "note",
                Arc::new(StringArray::from(vec![Some("a,\"b\"\nc"), None])) as _,
            ),
        ])
        .unwrap()
    }

    #[test]
    fn json_rows_are_one_object_each_keyed_by_the_column() {
        let b = batch();
        let e = RowEncoder::new("sink", FormatKind::Json, &b.schema(), Some("AUCTION")).unwrap();
        let rows = e.encode(&b).unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].key.as_deref(), Some(&b"7"[..]));
        assert_eq!(
            rows[0].value,
            br#"{"auction":7,"note":"a,\"b\"\nc"}"#.to_vec()
        );
        assert_eq!(rows[1].key, None);
        assert_eq!(rows[1].value, b"{}".to_vec());
    }

    #[test]
    fn csv_rows_keep_quoted_newlines_in_one_message() {
        let b = batch();
        let e = RowEncoder::new("sink", FormatKind::Csv, &b.schema(), None).unwrap();
        let rows = e.encode(&b).unwrap();
        assert_eq!(rows[0].value, b"7,\"a,\"\"b\"\"\nc\"".to_vec());
        assert_eq!(rows[1].value, b",".to_vec());
        assert!(rows.iter().all(|r| r.key.is_none()));
    }

    #[test]
    fn an_unknown_key_column_is_named() {
        let b = batch();
        let err = RowEncoder::new("sink 'out'", FormatKind::Csv, &b.schema(), Some("bidder"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("key = 'bidder' is not a column"), "{err}");
    }
}

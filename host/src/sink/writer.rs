//! Writes results as an aligned table, CSV or JSON lines to any `Write` (stdout, a file).
//!
//! Every value stays distinguishable: CSV writes a NULL as an empty field and floats as
//! `NaN`, `inf`, `-inf`; JSON lines write a NULL as `null` (the key present) and those
//! floats as the strings `"NaN"`, `"Infinity"`, `"-Infinity"` (see [`super::json`]). A CSV
//! result without rows is its header line, where the schema was told.

use std::io::Write;

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use arrow::util::pretty::pretty_format_batches;

use super::Sink;
use crate::error::{Error, Result};

/// How results are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OutputFormat {
    /// An aligned text table: rows are held until a flush (every batch of a live input),
    /// the end of input, or [`TABLE_ROWS`] of them, so memory stays bounded however long
    /// the input; a long result prints as several tables.
    #[default]
    Table,
    /// CSV with a header line (also when there are no rows); NULL is an empty field, NaN
    /// and the infinities `NaN`, `inf`, `-inf`.
    Csv,
    /// One JSON object per line, every column's key in each; NULL is `null`, NaN and the
    /// infinities the strings `"NaN"`, `"Infinity"`, `"-Infinity"`.
    Json,
}

/// The most rows an aligned table holds before it is printed.
pub const TABLE_ROWS: usize = 10_000;

/// A sink writing one format to a writer.
pub struct WriterSink<W: Write + Send> {
    out: W,
    format: OutputFormat,
    name: String,
    header_written: bool,
    /// The results' schema, where told: the header of a CSV result without rows.
    schema: Option<SchemaRef>,
    pending: Vec<RecordBatch>,
    pending_rows: usize,
}

impl<W: Write + Send> WriterSink<W> {
    /// A sink writing `format` to `out`; `name` appears in error messages.
    pub fn new(out: W, format: OutputFormat, name: impl Into<String>) -> Self {
        Self {
            out,
            format,
            name: name.into(),
            header_written: false,
            schema: None,
            pending: Vec::new(),
            pending_rows: 0,
        }
    }

    /// Whether output was already written before (a resumed file): a CSV header is then
    /// not written again.
    pub fn set_started(&mut self, started: bool) {
        self.header_written = started;
    }

    /// Writes the CSV header line where none was written yet and the schema is known:
    /// a result without rows is still a CSV file with its header.
    pub(super) fn write_missing_header(&mut self) -> Result<()> {
        if self.format != OutputFormat::Csv || self.header_written {
            return Ok(());
        }
        let Some(schema) = self.schema.clone() else {
            return Ok(());
        };
        let mut writer = arrow::csv::WriterBuilder::new()
            .with_header(true)
            .build(&mut self.out);
        writer.write(&RecordBatch::new_empty(schema))?;
        self.header_written = true;
        Ok(())
    }

    /// The writer results go to.
    pub fn get_mut(&mut self) -> &mut W {
        &mut self.out
    }

    /// Prints the rows held for a table, if any.
    /// Drops the batches held for a table not printed yet, without writing them.
    pub fn drop_pending(&mut self) {
        self.pending.clear();
        self.pending_rows = 0;
    }

    fn print_table(&mut self) -> Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let table = pretty_format_batches(&self.pending)?;
        self.pending.clear();
        self.pending_rows = 0;
        writeln!(self.out, "{table}").map_err(|e| self.io(e))
    }

    fn io(&self, err: std::io::Error) -> Error {
        Error::io(format!("cannot write to {}", self.name), err)
    }
}

impl<W: Write + Send> Sink for WriterSink<W> {
    fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        match self.format {
            OutputFormat::Table => {
                self.pending.push(batch.clone());
                self.pending_rows += batch.num_rows();
                if self.pending_rows >= TABLE_ROWS {
                    self.print_table()?;
                }
            }
            OutputFormat::Csv => {
                let mut writer = arrow::csv::WriterBuilder::new()
                    .with_header(!self.header_written)
                    .build(&mut self.out);
                writer.write(batch)?;
                self.header_written = true;
            }
            OutputFormat::Json => super::json::write_lines(&mut self.out, batch)?,
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<()> {
        self.print_table()?;
        self.out.flush().map_err(|e| self.io(e))
    }

    fn finish(&mut self) -> Result<()> {
        self.write_missing_header()?;
        self.flush()
    }

    fn set_schema(&mut self, schema: &SchemaRef) {
        self.schema = Some(schema.clone());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::Int64Array;
    use std::sync::Arc;

    #[test]
    fn csv_header_is_written_once() {
        let batch =
            RecordBatch::try_from_iter([("a", Arc::new(Int64Array::from(vec![1, 2])) as _)])
                .unwrap();
        let mut out = Vec::new();
        let mut sink = WriterSink::new(&mut out, OutputFormat::Csv, "test");
        sink.write(&batch).unwrap();
        sink.write(&batch).unwrap();
        sink.finish().unwrap();
        drop(sink);
        assert_eq!(String::from_utf8(out).unwrap(), "a\n1\n2\n1\n2\n");
    }

    #[test]
    fn a_csv_result_without_rows_is_its_header_and_json_nothing() {
        let batch =
            RecordBatch::try_from_iter([("a", Arc::new(Int64Array::from(vec![1])) as _)]).unwrap();
        for (format, expected) in [(OutputFormat::Csv, "a\n"), (OutputFormat::Json, "")] {
            let mut out = Vec::new();
            let mut sink = WriterSink::new(&mut out, format, "test");
            sink.set_schema(&batch.schema());
            sink.finish().unwrap();
            drop(sink);
            assert_eq!(String::from_utf8(out).unwrap(), expected);
        }
        // Resumed output already has its header; without a schema nothing can be written.
        let mut out = Vec::new();
        let mut sink = WriterSink::new(&mut out, OutputFormat::Csv, "test");
        sink.set_schema(&batch.schema());
        sink.set_started(true);
        sink.finish().unwrap();
        let mut unknown = WriterSink::new(Vec::new(), OutputFormat::Csv, "test");
        unknown.finish().unwrap();
        assert!(unknown.get_mut().is_empty());
        drop(sink);
        assert!(out.is_empty());
    }

    #[test]
    fn a_table_holds_at_most_table_rows_before_it_is_printed() {
        let rows = TABLE_ROWS / 4 + 1;
        let batch = RecordBatch::try_from_iter([(
            "a",
            Arc::new(Int64Array::from_iter_values(0..rows as i64)) as _,
        )])
        .unwrap();
        let mut out = Vec::new();
        let mut sink = WriterSink::new(&mut out, OutputFormat::Table, "test");
        for _ in 0..3 {
            sink.write(&batch).unwrap();
        }
        assert!(
            sink.get_mut().is_empty(),
            "fewer rows than a table holds wait"
        );
        sink.write(&batch).unwrap();
        assert!(sink.pending.is_empty(), "a full table is printed");
        let printed = String::from_utf8(sink.get_mut().to_vec()).unwrap();
        assert_eq!(
            printed.lines().filter(|l| l.starts_with("| ")).count(),
            4 * rows + 1
        );
        sink.write(&batch).unwrap();
        sink.finish().unwrap();
        drop(sink);
        let all = String::from_utf8(out).unwrap();
        assert_eq!(
            all.lines().filter(|l| l.starts_with("| a")).count(),
            2,
            "two tables"
        );
    }
}

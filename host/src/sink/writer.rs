//! Writes results as an aligned table, CSV or JSON lines to any `Write` (stdout, a file).

use std::io::Write;

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
    /// CSV with a header line.
    Csv,
    /// One JSON object per line.
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
            pending: Vec::new(),
            pending_rows: 0,
        }
    }

    /// Whether output was already written before (a resumed file): a CSV header is then
    /// not written again.
    pub fn set_started(&mut self, started: bool) {
        self.header_written = started;
    }

    /// The writer results go to.
    pub fn get_mut(&mut self) -> &mut W {
        &mut self.out
    }

    /// Prints the rows held for a table, if any.
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
            OutputFormat::Json => {
                let mut writer = arrow::json::LineDelimitedWriter::new(&mut self.out);
                writer.write(batch)?;
                writer.finish()?;
            }
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<()> {
        self.print_table()?;
        self.out.flush().map_err(|e| self.io(e))
    }

    fn finish(&mut self) -> Result<()> {
        self.flush()
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

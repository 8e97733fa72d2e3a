//! Writes results as an aligned table, CSV or JSON lines to any `Write` (stdout, a file).

use std::io::Write;

use arrow::record_batch::RecordBatch;
use arrow::util::pretty::pretty_format_batches;

use super::Sink;
use crate::error::{Error, Result};

/// How results are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OutputFormat {
    /// An aligned text table (rows are held until a flush or the end of input).
    #[default]
    Table,
    /// CSV with a header line.
    Csv,
    /// One JSON object per line.
    Json,
}

/// A sink writing one format to a writer.
pub struct WriterSink<W: Write + Send> {
    out: W,
    format: OutputFormat,
    name: String,
    header_written: bool,
    pending: Vec<RecordBatch>,
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
            OutputFormat::Table => self.pending.push(batch.clone()),
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
        if !self.pending.is_empty() {
            let table = pretty_format_batches(&self.pending)?;
            self.pending.clear();
            writeln!(self.out, "{table}").map_err(|e| self.io(e))?;
        }
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
}

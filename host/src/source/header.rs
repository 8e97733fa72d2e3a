//! The CSV header of a line source: recognised in the first chunk read and cut from it.

use arrow::datatypes::SchemaRef;

use super::lines::LineChunk;
use crate::error::{Error, Result};
use crate::sql::{FormatKind, SourceDef};

/// The UTF-8 byte-order mark.
const BYTE_ORDER_MARK: &[u8] = b"\xef\xbb\xbf";

/// What a source says about its header, and the columns it declares.
#[derive(Debug, Clone)]
pub(crate) struct Header {
    schema: SchemaRef,
    origin: String,
    header: Option<bool>,
    format: FormatKind,
    delimiter: u8,
}

impl Header {
    /// The header rule of `def`, read from `origin`.
    pub(crate) fn new(def: &SourceDef, origin: &str) -> Self {
        Self {
            schema: def.schema.clone(),
            origin: origin.to_string(),
            header: def.options.header,
            format: def.options.format,
            delimiter: def.options.delimiter,
        }
    }

    /// Cuts the header line from `chunk`, the first chunk of the input, where there is
    /// one. `Ok(false)`: nothing is left of the chunk.
    /// A UTF-8 byte-order mark at the start of the input (Excel writes one) is cut too,
    /// for CSV and JSON.
    pub(crate) fn strip(&self, chunk: &mut LineChunk) -> Result<bool> {
        if chunk.len() > 0 && chunk.line(0).starts_with(BYTE_ORDER_MARK) {
            chunk.bytes.drain(..BYTE_ORDER_MARK.len());
            chunk
                .starts
                .iter_mut()
                .skip(1)
                .for_each(|s| *s -= BYTE_ORDER_MARK.len());
        }
        let first_line = chunk.numbers.first().copied().unwrap_or(1);
        if self.format != FormatKind::Csv || !self.is_header(chunk.line(0), first_line)? {
            return Ok(true);
        }
        let skip = chunk.starts.get(1).copied().unwrap_or(chunk.bytes.len());
        chunk.bytes.drain(..skip);
        chunk.starts.remove(0);
        chunk.numbers.remove(0);
        chunk.starts.iter_mut().for_each(|s| *s -= skip);
        Ok(chunk.len() > 0)
    }

    /// Whether `line` (line `number` of the input) is a CSV header naming the declared
    /// columns. A header naming them in another order is an error: the columns would be
    /// read by position into the wrong ones.
    fn is_header(&self, line: &[u8], number: u64) -> Result<bool> {
        let text = String::from_utf8_lossy(line);
        let names: Vec<String> = text
            .trim_end()
            .split(self.delimiter as char)
            .map(|f| f.trim().trim_matches('"').to_ascii_lowercase())
            .collect();
        let declared: Vec<String> = self
            .schema
            .fields()
            .iter()
            .map(|f| f.name().to_ascii_lowercase())
            .collect();
        let mut sorted_names = names.clone();
        let mut sorted_declared = declared.clone();
        sorted_names.sort();
        sorted_declared.sort();
        if self.header != Some(false) && names != declared && sorted_names == sorted_declared {
            return Err(Error::BadRow {
                origin: self.origin.clone(),
                line: number,
                message: format!(
                    "the header names the declared columns in another order ({}); declare them in the file's order, or set header = 'false' if this line is data",
                    crate::text::shown(&names.join(", "), 200)
                ),
            });
        }
        match self.header {
            Some(false) => Ok(false),
            None => Ok(names == declared),
            Some(true) if names.len() == declared.len() => Ok(true),
            Some(true) => Err(Error::BadRow {
                origin: self.origin.clone(),
                line: number,
                message: format!(
                    "header has {} columns, the source declares {} ({})",
                    names.len(),
                    declared.len(),
                    declared.join(", ")
                ),
            }),
        }
    }
}

//! The CSV header of a line source: recognised in the first chunk read and cut from it.

use arrow::datatypes::SchemaRef;

use super::lines::LineChunk;
use crate::error::{Error, Result};
use crate::sql::{FormatKind, SourceDef};

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
    pub(crate) fn strip(&self, chunk: &mut LineChunk) -> Result<bool> {
        if self.format != FormatKind::Csv || !self.is_header(chunk.line(0))? {
            return Ok(true);
        }
        let skip = chunk.starts.get(1).copied().unwrap_or(chunk.bytes.len());
        chunk.bytes.drain(..skip);
        chunk.starts.remove(0);
        chunk.numbers.remove(0);
        chunk.starts.iter_mut().for_each(|s| *s -= skip);
        Ok(chunk.len() > 0)
    }

    /// Whether `line` is a CSV header naming the declared columns.
    fn is_header(&self, line: &[u8]) -> Result<bool> {
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
        match self.header {
            Some(false) => Ok(false),
            None => Ok(names == declared),
            Some(true) if names.len() == declared.len() => Ok(true),
            Some(true) => Err(Error::BadRow {
                origin: self.origin.clone(),
                line: 1,
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

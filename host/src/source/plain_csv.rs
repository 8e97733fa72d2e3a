//! Quote-free CSV lines decoded straight into typed columns, the way arrow-csv would
//! decode them, without its general record parser.
//!
//! ```text
//!  "2024-01-01T00:00:01.250,17,,9.5\n" ─▶ fields cut at each delimiter (memchr)
//!      ─▶ only the projected fields parsed, each by arrow's own parser for its type
//!         (an empty field is NULL), timestamps by `timestamps` with no text column between
//! ```
//! It takes only what it can decode exactly as arrow-csv does: lines the caller found
//! free of quotes and of carriage returns not before a newline (so every line is one
//! record and every delimiter ends a field), an ASCII delimiter, and columns of the types
//! below. Anything else, or any line arrow-csv would reject (a wrong number of fields, a
//! value that does not parse, text that is not UTF-8), makes [`PlainCsv::decode`] give up
//! on the chunk, and arrow-csv decodes it, with its errors and its bad-line search.

use std::ops::Range;
use std::sync::Arc;

use arrow::array::{ArrayRef, PrimitiveBuilder, StringBuilder};
use arrow::compute::kernels::cast_utils::Parser;
use arrow::datatypes::{
    ArrowPrimitiveType, ArrowTimestampType, DataType, Float32Type, Float64Type, Int16Type,
    Int32Type, Int64Type, Int8Type, Schema, SchemaRef, TimeUnit, TimestampMicrosecondType,
    TimestampMillisecondType, TimestampNanosecondType, TimestampSecondType, UInt16Type, UInt32Type,
    UInt64Type, UInt8Type,
};
use arrow::record_batch::RecordBatch;

use super::lines::LineChunk;
use super::timestamps::{self, LastMinute};

/// The fast decoder of one schema and projection.
#[derive(Debug, Clone)]
pub(crate) struct PlainCsv {
    /// Fields of every record.
    width: usize,
    delimiter: u8,
    /// The decoded columns: their index in the schema, ascending, and their type.
    decoded: Vec<(usize, DataType)>,
    /// The schema of what [`decode`](Self::decode) returns: the projected columns.
    decoded_schema: SchemaRef,
}

impl PlainCsv {
    /// The fast decoder of `schema`'s columns `projection` (`None`: all), or `None` where
    /// the delimiter or a decoded column's type is one it does not decode.
    pub(crate) fn new(
        schema: &Schema,
        projection: Option<&[usize]>,
        delimiter: u8,
    ) -> Option<Self> {
        if !delimiter.is_ascii() || matches!(delimiter, b'"' | b'\r' | b'\n') {
            return None;
        }
        let columns: Vec<usize> = match projection {
            Some(columns) => columns.to_vec(),
            None => (0..schema.fields().len()).collect(),
        };
        let decoded = columns
            .iter()
            .map(|&index| {
                let data_type = schema.fields().get(index)?.data_type();
                builder(data_type, 0).map(|_| (index, data_type.clone()))
            })
            .collect::<Option<Vec<_>>>()?;
        Some(Self {
            width: schema.fields().len(),
            delimiter,
            decoded,
            decoded_schema: Arc::new(schema.project(&columns).ok()?),
        })
    }

    /// The records of lines `lines` of `chunk`, which are free of quotes and of carriage
    /// returns not right before a newline; `None` when some line is not a record
    /// arrow-csv reads without an error.
    pub(crate) fn decode(&self, chunk: &LineChunk, lines: Range<usize>) -> Option<RecordBatch> {
        // arrow-csv checks the UTF-8 of every field, decoded or not.
        let text = std::str::from_utf8(chunk.lines(lines.clone())).ok()?;
        let base = *chunk.starts.get(lines.start)?;
        let mut builders = self
            .decoded
            .iter()
            .map(|(_, data_type)| builder(data_type, lines.len()))
            .collect::<Option<Vec<_>>>()?;
        // Every delimiter of the chunk, found in one pass (lines are too short for a search
        // per line to pay for its setup), taken line by line.
        let mut delimiters = memchr::memchr_iter(self.delimiter, text.as_bytes()).peekable();
        for index in lines.clone() {
            let start = chunk.starts.get(index)? - base;
            let end = match chunk.starts.get(index + 1) {
                Some(next) if index + 1 < lines.end => next - base,
                _ => text.len(),
            };
            // Each line ends in its newline, after a carriage return or not.
            let line = text.get(start..end)?;
            let line = line.strip_suffix('\n').unwrap_or(line);
            let line = line.strip_suffix('\r').unwrap_or(line);
            let ends = std::iter::from_fn(|| delimiters.next_if(|&at| at < start + line.len()))
                .map(|at| at - start)
                .chain(std::iter::once(line.len()));
            self.fields(line, ends, &mut builders)?;
        }
        let columns: Vec<ArrayRef> = builders.iter_mut().map(|b| b.finish()).collect();
        RecordBatch::try_new(Arc::clone(&self.decoded_schema), columns).ok()
    }

    /// Adds the decoded fields of one record to `builders`; `ends` are where its fields
    /// end in `line` (each delimiter, then the line's end).
    fn fields(
        &self,
        line: &str,
        ends: impl Iterator<Item = usize>,
        builders: &mut [Box<dyn FieldBuilder>],
    ) -> Option<()> {
        let mut next = 0;
        let mut field = 0;
        let mut start = 0;
        for end in ends {
            if field >= self.width {
                return None;
            }
            if self
                .decoded
                .get(next)
                .is_some_and(|(index, _)| *index == field)
            {
                builders.get_mut(next)?.push(line.get(start..end)?)?;
                next += 1;
            }
            field += 1;
            start = end + 1;
        }
        (field == self.width).then_some(())
    }
}

/// A column being built from the text of its fields.
trait FieldBuilder {
    /// Adds one field's value (an empty field is NULL); `None` when it does not parse.
    fn push(&mut self, text: &str) -> Option<()>;
    /// The column so far; the builder starts again empty.
    fn finish(&mut self) -> ArrayRef;
}

/// A builder for a column of `data_type` with room for `rows`, where the type is one
/// this decoder decodes.
fn builder(data_type: &DataType, rows: usize) -> Option<Box<dyn FieldBuilder>> {
    fn primitive<T: ArrowPrimitiveType + Parser>(rows: usize) -> Box<dyn FieldBuilder> {
        Box::new(Primitive::<T>(PrimitiveBuilder::with_capacity(rows)))
    }
    fn timestamp<T: ArrowTimestampType>(rows: usize) -> Box<dyn FieldBuilder> {
        Box::new(Timestamp::<T> {
            values: PrimitiveBuilder::with_capacity(rows),
            last_minute: None,
        })
    }
    Some(match data_type {
        DataType::Int8 => primitive::<Int8Type>(rows),
        DataType::Int16 => primitive::<Int16Type>(rows),
        DataType::Int32 => primitive::<Int32Type>(rows),
        DataType::Int64 => primitive::<Int64Type>(rows),
        DataType::UInt8 => primitive::<UInt8Type>(rows),
        DataType::UInt16 => primitive::<UInt16Type>(rows),
        DataType::UInt32 => primitive::<UInt32Type>(rows),
        DataType::UInt64 => primitive::<UInt64Type>(rows),
        DataType::Float32 => primitive::<Float32Type>(rows),
        DataType::Float64 => primitive::<Float64Type>(rows),
        DataType::Utf8 => Box::new(Text(StringBuilder::with_capacity(rows, rows * 8))),
        DataType::Timestamp(TimeUnit::Second, None) => timestamp::<TimestampSecondType>(rows),
        DataType::Timestamp(TimeUnit::Millisecond, None) => {
            timestamp::<TimestampMillisecondType>(rows)
        }
        DataType::Timestamp(TimeUnit::Microsecond, None) => {
            timestamp::<TimestampMicrosecondType>(rows)
        }
        DataType::Timestamp(TimeUnit::Nanosecond, None) => {
            timestamp::<TimestampNanosecondType>(rows)
        }
        _ => return None,
    })
}

/// Numbers, parsed by arrow's parser for the type (the one arrow-csv uses).
struct Primitive<T: ArrowPrimitiveType>(PrimitiveBuilder<T>);

impl<T: ArrowPrimitiveType + Parser> FieldBuilder for Primitive<T> {
    fn push(&mut self, text: &str) -> Option<()> {
        if text.is_empty() {
            self.0.append_null();
        } else {
            self.0.append_value(T::parse(text)?);
        }
        Some(())
    }

    fn finish(&mut self) -> ArrayRef {
        Arc::new(self.0.finish())
    }
}

/// Text, as it is.
struct Text(StringBuilder);

impl FieldBuilder for Text {
    fn push(&mut self, text: &str) -> Option<()> {
        if text.is_empty() {
            self.0.append_null();
        } else {
            self.0.append_value(text);
        }
        Some(())
    }

    fn finish(&mut self) -> ArrayRef {
        Arc::new(self.0.finish())
    }
}

/// Timestamps without a time zone, read as [`timestamps`] reads arrow-csv's text.
struct Timestamp<T: ArrowTimestampType> {
    values: PrimitiveBuilder<T>,
    last_minute: LastMinute,
}

impl<T: ArrowTimestampType> FieldBuilder for Timestamp<T> {
    fn push(&mut self, text: &str) -> Option<()> {
        if text.is_empty() {
            self.values.append_null();
        } else {
            let value = timestamps::parse(text, T::UNIT, &mut self.last_minute).ok()?;
            self.values.append_value(value);
        }
        Some(())
    }

    fn finish(&mut self) -> ArrayRef {
        Arc::new(self.values.finish())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gen::SplitMix64;
    use arrow::array::AsArray;
    use arrow::datatypes::Field;

    fn schema() -> Schema {
        Schema::new(vec![
            Field::new("ts", DataType::Timestamp(TimeUnit::Millisecond, None), true),
            Field::new("i", DataType::Int64, true),
            Field::new("s", DataType::Utf8, true),
            Field::new("f", DataType::Float64, true),
            Field::new("u", DataType::UInt8, true),
        ])
    }

    /// What arrow-csv (with the timestamp columns read as text and converted, as the
    /// source does) makes of `text`, the oracle.
    fn arrow_csv(schema: &Schema, projection: Option<&[usize]>, text: &str) -> Option<RecordBatch> {
        let mut decoder = super::super::decode::RowDecoder::new(
            crate::sql::FormatKind::Csv,
            Arc::new(schema.clone()),
            b',',
        );
        if let Some(columns) = projection {
            decoder.set_projection(columns);
        }
        decoder.decode_with_arrow(text.as_bytes())
    }

    /// The lines of `text` as the source cuts them.
    fn chunk(text: &[u8]) -> LineChunk {
        super::super::lines::LineReader::new(text, false)
            .next_chunk(usize::MAX)
            .expect("reads")
            .unwrap_or_default()
    }

    fn decode(plain: &PlainCsv, text: &[u8]) -> Option<RecordBatch> {
        let chunk = chunk(text);
        plain.decode(&chunk, 0..chunk.len())
    }

    fn random_field(rng: &mut SplitMix64, column: usize) -> String {
        let mut pick = |n: u64| rng.next_u64() % n;
        if pick(8) == 0 {
            return String::new();
        }
        let junk = [
            "x", " 1", "1 ", "+", "-", "1e", "0x10", "١", "NaN", "inf", "-0", "+7",
        ];
        if pick(10) == 0 {
            return junk[pick(junk.len() as u64) as usize].to_owned();
        }
        match column {
            0 => format!(
                "2024-{:02}-{:02}{}{:02}:{:02}:{:02}.{:03}",
                1 + pick(12),
                1 + pick(31),
                if pick(2) == 0 { 'T' } else { ' ' },
                pick(24),
                pick(60),
                pick(60),
                pick(1000)
            ),
            1 => (pick(u64::MAX) as i64).to_string(),
            2 => ["a", "bé", "long text here", "1"][pick(4) as usize].to_owned(),
            3 => match pick(4) {
                0 => format!("{}", pick(100_000) as f64 / 100.0),
                1 => format!("{:e}", pick(1 << 40) as f64),
                2 => format!("-{}", pick(1000)),
                _ => format!("{}.{}", pick(10), pick(1_000_000)),
            },
            _ => pick(300).to_string(),
        }
    }

    #[test]
    fn random_lines_decode_as_arrow_csv_decodes_them_or_not_at_all() {
        let schema = schema();
        let mut rng = SplitMix64::new(7);
        let projections: [Option<&[usize]>; 4] = [None, Some(&[0, 1, 3]), Some(&[2]), Some(&[4])];
        let mut decoded = 0;
        for case in 0..400 {
            let lines = 1 + (rng.next_u64() % 20) as usize;
            let mut text = String::new();
            for _ in 0..lines {
                let width = match rng.next_u64() % 30 {
                    0 => 4,
                    1 => 6,
                    _ => 5,
                };
                let fields: Vec<String> = (0..width).map(|c| random_field(&mut rng, c)).collect();
                text.push_str(&fields.join(","));
                text.push_str(if rng.next_u64().is_multiple_of(5) {
                    "\r\n"
                } else {
                    "\n"
                });
            }
            for projection in projections {
                let plain = PlainCsv::new(&schema, projection, b',').expect("types it decodes");
                let want = arrow_csv(&schema, projection, &text);
                let Some(got) = decode(&plain, text.as_bytes()) else {
                    continue;
                };
                decoded += 1;
                let want = want.unwrap_or_else(|| panic!("case {case}: arrow-csv fails:\n{text}"));
                let want = want.project(
                    &projection
                        .map_or_else(|| (0..schema.fields().len()).collect(), <[usize]>::to_vec),
                );
                assert_eq!(Some(got), want.ok(), "case {case}: {projection:?}\n{text}");
            }
        }
        assert!(decoded > 100, "the fast path decoded only {decoded} chunks");
    }

    #[test]
    fn a_bad_field_anywhere_or_a_wrong_field_count_gives_the_chunk_back() {
        let schema = schema();
        let plain = PlainCsv::new(&schema, Some(&[1]), b',').expect("decodes");
        let good = "2024-01-01T00:00:00,1,a,1.5,2\n";
        assert_eq!(
            decode(&plain, good.as_bytes()).map(|b| b.num_rows()),
            Some(1)
        );
        for bad in [
            "2024-01-01T00:00:00,x,a,1.5,2\n",
            "2024-01-01T00:00:00,1,a,1.5\n",
            "2024-01-01T00:00:00,1,a,1.5,2,3\n",
            "2024-01-01T00:00:00,1,\u{fffd},1.5,2\n",
        ] {
            let text = format!("{good}{bad}");
            let mut bytes = text.into_bytes();
            if bad.contains('\u{fffd}') {
                // Not UTF-8, in a column the projection does not decode.
                let at = bytes.len() - 10;
                bytes.splice(at..at + 3, [0xff, b'a', b'a']);
            }
            assert!(decode(&plain, &bytes).is_none(), "{bad}");
        }
        // Lines taken from the middle of a chunk.
        let text = format!("{good}2024-01-01T00:00:00,2,a,1.5,2\n2024-01-01T00:00:00,3,a,1.5,2");
        let chunk = chunk(text.as_bytes());
        let middle = plain.decode(&chunk, 1..3).expect("decodes");
        let values = middle
            .column(0)
            .as_primitive::<Int64Type>()
            .values()
            .to_vec();
        assert_eq!(values, [2, 3]);
    }

    #[test]
    fn types_and_delimiters_it_does_not_decode_are_left_to_arrow_csv() {
        let schema = Schema::new(vec![
            Field::new("d", DataType::Date32, true),
            Field::new("i", DataType::Int64, true),
        ]);
        assert!(PlainCsv::new(&schema, None, b',').is_none());
        assert!(PlainCsv::new(&schema, Some(&[1]), b',').is_some());
        assert!(PlainCsv::new(&schema, Some(&[1]), b'"').is_none());
        assert!(PlainCsv::new(&schema, Some(&[1]), 0xa7).is_none());
    }
}

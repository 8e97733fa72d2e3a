//! Decodes chunks of CSV or JSON lines into Arrow batches with arrow-csv / arrow-json, and
//! pins a decoding failure to the exact line.

use arrow::compute::concat_batches;
use arrow::datatypes::SchemaRef;
use arrow::error::ArrowError;
use arrow::record_batch::RecordBatch;

use super::line_decoder::LineDecoder;
use super::lines::{too_long_message, LineChunk};
use super::plain_csv::PlainCsv;
use crate::nulls::NullColumns;
use crate::sql::FormatKind;
use crate::time::{EventTimeRule, LocalTimes};

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
    /// The event-time local pass over `batch`, where the decoder has a rule for it.
    pub(crate) times: Option<LocalTimes>,
}

/// Decodes rows of one format into batches of one schema. Each thread decodes with its
/// own (a clone), which keeps its arrow decoder from one chunk to the next.
///
/// With a projection only the columns a query reads are decoded; the others are all-NULL
/// columns of their type in the batches, which keep the source's schema. A CSV line must
/// still have every field, but a value in a column the query does not read is not parsed,
/// so it cannot make the line a bad row.
#[derive(Debug)]
pub(crate) struct RowDecoder {
    format: FormatKind,
    schema: SchemaRef,
    delimiter: u8,
    /// The columns decoded, ascending (`None`: all).
    projection: Option<Vec<usize>>,
    /// The decoder of the last chunk, flushed and ready for the next one.
    spare: Option<LineDecoder>,
    /// The fast decoder of quote-free CSV lines, where the columns decoded allow one.
    plain: Option<PlainCsv>,
    /// The all-NULL columns that stand in for those not decoded.
    nulls: NullColumns,
    /// The query's event time, whose local pass runs on every decoded chunk: on the
    /// decoder threads of a pipeline, off the query thread.
    event_time: Option<EventTimeRule>,
}

impl Clone for RowDecoder {
    /// The same settings, without the spare decoder (each thread builds its own).
    fn clone(&self) -> Self {
        let mut clone = Self::new(self.format, self.schema.clone(), self.delimiter);
        clone.projection = self.projection.clone();
        clone.plain = self.plain.clone();
        clone.event_time = self.event_time.clone();
        clone
    }
}

impl RowDecoder {
    pub(crate) fn new(format: FormatKind, schema: SchemaRef, delimiter: u8) -> Self {
        let plain = match format {
            FormatKind::Csv => PlainCsv::new(&schema, None, delimiter),
            FormatKind::Json => None,
        };
        Self {
            format,
            schema,
            delimiter,
            projection: None,
            spare: None,
            plain,
            nulls: NullColumns::default(),
            event_time: None,
        }
    }

    /// Runs `rule`'s local pass on every chunk decoded from now on.
    pub(crate) fn set_event_time(&mut self, rule: EventTimeRule) {
        self.event_time = Some(rule);
    }

    /// Decodes only the columns at `columns` (indices into the schema); the rest are
    /// NULL. All columns, or an empty list, decode everything.
    pub(crate) fn set_projection(&mut self, columns: &[usize]) {
        let mut columns: Vec<usize> = columns
            .iter()
            .copied()
            .filter(|&c| c < self.schema.fields().len())
            .collect();
        columns.sort_unstable();
        columns.dedup();
        self.projection =
            (!columns.is_empty() && columns.len() < self.schema.fields().len()).then_some(columns);
        self.spare = None;
        if self.format == FormatKind::Csv {
            self.plain = PlainCsv::new(&self.schema, self.projection.as_deref(), self.delimiter);
        }
    }

    /// The decoded columns back in the source's schema, NULL where not decoded.
    fn widen(&mut self, batch: RecordBatch) -> Result<RecordBatch, ArrowError> {
        if batch.num_rows() == 0 {
            return Ok(RecordBatch::new_empty(self.schema.clone()));
        }
        let Some(projection) = &self.projection else {
            return Ok(batch);
        };
        let rows = batch.num_rows();
        let mut decoded = batch.columns().iter();
        let columns = self
            .schema
            .fields()
            .iter()
            .enumerate()
            .map(|(i, field)| match projection.binary_search(&i) {
                Ok(_) => decoded.next().cloned().ok_or_else(|| {
                    ArrowError::SchemaError("decoded fewer columns than projected".into())
                }),
                Err(_) => Ok(self.nulls.get(i, field.data_type(), rows)),
            })
            .collect::<Result<Vec<_>, _>>()?;
        let options = arrow::record_batch::RecordBatchOptions::new().with_row_count(Some(rows));
        RecordBatch::try_new_with_options(self.schema.clone(), columns, &options)
    }

    /// Decodes every line of `chunk`. Every line must hold exactly one record: a line
    /// that holds two (a lone carriage return inside a CSV line, two JSON objects on one
    /// line) or only part of one (an unclosed quote or object) is a bad line, never a row
    /// silently lost or shifted. When a range of lines fails to decode it is split in
    /// halves until every bad line stands alone, so a chunk with one bad line costs about
    /// two decodes of the chunk, not one decoder per line; the good lines still come back,
    /// in order, with their indices.
    ///
    /// With an event-time rule, its local pass runs on the rows that decoded; a pass that
    /// fails (the column is not a time) is left to the query, which reports it.
    pub(crate) fn decode(&mut self, chunk: &LineChunk) -> Decoded {
        let (batch, kept, bad) = self.decode_rows(chunk);
        let times = self
            .event_time
            .as_ref()
            .and_then(|rule| rule.local(&batch).ok());
        Decoded {
            batch,
            kept,
            bad,
            times,
        }
    }

    /// The rows of `chunk` that decode, the index of each, and the bad lines.
    fn decode_rows(&mut self, chunk: &LineChunk) -> (RecordBatch, Vec<usize>, Vec<BadLine>) {
        if let Ok(Some(batch)) = self.decode_lines(chunk, 0..chunk.len()) {
            return (batch, (0..chunk.len()).collect(), Vec::new());
        }
        let mut good = Vec::new();
        let mut kept = Vec::new();
        let mut bad = Vec::new();
        // Ranges still to decode, the next one last; each failed range is split in two.
        let mut pending = vec![(0, chunk.len())];
        while let Some((start, end)) = pending.pop() {
            if end - start == 1 {
                match self.decode_one(chunk.line(start)) {
                    Ok(batch) => {
                        good.push(batch);
                        kept.push(start);
                    }
                    Err(message) => bad.push(BadLine {
                        index: start,
                        message: too_long_message(chunk.line(start)).unwrap_or(message),
                    }),
                }
                continue;
            }
            if (start, end) != (0, chunk.len()) {
                if let Ok(Some(batch)) = self.decode_lines(chunk, start..end) {
                    good.push(batch);
                    kept.extend(start..end);
                    continue;
                }
            }
            let middle = start + (end - start) / 2;
            pending.push((middle, end));
            pending.push((start, middle));
        }
        let batch = concat_batches(&self.schema, &good)
            .unwrap_or_else(|_| RecordBatch::new_empty(self.schema.clone()));
        (batch, kept, bad)
    }

    /// A fresh arrow decoder of this decoder's format, schema and projection, with room
    /// for `lines` lines.
    fn line_decoder(&self, lines: usize) -> Result<LineDecoder, ArrowError> {
        LineDecoder::new(
            self.format,
            &self.schema,
            self.delimiter,
            self.projection.as_deref(),
            lines,
        )
    }

    /// Decodes lines `lines` of the chunk with one decoder, fed line by line so that a line
    /// holding anything but one whole record is noticed, or, for CSV lines that cannot
    /// hold anything else (no quotes, no lone carriage returns), all at once.
    /// `Ok(None)`: some line is not one record.
    /// The decoder is the one of the previous chunk when it has room; it is kept for the
    /// next chunk only after a clean flush (a failed one may leave state behind).
    fn decode_lines(
        &mut self,
        chunk: &LineChunk,
        lines: std::ops::Range<usize>,
    ) -> Result<Option<RecordBatch>, ArrowError> {
        let text = chunk.lines(lines.clone());
        let one_record_per_line = self.format == FormatKind::Csv && one_csv_record_per_line(text);
        if let (true, Some(plain)) = (one_record_per_line, &self.plain) {
            if let Some(batch) = plain.decode(chunk, lines.clone()) {
                return Ok(Some(self.widen(batch)?));
            }
        }
        let mut decoder = match self.spare.take() {
            Some(spare) if spare.fits(lines.len()) => spare,
            _ => self.line_decoder(lines.len())?,
        };
        if one_record_per_line {
            // Every line is one record: the lines go to the decoder at once, and only the
            // count of records is checked.
            if decoder.feed(text)? != lines.len() {
                return Ok(None);
            }
        } else {
            for index in lines {
                if decoder.feed(chunk.line(index))? != 1 {
                    return Ok(None);
                }
            }
        }
        let batch = decoder.flush()?;
        self.spare = Some(decoder);
        Ok(Some(self.widen(batch)?))
    }

    /// What arrow-csv alone makes of `text` (whole lines): the batch, where every line
    /// decodes (the oracle of the fast decoder's tests).
    #[cfg(test)]
    pub(crate) fn decode_with_arrow(&mut self, text: &[u8]) -> Option<RecordBatch> {
        self.plain = None;
        let chunk = super::lines::LineReader::new(text, false)
            .next_chunk(usize::MAX)
            .ok()??;
        let decoded = self.decode(&chunk);
        decoded.bad.is_empty().then_some(decoded.batch)
    }

    /// Decodes one line that must hold exactly one record.
    fn decode_one(&mut self, line: &[u8]) -> Result<RecordBatch, String> {
        let mut decoder = self.line_decoder(1).map_err(|e| self.describe(&e))?;
        let records = decoder.feed(line).map_err(|e| self.describe(&e))?;
        if records != 1 {
            return Err(self.not_one_record(records));
        }
        decoder
            .flush()
            .and_then(|batch| self.widen(batch))
            .map_err(|e| self.describe(&e))
    }

    /// Why a line that is not exactly one record is bad.
    fn not_one_record(&self, records: usize) -> String {
        match (self.format, records) {
            (FormatKind::Csv, 0) => "the line ends inside a quoted field".into(),
            (FormatKind::Csv, _) => {
                "the line holds more than one record (a carriage return not followed by a newline ends a CSV record)".into()
            }
            (FormatKind::Json, 0) => "the line holds an incomplete JSON object".into(),
            (FormatKind::Json, _) => {
                "the line holds more than one JSON object (write one object per line)".into()
            }
        }
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

/// Whether CSV text of whole lines holds exactly one record per line, whatever its fields:
/// without a quote no record can span lines, and without a carriage return that does not
/// end a line (`\r\n`) no line can end a record early. Scanned with `memchr`, so the
/// check costs far less than decoding.
fn one_csv_record_per_line(text: &[u8]) -> bool {
    if memchr::memchr(b'"', text).is_some() {
        return false;
    }
    memchr::memchr_iter(b'\r', text).all(|at| text.get(at + 1) == Some(&b'\n'))
}

#[cfg(test)]
mod tests {
    use super::super::lines::LineReader;
    use super::*;
    use arrow::array::AsArray;
    use arrow::datatypes::{DataType, Field, Schema};
    use std::sync::Arc;

    fn chunk(text: &str) -> LineChunk {
        LineReader::new(text.as_bytes(), false)
            .next_chunk(10_000)
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
    fn only_quote_free_csv_without_lone_carriage_returns_is_one_record_per_line() {
        assert!(one_csv_record_per_line(b"1,a\n2,b\n"));
        assert!(one_csv_record_per_line(b"1,a\r\n2,b\r\n"));
        assert!(one_csv_record_per_line(b""));
        assert!(!one_csv_record_per_line(b"1,\"a\n2\",b\n"));
        assert!(!one_csv_record_per_line(b"1,a\r2,b\n"));
        assert!(!one_csv_record_per_line(b"1,a\r"));
    }

    #[test]
    fn quote_free_lines_with_a_bad_one_decode_at_once_and_the_bad_line_is_found() {
        let mut decoder = RowDecoder::new(FormatKind::Csv, schema(), b',');
        let text: String = (0..50)
            .map(|i| match i {
                17 => "17\n".to_string(),
                _ => format!("{i},x\n"),
            })
            .collect();
        let decoded = decoder.decode(&chunk(&text));
        assert_eq!(decoded.batch.num_rows(), 49);
        assert_eq!(decoded.bad.len(), 1);
        assert_eq!(decoded.bad[0].index, 17);
        let all: Vec<usize> = (0..50).filter(|&i| i != 17).collect();
        assert_eq!(decoded.kept, all);
        // A clean chunk after it decodes whole with the same decoder.
        let decoded = decoder.decode(&chunk("1,a\n2,b\n"));
        assert_eq!((decoded.batch.num_rows(), decoded.bad.len()), (2, 0));
    }

    #[test]
    fn csv_bad_lines_are_located() {
        let mut d = RowDecoder::new(FormatKind::Csv, schema(), b',');
        let Decoded {
            batch, kept, bad, ..
        } = d.decode(&chunk("1,x\nzz,y\n3\n4,w\n"));
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
    fn bad_lines_among_many_are_found_by_halving_and_the_rest_kept_in_order() {
        let mut d = RowDecoder::new(FormatKind::Csv, schema(), b',');
        let bad_at = [0, 3, 500, 501, 998, 999];
        let text: String = (0..1000)
            .map(|i| match bad_at.contains(&i) {
                true => format!("bad{i},x\n"),
                false => format!("{i},v{i}\n"),
            })
            .collect();
        let Decoded {
            batch, kept, bad, ..
        } = d.decode(&chunk(&text));
        let want: Vec<usize> = (0..1000).filter(|i| !bad_at.contains(i)).collect();
        assert_eq!(kept, want);
        assert_eq!(bad.iter().map(|b| b.index).collect::<Vec<_>>(), bad_at);
        let a = batch
            .column(0)
            .as_any()
            .downcast_ref::<arrow::array::Int64Array>()
            .unwrap();
        let values: Vec<usize> = a.values().iter().map(|&v| v as usize).collect();
        assert_eq!(values, want, "rows in input order");
    }

    #[test]
    fn csv_timestamps_decode_in_every_projection_and_a_bad_one_names_its_column() {
        use arrow::array::Array;
        use arrow::datatypes::{TimeUnit, TimestampMillisecondType, TimestampSecondType};
        let schema = Arc::new(Schema::new(vec![
            Field::new("ts", DataType::Timestamp(TimeUnit::Millisecond, None), true),
            Field::new("a", DataType::Int64, true),
            Field::new("day", DataType::Timestamp(TimeUnit::Second, None), true),
        ]));
        let text = "1970-01-01T00:00:01.5,1,1970-01-02\n,2,1970-01-01 00:01:00\n";
        for projection in [vec![], vec![0, 2], vec![2], vec![0, 1]] {
            let mut d = RowDecoder::new(FormatKind::Csv, schema.clone(), b',');
            d.set_projection(&projection);
            let Decoded { batch, bad, .. } = d.decode(&chunk(text));
            assert!(bad.is_empty(), "{bad:?}");
            assert_eq!(batch.schema(), schema, "projection {projection:?}");
            let reads = |c: usize| projection.is_empty() || projection.contains(&c);
            if reads(0) {
                let ts = batch.column(0).as_primitive::<TimestampMillisecondType>();
                assert_eq!(ts.value(0), 1_500);
                assert!(ts.is_null(1), "an empty field is NULL");
            }
            if reads(2) {
                let day = batch.column(2).as_primitive::<TimestampSecondType>();
                assert_eq!((day.value(0), day.value(1)), (86_400, 60));
            }
        }
        let mut d = RowDecoder::new(FormatKind::Csv, schema, b',');
        let Decoded {
            batch, kept, bad, ..
        } = d.decode(&chunk(
            "1970-01-01T00:00:01,1,1970-01-02\n1970-13-01T00:00:00,2,\n",
        ));
        assert_eq!((batch.num_rows(), kept), (1, vec![0]));
        assert_eq!(bad.len(), 1);
        assert_eq!(bad[0].index, 1);
        assert!(bad[0].message.contains("column 'ts'"), "{}", bad[0].message);
    }

    #[test]
    fn a_projection_decodes_only_its_columns_and_keeps_the_schema() {
        for (format, text) in [
            (FormatKind::Csv, "1,x\n2,y\n"),
            (
                FormatKind::Json,
                "{\"a\":1,\"b\":\"x\"}\n{\"a\":2,\"b\":\"y\"}\n",
            ),
        ] {
            let mut d = RowDecoder::new(format, schema(), b',');
            d.set_projection(&[0]);
            let Decoded { batch, bad, .. } = d.decode(&chunk(text));
            assert!(bad.is_empty());
            assert_eq!(batch.schema(), schema());
            assert_eq!(batch.column(0).null_count(), 0);
            assert_eq!(batch.column(1).null_count(), 2, "column b is not decoded");
        }
        // A value in a column the query does not read is not parsed; a missing field is
        // still a bad line.
        let mut d = RowDecoder::new(FormatKind::Csv, schema(), b',');
        d.set_projection(&[1]);
        let Decoded { batch, bad, .. } = d.decode(&chunk("zz,x\n1\n"));
        assert_eq!(batch.num_rows(), 1);
        assert_eq!(bad.len(), 1);
        assert_eq!(bad[0].index, 1);
    }

    #[test]
    fn the_placeholder_of_a_too_long_line_is_a_bad_row_for_every_decoder() {
        use crate::source::lines::TOO_LONG_LINE;
        let mut bytes = b"1,x\n".to_vec();
        bytes.extend_from_slice(TOO_LONG_LINE);
        bytes.extend_from_slice(b"2,y\n");
        let strings = Arc::new(Schema::new(vec![Field::new("s", DataType::Utf8, true)]));
        let two_strings = Arc::new(Schema::new(vec![
            Field::new("s", DataType::Utf8, true),
            Field::new("t", DataType::Utf8, true),
        ]));
        let json = b"{\"a\":1}\n"
            .iter()
            .chain(TOO_LONG_LINE)
            .chain(b"{\"a\":2}\n");
        let json: Vec<u8> = json.copied().collect();
        let single: Vec<u8> = b"x\n"
            .iter()
            .chain(TOO_LONG_LINE)
            .chain(b"y\n")
            .copied()
            .collect();
        let cases: Vec<(RowDecoder, &[u8])> = vec![
            (RowDecoder::new(FormatKind::Csv, schema(), b','), &bytes),
            (RowDecoder::new(FormatKind::Csv, strings, b','), &single),
            (
                {
                    let mut d = RowDecoder::new(FormatKind::Csv, two_strings, b',');
                    d.set_projection(&[1]);
                    d
                },
                &bytes,
            ),
            (RowDecoder::new(FormatKind::Json, schema(), b','), &json),
        ];
        for (i, (mut decoder, input)) in cases.into_iter().enumerate() {
            let chunk = LineReader::new(input, false)
                .next_chunk(10)
                .unwrap()
                .unwrap();
            let decoded = decoder.decode(&chunk);
            assert_eq!(decoded.kept, vec![0, 2], "case {i}");
            assert_eq!(decoded.bad.len(), 1, "case {i}");
            assert!(
                decoded.bad[0].message.contains("longer than 16 MiB"),
                "case {i}: {}",
                decoded.bad[0].message
            );
        }
    }

    #[test]
    fn json_lines_decode() {
        let mut d = RowDecoder::new(FormatKind::Json, schema(), b',');
        let decoded = d.decode(&chunk("{\"a\":1,\"b\":\"x\"}\n{\"a\":2}\n"));
        assert_eq!(decoded.batch.num_rows(), 2);
        assert!(decoded.bad.is_empty());
        let bad = d.decode(&chunk("{\"a\":1}\n{\"a\":\n")).bad;
        assert_eq!(bad[0].index, 1);
    }

    #[test]
    fn a_csv_line_with_two_records_is_a_bad_line_not_a_lost_row() {
        let mut d = RowDecoder::new(FormatKind::Csv, schema(), b',');
        let Decoded {
            batch, kept, bad, ..
        } = d.decode(&chunk("1,x\r2,y\n3,z\n4,w\n"));
        assert_eq!(kept, vec![1, 2]);
        assert_eq!(batch.num_rows(), 2);
        assert_eq!(bad.len(), 1);
        assert_eq!(bad[0].index, 0);
        assert!(
            bad[0].message.contains("more than one record"),
            "{}",
            bad[0].message
        );
    }

    #[test]
    fn crlf_line_endings_are_one_record_each() {
        let mut d = RowDecoder::new(FormatKind::Csv, schema(), b',');
        let decoded = d.decode(&chunk("1,x\r\n2,y\r\n3,z\r\n"));
        assert!(decoded.bad.is_empty(), "{:?}", decoded.bad);
        assert_eq!(decoded.batch.num_rows(), 3);
        let mut d = RowDecoder::new(FormatKind::Json, schema(), b',');
        let decoded = d.decode(&chunk("{\"a\":1}\r\n{\"a\":2}\r\n"));
        assert!(decoded.bad.is_empty(), "{:?}", decoded.bad);
        assert_eq!(decoded.batch.num_rows(), 2);
    }

    #[test]
    fn an_unclosed_quote_does_not_swallow_the_next_line() {
        // Line 0 holds two records and line 1 opens a quote that line 2 closes: the total
        // still equals the number of lines, yet no row may shift onto another line.
        let mut d = RowDecoder::new(FormatKind::Csv, schema(), b',');
        let Decoded { kept, bad, .. } = d.decode(&chunk("1,x\r2,y\n3,\"z\n\",4\n5,v\n"));
        assert_eq!(kept, vec![3]);
        let bad: Vec<usize> = bad.iter().map(|b| b.index).collect();
        assert_eq!(bad, vec![0, 1, 2]);
    }

    #[test]
    fn two_json_objects_on_one_line_are_a_bad_line() {
        let mut d = RowDecoder::new(FormatKind::Json, schema(), b',');
        let Decoded { kept, bad, .. } =
            d.decode(&chunk("{\"a\":1}{\"a\":2}\n{\"a\":3}\n{\"a\":\n"));
        assert_eq!(kept, vec![1]);
        assert_eq!(bad.len(), 2);
        assert!(
            bad[0].message.contains("more than one JSON object"),
            "{}",
            bad[0].message
        );
        assert!(bad[1].message.contains("incomplete"), "{}", bad[1].message);
    }
}

//! Tests of the file and stdin source: decoder threads against the calling thread, early
//! drops, a file read to its length at open, a header after many blank lines.

use super::*;
use crate::sql::{Connector, FormatKind};
use arrow::datatypes::{DataType, Field, Schema};
use std::sync::Arc;

fn def(on_error: OnError) -> SourceDef {
    SourceDef {
        name: "t".into(),
        schema: Arc::new(Schema::new(vec![
            Field::new("a", DataType::Int64, true),
            Field::new("b", DataType::Utf8, true),
        ])),
        watermark: None,
        options: crate::sql::SourceOptions {
            connector: Connector::Memory,
            format: FormatKind::Csv,
            header: None,
            delimiter: b',',
            on_error,
            batch_size: None,
        },
    }
}

/// A header, blank lines and, with `bad`, bad lines among 500 rows.
fn input(bad: bool) -> Vec<u8> {
    let mut text = String::from("a,b\n");
    for i in 0..500 {
        if i % 37 == 0 {
            text.push_str("\n  \n");
        }
        if bad && i % 97 == 50 {
            text.push_str("x,\"open\n");
        }
        text.push_str(&format!("{i},s{i}\n"));
    }
    text.push_str("\n\n");
    text.into_bytes()
}

/// Every batch (rows, lines), the position after it, and how the source ended.
type Trace = (Vec<(String, Vec<u64>, SourcePosition)>, String, u64);

fn trace(bytes: Vec<u8>, on_error: OnError, threads: usize, batch: usize) -> Trace {
    let mut source = LineSource::from_reader(
        &def(on_error),
        Box::new(std::io::Cursor::new(bytes)),
        "in".into(),
        false,
        batch,
    )
    .with_decode_threads(threads);
    let mut batches = Vec::new();
    let end = loop {
        match source.next_batch() {
            Ok(Some(b)) => batches.push((
                arrow::util::pretty::pretty_format_batches(&[b.batch])
                    .unwrap()
                    .to_string(),
                b.lines,
                source.position(),
            )),
            Ok(None) => break format!("end at {:?}", source.position()),
            Err(e) => break e.to_string(),
        }
    };
    (batches, end, source.bad_rows_skipped())
}

#[test]
fn decoder_threads_return_what_the_calling_thread_decodes() {
    for (bad, on_error) in [
        (false, OnError::Fail),
        (true, OnError::Skip),
        (true, OnError::Fail),
    ] {
        for batch in [1, 7, 64, 8192] {
            let inline = trace(input(bad), on_error, 0, batch);
            assert!(!inline.0.is_empty() || bad);
            for threads in [1, 2, 3] {
                let piped = trace(input(bad), on_error, threads, batch);
                assert!(
                    piped == inline,
                    "{threads} threads, batch {batch}, bad {bad}: {:?} vs {:?}",
                    piped.1,
                    inline.1
                );
            }
        }
    }
}

#[test]
fn a_source_dropped_early_stops_its_threads() {
    let mut source = LineSource::from_reader(
        &def(OnError::Fail),
        Box::new(std::io::Cursor::new(input(false).repeat(200))),
        "in".into(),
        false,
        10,
    )
    .with_decode_threads(2);
    let first = source.next_batch().unwrap().unwrap();
    // The header and 9 rows; the position is after them, not after what was read ahead.
    assert_eq!(first.lines, (4..=12).collect::<Vec<u64>>());
    assert_eq!(
        source.position(),
        SourcePosition::File {
            offset: 4 + 4 + 9 * 5,
            line: 12,
        }
    );
    // Joins the reader and both decoders (they stop at their next send).
    drop(source);
}

/// Every row of a file source at `threads` decoder threads, as numbers of column a.
fn rows_of(def: &SourceDef, threads: usize, append_after_open: &[u8]) -> Vec<i64> {
    use arrow::array::AsArray;
    let Connector::File(path) = &def.options.connector else {
        panic!("a file source");
    };
    let mut source = LineSource::open_file(def, path, 7, &SourcePosition::Start, None)
        .unwrap()
        .with_decode_threads(threads);
    if let Connector::File(path) = &def.options.connector {
        let mut file = std::fs::OpenOptions::new().append(true).open(path).unwrap();
        std::io::Write::write_all(&mut file, append_after_open).unwrap();
    }
    let mut rows = Vec::new();
    while let Some(batch) = source.next_batch().unwrap() {
        let column = batch
            .batch
            .column(0)
            .as_primitive::<arrow::datatypes::Int64Type>();
        rows.extend(column.iter().flatten());
    }
    rows
}

fn file_def(path: &std::path::Path) -> SourceDef {
    let mut def = def(OnError::Fail);
    def.options.connector = Connector::File(path.to_path_buf());
    def
}

#[test]
fn a_file_is_read_to_its_length_at_open_at_any_thread_count() {
    for threads in [0, 1, 2] {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("in.csv");
        std::fs::write(&path, "a,b\n1,x\n2,y\n").unwrap();
        let rows = rows_of(&file_def(&path), threads, b"3,z\n");
        assert_eq!(rows, vec![1, 2], "{threads} threads");
    }
}

#[test]
fn a_header_after_many_blank_lines_is_a_header_at_any_thread_count() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("in.csv");
    let mut text = "\n".repeat(70_000) + "  \n";
    text.push_str("a,b\n");
    for i in 0..50 {
        text.push_str(&format!("{i},s{i}\n"));
    }
    std::fs::write(&path, text).unwrap();
    for threads in [0, 1, 2] {
        let rows = rows_of(&file_def(&path), threads, b"");
        assert_eq!(rows, (0..50).collect::<Vec<i64>>(), "{threads} threads");
    }
}

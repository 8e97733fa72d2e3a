//! Cuts a byte stream into chunks of whole lines, remembering each line's number.

use std::io::{BufRead, BufReader, Read};

/// Up to `max_rows` non-blank lines and their 1-based line numbers.
#[derive(Debug, Default)]
pub(crate) struct LineChunk {
    /// The lines, each ending in `\n`.
    pub(crate) bytes: Vec<u8>,
    /// Byte offset where each line starts in `bytes`.
    pub(crate) starts: Vec<usize>,
    /// Line number of each line.
    pub(crate) numbers: Vec<u64>,
}

impl LineChunk {
    /// Number of lines.
    pub(crate) fn len(&self) -> usize {
        self.starts.len()
    }

    /// The bytes of line `i` (with its newline).
    pub(crate) fn line(&self, i: usize) -> &[u8] {
        let end = self.starts.get(i + 1).copied().unwrap_or(self.bytes.len());
        &self.bytes[self.starts[i]..end]
    }
}

/// Reads lines from `reader`, skipping blank ones.
pub(crate) struct LineReader<R> {
    reader: BufReader<R>,
    line_number: u64,
    /// Bytes consumed from the start of the input (blank lines included).
    consumed: u64,
    /// Return a partial chunk as soon as no more input is buffered (for live streams),
    /// rather than blocking until the chunk is full.
    eager: bool,
    done: bool,
}

impl<R: Read> LineReader<R> {
    pub(crate) fn new(reader: R, eager: bool) -> Self {
        Self {
            reader: BufReader::with_capacity(1 << 20, reader),
            line_number: 0,
            consumed: 0,
            eager,
            done: false,
        }
    }

    /// Says the input (already positioned there) starts `offset` bytes and `line_number`
    /// lines into the stream.
    pub(crate) fn start_at(&mut self, offset: u64, line_number: u64) {
        self.consumed = offset;
        self.line_number = line_number;
    }

    /// The byte offset and line number after the last line returned.
    pub(crate) fn position(&self) -> (u64, u64) {
        (self.consumed, self.line_number)
    }

    /// Whether the next read would have to wait for more input.
    pub(crate) fn nothing_buffered(&self) -> bool {
        self.reader.buffer().is_empty()
    }

    /// The next chunk of at most `max_rows` lines, or `None` at end of input.
    pub(crate) fn next_chunk(&mut self, max_rows: usize) -> std::io::Result<Option<LineChunk>> {
        let mut chunk = LineChunk::default();
        while !self.done && chunk.len() < max_rows {
            let start = chunk.bytes.len();
            let read = self.reader.read_until(b'\n', &mut chunk.bytes)?;
            if read == 0 {
                self.done = true;
                break;
            }
            self.consumed += read as u64;
            self.line_number += 1;
            if chunk.bytes[start..].iter().all(u8::is_ascii_whitespace) {
                chunk.bytes.truncate(start);
            } else {
                if chunk.bytes.last() != Some(&b'\n') {
                    chunk.bytes.push(b'\n');
                }
                chunk.starts.push(start);
                chunk.numbers.push(self.line_number);
            }
            if self.eager && chunk.len() > 0 && self.reader.buffer().is_empty() {
                break;
            }
        }
        Ok((chunk.len() > 0).then_some(chunk))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_lines_and_skips_blank_ones() {
        let input = b"a\n\n  \nb\nc".as_slice();
        let mut reader = LineReader::new(input, false);
        let chunk = reader.next_chunk(2).unwrap().unwrap();
        assert_eq!(chunk.numbers, vec![1, 4]);
        assert_eq!(chunk.line(1), b"b\n");
        let chunk = reader.next_chunk(2).unwrap().unwrap();
        assert_eq!(chunk.numbers, vec![5]);
        assert_eq!(chunk.line(0), b"c\n");
        assert!(reader.next_chunk(2).unwrap().is_none());
        assert_eq!(reader.position(), (input.len() as u64, 5));
    }

    #[test]
    fn a_resumed_reader_numbers_lines_from_where_it_starts() {
        let input = b"a\nb\nc\n".as_slice();
        let mut reader = LineReader::new(input, false);
        reader.next_chunk(1).unwrap().unwrap();
        let (offset, line) = reader.position();
        assert_eq!((offset, line), (2, 1));
        let mut resumed = LineReader::new(&input[offset as usize..], false);
        resumed.start_at(offset, line);
        let chunk = resumed.next_chunk(5).unwrap().unwrap();
        assert_eq!(chunk.numbers, vec![2, 3]);
        assert_eq!(resumed.position(), (6, 3));
    }
}

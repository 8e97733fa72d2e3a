//! Cuts a byte stream into chunks of whole lines, remembering each line's number.
//!
//! Memory stays bounded whatever the input: a chunk ends once it holds
//! [`MAX_CHUNK_BYTES`], and a line longer than [`MAX_LINE_BYTES`] (a binary piped by
//! mistake, a stream without newlines) is read past without being kept: the chunk holds
//! [`TOO_LONG_LINE`] in its place, which no decoder accepts, so the line is a bad row
//! named by its number (skipped and counted under `on_error = 'skip'`).

use std::io::{BufRead, BufReader, Read};

/// The longest line kept as a row, in bytes (its newline included).
pub(crate) const MAX_LINE_BYTES: usize = 16 << 20;

/// A chunk ends at the first line end after it holds this many bytes, whatever its number
/// of lines: the unit of decoding and of the write-ahead log stays small.
pub(crate) const MAX_CHUNK_BYTES: usize = 32 << 20;

/// What a chunk holds in place of a line longer than [`MAX_LINE_BYTES`]: bytes that are
/// not UTF-8, so that every decoder (CSV or JSON, any columns) refuses the line, and the
/// decoder names the real cause when it sees them ([`too_long_message`]).
pub(crate) const TOO_LONG_LINE: &[u8] = b"\xff\xfe laminar: line too long\n";

/// The bad-row message for a line the chunk replaced by [`TOO_LONG_LINE`], if `line` is
/// that placeholder.
pub(crate) fn too_long_message(line: &[u8]) -> Option<String> {
    (line == TOO_LONG_LINE).then(|| {
        format!(
            "the line is longer than {} MiB, the most one row may take (is the input a text file with one record per line?)",
            MAX_LINE_BYTES >> 20
        )
    })
}

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
        self.lines(i..i + 1)
    }

    /// The bytes of the lines `lines`, one after another (a chunk holds its lines back to
    /// back); empty for an empty range.
    pub(crate) fn lines(&self, lines: std::ops::Range<usize>) -> &[u8] {
        if lines.is_empty() {
            return &[];
        }
        let end = self
            .starts
            .get(lines.end)
            .copied()
            .unwrap_or(self.bytes.len());
        &self.bytes[self.starts[lines.start]..end]
    }
}

/// A buffered input whose buffered bytes can be seen without reading more.
pub(crate) trait Buffered: BufRead {
    /// The bytes read ahead and not consumed yet.
    fn buffered(&self) -> &[u8];
}

impl<R: Read> Buffered for BufReader<R> {
    fn buffered(&self) -> &[u8] {
        self.buffer()
    }
}

impl Buffered for &[u8] {
    fn buffered(&self) -> &[u8] {
        self
    }
}

/// Reads lines from `reader`, skipping blank ones.
pub(crate) struct LineReader<R> {
    reader: R,
    line_number: u64,
    /// Bytes consumed from the start of the input (blank lines included).
    consumed: u64,
    /// Return a partial chunk as soon as no more input is buffered (for live streams),
    /// rather than blocking until the chunk is full.
    eager: bool,
    done: bool,
    /// The bytes and lines of the last chunk: room reserved for the next, so that a chunk
    /// is not copied again each time its buffers double.
    last_chunk: (usize, usize),
}

impl<R: Buffered> LineReader<R> {
    /// Lines of `reader`; `eager`: a live stream (see [`next_chunk`](Self::next_chunk)).
    pub(crate) fn new(reader: R, eager: bool) -> Self {
        Self {
            reader,
            line_number: 0,
            consumed: 0,
            eager,
            done: false,
            last_chunk: (0, 0),
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
        self.reader.buffered().is_empty()
    }

    /// The next chunk of at most `max_rows` lines, or `None` at end of input.
    ///
    /// Works on the reader's buffer a block at a time: line ends are found with `memchr`
    /// and each run of non-blank lines is copied into the chunk at once; only a line that
    /// crosses the end of the buffer is read on its own.
    pub(crate) fn next_chunk(&mut self, max_rows: usize) -> std::io::Result<Option<LineChunk>> {
        let mut chunk = LineChunk::default();
        Ok(self.next_chunk_into(max_rows, &mut chunk)?.then_some(chunk))
    }

    /// [`next_chunk`](Self::next_chunk) into `chunk`, whose buffers are cleared and
    /// reused: a thread that decodes its chunks itself keeps one chunk's memory, already
    /// mapped and in its cache, instead of a fresh one a chunk. `false` (and `chunk`
    /// empty): the end of input.
    pub(crate) fn next_chunk_into(
        &mut self,
        max_rows: usize,
        chunk: &mut LineChunk,
    ) -> std::io::Result<bool> {
        let (bytes, lines) = self.last_chunk;
        chunk.bytes.clear();
        chunk.starts.clear();
        chunk.numbers.clear();
        chunk.bytes.reserve(bytes);
        chunk.starts.reserve(lines);
        chunk.numbers.reserve(lines);
        while !self.done && chunk.len() < max_rows {
            let block = self.reader.fill_buf()?;
            if block.is_empty() {
                self.done = true;
                break;
            }
            // Whole lines of the block, up to the chunk's limit.
            let mut used = 0;
            let mut run_start = 0;
            for newline in memchr::memchr_iter(b'\n', block) {
                let line = &block[used..=newline];
                self.line_number += 1;
                if is_blank(line) {
                    chunk.bytes.extend_from_slice(&block[run_start..used]);
                    run_start = newline + 1;
                } else {
                    chunk.starts.push(chunk.bytes.len() + (used - run_start));
                    chunk.numbers.push(self.line_number);
                }
                used = newline + 1;
                if chunk.len() == max_rows
                    || chunk.bytes.len() + (used - run_start) >= MAX_CHUNK_BYTES
                {
                    break;
                }
            }
            chunk.bytes.extend_from_slice(&block[run_start..used]);
            self.reader.consume(used);
            self.consumed += used as u64;
            if used == 0 {
                // A line longer than what is buffered: read it on its own.
                self.read_one_line(chunk)?;
            }
            if chunk.len() == max_rows || chunk.bytes.len() >= MAX_CHUNK_BYTES {
                break;
            }
            if self.eager && chunk.len() > 0 && self.reader.buffered().is_empty() {
                break;
            }
        }
        self.last_chunk = (chunk.bytes.len(), chunk.len());
        Ok(chunk.len() > 0)
    }

    /// Reads one line (through its newline, or to the end of input) into `chunk`,
    /// skipping it if blank, and holding [`TOO_LONG_LINE`] in its place if it is longer
    /// than [`MAX_LINE_BYTES`] (its bytes are read past a block at a time, never kept);
    /// at the end of input sets `done`.
    fn read_one_line(&mut self, chunk: &mut LineChunk) -> std::io::Result<()> {
        let start = chunk.bytes.len();
        let mut read = 0usize;
        let mut too_long = false;
        loop {
            let block = self.reader.fill_buf()?;
            if block.is_empty() {
                break;
            }
            let (take, ends) = match memchr::memchr(b'\n', block) {
                Some(i) => (i + 1, true),
                None => (block.len(), false),
            };
            if !too_long {
                if read + take > MAX_LINE_BYTES {
                    too_long = true;
                    chunk.bytes.truncate(start);
                } else {
                    chunk.bytes.extend_from_slice(&block[..take]);
                }
            }
            self.reader.consume(take);
            read += take;
            if ends {
                break;
            }
        }
        if read == 0 {
            self.done = true;
            return Ok(());
        }
        self.consumed += read as u64;
        self.line_number += 1;
        if too_long {
            chunk.starts.push(start);
            chunk.bytes.extend_from_slice(TOO_LONG_LINE);
            chunk.numbers.push(self.line_number);
        } else if is_blank(&chunk.bytes[start..]) {
            chunk.bytes.truncate(start);
        } else {
            if chunk.bytes.last() != Some(&b'\n') {
                chunk.bytes.push(b'\n');
            }
            chunk.starts.push(start);
            chunk.numbers.push(self.line_number);
        }
        Ok(())
    }
}

/// Whether a line holds nothing but whitespace (its newline included).
fn is_blank(line: &[u8]) -> bool {
    line.iter().all(u8::is_ascii_whitespace)
}

/// Up to 60 random lines: blank ones, `\r\n` endings, lines of up to 40 bytes, and
/// at times a last line without a newline.
#[cfg(test)]
pub(crate) fn random_lines(rng: &mut crate::gen::SplitMix64) -> Vec<u8> {
    let mut input = Vec::new();
    for _ in 0..rng.next_u64() % 60 {
        match rng.next_u64() % 6 {
            0 => input.extend_from_slice(b"\n"),
            1 => input.extend_from_slice(b"  \r\n"),
            2 => input.extend_from_slice(b"a,1\r\n"),
            _ => {
                let len = rng.next_u64() % 40;
                input.extend((0..len).map(|i| b'a' + (i % 26) as u8));
                input.push(b'\n');
            }
        }
    }
    if rng.next_u64().is_multiple_of(2) {
        input.extend_from_slice(b"tail-without-newline");
    }
    input
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

    /// The chunks of `input` as a plain line-by-line reading gives them.
    fn reference(input: &[u8], max_rows: usize) -> Vec<(Vec<u8>, Vec<usize>, Vec<u64>)> {
        let mut chunks = Vec::new();
        let mut current = LineChunk::default();
        for (i, line) in input.split_inclusive(|&b| b == b'\n').enumerate() {
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            current.starts.push(current.bytes.len());
            current.bytes.extend_from_slice(line);
            if !line.ends_with(b"\n") {
                current.bytes.push(b'\n');
            }
            current.numbers.push(i as u64 + 1);
            if current.len() == max_rows {
                let full = std::mem::take(&mut current);
                chunks.push((full.bytes, full.starts, full.numbers));
            }
        }
        if current.len() > 0 {
            chunks.push((current.bytes, current.starts, current.numbers));
        }
        chunks
    }

    /// A reader that hands out at most `step` bytes a read, so lines cross buffer ends.
    struct Trickle<'a>(&'a [u8], usize);

    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            let n = self.0.len().min(self.1).min(buf.len());
            buf[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Ok(n)
        }
    }

    #[test]
    fn block_cutting_matches_line_by_line_reading() {
        let mut rng = crate::gen::SplitMix64::new(7);
        for case in 0..200 {
            let input = random_lines(&mut rng);
            let max_rows = 1 + (rng.next_u64() % 7) as usize;
            let step = 1 + (rng.next_u64() % 50) as usize;
            let mut reader =
                LineReader::new(BufReader::with_capacity(16, Trickle(&input, step)), false);
            let mut got = Vec::new();
            while let Some(chunk) = reader.next_chunk(max_rows).unwrap() {
                got.push((chunk.bytes, chunk.starts, chunk.numbers));
            }
            assert_eq!(got, reference(&input, max_rows), "case {case}");
            assert_eq!(reader.position().0, input.len() as u64, "case {case}");
        }
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

    #[test]
    fn a_line_longer_than_the_limit_is_replaced_and_read_past_without_keeping_it() {
        let mut input = b"a,1\n".to_vec();
        input.extend(std::iter::repeat_n(b'x', MAX_LINE_BYTES + 10));
        input.extend_from_slice(b"\nb,2\n");
        input.extend(std::iter::repeat_n(b'y', MAX_LINE_BYTES + 1));
        let reader = BufReader::with_capacity(64 << 10, input.as_slice());
        let mut lines = LineReader::new(reader, false);
        let chunk = lines.next_chunk(100).unwrap().unwrap();
        assert_eq!(chunk.numbers, vec![1, 2, 3, 4]);
        assert_eq!(chunk.line(0), b"a,1\n");
        assert_eq!(chunk.line(1), TOO_LONG_LINE);
        assert_eq!(chunk.line(2), b"b,2\n");
        assert_eq!(chunk.line(3), TOO_LONG_LINE, "the last line has no newline");
        assert!(chunk.bytes.len() < 100, "{} bytes kept", chunk.bytes.len());
        assert!(lines.next_chunk(100).unwrap().is_none());
        assert_eq!(lines.position(), (input.len() as u64, 4));
        assert!(too_long_message(chunk.line(1)).is_some_and(|m| m.contains("16 MiB")));
        assert!(too_long_message(chunk.line(0)).is_none());
        // A line of exactly the limit is kept.
        let mut exact = std::iter::repeat_n(b'z', MAX_LINE_BYTES - 1).collect::<Vec<u8>>();
        exact.push(b'\n');
        let reader = BufReader::with_capacity(64 << 10, exact.as_slice());
        let chunk = LineReader::new(reader, false)
            .next_chunk(5)
            .unwrap()
            .unwrap();
        assert_eq!(chunk.line(0).len(), MAX_LINE_BYTES);
    }

    #[test]
    fn a_chunk_ends_at_its_byte_limit_whatever_its_row_limit() {
        let line = [b'q'; 1023]
            .iter()
            .copied()
            .chain([b'\n'])
            .collect::<Vec<u8>>();
        let input: Vec<u8> = line.repeat(MAX_CHUNK_BYTES / 1024 * 3);
        let reader = BufReader::with_capacity(1 << 20, input.as_slice());
        let mut lines = LineReader::new(reader, false);
        let mut total = 0;
        while let Some(chunk) = lines.next_chunk(usize::MAX).unwrap() {
            assert!(
                chunk.bytes.len() <= MAX_CHUNK_BYTES + (1 << 20),
                "{}",
                chunk.bytes.len()
            );
            total += chunk.len();
        }
        assert_eq!(total, MAX_CHUNK_BYTES / 1024 * 3);
    }
}

//! Byte ranges of a file, read and cut into lines by the decoder threads themselves, so a
//! file source's reading scales with its decoders instead of running on one thread.
//!
//! ```text
//!  file ─▶ [start, end) [end, …) …   nominal ranges (`range_bytes`), range n the n-th
//!  range ─▶ the lines that START in it (a line starts at 0 or right after a '\n'),
//!           the last one read on past `end` through its newline
//! ```
//! Every line is owned by exactly one range, so the ranges' lines, taken in range order,
//! are the file's lines in file order. Line numbers inside a range count from 1; whoever
//! takes the ranges in order adds the lines of every range before.

use std::fs::File;
use std::io::{BufReader, Read};
use std::os::unix::fs::FileExt;
use std::sync::Arc;

use super::header::Header;
use super::lines::{LineChunk, LineReader};
use crate::error::{Error, Result};

/// Bytes of the ranges for batches of `batch_size` rows: a few batches at a typical line
/// length, so the read and the alignment cost little, within 64 KiB – 1 MiB. A decoded
/// range waits whole for its turn (up to 16 of them over all decoders, see the pipeline's
/// `queued_ranges`), so the bound keeps that memory small, and small batches get small
/// ranges rather than thousands of batches in one.
pub(crate) fn range_bytes(batch_size: usize) -> u64 {
    (batch_size as u64)
        .saturating_mul(256)
        .clamp(64 << 10, 1 << 20)
}

/// How far past a range's end the last line is read at a time.
const EXTEND_BYTES: usize = 64 << 10;

/// One range of a file for a decoder to read.
#[derive(Debug)]
pub(crate) struct ByteRange {
    file: Arc<File>,
    origin: Arc<str>,
    /// Nominal bounds: the range owns the lines that start in `start..end`.
    start: u64,
    end: u64,
    /// The file's length when the source opened it.
    len: u64,
    /// The CSV header rule, for the first range read.
    header: Option<Header>,
}

/// Ranges at the end of a file that are [`TAPER`] times smaller than the rest. Decoders
/// take their ranges in turn and may run up to a pipeline's queue of them ahead of each
/// other (16 ranges over all decoders), so a decoder that got less CPU can have that many
/// still to decode when the others are done, with their CPUs idle. Small last ranges keep
/// that gap a few milliseconds: twice the queue of them.
const TAPERED_RANGES: u64 = 32;

/// How much smaller the [`TAPERED_RANGES`] are.
const TAPER: u64 = 8;

/// A file's ranges, from where the source starts reading: range `n` is the `n`-th
/// `range_bytes` from there, and the last [`TAPERED_RANGES`] (or a few more) are
/// smaller, so each decoder can find its own without asking anyone.
pub(crate) struct FileRanges {
    file: Arc<File>,
    origin: Arc<str>,
    /// Where range 0 starts.
    start: u64,
    len: u64,
    range_bytes: u64,
    /// Where the small ranges at the end start, and their size.
    taper_start: u64,
    taper_bytes: u64,
    /// The CSV header rule, for the first range (reading from the start of the file).
    header: Option<Header>,
}

impl FileRanges {
    /// Ranges of about `range_bytes` of `file`, from byte `offset` (a line start) to the
    /// file's current end. `header`: the first line may be a CSV header to cut.
    ///
    /// The header is looked for in the first range's first non-blank lines: a caller
    /// whose file may begin with many blank lines starts `offset` after them.
    #[cfg(test)]
    pub(crate) fn new(
        file: File,
        origin: &str,
        offset: u64,
        header: Option<Header>,
        range_bytes: u64,
    ) -> Result<Self> {
        let len = file
            .metadata()
            .map_err(|e| Error::io(format!("cannot read {origin}"), e))?
            .len();
        Ok(Self::up_to(file, origin, offset, header, range_bytes, len))
    }

    /// [`new`](Self::new), over the file's first `len` bytes only (its length when the
    /// source opened it: what is appended later is for the next run).
    pub(crate) fn up_to(
        file: File,
        origin: &str,
        offset: u64,
        header: Option<Header>,
        range_bytes: u64,
        len: u64,
    ) -> Self {
        let range_bytes = range_bytes.max(1);
        let taper_bytes = (range_bytes / TAPER).max(1);
        // Whole full-size ranges up to the last TAPERED_RANGES small ones (or a few more).
        let full = len
            .saturating_sub(offset)
            .saturating_sub(taper_bytes.saturating_mul(TAPERED_RANGES))
            / range_bytes;
        let taper_start = offset.saturating_add(full.saturating_mul(range_bytes));
        Self {
            file: Arc::new(file),
            origin: origin.into(),
            start: offset,
            len,
            range_bytes,
            taper_start,
            taper_bytes,
            header,
        }
    }

    /// How many full-size ranges there are, before the small ones.
    fn full_ranges(&self) -> u64 {
        (self.taper_start - self.start) / self.range_bytes
    }

    /// How many ranges there are.
    pub(crate) fn count(&self) -> u64 {
        let small = self
            .len
            .saturating_sub(self.taper_start)
            .div_ceil(self.taper_bytes);
        self.full_ranges() + small
    }

    /// Range `n`, or `None` past the last one ([`count`](Self::count)).
    pub(crate) fn range(&self, n: u64) -> Option<ByteRange> {
        let full = self.full_ranges();
        let (start, end) = if n < full {
            let start = self.start + n * self.range_bytes;
            (start, start + self.range_bytes)
        } else {
            let start = (n - full)
                .checked_mul(self.taper_bytes)
                .and_then(|offset| offset.checked_add(self.taper_start))
                .filter(|&start| start < self.len)?;
            (start, start.saturating_add(self.taper_bytes).min(self.len))
        };
        Some(ByteRange {
            file: Arc::clone(&self.file),
            origin: Arc::clone(&self.origin),
            start,
            end,
            len: self.len,
            header: if n == 0 { self.header.clone() } else { None },
        })
    }
}

impl ByteRange {
    /// The lines this range owns, as a reader numbering them from 1 whose positions are
    /// byte offsets in the file; `None` when no line starts in the range.
    ///
    /// The range is read a block of [`BLOCK_BYTES`] at a time, not whole: a block stays in
    /// the decoder core's cache between the read that fills it and the cut that copies
    /// its lines out, where a whole range (up to a megabyte) would have been evicted by
    /// the time it is cut.
    pub(crate) fn lines(&self) -> Result<Option<RangeLines>> {
        let context = || format!("cannot read {}", self.origin);
        let mut read = RangeRead {
            file: Arc::clone(&self.file),
            at: self.start.saturating_sub(1),
            end: self.end,
            len: self.len,
            done: false,
        };
        let offset = if self.start == 0 {
            0
        } else {
            // A line starts at p in start..end when byte p - 1 is a newline: look for the
            // first newline in (start - 1)..(end - 1).
            match read
                .skip_to_line_start(self.end - 1)
                .map_err(|e| Error::io(context(), e))?
            {
                Some(offset) => offset,
                None => return Ok(None),
            }
        };
        let mut reader = LineReader::new(BufReader::with_capacity(BLOCK_BYTES, read), false);
        reader.start_at(offset, 0);
        Ok(Some(RangeLines {
            reader,
            header: self.header.clone(),
            origin: Arc::clone(&self.origin),
        }))
    }
}

/// Bytes read from the file at a time.
const BLOCK_BYTES: usize = 64 << 10;

/// The bytes a range owns, read a block at a time: from a line start through `end`, and
/// on past `end` through the newline of the last line that starts before it (or to the
/// file's length as the source opened it).
struct RangeRead {
    file: Arc<File>,
    /// The next byte to read.
    at: u64,
    end: u64,
    len: u64,
    /// The last owned line's newline is read.
    done: bool,
}

impl RangeRead {
    /// Skips to just past the first newline before `limit`; that offset, or `None` (and
    /// the reader spent) when there is none.
    fn skip_to_line_start(&mut self, limit: u64) -> std::io::Result<Option<u64>> {
        // Lines are short: a small block finds the newline without reading ahead much.
        let mut block = [0; 4096];
        while self.at < limit {
            let take = block.len().min((limit - self.at) as usize);
            let read = self.read_at_least_one(&mut block[..take])?;
            if let Some(i) = memchr::memchr(b'\n', &block[..read]) {
                self.at += i as u64 + 1;
                return Ok(Some(self.at));
            }
            self.at += read as u64;
        }
        self.done = true;
        Ok(None)
    }

    /// Reads from `at` into `buf` (not empty); a file that ends before the length it had
    /// when it was opened is an error (it was cut short while being read).
    fn read_at_least_one(&self, buf: &mut [u8]) -> std::io::Result<usize> {
        loop {
            match self.file.read_at(buf, self.at) {
                Ok(0) => return Err(std::io::ErrorKind::UnexpectedEof.into()),
                Ok(read) => return Ok(read),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
    }
}

impl Read for RangeRead {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.done || self.at >= self.len || buf.is_empty() {
            return Ok(0);
        }
        if self.at < self.end {
            let take = buf.len().min((self.end - self.at) as usize);
            let read = self.read_at_least_one(&mut buf[..take])?;
            self.at += read as u64;
            // A range that ends right after a newline owns no line past its end.
            if self.at == self.end && buf[read - 1] == b'\n' {
                self.done = true;
            }
            return Ok(read);
        }
        // Past the end: through the next newline, which ends the last owned line.
        let take = buf
            .len()
            .min(EXTEND_BYTES)
            .min((self.len - self.at) as usize);
        let mut read = self.read_at_least_one(&mut buf[..take])?;
        if let Some(i) = memchr::memchr(b'\n', &buf[..read]) {
            read = i + 1;
            self.done = true;
        }
        self.at += read as u64;
        Ok(read)
    }
}

/// The lines of one range, cut into chunks.
pub(crate) struct RangeLines {
    reader: LineReader<BufReader<RangeRead>>,
    /// The header rule while the first chunk of the file is still to come.
    header: Option<Header>,
    origin: Arc<str>,
}

impl RangeLines {
    /// Fills `chunk` (its buffers cleared and reused) with the next at most `max_rows`
    /// lines, a CSV header cut from the file's first one; `false` when the range is done.
    pub(crate) fn next_chunk_into(
        &mut self,
        max_rows: usize,
        chunk: &mut LineChunk,
    ) -> Result<bool> {
        loop {
            if !self
                .reader
                .next_chunk_into(max_rows, chunk)
                .map_err(|e| Error::io(format!("cannot read {}", self.origin), e))?
            {
                return Ok(false);
            }
            if let Some(header) = self.header.take() {
                if !header.strip(chunk)? {
                    continue;
                }
            }
            return Ok(true);
        }
    }

    /// The byte offset in the file and the count of lines (blank ones included) after
    /// the last chunk returned.
    pub(crate) fn position(&self) -> (u64, u64) {
        self.reader.position()
    }
}

#[cfg(test)]
mod tests {
    use super::super::lines::random_lines;
    use super::*;
    use crate::gen::SplitMix64;
    use std::io::Write;

    /// The bytes of a chunk and the line number of each of its lines.
    type Numbered = (Vec<u8>, Vec<u64>);

    /// Every chunk of `input` read through ranges of `range_bytes`, numbered as a reader
    /// taking the ranges in order numbers them, and the position after the last range.
    fn by_ranges(
        input: &[u8],
        offset: u64,
        range_bytes: u64,
        max_rows: usize,
    ) -> (Vec<Numbered>, (u64, u64)) {
        let mut file = tempfile::tempfile().unwrap();
        file.write_all(input).unwrap();
        let ranges = FileRanges::new(file, "t.csv", offset, None, range_bytes).unwrap();
        let mut chunks = Vec::new();
        let mut position = (offset, 0);
        // One chunk for every range, as a decoder thread cuts them.
        let mut chunk = LineChunk::default();
        for n in 0..ranges.count() {
            let Some(mut lines) = ranges.range(n).unwrap().lines().unwrap() else {
                continue;
            };
            let before = position.1;
            while lines.next_chunk_into(max_rows, &mut chunk).unwrap() {
                let numbers = chunk.numbers.iter().map(|n| n + before).collect();
                chunks.push((chunk.bytes.clone(), numbers));
            }
            let (end, lines) = lines.position();
            position = (end, before + lines);
        }
        (chunks, position)
    }

    /// The lines of `input` from `offset`, one by one, with their numbers from there.
    fn by_lines(input: &[u8], offset: u64) -> Vec<(Vec<u8>, u64)> {
        let mut reader = LineReader::new(&input[offset as usize..], false);
        let mut lines = Vec::new();
        while let Some(chunk) = reader.next_chunk(1).unwrap() {
            lines.push((chunk.line(0).to_vec(), chunk.numbers[0]));
        }
        lines
    }

    #[test]
    fn ranges_hold_every_line_once_in_file_order() {
        let mut rng = SplitMix64::new(11);
        for case in 0..300 {
            let input = random_lines(&mut rng);
            let range_bytes = 1 + rng.next_u64() % 40;
            let max_rows = 1 + (rng.next_u64() % 5) as usize;
            let (chunks, end) = by_ranges(&input, 0, range_bytes, max_rows);
            let mut got = Vec::new();
            for (bytes, numbers) in &chunks {
                assert!(numbers.len() <= max_rows, "case {case}");
                for (line, number) in bytes.split_inclusive(|&b| b == b'\n').zip(numbers) {
                    got.push((line.to_vec(), *number));
                }
            }
            let want = by_lines(&input, 0);
            assert_eq!(got, want, "case {case}: {range_bytes}-byte ranges");
            let lines = input.split_inclusive(|&b| b == b'\n').count() as u64;
            assert_eq!(end, (input.len() as u64, lines), "case {case}");
        }
    }

    #[test]
    fn ranges_tile_the_file_and_the_last_ones_are_small() {
        for (len, offset, range_bytes) in [(10_000, 0, 100), (10_000, 7, 100), (300, 0, 100)] {
            let mut file = tempfile::tempfile().unwrap();
            file.write_all(&vec![b'\n'; len]).unwrap();
            let ranges = FileRanges::new(file, "t.csv", offset, None, range_bytes).unwrap();
            let bounds: Vec<(u64, u64)> = (0..ranges.count())
                .map(|n| ranges.range(n).map(|r| (r.start, r.end)).unwrap())
                .collect();
            assert!(ranges.range(ranges.count()).is_none());
            assert_eq!(bounds.first().map(|b| b.0), Some(offset));
            assert_eq!(bounds.last().map(|b| b.1), Some(len as u64));
            assert!(bounds
                .windows(2)
                .all(|w| w[0].1 == w[1].0 && w[0].0 < w[0].1));
            let small = bounds
                .iter()
                .filter(|(s, e)| e - s <= range_bytes / TAPER)
                .count();
            let full = bounds.len() - small;
            assert!(bounds[..full].iter().all(|(s, e)| e - s == range_bytes));
            let tapered = TAPERED_RANGES as usize;
            assert!((tapered.min(bounds.len())..=tapered + TAPER as usize).contains(&small));
        }
    }

    #[test]
    fn ranges_start_at_a_resumed_offset() {
        let input = b"a\nbb\n\nccc\ndddd\n";
        // Resuming after "a\nbb\n" (two lines): numbers count on from the caller's base.
        let (chunks, end) = by_ranges(input, 5, 3, 10);
        let lines: Vec<&[u8]> = chunks.iter().map(|(b, _)| b.as_slice()).collect();
        assert_eq!(lines, [b"ccc\n".as_slice(), b"dddd\n".as_slice()]);
        assert_eq!(chunks[0].1, vec![2]);
        assert_eq!(end, (input.len() as u64, 3));
    }

    #[test]
    fn a_line_longer_than_a_range_is_read_whole_by_the_range_it_starts_in() {
        let long = "x".repeat(200_000);
        let input = format!("{long}\nshort\n{long}");
        let (chunks, end) = by_ranges(input.as_bytes(), 0, 1000, 10);
        let total: usize = chunks.iter().map(|(b, _)| b.len()).sum();
        assert_eq!(total, input.len() + 1, "the tail gets its newline");
        let numbers: Vec<u64> = chunks.iter().flat_map(|(_, n)| n.clone()).collect();
        assert_eq!(numbers, [1, 2, 3]);
        assert_eq!(end, (input.len() as u64, 3));
    }

    #[test]
    fn a_file_cut_short_while_read_is_an_error() {
        let mut file = tempfile::tempfile().unwrap();
        file.write_all(b"a\nb\nc\n").unwrap();
        let ranges = FileRanges::new(file.try_clone().unwrap(), "t.csv", 0, None, 100).unwrap();
        file.set_len(2).unwrap();
        let range = ranges.range(0).unwrap();
        // The range is read as it is cut: the error comes with the first chunk.
        let err = match range.lines() {
            Ok(Some(mut lines)) => lines
                .next_chunk_into(10, &mut LineChunk::default())
                .err()
                .unwrap(),
            Ok(None) => panic!("the range starts at a line"),
            Err(err) => err,
        };
        assert!(err.to_string().contains("t.csv"), "{err}");
    }
}

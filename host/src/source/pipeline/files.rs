//! A file's pipeline: decoder threads that read, cut and decode the file's byte ranges
//! themselves, with no feeding thread. Each claims the next range when it is free (see
//! [`RangeClaims`]), and the decoder that claims the one after the last reports the end.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::AtomicUsize;
use std::sync::mpsc::{sync_channel, SyncSender};
use std::sync::Arc;

use super::claims::RangeClaims;
use super::{panicked, spawn_decoder, Piece, Pipeline, Position, Step, QUEUED_PER_DECODER};
use crate::error::Result;
use crate::source::decode::RowDecoder;
use crate::source::lines::LineChunk;
use crate::source::ranges::{ByteRange, FileRanges};

/// Decoded ranges all decoders together hold ready for the caller (at least
/// [`QUEUED_PER_DECODER`] each).
const QUEUED_RANGES: usize = 16;

impl Pipeline {
    /// Starts `decoders` (at least one) threads that read, cut and decode the ranges of a
    /// file themselves, with no feeding thread: each claims the next range when it is
    /// free, and the one that claims the range after the last reports the end. The input
    /// starts at `start`.
    pub(crate) fn spawn_ranges(
        ranges: FileRanges,
        decoder: &RowDecoder,
        decoders: usize,
        batch_size: usize,
        start: Position,
    ) -> Result<Self> {
        let decoders = decoders.max(1);
        let claims = Arc::new(RangeClaims::new(ranges.count()));
        let ranges = Arc::new(ranges);
        let mut outputs = Vec::with_capacity(decoders);
        let mut threads = Vec::with_capacity(decoders);
        for index in 0..decoders {
            let (step_tx, step_rx) = sync_channel::<Result<Step>>(queued_ranges(decoders));
            let (mut decoder, ranges) = (decoder.clone(), Arc::clone(&ranges));
            let claims = Arc::clone(&claims);
            let thread = spawn_decoder(index, move || {
                let claim = || claims.claim(index);
                range_loop(&mut decoder, &ranges, claim, batch_size, &step_tx)
            })?;
            outputs.push(step_rx);
            threads.push(thread);
        }
        let none = || Arc::new(AtomicUsize::new(0));
        let mut pipeline = Self::taking(outputs, threads, start, true, none(), none());
        pipeline.claims = Some(claims);
        Ok(pipeline)
    }
}

/// Decoded ranges each of `decoders` decoders may hold ready before it waits: a share of
/// [`QUEUED_RANGES`]. The caller takes them strictly in file order while the decoders run
/// at their own pace (a range decodes faster or slower, a decoder shares its CPU now and
/// then), so the slack lets a decoder that is ahead keep decoding instead of leaving its
/// CPU idle; with few decoders each gets more of it, and the memory stays the same at
/// any count.
fn queued_ranges(decoders: usize) -> usize {
    (QUEUED_RANGES / decoders.max(1)).max(QUEUED_PER_DECODER)
}

/// A decoder thread of a file: reads, cuts and decodes the ranges of `ranges` it claims
/// (ascending), sending each whole on `steps`; reports the end if it claims the range
/// after the last, and stops when nothing is left to claim.
fn range_loop(
    decoder: &mut RowDecoder,
    ranges: &FileRanges,
    claim: impl Fn() -> Option<u64>,
    batch_size: usize,
    steps: &SyncSender<Result<Step>>,
) {
    // The chunk every range is cut into, one after another: its memory stays this
    // thread's, mapped and warm, rather than a fresh buffer each chunk.
    let mut chunk = LineChunk::default();
    let count = ranges.count();
    while let Some(n) = claim() {
        let step = match ranges.range(n) {
            Some(range) => match catch_unwind(AssertUnwindSafe(|| {
                decode_range(decoder, &range, batch_size, &mut chunk)
            })) {
                Ok(step) => Ok(step),
                Err(panic) => Err(panicked("decoder", panic.as_ref())),
            },
            None if n == count => Ok(Step::End(None)),
            None => return,
        };
        let last = !matches!(step, Ok(Step::Range { .. }));
        if steps.send(step).is_err() || last {
            return;
        }
    }
}

/// Reads, cuts (into `chunk`, one chunk after another) and decodes one range into
/// chunks of `batch_size` lines.
fn decode_range(
    decoder: &mut RowDecoder,
    range: &ByteRange,
    batch_size: usize,
    chunk: &mut LineChunk,
) -> Step {
    let mut pieces = Vec::new();
    let failure = match range.lines() {
        Ok(None) => None,
        Ok(Some(mut lines)) => loop {
            match lines.next_chunk_into(batch_size, chunk) {
                Ok(true) => {
                    let decoded = decoder.decode(chunk);
                    pieces.push(Piece {
                        numbers: std::mem::take(&mut chunk.numbers),
                        decoded,
                        end: lines.position(),
                    });
                }
                Ok(false) => {
                    return Step::Range {
                        pieces,
                        end: Some(lines.position()),
                        failure: None,
                    }
                }
                Err(e) => break Some(e),
            }
        },
        Err(e) => Some(e),
    };
    Step::Range {
        pieces,
        end: None,
        failure,
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{decoder, values};
    use super::*;
    use crate::source::pipeline::PipelineEnd;

    #[test]
    fn file_ranges_come_back_in_file_order_with_their_line_numbers() {
        use std::io::Write;
        // Blank lines and a resumed start: numbers are the file's line numbers.
        let text: String = (0..3000)
            .map(|i| {
                if i % 7 == 3 {
                    "\n".to_string()
                } else {
                    format!("{i}\n")
                }
            })
            .collect();
        let mut file = tempfile::NamedTempFile::new().unwrap();
        file.write_all(text.as_bytes()).unwrap();
        let skip = "0\n1\n2\n\n";
        for threads in [1, 2, 3] {
            for (range_bytes, rows) in [(1, 1), (10, 3), (100, 8192), (1 << 20, 64)] {
                let ranges = FileRanges::new(
                    file.reopen().unwrap(),
                    "t",
                    skip.len() as u64,
                    None,
                    range_bytes,
                )
                .unwrap();
                let start = (skip.len() as u64, 4);
                let mut pipeline =
                    Pipeline::spawn_ranges(ranges, &decoder(), threads, rows, start).unwrap();
                let (mut seen, mut lines) = (Vec::new(), Vec::new());
                let end = loop {
                    match pipeline.next() {
                        Ok(piece) => {
                            assert!(piece.numbers.len() <= rows);
                            // Blank lines after the last row are behind the position too.
                            assert!(piece.end.1 >= *piece.numbers.last().unwrap());
                            seen.extend(values(&piece));
                            lines.extend(piece.numbers);
                        }
                        Err(PipelineEnd::End(position)) => break position,
                        Err(_) => panic!("the pipeline failed"),
                    }
                };
                let kept: Vec<i64> = (4..3000).filter(|i| i % 7 != 3).collect();
                let numbers: Vec<u64> = kept.iter().map(|&i| i as u64 + 1).collect();
                assert_eq!(seen, kept, "{threads} threads, {range_bytes}-byte ranges");
                assert_eq!(lines, numbers);
                assert_eq!(end, (text.len() as u64, 3000));
            }
        }
    }
}

//! Which decoder took which range of a file. Decoders claim a file's ranges one at a time,
//! in file order, as they become free, so a decoder that shares its CPU with the query
//! thread decodes fewer ranges and one with a CPU of its own more (with a fixed
//! round-robin, the first had to keep pace with the second, whose CPU idled while its
//! queue was full). Each decoder claims ascending ranges and sends each whole, in order,
//! on its own output, so the caller, which knows the owner of every claimed range, takes
//! range `n` from its owner's output without any reordering buffer.

use std::collections::VecDeque;
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

/// How long the caller waits for a claim before it checks whether the decoders are alive.
const CHECK_EVERY: Duration = Duration::from_millis(100);

/// The claims on one file's ranges `0..=count` (range `count` stands for the end, which
/// its claimer reports).
#[derive(Debug)]
pub(super) struct RangeClaims {
    book: Mutex<ClaimBook>,
    claimed: Condvar,
    count: u64,
}

/// Claimed ranges not yet taken, and the next range to claim.
#[derive(Debug, Default)]
struct ClaimBook {
    next: u64,
    /// The decoder of each range claimed and not yet taken, in range order.
    owners: VecDeque<usize>,
}

impl RangeClaims {
    /// Claims on the ranges of a file of `count` ranges.
    pub(super) fn new(count: u64) -> Self {
        Self {
            book: Mutex::new(ClaimBook::default()),
            claimed: Condvar::new(),
            count,
        }
    }

    /// Decoder `decoder` claims the next range: its number, or `None` once every range and
    /// the end are claimed.
    pub(super) fn claim(&self, decoder: usize) -> Option<u64> {
        let mut book = self.book();
        let n = book.next;
        if n > self.count {
            return None;
        }
        book.next += 1;
        book.owners.push_back(decoder);
        drop(book);
        self.claimed.notify_one();
        Some(n)
    }

    /// The decoder that claimed the next range to take, waiting for its claim;
    /// `None` if `alive` says no decoder can claim it any more.
    pub(super) fn owner_of_next(&self, alive: impl Fn() -> bool) -> Option<usize> {
        let mut book = self.book();
        loop {
            if let Some(owner) = book.owners.pop_front() {
                return Some(owner);
            }
            if !alive() {
                return None;
            }
            book = self
                .claimed
                .wait_timeout(book, CHECK_EVERY)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }

    fn book(&self) -> MutexGuard<'_, ClaimBook> {
        self.book.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_are_claimed_in_order_and_taken_from_their_claimers() {
        let claims = RangeClaims::new(2);
        assert_eq!(claims.claim(1), Some(0));
        assert_eq!(claims.claim(0), Some(1));
        assert_eq!(claims.claim(1), Some(2), "the end is claimed like a range");
        assert_eq!(claims.claim(0), None);
        let owners: Vec<_> = (0..3).map(|_| claims.owner_of_next(|| true)).collect();
        assert_eq!(owners, vec![Some(1), Some(0), Some(1)]);
        assert_eq!(claims.owner_of_next(|| false), None);
    }
}

//! Waiting for a core's answer that is due within microseconds: a short spin on the
//! channel before sleeping on it.
//!
//! ```text
//!  settle: try_recv ─ empty ─▶ spin (≤ SPIN) ─ still empty ─▶ recv (sleep until woken)
//! ```
//! On a live stream the query thread waits for every core's answer after each batch, and
//! the cores answer within microseconds of the watermark. Sleeping on the channel puts a
//! wake-up (a futex, and on a VM often an idle vCPU's exit) between the answer and the
//! window's rows reaching the sink, and those wake-ups made the tail of the emission
//! latency. The spin is bounded, and only taken where an answer is known to be coming.

use std::sync::mpsc::{Receiver, RecvError, TryRecvError};
use std::time::{Duration, Instant};

/// How long to spin for an answer before sleeping.
const SPIN: Duration = Duration::from_micros(100);

/// The next message on `channel`, which a core is about to send: polled for up to
/// [`SPIN`], then waited for.
pub(crate) fn recv_soon<T>(channel: &Receiver<T>) -> Result<T, RecvError> {
    let started = Instant::now();
    loop {
        match channel.try_recv() {
            Ok(message) => return Ok(message),
            Err(TryRecvError::Disconnected) => return Err(RecvError),
            Err(TryRecvError::Empty) if started.elapsed() < SPIN => std::hint::spin_loop(),
            Err(TryRecvError::Empty) => return channel.recv(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc::channel;

    #[test]
    fn a_message_sent_before_or_after_the_spin_is_received_and_a_closed_channel_is_an_error() {
        let (tx, rx) = channel();
        tx.send(1).unwrap();
        assert_eq!(recv_soon(&rx), Ok(1));
        let late = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(20));
            tx.send(2).unwrap();
        });
        assert_eq!(recv_soon(&rx), Ok(2), "sent after the spin ended");
        late.join().unwrap();
        assert_eq!(recv_soon(&rx), Err(RecvError), "every sender is gone");
    }
}

//! Ctrl-C and SIGTERM for `laminar run`: the first SIGINT or SIGTERM asks the run to stop
//! ([`StopSignal`]), which it sees between batches; a second one exits at once (status
//! 128 + the signal's number), after removing the temporary files of file sinks not yet
//! committed, so that no `.NAME.laminar-<pid>-<n>.tmp` is ever left behind. Stdin is read
//! through [`stdin_until`], which gives up once a stop is asked, so a run waiting for input
//! on the query thread stops too. This module only turns signals into the stop request;
//! what a stopped run does is the engine's (see [`StopSignal`]). With `--reload-plugins`,
//! SIGHUP asks for a plugin reload check ([`reload_on_sighup`]).

use std::io::Read;
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::Arc;

use crate::engine::{ReloadSignal, StdinReader, StopSignal};
use crate::error::Result;

/// The signals received by this process, once [`install`]ed.
#[derive(Debug, Clone, Default)]
pub(super) struct Interrupts {
    /// The first signal received (0: none).
    first: Arc<AtomicI32>,
}

impl Interrupts {
    /// The first stop signal received, if any.
    pub(super) fn received(&self) -> Option<i32> {
        match self.first.load(Ordering::SeqCst) {
            0 => None,
            signal => Some(signal),
        }
    }
}

/// The exit status of a run stopped by `signal`: 128 + its number, as a shell reports a
/// process the signal ended (130 for SIGINT, 143 for SIGTERM).
pub(super) fn exit_status(signal: i32) -> u8 {
    u8::try_from(128 + signal).unwrap_or(u8::MAX)
}

/// A signal's name, for messages.
pub(super) fn name(signal: i32) -> &'static str {
    #[cfg(unix)]
    {
        use signal_hook::consts::{SIGINT, SIGTERM};
        match signal {
            SIGINT => "SIGINT (Ctrl-C)",
            SIGTERM => "SIGTERM",
            _ => "a signal",
        }
    }
    #[cfg(not(unix))]
    {
        let _ = signal;
        "a signal"
    }
}

/// Sets `stop` on the first SIGINT or SIGTERM; exits at once on the second. A thread
/// waits for the signals (nothing runs inside the signal handler but a write to a pipe).
#[cfg(unix)]
pub(super) fn install(stop: &StopSignal) -> Result<Interrupts> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    use signal_hook::iterator::Signals;

    let mut signals = Signals::new([SIGINT, SIGTERM])
        .map_err(|e| crate::error::Error::io("cannot handle SIGINT and SIGTERM", e))?;
    let interrupts = Interrupts::default();
    let first = Arc::clone(&interrupts.first);
    let stop = stop.clone();
    std::thread::Builder::new()
        .name("laminar-signals".into())
        .spawn(move || {
            for signal in signals.forever() {
                if first
                    .compare_exchange(0, signal, Ordering::SeqCst, Ordering::SeqCst)
                    .is_ok()
                {
                    eprintln!(
                        "laminar: {}: stopping after the current batch (again to exit at once)",
                        name(signal)
                    );
                    stop.stop();
                    continue;
                }
                crate::sink::remove_temporary_files();
                eprintln!(
                    "laminar: {} again: exiting at once, without a summary; no temporary sink file is left (a durable run resumes from its last checkpoint)",
                    name(signal)
                );
                std::process::exit(i32::from(exit_status(signal)));
            }
        })
        .map_err(|e| crate::error::Error::io("cannot start the signal thread", e))?;
    Ok(interrupts)
}

/// With `--reload-plugins`: each SIGHUP asks the run to look at its plugin files now
/// ([`ReloadSignal`]) instead of ending the process.
#[cfg(unix)]
pub(super) fn reload_on_sighup(reload: &ReloadSignal) -> Result<()> {
    use signal_hook::consts::SIGHUP;
    use signal_hook::iterator::Signals;

    let mut signals =
        Signals::new([SIGHUP]).map_err(|e| crate::error::Error::io("cannot handle SIGHUP", e))?;
    let reload = reload.clone();
    std::thread::Builder::new()
        .name("laminar-sighup".into())
        .spawn(move || {
            for _ in signals.forever() {
                reload.request();
            }
        })
        .map_err(|e| crate::error::Error::io("cannot start the SIGHUP thread", e))?;
    Ok(())
}

/// Where SIGHUP cannot be waited for, only the plugin files' changes are seen.
#[cfg(not(unix))]
pub(super) fn reload_on_sighup(_reload: &ReloadSignal) -> Result<()> {
    Ok(())
}

/// Where signals cannot be waited for this way, the default handling stays.
#[cfg(not(unix))]
pub(super) fn install(_stop: &StopSignal) -> Result<Interrupts> {
    Ok(Interrupts::default())
}

/// The process's standard input, read so that a read waiting for input gives up (with an
/// error) within [`TICK`] once `stop` is set; no byte is read after that.
pub(super) fn stdin_until(stop: &StopSignal) -> StdinReader {
    let stop = stop.clone();
    StdinReader::new(move || Box::new(StdinUntil { stop: stop.clone() }))
}

/// How often a read waiting for stdin looks at the stop request.
#[cfg(unix)]
const TICK: rustix::event::Timespec = rustix::event::Timespec {
    tv_sec: 0,
    tv_nsec: 50_000_000,
};

/// Stdin, read straight from its descriptor (not through std's buffer, which `poll`
/// cannot see) once `poll` says a read will not block.
struct StdinUntil {
    stop: StopSignal,
}

impl Read for StdinUntil {
    #[cfg(unix)]
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        use rustix::event::{poll, PollFd, PollFlags};
        use rustix::io::Errno;

        let stdin = std::io::stdin();
        loop {
            if self.stop.is_stopped() {
                return Err(std::io::Error::other("the run was asked to stop"));
            }
            let mut fds = [PollFd::new(&stdin, PollFlags::IN)];
            match poll(&mut fds, Some(&TICK)) {
                Ok(0) | Err(Errno::INTR) => continue,
                Ok(_) => {}
                Err(e) => return Err(e.into()),
            }
            return match rustix::io::read(&stdin, &mut *buf) {
                Ok(n) => Ok(n),
                Err(Errno::INTR | Errno::AGAIN) => continue,
                // No stdin at all reads as empty, as std's stdin does.
                Err(Errno::BADF) => Ok(0),
                Err(e) => Err(e.into()),
            };
        }
    }

    #[cfg(not(unix))]
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.stop.is_stopped() {
            return Err(std::io::Error::other("the run was asked to stop"));
        }
        std::io::stdin().read(buf)
    }
}

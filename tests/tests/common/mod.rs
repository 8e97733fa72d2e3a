//! Helpers for tests that run the `laminar` command line.

#![allow(dead_code)]

pub mod bids;
pub mod kafka;

use std::path::Path;
use std::process::{Command, Output};

/// A `laminar` command.
pub fn laminar() -> Command {
    Command::new(env!("CARGO_BIN_EXE_laminar-cli"))
}

/// Runs `laminar run script` in `dir` and returns its output.
pub fn run_script(dir: &Path, script: &str, extra: &[&str]) -> Output {
    let path = dir.join("query.sql");
    std::fs::write(&path, script).expect("write script");
    laminar()
        .current_dir(dir)
        .arg("run")
        .arg(&path)
        .args(extra)
        .output()
        .expect("run laminar")
}

/// Stderr as text.
pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Stdout as text.
pub fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Asserts a failed run with exactly one `error:` line containing every piece of `expected`,
/// and no panic or backtrace.
pub fn assert_clean_error(output: &Output, expected: &[&str]) {
    let err = stderr(output);
    assert!(
        !output.status.success(),
        "expected failure, got success: {err}"
    );
    assert!(
        !err.contains("panicked") && !err.contains("RUST_BACKTRACE"),
        "panic: {err}"
    );
    let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "expected one error line, got: {err}");
    assert!(lines[0].starts_with("error: "), "{err}");
    for piece in expected {
        assert!(lines[0].contains(piece), "missing {piece:?} in: {err}");
    }
}

/// Runs `cmd` with `input` on its stdin (written from another thread, a broken pipe
/// ignored) and collects its output.
pub fn run_with_stdin(cmd: &mut Command, input: &[u8]) -> Output {
    use std::io::Write;
    use std::process::Stdio;
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn laminar");
    let mut stdin = child.stdin.take().expect("stdin");
    let input = input.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(&input);
    });
    let output = child.wait_with_output().expect("wait for laminar");
    let _ = writer.join();
    output
}

/// Peak resident set of process `pid` so far (`VmHWM`), in kB; `None` where there is no
/// `/proc`.
pub fn peak_rss_kb(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// Waits for `child` to exit, reading its peak resident set every `every`; returns the
/// largest reading in kB (0: none could be read).
pub fn wait_sampling_peak_rss(child: &mut std::process::Child, every: std::time::Duration) -> u64 {
    let mut peak_kb = 0;
    while child.try_wait().expect("wait").is_none() {
        if let Some(kb) = peak_rss_kb(child.id()) {
            peak_kb = peak_kb.max(kb);
        }
        std::thread::sleep(every);
    }
    peak_kb
}

/// Kills `child` (SIGKILL) `then` after `file` grew to `bytes`: a size this run wrote,
/// not the one the last run left (before this run cut it back to its checkpointed
/// length). Returns false when the run ended first.
pub fn kill_once_grown(
    child: &mut std::process::Child,
    file: &Path,
    bytes: u64,
    then: std::time::Duration,
) -> bool {
    use std::time::{Duration, Instant};
    let size = || std::fs::metadata(file).ok().map(|m| m.len());
    let left_by_last_run = size();
    let give_up = Instant::now() + Duration::from_secs(300);
    let mut kill_at = None;
    loop {
        if child.try_wait().expect("try_wait").is_some() {
            return false;
        }
        let now = Instant::now();
        match kill_at {
            Some(at) if now >= at => break,
            Some(_) => {}
            None if now >= give_up => break,
            None => {
                let written = size();
                if written != left_by_last_run && written.unwrap_or(0) >= bytes {
                    kill_at = Some(now + then);
                }
            }
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    let killed = child.kill().is_ok();
    let _ = child.wait();
    killed
}

/// Writes `lines` generated lines (`line(i)` for each `i`) to `child`'s stdin on a thread
/// of its own, a megabyte at a time, and closes it: a long stdin stream of a test.
pub fn feed_stdin(
    child: &mut std::process::Child,
    lines: u64,
    line: impl Fn(u64) -> String + Send + 'static,
) -> std::thread::JoinHandle<std::io::Result<()>> {
    use std::io::Write;
    let mut stdin = child.stdin.take().expect("stdin");
    std::thread::spawn(move || {
        let mut text = String::with_capacity(1 << 20);
        for i in 0..lines {
            text.push_str(&line(i));
            if text.len() >= 1 << 20 {
                stdin.write_all(text.as_bytes())?;
                text.clear();
            }
        }
        stdin.write_all(text.as_bytes())
    })
}

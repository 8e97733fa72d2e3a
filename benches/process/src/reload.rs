//! The live plugin swap figure (`--suite reload`): a durable stdin run of `median` holding
//! `groups` open groups (one long window, four events per key) gets the `median-v2` build
//! (another state encoding, which reads version 1) moved into place at its plugin's path
//! (`--reload-plugins`); the run's swap line gives the pause — from the checkpoint barrier
//! to the input going on, the barrier's checkpoint included — and the part of it spent
//! moving the group states (state → migrate → merge, on every core).

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc::channel;
use std::time::{Duration, Instant};

use crate::runs::fail;

/// Events per key: each open group's median state holds this many values.
const PER_KEY: u64 = 4;

/// One swap as its line reports it.
pub(crate) struct SwapFigure {
    /// Group states moved.
    pub(crate) groups: u64,
    /// From the barrier to the input going on.
    pub(crate) pause: Duration,
    /// Moving the states (the rest is the checkpoint).
    pub(crate) moving: Duration,
}

/// One run with `groups` open groups on `cores`; the guests `laminar_op_median.wasm` and
/// `laminar_op_median_v2.wasm` are read from `guests`.
pub(crate) fn swap_pause(
    laminar: &Path,
    work: &Path,
    guests: &Path,
    groups: u64,
    cores: usize,
) -> SwapFigure {
    let dir = work.join(format!("reload-{cores}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| fail(&format!("{}: {e}", dir.display())));
    let copy = |guest: &str, to: &str| {
        let from = guests.join(guest);
        std::fs::copy(&from, dir.join(to)).unwrap_or_else(|e| {
            fail(&format!(
                "{}: {e} (cargo test -p laminar-tests --no-run builds the guests)",
                from.display()
            ))
        });
    };
    copy("laminar_op_median.wasm", "median.wasm");
    std::fs::write(
        dir.join("q.sql"),
        "CREATE AGGREGATE median FROM 'median.wasm';
         CREATE SOURCE s (ts BIGINT, k BIGINT, v DOUBLE, WATERMARK FOR ts AS ts)
             WITH (connector = 'stdin', format = 'csv', header = 'false');
         CREATE SINK out WITH (connector = 'file', path = 'out.csv', format = 'csv');
         INSERT INTO out SELECT k, COUNT(*) AS n, median(v) AS mid
         FROM TUMBLE(TABLE s, DESCRIPTOR(ts), INTERVAL '1' DAY)
         GROUP BY window_start, window_end, k;",
    )
    .unwrap_or_else(|e| fail(&e.to_string()));
    let mut child = Command::new(laminar)
        .current_dir(&dir)
        .args(["run", "q.sql", "--state-dir", "state", "--quiet"])
        .args(["--checkpoint-interval", "500ms", "--reload-plugins"])
        .args(["--cores", &cores.to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| fail(&e.to_string()));
    let stderr = child.stderr.take().unwrap_or_else(|| fail("no stderr"));
    let (tx, lines) = channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut stdin = child.stdin.take().unwrap_or_else(|| fail("no stdin"));
    let mut input = String::with_capacity((groups * PER_KEY) as usize * 20);
    for i in 0..groups * PER_KEY {
        let k = i % groups;
        input.push_str(&format!("{},{k},{}.25\n", i % 1000, (i * 7919) % 1000));
    }
    stdin
        .write_all(input.as_bytes())
        .unwrap_or_else(|e| fail(&e.to_string()));
    stdin.flush().unwrap_or_else(|e| fail(&e.to_string()));
    // Every row in and checkpointed a few times before the new build arrives.
    std::thread::sleep(Duration::from_secs(5));
    copy("laminar_op_median_v2.wasm", "median.wasm.new");
    std::fs::rename(dir.join("median.wasm.new"), dir.join("median.wasm"))
        .unwrap_or_else(|e| fail(&e.to_string()));
    let give_up = Instant::now() + Duration::from_secs(300);
    let line = loop {
        if Instant::now() > give_up {
            let _ = child.kill();
            fail("no swap within 300 s");
        }
        match lines.recv_timeout(Duration::from_millis(100)) {
            Ok(line) if line.contains("swapped live") => break line,
            Ok(line) => eprintln!("{line}"),
            Err(_) => {}
        }
    };
    drop(stdin);
    let status = child.wait().unwrap_or_else(|e| fail(&e.to_string()));
    if !status.success() {
        fail("the reload run failed");
    }
    parse(&line).unwrap_or_else(|| fail(&format!("unexpected swap line: {line}")))
}

/// `…: N group states moved, paused P ms (M ms moving them)`.
fn parse(line: &str) -> Option<SwapFigure> {
    let (before, after) = line.split_once(" group states moved, paused ")?;
    let groups = before.rsplit(' ').next()?.parse().ok()?;
    let (pause, rest) = after.split_once(" ms (")?;
    let moving = rest.split(' ').next()?;
    let ms = |text: &str| {
        text.parse::<f64>()
            .ok()
            .map(|ms| Duration::from_secs_f64(ms / 1e3))
    };
    Some(SwapFigure {
        groups,
        pause: ms(pause)?,
        moving: ms(moving)?,
    })
}

//! End-to-end benchmarks of the whole `laminar run` process (a release binary), each
//! figure a ratio or a time measured in this run.
//!
//! `--suite durability`:
//! 1. CSV file, 10 M events: `--state-dir` with 10 s checkpoints vs no state dir
//!    (target ≥ 0.9x);
//! 2. the same from stdin: the write-ahead log on vs off (target ≥ 0.8x);
//! 3. recovery with 1 M events of WAL after the last checkpoint (target < 1 s);
//! 4. one checkpoint of 1 M open groups: its time and size.
//!
//! `--suite cores`:
//! 5. the CSV file at `--cores 1` against `--cores N` for each N of `--cores-list`
//!    (default: 2; target ≥ 1.7x at 2 on a 2-core machine), and against N independent
//!    `--cores 1` runs started at once: the throughput N cores of this machine give when
//!    nothing is shared, the ceiling of the speed-up;
//! 6. DuckDB and Polars (two threads) on the same file, as ratios to Laminar;
//! 7. latency on stdin at a steady 100 000 events/s: from the event that moves the
//!    watermark past a window's end to that window's first row on stdout, p50 and p99
//!    (target p99 < 1 ms).
//!
//! `--suite latency` runs figure 7 alone (at `--cores 1` and each N of `--cores-list`).
//!
//! `--suite plugins`: the windowed SUM with native `SUM` against the Wasm `wasm_sum`, and
//! over `price * 2 + 1` in SQL against the Wasm scalar `affine(price)`, at `--cores 1`
//! and `2` (guests from `--guests DIR`, built by the tests' build script).
//!
//! `--suite scale-out` (needs `LAMINAR_KAFKA_BOOTSTRAP`): 1, 2 and 3 processes in one
//! consumer group over an 8-partition topic, and the takeover time after a kill -9.
//!
//! `--suite reload` (not part of `all`): the pause of a live plugin swap
//! (`--reload-plugins`) with `--groups N` open groups (default 100 000), at `--cores 1`
//! and each N of `--cores-list`; the guests come from `--guests DIR` (default
//! `target/wasm-guests/wasm32-wasip2/release`, which `cargo test -p laminar-tests` fills).
//!
//! ```text
//! cargo build --release -p laminar && cargo run --release -p laminar-process-bench -- --events 10000000 [--suite durability|cores|latency|kafka|plugins|scale-out|windows|reload|all]
//! ```

mod cores;
mod kafka;
mod latency;
mod plugins;
mod reload;
mod runs;
mod scale_out;
mod windows;

use std::path::PathBuf;
use std::time::Duration;

use runs::{best_of, Bench};

fn main() {
    let mut events: u64 = 10_000_000;
    let mut repeats = 3;
    let mut laminar = PathBuf::from("target/release/laminar");
    let mut work = PathBuf::from("target/process-bench");
    let mut suite = String::from("all");
    let mut cores_list: Vec<usize> = vec![2];
    let mut groups: u64 = 100_000;
    let mut guests = PathBuf::from("target/wasm-guests/wasm32-wasip2/release");
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || {
            args.next()
                .unwrap_or_else(|| usage(&format!("{arg} needs a value")))
        };
        match arg.as_str() {
            "--events" => events = value().parse().unwrap_or_else(|_| usage("--events N")),
            "--runs" => repeats = value().parse().unwrap_or_else(|_| usage("--runs N")),
            "--laminar" => laminar = PathBuf::from(value()),
            "--work-dir" => work = PathBuf::from(value()),
            "--suite" => suite = value(),
            "--groups" => groups = value().parse().unwrap_or_else(|_| usage("--groups N")),
            "--guests" => guests = PathBuf::from(value()),
            "--cores-list" => {
                cores_list = value()
                    .split(',')
                    .map(|n| {
                        n.trim()
                            .parse()
                            .unwrap_or_else(|_| usage("--cores-list 2,4,8"))
                    })
                    .collect()
            }
            _ => usage(&format!("unknown option {arg}")),
        }
    }
    if !laminar.is_file() {
        usage(&format!(
            "no laminar binary at {} (cargo build --release -p laminar)",
            laminar.display()
        ));
    }
    if ![
        "all",
        "durability",
        "cores",
        "latency",
        "kafka",
        "plugins",
        "scale-out",
        "windows",
        "reload",
    ]
    .contains(&suite.as_str())
    {
        usage("--suite durability|cores|latency|kafka|plugins|scale-out|windows|reload|all");
    }
    if suite == "reload" {
        reload(&laminar, &work, &guests, groups, repeats, &cores_list);
        return;
    }
    let bench = Bench::new(laminar, work, events);
    if suite == "kafka" {
        kafka(&bench, events, repeats);
        return;
    }
    if suite == "windows" {
        windows(&bench, events, repeats);
        return;
    }
    if suite == "plugins" {
        plugins(&bench, events, repeats, &guests);
        return;
    }
    if suite == "scale-out" {
        scale_out(&bench, events, repeats);
        return;
    }
    if suite == "latency" {
        latency(&bench, &cores_list);
        return;
    }
    println!("data: {} events in {}", events, bench.bids().display());
    if suite != "cores" {
        durability(&bench, events, repeats);
    }
    if suite != "durability" {
        cores(&bench, events, repeats, &cores_list);
    }
}

/// The window-kind figures: few groups (each kind's time against TUMBLE's), many groups
/// (SESSION's events/s against TUMBLE's), and the HOP query against DuckDB and Polars.
fn windows(bench: &Bench, events: u64, repeats: usize) {
    println!("data: {} events in {}", events, bench.bids().display());
    let mut laminar_hop = None;
    for cores in [1, 2] {
        let few = bench.window_kind_figures(windows::FEW_GROUPS, cores, repeats);
        let tumble = few.first().map_or(Duration::ZERO, |(_, t)| *t);
        for (name, time) in &few {
            report(&format!("{name}, --cores {cores}"), events, *time);
            let target = match name.starts_with("TUMBLE") {
                true => "",
                false => " (target <= 1.5)",
            };
            println!(
                "  {name}: time / TUMBLE's time = {:.2}{target}",
                time.as_secs_f64() / tumble.as_secs_f64()
            );
        }
        let many = bench.window_kind_figures(windows::MANY_GROUPS, cores, repeats);
        let tumble = many.first().map_or(Duration::ZERO, |(_, t)| *t);
        for (name, time) in &many {
            report(&format!("{name}, --cores {cores}"), events, *time);
            let target = match name.starts_with("SESSION") {
                true => " (target >= 0.7)",
                false => "",
            };
            println!(
                "  {name}: events/s / TUMBLE's events/s = {:.2}{target}",
                tumble.as_secs_f64() / time.as_secs_f64()
            );
        }
        laminar_hop = many.last().map(|(_, t)| (cores, *t));
    }
    let threads = 2;
    for (name, result) in bench.hop_peer_figures(threads, repeats) {
        match (result, laminar_hop) {
            (Ok(time), Some((cores, laminar))) => {
                report(
                    &format!("{name} HOP 1 s / 10 s by auction, {threads} threads"),
                    events,
                    time,
                );
                println!(
                    "  Laminar (--cores {cores}) / {name} throughput = {:.2} (target > 1)",
                    time.as_secs_f64() / laminar.as_secs_f64()
                );
            }
            (Err(why), _) => println!("{name}: not measured ({why})"),
            (Ok(_), None) => {}
        }
    }
}

/// The Kafka figures: events/s of each run and the ratios.
fn kafka(bench: &Bench, events: u64, repeats: usize) {
    let Ok(brokers) = std::env::var("LAMINAR_KAFKA_BOOTSTRAP") else {
        usage("--suite kafka needs LAMINAR_KAFKA_BOOTSTRAP (tests/kafka/broker start)");
    };
    println!("data: {} events in {}", events, bench.bids().display());
    let figures = bench.kafka_figures(&brokers, repeats);
    report(
        "load: file -> kafka topic (4 partitions, at_least_once)",
        events,
        figures.load,
    );
    for (cores, file, at_least_once, exactly_once) in figures.runs {
        report(&format!("file -> file, --cores {cores}"), events, file);
        report(
            &format!("kafka -> kafka at_least_once, --cores {cores}"),
            events,
            at_least_once,
        );
        report(
            &format!("kafka -> kafka exactly_once, --cores {cores}"),
            events,
            exactly_once,
        );
        println!(
            "  --cores {cores}: kafka (at_least_once) / file throughput = {:.2}; exactly_once / at_least_once = {:.2}",
            file.as_secs_f64() / at_least_once.as_secs_f64(),
            at_least_once.as_secs_f64() / exactly_once.as_secs_f64()
        );
    }
}

/// The plugin figures: each Wasm run's events/s against its native run's.
fn plugins(bench: &Bench, events: u64, repeats: usize, plugin_dir: &std::path::Path) {
    println!("data: {} events in {}", events, bench.bids().display());
    for cores in [1, 2] {
        let figures = bench.plugin_figures(plugin_dir, cores, repeats);
        for (name, time) in &figures {
            report(&format!("{name}, --cores {cores}"), events, *time);
        }
        for pair in figures.chunks(2) {
            if let [(native, native_time), (wasm, wasm_time)] = pair {
                println!(
                    "  --cores {cores}: {wasm} / {native} throughput = {:.2} (target >= 0.9)",
                    native_time.as_secs_f64() / wasm_time.as_secs_f64()
                );
            }
        }
    }
}

/// The scale-out figures: events/s of 1, 2 and 3 processes and the takeover time.
fn scale_out(bench: &Bench, events: u64, repeats: usize) {
    let Ok(brokers) = std::env::var("LAMINAR_KAFKA_BOOTSTRAP") else {
        usage("--suite scale-out needs LAMINAR_KAFKA_BOOTSTRAP (tests/kafka/broker start)");
    };
    println!("data: {} events in {}", events, bench.bids().display());
    let figures = bench.scale_out_figures(&brokers, repeats);
    let one = figures.runs.first().map_or(Duration::ZERO, |(_, t)| *t);
    for (processes, time) in &figures.runs {
        report(
            &format!("kafka (8 partitions, group_id) -> file, {processes} processes"),
            events,
            *time,
        );
        println!(
            "  {processes} processes / 1 process throughput = {:.2}",
            one.as_secs_f64() / time.as_secs_f64()
        );
    }
    println!(
        "takeover after kill -9 (session timeout 10 s): the survivor resumed a partition {:.3} s after the kill; its first new output {}",
        figures.takeover_resumed.as_secs_f64(),
        figures
            .takeover_output
            .map_or("not seen".to_string(), |t| format!("{:.3} s after the kill", t.as_secs_f64()))
    );
}

/// The live swap figure: the pause of each run, and the best.
fn reload(
    laminar: &std::path::Path,
    work: &std::path::Path,
    guests: &std::path::Path,
    groups: u64,
    repeats: usize,
    cores_list: &[usize],
) {
    std::fs::create_dir_all(work).unwrap_or_else(|e| usage(&format!("{}: {e}", work.display())));
    let work = work.canonicalize().unwrap_or_else(|_| work.to_path_buf());
    let guests = guests
        .canonicalize()
        .unwrap_or_else(|_| guests.to_path_buf());
    let laminar = laminar
        .canonicalize()
        .unwrap_or_else(|_| laminar.to_path_buf());
    for cores in std::iter::once(1).chain(cores_list.iter().copied()) {
        let mut best: Option<reload::SwapFigure> = None;
        for _ in 0..repeats.max(1) {
            let figure = reload::swap_pause(&laminar, &work, &guests, groups, cores);
            println!(
                "live swap median -> median-v2, --cores {cores}: {} group states moved, paused {:.1} ms ({:.1} ms moving them)",
                figure.groups,
                figure.pause.as_secs_f64() * 1e3,
                figure.moving.as_secs_f64() * 1e3
            );
            if best.as_ref().is_none_or(|b| figure.pause < b.pause) {
                best = Some(figure);
            }
        }
        if let Some(best) = best {
            println!(
                "  best of {repeats}: paused {:.1} ms, {:.2} us a group",
                best.pause.as_secs_f64() * 1e3,
                best.pause.as_secs_f64() * 1e6 / best.groups.max(1) as f64
            );
        }
    }
}

/// Figures 5 – 7.
fn cores(bench: &Bench, events: u64, repeats: usize, cores_list: &[usize]) {
    let threads = 2;
    let figures = bench.core_figures(cores_list, threads, repeats);
    report("file, --cores 1", events, figures.one);
    let mut two = None;
    for ((n, time), (_, together)) in figures.many.iter().zip(&figures.together) {
        report(&format!("file, --cores {n}"), events, *time);
        let speed_up = figures.one.as_secs_f64() / time.as_secs_f64();
        println!(
            "  speed-up {n} cores / 1 core = {speed_up:.2}{}",
            if *n == 2 {
                " (target >= 1.7 on 2 cores)"
            } else {
                ""
            }
        );
        // N runs sharing nothing: what N of this machine's cores give at most.
        let ceiling = *n as f64 * figures.one.as_secs_f64() / together.as_secs_f64();
        println!(
            "  ceiling: {n} independent --cores 1 runs at once take {:.3} s, {ceiling:.2}x one run's throughput; --cores {n} reaches {:.0} % of it",
            together.as_secs_f64(),
            100.0 * speed_up / ceiling
        );
        if *n == 2 {
            two = Some(*time);
        }
    }
    let laminar = two.unwrap_or(figures.one);
    for (name, result) in [("DuckDB", &figures.duckdb), ("Polars", &figures.polars)] {
        match result {
            Ok(time) => {
                report(&format!("{name}, {threads} threads"), events, *time);
                println!(
                    "  Laminar ({} cores) / {name} throughput = {:.2} (target > 1)",
                    if two.is_some() { 2 } else { 1 },
                    time.as_secs_f64() / laminar.as_secs_f64()
                );
            }
            Err(why) => println!("{name}: not measured ({why})"),
        }
    }
    latency(bench, cores_list);
}

/// Figure 7, at one core and each count of `cores_list`.
fn latency(bench: &Bench, cores_list: &[usize]) {
    for n in std::iter::once(1).chain(cores_list.iter().copied()) {
        let latency = bench.latency_run(100_000, 6, n);
        let steal = latency.steal.map_or(String::new(), |share| {
            format!(", steal {:.1} % of CPU time", share * 100.0)
        });
        println!(
            "latency, stdin at 100000 events/s, --cores {n}: p50 {:.3} ms, p99 {:.3} ms, max {:.3} ms over {} windows{steal} (target p99 < 1 ms)",
            latency.p50.as_secs_f64() * 1e3,
            latency.p99.as_secs_f64() * 1e3,
            latency.max.as_secs_f64() * 1e3,
            latency.windows
        );
    }
}

/// Figures 1 – 4.
fn durability(bench: &Bench, events: u64, repeats: usize) {
    // 1. File source: durable vs plain, interleaved, best of `repeats`.
    let (plain, durable) = best_of(repeats, || bench.file_run(false), || bench.file_run(true));
    report("file, no state dir", events, plain);
    report("file, --state-dir, 10 s checkpoints", events, durable);
    println!(
        "  ratio durable/plain = {:.2} (target >= 0.9)",
        plain.as_secs_f64() / durable.as_secs_f64()
    );

    // 2. Stdin: WAL on vs off.
    let (plain, logged) = best_of(repeats, || bench.stdin_run(false), || bench.stdin_run(true));
    report("stdin, no state dir", events, plain);
    report("stdin, --state-dir (WAL, group commit)", events, logged);
    println!(
        "  ratio wal/plain = {:.2} (target >= 0.8)",
        plain.as_secs_f64() / logged.as_secs_f64()
    );

    // 3. Recovery with 1 M events of WAL after the last checkpoint.
    let (wal_bytes, recovery) = bench.recovery_run(1_000_000);
    println!(
        "recovery: {} MB of WAL (1000000 events after the last checkpoint) replayed and the query finished in {:.3} s (target < 1 s)",
        wal_bytes / 1_000_000,
        recovery.as_secs_f64()
    );

    // 4. One checkpoint of 1 M open groups.
    let (bytes, took) = bench.checkpoint_of_groups(1_000_000);
    println!(
        "checkpoint of 1000000 open groups: {:.1} MB in {:.3} s",
        bytes as f64 / 1e6,
        took.as_secs_f64()
    );
}

fn report(what: &str, events: u64, time: Duration) {
    println!(
        "{what}: {:.3} s, {:.0} events/s",
        time.as_secs_f64(),
        events as f64 / time.as_secs_f64()
    );
}

fn usage(problem: &str) -> ! {
    eprintln!(
        "process-bench: {problem}
usage: process-bench [--events N] [--runs N] [--laminar PATH] [--work-dir DIR] [--suite durability|cores|latency|kafka|plugins|scale-out|windows|reload|all] [--cores-list 2,4,8] [--groups N] [--guests DIR]"
    );
    std::process::exit(2)
}

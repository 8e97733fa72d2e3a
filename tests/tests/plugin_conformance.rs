//! State round-trip conformance of every aggregate plugin under `operators/` (Rust crates,
//! Python, JavaScript, C and any other language directory whose guests the test build
//! makes; scalar functions keep no state and are skipped).
//!
//! The rule (`wit/laminar-udaf.wit`, "State round trip"): `state(g)` does not change group
//! `g`, and merging `state(g)` into an empty group, then applying the same later updates,
//! evaluates bit-identically to the group that was never interrupted. Exactly-once
//! recovery depends on it: a restart restores every open group from its checkpointed
//! state bytes and replays the rows that followed the checkpoint.
//!
//! Every plugin is run over deterministic rows in batches of uneven sizes, into nine
//! groups: one never updated, one with a single row, one whose only row is NULL, and groups
//! of 2 to 1 500 rows (past the 500-value buffer of `approx_percentile` and the 1 024-value
//! exact range of `approx_count_distinct`), with NULLs in every argument. Then, at *every*
//! batch boundary (so several cut points inside each group's rows):
//! - the uninterrupted instance's `state` is taken and the instance continues: its results
//!   must not change (`state` leaves groups alone);
//! - the state bytes are merged into a fresh instance, under other group ids (reversed),
//!   which then gets the remaining batches: its results must equal the uninterrupted ones;
//! - and one chain restores into a fresh instance at every cut in turn.
//!
//! Results are compared bit for bit (`f64` by `to_bits`, so `-0.0` is not `0.0` and every
//! rounding difference counts). The checker is shown to fail by two fake accumulators at
//! the end of this file: one whose state rounds its sum (as a lossy or compressing encoding
//! would), one whose `state` changes the group.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, BinaryArray, BooleanArray, Float64Array, Int64Array, StringArray,
    TimestampMicrosecondArray,
};
use datafusion::arrow::datatypes::{
    DataType, Float64Type, Int64Type, TimeUnit, TimestampMicrosecondType,
};
use laminar::aggregate::GroupAccumulator;
use laminar::plugin::{plugin_accumulator, Plugin, PluginKind, PluginType};
use laminar_tests::{all_guests, plugin_options};

/// Rows of each group: an empty one, one row, one NULL row, then larger groups.
const GROUP_SIZES: [usize; 9] = [0, 1, 1, 2, 7, 60, 310, 640, 1_500];
/// The group whose only row is NULL in every argument.
const NULL_GROUP: usize = 2;

/// One evaluated value, comparable bit for bit.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Bits {
    Null,
    Float(u64),
    Int(i64),
    Text(String),
    Bool(bool),
}

/// The results of `evaluate` as comparable values.
fn bits(array: &ArrayRef) -> Vec<Bits> {
    (0..array.len())
        .map(|i| {
            if array.is_null(i) {
                return Bits::Null;
            }
            match array.data_type() {
                DataType::Float64 => {
                    Bits::Float(array.as_primitive::<Float64Type>().value(i).to_bits())
                }
                DataType::Int64 => Bits::Int(array.as_primitive::<Int64Type>().value(i)),
                DataType::Timestamp(TimeUnit::Microsecond, _) => {
                    Bits::Int(array.as_primitive::<TimestampMicrosecondType>().value(i))
                }
                DataType::Utf8 => Bits::Text(array.as_string::<i32>().value(i).to_string()),
                DataType::Boolean => Bits::Bool(array.as_boolean().value(i)),
                other => panic!("unexpected result type {other}"),
            }
        })
        .collect()
}

/// A deterministic pseudo-random sequence (64-bit LCG, high bits).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        self.0 >> 33
    }
}

/// Batches of (group id per row, argument columns) for a plugin taking `args`.
struct Input {
    batches: Vec<(Vec<u32>, Vec<ArrayRef>)>,
    groups: usize,
}

impl Input {
    /// Rows of every group of [`GROUP_SIZES`], interleaved, in batches of 1 to 300 rows.
    /// `plugin` picks a sensible value range for arguments that need one.
    fn new(plugin: &str, args: &[PluginType]) -> Self {
        let mut rng = Lcg(0x5eed_0000 + plugin.len() as u64);
        let mut rows: Vec<u32> = GROUP_SIZES
            .iter()
            .enumerate()
            .flat_map(|(g, &n)| std::iter::repeat_n(g as u32, n))
            .collect();
        for i in (1..rows.len()).rev() {
            let j = (rng.next() % (i as u64 + 1)) as usize;
            rows.swap(i, j);
        }
        let mut batches = Vec::new();
        let mut start = 0;
        while start < rows.len() {
            let len = [1, 300, 17, 129, 64, 2, 250][batches.len() % 7].min(rows.len() - start);
            let ids = rows[start..start + len].to_vec();
            let columns = args
                .iter()
                .enumerate()
                .map(|(arg, &ty)| column(plugin, arg, ty, &ids, &mut rng))
                .collect();
            batches.push((ids, columns));
            start += len;
        }
        Input {
            batches,
            groups: GROUP_SIZES.len(),
        }
    }
}

/// Argument `arg` of type `ty` for rows of groups `ids`: about one row in eleven NULL, and
/// every row of [`NULL_GROUP`].
fn column(plugin: &str, arg: usize, ty: PluginType, ids: &[u32], rng: &mut Lcg) -> ArrayRef {
    let null = |g: u32, r: u64| g as usize == NULL_GROUP || r.is_multiple_of(11);
    let mut draws: Vec<(u32, u64)> = ids.iter().map(|&g| (g, rng.next())).collect();
    if plugin == "approx_percentile" && arg == 1 {
        // The quantile: the same within a group, as a literal would be.
        let p = |g: u32| [0.5, 0.1, 0.9, 0.25, 0.75, 0.5, 0.99, 0.01, 0.5][g as usize % 9];
        let values: Float64Array = draws
            .iter()
            .map(|&(g, r)| (!null(g, r)).then(|| p(g)))
            .collect();
        return Arc::new(values);
    }
    // Only the first argument is NULL on its own; the others are NULL in the same rows
    // plus their own, so some rows have one NULL argument and a value in the other.
    if arg > 0 {
        for d in &mut draws {
            d.1 = d.1.rotate_left(7);
        }
    }
    match ty {
        PluginType::Float64 => {
            let values: Float64Array = draws
                .iter()
                .map(|&(g, r)| {
                    (!null(g, r)).then(|| match r % 13 {
                        // Values whose sums round differently in every order.
                        0 => 1.0e15 + (r % 1000) as f64 / 3.0,
                        1 => -0.0,
                        2 => -((r % 5000) as f64) / 7.0,
                        _ => (r % 100_000) as f64 / 9.0 + 0.1,
                    })
                })
                .collect();
            Arc::new(values)
        }
        PluginType::Int64 => {
            let values: Int64Array = draws
                .iter()
                .map(|&(g, r)| (!null(g, r)).then(|| (r % 4_000) as i64 - 1_000))
                .collect();
            Arc::new(values)
        }
        PluginType::Timestamp => {
            let values: TimestampMicrosecondArray = draws
                .iter()
                .map(|&(g, r)| (!null(g, r)).then_some((r % 86_400_000_000) as i64))
                .collect();
            Arc::new(values)
        }
        PluginType::Utf8 => {
            let values: StringArray = draws
                .iter()
                .map(|&(g, r)| (!null(g, r)).then(|| format!("v{}é", r % 997)))
                .collect();
            Arc::new(values)
        }
        PluginType::Boolean => {
            let values: BooleanArray = draws
                .iter()
                .map(|&(g, r)| (!null(g, r)).then_some(r % 3 == 0))
                .collect();
            Arc::new(values)
        }
    }
}

/// Makes a fresh accumulator (an empty instance).
type Make<'a> = &'a dyn Fn() -> Box<dyn GroupAccumulator>;

fn all(groups: usize) -> Vec<u32> {
    (0..groups as u32).collect()
}

/// Feeds `batches` to `acc`, slot of group `g` being `slot(g)`.
fn feed(
    acc: &mut dyn GroupAccumulator,
    batches: &[(Vec<u32>, Vec<ArrayRef>)],
    groups: usize,
    slot: &dyn Fn(u32) -> u32,
) -> Result<(), String> {
    for (ids, columns) in batches {
        let slots: Vec<u32> = ids.iter().map(|&g| slot(g)).collect();
        acc.update(columns, &slots, groups)
            .map_err(|e| format!("update: {e}"))?;
    }
    Ok(())
}

/// Checks the round-trip rule for the accumulators `make` creates over `input`; the error
/// says at which cut and in which group the first difference shows.
fn check_round_trip(make: Make<'_>, input: &Input) -> Result<(), String> {
    let n = input.groups;
    let same = |g: u32| g;
    let mut uninterrupted = make();
    feed(uninterrupted.as_mut(), &input.batches, n, &same)?;
    let expected = bits(&uninterrupted.evaluate(&all(n)).map_err(|e| e.to_string())?);
    let compare = |what: &str, got: Vec<Bits>| -> Result<(), String> {
        match got.iter().zip(&expected).position(|(a, b)| a != b) {
            None if got.len() == expected.len() => Ok(()),
            None => Err(format!("{what}: {} results, expected {}", got.len(), n)),
            Some(g) => Err(format!(
                "{what}: group {g} ({} rows) evaluates to {:?}, uninterrupted {:?}",
                GROUP_SIZES.get(g).copied().unwrap_or(0),
                got[g],
                expected[g]
            )),
        }
    };
    let reversed = move |g: u32| (n as u32 - 1) - g;
    for cut in 0..=input.batches.len() {
        let (before, after) = input.batches.split_at(cut);
        let mut first = make();
        feed(first.as_mut(), before, n, &same)?;
        let states = first.state(&all(n)).map_err(|e| format!("state: {e}"))?;
        feed(first.as_mut(), after, n, &same)?;
        let continued = first.evaluate(&all(n)).map_err(|e| e.to_string())?;
        compare(
            &format!("after state() at cut {cut} (the group went on)"),
            bits(&continued),
        )?;

        let mut restored = make();
        let slots: Vec<u32> = (0..n as u32).map(reversed).collect();
        restored
            .merge(&states, &slots, n)
            .map_err(|e| format!("merge: {e}"))?;
        feed(restored.as_mut(), after, n, &reversed)?;
        let result = restored.evaluate(&slots).map_err(|e| e.to_string())?;
        compare(
            &format!("restored at cut {cut} of {} batches", input.batches.len()),
            bits(&result),
        )?;
    }
    // A chain of restarts: restored into a fresh instance at every cut in turn.
    let mut current = make();
    for (i, batch) in input.batches.iter().enumerate() {
        feed(current.as_mut(), std::slice::from_ref(batch), n, &same)?;
        let states = current.state(&all(n)).map_err(|e| format!("state: {e}"))?;
        current = make();
        current
            .merge(&states, &all(n), n)
            .map_err(|e| format!("merge after batch {i}: {e}"))?;
    }
    let chained = current.evaluate(&all(n)).map_err(|e| e.to_string())?;
    compare("restored after every batch", bits(&chained))
}

/// Every guest built from `operators/`: Rust crates (`operators/*/Cargo.toml`) by package
/// name, other languages by the directory the test build writes their components to,
/// which is named after `operators/<language>`.
fn operator_guests() -> Vec<(String, PathBuf)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut languages = Vec::new();
    let mut rust = Vec::new();
    for entry in std::fs::read_dir(root.join("operators")).expect("operators/") {
        let dir = entry.expect("entry").path();
        let name = dir
            .file_name()
            .expect("name")
            .to_string_lossy()
            .into_owned();
        if dir.join("Cargo.toml").is_file() {
            rust.push(name.replace('-', "_"));
        } else if dir.is_dir() {
            languages.push(name);
        }
    }
    let mut found = Vec::new();
    let mut unbuilt = Vec::new();
    for (name, built) in all_guests() {
        let path = match built {
            Ok(path) => PathBuf::from(path),
            Err(reason) => {
                unbuilt.push(format!("{name}: {reason}"));
                continue;
            }
        };
        let parent = path.parent().and_then(Path::file_name);
        let parent = parent.map(|p| p.to_string_lossy().into_owned());
        let is_operator = match parent.as_deref() {
            Some("release") => rust.contains(&name.to_string()),
            Some(dir) => languages.iter().any(|l| l == dir),
            None => false,
        };
        if is_operator {
            found.push((name.to_string(), path));
        }
    }
    for crate_name in &rust {
        assert!(
            found.iter().any(|(n, _)| n == crate_name),
            "operators/{crate_name} was not built as a guest; not built: {unbuilt:?}"
        );
    }
    for language in &languages {
        assert!(
            found
                .iter()
                .any(|(_, p)| p.parent().is_some_and(|d| d.ends_with(language))),
            "no guest was built from operators/{language}; not built: {unbuilt:?}"
        );
    }
    found
}

#[test]
fn every_operator_round_trips_its_state_bit_for_bit() {
    let guests = operator_guests();
    let mut failures = Vec::new();
    let mut checked = Vec::new();
    for (guest, path) in &guests {
        let plugin: Arc<Plugin> = Plugin::load(path, Some(guest), &plugin_options()).expect("load");
        if plugin.info().kind == PluginKind::Scalar {
            // Scalar functions keep no state.
            continue;
        }
        let declared = plugin.info().declared_name.clone();
        let input = Input::new(&declared, &plugin.info().args);
        let make = || plugin_accumulator(Arc::clone(&plugin)).expect("instance");
        match check_round_trip(&make, &input) {
            Ok(()) => checked.push(guest.clone()),
            Err(why) => failures.push(format!("{guest}: {why}")),
        }
    }
    assert!(
        failures.is_empty(),
        "state round trip broken:\n{}",
        failures.join("\n")
    );
    // The languages the repository ships, at least.
    for must in [
        "median",
        "approx_percentile",
        "py_sum",
        "js_geomean",
        "c_l2norm",
    ] {
        assert!(
            checked.iter().any(|c| c == must),
            "{must} not checked: {checked:?}"
        );
    }
}

/// A mean whose state keeps the sum as `f32`: a lossy encoding, as a compressed sketch
/// adopted on merge would be. `state_mutates` makes `state` round the live group too.
#[derive(Debug, Default)]
struct LossyMean {
    sums: Vec<f64>,
    counts: Vec<u64>,
    state_mutates: bool,
}

impl GroupAccumulator for LossyMean {
    fn update(
        &mut self,
        args: &[ArrayRef],
        slots: &[u32],
        num_slots: usize,
    ) -> laminar::Result<()> {
        self.sums.resize(num_slots.max(self.sums.len()), 0.0);
        self.counts.resize(num_slots.max(self.counts.len()), 0);
        let x = args[0].as_primitive::<Float64Type>();
        for (row, &s) in slots.iter().enumerate() {
            if x.is_valid(row) {
                self.sums[s as usize] += x.value(row);
                self.counts[s as usize] += 1;
            }
        }
        Ok(())
    }

    fn evaluate(&mut self, slots: &[u32]) -> laminar::Result<ArrayRef> {
        let out: Float64Array = slots
            .iter()
            .map(|&s| {
                let s = s as usize;
                let v = (self.counts[s] > 0).then(|| self.sums[s] / self.counts[s] as f64);
                self.sums[s] = 0.0;
                self.counts[s] = 0;
                v
            })
            .collect();
        Ok(Arc::new(out))
    }

    fn state(&mut self, slots: &[u32]) -> laminar::Result<BinaryArray> {
        let mut states = Vec::new();
        for &s in slots {
            let s = s as usize;
            let rounded = self.sums.get(s).copied().unwrap_or(0.0) as f32;
            if self.state_mutates && s < self.sums.len() {
                self.sums[s] = f64::from(rounded);
            }
            let mut bytes = rounded.to_le_bytes().to_vec();
            bytes.extend(self.counts.get(s).copied().unwrap_or(0).to_le_bytes());
            states.push(bytes);
        }
        Ok(BinaryArray::from_iter_values(states))
    }

    fn merge(
        &mut self,
        states: &BinaryArray,
        slots: &[u32],
        num_slots: usize,
    ) -> laminar::Result<()> {
        self.sums.resize(num_slots.max(self.sums.len()), 0.0);
        self.counts.resize(num_slots.max(self.counts.len()), 0);
        for (i, &s) in slots.iter().enumerate() {
            let bytes = states.value(i);
            let sum = f32::from_le_bytes(bytes[..4].try_into().expect("4 bytes"));
            let count = u64::from_le_bytes(bytes[4..12].try_into().expect("8 bytes"));
            self.sums[s as usize] += f64::from(sum);
            self.counts[s as usize] += count;
        }
        Ok(())
    }

    fn size(&self) -> usize {
        0
    }
}

#[test]
fn the_checker_catches_a_lossy_state_and_a_state_that_changes_the_group() {
    let input = Input::new("lossy_mean", &[PluginType::Float64]);
    let lossy = || -> Box<dyn GroupAccumulator> { Box::new(LossyMean::default()) };
    let err = check_round_trip(&lossy, &input).expect_err("a lossy state must be caught");
    assert!(err.contains("restored at cut"), "{err}");

    let mutating = || -> Box<dyn GroupAccumulator> {
        Box::new(LossyMean {
            state_mutates: true,
            ..LossyMean::default()
        })
    };
    let err = check_round_trip(&mutating, &input).expect_err("a changing state must be caught");
    assert!(err.contains("after state()"), "{err}");
}

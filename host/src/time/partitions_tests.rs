//! Tests of per-partition watermarks: unit cases and the property that late rows and the
//! content of closed windows do not depend on how partitions interleave.

use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;

use super::*;

#[test]
fn each_partition_has_its_own_watermark_and_the_minimum_closes() {
    let mut w = PartitionWatermarks::new(5, [0, 1]);
    assert_eq!(w.combined(), None);
    w.observe(0, 100);
    assert_eq!(w.watermark(0), Some(95));
    assert_eq!(w.combined(), None, "partition 1 has no rows yet");
    w.observe(1, 40);
    assert_eq!(w.combined(), Some(35));
    // Late against partition 0's own watermark, not against partition 1's.
    assert!(w.is_late(0, 90));
    assert!(!w.is_late(1, 90));
    assert!(!w.is_late(1, 36));
    assert!(w.is_late(1, 35));
}

#[test]
fn idle_partitions_are_left_out_and_wake_at_the_combined_watermark() {
    let mut w = PartitionWatermarks::new(0, [0, 1, 2]);
    w.observe(0, 100);
    w.observe(1, 50);
    assert_eq!(w.combined(), None);
    w.set_idle(2, true);
    assert_eq!(w.combined(), Some(50));
    w.set_idle(1, true);
    assert_eq!(w.combined(), Some(100));
    w.set_idle(0, true);
    assert_eq!(w.combined(), Some(100), "all idle: the largest");
    w.set_idle(0, false);
    // A row on partition 2 wakes it at the combined watermark (100).
    w.generator_mut(2).observe(10);
    assert!(!w.is_idle(2));
    assert_eq!(w.watermark(2), Some(100));
    assert_eq!(w.combined(), Some(100));
}

#[test]
fn a_snapshot_restores_every_partition() {
    let mut w = PartitionWatermarks::new(3, [0, 1]);
    w.observe(0, 10);
    w.set_idle(1, true);
    let snapshot = w.snapshot();
    let bytes = rkyv::to_bytes::<rkyv::rancor::Error>(&snapshot).unwrap();
    let archived =
        rkyv::access::<rkyv::vec::ArchivedVec<ArchivedPartitionTime>, rkyv::rancor::Error>(&bytes)
            .unwrap();
    let back: Vec<PartitionTime> = archived
        .iter()
        .map(|a| rkyv::deserialize::<PartitionTime, rkyv::rancor::Error>(a).unwrap())
        .collect();
    assert_eq!(back, snapshot);
    let mut restored = PartitionWatermarks::new(3, [0, 1]);
    restored.restore(&back);
    assert_eq!(restored.snapshot(), snapshot);
    assert_eq!(restored.combined(), Some(7));
}

/// What a tumbling window query keeps: the late rows (partition, index) and each
/// emitted window's rows, sorted.
type Outcome = (BTreeSet<(i32, usize)>, BTreeMap<i64, Vec<(i32, usize)>>);

/// Runs the rows of `partitions` in the order `choices` picks them, through a model of
/// the stage and a window operator that closes on the combined watermark; checks on the
/// way that no on-time row meets a closed window.
fn run(partitions: &[Vec<i64>], choices: &[usize], size: i64, delay: i64) -> Outcome {
    let ids: Vec<i32> = (0..partitions.len() as i32).collect();
    let mut w = PartitionWatermarks::new(delay, ids.iter().copied());
    let mut next = vec![0usize; partitions.len()];
    let mut late = BTreeSet::new();
    let mut open: BTreeMap<i64, Vec<(i32, usize)>> = BTreeMap::new();
    let mut emitted: BTreeMap<i64, Vec<(i32, usize)>> = BTreeMap::new();
    let mut choice = choices.iter().cycle();
    loop {
        let waiting: Vec<usize> = (0..partitions.len())
            .filter(|&p| next[p] < partitions[p].len())
            .collect();
        if waiting.is_empty() {
            break;
        }
        let p = waiting[choice.next().copied().unwrap_or(0) % waiting.len()];
        let i = next[p];
        next[p] += 1;
        let t = partitions[p][i];
        let start = t.div_euclid(size) * size;
        if w.is_late(p as i32, start + size) {
            late.insert((p as i32, i));
        } else {
            assert!(
                !emitted.contains_key(&start),
                "an on-time row met a closed window"
            );
            open.entry(start).or_default().push((p as i32, i));
        }
        w.observe(p as i32, t);
        if let Some(wm) = w.combined() {
            let still = open.split_off(&(wm - size + 1));
            for (start, mut rows) in std::mem::replace(&mut open, still) {
                rows.sort_unstable();
                emitted.insert(start, rows);
            }
        }
    }
    for (start, mut rows) in open {
        rows.sort_unstable();
        emitted.insert(start, rows);
    }
    (late, emitted)
}

proptest! {
    #[test]
    fn late_rows_and_window_contents_do_not_depend_on_the_interleaving(
        partitions in proptest::collection::vec(
            proptest::collection::vec(-2_000i64..2_000, 0..40), 1..5),
        first in proptest::collection::vec(0usize..8, 1..64),
        second in proptest::collection::vec(0usize..8, 1..64),
        size in 1i64..500,
        delay in 0i64..300,
    ) {
        let a = run(&partitions, &first, size, delay);
        let b = run(&partitions, &second, size, delay);
        // Partition by partition in turn, another interleaving still.
        let sequential: Vec<usize> = vec![0];
        let c = run(&partitions, &sequential, size, delay);
        prop_assert_eq!(&a, &b);
        prop_assert_eq!(&a, &c);
        // Lateness is each partition's own: the model of §4.2.
        for (p, rows) in partitions.iter().enumerate() {
            for (i, &t) in rows.iter().enumerate() {
                let end = t.div_euclid(size) * size + size;
                let expected = rows[..i].iter().max().is_some_and(|&m| end <= m - delay);
                prop_assert_eq!(a.0.contains(&(p as i32, i)), expected);
            }
        }
    }
}

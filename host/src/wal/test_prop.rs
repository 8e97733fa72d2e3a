//! Property: whatever truncation and bit flips hit the segment files, recovery returns an
//! intact prefix of what was written (all of it that the damage did not touch), or an
//! error naming a segment file and a byte offset; it never panics.

use proptest::prelude::*;
use proptest::sample::Index;

use super::test::fs;
use super::*;

/// Where each record ends: (segment index, end offset), following the writer's rotation
/// rule.
fn layout(payloads: &[Vec<u8>], segment_size: u64) -> Vec<(usize, u64)> {
    let (mut seg, mut len, mut records) = (0usize, 24u64, 0u64);
    payloads
        .iter()
        .map(|p| {
            let frame = 9 + p.len() as u64;
            if records > 0 && len + frame > segment_size {
                (seg, len, records) = (seg + 1, 24, 0);
            }
            len += frame;
            records += 1;
            (seg, len)
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn wal_recovery_returns_an_intact_prefix_or_names_the_damage(
        payloads in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..48), 0..40),
        segment_size in 40u64..400,
        truncate in prop::option::of(any::<Index>()),
        flips in prop::collection::vec((any::<Index>(), any::<Index>(), 0u32..8), 0..3),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let config = WalConfig::default().segment_size(segment_size).sync_mode(SyncMode::Buffer);
        let (mut wal, _) = WalWriter::open(fs(), dir.path(), config.clone()).unwrap();
        for p in &payloads {
            wal.append(RecordKind::Input, p).unwrap();
        }
        wal.sync().unwrap();
        let files = wal.segment_files();
        drop(wal);
        let ends = layout(&payloads, segment_size);
        prop_assert_eq!(files.len(), ends.last().map_or(1, |e| e.0 + 1));

        // The first damaged byte: (segment, offset).
        let mut damage = (usize::MAX, u64::MAX);
        if let Some(at) = truncate {
            let last = files.len() - 1;
            let len = std::fs::metadata(&files[last]).unwrap().len();
            let new_len = at.index(len as usize + 1) as u64;
            std::fs::OpenOptions::new().write(true).open(&files[last]).unwrap().set_len(new_len).unwrap();
            damage = damage.min((last, new_len));
        }
        for (seg, at, bit) in &flips {
            let seg = seg.index(files.len());
            let mut bytes = std::fs::read(&files[seg]).unwrap();
            if bytes.is_empty() {
                continue;
            }
            let at = at.index(bytes.len());
            bytes[at] ^= 1 << bit;
            std::fs::write(&files[seg], &bytes).unwrap();
            damage = damage.min((seg, at as u64));
        }
        let untouched = ends.iter().take_while(|&&(seg, end)| (seg, end) <= damage).count();

        match super::test::recover_all(dir.path()) {
            Ok((recovery, records)) => {
                prop_assert!(records.len() >= untouched, "lost untouched records");
                prop_assert!(records.len() <= payloads.len());
                for (i, r) in records.iter().enumerate() {
                    prop_assert_eq!(r.lsn, i as u64 + 1);
                    prop_assert_eq!(&r.payload, &payloads[i]);
                }
                if flips.is_empty() {
                    prop_assert_eq!(records.len(), untouched);
                }
                // The log continues after the intact prefix.
                let (mut wal, again) = WalWriter::open(fs(), dir.path(), config).unwrap();
                prop_assert_eq!(again.next_lsn(), recovery.next_lsn());
                prop_assert_eq!(wal.append(RecordKind::Input, b"next").unwrap(), records.len() as u64 + 1);
                wal.sync().unwrap();
                drop(wal);
                let (_, after) = super::test::recover_all(dir.path()).unwrap();
                prop_assert_eq!(after.len(), records.len() + 1);
            }
            Err(WalError::Corrupt { file, offset, .. }) => {
                prop_assert!(!flips.is_empty(), "truncation alone is a torn tail");
                prop_assert!(files.contains(&file));
                prop_assert!(offset <= std::fs::metadata(&file).unwrap().len());
            }
            Err(other) => prop_assert!(false, "unexpected error {}", other),
        }
    }
}

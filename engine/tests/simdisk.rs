//! SimDisk behaviour: durability at sync, torn loss of unsynced sectors on crash, determinism
//! per seed, refusal after a crash, injected errors and virtual latency.

use std::time::Duration;

use engine::simdisk::{DiskImage, SimDisk};
use redb::StorageBackend;

const SECTOR: u64 = 512;

/// A disk of `sectors` zeroed, synced sectors.
fn synced_disk(seed: u64, sectors: u64) -> SimDisk {
    let disk = SimDisk::builder().seed(seed).sector_bytes(SECTOR).build();
    disk.set_len(sectors * SECTOR).unwrap();
    disk.sync_data().unwrap();
    disk
}

/// Which sectors of `image` hold `fill` (the rest must hold zero: nothing else was written).
fn sectors_holding(image: &DiskImage, sectors: u64, fill: u8) -> Vec<bool> {
    (0..sectors)
        .map(|s| {
            let bytes = &image.as_bytes()[(s * SECTOR) as usize..((s + 1) * SECTOR) as usize];
            let new = bytes.iter().all(|b| *b == fill);
            assert!(
                new || bytes.iter().all(|b| *b == 0),
                "sector {s} is neither old nor new: torn inside a sector"
            );
            new
        })
        .collect()
}

#[test]
fn synced_data_survives_a_crash() {
    let disk = synced_disk(1, 8);
    disk.write(0, &[7u8; 4096]).unwrap();
    disk.sync_data().unwrap();
    assert_eq!(disk.dirty_sectors(), 0);
    let image = disk.crash();
    assert_eq!(image.len_bytes(), 4096);
    assert!(image.as_bytes().iter().all(|b| *b == 7));
}

#[test]
fn unsynced_sectors_are_torn_at_sector_granularity() {
    let sectors = 64;
    let disk = synced_disk(2, sectors);
    disk.write(0, &vec![9u8; (sectors * SECTOR) as usize])
        .unwrap();
    assert_eq!(disk.dirty_sectors(), sectors as usize);
    // Reads see the volatile image before the crash.
    let mut out = [0u8; 16];
    disk.read(100, &mut out).unwrap();
    assert_eq!(out, [9u8; 16]);
    let survived = sectors_holding(&disk.crash(), sectors, 9);
    let count = survived.iter().filter(|s| **s).count();
    // With survival probability ½ over 64 sectors, both extremes are (2^-64)-unlikely: the
    // write was torn, some sectors made it and some did not.
    assert!(count > 0 && count < sectors as usize, "survived {count}");
}

#[test]
fn survival_probability_extremes() {
    for (p, expect) in [(0.0, false), (1.0, true)] {
        let disk = SimDisk::builder()
            .seed(3)
            .sector_survival_probability(p)
            .build();
        disk.set_len(8 * SECTOR).unwrap();
        disk.sync_data().unwrap();
        disk.write(0, &vec![5u8; (8 * SECTOR) as usize]).unwrap();
        let survived = sectors_holding(&disk.crash(), 8, 5);
        assert!(survived.iter().all(|s| *s == expect), "p={p}: {survived:?}");
    }
}

#[test]
fn partial_sector_write_dirties_whole_sector_only() {
    let disk = synced_disk(4, 4);
    // 10 bytes straddling sectors 1 and 2.
    disk.write(SECTOR * 2 - 5, &[1u8; 10]).unwrap();
    assert_eq!(disk.dirty_sectors(), 2);
}

#[test]
fn unsynced_growth_may_be_lost() {
    let mut lengths = std::collections::BTreeSet::new();
    for seed in 0..32 {
        let disk = SimDisk::builder().seed(seed).build();
        disk.set_len(SECTOR).unwrap();
        lengths.insert(disk.crash().len_bytes());
    }
    assert_eq!(lengths.into_iter().collect::<Vec<_>>(), vec![0, SECTOR]);
}

#[test]
fn same_seed_same_outcome_different_seed_different() {
    let run = |seed: u64| {
        let disk = synced_disk(seed, 64);
        disk.write(0, &vec![3u8; (64 * SECTOR) as usize]).unwrap();
        disk.crash()
    };
    assert_eq!(run(10), run(10));
    assert_ne!(run(10), run(11));
}

#[test]
fn crashed_instance_refuses_every_op_and_clones_too() {
    let disk = synced_disk(5, 4);
    let clone = disk.clone();
    let image = disk.crash();
    assert!(clone.is_crashed());
    let mut out = [0u8; 4];
    assert!(clone.read(0, &mut out).is_err());
    assert!(clone.write(0, &[1]).is_err());
    assert!(clone.sync_data().is_err());
    assert!(clone.set_len(0).is_err());
    assert!(StorageBackend::len(&clone).is_err());
    // A second crash returns the same image.
    assert_eq!(disk.crash(), image);
    // A fresh disk reopens from the image.
    let reopened = SimDisk::builder().image(image.clone()).build();
    assert_eq!(StorageBackend::len(&reopened).unwrap(), image.len_bytes());
    reopened.write(0, &[1]).unwrap();
}

#[test]
fn crash_and_reopen_continues_the_rng_stream_deterministically() {
    let history = |seed: u64| {
        let mut disk = synced_disk(seed, 16);
        let mut images = Vec::new();
        for round in 0..4u8 {
            disk.write(0, &vec![round + 1; (16 * SECTOR) as usize])
                .unwrap();
            let next = disk.crash_and_reopen();
            images.push(disk.crash());
            disk = next;
        }
        images
    };
    assert_eq!(history(6), history(6));
}

#[test]
fn fail_next_switches_fail_exactly_n_ops() {
    let disk = synced_disk(7, 4);
    disk.fail_next_writes(2);
    assert!(disk.write(0, &[1; 8]).is_err());
    assert!(disk.write(0, &[1; 8]).is_err());
    disk.write(0, &[1; 8]).unwrap();
    disk.fail_next_syncs(1);
    let err = disk.sync_data().unwrap_err();
    assert!(err.to_string().contains("injected"), "{err}");
    disk.sync_data().unwrap();
    disk.fail_next_reads(1);
    let mut out = [0u8; 8];
    assert!(disk.read(0, &mut out).is_err());
    disk.read(0, &mut out).unwrap();
    assert_eq!(out, [1; 8]);
    disk.fail_next_ops(3);
    assert!(disk.read(0, &mut out).is_err());
    assert!(disk.write(0, &[2]).is_err());
    assert!(disk.sync_data().is_err());
    disk.sync_data().unwrap();
    assert_eq!(disk.stats().injected_errors, 7);
}

#[test]
fn failed_sync_keeps_unsynced_sectors_volatile() {
    let disk = SimDisk::builder()
        .seed(8)
        .sector_survival_probability(0.0)
        .build();
    disk.set_len(64 * SECTOR).unwrap();
    disk.sync_data().unwrap();
    disk.write(0, &vec![4u8; (64 * SECTOR) as usize]).unwrap();
    disk.fail_next_syncs(1);
    assert!(disk.sync_data().is_err());
    // Some sectors went out before the error, the rest are still dirty; with survival 0 a
    // crash keeps exactly the synced ones.
    let dirty = disk.dirty_sectors();
    assert!(dirty > 0 && dirty < 64, "dirty {dirty}");
    let survived = sectors_holding(&disk.crash(), 64, 4);
    assert_eq!(survived.iter().filter(|s| **s).count(), 64 - dirty);
}

#[test]
fn error_probability_draws_from_the_seed() {
    let pattern = |seed: u64| {
        let disk = SimDisk::builder()
            .seed(seed)
            .read_error_probability(0.5)
            .build();
        disk.set_len(SECTOR).unwrap();
        let mut out = [0u8; 1];
        (0..64)
            .map(|_| disk.read(0, &mut out).is_err())
            .collect::<Vec<_>>()
    };
    let a = pattern(9);
    assert_eq!(a, pattern(9));
    assert!(a.iter().any(|e| *e) && a.iter().any(|e| !*e));
}

#[test]
fn reads_and_writes_past_the_end_are_errors() {
    let disk = synced_disk(11, 1);
    let mut out = [0u8; 8];
    assert!(disk.read(SECTOR - 4, &mut out).is_err());
    assert!(disk.write(SECTOR - 4, &[0; 8]).is_err());
    assert!(disk.read(u64::MAX, &mut out).is_err());
}

#[test]
fn latency_accumulates_as_owed_virtual_time() {
    let disk = SimDisk::builder()
        .read_latency(Duration::from_millis(2))
        .write_latency(Duration::from_millis(3))
        .sync_latency(Duration::from_millis(10))
        .build();
    disk.set_len(SECTOR).unwrap();
    disk.write(0, &[1]).unwrap();
    disk.sync_data().unwrap();
    let mut out = [0u8; 1];
    disk.read(0, &mut out).unwrap();
    assert_eq!(disk.take_latency(), Duration::from_millis(3 + 3 + 10 + 2));
    assert_eq!(disk.take_latency(), Duration::ZERO);
}

#[test]
fn latency_jitter_is_bounded_and_seeded() {
    let owed = |seed: u64| {
        let disk = SimDisk::builder()
            .seed(seed)
            .read_latency(Duration::from_millis(1))
            .latency_jitter(Duration::from_millis(1))
            .build();
        disk.set_len(SECTOR).unwrap();
        disk.take_latency();
        let mut out = [0u8; 1];
        for _ in 0..100 {
            disk.read(0, &mut out).unwrap();
        }
        disk.take_latency()
    };
    let a = owed(12);
    assert_eq!(a, owed(12));
    assert!(
        a > Duration::from_millis(100) && a <= Duration::from_millis(200),
        "{a:?}"
    );
}

#[test]
fn a_given_rng_is_the_same_as_its_seed() {
    use rand::SeedableRng;
    let torn = |disk: SimDisk| {
        disk.set_len(32 * SECTOR).unwrap();
        disk.sync_data().unwrap();
        disk.write(0, &vec![6u8; (32 * SECTOR) as usize]).unwrap();
        disk.crash()
    };
    let by_seed = torn(SimDisk::builder().seed(21).build());
    let by_rng = torn(
        SimDisk::builder()
            .rng(rand_chacha::ChaCha8Rng::seed_from_u64(21))
            .build(),
    );
    assert_eq!(by_seed, by_rng);
}

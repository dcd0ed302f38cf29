//! Creating a redb store is crash-atomic: a crash (or an I/O error) at any point of creating
//! the store on a SimDisk, or of the open that takes up an interrupted creation, leaves a disk
//! the next open accepts, as the complete empty store. The creation is walked through every one
//! of its mutating disk operations in turn (write, length change, sync), with torn sectors.
//! The same for a real file, created under a temporary name and renamed into place.

use engine::redb_backend::RedbBackend;
use engine::simdisk::{DiskImage, SimDisk};
use engine::{BlockData, ColdStorageRead, ColdStorageWrite, Header};

/// Seeds per crash point: each draws another pattern of surviving sectors.
const SEEDS: u64 = 4;
/// More mutating operations than creating a store takes (the walks check they reach the end).
const MAX_OPS: u64 = 200;

fn block(number: u64) -> BlockData {
    let header = Header {
        number,
        ..Header::default()
    }
    .seal();
    BlockData::new(header, Vec::new(), Vec::new()).unwrap()
}

/// A disk from `image` with torn writes: half of the unsynced sectors survive a crash, sectors
/// of 64 bytes or 512 (by seed), so a header write can tear too.
fn disk(seed: u64, image: DiskImage) -> SimDisk {
    SimDisk::builder()
        .seed(seed)
        .sector_bytes(if seed.is_multiple_of(2) { 512 } else { 64 })
        .sector_survival_probability(0.5)
        .image(image)
        .build()
}

fn empty() -> DiskImage {
    DiskImage::from_bytes(Vec::new())
}

/// The store on `image` opens empty, takes a block, and still holds it after a crash.
async fn opens_as_the_empty_store(seed: u64, image: DiskImage, context: &str) {
    let first = disk(seed ^ 0x5eed, image);
    let backend = RedbBackend::open_sim(first.clone())
        .unwrap_or_else(|e| panic!("{context}: the next open fails: {e}"));
    assert_eq!(backend.get_latest_block().await, Ok(None), "{context}");
    backend.append_block(block(0)).await.unwrap();
    drop(backend);
    let after = disk(seed ^ 0xa11, first.crash());
    let backend = RedbBackend::open_sim(after).unwrap();
    assert_eq!(backend.get_latest_block().await, Ok(Some(0)), "{context}");
}

/// Opens a store on `image` with a crash after `k` mutating operations. `None` when the open
/// finished first (the disk untouched by the crash); else the image the crash left.
fn open_crashing_after(seed: u64, image: DiskImage, k: u64) -> Option<DiskImage> {
    let disk = disk(seed, image);
    disk.crash_after_ops(k);
    let opened = RedbBackend::open_sim(disk.clone());
    if opened.is_ok() && !disk.is_crashed() {
        return None;
    }
    drop(opened);
    Some(disk.crash())
}

#[tokio::test(start_paused = true)]
async fn a_crash_after_any_write_of_creation_leaves_the_empty_store_or_nothing() {
    let mut completed_at = None;
    for k in 1..=MAX_OPS {
        let mut crashed = false;
        for seed in 0..SEEDS {
            let Some(image) = open_crashing_after(seed, empty(), k) else {
                continue;
            };
            crashed = true;
            let context = format!("crash after operation {k} of creation, seed {seed}");
            opens_as_the_empty_store(seed, image, &context).await;
        }
        if !crashed {
            completed_at = Some(k);
            break;
        }
    }
    let ops = completed_at.expect("creation finishes within MAX_OPS operations");
    assert!(
        ops > 3,
        "creation took only {ops} operations: nothing walked"
    );
}

#[tokio::test(start_paused = true)]
async fn a_crash_in_the_open_that_takes_up_an_interrupted_creation_is_harmless_too() {
    // Crash creation after each of its first operations, then crash the next open after each
    // of its operations: a third open still finds the empty store.
    for k in 1..=12 {
        for seed in 0..2 {
            let Some(interrupted) = open_crashing_after(seed, empty(), k) else {
                continue;
            };
            for j in 1..=MAX_OPS {
                let Some(image) = open_crashing_after(seed + 100, interrupted.clone(), j) else {
                    break;
                };
                let context = format!(
                    "crash after operation {k} of creation, then {j} of the repair, seed {seed}"
                );
                opens_as_the_empty_store(seed, image, &context).await;
            }
        }
    }
}

#[tokio::test(start_paused = true)]
async fn an_io_error_during_creation_leaves_a_disk_the_retry_and_a_crash_accept() {
    for k in 0..MAX_OPS {
        let mut failed = false;
        for seed in 0..SEEDS {
            let failing = disk(seed, empty());
            failing.fail_after_ops(k);
            if RedbBackend::open_sim(failing.clone()).is_ok()
                && failing.stats().injected_errors == 0
            {
                continue;
            }
            failed = true;
            let context = format!("I/O error at operation {} of creation, seed {seed}", k + 1);
            // The process goes on: its retry on the same disk creates the store.
            let retry = RedbBackend::open_sim(failing.clone())
                .unwrap_or_else(|e| panic!("{context}: the retry fails: {e}"));
            assert_eq!(retry.get_latest_block().await, Ok(None), "{context}");
            drop(retry);
            // Or it crashes right after the error, before any retry.
            let crashing = disk(seed, empty());
            crashing.fail_after_ops(k);
            let _ = RedbBackend::open_sim(crashing.clone());
            opens_as_the_empty_store(seed, crashing.crash(), &context).await;
        }
        if !failed {
            return;
        }
    }
    panic!("creation did not finish within {MAX_OPS} operations");
}

#[tokio::test(start_paused = true)]
async fn a_file_that_is_not_a_store_is_refused_and_left_untouched() {
    let mut bytes = vec![0u8; 8192];
    bytes[4000] = 7;
    let foreign = DiskImage::from_bytes(bytes);
    let disk = disk(1, foreign.clone());
    let error = RedbBackend::open_sim(disk.clone()).unwrap_err();
    assert!(error.to_string().contains("not a redb store"), "{error}");
    assert_eq!(disk.crash(), foreign, "a foreign file was modified");
}

#[test]
fn a_file_is_created_under_a_temporary_name_and_renamed_into_place() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cold.redb");
    let creating = dir.path().join("cold.redb.creating");
    // An interrupted creation left a half-written temporary file: it is started over.
    std::fs::write(&creating, b"half a header").unwrap();
    let backend = RedbBackend::open_file(&path).unwrap();
    drop(backend);
    assert!(path.exists(), "the store is in place");
    assert!(!creating.exists(), "the temporary file was renamed");
    RedbBackend::open_file(&path).unwrap();
}

#[test]
fn a_file_in_place_is_opened_never_initialized() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cold.redb");
    std::fs::write(&path, b"").unwrap();
    assert!(
        RedbBackend::open_file(&path).is_err(),
        "an empty file was taken as a store"
    );
    assert_eq!(std::fs::read(&path).unwrap(), b"", "the file was written");
}

//! Durable appends against the disk's own limit, measured in one run on one directory.
//!
//! Group `durable_append`:
//! - `fsync` writes 512 bytes to a small file and syncs its data: the disk's fsync rate, the
//!   limit the durable-append target is stated against;
//! - `commit_writes` replays, into a file of the same length, exactly the writes (offsets and
//!   lengths) one single-block commit made, then syncs: the disk's limit for the volume a
//!   commit writes. The bench prints that volume (pages and bytes per commit) first;
//! - `block_bytes` writes one 100-transaction block's own encoding (postcard, the bytes any
//!   durable design must put on the disk for it: a write-ahead log's record, say) at the next
//!   offset of a preallocated log (wrapping at its end) and syncs: the limit for a
//!   single-block append on this disk whatever the storage layout. The bench prints the
//!   encoding's length first;
//! - `validate_block` runs one such block's input check (`BlockData::validate`: lengths, the
//!   header's hash, gas order, topic counts), which every append runs before it writes
//!   anything: CPU a durable append spends on top of its bytes whatever the layout (the
//!   transaction hashes are the hash index's cost, not the check's);
//! - `append_N` appends a batch of N 100-transaction blocks to redb on a real file in one
//!   durable commit; `append_1_of_1_tx` one block of a single transaction.
//!
//! `append_1` beside `fsync` is single-block appends as a fraction of the fsync rate; beside
//! `commit_writes`, how close an append comes to writing its own pages. The N at which
//! `append_N` takes well over one fsync's time is the batch size at which appends stop being
//! fsync-bound.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use benches::{Appends, TXS_PER_BLOCK, bench_appends, block, runtime};
use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, Criterion, Throughput, criterion_group, criterion_main};
use engine::ColdStorageWrite;
use engine::redb_backend::RedbBackend;
use tokio::runtime::Runtime;

/// Batch sizes measured, in blocks per commit.
const BATCHES: [u64; 6] = [1, 2, 4, 8, 16, 32];
/// Single-block commits made before the recorded one, so the store has grown indexes.
const RECORDING_WARM_COMMITS: u64 = 64;
/// Single-block commits whose writes are averaged for the printed volume.
const RECORDED_COMMITS: u64 = 32;
/// Length of the preallocated log `block_bytes` writes into, wrapping around, in bytes.
const LOG_BYTES: u64 = 64 << 20;
/// redb's page size, for the printed page count.
const PAGE_BYTES: u64 = 4096;

/// One write of a commit: its offset and length in bytes.
type Extent = (u64, usize);

/// The writes since the last sync, and those of the last synced commit.
#[derive(Debug, Default)]
struct Writes {
    pending: Vec<Extent>,
    last_commit: Vec<Extent>,
    bytes_synced: u64,
    syncs: u64,
}

/// A redb storage on a plain file that records every write between two syncs.
#[derive(Debug, Clone)]
struct Recording {
    file: Arc<File>,
    writes: Arc<Mutex<Writes>>,
}

impl Recording {
    fn writes(&self) -> std::sync::MutexGuard<'_, Writes> {
        self.writes.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl redb::StorageBackend for Recording {
    fn len(&self) -> std::io::Result<u64> {
        Ok(self.file.metadata()?.len())
    }

    fn read(&self, offset: u64, out: &mut [u8]) -> std::io::Result<()> {
        self.file.read_exact_at(out, offset)
    }

    fn set_len(&self, len: u64) -> std::io::Result<()> {
        self.file.set_len(len)
    }

    fn sync_data(&self) -> std::io::Result<()> {
        self.file.sync_data()?;
        let mut writes = self.writes();
        writes.last_commit = std::mem::take(&mut writes.pending);
        writes.bytes_synced += writes
            .last_commit
            .iter()
            .map(|&(_, n)| n as u64)
            .sum::<u64>();
        writes.syncs += 1;
        Ok(())
    }

    fn write(&self, offset: u64, data: &[u8]) -> std::io::Result<()> {
        self.writes().pending.push((offset, data.len()));
        self.file.write_all_at(data, offset)
    }
}

/// What single-block commits write: the extents of one, and the store's length after it.
struct CommitWrites {
    extents: Vec<Extent>,
    store_bytes: u64,
}

/// Appends single blocks to a recording store in `dir` and returns the last commit's writes,
/// after printing the average volume of [`RECORDED_COMMITS`] commits.
fn record_commit_writes(dir: &Path, rt: &Runtime) -> CommitWrites {
    let file = File::options()
        .read(true)
        .write(true)
        .create_new(true)
        .open(dir.join("recorded.redb"))
        .expect("create the recorded store");
    let storage = Recording {
        file: Arc::new(file),
        writes: Arc::default(),
    };
    let backend = RedbBackend::builder()
        .open_storage(storage.clone())
        .expect("open the recorded store");
    let append = |n| rt.block_on(backend.append_block(block(n))).expect("append");
    (0..RECORDING_WARM_COMMITS).for_each(append);
    let (bytes_before, syncs_before) = {
        let writes = storage.writes();
        (writes.bytes_synced, writes.syncs)
    };
    (RECORDING_WARM_COMMITS..RECORDING_WARM_COMMITS + RECORDED_COMMITS).for_each(append);
    let writes = storage.writes();
    let commits = writes.syncs - syncs_before;
    let per_commit = (writes.bytes_synced - bytes_before) / commits.max(1);
    eprintln!(
        "durable: a single-block commit writes {per_commit} bytes ({} pages of {PAGE_BYTES} \
         bytes) on average over {commits} syncs; the replayed one wrote {} extents",
        per_commit / PAGE_BYTES,
        writes.last_commit.len()
    );
    CommitWrites {
        extents: writes.last_commit.clone(),
        store_bytes: storage.file.metadata().expect("store length").len(),
    }
}

/// `validate_block`, then `block_bytes`: one block's encoding appended to a preallocated log in
/// `dir`, then synced.
fn bench_block_bytes(group: &mut BenchmarkGroup<'_, WallTime>, dir: &Path) {
    let data = block(0);
    group.bench_function("validate_block", |b| {
        b.iter(|| data.validate().expect("a valid block"))
    });
    let record = postcard::to_allocvec(&data).expect("encode a block");
    let len = record.len() as u64;
    eprintln!("durable: one block of {TXS_PER_BLOCK} transactions encodes to {len} bytes");
    let log = File::create(dir.join("log.bin")).expect("create the log");
    // Written out, not `set_len`: a write into a hole allocates blocks, and its sync then
    // commits that allocation too, which a log reusing its space would not pay.
    let zeros = vec![0; 1 << 20];
    for offset in (0..LOG_BYTES).step_by(zeros.len()) {
        log.write_all_at(&zeros, offset)
            .expect("preallocate the log");
    }
    log.sync_all().expect("sync the preallocated log");
    let mut at = 0;
    group.bench_function("block_bytes", |b| {
        b.iter(|| {
            if at + len > LOG_BYTES {
                at = 0;
            }
            log.write_all_at(&record, at).expect("write");
            log.sync_data().expect("fsync");
            at += len;
        })
    });
}

fn durable(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    let rt = runtime();
    let commit = record_commit_writes(dir.path(), &rt);
    let mut group = c.benchmark_group("durable_append");
    group.sample_size(10);
    let file = File::create(dir.path().join("fsync.bin")).expect("create");
    group.bench_function("fsync", |b| {
        b.iter(|| {
            file.write_all_at(&[0x5a; 512], 0).expect("write");
            file.sync_data().expect("fsync");
        })
    });
    let replay = File::create(dir.path().join("replay.bin")).expect("create");
    replay
        .set_len(commit.store_bytes)
        .expect("size the replay file");
    let largest = commit.extents.iter().map(|&(_, n)| n).max().unwrap_or(0);
    let data = vec![0xa5; largest];
    group.bench_function("commit_writes", |b| {
        b.iter(|| {
            for &(offset, len) in &commit.extents {
                replay.write_all_at(&data[..len], offset).expect("write");
            }
            replay.sync_data().expect("fsync");
        })
    });
    bench_block_bytes(&mut group, dir.path());
    let backend = RedbBackend::open_file(dir.path().join("append.redb")).expect("open file");
    let mut next = 0u64;
    for batch in BATCHES {
        group.throughput(Throughput::Elements(batch));
        let name = format!("append_{batch}");
        let txs = TXS_PER_BLOCK;
        let appends = Appends {
            name: &name,
            batch,
            txs,
        };
        bench_appends(&mut group, appends, &rt, &backend, &mut next);
    }
    group.throughput(Throughput::Elements(1));
    let appends = Appends {
        name: "append_1_of_1_tx",
        batch: 1,
        txs: 1,
    };
    bench_appends(&mut group, appends, &rt, &backend, &mut next);
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(3));
    targets = durable
}
criterion_main!(benches);

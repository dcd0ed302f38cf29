//! Raw redb backend benches: appending a 100-transaction block (one durable commit per block)
//! on a real temp file and on SimDisk, the same in batches of 32 blocks (one commit per batch),
//! and `get_header` by number.

use std::time::Duration;

use benches::block;
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use engine::redb_backend::RedbBackend;
use engine::simdisk::SimDisk;
use engine::{BlockData, ColdStorageRead, ColdStorageWrite, HeaderSpecifier};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("tokio runtime")
}

/// Appends one prepared block per iteration to `backend`, numbering on from its latest.
fn bench_append(c: &mut Criterion, name: &str, backend: RedbBackend) {
    let rt = runtime();
    let mut next = 0u64;
    let mut group = c.benchmark_group("redb_append_block");
    group.throughput(Throughput::Elements(1));
    group.bench_function(name, |b| {
        b.iter_batched(
            || {
                let blk = block(next);
                next += 1;
                blk
            },
            |blk| rt.block_on(backend.append_block(blk)).expect("append"),
            BatchSize::SmallInput,
        )
    });
    group.finish();
}

/// Appends a batch of `BATCH` blocks per iteration (one commit per batch).
fn bench_append_batch(c: &mut Criterion, name: &str, backend: RedbBackend) {
    const BATCH: u64 = 32;
    let rt = runtime();
    let mut next = 0u64;
    let mut group = c.benchmark_group("redb_append_blocks_32");
    group.throughput(Throughput::Elements(BATCH));
    group.bench_function(name, |b| {
        b.iter_batched(
            || {
                let blocks: Vec<BlockData> = (next..next + BATCH).map(block).collect();
                next += BATCH;
                blocks
            },
            |blocks| rt.block_on(backend.append_blocks(blocks)).expect("append"),
            BatchSize::SmallInput,
        )
    });
    group.finish();
}

fn append_batch(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    let backend = RedbBackend::open_file(dir.path().join("bench.redb")).expect("open file");
    bench_append_batch(c, "file", backend);
    let backend = RedbBackend::open_sim(SimDisk::builder().build()).expect("open simdisk");
    bench_append_batch(c, "simdisk", backend);
}

fn append_file(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    let backend = RedbBackend::open_file(dir.path().join("bench.redb")).expect("open file");
    bench_append(c, "file", backend);
}

fn append_simdisk(c: &mut Criterion) {
    let backend = RedbBackend::open_sim(SimDisk::builder().build()).expect("open simdisk");
    bench_append(c, "simdisk", backend);
}

fn get_header(c: &mut Criterion) {
    let rt = runtime();
    let dir = tempfile::tempdir().expect("tempdir");
    let backend = RedbBackend::open_file(dir.path().join("bench.redb")).expect("open file");
    let blocks: Vec<BlockData> = (0..1000).map(block).collect();
    rt.block_on(backend.append_blocks(blocks)).expect("fill");
    let mut n = 0u64;
    c.bench_function("redb_get_header_by_number", |b| {
        b.iter(|| {
            n = (n + 7) % 1000;
            rt.block_on(backend.get_header(HeaderSpecifier::Number(n)))
                .expect("read")
                .expect("present")
        })
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(3));
    targets = append_file, append_simdisk, append_batch, get_header
}
criterion_main!(benches);

//! Raw redb backend benches: appending a 100-transaction block (one durable commit per block)
//! on a real temp file and on SimDisk, the same in batches of 32 blocks (one commit per batch),
//! and `get_header` by number.

use std::time::Duration;

use benches::{bench_appends, block};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use engine::redb_backend::RedbBackend;
use engine::simdisk::SimDisk;
use engine::{BlockData, ColdStorageRead, ColdStorageWrite, HeaderSpecifier};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("tokio runtime")
}

/// Appends `batch` blocks per iteration to `backend` (one commit per iteration), as function
/// `name` of group `group_name`.
fn bench_append(
    c: &mut Criterion,
    (group_name, name): (&str, &str),
    batch: u64,
    backend: RedbBackend,
) {
    let rt = runtime();
    let mut next = 0u64;
    let mut group = c.benchmark_group(group_name);
    group.throughput(Throughput::Elements(batch));
    bench_appends(&mut group, (name, batch), &rt, &backend, &mut next);
    group.finish();
}

/// Batches of 32 blocks, one commit each.
fn bench_append_batch(c: &mut Criterion, name: &str, backend: RedbBackend) {
    bench_append(c, ("redb_append_blocks_32", name), 32, backend);
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
    bench_append(c, ("redb_append_block", "file"), 1, backend);
}

fn append_simdisk(c: &mut Criterion) {
    let backend = RedbBackend::open_sim(SimDisk::builder().build()).expect("open simdisk");
    bench_append(c, ("redb_append_block", "simdisk"), 1, backend);
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

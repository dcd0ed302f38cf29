//! Raw redb backend benches: appending a 100-transaction block (one durable commit per block)
//! on a real temp file and on SimDisk, and the same in batches of 32 blocks (one commit per
//! batch). (Reads of the raw redb backend are in the `engine` bench, beside the handle's.)

use std::time::Duration;

use benches::{Appends, TXS_PER_BLOCK, bench_appends, runtime};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use engine::redb_backend::RedbBackend;
use engine::simdisk::SimDisk;

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
    let txs = TXS_PER_BLOCK;
    let appends = Appends { name, batch, txs };
    bench_appends(&mut group, appends, &rt, &backend, &mut next);
    group.finish();
}

/// Batches of 32 blocks, one commit each.
fn bench_append_batch(c: &mut Criterion, name: &str, backend: RedbBackend) {
    bench_append(c, ("redb_append_32_blocks_of_100_txs", name), 32, backend);
}

fn append_batch(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    let backend = RedbBackend::open_file(dir.path().join("bench.redb")).expect("open file");
    bench_append_batch(c, "file", backend);
    bench_append_batch(c, "simdisk", simdisk());
}

/// A store on SimDisk whose writes have no deadline to speak of: the bench measures speed, and
/// SimDisk stalls when redb doubles the file (it copies the image and marks every new sector
/// dirty; seen here: 2.4 s for one append at ~6,700 blocks, over the default 2 s write timeout).
fn simdisk() -> RedbBackend {
    RedbBackend::builder()
        .write_timeout(Duration::from_secs(600))
        .open_sim(SimDisk::builder().build())
        .expect("open simdisk")
}

fn append_file(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    let backend = RedbBackend::open_file(dir.path().join("bench.redb")).expect("open file");
    bench_append(c, ("redb_append_block_of_100_txs", "file"), 1, backend);
}

fn append_simdisk(c: &mut Criterion) {
    bench_append(c, ("redb_append_block_of_100_txs", "simdisk"), 1, simdisk());
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(3));
    targets = append_file, append_simdisk, append_batch
}
criterion_main!(benches);

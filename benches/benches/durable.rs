//! Durable appends against the disk's own limit, measured in one run on one directory.
//!
//! Group `durable_append`: `fsync` writes 512 bytes to a small file and syncs its data (the
//! disk's fsync rate); `append_N` appends a batch of N 100-transaction blocks to redb on a
//! real file in one durable commit. `append_1` beside `fsync` is single-block appends as a
//! fraction of the fsync rate; the N at which `append_N` takes well over one fsync's time is
//! the batch size at which appends stop being fsync-bound.

use std::fs::File;
use std::io::{Seek, SeekFrom, Write};
use std::time::Duration;

use benches::bench_appends;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use engine::redb_backend::RedbBackend;

/// Batch sizes measured, in blocks per commit.
const BATCHES: [u64; 6] = [1, 2, 4, 8, 16, 32];

fn durable(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut group = c.benchmark_group("durable_append");
    group.sample_size(10);
    let mut file = File::create(dir.path().join("fsync.bin")).expect("create");
    group.bench_function("fsync", |b| {
        b.iter(|| {
            file.seek(SeekFrom::Start(0)).expect("seek");
            file.write_all(&[0x5a; 512]).expect("write");
            file.sync_data().expect("fsync");
        })
    });
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("runtime");
    let backend = RedbBackend::open_file(dir.path().join("append.redb")).expect("open file");
    let mut next = 0u64;
    for batch in BATCHES {
        group.throughput(Throughput::Elements(batch));
        let name = format!("append_{batch}");
        bench_appends(&mut group, (&name, batch), &rt, &backend, &mut next);
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(3));
    targets = durable
}
criterion_main!(benches);

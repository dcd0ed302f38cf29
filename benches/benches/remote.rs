//! The remote backend over loopback TCP beside in-process redb: `get_header` and appending a
//! 100-transaction block (groups `remote_*`, functions `in_process` and `remote_loopback`),
//! each measured on both so the network's cost reads as a ratio. Both
//! sides are redb on a real temp file; the worker runs in this process on its own runtime
//! threads, the client talks to it over 127.0.0.1.

use std::time::Duration;

use benches::block;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use engine::redb_backend::RedbBackend;
use engine::remote::client::{RemoteBackend, RemoteConfig, TcpConnector};
use engine::remote::worker::{Worker, WorkerConfig};
use engine::{ColdStorageRead, ColdStorageWrite, HeaderSpecifier};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// A worker over a fresh store, listening on loopback, and a client for it.
fn remote(rt: &tokio::runtime::Runtime, dir: &tempfile::TempDir) -> RemoteBackend<TcpConnector> {
    let store = RedbBackend::open_file(dir.path().join("remote.redb")).expect("open store");
    let worker = Worker::new(store, WorkerConfig::default());
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .expect("bind loopback");
    let addr = listener.local_addr().expect("local addr");
    rt.spawn(async move { worker.serve(listener).await });
    RemoteBackend::new(TcpConnector { addr }, RemoteConfig::default())
}

fn local(dir: &tempfile::TempDir) -> RedbBackend {
    RedbBackend::open_file(dir.path().join("local.redb")).expect("open store")
}

fn get_header(c: &mut Criterion) {
    let rt = runtime();
    let dir = tempfile::tempdir().expect("temp dir");
    let remote = remote(&rt, &dir);
    let local = local(&dir);
    rt.block_on(async {
        for n in 0..64 {
            remote.append_block(block(n)).await.expect("append remote");
            local.append_block(block(n)).await.expect("append local");
        }
    });
    let mut group = c.benchmark_group("remote_get_header");
    group.bench_function("in_process", |b| {
        let mut n = 0;
        b.to_async(&rt).iter(|| {
            n = (n + 1) % 64;
            let local = &local;
            async move {
                local
                    .get_header(HeaderSpecifier::Number(n))
                    .await
                    .expect("read")
            }
        })
    });
    group.bench_function("remote_loopback", |b| {
        let mut n = 0;
        b.to_async(&rt).iter(|| {
            n = (n + 1) % 64;
            let remote = &remote;
            async move {
                remote
                    .get_header(HeaderSpecifier::Number(n))
                    .await
                    .expect("read")
            }
        })
    });
    group.finish();
}

fn append(c: &mut Criterion) {
    let rt = runtime();
    let dir = tempfile::tempdir().expect("temp dir");
    let remote = remote(&rt, &dir);
    let local = local(&dir);
    let mut group = c.benchmark_group("remote_append_block_100tx");
    group.throughput(Throughput::Elements(1));
    let mut next_local = 0;
    group.bench_function("in_process", |b| {
        b.to_async(&rt).iter(|| {
            next_local += 1;
            let (local, data) = (&local, block(next_local));
            async move { local.append_block(data).await.expect("append") }
        })
    });
    let mut next_remote = 0;
    group.bench_function("remote_loopback", |b| {
        b.to_async(&rt).iter(|| {
            next_remote += 1;
            let (remote, data) = (&remote, block(next_remote));
            async move { remote.append_block(data).await.expect("append") }
        })
    });
    group.finish();
}

criterion_group! {
    name = remote_benches;
    config = Criterion::default().measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1));
    targets = get_header, append
}
criterion_main!(remote_benches);

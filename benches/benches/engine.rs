//! The engine handle beside the raw in-memory backend, op by op: `append_block`, `get_header`
//! (cached and uncached), a selective `get_logs` over 10k blocks and stream throughput. The
//! handle/raw ratio is the cost of permits, task spawning, the cache and metrics.

use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use engine::backend::StreamParams;
use engine::stream::{LogStream, produce_default};
use engine::{
    BlockData, ColdStorage, ColdStorageRead, ColdStorageWrite, Config, Filter, HeaderSpecifier,
    MemBackend,
};
use model::ops::{address, block, log, transaction};
use tokio::runtime::Runtime;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

const BLOCKS: u64 = 10_000;
const STREAM_BLOCKS: u64 = 1_000;

/// Block `n`: one transaction with one log of address 0, or of address 1 every 100th block.
fn bench_block(n: u64) -> BlockData {
    let letter = u8::from(n.is_multiple_of(100));
    let receipt = engine::Receipt {
        success: true,
        cumulative_gas_used: 21_000,
        logs: vec![log(letter, &[0], &[1; 32])],
    };
    block(n, vec![transaction(2, n, &[0xab; 64])], vec![receipt])
}

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

fn filled(rt: &Runtime, blocks: u64) -> MemBackend {
    let mem = MemBackend::new();
    rt.block_on(async {
        for n in 0..blocks {
            mem.append_block(bench_block(n)).await.expect("append");
        }
    });
    mem
}

fn handle(rt: &Runtime, mem: &MemBackend, config: Config) -> ColdStorage<MemBackend> {
    let _guard = rt.enter();
    ColdStorage::new(mem.clone(), CancellationToken::new(), config)
}

fn append_block(c: &mut Criterion) {
    let rt = runtime();
    let mut group = c.benchmark_group("append_block");
    let raw = MemBackend::new();
    let next = AtomicU64::new(0);
    group.bench_function("raw", |b| {
        b.to_async(&rt).iter(|| async {
            let n = next.fetch_add(1, Ordering::Relaxed);
            raw.append_block(bench_block(n)).await.expect("append")
        })
    });
    let h = handle(&rt, &MemBackend::new(), Config::default());
    let next = AtomicU64::new(0);
    group.bench_function("handle", |b| {
        b.to_async(&rt).iter(|| async {
            let n = next.fetch_add(1, Ordering::Relaxed);
            h.append_block(bench_block(n)).await.expect("append")
        })
    });
    group.finish();
}

fn get_header(c: &mut Criterion) {
    let rt = runtime();
    let mem = filled(&rt, BLOCKS);
    let mut group = c.benchmark_group("get_header");
    let next = AtomicU64::new(0);
    let rotate = || next.fetch_add(7919, Ordering::Relaxed) % BLOCKS;
    group.bench_function("raw", |b| {
        b.to_async(&rt).iter(|| async {
            mem.get_header(HeaderSpecifier::Number(rotate()))
                .await
                .expect("read")
        })
    });
    // A one-entry cache and rotating numbers: every lookup misses and takes the permit path.
    let uncached = handle(
        &rt,
        &mem,
        Config::builder()
            .cache_entries(NonZeroUsize::new(1).expect("one"))
            .build(),
    );
    group.bench_function("handle_uncached", |b| {
        b.to_async(&rt).iter(|| async {
            uncached
                .get_header(HeaderSpecifier::Number(rotate()))
                .await
                .expect("read")
        })
    });
    let cached = handle(&rt, &mem, Config::default());
    rt.block_on(cached.get_header_by_number(42)).expect("warm");
    group.bench_function("handle_cached", |b| {
        b.to_async(&rt)
            .iter(|| async { cached.get_header_by_number(42).await.expect("read") })
    });
    group.finish();
}

fn get_logs(c: &mut Criterion) {
    let rt = runtime();
    let mem = filled(&rt, BLOCKS);
    let filter = Filter::range(0, BLOCKS - 1).with_addresses(vec![address(1)]);
    let mut group = c.benchmark_group("get_logs_10k_blocks_selective");
    group.bench_function("raw", |b| {
        b.to_async(&rt)
            .iter(|| async { mem.get_logs(&filter, 1000).await.expect("logs") })
    });
    let h = handle(&rt, &mem, Config::default());
    group.bench_function("handle", |b| {
        b.to_async(&rt)
            .iter(|| async { h.get_logs(filter.clone(), 1000).await.expect("logs") })
    });
    group.finish();
}

fn stream_logs(c: &mut Criterion) {
    let rt = runtime();
    let mem = filled(&rt, STREAM_BLOCKS);
    let filter = Filter::range(0, STREAM_BLOCKS - 1);
    let mut group = c.benchmark_group("stream_logs_1k_logs");
    group.throughput(Throughput::Elements(STREAM_BLOCKS));
    let deadline = Duration::from_secs(60);
    group.bench_function("raw", |b| {
        b.to_async(&rt).iter(|| async {
            let (sender, receiver) = mpsc::channel(256);
            let params = StreamParams {
                from: 0,
                to: STREAM_BLOCKS - 1,
                max_logs: 10_000,
                sender,
                deadline: engine::rt::deadline_after(deadline),
                anchor: None,
            };
            let produce = produce_default(&mem, &filter, params);
            let consume = LogStream::new(receiver).collect_all();
            let ((), (logs, error)) = tokio::join!(produce, consume);
            assert!(error.is_none() && logs.len() == STREAM_BLOCKS as usize);
        })
    });
    let h = handle(&rt, &mem, Config::default());
    group.bench_function("handle", |b| {
        b.to_async(&rt).iter(|| async {
            let stream = h
                .stream_logs(filter.clone(), 10_000, deadline)
                .await
                .expect("stream");
            let (logs, error) = stream.collect_all().await;
            assert!(error.is_none() && logs.len() == STREAM_BLOCKS as usize);
        })
    });
    group.finish();
}

criterion_group!(benches, append_block, get_header, get_logs, stream_logs);
criterion_main!(benches);

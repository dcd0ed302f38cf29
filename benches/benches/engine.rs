//! The engine handle beside its raw backend, op by op, on Mem and on redb (a real temp file).
//!
//! Each criterion group `{backend}_{op}` holds `raw` (the backend called directly) and
//! `handle` (the same call through an uncached `ColdStorage` over the same store), so
//! `scripts/bench-ratios.py` prints the handle's overhead as a ratio from one run. The Mem
//! `get_header` group also has `handle_cached` (the cache fast path). The handle/raw ratio is
//! the cost of permits, the tracker, the cache's bookkeeping and metrics.

use std::hint::black_box;
use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use benches::runtime;
use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, Criterion, criterion_group, criterion_main};
use engine::backend::StreamParams;
use engine::redb_backend::RedbBackend;
use engine::stream::{LogStream, produce_default};
use engine::{
    B256, BlockData, ColdResult, ColdStorage, ColdStorageBackend, ColdStorageRead, Config, Filter,
    HeaderSpecifier, MemBackend, ReceiptSpecifier, TransactionSpecifier,
};
use model::ops::{address, block, log, transaction};
use tokio::runtime::Runtime;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// Blocks in each store the reads run on.
const BLOCKS: u64 = 10_000;
/// Blocks a stream covers (one log each).
const STREAM_BLOCKS: u64 = 1_000;
/// Steps through the block numbers so consecutive reads hit different blocks.
const STRIDE: u64 = 7919;

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

/// A handle over `backend` whose cache never hits for rotating keys (one entry per map).
fn uncached<B: ColdStorageBackend>(rt: &Runtime, backend: B) -> ColdStorage<B> {
    let config = Config::builder()
        .cache_entries(NonZeroUsize::new(1).expect("one"))
        .build();
    let _guard = rt.enter();
    ColdStorage::new(backend, CancellationToken::new(), config)
}

/// The read ops of the table.
#[derive(Debug, Clone, Copy)]
enum Read {
    HeaderByNumber,
    HeaderByHash,
    TxByHash,
    ReceiptByHash,
    TxsInBlock,
    ReceiptsInBlock,
    LatestBlock,
    Logs,
}

impl Read {
    const ALL: [Read; 8] = [
        Read::HeaderByNumber,
        Read::HeaderByHash,
        Read::TxByHash,
        Read::ReceiptByHash,
        Read::TxsInBlock,
        Read::ReceiptsInBlock,
        Read::LatestBlock,
        Read::Logs,
    ];

    fn name(self) -> &'static str {
        match self {
            Read::HeaderByNumber => "get_header",
            Read::HeaderByHash => "get_header_by_hash",
            Read::TxByHash => "get_tx_by_hash",
            Read::ReceiptByHash => "get_receipt_by_tx_hash",
            Read::TxsInBlock => "get_transactions_in_block",
            Read::ReceiptsInBlock => "get_receipts_in_block",
            Read::LatestBlock => "get_latest_block",
            Read::Logs => "get_logs_10k_blocks_selective",
        }
    }
}

/// The keys the reads rotate through: each block's header hash and transaction hash.
struct Keys {
    headers: Vec<B256>,
    txs: Vec<B256>,
    selective: Filter,
}

impl Keys {
    fn new(blocks: &[BlockData]) -> Keys {
        Keys {
            headers: blocks.iter().map(|b| b.header.hash()).collect(),
            txs: blocks.iter().map(|b| b.transactions[0].hash()).collect(),
            selective: Filter::range(0, BLOCKS - 1).with_addresses(vec![address(1)]),
        }
    }
}

/// What a read op is run on: the raw backend or the handle.
trait Target {
    async fn read(&self, op: Read, keys: &Keys, n: u64) -> ColdResult<usize>;
}

/// The backend called directly.
struct Raw<'a, B>(&'a B);

impl<B: ColdStorageRead> Target for Raw<'_, B> {
    async fn read(&self, op: Read, keys: &Keys, n: u64) -> ColdResult<usize> {
        let i = n as usize;
        let b = self.0;
        Ok(match op {
            Read::HeaderByNumber => {
                usize::from(b.get_header(HeaderSpecifier::Number(n)).await?.is_some())
            }
            Read::HeaderByHash => {
                let spec = HeaderSpecifier::Hash(keys.headers[i]);
                usize::from(b.get_header(spec).await?.is_some())
            }
            Read::TxByHash => {
                let spec = TransactionSpecifier::Hash(keys.txs[i]);
                usize::from(b.get_transaction(spec).await?.is_some())
            }
            Read::ReceiptByHash => {
                let spec = ReceiptSpecifier::TxHash(keys.txs[i]);
                usize::from(b.get_receipt(spec).await?.is_some())
            }
            Read::TxsInBlock => b.get_transactions_in_block(n).await?.len(),
            Read::ReceiptsInBlock => b.get_receipts_in_block(n).await?.len(),
            Read::LatestBlock => usize::from(b.get_latest_block().await?.is_some()),
            Read::Logs => b.get_logs(&keys.selective, 1000).await?.len(),
        })
    }
}

impl<B: ColdStorageBackend> Target for ColdStorage<B> {
    async fn read(&self, op: Read, keys: &Keys, n: u64) -> ColdResult<usize> {
        let i = n as usize;
        Ok(match op {
            Read::HeaderByNumber => usize::from(self.get_header_by_number(n).await?.is_some()),
            Read::HeaderByHash => {
                usize::from(self.get_header_by_hash(keys.headers[i]).await?.is_some())
            }
            Read::TxByHash => usize::from(self.get_tx_by_hash(keys.txs[i]).await?.is_some()),
            Read::ReceiptByHash => {
                usize::from(self.get_receipt_by_tx_hash(keys.txs[i]).await?.is_some())
            }
            Read::TxsInBlock => self.get_transactions_in_block(n).await?.len(),
            Read::ReceiptsInBlock => self.get_receipts_in_block(n).await?.len(),
            Read::LatestBlock => usize::from(self.get_latest_block().await?.is_some()),
            Read::Logs => self.get_logs(keys.selective.clone(), 1000).await?.len(),
        })
    }
}

/// Measures `op` on `target` as function `name` of `group`, rotating through the blocks.
fn bench_read(
    group: &mut BenchmarkGroup<'_, WallTime>,
    rt: &Runtime,
    name: &str,
    target: &impl Target,
    (op, keys): (Read, &Keys),
) {
    let next = AtomicU64::new(0);
    group.bench_function(name, |b| {
        b.to_async(rt).iter(|| async {
            let n = next.fetch_add(STRIDE, Ordering::Relaxed) % BLOCKS;
            let found = target.read(op, keys, n).await.expect("read");
            assert!(found > 0, "{op:?} of block {n} found nothing");
            black_box(found)
        })
    });
}

/// The cache fast path: a `get_header` of one warm block through a handle with the default
/// cache, in the raw `get_header` group.
fn bench_cached(
    group: &mut BenchmarkGroup<'_, WallTime>,
    rt: &Runtime,
    cached: &ColdStorage<impl ColdStorageBackend>,
) {
    rt.block_on(cached.get_header_by_number(42)).expect("warm");
    group.bench_function("handle_cached", |b| {
        b.to_async(rt).iter(|| async {
            cached
                .get_header_by_number(42)
                .await
                .expect("read")
                .expect("found")
        })
    });
}

/// A stream of the logs of the first [`STREAM_BLOCKS`] blocks (one each), produced by the
/// backend's default producer into a channel and read to its end.
async fn raw_stream<B: ColdStorageRead>(backend: &B, filter: &Filter) {
    let (sender, receiver) = mpsc::channel(256);
    let params = StreamParams {
        from: 0,
        to: STREAM_BLOCKS - 1,
        max_logs: 10_000,
        sender,
        deadline: engine::rt::deadline_after(Duration::from_secs(60)),
        anchor: None,
    };
    let produce = produce_default(backend, filter, params);
    let consume = LogStream::new(receiver).collect_all();
    let ((), (logs, error)) = tokio::join!(produce, consume);
    assert!(error.is_none() && logs.len() == STREAM_BLOCKS as usize);
}

/// The same stream through the handle.
async fn handle_stream<B: ColdStorageBackend>(handle: &ColdStorage<B>, filter: &Filter) {
    let stream = handle
        .stream_logs(filter.clone(), 10_000, Duration::from_secs(60))
        .await
        .expect("stream");
    let (logs, error) = stream.collect_all().await;
    assert!(error.is_none() && logs.len() == STREAM_BLOCKS as usize);
}

fn bench_stream<B: ColdStorageBackend>(
    c: &mut Criterion,
    rt: &Runtime,
    label: &str,
    handle: &ColdStorage<B>,
) {
    let filter = Filter::range(0, STREAM_BLOCKS - 1);
    let mut group = c.benchmark_group(format!("{label}_stream_logs_1k_logs"));
    group.bench_function("raw", |b| {
        b.to_async(rt)
            .iter(|| raw_stream(handle.backend(), &filter))
    });
    group.bench_function("handle", |b| {
        b.to_async(rt).iter(|| handle_stream(handle, &filter))
    });
    group.finish();
}

/// Every read op and a stream, raw beside the uncached handle, on `backend` filled with the
/// bench's blocks.
fn reads<B: ColdStorageBackend + Clone>(c: &mut Criterion, label: &str, backend: B) {
    let rt = runtime();
    let blocks: Vec<BlockData> = (0..BLOCKS).map(bench_block).collect();
    let keys = Keys::new(&blocks);
    for chunk in blocks.chunks(1000) {
        rt.block_on(backend.append_blocks(chunk.to_vec()))
            .expect("fill");
    }
    let cached = {
        let _guard = rt.enter();
        ColdStorage::new(backend.clone(), CancellationToken::new(), Config::default())
    };
    let handle = uncached(&rt, backend);
    for op in Read::ALL {
        let mut group = c.benchmark_group(format!("{label}_{}", op.name()));
        bench_read(&mut group, &rt, "raw", &Raw(handle.backend()), (op, &keys));
        bench_read(&mut group, &rt, "handle", &handle, (op, &keys));
        if matches!(op, Read::HeaderByNumber) {
            bench_cached(&mut group, &rt, &cached);
        }
        group.finish();
    }
    bench_stream(c, &rt, label, &handle);
}

/// `append_block` raw beside the handle, both appending to one fresh store.
fn appends<B: ColdStorageBackend>(c: &mut Criterion, label: &str, backend: B, samples: usize) {
    let rt = runtime();
    let handle = uncached(&rt, backend);
    let next = AtomicU64::new(0);
    let block = || bench_block(next.fetch_add(1, Ordering::Relaxed));
    let mut group = c.benchmark_group(format!("{label}_append_block"));
    group.sample_size(samples);
    group.bench_function("raw", |b| {
        b.to_async(&rt).iter(|| async {
            handle
                .backend()
                .append_block(block())
                .await
                .expect("append")
        })
    });
    group.bench_function("handle", |b| {
        b.to_async(&rt)
            .iter(|| async { handle.append_block(block()).await.expect("append") })
    });
    group.finish();
}

fn mem(c: &mut Criterion) {
    reads(c, "mem", MemBackend::new());
    appends(c, "mem", MemBackend::new(), 100);
}

fn redb(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    let backend = RedbBackend::open_file(dir.path().join("reads.redb")).expect("open file");
    reads(c, "redb", backend);
    // One durable commit (an fsync) per append: a few samples are enough.
    let backend = RedbBackend::open_file(dir.path().join("appends.redb")).expect("open file");
    appends(c, "redb", backend, 10);
}

criterion_group!(benches, mem, redb);
criterion_main!(benches);

//! Shared fixtures for the criterion benches in `benches/benches/`.

use criterion::measurement::WallTime;
use criterion::{BatchSize, BenchmarkGroup};
use engine::redb_backend::RedbBackend;
use engine::{Address, B256, BlockData, ColdStorageWrite, Header, Log, Receipt, Transaction};
use tokio::runtime::Runtime;

/// The runtime a bench drives its futures on: one thread, as the handle's callers would
/// have it in a test, with the time and I/O drivers.
pub fn runtime() -> Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// Transactions in a bench block (the redb append target is stated for 100).
pub const TXS_PER_BLOCK: u64 = 100;

/// Block `n` with [`TXS_PER_BLOCK`] transactions, each with one log.
pub fn block(n: u64) -> BlockData {
    block_of(n, TXS_PER_BLOCK)
}

/// Block `n` with `txs` transactions, each with one log.
pub fn block_of(n: u64, txs: u64) -> BlockData {
    let header = Header {
        number: n,
        parent_hash: B256::from_u64(n.wrapping_sub(1)),
        timestamp: n * 12,
        extra: vec![],
    }
    .seal();
    let transactions = (0..txs)
        .map(|i| Transaction {
            sender: Address::repeat_byte(i as u8),
            nonce: n * TXS_PER_BLOCK + i,
            payload: vec![0xab; 64],
        })
        .collect();
    let receipts = (0..txs)
        .map(|i| Receipt {
            success: true,
            cumulative_gas_used: 21_000 * (i + 1),
            logs: vec![Log {
                address: Address::repeat_byte(7),
                topics: vec![B256::from_u64(i), B256::from_u64(n)],
                data: vec![1; 32],
            }],
        })
        .collect();
    BlockData::new(header, transactions, receipts).expect("bench block is valid")
}

/// What one append bench appends per iteration: `batch` blocks of `txs` transactions each, in
/// one commit.
#[derive(Debug, Clone, Copy)]
pub struct Appends<'a> {
    /// The function's name in its group.
    pub name: &'a str,
    /// Blocks per commit.
    pub batch: u64,
    /// Transactions per block.
    pub txs: u64,
}

/// Measures `appends` as a function of `group`, appending to `backend`, the blocks numbered on
/// from `next` (and prepared outside the timing).
pub fn bench_appends(
    group: &mut BenchmarkGroup<'_, WallTime>,
    Appends { name, batch, txs }: Appends<'_>,
    rt: &Runtime,
    backend: &RedbBackend,
    next: &mut u64,
) {
    group.bench_function(name, |b| {
        b.iter_batched(
            || {
                let blocks: Vec<BlockData> =
                    (*next..*next + batch).map(|n| block_of(n, txs)).collect();
                *next += batch;
                blocks
            },
            |blocks| rt.block_on(backend.append_blocks(blocks)).expect("append"),
            BatchSize::SmallInput,
        )
    });
}

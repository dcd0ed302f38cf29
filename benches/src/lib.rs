//! Shared fixtures for the criterion benches in `benches/benches/`.

use criterion::measurement::WallTime;
use criterion::{BatchSize, BenchmarkGroup};
use engine::redb_backend::RedbBackend;
use engine::{Address, B256, BlockData, ColdStorageWrite, Header, Log, Receipt, Transaction};
use tokio::runtime::Runtime;

/// Transactions in a bench block (the redb append target is stated for 100).
pub const TXS_PER_BLOCK: u64 = 100;

/// Block `n` with [`TXS_PER_BLOCK`] transactions, each with one log.
pub fn block(n: u64) -> BlockData {
    let header = Header {
        number: n,
        parent_hash: B256::from_u64(n.wrapping_sub(1)),
        timestamp: n * 12,
        extra: vec![],
    }
    .seal();
    let transactions = (0..TXS_PER_BLOCK)
        .map(|i| Transaction {
            sender: Address::repeat_byte(i as u8),
            nonce: n * TXS_PER_BLOCK + i,
            payload: vec![0xab; 64],
        })
        .collect();
    let receipts = (0..TXS_PER_BLOCK)
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

/// Measures function `name` of `group`: appending `batch` blocks per iteration to `backend` in
/// one commit, the blocks numbered on from `next` (and prepared outside the timing).
pub fn bench_appends(
    group: &mut BenchmarkGroup<'_, WallTime>,
    (name, batch): (&str, u64),
    rt: &Runtime,
    backend: &RedbBackend,
    next: &mut u64,
) {
    group.bench_function(name, |b| {
        b.iter_batched(
            || {
                let blocks: Vec<BlockData> = (*next..*next + batch).map(block).collect();
                *next += batch;
                blocks
            },
            |blocks| rt.block_on(backend.append_blocks(blocks)).expect("append"),
            BatchSize::SmallInput,
        )
    });
}

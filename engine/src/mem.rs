//! The in-memory backend.
//!
//! One `RwLock` guards every map (blocks by number plus the header-hash and transaction-hash
//! indexes), and every operation takes it exactly once, so every operation is atomic, including
//! `append_blocks`, `truncate_above` and `drain_above`. Writes first check and collect under the
//! lock (with deadline checks) and only then mutate, so an expired deadline leaves the store
//! untouched. Block arithmetic never wraps: "above `n`" is the range `(n, MAX]`, which is empty
//! for `n = u64::MAX`.
//!
//! Transaction-hash lookups answer with the lowest (block, index) holding that hash: the index
//! only records the first location it sees, and because appends go strictly upwards the first
//! location seen is the lowest, which survives any truncation that keeps it.
//!
//! Streams use the default producer ([`crate::stream::produce_default`]).

use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use crate::backend::{
    ColdStorageBackend, ColdStorageRead, ColdStorageWrite, Deadline, StreamParams, Timeouts,
};
use crate::error::{ColdResult, ColdStorageError};
use crate::types::{
    B256, BlockData, ColdReceipt, Confirmed, Filter, HeaderSpecifier, ReceiptSpecifier, RpcLog,
    SealedHeader, Transaction, TransactionSpecifier,
};

/// Builds a [`MemBackend`].
#[derive(Debug, Clone, Default)]
pub struct MemBackendBuilder {
    timeouts: Timeouts,
}

impl MemBackendBuilder {
    /// Sets the read and write timeouts the backend enforces.
    pub fn timeouts(mut self, timeouts: Timeouts) -> MemBackendBuilder {
        self.timeouts = timeouts;
        self
    }

    /// Builds an empty backend.
    pub fn build(self) -> MemBackend {
        MemBackend {
            state: Arc::new(RwLock::new(State::default())),
            timeouts: self.timeouts,
        }
    }
}

/// An in-memory backend. Clones share the same store.
#[derive(Debug, Clone)]
pub struct MemBackend {
    state: Arc<RwLock<State>>,
    timeouts: Timeouts,
}

impl Default for MemBackend {
    fn default() -> MemBackend {
        MemBackend::builder().build()
    }
}

#[derive(Debug, Default)]
struct State {
    blocks: BTreeMap<u64, BlockData>,
    header_hashes: BTreeMap<B256, u64>,
    /// Transaction hash → lowest (block, index) holding it.
    tx_hashes: BTreeMap<B256, (u64, usize)>,
}

/// The keys strictly above `block`, without computing `block + 1`.
fn above(block: u64) -> (Bound<u64>, Bound<u64>) {
    (Bound::Excluded(block), Bound::Unbounded)
}

impl State {
    fn latest(&self) -> Option<u64> {
        self.blocks.last_key_value().map(|(n, _)| *n)
    }

    fn block_by_hash(&self, hash: &B256) -> Option<&BlockData> {
        self.header_hashes
            .get(hash)
            .and_then(|n| self.blocks.get(n))
    }

    fn tx_location(&self, hash: &B256) -> Option<(&BlockData, usize)> {
        let (block, index) = self.tx_hashes.get(hash)?;
        Some((self.blocks.get(block)?, *index))
    }

    fn header(&self, spec: HeaderSpecifier) -> Option<SealedHeader> {
        let block = match spec {
            HeaderSpecifier::Number(n) => self.blocks.get(&n),
            HeaderSpecifier::Hash(hash) => self.block_by_hash(&hash),
        };
        block.map(|b| b.header.clone())
    }

    fn insert(&mut self, block: BlockData) {
        let number = block.number();
        debug_assert!(self.latest().is_none_or(|latest| latest < number));
        self.header_hashes.insert(block.header.hash(), number);
        for (index, tx) in block.transactions.iter().enumerate() {
            self.tx_hashes.entry(tx.hash()).or_insert((number, index));
        }
        self.blocks.insert(number, block);
    }

    /// Removes every block above `block` and its index entries.
    fn remove_above(&mut self, block: u64) {
        let removed = self.blocks.split_off_above(block);
        for data in removed.values() {
            self.header_hashes.remove(&data.header.hash());
            for tx in &data.transactions {
                let hash = tx.hash();
                if self
                    .tx_hashes
                    .get(&hash)
                    .is_some_and(|(location, _)| *location > block)
                {
                    self.tx_hashes.remove(&hash);
                }
            }
        }
        debug_assert!(self.latest().is_none_or(|latest| latest <= block));
    }
}

/// `BTreeMap::split_off` needs `block + 1`; this does the same without overflowing.
trait SplitAbove {
    fn split_off_above(&mut self, block: u64) -> Self;
}

impl SplitAbove for BTreeMap<u64, BlockData> {
    fn split_off_above(&mut self, block: u64) -> Self {
        match block.checked_add(1) {
            Some(first) => self.split_off(&first),
            None => BTreeMap::new(),
        }
    }
}

impl MemBackend {
    /// A builder with default timeouts.
    pub fn builder() -> MemBackendBuilder {
        MemBackendBuilder::default()
    }

    /// A new empty backend with default timeouts.
    pub fn new() -> MemBackend {
        MemBackend::default()
    }

    /// Another view of the same store that enforces `timeouts` (tests seed a store whose
    /// own timeouts are zero through one).
    pub fn with_timeouts(&self, timeouts: Timeouts) -> MemBackend {
        MemBackend {
            state: Arc::clone(&self.state),
            timeouts,
        }
    }

    fn read(&self) -> RwLockReadGuard<'_, State> {
        // A panic while holding the lock cannot leave a half-applied write: writes mutate only
        // after every check has passed, so the poisoned state is still consistent.
        self.state.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> RwLockWriteGuard<'_, State> {
        self.state.write().unwrap_or_else(PoisonError::into_inner)
    }

    fn read_deadline(&self) -> Deadline {
        Deadline::after(self.timeouts.read)
    }

    fn write_deadline(&self) -> Deadline {
        Deadline::after(self.timeouts.write)
    }

    fn append_checked(&self, blocks: Vec<BlockData>) -> ColdResult<()> {
        let deadline = self.write_deadline();
        BlockData::validate_batch(&blocks)?;
        let mut state = self.write();
        BlockData::check_above(state.latest(), blocks[0].number())?;
        for _ in &blocks {
            deadline.check()?;
        }
        for block in blocks {
            state.insert(block);
        }
        Ok(())
    }

    /// The enriched receipts of every block above `block`, checking `deadline` per block.
    fn receipts_above(
        state: &State,
        block: u64,
        deadline: &Deadline,
    ) -> ColdResult<Vec<Vec<ColdReceipt>>> {
        state
            .blocks
            .range(above(block))
            .map(|(_, data)| {
                deadline.check()?;
                Ok(data.cold_receipts())
            })
            .collect()
    }
}

impl ColdStorageRead for MemBackend {
    fn timeouts(&self) -> Timeouts {
        self.timeouts
    }

    async fn get_header(&self, spec: HeaderSpecifier) -> ColdResult<Option<SealedHeader>> {
        Ok(self.read().header(spec))
    }

    async fn get_headers(
        &self,
        specs: Vec<HeaderSpecifier>,
    ) -> ColdResult<Vec<Option<SealedHeader>>> {
        let deadline = self.read_deadline();
        let state = self.read();
        specs
            .into_iter()
            .map(|spec| {
                deadline.check()?;
                Ok(state.header(spec))
            })
            .collect()
    }

    async fn get_transaction(
        &self,
        spec: TransactionSpecifier,
    ) -> ColdResult<Option<Confirmed<Transaction>>> {
        let state = self.read();
        let found = match spec {
            TransactionSpecifier::Hash(hash) => state.tx_location(&hash),
            TransactionSpecifier::BlockAndIndex { block, index } => {
                state.blocks.get(&block).map(|b| (b, index_usize(index)))
            }
            TransactionSpecifier::BlockHashAndIndex { block_hash, index } => state
                .block_by_hash(&block_hash)
                .map(|b| (b, index_usize(index))),
        };
        Ok(found.and_then(|(block, index)| block.confirmed_transaction(index)))
    }

    async fn get_transactions_in_block(&self, block: u64) -> ColdResult<Vec<Transaction>> {
        Ok(self
            .read()
            .blocks
            .get(&block)
            .map(|b| b.transactions.clone())
            .unwrap_or_default())
    }

    async fn get_transaction_count(&self, block: u64) -> ColdResult<u64> {
        Ok(self
            .read()
            .blocks
            .get(&block)
            .map_or(0, |b| b.transactions.len() as u64))
    }

    async fn get_receipt(&self, spec: ReceiptSpecifier) -> ColdResult<Option<ColdReceipt>> {
        let state = self.read();
        let found = match spec {
            ReceiptSpecifier::TxHash(hash) => state.tx_location(&hash),
            ReceiptSpecifier::BlockAndIndex { block, index } => {
                state.blocks.get(&block).map(|b| (b, index_usize(index)))
            }
        };
        Ok(found.and_then(|(block, index)| block.cold_receipt(index)))
    }

    async fn get_receipts_in_block(&self, block: u64) -> ColdResult<Vec<ColdReceipt>> {
        Ok(self
            .read()
            .blocks
            .get(&block)
            .map(BlockData::cold_receipts)
            .unwrap_or_default())
    }

    async fn get_latest_block(&self) -> ColdResult<Option<u64>> {
        Ok(self.read().latest())
    }

    async fn get_logs(&self, filter: &Filter, max_logs: usize) -> ColdResult<Vec<RpcLog>> {
        let deadline = self.read_deadline();
        let state = self.read();
        let Some((from, to)) = filter.resolve_range(state.latest())? else {
            return Ok(Vec::new());
        };
        let mut logs = Vec::new();
        for (_, block) in state.blocks.range(from..=to) {
            deadline.check()?;
            for log in block.matching_logs(filter) {
                if logs.len() == max_logs {
                    return Err(ColdStorageError::TooManyLogs { limit: max_logs });
                }
                logs.push(log);
            }
        }
        debug_assert!(logs.len() <= max_logs);
        Ok(logs)
    }

    async fn produce_log_stream(&self, filter: &Filter, params: StreamParams) {
        crate::stream::produce_default(self, filter, params).await
    }
}

/// An index too large for `usize` names nothing; map it to one that cannot exist.
fn index_usize(index: u64) -> usize {
    usize::try_from(index).unwrap_or(usize::MAX)
}

impl ColdStorageWrite for MemBackend {
    async fn append_block(&self, block: BlockData) -> ColdResult<()> {
        self.append_checked(vec![block])
    }

    async fn append_blocks(&self, blocks: Vec<BlockData>) -> ColdResult<()> {
        self.append_checked(blocks)
    }

    async fn truncate_above(&self, block: u64) -> ColdResult<()> {
        let deadline = self.write_deadline();
        let mut state = self.write();
        for _ in state.blocks.range(above(block)) {
            deadline.check()?;
        }
        state.remove_above(block);
        Ok(())
    }
}

impl ColdStorageBackend for MemBackend {
    async fn drain_above(&self, block: u64) -> ColdResult<Vec<Vec<ColdReceipt>>> {
        let deadline = self.write_deadline();
        let mut state = self.write();
        let drained = MemBackend::receipts_above(&state, block, &deadline)?;
        state.remove_above(block);
        Ok(drained)
    }
}

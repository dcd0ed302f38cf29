//! The block-store model: the expected state and the exact expected answer of every engine op.
//!
//! The state is a `BTreeMap` of the blocks as appended; every answer is computed from it
//! directly with the model's own definitions ([`crate::enrich`]: hashes, enriched receipts and
//! logs, filter matching, range resolution, validation), never with the engine's, so a wrong
//! enrichment in the engine is a difference here and not an agreed-upon answer.
//!
//! Semantics the model pins down (and every backend must match):
//! - appends: batch checks first ([`crate::enrich::check_append`]: empty, then per block its
//!   validity and ascending order), then the first block must go above the latest
//!   (`NotAscending`); a failed append changes nothing;
//! - a transaction hash names its lowest (block, index) location;
//! - "above `n`" never wraps: `truncate_above(u64::MAX)` removes nothing;
//! - `get_logs`: `from > to` is `InvalidInput`; no end and an empty store is an empty answer;
//!   more than `max_logs` matches is `TooManyLogs { limit: max_logs }`;
//! - streams (without concurrent writes, before their deadline): the logs of whole blocks in
//!   order while they fit within `max_logs`, then `TooManyLogs { limit: max_logs }` if any
//!   further match exists.

use std::collections::BTreeMap;
use std::ops::Bound;

use engine::{
    B256, BlockData, ColdReceipt, ColdResult, ColdStorageError, Confirmed, Filter, HeaderSpecifier,
    ReceiptSpecifier, RpcLog, SealedHeader, Transaction, TransactionSpecifier,
};

use crate::enrich;

/// The expected contents of a block store.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BlockStoreModel {
    blocks: BTreeMap<u64, BlockData>,
}

/// What a stream is expected to yield: its logs and its terminal error, if any.
pub type StreamAnswer = (Vec<RpcLog>, Option<ColdStorageError>);

fn above(block: u64) -> (Bound<u64>, Bound<u64>) {
    (Bound::Excluded(block), Bound::Unbounded)
}

impl BlockStoreModel {
    /// An empty store.
    pub fn new() -> BlockStoreModel {
        BlockStoreModel::default()
    }

    /// Every stored block by number.
    pub fn blocks(&self) -> &BTreeMap<u64, BlockData> {
        &self.blocks
    }

    /// The stored block `number`.
    pub fn block(&self, number: u64) -> Option<&BlockData> {
        self.blocks.get(&number)
    }

    fn block_by_hash(&self, hash: B256) -> Option<&BlockData> {
        self.blocks.values().find(|b| enrich::block_hash(b) == hash)
    }

    /// The lowest (block, index) holding a transaction with this hash.
    fn tx_location(&self, hash: B256) -> Option<(&BlockData, u64)> {
        for block in self.blocks.values() {
            for (index, tx) in (0u64..).zip(&block.transactions) {
                if enrich::transaction_hash(tx) == hash {
                    return Some((block, index));
                }
            }
        }
        None
    }

    /// Expected `get_header`.
    pub fn get_header(&self, spec: HeaderSpecifier) -> Option<SealedHeader> {
        let block = match spec {
            HeaderSpecifier::Number(n) => self.blocks.get(&n),
            HeaderSpecifier::Hash(hash) => self.block_by_hash(hash),
        };
        block.map(|b| b.header.clone())
    }

    /// Expected `get_headers`.
    pub fn get_headers(&self, specs: &[HeaderSpecifier]) -> Vec<Option<SealedHeader>> {
        specs.iter().map(|spec| self.get_header(*spec)).collect()
    }

    /// Expected `get_transaction`.
    pub fn get_transaction(&self, spec: TransactionSpecifier) -> Option<Confirmed<Transaction>> {
        let (block, index) = match spec {
            TransactionSpecifier::Hash(hash) => self.tx_location(hash)?,
            TransactionSpecifier::BlockAndIndex { block, index } => {
                (self.blocks.get(&block)?, index)
            }
            TransactionSpecifier::BlockHashAndIndex { block_hash, index } => {
                (self.block_by_hash(block_hash)?, index)
            }
        };
        enrich::transaction_at(block, index)
    }

    /// Expected `get_transactions_in_block`.
    pub fn get_transactions_in_block(&self, block: u64) -> Vec<Transaction> {
        self.blocks
            .get(&block)
            .map(|b| b.transactions.clone())
            .unwrap_or_default()
    }

    /// Expected `get_transaction_count`.
    pub fn get_transaction_count(&self, block: u64) -> u64 {
        self.blocks
            .get(&block)
            .map_or(0, |b| b.transactions.len() as u64)
    }

    /// Expected `get_receipt`.
    pub fn get_receipt(&self, spec: ReceiptSpecifier) -> Option<ColdReceipt> {
        let (block, index) = match spec {
            ReceiptSpecifier::TxHash(hash) => self.tx_location(hash)?,
            ReceiptSpecifier::BlockAndIndex { block, index } => (self.blocks.get(&block)?, index),
        };
        enrich::receipt_at(block, index)
    }

    /// Expected `get_receipts_in_block`.
    pub fn get_receipts_in_block(&self, block: u64) -> Vec<ColdReceipt> {
        self.blocks
            .get(&block)
            .map(enrich::enriched_receipts)
            .unwrap_or_default()
    }

    /// Expected `get_latest_block`.
    pub fn get_latest_block(&self) -> Option<u64> {
        self.blocks.last_key_value().map(|(n, _)| *n)
    }

    /// Every matching log of the filter's range, without a limit.
    pub fn all_logs(&self, filter: &Filter) -> ColdResult<Vec<RpcLog>> {
        Ok(self.logs_by_block(filter)?.into_iter().flatten().collect())
    }

    /// The matching logs of each block of the filter's range that has any, in order.
    fn logs_by_block(&self, filter: &Filter) -> ColdResult<Vec<Vec<RpcLog>>> {
        let Some((from, to)) = enrich::filter_range(filter, self.get_latest_block())? else {
            return Ok(Vec::new());
        };
        Ok(self
            .blocks
            .range(from..=to)
            .map(|(_, block)| enrich::block_matches(block, filter))
            .filter(|logs| !logs.is_empty())
            .collect())
    }

    /// Expected `get_logs`.
    pub fn get_logs(&self, filter: &Filter, max_logs: usize) -> ColdResult<Vec<RpcLog>> {
        let logs = self.all_logs(filter)?;
        if logs.len() > max_logs {
            return Err(ColdStorageError::TooManyLogs { limit: max_logs });
        }
        Ok(logs)
    }

    /// Expected `stream_logs` (setup result, then the stream's items), without concurrent
    /// writes and before the deadline.
    pub fn stream_logs(&self, filter: &Filter, max_logs: usize) -> ColdResult<StreamAnswer> {
        let mut logs = Vec::new();
        for block in self.logs_by_block(filter)? {
            if logs.len() + block.len() > max_logs {
                return Ok((
                    logs,
                    Some(ColdStorageError::TooManyLogs { limit: max_logs }),
                ));
            }
            logs.extend(block);
        }
        Ok((logs, None))
    }

    /// Applies `append_blocks`: all blocks or, with the first error, none.
    pub fn append_blocks(&mut self, blocks: Vec<BlockData>) -> ColdResult<()> {
        enrich::check_append(&blocks, self.get_latest_block())?;
        for block in blocks {
            self.blocks.insert(block.header.header().number, block);
        }
        Ok(())
    }

    /// Applies `append_block`.
    pub fn append_block(&mut self, block: BlockData) -> ColdResult<()> {
        self.append_blocks(vec![block])
    }

    /// Applies `truncate_above`.
    pub fn truncate_above(&mut self, block: u64) -> ColdResult<()> {
        self.drain_above(block).map(drop)
    }

    /// Applies `drain_above`: the enriched receipts of every removed block, ascending.
    pub fn drain_above(&mut self, block: u64) -> ColdResult<Vec<Vec<ColdReceipt>>> {
        let removed: Vec<u64> = self.blocks.range(above(block)).map(|(n, _)| *n).collect();
        Ok(removed
            .into_iter()
            .filter_map(|n| self.blocks.remove(&n))
            .map(|b| enrich::enriched_receipts(&b))
            .collect())
    }
}

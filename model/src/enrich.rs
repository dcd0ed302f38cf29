//! The model's own definition of everything an answer derives from the stored data: hashes,
//! enriched receipts and logs, confirmation metadata, filter matching, range resolution and
//! input validation.
//!
//! Written from the contract (the field docs of `engine::types` and the backend contract), not
//! from the engine's code, and on purpose in another shape: one straight loop per definition.
//! It shares only plain data types with the engine, never a function that computes an answer,
//! so a bug in the engine's enrichment shows as a difference from the model instead of being in
//! the expectation too.
//!
//! Definitions:
//! - a header's hash is the SHA-256 of `number (u64 BE) ‖ parent_hash ‖ timestamp (u64 BE) ‖
//!   len(extra) (u64 BE) ‖ extra`; a transaction's is the SHA-256 of `sender ‖ nonce (u64 BE) ‖
//!   len(payload) (u64 BE) ‖ payload`;
//! - a log's `log_index` counts every log of every earlier transaction of its block plus the
//!   earlier logs of its own receipt (block-wide, from 0), whatever a query's filter keeps;
//! - a receipt's `gas_used` is its cumulative gas minus the previous receipt's (the first
//!   receipt's is its cumulative gas);
//! - a log matches a filter when the filter names no address or the log's address is one of
//!   them, and for each of the four topic positions the filter names no topic there or the
//!   log has a topic at that position that is one of them.

use engine::types::MAX_TOPICS;
use engine::{
    B256, BlockData, ColdReceipt, ConfirmationMeta, Confirmed, Filter, Header, InvalidInput, Log,
    RpcLog, Transaction,
};
use sha2::{Digest, Sha256};

/// Appends `value` as 8 big-endian bytes.
fn push_u64(bytes: &mut Vec<u8>, value: u64) {
    bytes.extend_from_slice(&value.to_be_bytes());
}

fn sha256(bytes: &[u8]) -> B256 {
    B256(Sha256::digest(bytes).into())
}

/// The hash of a header, computed here from its fields.
pub fn header_hash(header: &Header) -> B256 {
    let mut bytes = Vec::new();
    push_u64(&mut bytes, header.number);
    bytes.extend_from_slice(&header.parent_hash.0);
    push_u64(&mut bytes, header.timestamp);
    push_u64(&mut bytes, header.extra.len() as u64);
    bytes.extend_from_slice(&header.extra);
    sha256(&bytes)
}

/// The hash of a block: that of its header, computed here (not the sealed value it carries).
pub fn block_hash(block: &BlockData) -> B256 {
    header_hash(block.header.header())
}

/// The hash of a transaction, computed here from its fields.
pub fn transaction_hash(tx: &Transaction) -> B256 {
    let mut bytes = Vec::new();
    bytes.extend_from_slice(&tx.sender.0);
    push_u64(&mut bytes, tx.nonce);
    push_u64(&mut bytes, tx.payload.len() as u64);
    bytes.extend_from_slice(&tx.payload);
    sha256(&bytes)
}

/// Every enriched receipt of a (valid) block, in transaction order.
pub fn enriched_receipts(block: &BlockData) -> Vec<ColdReceipt> {
    let header = block.header.header();
    let hash = block_hash(block);
    let mut receipts = Vec::new();
    // Logs of the transactions before this one, and the previous receipt's cumulative gas.
    let mut logs_so_far = 0u64;
    let mut gas_so_far = 0u64;
    for (position, (tx, receipt)) in block.transactions.iter().zip(&block.receipts).enumerate() {
        let transaction_index = position as u64;
        let tx_hash = transaction_hash(tx);
        let mut logs = Vec::new();
        for log in &receipt.logs {
            logs.push(RpcLog {
                inner: log.clone(),
                block_hash: hash,
                block_number: header.number,
                block_timestamp: header.timestamp,
                transaction_hash: tx_hash,
                transaction_index,
                log_index: logs_so_far,
            });
            logs_so_far += 1;
        }
        receipts.push(ColdReceipt {
            success: receipt.success,
            cumulative_gas_used: receipt.cumulative_gas_used,
            // The model holds only blocks that passed `check_block`: gas never decreases, so
            // this cannot underflow (and would panic loudly if the model's check were wrong).
            gas_used: receipt.cumulative_gas_used - gas_so_far,
            logs,
            tx_hash,
            block_number: header.number,
            block_hash: hash,
            block_timestamp: header.timestamp,
            transaction_index,
            sender: tx.sender,
        });
        gas_so_far = receipt.cumulative_gas_used;
    }
    receipts
}

/// The enriched receipt at `index` of a block, if there is one.
pub fn receipt_at(block: &BlockData, index: u64) -> Option<ColdReceipt> {
    enriched_receipts(block)
        .into_iter()
        .zip(0u64..)
        .find(|(_, i)| *i == index)
        .map(|(receipt, _)| receipt)
}

/// The transaction at `index` of a block with its position, if there is one.
pub fn transaction_at(block: &BlockData, index: u64) -> Option<Confirmed<Transaction>> {
    let (tx, _) = block
        .transactions
        .iter()
        .zip(0u64..)
        .find(|(_, i)| *i == index)?;
    Some(Confirmed {
        inner: tx.clone(),
        meta: ConfirmationMeta {
            block_number: block.header.header().number,
            block_hash: block_hash(block),
            transaction_index: index,
        },
    })
}

/// Whether `log` matches the address and topic parts of `filter`.
pub fn log_matches(filter: &Filter, log: &Log) -> bool {
    if !filter.addresses.is_empty() && !filter.addresses.contains(&log.address) {
        return false;
    }
    for position in 0..MAX_TOPICS {
        let wanted = &filter.topics[position];
        if wanted.is_empty() {
            continue;
        }
        match log.topics.get(position) {
            Some(topic) if wanted.contains(topic) => {}
            _ => return false,
        }
    }
    true
}

/// The enriched logs of a block that match `filter`'s address and topic parts, in block order:
/// the logs of the block's enriched receipts, the non-matching ones left out.
pub fn block_matches(block: &BlockData, filter: &Filter) -> Vec<RpcLog> {
    let mut matches = Vec::new();
    for receipt in enriched_receipts(block) {
        for log in receipt.logs {
            if log_matches(filter, &log.inner) {
                matches.push(log);
            }
        }
    }
    matches
}

/// The inclusive block range a filter asks for, given the latest stored block: `Ok(None)` when
/// it names no end and the store is empty; a start above the end is invalid input.
pub fn filter_range(
    filter: &Filter,
    latest: Option<u64>,
) -> Result<Option<(u64, u64)>, InvalidInput> {
    let from = filter.from_block.unwrap_or(0);
    let Some(to) = filter.to_block.or(latest) else {
        return Ok(None);
    };
    if to < from {
        return Err(InvalidInput::EmptyRange { from, to });
    }
    Ok(Some((from, to)))
}

/// Checks one block. When a block has several flaws the contract reports the first of, in
/// this order: unequal transaction and receipt counts, a header hash that is not the header's,
/// then receipt by receipt a cumulative gas below the previous one, a log with too many topics.
pub fn check_block(block: &BlockData) -> Result<(), InvalidInput> {
    let number = block.header.header().number;
    if block.transactions.len() != block.receipts.len() {
        return Err(InvalidInput::LengthMismatch {
            block: number,
            transactions: block.transactions.len(),
            receipts: block.receipts.len(),
        });
    }
    if block_hash(block) != block.header.hash() {
        return Err(InvalidInput::BadHeaderHash { block: number });
    }
    for (index, receipt) in block.receipts.iter().enumerate() {
        if index > 0 && receipt.cumulative_gas_used < block.receipts[index - 1].cumulative_gas_used
        {
            return Err(InvalidInput::GasDecreases {
                block: number,
                index,
            });
        }
        if let Some(log) = receipt.logs.iter().find(|l| l.topics.len() > MAX_TOPICS) {
            return Err(InvalidInput::TooManyTopics {
                block: number,
                index,
                topics: log.topics.len(),
            });
        }
    }
    Ok(())
}

/// Checks an append of `blocks` onto a store whose latest block is `latest`, reporting the
/// first problem in the contract's order: an empty batch; then block by block its own flaws
/// and whether it goes above the one before it in the batch; then whether the first block goes
/// above `latest`.
pub fn check_append(blocks: &[BlockData], latest: Option<u64>) -> Result<(), InvalidInput> {
    let Some(first) = blocks.first() else {
        return Err(InvalidInput::EmptyBatch);
    };
    for (position, block) in blocks.iter().enumerate() {
        check_block(block)?;
        if position > 0 {
            let previous = blocks[position - 1].header.header().number;
            let number = block.header.header().number;
            if number <= previous {
                return Err(InvalidInput::BatchNotAscending {
                    previous,
                    block: number,
                });
            }
        }
    }
    let first = first.header.header().number;
    match latest {
        Some(latest) if first <= latest => Err(InvalidInput::NotAscending {
            block: first,
            latest,
        }),
        _ => Ok(()),
    }
}

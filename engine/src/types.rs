//! The data model: blocks, transactions, receipts, logs, their enriched read forms, filters and
//! specifiers.
//!
//! Hashes are SHA-256 over a canonical byte encoding that is written out field by field here,
//! not over a serde format, so a hash never changes when a codec is upgraded.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::InvalidInput;

/// Most topics a log may carry (as in Ethereum logs).
pub const MAX_TOPICS: usize = 4;

/// A 32-byte hash.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize)]
pub struct B256(pub [u8; 32]);

impl B256 {
    /// The all-zero hash; never the hash of a stored header or transaction in practice.
    pub const ZERO: B256 = B256([0; 32]);

    /// A hash whose first eight bytes are `n` (big-endian): handy for test topics.
    pub fn from_u64(n: u64) -> B256 {
        let mut bytes = [0u8; 32];
        bytes[..8].copy_from_slice(&n.to_be_bytes());
        B256(bytes)
    }
}

impl std::fmt::Debug for B256 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "0x")?;
        for b in &self.0[..6] {
            write!(f, "{b:02x}")?;
        }
        write!(f, "…")
    }
}

/// A 20-byte account address.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize)]
pub struct Address(pub [u8; 20]);

impl Address {
    /// An address whose first byte is `n`: handy for tests.
    pub fn repeat_byte(n: u8) -> Address {
        Address([n; 20])
    }
}

impl std::fmt::Debug for Address {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "0x")?;
        for b in &self.0[..4] {
            write!(f, "{b:02x}")?;
        }
        write!(f, "…")
    }
}

/// Appends the canonical encoding of a byte string: its length as u64 BE, then the bytes.
fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(&(bytes.len() as u64).to_be_bytes());
    out.extend_from_slice(bytes);
}

fn sha256(bytes: &[u8]) -> B256 {
    B256(Sha256::digest(bytes).into())
}

/// A block header as the writer hands it in.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Header {
    /// Block number; appends must be strictly ascending.
    pub number: u64,
    /// Hash of the parent header (not checked by the store: gaps are allowed).
    pub parent_hash: B256,
    /// Seconds since the epoch, as the block producer says.
    pub timestamp: u64,
    /// Opaque extra data.
    pub extra: Vec<u8>,
}

impl Header {
    /// The canonical byte encoding the hash is taken over.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(56 + self.extra.len());
        out.extend_from_slice(&self.number.to_be_bytes());
        out.extend_from_slice(&self.parent_hash.0);
        out.extend_from_slice(&self.timestamp.to_be_bytes());
        put_bytes(&mut out, &self.extra);
        out
    }

    /// Seals the header: computes its hash once.
    pub fn seal(self) -> SealedHeader {
        let hash = sha256(&self.encode());
        SealedHeader { header: self, hash }
    }
}

/// A header with its hash computed once. Fields are private so the hash always matches.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SealedHeader {
    header: Header,
    hash: B256,
}

impl SealedHeader {
    /// The header.
    pub fn header(&self) -> &Header {
        &self.header
    }
    /// SHA-256 of the header's canonical encoding.
    pub fn hash(&self) -> B256 {
        self.hash
    }
    /// The block number.
    pub fn number(&self) -> u64 {
        self.header.number
    }
    /// True when the stored hash is the digest of the header: false means the bytes were
    /// corrupted after sealing (a decoded value is checked with this).
    pub fn hash_is_valid(&self) -> bool {
        sha256(&self.header.encode()) == self.hash
    }
}

/// A transaction.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Transaction {
    /// Who sent it.
    pub sender: Address,
    /// The sender's nonce.
    pub nonce: u64,
    /// Opaque payload.
    pub payload: Vec<u8>,
}

impl Transaction {
    /// SHA-256 of the canonical encoding.
    pub fn hash(&self) -> B256 {
        let mut out = Vec::with_capacity(36 + self.payload.len());
        out.extend_from_slice(&self.sender.0);
        out.extend_from_slice(&self.nonce.to_be_bytes());
        put_bytes(&mut out, &self.payload);
        sha256(&out)
    }
}

/// A log emitted by a transaction.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Log {
    /// The emitting contract.
    pub address: Address,
    /// At most [`MAX_TOPICS`] topics.
    pub topics: Vec<B256>,
    /// Opaque data.
    pub data: Vec<u8>,
}

/// A receipt as the writer hands it in.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Receipt {
    /// Whether the transaction succeeded.
    pub success: bool,
    /// Gas used by this and every earlier transaction of the block; never decreases in a block.
    pub cumulative_gas_used: u64,
    /// Logs in emission order.
    pub logs: Vec<Log>,
}

/// One block: header, transactions and their receipts (same length, same order).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockData {
    /// The sealed header.
    pub header: SealedHeader,
    /// Transactions in block order.
    pub transactions: Vec<Transaction>,
    /// One receipt per transaction.
    pub receipts: Vec<Receipt>,
}

impl BlockData {
    /// Builds a block and validates it.
    pub fn new(
        header: SealedHeader,
        transactions: Vec<Transaction>,
        receipts: Vec<Receipt>,
    ) -> Result<BlockData, InvalidInput> {
        let block = BlockData {
            header,
            transactions,
            receipts,
        };
        block.validate()?;
        Ok(block)
    }

    /// The block number.
    pub fn number(&self) -> u64 {
        self.header.number()
    }

    /// SHA-256 over a body's canonical encoding (transaction hashes, then every receipt field).
    /// A header that carries it (in `extra`) commits to its body, as a chain's transaction and
    /// receipt roots do, so two forks of one block number have different hashes.
    pub fn body_digest(transactions: &[Transaction], receipts: &[Receipt]) -> B256 {
        let mut out = Vec::new();
        for tx in transactions {
            out.extend_from_slice(&tx.hash().0);
        }
        for receipt in receipts {
            out.push(u8::from(receipt.success));
            out.extend_from_slice(&receipt.cumulative_gas_used.to_be_bytes());
            out.extend_from_slice(&(receipt.logs.len() as u64).to_be_bytes());
            for log in &receipt.logs {
                out.extend_from_slice(&log.address.0);
                out.extend_from_slice(&(log.topics.len() as u64).to_be_bytes());
                for topic in &log.topics {
                    out.extend_from_slice(&topic.0);
                }
                put_bytes(&mut out, &log.data);
            }
        }
        sha256(&out)
    }

    /// Checks what every backend relies on: equal lengths, at most four topics per log,
    /// cumulative gas never decreasing, a header hash that matches the header.
    pub fn validate(&self) -> Result<(), InvalidInput> {
        let block = self.number();
        if self.transactions.len() != self.receipts.len() {
            return Err(InvalidInput::LengthMismatch {
                block,
                transactions: self.transactions.len(),
                receipts: self.receipts.len(),
            });
        }
        if !self.header.hash_is_valid() {
            return Err(InvalidInput::BadHeaderHash { block });
        }
        let mut previous_gas = 0u64;
        for (index, receipt) in self.receipts.iter().enumerate() {
            if receipt.cumulative_gas_used < previous_gas {
                return Err(InvalidInput::GasDecreases { block, index });
            }
            previous_gas = receipt.cumulative_gas_used;
            for log in &receipt.logs {
                if log.topics.len() > MAX_TOPICS {
                    return Err(InvalidInput::TooManyTopics {
                        block,
                        index,
                        topics: log.topics.len(),
                    });
                }
            }
        }
        Ok(())
    }
}

/// Where a confirmed item sits in the chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfirmationMeta {
    /// The block's number.
    pub block_number: u64,
    /// The block's hash.
    pub block_hash: B256,
    /// Index of the transaction in its block.
    pub transaction_index: u64,
}

/// An item with its position in the chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Confirmed<T> {
    /// The item.
    pub inner: T,
    /// Where it sits.
    pub meta: ConfirmationMeta,
}

/// A log enriched with its block and transaction metadata.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RpcLog {
    /// The log itself.
    pub inner: Log,
    /// Hash of the containing block.
    pub block_hash: B256,
    /// Number of the containing block.
    pub block_number: u64,
    /// Timestamp of the containing block.
    pub block_timestamp: u64,
    /// Hash of the emitting transaction.
    pub transaction_hash: B256,
    /// Index of the emitting transaction in its block.
    pub transaction_index: u64,
    /// Index of the log among all logs of the block (absolute, not per receipt).
    pub log_index: u64,
}

/// A receipt enriched for reads.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ColdReceipt {
    /// Whether the transaction succeeded.
    pub success: bool,
    /// Cumulative gas as stored.
    pub cumulative_gas_used: u64,
    /// Gas used by this transaction alone: the difference of cumulative gas.
    pub gas_used: u64,
    /// Enriched logs, `log_index` absolute within the block.
    pub logs: Vec<RpcLog>,
    /// Hash of the transaction.
    pub tx_hash: B256,
    /// Number of the containing block.
    pub block_number: u64,
    /// Hash of the containing block.
    pub block_hash: B256,
    /// Timestamp of the containing block.
    pub block_timestamp: u64,
    /// Index of the transaction in its block.
    pub transaction_index: u64,
    /// The transaction's sender.
    pub sender: Address,
}

impl BlockData {
    /// The enriched receipts of this block, in order: the one definition of enrichment that
    /// every backend shares. The model (`model::enrich`) keeps its own on purpose, so a bug
    /// here is a difference from it rather than an answer both agree on.
    pub fn cold_receipts(&self) -> Vec<ColdReceipt> {
        (0..self.receipts.len())
            .filter_map(|index| self.cold_receipt(index))
            .collect()
    }

    /// The enriched receipt at `index`, if there is one.
    pub fn cold_receipt(&self, index: usize) -> Option<ColdReceipt> {
        let receipt = self.receipts.get(index)?;
        let tx = self.transactions.get(index)?;
        let previous_gas = index
            .checked_sub(1)
            .and_then(|i| self.receipts.get(i))
            .map_or(0, |r| r.cumulative_gas_used);
        let first_log_index: u64 = self.receipts[..index]
            .iter()
            .map(|r| r.logs.len() as u64)
            .sum();
        let tx_hash = tx.hash();
        let logs = receipt
            .logs
            .iter()
            .enumerate()
            .map(|(i, log)| self.rpc_log(log, tx_hash, index as u64, first_log_index + i as u64))
            .collect();
        Some(ColdReceipt {
            success: receipt.success,
            cumulative_gas_used: receipt.cumulative_gas_used,
            // validate() guarantees cumulative gas never decreases; saturate anyway so an
            // unvalidated block cannot panic a reader.
            gas_used: receipt.cumulative_gas_used.saturating_sub(previous_gas),
            logs,
            tx_hash,
            block_number: self.number(),
            block_hash: self.header.hash(),
            block_timestamp: self.header.header().timestamp,
            transaction_index: index as u64,
            sender: tx.sender,
        })
    }

    /// The transaction at `index` with its position.
    pub fn confirmed_transaction(&self, index: usize) -> Option<Confirmed<Transaction>> {
        let tx = self.transactions.get(index)?;
        Some(Confirmed {
            inner: tx.clone(),
            meta: ConfirmationMeta {
                block_number: self.number(),
                block_hash: self.header.hash(),
                transaction_index: index as u64,
            },
        })
    }

    /// The logs of this block that match `filter`'s address and topic parts, enriched, in
    /// (transaction, log) order. Only matching logs are cloned and hashed.
    pub fn matching_logs<'a>(&'a self, filter: &'a Filter) -> impl Iterator<Item = RpcLog> + 'a {
        let counts_matches = crate::bugs::active(crate::bugs::Bug::LogIndexCountsMatches);
        let mut log_index = 0u64;
        self.transactions
            .iter()
            .zip(&self.receipts)
            .enumerate()
            .flat_map(move |(tx_index, (tx, receipt))| {
                let first = log_index;
                log_index += if counts_matches {
                    receipt
                        .logs
                        .iter()
                        .filter(|log| filter.matches(log))
                        .count() as u64
                } else {
                    receipt.logs.len() as u64
                };
                let mut tx_hash = None;
                receipt
                    .logs
                    .iter()
                    .enumerate()
                    .filter(|(_, log)| filter.matches(log))
                    .enumerate()
                    .map(move |(nth, (i, log))| {
                        let hash = *tx_hash.get_or_insert_with(|| tx.hash());
                        let position = if counts_matches { nth } else { i };
                        self.rpc_log(log, hash, tx_index as u64, first + position as u64)
                    })
            })
    }

    fn rpc_log(
        &self,
        log: &Log,
        transaction_hash: B256,
        transaction_index: u64,
        log_index: u64,
    ) -> RpcLog {
        RpcLog {
            inner: log.clone(),
            block_hash: self.header.hash(),
            block_number: self.number(),
            block_timestamp: self.header.header().timestamp,
            transaction_hash,
            transaction_index,
            log_index,
        }
    }
}

/// A log query: a block range, an address set (OR) and four topic positions (OR within a
/// position, AND across positions; an empty set is a wildcard).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Filter {
    /// First block, inclusive; `None` = 0.
    pub from_block: Option<u64>,
    /// Last block, inclusive; `None` = the latest block when the query starts.
    pub to_block: Option<u64>,
    /// Matching addresses; empty = any.
    pub addresses: Vec<Address>,
    /// Matching topics per position; empty = any.
    pub topics: [Vec<B256>; MAX_TOPICS],
}

impl Filter {
    /// A filter over `from..=to` matching everything.
    pub fn range(from: u64, to: u64) -> Filter {
        Filter {
            from_block: Some(from),
            to_block: Some(to),
            ..Filter::default()
        }
    }

    /// Restricts to these addresses.
    pub fn with_addresses(mut self, addresses: Vec<Address>) -> Filter {
        self.addresses = addresses;
        self
    }

    /// Restricts topic position `position` (0..4) to these topics.
    pub fn with_topic(mut self, position: usize, topics: Vec<B256>) -> Filter {
        assert!(
            position < MAX_TOPICS,
            "topic position {position} out of range"
        );
        self.topics[position] = topics;
        self
    }

    /// Whether `log` matches the address and topic parts (the range is the caller's job).
    pub fn matches(&self, log: &Log) -> bool {
        if !self.addresses.is_empty() && !self.addresses.contains(&log.address) {
            return false;
        }
        self.topics.iter().enumerate().all(|(position, wanted)| {
            wanted.is_empty() || log.topics.get(position).is_some_and(|t| wanted.contains(t))
        })
    }

    /// Resolves the block range against the latest block; `Ok(None)` when nothing can match
    /// (empty store and no explicit end). `from > to` is invalid input, not an empty result.
    pub fn resolve_range(&self, latest: Option<u64>) -> Result<Option<(u64, u64)>, InvalidInput> {
        let from = self.from_block.unwrap_or(0);
        let to = match (self.to_block, latest) {
            (Some(to), _) => to,
            (None, Some(latest)) => latest,
            (None, None) => return Ok(None),
        };
        if from > to {
            return Err(InvalidInput::EmptyRange { from, to });
        }
        Ok(Some((from, to)))
    }
}

/// How to name a header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum HeaderSpecifier {
    /// By block number.
    Number(u64),
    /// By header hash.
    Hash(B256),
}

/// How to name a transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum TransactionSpecifier {
    /// By transaction hash.
    Hash(B256),
    /// By block number and index in the block.
    BlockAndIndex {
        /// Block number.
        block: u64,
        /// Index in the block.
        index: u64,
    },
    /// By block hash and index in the block.
    BlockHashAndIndex {
        /// Block hash.
        block_hash: B256,
        /// Index in the block.
        index: u64,
    },
}

/// How to name a receipt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ReceiptSpecifier {
    /// By the hash of its transaction.
    TxHash(B256),
    /// By block number and index in the block.
    BlockAndIndex {
        /// Block number.
        block: u64,
        /// Index in the block.
        index: u64,
    },
}

impl BlockData {
    /// Checks a batch before it reaches a backend: non-empty, every block valid, numbers
    /// strictly ascending, in that order (so every layer reports the same first error).
    pub fn validate_batch(blocks: &[BlockData]) -> Result<(), InvalidInput> {
        if blocks.is_empty() {
            return Err(InvalidInput::EmptyBatch);
        }
        let mut previous: Option<u64> = None;
        for block in blocks {
            block.validate()?;
            if let Some(previous) = previous
                && block.number() <= previous
            {
                return Err(InvalidInput::BatchNotAscending {
                    previous,
                    block: block.number(),
                });
            }
            previous = Some(block.number());
        }
        Ok(())
    }

    /// Checks that a batch starting with `first` goes strictly above `latest`.
    pub fn check_above(latest: Option<u64>, first: u64) -> Result<(), InvalidInput> {
        match latest {
            Some(latest) if first <= latest => Err(InvalidInput::NotAscending {
                block: first,
                latest,
            }),
            _ => Ok(()),
        }
    }
}

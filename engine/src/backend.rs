//! The backend contract: what every store behind the handle must do.
//!
//! The handle owns concurrency (permits, the drain barrier, the cache, shutdown); a backend
//! owns atomicity and time. Every method takes `&self`; a backend synchronizes internally.
//!
//! Contract, checked by the conformance suite for every backend:
//! - **Appends** go strictly above the latest stored block (gaps allowed); anything else is
//!   `InvalidInput`. `append_blocks` is atomic: all blocks or none.
//! - **Truncation and drain** are atomic. `truncate_above(u64::MAX)` removes nothing; block
//!   arithmetic never wraps.
//! - **Reads** are consistent snapshots: a read never sees part of a write.
//! - **`get_logs`** returns matches ordered by (block, transaction index, log index). More than
//!   `max_logs` matches is `TooManyLogs { limit: max_logs }` with no partial result; exactly
//!   `max_logs` is fine. A range with `from > to` is `InvalidInput`.
//! - **Streams** either read one snapshot for the whole stream, or re-check the hash of the
//!   anchor block (`to`) after reading every block, the last one included, and end with
//!   `ReorgDetected` when it changed. Every send is bounded by the stream deadline, the
//!   terminal error's too. At most one error is sent and it is the last item. A stream that
//!   reaches exactly `max_logs` behaves as `get_logs` would: no error unless a further match
//!   exists, in which case it ends with `TooManyLogs { limit: max_logs }`.
//! - **Timeouts are mandatory**: each backend has a read and a write timeout (defaults 500 ms
//!   and 2 s). Loops over blocks, receipts or logs check the deadline; on expiry the operation
//!   returns `DeadlineExceeded` and never partial data, and a write rolls back where it can.

use std::future::Future;
use std::time::Duration;

use tokio::sync::mpsc;

use crate::error::{ColdResult, ColdStorageError};
use crate::rt::{self, Instant};
use crate::types::{
    B256, BlockData, ColdReceipt, Confirmed, Filter, HeaderSpecifier, ReceiptSpecifier, RpcLog,
    SealedHeader, Transaction, TransactionSpecifier,
};

/// Default read timeout of a backend.
pub const DEFAULT_READ_TIMEOUT: Duration = Duration::from_millis(500);
/// Default write timeout of a backend.
pub const DEFAULT_WRITE_TIMEOUT: Duration = Duration::from_secs(2);

/// The per-class timeouts a backend enforces inside itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// Bound on every read, stream setup included.
    pub read: Duration,
    /// Bound on every write up to its commit.
    pub write: Duration,
}

impl Default for Timeouts {
    fn default() -> Timeouts {
        Timeouts {
            read: DEFAULT_READ_TIMEOUT,
            write: DEFAULT_WRITE_TIMEOUT,
        }
    }
}

impl Timeouts {
    /// Sets the read timeout.
    pub fn with_read(mut self, read: Duration) -> Timeouts {
        self.read = read;
        self
    }
    /// Sets the write timeout.
    pub fn with_write(mut self, write: Duration) -> Timeouts {
        self.write = write;
        self
    }
}

/// A point in (runtime) time by which an operation must be done, with the timeout it came
/// from so the error can name it. Loops call [`Deadline::check`] between steps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Deadline {
    at: Instant,
    timeout: Duration,
}

impl Deadline {
    /// A deadline `timeout` from now.
    pub fn after(timeout: Duration) -> Deadline {
        Deadline {
            at: rt::deadline_after(timeout),
            timeout,
        }
    }

    /// When it expires.
    pub fn at(&self) -> Instant {
        self.at
    }

    /// The timeout it was made from.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Whether it has passed. A zero timeout has always passed, so tests can force expiry.
    pub fn expired(&self) -> bool {
        rt::now() >= self.at
    }

    /// `DeadlineExceeded` once the deadline has passed.
    pub fn check(&self) -> ColdResult<()> {
        if self.expired() {
            return Err(ColdStorageError::DeadlineExceeded {
                timeout: self.timeout,
            });
        }
        Ok(())
    }
}

/// What the handle hands a backend's stream producer.
#[derive(Debug)]
pub struct StreamParams {
    /// First block, inclusive.
    pub from: u64,
    /// Last block (the anchor), inclusive; `from <= to`.
    pub to: u64,
    /// The caller's log limit.
    pub max_logs: usize,
    /// Where items go; bounded. Dropping it ends the stream.
    pub sender: mpsc::Sender<ColdResult<RpcLog>>,
    /// When the stream must end, whatever the consumer does.
    pub deadline: Instant,
    /// The hash of block `to` when the handle took `to` from the latest block at setup. The
    /// producer must end with `ReorgDetected` unless block `to` still has this hash: blocks of
    /// the range may have been removed (or replaced) between setup and production, and the
    /// caller asked for the range as it was. `None` when the caller named `to` itself.
    pub anchor: Option<B256>,
}

/// Reads. See the module docs for the contract.
pub trait ColdStorageRead: Send + Sync + 'static {
    /// The timeouts this backend enforces.
    fn timeouts(&self) -> Timeouts;

    /// A header by number or hash.
    fn get_header(
        &self,
        spec: HeaderSpecifier,
    ) -> impl Future<Output = ColdResult<Option<SealedHeader>>> + Send;

    /// Several headers, one answer per specifier, from one snapshot.
    fn get_headers(
        &self,
        specs: Vec<HeaderSpecifier>,
    ) -> impl Future<Output = ColdResult<Vec<Option<SealedHeader>>>> + Send;

    /// A transaction with its position.
    fn get_transaction(
        &self,
        spec: TransactionSpecifier,
    ) -> impl Future<Output = ColdResult<Option<Confirmed<Transaction>>>> + Send;

    /// Every transaction of a block, in order (empty for an unknown block).
    fn get_transactions_in_block(
        &self,
        block: u64,
    ) -> impl Future<Output = ColdResult<Vec<Transaction>>> + Send;

    /// How many transactions a block has (0 for an unknown block).
    fn get_transaction_count(&self, block: u64) -> impl Future<Output = ColdResult<u64>> + Send;

    /// An enriched receipt.
    fn get_receipt(
        &self,
        spec: ReceiptSpecifier,
    ) -> impl Future<Output = ColdResult<Option<ColdReceipt>>> + Send;

    /// Every enriched receipt of a block, in order (empty for an unknown block).
    fn get_receipts_in_block(
        &self,
        block: u64,
    ) -> impl Future<Output = ColdResult<Vec<ColdReceipt>>> + Send;

    /// The highest stored block number.
    fn get_latest_block(&self) -> impl Future<Output = ColdResult<Option<u64>>> + Send;

    /// Matching logs over a resolved range, or `TooManyLogs`.
    fn get_logs(
        &self,
        filter: &Filter,
        max_logs: usize,
    ) -> impl Future<Output = ColdResult<Vec<RpcLog>>> + Send;

    /// Sends matching logs of `params.from..=params.to` into `params.sender`; returns when the
    /// stream is over (range exhausted, error sent, deadline reached or receiver dropped).
    fn produce_log_stream(
        &self,
        filter: &Filter,
        params: StreamParams,
    ) -> impl Future<Output = ()> + Send;
}

/// Writes. See the module docs for the contract.
pub trait ColdStorageWrite: Send + Sync + 'static {
    /// Appends one block strictly above the latest.
    fn append_block(&self, block: BlockData) -> impl Future<Output = ColdResult<()>> + Send;

    /// Appends a strictly ascending, non-empty batch atomically.
    fn append_blocks(&self, blocks: Vec<BlockData>) -> impl Future<Output = ColdResult<()>> + Send;

    /// Removes every block above `block`.
    fn truncate_above(&self, block: u64) -> impl Future<Output = ColdResult<()>> + Send;
}

/// A complete backend: reads, writes and an atomic drain.
pub trait ColdStorageBackend: ColdStorageRead + ColdStorageWrite {
    /// Atomically returns the enriched receipts of every block above `block` (index 0 =
    /// `block + 1`, ascending; a block with no receipts gives an empty vec) and removes those
    /// blocks.
    fn drain_above(
        &self,
        block: u64,
    ) -> impl Future<Output = ColdResult<Vec<Vec<ColdReceipt>>>> + Send;
}

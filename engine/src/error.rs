//! Errors: one enum for every operation, with enough context to act on.

use std::time::Duration;

/// Result of every engine operation.
pub type ColdResult<T> = Result<T, ColdStorageError>;

/// Why an operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ColdStorageError {
    /// The backend failed; the message names the operation and the cause.
    #[error("backend error in {op}: {message}")]
    Backend {
        /// The operation that failed.
        op: &'static str,
        /// What went wrong.
        message: String,
    },
    /// More than `limit` logs matched; no partial result is returned.
    #[error("more than {limit} logs match the filter")]
    TooManyLogs {
        /// The caller's `max_logs`.
        limit: usize,
    },
    /// A backend operation ran past its class timeout and was abandoned with no partial result.
    #[error("operation exceeded its {timeout:?} deadline")]
    DeadlineExceeded {
        /// The timeout that was exceeded.
        timeout: Duration,
    },
    /// A log stream reached its deadline; the items sent before this error are valid.
    #[error("log stream deadline exceeded")]
    StreamDeadlineExceeded,
    /// The anchor block of a non-snapshot stream changed while it was read.
    #[error("reorg detected while streaming logs")]
    ReorgDetected,
    /// The storage is shut down (or a task it spawned died).
    #[error("cold storage task terminated")]
    TaskTerminated,
    /// The request was rejected before touching the backend.
    #[error("invalid input: {0}")]
    InvalidInput(#[from] InvalidInput),
    /// A write whose outcome cannot be known (a remote timeout, or the connection was lost
    /// after the request was sent): it may or may not have been applied.
    #[error("outcome of {op} is unknown: it may or may not have been applied")]
    Indeterminate {
        /// The write.
        op: &'static str,
    },
}

impl ColdStorageError {
    /// A backend error for `op`.
    pub fn backend(op: &'static str, cause: impl std::fmt::Display) -> ColdStorageError {
        ColdStorageError::Backend {
            op,
            message: cause.to_string(),
        }
    }

    /// A short, stable label for metrics and traces.
    pub fn kind(&self) -> &'static str {
        match self {
            ColdStorageError::Backend { .. } => "backend",
            ColdStorageError::TooManyLogs { .. } => "too_many_logs",
            ColdStorageError::DeadlineExceeded { .. } => "deadline",
            ColdStorageError::StreamDeadlineExceeded => "stream_deadline",
            ColdStorageError::ReorgDetected => "reorg",
            ColdStorageError::TaskTerminated => "task_terminated",
            ColdStorageError::InvalidInput(_) => "invalid_input",
            ColdStorageError::Indeterminate { .. } => "indeterminate",
        }
    }
}

/// Input the engine refuses, with what was wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, serde::Serialize, serde::Deserialize)]
pub enum InvalidInput {
    /// An append did not go strictly above the latest stored block.
    #[error("block {block} is not above the latest stored block {latest}")]
    NotAscending {
        /// The block offered.
        block: u64,
        /// The latest stored block.
        latest: u64,
    },
    /// The blocks of one batch are not strictly ascending.
    #[error("batch is not strictly ascending: block {block} follows {previous}")]
    BatchNotAscending {
        /// The earlier block of the batch.
        previous: u64,
        /// The block that does not go above it.
        block: u64,
    },
    /// A block has a different number of transactions and receipts.
    #[error("block {block} has {transactions} transactions but {receipts} receipts")]
    LengthMismatch {
        /// The block.
        block: u64,
        /// Its transaction count.
        transactions: usize,
        /// Its receipt count.
        receipts: usize,
    },
    /// A sealed header's hash does not match its contents.
    #[error("block {block}: header hash does not match the header")]
    BadHeaderHash {
        /// The block.
        block: u64,
    },
    /// Cumulative gas went down inside a block.
    #[error("block {block}: cumulative gas decreases at receipt {index}")]
    GasDecreases {
        /// The block.
        block: u64,
        /// The receipt whose cumulative gas is lower than the one before.
        index: usize,
    },
    /// A log has more than four topics.
    #[error("block {block}: receipt {index} has a log with {topics} topics (at most 4)")]
    TooManyTopics {
        /// The block.
        block: u64,
        /// The receipt.
        index: usize,
        /// How many topics it had.
        topics: usize,
    },
    /// A range whose start is above its end.
    #[error("range {from}..={to} is empty: from > to")]
    EmptyRange {
        /// Start.
        from: u64,
        /// End.
        to: u64,
    },
    /// An empty batch of blocks.
    #[error("append_blocks needs at least one block")]
    EmptyBatch,
}

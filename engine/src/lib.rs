//! Cold block storage behind one clone-cheap handle.
//!
//! The model: a [`ColdStorage`](handle::ColdStorage) handle owns all concurrency control and a
//! backend owns atomicity and time.
//! - Reads take one of 64 read permits; streams take one of 8 stream permits and no read
//!   permit; a write takes the single write permit and then *every* read permit (the drain
//!   barrier), so no barrier-gated read runs while a write commits. Permits are FIFO-fair.
//! - A read-through cache serves headers, transactions and receipts by number; it is never
//!   allowed to serve a block the backend no longer holds once a write has started committing.
//! - Backends ([`mem`], [`redb_backend`]) enforce mandatory per-class timeouts inside
//!   themselves; the handle never abandons backend work while still counting its permit free.
//! - Shutdown goes through a coordinator that holds only a weak reference, so dropping every
//!   handle drops the backend.
//!
//! Spawning and time go through [`rt`] so the same code runs on tokio (real or paused clock) and madsim.

pub mod backend;
pub mod bugs;
pub mod cache;
pub mod error;
pub mod handle;
pub mod layer;
pub mod mem;
pub mod metrics;
pub mod redb_backend;
pub mod remote;
pub mod rt;
pub mod shutdown;
pub mod simdisk;
pub mod stream;
pub mod types;

pub use backend::{
    ColdStorageBackend, ColdStorageRead, ColdStorageWrite, Deadline, StreamParams, Timeouts,
};
pub use error::{ColdResult, ColdStorageError, InvalidInput};
pub use handle::{ColdStorage, Config, ConfigBuilder};
pub use layer::{Layer, Layered, OpKind};
pub use mem::MemBackend;
pub use stream::LogStream;
pub use types::{
    Address, B256, BlockData, ColdReceipt, ConfirmationMeta, Confirmed, Filter, Header,
    HeaderSpecifier, Log, Receipt, ReceiptSpecifier, RpcLog, SealedHeader, Transaction,
    TransactionSpecifier,
};

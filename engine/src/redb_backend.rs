//! The redb backend: blocks in redb tables, one durable write transaction per write, read
//! transactions as snapshots, deadlines checked inside every loop.
//!
//! # Table layout
//! | Table | Key | Value |
//! |---|---|---|
//! | `headers` | block number `u64` | postcard-encoded [`SealedHeader`] |
//! | `bodies` | block number `u64` | postcard-encoded transactions and receipts (same length) |
//! | `header_hashes` | header hash `[u8; 32]` | block number `u64` |
//! | `tx_hashes` | `(transaction hash [u8; 32], block u64, index u64)` | `()` |
//!
//! `headers` decides which blocks exist; `bodies` always has the same keys. `tx_hashes` holds
//! every occurrence of a hash, the location being part of the key: a plain B-tree (twice as
//! fast to fill as a redb multimap) in which a prefix range finds the occurrences. A
//! transaction repeated in two blocks so stays findable by hash after one of the two is
//! truncated; a lookup by hash answers with the lowest (block, index) occurrence, as the model
//! and the in-memory backend do.
//!
//! # Reads
//! Every read opens one read transaction, an MVCC snapshot, so a read never sees part of a
//! write. Every read, point lookups included, sleeps its disk latency and then checks the read
//! deadline, so a read slower than its timeout is `DeadlineExceeded`, never data; loops over
//! blocks check it per block. A log stream holds its snapshot for its whole life, reserves a
//! channel slot for its terminal error before sending anything, bounds every send by the stream
//! deadline, and sends whole blocks while they fit within `max_logs` (a block that would
//! overflow ends it with `TooManyLogs`, as `get_logs` would answer). Decoded values are checked: a
//! value that fails to decode, a header whose hash does not match its contents or whose number
//! does not match its key, or a body whose lengths disagree, is a `Backend` error naming the table
//! and key. Corrupt data is never served.
//!
//! # Writes
//! Writes are serialized by an async gate (redb's `begin_write` would block the thread). Each
//! write op is one write transaction with `Durability::Immediate`, so an acknowledged write is
//! durable. Inputs are validated before the transaction starts. The deadline is checked inside
//! every loop and once more right before commit; an expired or failed write is aborted, which
//! rolls it back. A commit cannot be interrupted: one that finishes past the deadline is kept
//! (it is authoritative) and the overrun is logged.
//!
//! # I/O errors
//! An I/O error fails the operation, and redb latches it: every further write would fail with
//! `PreviousIo`, so the next write first reopens the database on the same storage (redb's
//! repair recovers the last durable commit from its checksummed commit slots). A failed
//! *commit* is different: it may have reached the disk before the error. The write then
//! recovers at once and answers with what recovery found, so an error always means "not
//! applied" and a success "durable": it compares the tip (newest block and hash) with the one
//! it started from, since recovery yields exactly the previous commit or this one and a
//! committing write always moves the tip. Only if the store cannot be reopened is the answer
//! `Indeterminate`; the next op, read or write, tries to reopen again, so no op ever reads a
//! view from before recovery and a transient error never closes the store for good.
//! Corrupt data is never served.
//!
//! # Creating a store
//! Creation is crash-atomic: whatever point of creating a store a crash (or an I/O error)
//! interrupts, the next open finds either the complete empty store (every table created in a
//! durable commit) or nothing, and creates it. Never a half-written file that no open accepts.
//! Every open (the first, a retry, a reopen after an I/O error, a restarted worker's) runs the
//! same steps, so each of them is covered, repairs included.
//! - **A real file** ([`RedbBackend::open_file`]) is created whole under a temporary name
//!   (`NAME.creating`, a leftover one deleted first), its tables committed and synced by redb,
//!   then renamed into place, and the directory synced so the rename itself is durable. The
//!   path so names a complete store or nothing; a file that is there is opened, never
//!   initialized in place (an empty or foreign file there is an error, not overwritten).
//! - **A single-file storage** ([`RedbBackend::open_sim`], [`RedbBackend::open_storage`]) has no
//!   name to rename. It relies on redb's own creation order instead: redb sizes the empty file,
//!   writes and syncs a header without its signature, and writes the signature (the first
//!   bytes of the header) last. So the states a crash can leave are: an empty file; a file
//!   without the signature whose every byte past the header is zero (an interrupted creation:
//!   it is truncated, synced and created again); a signed redb file (opened; redb repairs it
//!   from its checksummed commit slots, and the table commit that follows every open completes
//!   a creation stopped before it). A file without the signature that holds anything past the
//!   header is not one this backend created (or it was damaged): it is refused, never wiped,
//!   since every commit writes pages past the header.
//!
//! A future schema change stays atomic the same way: one redb write transaction that creates
//! or reshapes the tables and records the schema version beside them commits all of it or
//! nothing, and runs on every open like the table creation (a no-op once done). A change too
//! big for one transaction builds the new store beside the old one under a temporary name and
//! renames it into place, as creation does.
//!
//! # Time
//! Calls into redb run inline on the calling task (no `spawn_blocking`: it hangs simulated
//! runtimes). Over a [`SimDisk`] the virtual latency the disk accumulated is slept on the runtime
//! clock after each step (see [`crate::simdisk`]), before the deadline check, so injected latency
//! shows in simulated time and can trip deadlines.

use std::cell::OnceCell;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use redb::{
    Database, Durability, ReadTransaction, ReadableDatabase, ReadableTable, StorageBackend,
    TableDefinition, WriteTransaction,
};
use serde::{Deserialize, Serialize};

use crate::backend::{
    ColdStorageBackend, ColdStorageRead, ColdStorageWrite, Deadline, StreamParams, Timeouts,
};
use crate::error::{ColdResult, ColdStorageError, InvalidInput};
use crate::rt;
use crate::simdisk::SimDisk;
use crate::types::{
    B256, BlockData, ColdReceipt, Confirmed, Filter, HeaderSpecifier, Receipt, ReceiptSpecifier,
    RpcLog, SealedHeader, Transaction, TransactionSpecifier,
};

const HEADERS: TableDefinition<u64, &[u8]> = TableDefinition::new("headers");
const BODIES: TableDefinition<u64, &[u8]> = TableDefinition::new("bodies");
const HEADER_HASHES: TableDefinition<[u8; 32], u64> = TableDefinition::new("header_hashes");
/// Key: (transaction hash, block, index); the value is empty.
type TxKey = ([u8; 32], u64, u64);
const TX_HASHES: TableDefinition<TxKey, ()> = TableDefinition::new("tx_hashes");

/// The stored body, borrowed for encoding.
#[derive(Serialize)]
struct BodyRef<'a> {
    transactions: &'a [Transaction],
    receipts: &'a [Receipt],
}

/// The stored body, owned after decoding (same postcard layout as [`BodyRef`]).
#[derive(Deserialize)]
struct Body {
    transactions: Vec<Transaction>,
    receipts: Vec<Receipt>,
}

/// Configures and opens a [`RedbBackend`].
#[derive(Debug, Clone, Default)]
pub struct RedbBackendBuilder {
    timeouts: Timeouts,
    cache_bytes: Option<usize>,
}

impl RedbBackendBuilder {
    /// Both timeouts at once.
    pub fn timeouts(mut self, timeouts: Timeouts) -> RedbBackendBuilder {
        self.timeouts = timeouts;
        self
    }

    /// The read timeout (default 500 ms).
    pub fn read_timeout(mut self, timeout: std::time::Duration) -> RedbBackendBuilder {
        self.timeouts.read = timeout;
        self
    }

    /// The write timeout (default 2 s).
    pub fn write_timeout(mut self, timeout: std::time::Duration) -> RedbBackendBuilder {
        self.timeouts.write = timeout;
        self
    }

    /// redb's page cache size in bytes (redb's default when unset).
    pub fn cache_bytes(mut self, bytes: usize) -> RedbBackendBuilder {
        self.cache_bytes = Some(bytes);
        self
    }

    /// Opens (or creates, crash-atomically) a database file.
    pub fn open_file(self, path: impl AsRef<Path>) -> ColdResult<RedbBackend> {
        let opener = file_opener(path.as_ref().to_path_buf(), self.cache_bytes);
        RedbBackend::open_with(opener, self.timeouts, None)
    }

    /// Opens (or creates, crash-atomically) a database on a [`SimDisk`]; its virtual latency
    /// is slept on the runtime clock.
    pub fn open_sim(self, disk: SimDisk) -> ColdResult<RedbBackend> {
        let opener = storage_opener(disk.clone(), self.cache_bytes, "redb on simdisk");
        RedbBackend::open_with(opener, self.timeouts, Some(disk))
    }

    /// Opens (or creates, crash-atomically) a database on any cloneable redb storage backend
    /// (no virtual latency); a clone of `storage` serves each reopen after an I/O error.
    pub fn open_storage(self, storage: impl StorageBackend + Clone) -> ColdResult<RedbBackend> {
        let opener = storage_opener(storage, self.cache_bytes, "redb");
        RedbBackend::open_with(opener, self.timeouts, None)
    }
}

/// Opens a single-file storage, first making a creation that was interrupted start over.
fn storage_opener(
    storage: impl StorageBackend + Clone,
    cache_bytes: Option<usize>,
    what: &'static str,
) -> Opener {
    Box::new(move || {
        if !crate::bugs::active(crate::bugs::Bug::CreationNotAtomic) {
            restart_interrupted_creation(&storage).map_err(|e| format!("{what}: {e}"))?;
        }
        redb_builder(cache_bytes)
            .create_with_backend(storage.clone())
            .map_err(|e| format!("{what}: {e}"))
    })
}

/// Opens a database file, creating it first (whole, then renamed into place) if absent.
fn file_opener(path: PathBuf, cache_bytes: Option<usize>) -> Opener {
    Box::new(move || {
        let failed = |e: &dyn std::fmt::Display| format!("redb file {}: {e}", path.display());
        if crate::bugs::active(crate::bugs::Bug::CreationNotAtomic) {
            return redb_builder(cache_bytes)
                .create(&path)
                .map_err(|e| failed(&e));
        }
        create_file_atomically(&path, cache_bytes).map_err(|e| failed(&e))?;
        redb_builder(cache_bytes)
            .open(&path)
            .map_err(|e| failed(&e))
    })
}

/// redb's file signature: the first bytes of every redb file, written last by its creation.
const REDB_SIGNATURE: [u8; 9] = [b'r', b'e', b'd', b'b', 0x1A, 0x0A, 0xA9, 0x0D, 0x0A];
/// The size of redb's file header, the only bytes its creation writes before the signature.
const REDB_HEADER_BYTES: u64 = 320;
/// How much of a file one read of the zero scan covers.
const SCAN_CHUNK: u64 = 64 * 1024;

/// What a single-file storage holds before redb opens it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Contents {
    /// Nothing: redb creates the store.
    Empty,
    /// redb's signature: a store (redb repairs it if a commit was interrupted).
    Signed,
    /// No signature and nothing past the header: a creation that never finished.
    InterruptedCreation,
    /// No signature yet data past the header: not a store this backend created.
    Foreign,
}

fn inspect(storage: &impl StorageBackend) -> io::Result<Contents> {
    let len = storage.len()?;
    if len == 0 {
        return Ok(Contents::Empty);
    }
    let mut signature = [0u8; REDB_SIGNATURE.len()];
    if len >= signature.len() as u64 {
        storage.read(0, &mut signature)?;
        if signature == REDB_SIGNATURE {
            return Ok(Contents::Signed);
        }
    }
    let mut offset = REDB_HEADER_BYTES.min(len);
    let mut chunk = vec![0u8; SCAN_CHUNK as usize];
    while offset < len {
        let size = (len - offset).min(SCAN_CHUNK) as usize;
        storage.read(offset, &mut chunk[..size])?;
        if chunk[..size].iter().any(|b| *b != 0) {
            return Ok(Contents::Foreign);
        }
        offset += size as u64;
    }
    Ok(Contents::InterruptedCreation)
}

/// Empties a storage whose creation was interrupted (durably, so a crash now leaves it empty
/// or as it was), so redb creates the store anew; refuses a file it did not create.
fn restart_interrupted_creation(storage: &impl StorageBackend) -> Result<(), String> {
    match inspect(storage).map_err(|e| format!("I/O error: {e}"))? {
        Contents::Empty | Contents::Signed => Ok(()),
        Contents::InterruptedCreation => {
            tracing::warn!("redb: a creation of the store was interrupted; creating it again");
            storage
                .set_len(0)
                .and_then(|()| storage.sync_data())
                .map_err(|e| format!("I/O error while restarting an interrupted creation: {e}"))
        }
        Contents::Foreign => {
            Err("not a redb store (no signature, data past the header): left untouched".to_string())
        }
    }
}

/// The name a file is created under before it is renamed into place.
fn creating_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_os_string();
    name.push(".creating");
    PathBuf::from(name)
}

/// Creates the store at `path` if nothing is there: whole under a temporary name (tables
/// committed, so synced, by redb), then renamed into place, then the directory synced.
fn create_file_atomically(path: &Path, cache_bytes: Option<usize>) -> Result<(), String> {
    match std::fs::symlink_metadata(path) {
        Ok(_) => return Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e.to_string()),
    }
    let creating = creating_path(path);
    match std::fs::remove_file(&creating) {
        Ok(()) => tracing::warn!(path = %creating.display(), "removed an interrupted creation"),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(format!("removing {}: {e}", creating.display())),
    }
    let db = redb_builder(cache_bytes)
        .create(&creating)
        .map_err(|e| format!("creating {}: {e}", creating.display()))?;
    create_tables(&db).map_err(|e| e.to_string())?;
    drop(db);
    std::fs::rename(&creating, path).map_err(|e| format!("renaming into place: {e}"))?;
    sync_parent_dir(path).map_err(|e| format!("syncing the directory: {e}"))
}

/// Makes a rename in `path`'s directory durable.
fn sync_parent_dir(path: &Path) -> io::Result<()> {
    let parent = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    #[cfg(unix)]
    {
        std::fs::File::open(parent)?.sync_all()
    }
    #[cfg(not(unix))]
    {
        // Elsewhere a directory cannot be opened to sync it; the rename is as durable as the
        // file system makes it.
        let _ = parent;
        Ok(())
    }
}

/// A redb builder (not `Send`, so each open makes its own).
///
/// Every open checks the whole file's integrity: redb trusts a cleanly closed file without
/// reading its checksums, so a damaged one (a flipped bit, a zeroed or torn sector) could be
/// served as data, or make redb panic on a page it cannot parse (found by the `redb_image` fuzz
/// target). The check verifies every committed page's checksum and rebuilds the allocator
/// state, so a damaged store fails to open with an error instead. It reads the whole file,
/// once per open (at start and after an I/O error), which a cold store can afford.
fn redb_builder(cache_bytes: Option<usize>) -> redb::Builder {
    let mut builder = Database::builder();
    builder.set_check_integrity_on_open(true);
    if let Some(bytes) = cache_bytes {
        builder.set_cache_size(bytes);
    }
    builder
}

/// Opens the database again on the same storage (used after an I/O error).
type Opener = Box<dyn Fn() -> Result<Database, String> + Send + Sync>;

struct Inner {
    /// The open database; `None` only while a reopen is replacing it or after one failed.
    db: std::sync::RwLock<Option<Arc<Database>>>,
    /// Opens the database on the same storage again.
    opener: Opener,
    timeouts: Timeouts,
    /// Where virtual latency comes from, when the disk is simulated.
    disk: Option<SimDisk>,
    /// Serializes writes without blocking the thread.
    write_gate: tokio::sync::Mutex<()>,
}

/// A cold-storage backend on redb. Clones share one database.
#[derive(Clone)]
pub struct RedbBackend {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for RedbBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedbBackend")
            .field("timeouts", &self.inner.timeouts)
            .field("disk", &self.inner.disk)
            .finish()
    }
}

/// A `Backend` error for a redb failure in `op`.
fn redb_error(op: &'static str, e: impl std::fmt::Display) -> ColdStorageError {
    ColdStorageError::backend(op, format!("redb: {e}"))
}

/// A `Backend` error for a stored value that is not what was written.
fn corrupt(
    op: &'static str,
    table: &str,
    key: impl std::fmt::Debug,
    why: impl std::fmt::Display,
) -> ColdStorageError {
    ColdStorageError::backend(
        op,
        format!("table `{table}` key {key:?}: corrupt value: {why}"),
    )
}

fn decode_header(op: &'static str, number: u64, bytes: &[u8]) -> ColdResult<SealedHeader> {
    let header: SealedHeader =
        postcard::from_bytes(bytes).map_err(|e| corrupt(op, "headers", number, e))?;
    if !header.hash_is_valid() {
        return Err(corrupt(
            op,
            "headers",
            number,
            "hash does not match the header",
        ));
    }
    if header.number() != number {
        return Err(corrupt(
            op,
            "headers",
            number,
            format!("holds header of block {}", header.number()),
        ));
    }
    Ok(header)
}

fn read_header(
    op: &'static str,
    headers: &impl ReadableTable<u64, &'static [u8]>,
    number: u64,
) -> ColdResult<Option<SealedHeader>> {
    let Some(guard) = headers.get(number).map_err(|e| redb_error(op, e))? else {
        return Ok(None);
    };
    decode_header(op, number, guard.value()).map(Some)
}

/// Loads and checks a whole block.
fn read_block(
    op: &'static str,
    headers: &impl ReadableTable<u64, &'static [u8]>,
    bodies: &impl ReadableTable<u64, &'static [u8]>,
    number: u64,
) -> ColdResult<Option<BlockData>> {
    let Some(header) = read_header(op, headers, number)? else {
        return Ok(None);
    };
    let guard = bodies
        .get(number)
        .map_err(|e| redb_error(op, e))?
        .ok_or_else(|| corrupt(op, "bodies", number, "missing for a stored header"))?;
    let body: Body =
        postcard::from_bytes(guard.value()).map_err(|e| corrupt(op, "bodies", number, e))?;
    let block = BlockData {
        header,
        transactions: body.transactions,
        receipts: body.receipts,
    };
    block
        .validate()
        .map_err(|e| corrupt(op, "bodies", number, e))?;
    debug_assert_eq!(block.number(), number);
    Ok(Some(block))
}

/// The first stored block in `from..=to`.
fn next_block(
    op: &'static str,
    headers: &impl ReadableTable<u64, &'static [u8]>,
    from: u64,
    to: u64,
) -> ColdResult<Option<u64>> {
    let mut range = headers.range(from..=to).map_err(|e| redb_error(op, e))?;
    match range.next() {
        None => Ok(None),
        Some(entry) => Ok(Some(entry.map_err(|e| redb_error(op, e))?.0.value())),
    }
}

/// The newest block and its header hash: what a committing write always changes.
type Tip = Option<(u64, B256)>;

/// Reopen attempts after a failed commit before its outcome is reported unknown.
const RECOVERY_ATTEMPTS: u32 = 8;

fn tip_in(op: &'static str, headers: &impl ReadableTable<u64, &'static [u8]>) -> ColdResult<Tip> {
    let Some(last) = headers.last().map_err(|e| redb_error(op, e))? else {
        return Ok(None);
    };
    let number = last.0.value();
    let header = decode_header(op, number, last.1.value())?;
    Ok(Some((number, header.hash())))
}

fn txn_tip(op: &'static str, txn: &WriteTransaction) -> ColdResult<Tip> {
    tip_in(op, &txn.open_table(HEADERS).map_err(|e| redb_error(op, e))?)
}

fn tip_of(op: &'static str, db: &Database) -> ColdResult<Tip> {
    let txn = db.begin_read().map_err(|e| redb_error(op, e))?;
    tip_in(op, &txn.open_table(HEADERS).map_err(|e| redb_error(op, e))?)
}

fn latest_block(
    op: &'static str,
    headers: &impl ReadableTable<u64, &'static [u8]>,
) -> ColdResult<Option<u64>> {
    Ok(headers
        .last()
        .map_err(|e| redb_error(op, e))?
        .map(|(key, _)| key.value()))
}

/// A read snapshot with its tables open.
/// `headers` is opened at once (nearly every read needs it); the other tables on first use,
/// which keeps a point lookup by number to one table open.
struct Snapshot {
    headers: redb::ReadOnlyTable<u64, &'static [u8]>,
    bodies: OnceCell<redb::ReadOnlyTable<u64, &'static [u8]>>,
    header_hashes: OnceCell<redb::ReadOnlyTable<[u8; 32], u64>>,
    tx_hashes: OnceCell<redb::ReadOnlyTable<TxKey, ()>>,
    txn: ReadTransaction,
}

/// Opens a table of a snapshot once.
fn open_once<'a, K: redb::Key + 'static, V: redb::Value + 'static>(
    cell: &'a OnceCell<redb::ReadOnlyTable<K, V>>,
    txn: &ReadTransaction,
    op: &'static str,
    table: TableDefinition<K, V>,
) -> ColdResult<&'a redb::ReadOnlyTable<K, V>> {
    if let Some(open) = cell.get() {
        return Ok(open);
    }
    let open = txn.open_table(table).map_err(|e| redb_error(op, e))?;
    Ok(cell.get_or_init(|| open))
}

impl Snapshot {
    fn bodies(&self, op: &'static str) -> ColdResult<&redb::ReadOnlyTable<u64, &'static [u8]>> {
        open_once(&self.bodies, &self.txn, op, BODIES)
    }

    fn block_number_by_hash(&self, op: &'static str, hash: B256) -> ColdResult<Option<u64>> {
        Ok(
            open_once(&self.header_hashes, &self.txn, op, HEADER_HASHES)?
                .get(hash.0)
                .map_err(|e| redb_error(op, e))?
                .map(|guard| guard.value()),
        )
    }

    fn block(&self, op: &'static str, number: u64) -> ColdResult<Option<BlockData>> {
        read_block(op, &self.headers, self.bodies(op)?, number)
    }

    fn block_by_hash(&self, op: &'static str, hash: B256) -> ColdResult<Option<BlockData>> {
        let Some(number) = self.block_number_by_hash(op, hash)? else {
            return Ok(None);
        };
        let block = self.block(op, number)?.ok_or_else(|| {
            corrupt(
                op,
                "header_hashes",
                hash,
                format!("names missing block {number}"),
            )
        })?;
        if block.header.hash() != hash {
            return Err(corrupt(
                op,
                "header_hashes",
                hash,
                format!("names block {number} of another hash"),
            ));
        }
        Ok(Some(block))
    }

    /// The block and index of the lowest occurrence of a transaction hash.
    fn tx_location(&self, op: &'static str, hash: B256) -> ColdResult<Option<(u64, u64)>> {
        let mut occurrences = open_once(&self.tx_hashes, &self.txn, op, TX_HASHES)?
            .range((hash.0, 0u64, 0u64)..=(hash.0, u64::MAX, u64::MAX))
            .map_err(|e| redb_error(op, e))?;
        match occurrences.next() {
            None => Ok(None),
            Some(entry) => {
                let (_, block, index) = entry.map_err(|e| redb_error(op, e))?.0.value();
                Ok(Some((block, index)))
            }
        }
    }

    /// The block holding a transaction hash, with the transaction's index, checked.
    fn block_with_tx(
        &self,
        op: &'static str,
        hash: B256,
    ) -> ColdResult<Option<(BlockData, usize)>> {
        let Some((number, index)) = self.tx_location(op, hash)? else {
            return Ok(None);
        };
        let block = self.block(op, number)?.ok_or_else(|| {
            corrupt(
                op,
                "tx_hashes",
                hash,
                format!("names missing block {number}"),
            )
        })?;
        let index = usize::try_from(index).ok().filter(|i| {
            block
                .transactions
                .get(*i)
                .is_some_and(|tx| tx.hash() == hash)
        });
        let index = index.ok_or_else(|| {
            corrupt(
                op,
                "tx_hashes",
                hash,
                format!("names a wrong position in block {number}"),
            )
        })?;
        Ok(Some((block, index)))
    }
}

/// A position given as `u64` that cannot exist when it does not fit in `usize`.
fn position(index: u64) -> Option<usize> {
    usize::try_from(index).ok()
}

impl RedbBackend {
    /// A builder (timeouts 500 ms / 2 s by default).
    pub fn builder() -> RedbBackendBuilder {
        RedbBackendBuilder::default()
    }

    /// Opens (or creates) a database file with default timeouts.
    pub fn open_file(path: impl AsRef<Path>) -> ColdResult<RedbBackend> {
        RedbBackend::builder().open_file(path)
    }

    /// Opens (or creates) a database on a [`SimDisk`] with default timeouts.
    pub fn open_sim(disk: SimDisk) -> ColdResult<RedbBackend> {
        RedbBackend::builder().open_sim(disk)
    }

    fn open_with(
        opener: Opener,
        timeouts: Timeouts,
        disk: Option<SimDisk>,
    ) -> ColdResult<RedbBackend> {
        let db = open_database(&opener)?;
        Ok(RedbBackend {
            inner: Arc::new(Inner {
                db: std::sync::RwLock::new(Some(Arc::new(db))),
                opener,
                timeouts,
                disk,
                write_gate: tokio::sync::Mutex::new(()),
            }),
        })
    }

    /// The open database; if an earlier reopen failed, this op tries again (reads too), so a
    /// transient I/O error does not close the store for good and no op sees a pre-recovery view.
    fn database(&self, op: &'static str) -> ColdResult<Arc<Database>> {
        if let Some(db) = self
            .inner
            .db
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
        {
            return Ok(db);
        }
        let mut slot = self.inner.db.write().unwrap_or_else(|e| e.into_inner());
        if let Some(db) = slot.clone() {
            return Ok(db);
        }
        tracing::warn!(op, "reopening redb after a failed reopen");
        let db = Arc::new(open_database(&self.inner.opener)?);
        *slot = Some(db.clone());
        Ok(db)
    }

    /// After a commit failed with an I/O error: recovers (reopens, retrying a few times, as the
    /// error may be transient) and says whether the commit survived, by comparing the tip with
    /// the one the write started from. redb recovers exactly the previous commit or this one,
    /// and a committing write always moves the tip, so the comparison decides. `None` when the
    /// store cannot be reopened: the outcome is then unknown.
    fn recover_outcome(&self, op: &'static str, tip_before: Tip) -> Option<bool> {
        for _ in 0..RECOVERY_ATTEMPTS {
            let Ok(db) = self.reopen(op) else { continue };
            let Ok(tip_after) = tip_of(op, &db) else {
                continue;
            };
            return Some(tip_after != tip_before);
        }
        None
    }

    /// Replaces a database that latched an I/O error with a fresh one on the same storage,
    /// which recovers the last durable commit. Called with the write gate held, so no write
    /// transaction is live.
    fn reopen(&self, op: &'static str) -> ColdResult<Arc<Database>> {
        let mut slot = self.inner.db.write().unwrap_or_else(|e| e.into_inner());
        if let Some(failed) = slot.take() {
            // The failed database must close (releasing the storage and its locks) before the
            // new one opens; another holder of it would keep it open.
            match Arc::try_unwrap(failed) {
                Ok(db) => drop(db),
                Err(busy) => {
                    *slot = Some(busy);
                    return Err(ColdStorageError::backend(
                        op,
                        "redb latched an I/O error and is still in use; retry",
                    ));
                }
            }
        }
        tracing::warn!(op, "reopening redb after an I/O error");
        let db = Arc::new(open_database(&self.inner.opener)?);
        *slot = Some(db.clone());
        Ok(db)
    }

    /// Sleeps the disk's owed virtual latency (if the disk is simulated).
    async fn settle_latency(&self) {
        if let Some(disk) = &self.inner.disk {
            let owed = disk.take_latency();
            if !owed.is_zero() {
                rt::sleep(owed).await;
            }
        }
    }

    /// Sleeps owed latency, then checks the deadline.
    async fn settle(&self, deadline: &Deadline) -> ColdResult<()> {
        self.settle_latency().await;
        deadline.check()
    }

    fn snapshot(&self, op: &'static str) -> ColdResult<Snapshot> {
        let txn = self
            .database(op)?
            .begin_read()
            .map_err(|e| redb_error(op, e))?;
        Ok(Snapshot {
            headers: txn.open_table(HEADERS).map_err(|e| redb_error(op, e))?,
            bodies: OnceCell::new(),
            header_hashes: OnceCell::new(),
            tx_hashes: OnceCell::new(),
            txn,
        })
    }

    /// Runs one point read on a fresh snapshot, then sleeps its latency and checks the read
    /// deadline, so a read slower than its timeout returns `DeadlineExceeded`, not data.
    async fn point_read<T>(
        &self,
        op: &'static str,
        read: impl Fn(&Snapshot) -> ColdResult<T>,
    ) -> ColdResult<T> {
        let deadline = Deadline::after(self.inner.timeouts.read);
        let mut result = self.snapshot(op).and_then(|snapshot| read(&snapshot));
        if result.is_err() && self.heal_if_latched(op, &deadline).await {
            result = self.snapshot(op).and_then(|snapshot| read(&snapshot));
        }
        self.settle(&deadline).await?;
        result
    }

    /// Runs a read; if it fails because redb latched an earlier I/O error (it then refuses
    /// reads that miss its cache until reopened), recovers the store and runs it once more.
    async fn healing<T, F, Fut>(&self, op: &'static str, read: F) -> ColdResult<T>
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = ColdResult<T>>,
    {
        let first = read().await;
        let deadline = Deadline::after(self.inner.timeouts.read);
        if first.is_ok() || !self.heal_if_latched(op, &deadline).await {
            return first;
        }
        read().await
    }

    /// Reopens the store if redb latched an I/O error; says whether it did. Holds the write
    /// gate, so no write transaction is live (redb's `begin_write` would block the thread).
    async fn heal_if_latched(&self, op: &'static str, deadline: &Deadline) -> bool {
        let Ok(_gate) = rt::timeout_at(deadline.at(), self.inner.write_gate.lock()).await else {
            return false;
        };
        let latched = matches!(
            self.database(op).map(|db| db.begin_write()),
            Ok(Err(redb::TransactionError::Storage(
                redb::StorageError::PreviousIo
            )))
        );
        latched && self.reopen(op).is_ok()
    }

    /// Runs a write transaction: `fill` stages the changes and says whether it changed
    /// anything, the deadline is checked, then the transaction commits durably. Any error or an
    /// expired deadline aborts (rolls back); so does a write that changed nothing, which then
    /// costs no disk I/O.
    async fn write<T>(
        &self,
        op: &'static str,
        fill: impl FnOnce(&WriteTransaction, &Deadline) -> ColdResult<(T, Changed)>,
    ) -> ColdResult<T> {
        let deadline = Deadline::after(self.inner.timeouts.write);
        let _gate = rt::timeout_at(deadline.at(), self.inner.write_gate.lock())
            .await
            .map_err(|_| ColdStorageError::DeadlineExceeded {
                timeout: deadline.timeout(),
            })?;
        let mut txn = match self.database(op).map(|db| db.begin_write()) {
            Ok(Ok(txn)) => txn,
            // redb refuses every write after an I/O error until reopened; reopen once.
            Ok(Err(redb::TransactionError::Storage(redb::StorageError::PreviousIo))) | Err(_) => {
                self.reopen(op)?
                    .begin_write()
                    .map_err(|e| redb_error(op, e))?
            }
            Ok(Err(e)) => return Err(redb_error(op, e)),
        };
        txn.set_durability(Durability::Immediate)
            .map_err(|e| redb_error(op, e))?;
        let tip_before = txn_tip(op, &txn)?;
        let staged = fill(&txn, &deadline);
        let checked = match staged {
            Ok(value) => self.settle(&deadline).await.map(|()| value),
            Err(e) => Err(e),
        };
        let value = match checked {
            Ok((value, Changed::Yes)) => value,
            Ok((value, Changed::No)) => {
                abort(op, txn);
                return Ok(value);
            }
            Err(e) => {
                abort(op, txn);
                self.settle_latency().await;
                return Err(e);
            }
        };
        let committed = txn.commit().map_err(|e| redb_error(op, e));
        self.settle_latency().await;
        if let Err(error) = committed {
            // The commit may have reached the disk before the error. Report what recovery
            // finds, so an error always means "not applied" and a success "durable".
            return match self.recover_outcome(op, tip_before) {
                Some(true) => {
                    tracing::warn!(op, %error, "commit failed but recovery found it durable");
                    Ok(value)
                }
                Some(false) => Err(error),
                None => Err(ColdStorageError::Indeterminate { op }),
            };
        }
        if deadline.expired() {
            tracing::warn!(op, timeout = ?deadline.timeout(), "redb commit finished past the write deadline");
        }
        Ok(value)
    }

    /// Removes every block above `block` in one transaction; with `collect`, returns their
    /// enriched receipts (index 0 = `block + 1`).
    async fn remove_above(
        &self,
        op: &'static str,
        block: u64,
        collect: bool,
    ) -> ColdResult<Vec<Vec<ColdReceipt>>> {
        let Some(first) = block.checked_add(1) else {
            // Nothing can be above u64::MAX.
            return Ok(Vec::new());
        };
        self.write(op, |txn, deadline| {
            remove_blocks_from(txn, op, first, collect, deadline)
        })
        .await
    }
}

/// Opens the database and creates every table, so readers never meet a missing table.
fn open_database(opener: &Opener) -> ColdResult<Database> {
    let db = opener().map_err(|e| ColdStorageError::backend("open", e))?;
    create_tables(&db)?;
    Ok(db)
}

/// Creates every missing table in one durable commit (a no-op commit when all exist).
fn create_tables(db: &Database) -> ColdResult<()> {
    let txn = db.begin_write().map_err(|e| redb_error("open", e))?;
    {
        txn.open_table(HEADERS).map_err(|e| redb_error("open", e))?;
        txn.open_table(BODIES).map_err(|e| redb_error("open", e))?;
        txn.open_table(HEADER_HASHES)
            .map_err(|e| redb_error("open", e))?;
        txn.open_table(TX_HASHES)
            .map_err(|e| redb_error("open", e))?;
    }
    txn.commit().map_err(|e| redb_error("open", e))
}

/// Whether a staged write changed anything (and so needs a commit).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Changed {
    Yes,
    No,
}

/// Rolls back a write transaction; a failing rollback is only logged, since nothing of the
/// transaction is visible either way.
fn abort(op: &'static str, txn: WriteTransaction) {
    if let Err(error) = txn.abort() {
        tracing::warn!(op, %error, "redb abort failed");
    }
}

/// The tables of a write transaction, opened once per write.
struct WriteTables<'txn> {
    headers: redb::Table<'txn, u64, &'static [u8]>,
    bodies: redb::Table<'txn, u64, &'static [u8]>,
    header_hashes: redb::Table<'txn, [u8; 32], u64>,
    tx_hashes: redb::Table<'txn, TxKey, ()>,
}

impl<'txn> WriteTables<'txn> {
    fn open(txn: &'txn WriteTransaction, op: &'static str) -> ColdResult<WriteTables<'txn>> {
        Ok(WriteTables {
            headers: txn.open_table(HEADERS).map_err(|e| redb_error(op, e))?,
            bodies: txn.open_table(BODIES).map_err(|e| redb_error(op, e))?,
            header_hashes: txn
                .open_table(HEADER_HASHES)
                .map_err(|e| redb_error(op, e))?,
            tx_hashes: txn.open_table(TX_HASHES).map_err(|e| redb_error(op, e))?,
        })
    }

    /// Stages one block: header, body and both hash indexes.
    fn insert(&mut self, op: &'static str, block: &BlockData) -> ColdResult<()> {
        let number = block.number();
        // Validated before the transaction began: a mismatch would corrupt every later read.
        debug_assert_eq!(block.transactions.len(), block.receipts.len());
        let header = postcard::to_allocvec(&block.header).map_err(|e| redb_error(op, e))?;
        let body = postcard::to_allocvec(&BodyRef {
            transactions: &block.transactions,
            receipts: &block.receipts,
        })
        .map_err(|e| redb_error(op, e))?;
        self.headers
            .insert(number, header.as_slice())
            .map_err(|e| redb_error(op, e))?;
        self.bodies
            .insert(number, body.as_slice())
            .map_err(|e| redb_error(op, e))?;
        self.header_hashes
            .insert(block.header.hash().0, number)
            .map_err(|e| redb_error(op, e))?;
        for (index, tx) in block.transactions.iter().enumerate() {
            self.tx_hashes
                .insert((tx.hash().0, number, index as u64), ())
                .map_err(|e| redb_error(op, e))?;
        }
        Ok(())
    }

    /// Stages the removal of one stored block and its index entries.
    fn remove(&mut self, op: &'static str, block: &BlockData) -> ColdResult<()> {
        let number = block.number();
        for (index, tx) in block.transactions.iter().enumerate() {
            self.tx_hashes
                .remove((tx.hash().0, number, index as u64))
                .map_err(|e| redb_error(op, e))?;
        }
        self.header_hashes
            .remove(block.header.hash().0)
            .map_err(|e| redb_error(op, e))?;
        self.headers.remove(number).map_err(|e| redb_error(op, e))?;
        self.bodies.remove(number).map_err(|e| redb_error(op, e))?;
        Ok(())
    }
}

/// Stages the removal of every block from `first` up; returns their receipts when `collect`.
fn remove_blocks_from(
    txn: &WriteTransaction,
    op: &'static str,
    first: u64,
    collect: bool,
    deadline: &Deadline,
) -> ColdResult<(Vec<Vec<ColdReceipt>>, Changed)> {
    let mut tables = WriteTables::open(txn, op)?;
    let mut drained = Vec::new();
    let mut changed = Changed::No;
    let mut next = first;
    while let Some(number) = next_block(op, &tables.headers, next, u64::MAX)? {
        deadline.check()?;
        let block = read_block(op, &tables.headers, &tables.bodies, number)?
            .ok_or_else(|| corrupt(op, "headers", number, "vanished during removal"))?;
        if collect {
            drained.push(block.cold_receipts());
        }
        tables.remove(op, &block)?;
        changed = Changed::Yes;
        let Some(after) = number.checked_add(1) else {
            break;
        };
        next = after;
    }
    debug_assert!(
        next_block(op, &tables.headers, first, u64::MAX)
            .map(|n| n.is_none())
            .unwrap_or(true)
    );
    Ok((drained, changed))
}

impl RedbBackend {
    async fn append(&self, op: &'static str, blocks: Vec<BlockData>) -> ColdResult<()> {
        BlockData::validate_batch(&blocks)?;
        self.write(op, |txn, deadline| stage_blocks(txn, op, &blocks, deadline))
            .await
    }

    /// The stream body over one snapshot: `Err(Some(e))` ends the stream with `e`,
    /// `Err(None)` means the consumer went away. Whole blocks are sent while they fit within
    /// `max_logs`; a block that would overflow ends the stream with `TooManyLogs`, as
    /// `get_logs` over the same range would answer.
    async fn stream_from_snapshot(
        &self,
        filter: &Filter,
        params: &StreamParams,
    ) -> Result<(), Option<ColdStorageError>> {
        const OP: &str = "produce_log_stream";
        if params.from > params.to {
            return Err(Some(
                InvalidInput::EmptyRange {
                    from: params.from,
                    to: params.to,
                }
                .into(),
            ));
        }
        let snapshot = match self.snapshot(OP) {
            Ok(snapshot) => snapshot,
            Err(_)
                if self
                    .heal_if_latched(OP, &Deadline::after(self.inner.timeouts.read))
                    .await =>
            {
                self.snapshot(OP)?
            }
            Err(e) => return Err(Some(e)),
        };
        // `to` was the latest block at setup: the snapshot must still hold it, unchanged, or
        // the range the caller asked for is gone (see `StreamParams::anchor`).
        if let Some(anchor) = params.anchor {
            let held = snapshot.block(OP, params.to)?.map(|b| b.header.hash());
            if held != Some(anchor) {
                return Err(Some(ColdStorageError::ReorgDetected));
            }
        }
        let mut sent = 0usize;
        let mut next = params.from;
        loop {
            let slept = rt::timeout_at(params.deadline, self.settle_latency()).await;
            if slept.is_err() || rt::now() >= params.deadline {
                return Err(Some(ColdStorageError::StreamDeadlineExceeded));
            }
            let Some(number) = next_block(OP, &snapshot.headers, next, params.to)? else {
                return Ok(());
            };
            let block = snapshot
                .block(OP, number)?
                .ok_or_else(|| corrupt(OP, "headers", number, "vanished in a snapshot"))?;
            let logs: Vec<RpcLog> = block.matching_logs(filter).collect();
            if logs.len() > params.max_logs - sent {
                return Err(Some(ColdStorageError::TooManyLogs {
                    limit: params.max_logs,
                }));
            }
            for log in logs {
                match rt::timeout_at(params.deadline, params.sender.send(Ok(log))).await {
                    Ok(Ok(())) => sent += 1,
                    Ok(Err(_closed)) => return Err(None),
                    Err(rt::Elapsed) => return Err(Some(ColdStorageError::StreamDeadlineExceeded)),
                }
            }
            debug_assert!(sent <= params.max_logs);
            match number.checked_add(1) {
                Some(after) if after <= params.to => next = after,
                _ => return Ok(()),
            }
        }
    }
}

/// Stages a validated batch after checking it goes above the latest stored block.
fn stage_blocks(
    txn: &WriteTransaction,
    op: &'static str,
    blocks: &[BlockData],
    deadline: &Deadline,
) -> ColdResult<((), Changed)> {
    let mut tables = WriteTables::open(txn, op)?;
    let latest = latest_block(op, &tables.headers)?;
    if let Some(first) = blocks.first() {
        BlockData::check_above(latest, first.number())?;
    }
    for block in blocks {
        deadline.check()?;
        tables.insert(op, block)?;
    }
    Ok(((), Changed::Yes))
}

impl ColdStorageRead for RedbBackend {
    fn timeouts(&self) -> Timeouts {
        self.inner.timeouts
    }

    async fn get_header(&self, spec: HeaderSpecifier) -> ColdResult<Option<SealedHeader>> {
        const OP: &str = "get_header";
        self.point_read(OP, |s| match spec {
            HeaderSpecifier::Number(number) => read_header(OP, &s.headers, number),
            HeaderSpecifier::Hash(hash) => {
                let Some(number) = s.block_number_by_hash(OP, hash)? else {
                    return Ok(None);
                };
                let header = read_header(OP, &s.headers, number)?.ok_or_else(|| {
                    corrupt(
                        OP,
                        "header_hashes",
                        hash,
                        format!("names missing block {number}"),
                    )
                })?;
                if header.hash() != hash {
                    return Err(corrupt(
                        OP,
                        "header_hashes",
                        hash,
                        format!("names block {number} of another hash"),
                    ));
                }
                Ok(Some(header))
            }
        })
        .await
    }

    async fn get_headers(
        &self,
        specs: Vec<HeaderSpecifier>,
    ) -> ColdResult<Vec<Option<SealedHeader>>> {
        self.healing("get_headers", || self.get_headers_once(&specs))
            .await
    }

    async fn get_logs(&self, filter: &Filter, max_logs: usize) -> ColdResult<Vec<RpcLog>> {
        self.healing("get_logs", || self.get_logs_once(filter, max_logs))
            .await
    }

    async fn get_transaction(
        &self,
        spec: TransactionSpecifier,
    ) -> ColdResult<Option<Confirmed<Transaction>>> {
        const OP: &str = "get_transaction";
        self.point_read(OP, |s| {
            let (block, index) = match spec {
                TransactionSpecifier::Hash(hash) => match s.block_with_tx(OP, hash)? {
                    Some(found) => found,
                    None => return Ok(None),
                },
                TransactionSpecifier::BlockAndIndex { block, index } => {
                    match (s.block(OP, block)?, position(index)) {
                        (Some(block), Some(index)) => (block, index),
                        _ => return Ok(None),
                    }
                }
                TransactionSpecifier::BlockHashAndIndex { block_hash, index } => {
                    match (s.block_by_hash(OP, block_hash)?, position(index)) {
                        (Some(block), Some(index)) => (block, index),
                        _ => return Ok(None),
                    }
                }
            };
            Ok(block.confirmed_transaction(index))
        })
        .await
    }

    async fn get_transactions_in_block(&self, block: u64) -> ColdResult<Vec<Transaction>> {
        const OP: &str = "get_transactions_in_block";
        self.point_read(OP, |s| {
            Ok(s.block(OP, block)?
                .map(|b| b.transactions)
                .unwrap_or_default())
        })
        .await
    }

    async fn get_transaction_count(&self, block: u64) -> ColdResult<u64> {
        const OP: &str = "get_transaction_count";
        self.point_read(OP, |s| {
            Ok(s.block(OP, block)?
                .map_or(0, |b| b.transactions.len() as u64))
        })
        .await
    }

    async fn get_receipt(&self, spec: ReceiptSpecifier) -> ColdResult<Option<ColdReceipt>> {
        const OP: &str = "get_receipt";
        self.point_read(OP, |s| match spec {
            ReceiptSpecifier::TxHash(hash) => Ok(s
                .block_with_tx(OP, hash)?
                .and_then(|(block, index)| block.cold_receipt(index))),
            ReceiptSpecifier::BlockAndIndex { block, index } => {
                match (s.block(OP, block)?, position(index)) {
                    (Some(block), Some(index)) => Ok(block.cold_receipt(index)),
                    _ => Ok(None),
                }
            }
        })
        .await
    }

    async fn get_receipts_in_block(&self, block: u64) -> ColdResult<Vec<ColdReceipt>> {
        const OP: &str = "get_receipts_in_block";
        self.point_read(OP, |s| {
            Ok(s.block(OP, block)?
                .map(|b| b.cold_receipts())
                .unwrap_or_default())
        })
        .await
    }

    async fn get_latest_block(&self) -> ColdResult<Option<u64>> {
        const OP: &str = "get_latest_block";
        self.point_read(OP, |s| latest_block(OP, &s.headers)).await
    }

    async fn produce_log_stream(&self, filter: &Filter, params: StreamParams) {
        if crate::bugs::active(crate::bugs::Bug::UnboundedTerminalSend) {
            // Planted bug (hazard H1 of docs/hazards.md): no reserved slot; the terminal error
            // waits for the consumer.
            if let Err(Some(error)) = self.stream_from_snapshot(filter, &params).await {
                let _ = params.sender.send(Err(error)).await;
            }
            return;
        }
        // Reserve the terminal slot first, so the final error never waits on the consumer.
        let terminal =
            match rt::timeout_at(params.deadline, params.sender.clone().reserve_owned()).await {
                Ok(Ok(permit)) => permit,
                // The consumer is gone, or made no room before the deadline: nobody to tell.
                Ok(Err(_)) | Err(rt::Elapsed) => return,
            };
        if let Err(Some(error)) = self.stream_from_snapshot(filter, &params).await {
            terminal.send(Err(error));
        }
    }
}

impl ColdStorageWrite for RedbBackend {
    async fn append_block(&self, block: BlockData) -> ColdResult<()> {
        self.append("append_block", vec![block]).await
    }

    async fn append_blocks(&self, blocks: Vec<BlockData>) -> ColdResult<()> {
        self.append("append_blocks", blocks).await
    }

    async fn truncate_above(&self, block: u64) -> ColdResult<()> {
        self.remove_above("truncate_above", block, false)
            .await
            .map(|_| ())
    }
}

impl ColdStorageBackend for RedbBackend {
    async fn drain_above(&self, block: u64) -> ColdResult<Vec<Vec<ColdReceipt>>> {
        self.remove_above("drain_above", block, true).await
    }
}

/// Single attempts of the reads that [`RedbBackend::healing`] retries.
impl RedbBackend {
    async fn get_headers_once(
        &self,
        specs: &[HeaderSpecifier],
    ) -> ColdResult<Vec<Option<SealedHeader>>> {
        const OP: &str = "get_headers";
        let deadline = Deadline::after(self.inner.timeouts.read);
        let snapshot = self.snapshot(OP)?;
        let mut out = Vec::with_capacity(specs.len());
        for spec in specs.iter().copied() {
            self.settle(&deadline).await?;
            let header = match spec {
                HeaderSpecifier::Number(number) => read_header(OP, &snapshot.headers, number)?,
                HeaderSpecifier::Hash(hash) => snapshot.block_by_hash(OP, hash)?.map(|b| b.header),
            };
            out.push(header);
        }
        self.settle(&deadline).await?;
        Ok(out)
    }

    async fn get_logs_once(&self, filter: &Filter, max_logs: usize) -> ColdResult<Vec<RpcLog>> {
        const OP: &str = "get_logs";
        let deadline = Deadline::after(self.inner.timeouts.read);
        let snapshot = self.snapshot(OP)?;
        let latest = latest_block(OP, &snapshot.headers)?;
        let Some((from, to)) = filter.resolve_range(latest)? else {
            self.settle(&deadline).await?;
            return Ok(Vec::new());
        };
        let mut logs = Vec::new();
        let mut next = from;
        loop {
            self.settle(&deadline).await?;
            let Some(number) = next_block(OP, &snapshot.headers, next, to)? else {
                break;
            };
            let block = snapshot
                .block(OP, number)?
                .ok_or_else(|| corrupt(OP, "headers", number, "vanished in a snapshot"))?;
            for log in block.matching_logs(filter) {
                if logs.len() == max_logs {
                    return Err(ColdStorageError::TooManyLogs { limit: max_logs });
                }
                logs.push(log);
            }
            match number.checked_add(1) {
                Some(after) if after <= to => next = after,
                _ => break,
            }
        }
        debug_assert!(logs.len() <= max_logs);
        self.settle(&deadline).await?;
        Ok(logs)
    }
}

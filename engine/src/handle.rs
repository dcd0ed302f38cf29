//! The clone-cheap handle: permits, the drain barrier, cache, streams and shutdown.
//!
//! Every permit is taken here, in one place per kind (`Inner::acquire_read`,
//! `Inner::acquire_write`, `Inner::acquire_stream`), right before the work starts, and the
//! work holds it for the real duration of the backend call (fixes hazards B3 and B5; the
//! hazard codes are those of docs/hazards.md). A read or write runs in its caller's task (a
//! spawn per call would cost several times a point read); if the caller drops its future
//! before the work ends, `Inline` hands the rest of the work, with its permits and tracker
//! token, to a spawned task that holds them until it ends:
//! - a read takes one of `max_reads` read permits;
//! - a write takes the single write permit, then *all* `max_reads` read permits (the drain
//!   barrier), so no gated read runs while a write commits; the semaphores are FIFO, so readers
//!   arriving after a queued writer run after it;
//! - a stream takes one stream permit and no read permit (fixes hazard B4); its `to` is
//!   resolved first, bounded by the backend's read timeout, so a stuck backend cannot pin
//!   stream permits.
//!
//! Input is validated before any permit. Shutdown: an op takes a tracker token, then its
//! permits (free ones at once; before it would wait for one it checks the token, so nothing
//! blocks after shutdown), then checks the token, so no task starts after
//! [`ColdStorage::wait_shutdown`] returned (fixes hazard H4). The cache fast path
//! (`ColdStorage::fast_path`) answers number / (block, index) lookups without a permit, and
//! only while the handle is open; [`crate::cache`] explains why it never serves a removed
//! block (fixes hazard B1).
//!
//! Per call, the uncontended path reads the clock twice (the op's start and end; a permit wait
//! is timed only when there was one), checks the token once, and finds its metrics by
//! [`OpKind`] index.

use std::future::Future;
use std::num::NonZeroUsize;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore, TryAcquireError, mpsc, oneshot};
use tokio_util::sync::{CancellationToken, DropGuard};
use tokio_util::task::TaskTracker;
use tokio_util::task::task_tracker::TaskTrackerToken;
use tracing::Instrument;

use crate::backend::{ColdStorageBackend, StreamParams};
use crate::bugs::{self, Bug};
use crate::cache::Cache;
use crate::error::{ColdResult, ColdStorageError};
use crate::layer::OpKind;
use crate::metrics::{self, Metrics, Sem, Work};
use crate::rt::{self, Instant};
use crate::shutdown::{self, Shutdown};
use crate::stream::{LogStream, MIN_STREAM_CHANNEL_CAPACITY};
use crate::types::{
    B256, BlockData, ColdReceipt, Confirmed, Filter, HeaderSpecifier, ReceiptSpecifier, RpcLog,
    SealedHeader, Transaction, TransactionSpecifier,
};

/// How long after a stream's deadline the handle stops waiting for a backend producer that
/// ignores the deadline, and ends the stream itself.
const STREAM_GRACE: Duration = Duration::from_millis(10);

/// Handle configuration. Build it with [`Config::builder`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    max_reads: u32,
    max_streams: usize,
    cache_entries: NonZeroUsize,
    max_stream_deadline: Duration,
    stream_channel_capacity: usize,
}

impl Default for Config {
    fn default() -> Config {
        Config::builder().build()
    }
}

impl Config {
    /// A builder with the defaults: 64 reads, 8 streams, 2048 cache entries per map, streams
    /// of at most 60 s, 256 items of stream buffer.
    pub fn builder() -> ConfigBuilder {
        ConfigBuilder {
            config: Config {
                max_reads: 64,
                max_streams: 8,
                cache_entries: NonZeroUsize::new(2048).expect("2048 is not zero"),
                max_stream_deadline: Duration::from_secs(60),
                stream_channel_capacity: 256,
            },
        }
    }

    /// Concurrent gated reads, and the number of permits the drain barrier takes.
    pub fn max_reads(&self) -> u32 {
        self.max_reads
    }

    /// Concurrent stream producers.
    pub fn max_streams(&self) -> usize {
        self.max_streams
    }

    /// Longest deadline a stream gets, whatever the caller asks.
    pub fn max_stream_deadline(&self) -> Duration {
        self.max_stream_deadline
    }
}

/// Builds a [`Config`].
#[derive(Debug, Clone)]
pub struct ConfigBuilder {
    config: Config,
}

impl ConfigBuilder {
    /// Concurrent gated reads (at least 1).
    pub fn max_reads(mut self, max_reads: u32) -> ConfigBuilder {
        self.config.max_reads = max_reads;
        self
    }

    /// Concurrent stream producers (at least 1).
    pub fn max_streams(mut self, max_streams: usize) -> ConfigBuilder {
        self.config.max_streams = max_streams;
        self
    }

    /// Entries per cache map.
    pub fn cache_entries(mut self, cache_entries: NonZeroUsize) -> ConfigBuilder {
        self.config.cache_entries = cache_entries;
        self
    }

    /// Longest deadline a stream gets.
    pub fn max_stream_deadline(mut self, max_stream_deadline: Duration) -> ConfigBuilder {
        self.config.max_stream_deadline = max_stream_deadline;
        self
    }

    /// Items buffered per stream (at least [`MIN_STREAM_CHANNEL_CAPACITY`]).
    pub fn stream_channel_capacity(mut self, capacity: usize) -> ConfigBuilder {
        self.config.stream_channel_capacity = capacity;
        self
    }

    /// The configuration.
    ///
    /// # Panics
    /// When `max_reads` or `max_streams` is zero or the stream channel capacity is below
    /// [`MIN_STREAM_CHANNEL_CAPACITY`]: a handle built so could never make progress.
    pub fn build(self) -> Config {
        let config = self.config;
        assert!(config.max_reads >= 1, "max_reads must be at least 1");
        assert!(config.max_streams >= 1, "max_streams must be at least 1");
        assert!(
            config.stream_channel_capacity >= MIN_STREAM_CHANNEL_CAPACITY,
            "stream_channel_capacity must be at least {MIN_STREAM_CHANNEL_CAPACITY}"
        );
        config
    }
}

/// The one handle to a cold store. Cloning is an `Arc` clone.
pub struct ColdStorage<B> {
    inner: Arc<Inner<B>>,
}

impl<B> Clone for ColdStorage<B> {
    fn clone(&self) -> Self {
        ColdStorage {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<B> std::fmt::Debug for ColdStorage<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ColdStorage")
            .field("config", &self.inner.config)
            .field("reads_available", &self.inner.read_sem.available_permits())
            .field(
                "streams_available",
                &self.inner.stream_sem.available_permits(),
            )
            .field("tasks", &self.inner.tracker.len())
            .field("shut_down", &self.inner.shutdown.is_cancelled())
            .finish()
    }
}

struct Inner<B> {
    backend: B,
    config: Config,
    cache: Cache,
    metrics: Metrics,
    read_sem: Arc<Semaphore>,
    write_sem: Arc<Semaphore>,
    stream_sem: Arc<Semaphore>,
    tracker: TaskTracker,
    shutdown: CancellationToken,
    /// Cancels `shutdown` when the last reference goes, waking the coordinator (fixes hazard B2).
    _wake_coordinator: DropGuard,
}

impl<B: Send + Sync + 'static> Shutdown for Inner<B> {
    fn close(&self) {
        self.read_sem.close();
        self.write_sem.close();
        self.stream_sem.close();
        self.tracker.close();
    }
}

/// The permits a spawned task holds. Fields drop in declaration order: the drain's read
/// permits go back before the write permit, so readers resume before the next writer drains.
#[derive(Debug)]
enum Permits {
    Read {
        _read: OwnedSemaphorePermit,
    },
    Write {
        _drain: OwnedSemaphorePermit,
        _write: OwnedSemaphorePermit,
    },
}

impl Permits {
    fn work(&self) -> Work {
        match self {
            Permits::Read { .. } => Work::Read,
            Permits::Write { .. } => Work::Write,
        }
    }
}

fn terminated<E>(_: E) -> ColdStorageError {
    ColdStorageError::TaskTerminated
}

impl<B: ColdStorageBackend> Inner<B> {
    fn ensure_open(&self) -> ColdResult<()> {
        if self.shutdown.is_cancelled() {
            return Err(ColdStorageError::TaskTerminated);
        }
        Ok(())
    }

    /// `n` permits of `semaphore` (whose waits `sem` records): at once when they are free,
    /// with no clock read (a wait of zero); else, unless the handle is shut down (so nothing
    /// blocks after shutdown), by waiting in the semaphore's FIFO queue. Permits released to a
    /// queued waiter go to it, never back to the free count, so taking free ones at once never
    /// overtakes a queued waiter.
    async fn acquire(
        &self,
        sem: Sem,
        semaphore: &Arc<Semaphore>,
        n: u32,
    ) -> ColdResult<OwnedSemaphorePermit> {
        match Arc::clone(semaphore).try_acquire_many_owned(n) {
            Ok(permit) => {
                self.metrics.permit_waited(sem, Duration::ZERO);
                Ok(permit)
            }
            Err(TryAcquireError::Closed) => Err(ColdStorageError::TaskTerminated),
            Err(TryAcquireError::NoPermits) => {
                self.ensure_open()?;
                let started = rt::now();
                let permit = Arc::clone(semaphore)
                    .acquire_many_owned(n)
                    .await
                    .map_err(terminated)?;
                self.metrics
                    .permit_waited(sem, rt::now().saturating_duration_since(started));
                Ok(permit)
            }
        }
    }

    async fn acquire_read(&self) -> ColdResult<Permits> {
        let permit = self.acquire(Sem::Read, &self.read_sem, 1).await?;
        Ok(Permits::Read { _read: permit })
    }

    /// How many read permits the drain barrier takes: all of them.
    fn drain_permits(&self) -> u32 {
        if bugs::active(Bug::DrainOnePermitShort) {
            return self.config.max_reads.saturating_sub(1);
        }
        self.config.max_reads
    }

    async fn acquire_write(&self) -> ColdResult<Permits> {
        let write = self.acquire(Sem::Write, &self.write_sem, 1).await?;
        let drain = self
            .acquire(Sem::Drain, &self.read_sem, self.drain_permits())
            .await?;
        debug_assert_eq!(drain.num_permits(), self.drain_permits() as usize);
        Ok(Permits::Write {
            _drain: drain,
            _write: write,
        })
    }

    async fn acquire_stream(&self) -> ColdResult<OwnedSemaphorePermit> {
        self.acquire(Sem::Stream, &self.stream_sem, 1).await
    }
}

/// Backend work running inside its caller's future, already pinned on the heap so that it can
/// move: dropped before the work ended, it spawns the rest of the work (with the permits and
/// the tracker token the work owns) as a task of the caller's host, which runs it to its end.
/// A panic in the work unwinds through the caller's poll; the work is then dropped in place
/// (its permits go back), never spawned.
struct Inline<F>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    work: Option<Pin<Box<F>>>,
    /// Set while the work is polled: a drop that finds it set is the unwinding of the work's
    /// own panic.
    polling: bool,
}

impl<F> Inline<F>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    fn new(work: F) -> Inline<F> {
        Inline {
            work: Some(Box::pin(work)),
            polling: false,
        }
    }
}

impl<F> Future for Inline<F>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = &mut *self;
        let work = this
            .work
            .as_mut()
            .expect("Inline polled after it completed");
        this.polling = true;
        let polled = work.as_mut().poll(cx);
        this.polling = false;
        if polled.is_ready() {
            this.work = None;
        }
        polled
    }
}

impl<F> Drop for Inline<F>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    fn drop(&mut self) {
        if let Some(work) = self.work.take()
            && !self.polling
        {
            // Nobody waits for the answer; the task only has to hold the permits until the
            // backend is done. It goes on in the span current at the drop: the op's, when the
            // op has one (an instrumented future enters its span while it drops).
            drop(rt::spawn(work.in_current_span()));
        }
    }
}

/// Whether an op is a gated read or a write.
#[derive(Debug, Clone, Copy)]
enum Access {
    Read,
    Write,
}

impl<B: ColdStorageBackend> ColdStorage<B> {
    /// A handle over `backend`, shut down when `cancel` (or [`ColdStorage::shutdown`]) fires.
    /// Spawns the coordinator, so it needs a runtime.
    pub fn new(backend: B, cancel: CancellationToken, config: Config) -> ColdStorage<B> {
        let shutdown = cancel.child_token();
        let max_reads = usize::try_from(config.max_reads).unwrap_or(usize::MAX);
        let inner = Arc::new(Inner {
            backend,
            cache: Cache::new(config.cache_entries),
            metrics: Metrics::register(),
            read_sem: Arc::new(Semaphore::new(max_reads)),
            write_sem: Arc::new(Semaphore::new(1)),
            stream_sem: Arc::new(Semaphore::new(config.max_streams)),
            tracker: TaskTracker::new(),
            _wake_coordinator: shutdown.clone().drop_guard(),
            shutdown: shutdown.clone(),
            config,
        });
        shutdown::spawn_coordinator(Arc::downgrade(&inner), shutdown);
        ColdStorage { inner }
    }

    /// The backend (for inspection; going around the handle bypasses every permit).
    pub fn backend(&self) -> &B {
        &self.inner.backend
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    /// The stream permits taken now, as a gauge for monitors (it keeps the permits' semaphore,
    /// not the handle).
    pub fn stream_permits(&self) -> crate::stream::PermitGauge {
        let permits = Arc::clone(&self.inner.stream_sem);
        crate::stream::PermitGauge::new(permits, self.inner.config.max_streams)
    }

    /// Starts shutdown: every new op returns `TaskTerminated`, queued ops fail fast.
    pub fn shutdown(&self) {
        self.inner.shutdown.cancel();
    }

    /// Cancelled when this handle shuts down (by [`ColdStorage::shutdown`], the caller's token,
    /// or dropping every handle): for what must stop with it, such as a worker process.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.inner.shutdown.clone()
    }

    /// Waits until shutdown has started (by [`ColdStorage::shutdown`] or the caller's token)
    /// and every task the handle spawned has finished. Returns at once if both already hold.
    pub async fn wait_shutdown(&self) {
        self.inner.shutdown.cancelled().await;
        self.inner.tracker.close();
        self.inner.tracker.wait().await;
        debug_assert!(self.inner.tracker.is_empty());
    }

    /// Runs `work` in the caller's task, holding the permits of `access` and a tracker token
    /// for its whole duration; if the caller drops this future before `work` ends, the rest of
    /// `work` runs on in a spawned task that keeps both (see [`Inline`]). A panic in `work`
    /// continues in the caller, after the permits went back; it is never an error. `started`
    /// is the op's start (its one clock read before the end's), for its duration metric.
    ///
    /// The work progresses only while the caller polls it: a caller that parks this future
    /// unpolled keeps its permits without progress, as it would keep any lock it holds.
    async fn run<T, F, Fut>(
        &self,
        (op, access): (OpKind, Access),
        started: Instant,
        work: F,
    ) -> ColdResult<T>
    where
        F: FnOnce(Arc<Inner<B>>) -> Fut + Send + 'static,
        Fut: Future<Output = ColdResult<T>> + Send + 'static,
        T: Send + 'static,
    {
        let inner = &self.inner;
        let gated = async {
            // Taken before any permit, so wait_shutdown cannot return while we queue (hazard H4),
            // and held by the work until it ends, wherever it runs.
            let tracked = inner.tracker.token();
            let permits = match access {
                Access::Read => inner.acquire_read().await?,
                Access::Write => inner.acquire_write().await?,
            };
            // After the permits: nothing starts once shutdown began (hazard H4). A wait for
            // permits checked it before it blocked.
            inner.ensure_open()?;
            let inner = Arc::clone(inner);
            let work = async move {
                // Dropped in reverse order: the permits go back before the tracker token, so
                // no permit is still taken once wait_shutdown returns.
                let _tracked = tracked;
                let _in_flight = inner.metrics.in_flight(permits.work());
                let _permits = permits;
                work(inner).await
            };
            Inline::new(work).await
        };
        let span = tracing::debug_span!("cold_op", op = op.name());
        // A span no subscriber wants would still be entered and left around every poll.
        let result = if span.is_disabled() {
            gated.await
        } else {
            gated.instrument(span).await
        };
        inner.metrics.op(op, started, &result);
        result
    }

    async fn read<T, F, Fut>(&self, op: OpKind, work: F) -> ColdResult<T>
    where
        F: FnOnce(Arc<Inner<B>>) -> Fut + Send + 'static,
        Fut: Future<Output = ColdResult<T>> + Send + 'static,
        T: Send + 'static,
    {
        self.run((op, Access::Read), rt::now(), work).await
    }

    async fn write<T, F, Fut>(&self, op: OpKind, work: F) -> ColdResult<T>
    where
        F: FnOnce(Arc<Inner<B>>) -> Fut + Send + 'static,
        Fut: Future<Output = ColdResult<T>> + Send + 'static,
        T: Send + 'static,
    {
        self.run((op, Access::Write), rt::now(), work).await
    }

    /// The cache fast path: the only place a lookup is answered without a permit. A hit is
    /// served only while the handle is open; a miss goes on to the permit path (`run`), which
    /// checks that itself.
    fn fast_path<T>(
        &self,
        op: OpKind,
        started: Instant,
        lookup: impl FnOnce(&Cache) -> Option<T>,
    ) -> ColdResult<Option<T>> {
        let Some(hit) = lookup(&self.inner.cache) else {
            return Ok(None);
        };
        self.inner.ensure_open()?;
        // Monitors watch this event: no hit may overlap a committing write.
        tracing::trace!(target: crate::cache::TRACE_TARGET, op = op.name(), "cache hit");
        self.inner
            .metrics
            .op(op, started, &Ok::<(), ColdStorageError>(()));
        Ok(Some(hit))
    }

    // ---- reads ----

    /// A header by number or hash.
    pub async fn get_header(&self, spec: HeaderSpecifier) -> ColdResult<Option<SealedHeader>> {
        let (op, started) = (OpKind::GetHeader, rt::now());
        if let HeaderSpecifier::Number(number) = spec
            && let Some(header) = self.fast_path(op, started, |c| c.header(number))?
        {
            return Ok(Some(header));
        }
        self.run((op, Access::Read), started, move |inner| async move {
            let epoch = inner.cache.epoch();
            let header = inner.backend.get_header(spec).await?;
            if let Some(header) = &header {
                inner.cache.fill_header(epoch, header);
            }
            Ok(header)
        })
        .await
    }

    /// A header by number.
    pub fn get_header_by_number(
        &self,
        number: u64,
    ) -> impl Future<Output = ColdResult<Option<SealedHeader>>> + '_ {
        self.get_header(HeaderSpecifier::Number(number))
    }

    /// A header by hash.
    pub fn get_header_by_hash(
        &self,
        hash: B256,
    ) -> impl Future<Output = ColdResult<Option<SealedHeader>>> + '_ {
        self.get_header(HeaderSpecifier::Hash(hash))
    }

    /// Several headers from one backend snapshot, one answer per specifier.
    pub async fn get_headers(
        &self,
        specs: Vec<HeaderSpecifier>,
    ) -> ColdResult<Vec<Option<SealedHeader>>> {
        self.read(OpKind::GetHeaders, move |inner| async move {
            inner.backend.get_headers(specs).await
        })
        .await
    }

    /// A transaction with its position.
    pub async fn get_transaction(
        &self,
        spec: TransactionSpecifier,
    ) -> ColdResult<Option<Confirmed<Transaction>>> {
        let (op, started) = (OpKind::GetTransaction, rt::now());
        if let TransactionSpecifier::BlockAndIndex { block, index } = spec
            && let Some(tx) = self.fast_path(op, started, |c| c.transaction(block, index))?
        {
            return Ok(Some(tx));
        }
        self.run((op, Access::Read), started, move |inner| async move {
            let epoch = inner.cache.epoch();
            let tx = inner.backend.get_transaction(spec).await?;
            if let Some(tx) = &tx {
                inner.cache.fill_transaction(epoch, tx);
            }
            Ok(tx)
        })
        .await
    }

    /// A transaction by hash.
    pub fn get_tx_by_hash(
        &self,
        hash: B256,
    ) -> impl Future<Output = ColdResult<Option<Confirmed<Transaction>>>> + '_ {
        self.get_transaction(TransactionSpecifier::Hash(hash))
    }

    /// A transaction by block number and index.
    pub fn get_tx_by_block_and_index(
        &self,
        block: u64,
        index: u64,
    ) -> impl Future<Output = ColdResult<Option<Confirmed<Transaction>>>> + '_ {
        self.get_transaction(TransactionSpecifier::BlockAndIndex { block, index })
    }

    /// A transaction by block hash and index.
    pub fn get_tx_by_block_hash_and_index(
        &self,
        block_hash: B256,
        index: u64,
    ) -> impl Future<Output = ColdResult<Option<Confirmed<Transaction>>>> + '_ {
        self.get_transaction(TransactionSpecifier::BlockHashAndIndex { block_hash, index })
    }

    /// Every transaction of a block (empty for an unknown block).
    pub async fn get_transactions_in_block(&self, block: u64) -> ColdResult<Vec<Transaction>> {
        self.read(OpKind::GetTransactionsInBlock, move |inner| async move {
            inner.backend.get_transactions_in_block(block).await
        })
        .await
    }

    /// How many transactions a block has (0 for an unknown block).
    pub async fn get_transaction_count(&self, block: u64) -> ColdResult<u64> {
        self.read(OpKind::GetTransactionCount, move |inner| async move {
            inner.backend.get_transaction_count(block).await
        })
        .await
    }

    /// An enriched receipt.
    pub async fn get_receipt(&self, spec: ReceiptSpecifier) -> ColdResult<Option<ColdReceipt>> {
        let (op, started) = (OpKind::GetReceipt, rt::now());
        if let ReceiptSpecifier::BlockAndIndex { block, index } = spec
            && let Some(receipt) = self.fast_path(op, started, |c| c.receipt(block, index))?
        {
            return Ok(Some(receipt));
        }
        self.run((op, Access::Read), started, move |inner| async move {
            let epoch = inner.cache.epoch();
            let receipt = inner.backend.get_receipt(spec).await?;
            if let Some(receipt) = &receipt {
                inner.cache.fill_receipt(epoch, receipt);
            }
            Ok(receipt)
        })
        .await
    }

    /// A receipt by its transaction's hash.
    pub fn get_receipt_by_tx_hash(
        &self,
        hash: B256,
    ) -> impl Future<Output = ColdResult<Option<ColdReceipt>>> + '_ {
        self.get_receipt(ReceiptSpecifier::TxHash(hash))
    }

    /// A receipt by block number and index.
    pub fn get_receipt_by_block_and_index(
        &self,
        block: u64,
        index: u64,
    ) -> impl Future<Output = ColdResult<Option<ColdReceipt>>> + '_ {
        self.get_receipt(ReceiptSpecifier::BlockAndIndex { block, index })
    }

    /// Every enriched receipt of a block (empty for an unknown block).
    pub async fn get_receipts_in_block(&self, block: u64) -> ColdResult<Vec<ColdReceipt>> {
        self.read(OpKind::GetReceiptsInBlock, move |inner| async move {
            inner.backend.get_receipts_in_block(block).await
        })
        .await
    }

    /// The highest stored block.
    pub async fn get_latest_block(&self) -> ColdResult<Option<u64>> {
        self.read(OpKind::GetLatestBlock, move |inner| async move {
            inner.backend.get_latest_block().await
        })
        .await
    }

    /// Matching logs ordered by (block, transaction, log), or `TooManyLogs` when more than
    /// `max_logs` match. `from > to` is `InvalidInput`.
    pub async fn get_logs(&self, filter: Filter, max_logs: usize) -> ColdResult<Vec<RpcLog>> {
        // An explicit empty range is refused before any permit; one ending at "latest" is
        // checked by the backend against the latest it sees.
        if let Err(invalid) = filter.resolve_range(None) {
            return self.refuse(OpKind::GetLogs, invalid.into());
        }
        self.read(OpKind::GetLogs, move |inner| async move {
            inner.backend.get_logs(&filter, max_logs).await
        })
        .await
    }

    // ---- writes ----

    /// Appends one block strictly above the latest.
    pub async fn append_block(&self, block: BlockData) -> ColdResult<()> {
        if let Err(invalid) = block.validate() {
            return self.refuse(OpKind::AppendBlock, invalid.into());
        }
        self.write(OpKind::AppendBlock, move |inner| async move {
            let _writing = inner.cache.write();
            inner.backend.append_block(block).await
        })
        .await
    }

    /// Appends a non-empty, strictly ascending batch atomically.
    pub async fn append_blocks(&self, blocks: Vec<BlockData>) -> ColdResult<()> {
        if let Err(invalid) = BlockData::validate_batch(&blocks) {
            return self.refuse(OpKind::AppendBlocks, invalid.into());
        }
        self.write(OpKind::AppendBlocks, move |inner| async move {
            let _writing = inner.cache.write();
            inner.backend.append_blocks(blocks).await
        })
        .await
    }

    /// Removes every block above `block`.
    pub async fn truncate_above(&self, block: u64) -> ColdResult<()> {
        self.write(OpKind::TruncateAbove, move |inner| async move {
            let removal = inner.cache.removal(block);
            let result = inner.backend.truncate_above(block).await;
            if result.is_ok() {
                removal.succeeded();
            }
            result
        })
        .await
    }

    /// Removes every block above `block` and returns their enriched receipts (index 0 =
    /// `block + 1`).
    pub async fn drain_above(&self, block: u64) -> ColdResult<Vec<Vec<ColdReceipt>>> {
        self.write(OpKind::DrainAbove, move |inner| async move {
            let removal = inner.cache.removal(block);
            let result = inner.backend.drain_above(block).await;
            if result.is_ok() {
                removal.succeeded();
            }
            result
        })
        .await
    }

    fn refuse<T>(&self, op: OpKind, error: ColdStorageError) -> ColdResult<T> {
        debug_assert!(matches!(error, ColdStorageError::InvalidInput(_)));
        metrics::record_error(op, &error);
        Err(error)
    }

    // ---- streams ----

    /// Streams matching logs of the filter's range; the stream ends by `deadline` (capped at
    /// the configured maximum) whatever the consumer does. When the filter has no end, the
    /// latest block is resolved first, bounded by the backend's read timeout.
    pub async fn stream_logs(
        &self,
        filter: Filter,
        max_logs: usize,
        deadline: Duration,
    ) -> ColdResult<LogStream> {
        let started = rt::now();
        let op = OpKind::StreamLogs;
        let result = self
            .start_stream(filter, max_logs, deadline)
            .instrument(tracing::debug_span!("cold_op", op = op.name()))
            .await;
        self.inner.metrics.op(op, started, &result);
        result
    }

    /// The latest block and its header hash, read for stream setup outside every permit (see
    /// hazard B4): a block that vanishes between the two reads was truncated concurrently.
    async fn latest_with_hash(&self) -> ColdResult<(Option<u64>, Option<B256>)> {
        let backend = &self.inner.backend;
        let Some(latest) = backend.get_latest_block().await? else {
            return Ok((None, None));
        };
        match backend.get_header(HeaderSpecifier::Number(latest)).await? {
            Some(header) => Ok((Some(latest), Some(header.hash()))),
            None => Err(ColdStorageError::ReorgDetected),
        }
    }

    async fn start_stream(
        &self,
        filter: Filter,
        max_logs: usize,
        deadline: Duration,
    ) -> ColdResult<LogStream> {
        let inner = &self.inner;
        inner.ensure_open()?;
        filter.resolve_range(None)?;
        // Taken before the setup read, so wait_shutdown also waits for setups (hazard H4).
        let queued = inner.tracker.token();
        let Some((from, to, anchor)) = self.stream_range(&filter).await? else {
            return Ok(LogStream::empty());
        };
        // Planted bug (hazard B4): a read permit held while waiting for a stream permit.
        let held_read = if bugs::active(Bug::StreamSetupHoldsReadPermit) {
            Some(inner.acquire_read().await?)
        } else {
            None
        };
        let permit = inner.acquire_stream().await?;
        drop(held_read);
        inner.ensure_open()?;
        let deadline = rt::deadline_after(deadline.min(inner.config.max_stream_deadline));
        let (sender, receiver) = mpsc::channel(inner.config.stream_channel_capacity);
        // Our own slot for the deadline error, in case the producer overruns it.
        let overrun_slot = sender
            .clone()
            .try_reserve_owned()
            .map_err(|_| ColdStorageError::TaskTerminated)?;
        let params = StreamParams {
            from,
            to,
            max_logs,
            sender,
            deadline,
            anchor,
        };
        let producer_panic = self.spawn_producer(filter, params, permit, overrun_slot, queued);
        Ok(LogStream::produced_by(receiver, producer_panic))
    }

    /// A stream's block range and anchor, `None` when the range is empty. Without an explicit
    /// end the range ends at the latest block *now*; its header hash is the anchor the producer
    /// must still find, so a truncation (or a reorg) between this setup and the production is
    /// reported instead of silently shortening the range.
    async fn stream_range(&self, filter: &Filter) -> ColdResult<Option<(u64, u64, Option<B256>)>> {
        let (latest, anchor) = match filter.to_block {
            Some(_) => (None, None),
            None => {
                let timeout = self.inner.backend.timeouts().read;
                rt::timeout(timeout, self.latest_with_hash())
                    .await
                    .map_err(|rt::Elapsed| ColdStorageError::DeadlineExceeded { timeout })??
            }
        };
        let Some((from, to)) = filter.resolve_range(latest)? else {
            return Ok(None);
        };
        debug_assert!(
            anchor.is_none() || latest == Some(to),
            "an anchor is always the latest block"
        );
        Ok(Some((from, to, anchor)))
    }

    /// Spawns the producer of a stream, holding its stream `permit` until the backend's
    /// producer returns or is cut off at the deadline plus a grace; a cut-off producer's
    /// stream ends with the deadline error in the handle's own `overrun_slot`. `queued`, the
    /// setup's tracker token, is released once the producer is tracked. Returns where the
    /// producer's panic, if it panics, is handed to the stream's consumer.
    fn spawn_producer(
        &self,
        filter: Filter,
        params: StreamParams,
        permit: OwnedSemaphorePermit,
        overrun_slot: mpsc::OwnedPermit<ColdResult<RpcLog>>,
        queued: TaskTrackerToken,
    ) -> oneshot::Receiver<rt::Panic> {
        let inner = &self.inner;
        let hard_stop = params
            .deadline
            .checked_add(STREAM_GRACE)
            .unwrap_or(params.deadline);
        let owner = Arc::clone(inner);
        let produce = async move {
            let _in_flight = owner.metrics.in_flight(Work::Stream);
            let _permit = permit;
            // Planted bug (hazard H1, docs/hazards.md): no hard stop; the producer's own sends
            // are all that bound it.
            let produced = if bugs::active(Bug::UnboundedTerminalSend) {
                owner.backend.produce_log_stream(&filter, params).await;
                Ok(())
            } else {
                rt::timeout_at(hard_stop, owner.backend.produce_log_stream(&filter, params)).await
            };
            if produced.is_err() {
                overrun_slot.send(Err(ColdStorageError::StreamDeadlineExceeded));
            }
        };
        let (panic_tx, panic_rx) = oneshot::channel();
        let task = inner.tracker.track_future(
            async move {
                // Nobody joins the producer: its panic goes to the consumer, before the
                // producer's senders drop (when `caught` does), so the consumer, seeing the
                // channel end, finds the panic instead of taking a cut stream for a whole one.
                let mut caught = rt::catch_unwind(produce);
                if let Err(panic) = (&mut caught).await {
                    let _ = panic_tx.send(panic);
                }
                drop(caught);
            }
            .in_current_span(),
        );
        drop(queued);
        drop(rt::spawn(task));
        panic_rx
    }
}

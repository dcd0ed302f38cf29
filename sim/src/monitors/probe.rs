//! The probe: a backend wrapper that observes work where it really runs.
//!
//! The handle's permits are a promise about the backend; the probe checks the promise at the
//! backend itself. It counts reads, writes and streams in flight, and reports a violation the
//! moment a count exceeds its limit (reads ≤ 64, writes ≤ 1, streams ≤ 8), a barrier-gated read
//! starts while a write is committing, or a write starts while gated reads are in flight.
//!
//! Stream setup reads (the latest block and its header) run outside the drain barrier by
//! design (they must not take a read permit, see bug B4), and so do stream producers; the
//! probe counts them apart. It tells setup reads from gated ones by task: setup runs in the
//! caller's task, which the harness marks with [`outside_handle`], while gated work runs in
//! tasks the handle spawns, which do not inherit the mark. At a worker every read arrives as a
//! plain request, so a worker-side probe ([`Probe::at_worker`]) treats the two setup read kinds
//! as ungated.
//!
//! It also counts backend drops (the backend must be dropped once the last handle is) and can
//! lose a write's acknowledgement after the write committed ("ack loss"), the way a commit whose
//! reply was lost looks to its caller.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use engine::{
    BlockData, ColdReceipt, ColdResult, ColdStorageBackend, ColdStorageError, ColdStorageRead,
    ColdStorageWrite, Confirmed, Filter, HeaderSpecifier, ReceiptSpecifier, RpcLog, SealedHeader,
    StreamParams, Timeouts, Transaction, TransactionSpecifier,
};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::monitors::{Invariant, Sink, Violation};
use crate::trace;

tokio::task_local! {
    /// Set on the harness's own tasks: a backend read made directly from one of them did not
    /// go through the handle's permits (stream setup).
    static OUTSIDE_HANDLE: ();
}

/// Runs `future` marked as a caller's task (see the module docs).
pub fn outside_handle<F: std::future::Future>(
    future: F,
) -> impl std::future::Future<Output = F::Output> {
    OUTSIDE_HANDLE.scope((), future)
}

/// How far past its deadline a stream producer may still be running.
const STREAM_OVERRUN_SLACK: std::time::Duration = std::time::Duration::from_millis(50);

/// Limits the probe enforces.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Treat `get_latest_block` and `get_header` as possible stream-setup reads (a worker
    /// cannot tell them apart from gated ones).
    pub setup_reads_by_kind: bool,
    /// Gated reads at once.
    pub reads: u64,
    /// Writes at once.
    pub writes: u64,
    /// Streams at once.
    pub streams: u64,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            setup_reads_by_kind: false,
            reads: 64,
            writes: 1,
            streams: 8,
        }
    }
}

/// Shared observations; clone-cheap.
#[derive(Debug, Clone)]
pub struct Probe {
    inner: Arc<ProbeState>,
}

#[derive(Debug)]
struct ProbeState {
    limits: Limits,
    reads: AtomicU64,
    ungated_reads: AtomicU64,
    writes: AtomicU64,
    streams: AtomicU64,
    max_reads: AtomicU64,
    writes_started: AtomicU64,
    writes_finished: AtomicU64,
    drops: AtomicU32,
    sink: Sink,
    ack_loss: Mutex<Option<(f64, ChaCha8Rng)>>,
    latency: Mutex<Option<(std::time::Duration, ChaCha8Rng)>>,
    /// Rare long stalls: probability per op and the longest stall.
    spikes: Mutex<Option<(f64, std::time::Duration)>>,
}

impl Probe {
    /// A probe enforcing `limits`, reporting to `sink`.
    pub fn new(limits: Limits, sink: Sink) -> Probe {
        Probe {
            inner: Arc::new(ProbeState {
                limits,
                reads: AtomicU64::new(0),
                ungated_reads: AtomicU64::new(0),
                writes: AtomicU64::new(0),
                streams: AtomicU64::new(0),
                max_reads: AtomicU64::new(0),
                writes_started: AtomicU64::new(0),
                writes_finished: AtomicU64::new(0),
                drops: AtomicU32::new(0),
                sink,
                ack_loss: Mutex::new(None),
                latency: Mutex::new(None),
                spikes: Mutex::new(None),
            }),
        }
    }

    /// Loses the acknowledgement of a committed write with probability `p` (drawn from `seed`).
    pub fn set_ack_loss(&self, p: f64, seed: u64) {
        *self
            .inner
            .ack_loss
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some((p, ChaCha8Rng::seed_from_u64(seed)));
    }

    /// Every backend op takes up to `max` extra (simulated) time, drawn from `seed`, while it
    /// counts as in flight: a slow backend.
    pub fn set_latency(&self, max: std::time::Duration, seed: u64) {
        *self
            .inner
            .latency
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some((max, ChaCha8Rng::seed_from_u64(seed)));
    }

    /// Also stalls an op now and then, with probability `p`, for up to `max` (as a disk that
    /// hiccups would): long enough to outlast a request's deadline.
    pub fn set_spikes(&self, p: f64, max: std::time::Duration) {
        *self
            .inner
            .spikes
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some((p, max));
    }

    async fn delay(&self) {
        let spikes = *self
            .inner
            .spikes
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let pause = {
            let mut slot = self
                .inner
                .latency
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            slot.as_mut().map(|(max, rng)| {
                let base = max.mul_f64(rng.random_range(0.0..1.0));
                match spikes {
                    Some((p, spike)) if rng.random_bool(p) => {
                        base + spike.mul_f64(rng.random_range(0.5..1.0))
                    }
                    _ => base,
                }
            })
        };
        if let Some(pause) = pause {
            engine::rt::sleep(pause).await;
        }
    }

    /// Wraps `backend`.
    pub fn wrap<B>(&self, backend: B) -> ProbeBackend<B> {
        ProbeBackend {
            inner: backend,
            probe: self.clone(),
        }
    }

    /// Reports a violation to the run's sink.
    pub fn violate(&self, violation: Violation) {
        self.inner.sink.violate(violation);
    }

    /// Backend writes that have started.
    pub fn writes_started(&self) -> u64 {
        self.inner.writes_started.load(Ordering::SeqCst)
    }

    /// Backend writes that have finished.
    pub fn writes_finished(&self) -> u64 {
        self.inner.writes_finished.load(Ordering::SeqCst)
    }

    /// Whether a write is running at the backend now.
    pub fn write_in_flight(&self) -> bool {
        self.inner.writes.load(Ordering::SeqCst) > 0
    }

    /// Gated reads running at the backend now.
    pub fn reads_in_flight(&self) -> u64 {
        self.inner.reads.load(Ordering::SeqCst)
    }

    /// Most gated reads seen at once.
    pub fn max_reads(&self) -> u64 {
        self.inner.max_reads.load(Ordering::SeqCst)
    }

    /// How many wrapped backends were dropped.
    pub fn drops(&self) -> u32 {
        self.inner.drops.load(Ordering::SeqCst)
    }

    /// A cache hit happened in the handle: it must not overlap a committing write.
    pub fn on_cache_hit(&self, what: &str) {
        if self.write_in_flight() {
            self.violate(Violation::new(
                Invariant::Drain,
                format!("cache hit ({what}) while a write is committing"),
            ));
        }
    }

    fn begin_read(&self, op: &'static str) -> Guard<'_> {
        let s = &self.inner;
        let setup_kind = matches!(op, "get_latest_block" | "get_header");
        if OUTSIDE_HANDLE.try_with(|_| ()).is_ok() || (s.limits.setup_reads_by_kind && setup_kind) {
            return self.begin_ungated();
        }
        let now = s.reads.fetch_add(1, Ordering::SeqCst) + 1;
        s.max_reads.fetch_max(now, Ordering::SeqCst);
        if now > s.limits.reads {
            self.violate(Violation::new(
                Invariant::Permits,
                format!("{now} reads at the backend (limit {})", s.limits.reads),
            ));
        }
        if s.writes.load(Ordering::SeqCst) > 0 {
            self.violate(Violation::new(
                Invariant::Drain,
                format!("backend read {op} started while a write is committing"),
            ));
        }
        Guard {
            counter: &s.reads,
            finished: None,
        }
    }

    fn begin_ungated(&self) -> Guard<'_> {
        self.inner.ungated_reads.fetch_add(1, Ordering::SeqCst);
        Guard {
            counter: &self.inner.ungated_reads,
            finished: None,
        }
    }

    fn begin_stream(&self) -> Guard<'_> {
        let s = &self.inner;
        let now = s.streams.fetch_add(1, Ordering::SeqCst) + 1;
        if now > s.limits.streams {
            self.violate(Violation::new(
                Invariant::Permits,
                format!("{now} streams at the backend (limit {})", s.limits.streams),
            ));
        }
        Guard {
            counter: &s.streams,
            finished: None,
        }
    }

    fn begin_write(&self, op: &'static str) -> Guard<'_> {
        let s = &self.inner;
        let now = s.writes.fetch_add(1, Ordering::SeqCst) + 1;
        s.writes_started.fetch_add(1, Ordering::SeqCst);
        if now > s.limits.writes {
            self.violate(Violation::new(
                Invariant::Permits,
                format!("{now} writes at the backend (limit {})", s.limits.writes),
            ));
        }
        let reads = s.reads.load(Ordering::SeqCst);
        if reads > 0 {
            self.violate(Violation::new(
                Invariant::Drain,
                format!("backend write {op} started while {reads} reads are in flight"),
            ));
        }
        Guard {
            counter: &s.writes,
            finished: Some(&s.writes_finished),
        }
    }

    /// Whether to lose this write's acknowledgement.
    fn lose_ack(&self) -> bool {
        let mut slot = self
            .inner
            .ack_loss
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        slot.as_mut().is_some_and(|(p, rng)| rng.random_bool(*p))
    }
}

struct Guard<'a> {
    counter: &'a AtomicU64,
    finished: Option<&'a AtomicU64>,
}

impl Drop for Guard<'_> {
    fn drop(&mut self) {
        self.counter.fetch_sub(1, Ordering::SeqCst);
        if let Some(finished) = self.finished {
            finished.fetch_add(1, Ordering::SeqCst);
        }
    }
}

/// A backend observed by a [`Probe`].
#[derive(Debug)]
pub struct ProbeBackend<B> {
    inner: B,
    probe: Probe,
}

impl<B> Drop for ProbeBackend<B> {
    fn drop(&mut self) {
        self.probe.inner.drops.fetch_add(1, Ordering::SeqCst);
    }
}

impl<B> ProbeBackend<B> {
    /// The wrapped backend.
    pub fn inner(&self) -> &B {
        &self.inner
    }

    /// A write's result as the caller sees it, with ack loss applied to successes.
    fn acknowledge<T>(&self, op: &'static str, result: ColdResult<T>) -> ColdResult<T> {
        if result.is_ok() && self.probe.lose_ack() {
            trace::record("probe", "fault.ack-loss", format!("op={op}"));
            return Err(ColdStorageError::backend(
                op,
                "acknowledgement lost after commit (injected)",
            ));
        }
        result
    }
}

impl<B: ColdStorageRead> ColdStorageRead for ProbeBackend<B> {
    fn timeouts(&self) -> Timeouts {
        self.inner.timeouts()
    }

    async fn get_header(&self, spec: HeaderSpecifier) -> ColdResult<Option<SealedHeader>> {
        let _g = self.probe.begin_read("get_header");
        self.probe.delay().await;
        self.inner.get_header(spec).await
    }

    async fn get_headers(
        &self,
        specs: Vec<HeaderSpecifier>,
    ) -> ColdResult<Vec<Option<SealedHeader>>> {
        let _g = self.probe.begin_read("get_headers");
        self.probe.delay().await;
        self.inner.get_headers(specs).await
    }

    async fn get_transaction(
        &self,
        spec: TransactionSpecifier,
    ) -> ColdResult<Option<Confirmed<Transaction>>> {
        let _g = self.probe.begin_read("get_transaction");
        self.probe.delay().await;
        self.inner.get_transaction(spec).await
    }

    async fn get_transactions_in_block(&self, block: u64) -> ColdResult<Vec<Transaction>> {
        let _g = self.probe.begin_read("get_transactions_in_block");
        self.probe.delay().await;
        self.inner.get_transactions_in_block(block).await
    }

    async fn get_transaction_count(&self, block: u64) -> ColdResult<u64> {
        let _g = self.probe.begin_read("get_transaction_count");
        self.probe.delay().await;
        self.inner.get_transaction_count(block).await
    }

    async fn get_receipt(&self, spec: ReceiptSpecifier) -> ColdResult<Option<ColdReceipt>> {
        let _g = self.probe.begin_read("get_receipt");
        self.probe.delay().await;
        self.inner.get_receipt(spec).await
    }

    async fn get_receipts_in_block(&self, block: u64) -> ColdResult<Vec<ColdReceipt>> {
        let _g = self.probe.begin_read("get_receipts_in_block");
        self.probe.delay().await;
        self.inner.get_receipts_in_block(block).await
    }

    async fn get_latest_block(&self) -> ColdResult<Option<u64>> {
        let _g = self.probe.begin_read("get_latest_block");
        self.probe.delay().await;
        self.inner.get_latest_block().await
    }

    async fn get_logs(&self, filter: &Filter, max_logs: usize) -> ColdResult<Vec<RpcLog>> {
        let _g = self.probe.begin_read("get_logs");
        self.probe.delay().await;
        self.inner.get_logs(filter, max_logs).await
    }

    async fn produce_log_stream(&self, filter: &Filter, params: StreamParams) {
        let _g = self.probe.begin_stream();
        let deadline = params.deadline;
        // A stall is cut at the deadline, as the contract asks of a backend's stream: the
        // check below is then about the producer, not about latency the probe made up.
        let _ = engine::rt::timeout_at(deadline, self.probe.delay()).await;
        self.inner.produce_log_stream(filter, params).await;
        // Whatever the consumer does, a producer ends by its deadline (plus the handle's grace).
        let late = engine::rt::now().saturating_duration_since(deadline);
        if late > STREAM_OVERRUN_SLACK {
            self.probe.violate(Violation::new(
                Invariant::Liveness,
                format!("a stream producer ran {late:?} past its deadline"),
            ));
        }
    }
}

impl<B: ColdStorageWrite> ColdStorageWrite for ProbeBackend<B> {
    async fn append_block(&self, block: BlockData) -> ColdResult<()> {
        let result = {
            let _g = self.probe.begin_write("append_block");
            self.probe.delay().await;
            self.inner.append_block(block).await
        };
        self.acknowledge("append_block", result)
    }

    async fn append_blocks(&self, blocks: Vec<BlockData>) -> ColdResult<()> {
        let result = {
            let _g = self.probe.begin_write("append_blocks");
            self.probe.delay().await;
            self.inner.append_blocks(blocks).await
        };
        self.acknowledge("append_blocks", result)
    }

    async fn truncate_above(&self, block: u64) -> ColdResult<()> {
        let result = {
            let _g = self.probe.begin_write("truncate_above");
            self.probe.delay().await;
            self.inner.truncate_above(block).await
        };
        self.acknowledge("truncate_above", result)
    }
}

impl<B: ColdStorageBackend> ColdStorageBackend for ProbeBackend<B> {
    async fn drain_above(&self, block: u64) -> ColdResult<Vec<Vec<ColdReceipt>>> {
        let result = {
            let _g = self.probe.begin_write("drain_above");
            self.probe.delay().await;
            self.inner.drain_above(block).await
        };
        self.acknowledge("drain_above", result)
    }
}

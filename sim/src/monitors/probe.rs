//! The probe: a backend wrapper that observes work where it really runs.
//!
//! The handle's permits are a promise about the backend; the probe checks the promise at the
//! backend itself. It counts reads, writes and streams in flight, and reports a violation the
//! moment a count exceeds its limit (reads ≤ 64, writes ≤ 1, streams ≤ 8), a barrier-gated read
//! starts while a write is committing, or a write starts while gated reads are in flight.
//!
//! Stream setup reads (the latest block and its header) run outside the drain barrier by
//! design (a read permit there is hazard B4 of docs/hazards.md), and so do producers; the
//! probe counts them apart. It tells setup reads from gated ones by task: setup runs in the
//! caller's task, which the harness marks with [`outside_handle`], while gated work runs in
//! tasks the handle spawns, which do not inherit the mark. At a worker every read arrives as a
//! plain request, so a worker-side probe ([`Probe::at_worker`]) treats the two setup read kinds
//! as ungated.
//!
//! It also counts backend drops (the backend must be dropped once the last handle is).

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};

use engine::{ColdResult, ColdStorageBackend, Layer, Layered, OpKind};

use crate::monitors::coverage::{self, Goal};
use crate::monitors::{Invariant, Sink, Violation};

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
    /// Whether the read pool was full since the last write started (a coverage goal).
    pool_full: AtomicBool,
    writes_started: AtomicU64,
    writes_finished: AtomicU64,
    /// Times the writes in flight fell to none.
    write_idles: AtomicU64,
    drops: AtomicU32,
    sink: Sink,
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
                pool_full: AtomicBool::new(false),
                writes_started: AtomicU64::new(0),
                writes_finished: AtomicU64::new(0),
                write_idles: AtomicU64::new(0),
                drops: AtomicU32::new(0),
                sink,
            }),
        }
    }

    /// Wraps `backend`.
    pub fn wrap<B>(&self, backend: B) -> ProbeBackend<B> {
        Layered(ProbeLayer {
            inner: backend,
            probe: self.clone(),
        })
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

    /// How many times the writes running at the backend fell to none: when it moved, there
    /// was a moment since without a write.
    pub fn write_idles(&self) -> u64 {
        self.inner.write_idles.load(Ordering::SeqCst)
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

    fn begin_read(&self, op: OpKind) -> Guard<'_> {
        let s = &self.inner;
        let setup_kind = matches!(op, OpKind::GetLatestBlock | OpKind::GetHeader);
        if OUTSIDE_HANDLE.try_with(|_| ()).is_ok() || (s.limits.setup_reads_by_kind && setup_kind) {
            return self.begin_ungated();
        }
        let now = s.reads.fetch_add(1, Ordering::SeqCst) + 1;
        s.max_reads.fetch_max(now, Ordering::SeqCst);
        if now == s.limits.reads {
            coverage::reach(Goal::ReadsAtCap);
            s.pool_full.store(true, Ordering::SeqCst);
        }
        if now > s.limits.reads {
            self.violate(Violation::new(
                Invariant::Permits,
                format!("{now} reads at the backend (limit {})", s.limits.reads),
            ));
        }
        if s.writes.load(Ordering::SeqCst) > 0 {
            self.violate(Violation::new(
                Invariant::Drain,
                format!(
                    "backend read {} started while a write is committing",
                    op.name()
                ),
            ));
        }
        Guard {
            counter: &s.reads,
            finished: None,
            idles: None,
        }
    }

    fn begin_ungated(&self) -> Guard<'_> {
        self.inner.ungated_reads.fetch_add(1, Ordering::SeqCst);
        Guard {
            counter: &self.inner.ungated_reads,
            finished: None,
            idles: None,
        }
    }

    fn begin_stream(&self) -> Guard<'_> {
        let s = &self.inner;
        let now = s.streams.fetch_add(1, Ordering::SeqCst) + 1;
        if now == s.limits.streams {
            coverage::reach(Goal::StreamsAtCap);
        }
        if now > s.limits.streams {
            self.violate(Violation::new(
                Invariant::Permits,
                format!("{now} streams at the backend (limit {})", s.limits.streams),
            ));
        }
        Guard {
            counter: &s.streams,
            finished: None,
            idles: None,
        }
    }

    fn begin_write(&self, op: OpKind) -> Guard<'_> {
        let s = &self.inner;
        if s.pool_full.swap(false, Ordering::SeqCst) {
            coverage::reach(Goal::WriteDrainedFullPool);
        }
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
                format!(
                    "backend write {} started while {reads} reads are in flight",
                    op.name()
                ),
            ));
        }
        Guard {
            counter: &s.writes,
            finished: Some(&s.writes_finished),
            idles: Some(&s.write_idles),
        }
    }
}

struct Guard<'a> {
    counter: &'a AtomicU64,
    finished: Option<&'a AtomicU64>,
    /// Counts the times `counter` falls to zero.
    idles: Option<&'a AtomicU64>,
}

impl Drop for Guard<'_> {
    fn drop(&mut self) {
        let left = self.counter.fetch_sub(1, Ordering::SeqCst) - 1;
        if let Some(finished) = self.finished {
            finished.fetch_add(1, Ordering::SeqCst);
        }
        if let (Some(idles), 0) = (self.idles, left) {
            idles.fetch_add(1, Ordering::SeqCst);
        }
    }
}

/// A backend observed by a [`Probe`].
pub type ProbeBackend<B> = Layered<ProbeLayer<B>>;

/// The layer that observes a backend for a [`Probe`].
#[derive(Debug)]
pub struct ProbeLayer<B> {
    inner: B,
    probe: Probe,
}

impl<B> Drop for ProbeLayer<B> {
    fn drop(&mut self) {
        self.probe.inner.drops.fetch_add(1, Ordering::SeqCst);
    }
}

impl<B: ColdStorageBackend> Layer for ProbeLayer<B> {
    type Inner = B;

    fn inner(&self) -> &B {
        &self.inner
    }

    async fn around<T: Send>(
        &self,
        kind: OpKind,
        work: impl Future<Output = ColdResult<T>> + Send,
    ) -> ColdResult<T> {
        crate::faults::schedule::point().await;
        let _guard = if kind.is_write() {
            self.probe.begin_write(kind)
        } else {
            self.probe.begin_read(kind)
        };
        let result = work.await;
        if let Err(engine::ColdStorageError::DeadlineExceeded { .. }) = result {
            coverage::reach(Goal::DeadlineExpiredMidWork);
        }
        result
    }

    async fn around_stream(
        &self,
        deadline: engine::rt::Instant,
        work: impl Future<Output = ()> + Send,
    ) {
        let _guard = self.probe.begin_stream();
        work.await;
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

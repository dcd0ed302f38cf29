//! The probe: a backend wrapper that observes work where it really runs.
//!
//! The handle's permits are a promise about the backend; the probe checks the promise at the
//! backend itself. It counts reads, writes and streams in flight, and reports a violation the
//! moment a count exceeds its limit (reads ≤ 64, writes ≤ 1, streams ≤ 8), a barrier-gated read
//! starts while a write is committing, or a write starts while gated reads are in flight.
//!
//! Stream setup reads (the latest block and its header) run outside the drain barrier by
//! design (a read permit there is hazard B4 of docs/hazards.md), and so do producers; the
//! probe counts them apart. It tells setup reads from gated ones by a mark the harness puts
//! on the stream setup future alone ([`stream_setup`]): a gated read's work runs in its
//! caller's task too (or, once the caller dropped it, in a task the handle spawns), outside
//! that mark, and so does the producer, which the handle spawns. At a worker every read arrives as a
//! plain request, so a worker-side probe ([`Probe::at_worker`]) treats the two setup read kinds
//! as ungated.
//!
//! At a worker every read, setup kinds included, passes the worker's own drain barrier, so
//! there ([`Limits::worker_barrier`]) no read of any kind may overlap a write (`worker-drain`).
//!
//! Streams: every producer running at the backend must be covered by a permit not yet
//! released ([`Probe::cover_streams`]: the handle's stream permits, or the worker's work
//! permits), checked when a producer starts and when it ends (`stream-permit`); and every
//! producer must stop by its own deadline, not only when something cuts it later (the handle's
//! hard stop, a worker's stop): one still running when it is dropped past its deadline, or
//! ending well past it, is a `producer-deadline` violation.
//!
//! It also counts backend drops (the backend must be dropped once the last handle is).

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use engine::stream::PermitGauge;
use engine::{ColdResult, ColdStorageBackend, Layer, Layered, OpKind};

use crate::monitors::coverage::{self, Goal};
use crate::monitors::{Invariant, Sink, Violation};
use crate::trace;

tokio::task_local! {
    /// Set while the harness polls a stream's setup: a backend read made then did not go
    /// through the handle's read permits.
    static STREAM_SETUP: ();
}

/// Runs `future`, a stream's setup (`ColdStorage::stream_logs`), marked as such (see the
/// module docs).
pub fn stream_setup<F: std::future::Future>(
    future: F,
) -> impl std::future::Future<Output = F::Output> {
    STREAM_SETUP.scope((), future)
}

/// How far past its deadline a stream producer may still be running.
const STREAM_OVERRUN_SLACK: std::time::Duration = std::time::Duration::from_millis(50);

/// Limits the probe enforces.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Treat `get_latest_block` and `get_header` as possible stream-setup reads (a worker
    /// cannot tell them apart from gated ones).
    pub setup_reads_by_kind: bool,
    /// Every read here passed an IO worker's own drain barrier: none may overlap a write.
    pub worker_barrier: bool,
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
            worker_barrier: false,
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
    /// The permits that must cover every stream producer here.
    cover: Mutex<Option<PermitGauge>>,
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
                cover: Mutex::new(None),
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

    /// From now on every stream producer at this backend must be covered by one of
    /// `permits` (replacing the permits of an earlier handle or worker).
    pub fn cover_streams(&self, permits: PermitGauge) {
        *crate::lock(&self.inner.cover) = Some(permits);
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

    /// A cache hit happened in the handle (a coverage goal per map): it must not overlap a
    /// committing write.
    pub fn on_cache_hit(&self, what: &str) {
        match what {
            "get_header" => coverage::reach(Goal::HeaderCacheHit),
            "get_transaction" => coverage::reach(Goal::TransactionCacheHit),
            "get_receipt" => coverage::reach(Goal::ReceiptCacheHit),
            _ => {}
        }
        if self.write_in_flight() {
            self.violate(Violation::new(
                Invariant::Drain,
                format!("cache hit ({what}) while a write is committing"),
            ));
        }
    }

    /// The backend this probe watches, as the timeline names it.
    fn site(&self) -> &'static str {
        if self.inner.limits.worker_barrier {
            "worker-backend"
        } else {
            "backend"
        }
    }

    /// The work running here now, for the timeline's counter track (kept only with `--trace`).
    fn record_counts(&self) {
        let s = &self.inner;
        let count = |c: &AtomicU64| c.load(Ordering::SeqCst);
        trace::detail_count(self.site(), "work running", || {
            format!(
                "reads={} ungated_reads={} writes={} streams={}",
                count(&s.reads),
                count(&s.ungated_reads),
                count(&s.writes),
                count(&s.streams)
            )
        });
    }

    fn begin_read(&self, op: OpKind) -> Guard<'_> {
        let s = &self.inner;
        if s.limits.worker_barrier && s.writes.load(Ordering::SeqCst) > 0 {
            self.violate(Violation::new(
                Invariant::WorkerDrain,
                format!(
                    "read {} started at the worker while a write is committing there",
                    op.name()
                ),
            ));
        }
        let setup_kind = matches!(op, OpKind::GetLatestBlock | OpKind::GetHeader);
        if STREAM_SETUP.try_with(|_| ()).is_ok() || (s.limits.setup_reads_by_kind && setup_kind) {
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
        if !s.limits.worker_barrier && s.writes.load(Ordering::SeqCst) > 0 {
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
        self.check_stream_cover("started");
        Guard {
            counter: &s.streams,
            finished: None,
            idles: None,
        }
    }

    /// Every producer running here is covered by a permit still held (see the module docs).
    fn check_stream_cover(&self, when: &str) {
        let Some(held) = crate::lock(&self.inner.cover)
            .as_ref()
            .map(PermitGauge::held)
        else {
            return;
        };
        let running = self.inner.streams.load(Ordering::SeqCst);
        if running > held as u64 {
            self.violate(Violation::new(
                Invariant::StreamPermit,
                format!(
                    "a stream producer {when} with {running} producers running and {held} permits held: a permit was released before its producer ended"
                ),
            ));
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
        if s.limits.worker_barrier {
            let all = reads + s.ungated_reads.load(Ordering::SeqCst);
            if all > 0 {
                self.violate(Violation::new(
                    Invariant::WorkerDrain,
                    format!(
                        "write {} started at the worker while {all} reads run there",
                        op.name()
                    ),
                ));
            }
        } else if reads > 0 {
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

/// A stream producer at the backend, until it ends or is dropped.
struct Producing<'a> {
    probe: &'a Probe,
    deadline: engine::rt::Instant,
    /// It returned by itself (rather than being dropped midway).
    finished: bool,
    /// Counts it among the streams until this drops (after `drop` below ran).
    _guard: Guard<'a>,
}

impl Drop for Producing<'_> {
    fn drop(&mut self) {
        self.probe.check_stream_cover("ended");
        let now = engine::rt::now();
        if !self.finished && now > self.deadline {
            let late = now - self.deadline;
            self.probe.violate(Violation::new(
                Invariant::ProducerDeadline,
                format!(
                    "a stream producer was still running {late:?} past its deadline when it was cut off"
                ),
            ));
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
        // Counted when the backend is called, before the seeded yields: a write that passed
        // the worker's fence is at the backend from then on, for whoever settles it.
        let guard = if kind.is_write() {
            self.probe.begin_write(kind)
        } else {
            self.probe.begin_read(kind)
        };
        let started = trace::detail_start();
        self.probe.record_counts();
        crate::faults::schedule::point().await;
        let result = work.await;
        drop(guard);
        let outcome = if result.is_ok() { "ok" } else { "err" };
        trace::detail_span(self.probe.site(), kind.name(), outcome, started);
        self.probe.record_counts();
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
        let mut producing = Producing {
            probe: &self.probe,
            deadline,
            finished: false,
            _guard: self.probe.begin_stream(),
        };
        work.await;
        producing.finished = true;
        // Whatever the consumer does, a producer ends by its deadline (plus a little slack for
        // a step under way then).
        let late = engine::rt::now().saturating_duration_since(deadline);
        if late > STREAM_OVERRUN_SLACK {
            self.probe.violate(Violation::new(
                Invariant::ProducerDeadline,
                format!("a stream producer ran {late:?} past its deadline"),
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use engine::backend::{ColdStorageRead, StreamParams};
    use engine::{ColdStorage, Filter, MemBackend};
    use tokio_util::sync::CancellationToken;

    use super::*;

    /// Runs `check` on a paused clock with a probe enforcing `limits`; the invariant of the
    /// first violation it reports, if any.
    fn first_violation<F: Future<Output = ()>>(
        limits: Limits,
        check: impl FnOnce(Probe) -> F,
    ) -> Option<Invariant> {
        let sink = Sink::default();
        let probe = Probe::new(limits, sink.clone());
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .expect("a runtime");
        runtime.block_on(check(probe));
        sink.first().map(|v| v.invariant)
    }

    fn at_worker() -> Limits {
        Limits {
            setup_reads_by_kind: true,
            worker_barrier: true,
            ..Limits::default()
        }
    }

    #[test]
    fn at_the_worker_no_read_of_any_kind_overlaps_a_write() {
        // A stream-setup kind of read is ungated at the handle, yet drained at the worker.
        let setup_read_during_a_write = |limits| {
            first_violation(limits, |probe| async move {
                let _write = probe.begin_write(OpKind::AppendBlock);
                let _read = probe.begin_read(OpKind::GetLatestBlock);
            })
        };
        assert_eq!(
            setup_read_during_a_write(at_worker()),
            Some(Invariant::WorkerDrain)
        );
        let setup_kinds_ungated = Limits {
            setup_reads_by_kind: true,
            ..Limits::default()
        };
        assert_eq!(setup_read_during_a_write(setup_kinds_ungated), None);
        let write_during_a_setup_read = first_violation(at_worker(), |probe| async move {
            let _read = probe.begin_read(OpKind::GetHeader);
            let _write = probe.begin_write(OpKind::TruncateAbove);
        });
        assert_eq!(write_during_a_setup_read, Some(Invariant::WorkerDrain));
    }

    #[test]
    fn a_stream_producer_without_a_held_permit_breaks_the_permit_lifetime() {
        let seen = first_violation(Limits::default(), |probe| async move {
            // A handle whose stream permits are all free: none covers the producer.
            let handle = ColdStorage::new(
                MemBackend::new(),
                CancellationToken::new(),
                engine::Config::default(),
            );
            probe.cover_streams(handle.stream_permits());
            let _producer = probe.begin_stream();
        });
        assert_eq!(seen, Some(Invariant::StreamPermit));
    }

    /// A layer whose stream producer never ends by itself.
    #[derive(Debug)]
    struct Stuck(MemBackend);

    impl Layer for Stuck {
        type Inner = MemBackend;
        fn inner(&self) -> &MemBackend {
            &self.0
        }
        async fn around_stream(
            &self,
            _deadline: engine::rt::Instant,
            work: impl Future<Output = ()> + Send,
        ) {
            work.await;
            std::future::pending::<()>().await;
        }
    }

    #[test]
    fn a_producer_still_running_when_cut_off_past_its_deadline_breaks_its_deadline() {
        let cut_after = |extra: Duration| {
            first_violation(Limits::default(), |probe| async move {
                let backend = probe.wrap(Layered(Stuck(MemBackend::new())));
                let (sender, _receiver) = tokio::sync::mpsc::channel(4);
                let deadline = engine::rt::deadline_after(Duration::from_millis(100));
                let params = StreamParams {
                    from: 0,
                    to: 0,
                    max_logs: 10,
                    sender,
                    deadline,
                    anchor: None,
                };
                let filter = Filter::range(0, 0);
                let produce = backend.produce_log_stream(&filter, params);
                let _ = engine::rt::timeout_at(deadline + extra, produce).await;
            })
        };
        assert_eq!(
            cut_after(Duration::from_millis(10)),
            Some(Invariant::ProducerDeadline)
        );
        assert_eq!(cut_after(Duration::ZERO), None);
    }
}

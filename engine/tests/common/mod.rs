//! Test backends: a gated wrapper around [`MemBackend`] whose gates the test controls and
//! whose counters observe what runs inside the backend, and a deliberately broken backend.
#![allow(dead_code)] // each test file uses a different part of this module

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use engine::backend::{ColdStorageWrite, Timeouts};
use engine::{
    BlockData, ColdResult, ColdStorage, ColdStorageError, Config, Filter, Layer, Layered,
    MemBackend, OpKind,
};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

/// Permits large enough to mean "open".
const OPEN: usize = 1 << 40;

/// A gate: closed gates park callers until the test releases them one by one or opens it.
#[derive(Debug)]
pub struct Gate {
    permits: Semaphore,
    enabled: AtomicBool,
    waiting: AtomicUsize,
}

impl Gate {
    fn new(enabled: bool) -> Gate {
        Gate {
            permits: Semaphore::new(0),
            enabled: AtomicBool::new(enabled),
            waiting: AtomicUsize::new(0),
        }
    }

    async fn pass(&self) {
        if !self.enabled.load(Ordering::SeqCst) {
            return;
        }
        let _waiting = Counted::enter(&self.waiting);
        self.permits
            .acquire()
            .await
            .expect("gates never close")
            .forget();
    }

    /// Closes the gate for callers that arrive from now on, also after [`Gate::open`]: passes
    /// released and not yet used are withdrawn (callers already let through keep theirs).
    pub fn close(&self) {
        self.enabled.store(true, Ordering::SeqCst);
        self.permits
            .forget_permits(self.permits.available_permits());
    }

    /// Lets `n` parked or future callers through.
    pub fn release(&self, n: usize) {
        self.permits.add_permits(n);
    }

    /// Lets everybody through, now and later.
    pub fn open(&self) {
        self.enabled.store(false, Ordering::SeqCst);
        self.permits.add_permits(OPEN);
    }

    /// Callers parked at the gate.
    pub fn waiting(&self) -> usize {
        self.waiting.load(Ordering::SeqCst)
    }
}

/// Counts a caller in `counter` until dropped, so a caller whose future is dropped midway
/// (its op cancelled) is counted out too.
struct Counted<'a>(&'a AtomicUsize);

impl<'a> Counted<'a> {
    /// Counts one more until the guard drops.
    fn enter(counter: &'a AtomicUsize) -> Counted<'a> {
        counter.fetch_add(1, Ordering::SeqCst);
        Counted(counter)
    }
}

impl Drop for Counted<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// What the gated backend observed.
#[derive(Debug, Default)]
pub struct Probe {
    /// Gated reads inside the backend, parked at the gate included.
    pub reads_inside: AtomicUsize,
    pub reads_max: AtomicUsize,
    pub writes_active: AtomicUsize,
    /// A gated read and a write were inside the backend at once (drain barrier broken).
    pub overlaps: AtomicUsize,
    pub writes_committed: AtomicUsize,
    pub drops: AtomicUsize,
}

/// A [`MemBackend`] with gates on reads, on writes after they commit, and on stream producers.
pub type Gated = Layered<GateLayer>;

/// The layer of a [`Gated`] backend.
#[derive(Debug)]
pub struct GateLayer {
    pub inner: MemBackend,
    pub reads: Arc<Gate>,
    pub after_commit: Arc<Gate>,
    pub streams: Arc<Gate>,
    pub probe: Arc<Probe>,
    /// When set, writes report this error after committing.
    pub fail_after_commit: Arc<Mutex<Option<ColdStorageError>>>,
    /// When set, the next backend call (read, write or stream producer) panics.
    pub panic_next: Arc<AtomicBool>,
}

/// The message of the panic [`Controls::arm_panic`] plants.
pub const PLANTED_PANIC: &str = "planted backend panic";

/// The test's side of a [`Gated`] backend.
#[derive(Debug, Clone)]
pub struct Controls {
    pub inner: MemBackend,
    pub reads: Arc<Gate>,
    pub after_commit: Arc<Gate>,
    pub streams: Arc<Gate>,
    pub probe: Arc<Probe>,
    pub fail_after_commit: Arc<Mutex<Option<ColdStorageError>>>,
    pub panic_next: Arc<AtomicBool>,
}

impl Controls {
    /// Makes the next backend call panic with [`PLANTED_PANIC`].
    pub fn arm_panic(&self) {
        self.panic_next.store(true, Ordering::SeqCst);
    }
}

/// A gated backend over `inner`, all gates open, and the test's side of it.
pub fn gated(inner: MemBackend) -> (Gated, Controls) {
    GateLayer::new(inner)
}

impl GateLayer {
    /// All gates open.
    fn new(inner: MemBackend) -> (Gated, Controls) {
        let gated = GateLayer {
            inner,
            reads: Arc::new(Gate::new(false)),
            after_commit: Arc::new(Gate::new(false)),
            streams: Arc::new(Gate::new(false)),
            probe: Arc::new(Probe::default()),
            fail_after_commit: Arc::new(Mutex::new(None)),
            panic_next: Arc::new(AtomicBool::new(false)),
        };
        let controls = Controls {
            inner: gated.inner.clone(),
            reads: gated.reads.clone(),
            after_commit: gated.after_commit.clone(),
            streams: gated.streams.clone(),
            probe: gated.probe.clone(),
            fail_after_commit: gated.fail_after_commit.clone(),
            panic_next: gated.panic_next.clone(),
        };
        (Layered(gated), controls)
    }

    /// Panics if the test armed a panic.
    fn maybe_panic(&self) {
        if self.panic_next.swap(false, Ordering::SeqCst) {
            panic!("{PLANTED_PANIC}");
        }
    }

    async fn read<T>(&self, f: impl std::future::Future<Output = T>) -> T {
        self.maybe_panic();
        // Counted from arrival, so reads parked at the gate are inside the backend too.
        let _inside = Counted::enter(&self.probe.reads_inside);
        let inside = self.probe.reads_inside.load(Ordering::SeqCst);
        self.probe.reads_max.fetch_max(inside, Ordering::SeqCst);
        if self.probe.writes_active.load(Ordering::SeqCst) > 0 {
            self.probe.overlaps.fetch_add(1, Ordering::SeqCst);
        }
        self.reads.pass().await;
        f.await
    }

    async fn write<T>(&self, f: impl std::future::Future<Output = ColdResult<T>>) -> ColdResult<T> {
        self.maybe_panic();
        let active = Counted::enter(&self.probe.writes_active);
        if self.probe.reads_inside.load(Ordering::SeqCst) > 0 {
            self.probe.overlaps.fetch_add(1, Ordering::SeqCst);
        }
        let out = f.await;
        if out.is_ok() {
            self.probe.writes_committed.fetch_add(1, Ordering::SeqCst);
        }
        self.after_commit.pass().await;
        drop(active);
        let failure = self.fail_after_commit.lock().unwrap().clone();
        if let Some(error) = failure {
            return Err(error);
        }
        out
    }
}

impl Drop for GateLayer {
    fn drop(&mut self) {
        self.probe.drops.fetch_add(1, Ordering::SeqCst);
    }
}

impl Layer for GateLayer {
    type Inner = MemBackend;

    fn inner(&self) -> &MemBackend {
        &self.inner
    }

    async fn around<T: Send>(
        &self,
        kind: OpKind,
        work: impl std::future::Future<Output = ColdResult<T>> + Send,
    ) -> ColdResult<T> {
        if kind.is_write() {
            self.write(work).await
        } else {
            self.read(work).await
        }
    }

    async fn around_stream(
        &self,
        _deadline: engine::rt::Instant,
        work: impl std::future::Future<Output = ()> + Send,
    ) {
        self.streams.pass().await;
        self.maybe_panic();
        work.await
    }
}

/// A backend that silently loses appends of even block numbers: conformance must catch it.
pub type LossyBackend = Layered<Lossy>;

/// The layer of a [`LossyBackend`].
#[derive(Debug)]
pub struct Lossy {
    inner: MemBackend,
}

/// A lossy backend over `inner`.
pub fn lossy(inner: MemBackend) -> LossyBackend {
    Layered(Lossy { inner })
}

impl Layer for Lossy {
    type Inner = MemBackend;

    fn inner(&self) -> &MemBackend {
        &self.inner
    }

    async fn append_block(&self, block: BlockData) -> ColdResult<()> {
        if block.number().is_multiple_of(2) {
            return Ok(());
        }
        self.inner.append_block(block).await
    }
}

/// A handle over a gated Mem backend with default config.
pub fn gated_handle() -> (ColdStorage<Gated>, Controls, CancellationToken) {
    gated_handle_with(Config::default(), Timeouts::default())
}

/// A handle over a gated Mem backend.
pub fn gated_handle_with(
    config: Config,
    timeouts: Timeouts,
) -> (ColdStorage<Gated>, Controls, CancellationToken) {
    let (gated, controls) = gated(MemBackend::builder().timeouts(timeouts).build());
    let cancel = CancellationToken::new();
    (
        ColdStorage::new(gated, cancel.clone(), config),
        controls,
        cancel,
    )
}

/// Yields to the (paused-clock) runtime until `cond` holds; panics naming `what` after a
/// bounded number of steps, so a broken property fails instead of hanging.
pub async fn until(what: &str, mut cond: impl FnMut() -> bool) {
    for _ in 0..10_000 {
        if cond() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    panic!("timed out waiting until {what}");
}

/// Lets every runnable task run for a while of paused time.
pub async fn settle() {
    for _ in 0..50 {
        tokio::task::yield_now().await;
    }
    tokio::time::sleep(Duration::from_millis(10)).await;
}

/// Checks that every permit of a default-config handle is back and the drain barrier holds:
/// 64 reads get into the backend at once, a write then commits with none of them inside, and
/// 8 stream producers get into the backend at once. `next_block` is the block the write
/// appends (one above the latest).
pub async fn assert_every_permit_back<B: engine::ColdStorageBackend>(
    handle: &ColdStorage<B>,
    controls: &Controls,
    next_block: u64,
) {
    controls.reads.close();
    let reads: Vec<_> = (0..64)
        .map(|_| {
            let h = handle.clone();
            tokio::spawn(async move { h.get_latest_block().await })
        })
        .collect();
    until("64 reads are inside the backend", || {
        controls.reads.waiting() == 64
    })
    .await;
    let h = handle.clone();
    let number = next_block;
    let write = tokio::spawn(async move {
        h.append_block(model::conformance::sample_block(number, 1, 1))
            .await
    });
    settle().await;
    assert_eq!(
        controls.probe.writes_active.load(Ordering::SeqCst),
        0,
        "the write must wait for the 64 reads to drain"
    );
    controls.reads.open();
    for read in reads {
        read.await.expect("no panic").expect("the read succeeds");
    }
    tokio::time::timeout(Duration::from_secs(60), write)
        .await
        .expect("the write gets its permits")
        .expect("no panic")
        .expect("the write succeeds");
    assert_eq!(controls.probe.overlaps.load(Ordering::SeqCst), 0);
    controls.streams.close();
    let streams: Vec<_> = (0..8)
        .map(|_| {
            let h = handle.clone();
            tokio::spawn(async move {
                h.stream_logs(Filter::range(0, number), 1_000, Duration::from_secs(5))
                    .await
                    .expect("the stream starts")
                    .collect_all()
                    .await
            })
        })
        .collect();
    until("8 stream producers are inside the backend", || {
        controls.streams.waiting() == 8
    })
    .await;
    controls.streams.open();
    for stream in streams {
        let (_, error) = tokio::time::timeout(Duration::from_secs(60), stream)
            .await
            .expect("the stream ends")
            .expect("no panic");
        assert_eq!(error, None);
    }
}

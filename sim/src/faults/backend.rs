//! Faults at a backend: latency, rare stalls long enough to outlast a deadline, and
//! acknowledgements lost after a commit (the way a commit whose reply was lost looks to its
//! caller).

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use engine::{ColdResult, ColdStorageBackend, ColdStorageError, Layer, Layered, OpKind};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use scenarios::{Derived, Fault};

use crate::lock;
use crate::seeding;
use crate::trace;

/// Which backend the faults are injected at; each site draws from its own sub-stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Site {
    /// An in-memory backend in the handle's process: latency is injected here.
    Memory,
    /// A backend on a SimDisk in the handle's process: the disk is slow itself
    /// ([`crate::faults::disk`]), and the backend's work is too (redb answers most reads from
    /// its page cache, which no disk latency slows), so reads pile up behind permits.
    OnDisk,
    /// The IO worker's backend: latency, and now and then a stall past a request's deadline.
    Worker,
}

/// Probability that an op stalls (a slow period of the backend).
const STALL_PROBABILITY: f64 = 0.03;
/// The longest stall: long enough to outlast a request's deadline.
const STALL_MAX: Duration = Duration::from_millis(900);

/// A backend's injected faults, as the seed's configuration says; clone-cheap, shared by every
/// incarnation of the backend over a run (the draws go on across restarts).
#[derive(Debug, Clone, Default)]
pub(crate) struct BackendFaults {
    state: Arc<Mutex<State>>,
}

#[derive(Debug, Default)]
struct State {
    /// Probability of losing a committed write's acknowledgement, and its rng.
    ack_loss: Option<(f64, ChaCha8Rng)>,
    /// Longest latency per op, and its rng.
    latency: Option<(Duration, ChaCha8Rng)>,
    /// Probability of a stall and the longest stall.
    stalls: Option<(f64, Duration)>,
    /// Whether a delay past the op's timeout ends the op with `DeadlineExceeded`.
    deadline_bound: bool,
}

impl BackendFaults {
    /// The faults `derived` switches on at `site`.
    pub(crate) fn for_seed(derived: &Derived, site: Site) -> BackendFaults {
        let mut state = State::default();
        let seed = derived.seed;
        if derived.has(Fault::DiskErrors) {
            let rng = ChaCha8Rng::seed_from_u64(seeding::sub_seed(seed, "ack-loss", 0));
            state.ack_loss = Some(((derived.disk.error_rate * 10.0).min(0.2), rng));
        }
        let latency_stream = match site {
            Site::Memory => Some("latency"),
            Site::OnDisk => Some("disk-backend-latency"),
            Site::Worker => Some("worker-latency"),
        };
        if let Some(stream) = latency_stream.filter(|_| derived.has(Fault::BackendLatency)) {
            let rng = ChaCha8Rng::seed_from_u64(seeding::sub_seed(seed, stream, 0));
            state.latency = Some((derived.disk.latency, rng));
            state.stalls = Some((STALL_PROBABILITY, STALL_MAX));
            // In process the backend checks its own deadline while it works: a stall past
            // it ends the op with `DeadlineExceeded` (a write rolled back). The worker's
            // backend stalls past it (a stuck disk), so the client's deadline rule matters.
            state.deadline_bound = site != Site::Worker;
        }
        BackendFaults {
            state: Arc::new(Mutex::new(state)),
        }
    }

    /// Wraps `backend`.
    pub(crate) fn wrap<B>(&self, backend: B) -> FaultyBackend<B> {
        Layered(FaultLayer {
            inner: backend,
            faults: self.clone(),
        })
    }

    /// This op's extra latency (stall included), if any.
    fn delay(&self) -> Option<Duration> {
        let mut state = lock(&self.state);
        let stalls = state.stalls;
        let (max, rng) = state.latency.as_mut()?;
        let base = max.mul_f64(rng.random_range(0.0..1.0));
        Some(match stalls {
            Some((p, stall)) if rng.random_bool(p) => {
                base + stall.mul_f64(rng.random_range(0.5..1.0))
            }
            _ => base,
        })
    }

    /// Whether a delay past an op's timeout ends it (see [`Site`]).
    fn deadline_bound(&self) -> bool {
        lock(&self.state).deadline_bound
    }

    /// Whether to lose this committed write's acknowledgement.
    fn lose_ack(&self) -> bool {
        let mut state = lock(&self.state);
        state
            .ack_loss
            .as_mut()
            .is_some_and(|(p, rng)| rng.random_bool(*p))
    }
}

/// A backend with injected faults.
pub(crate) type FaultyBackend<B> = Layered<FaultLayer<B>>;

/// The layer that injects [`BackendFaults`].
#[derive(Debug)]
pub(crate) struct FaultLayer<B> {
    inner: B,
    faults: BackendFaults,
}

impl<B: ColdStorageBackend> Layer for FaultLayer<B> {
    type Inner = B;

    async fn around<T: Send>(
        &self,
        kind: OpKind,
        work: impl Future<Output = ColdResult<T>> + Send,
    ) -> ColdResult<T> {
        if let Some(pause) = self.faults.delay() {
            let timeouts = self.inner.timeouts();
            let timeout = if kind.is_write() {
                timeouts.write
            } else {
                timeouts.read
            };
            if self.faults.deadline_bound() && pause >= timeout {
                engine::rt::sleep(timeout).await;
                return Err(ColdStorageError::DeadlineExceeded { timeout });
            }
            engine::rt::sleep(pause).await;
        }
        let result = work.await;
        if kind.is_write() && result.is_ok() && self.faults.lose_ack() {
            trace::record("probe", "fault.ack-loss", format!("op={}", kind.name()));
            return Err(ColdStorageError::backend(
                kind.name(),
                "acknowledgement lost after commit (injected)",
            ));
        }
        result
    }

    async fn around_stream(
        &self,
        deadline: engine::rt::Instant,
        work: impl Future<Output = ()> + Send,
    ) {
        // A stall is cut at the deadline, as the contract asks of a backend's stream: the
        // producer's own deadline is then what is checked, not latency made up here.
        if let Some(pause) = self.faults.delay() {
            let _ = engine::rt::timeout_at(deadline, engine::rt::sleep(pause)).await;
        }
        work.await;
    }

    fn inner(&self) -> &B {
        &self.inner
    }
}

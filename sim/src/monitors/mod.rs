//! Monitors: what a run checks, and the one place its violations go.
//!
//! A monitor checks one invariant family where it is enforced, even when another layer would
//! already hide the symptom (a worker's drain barrier is checked at the worker, not only at the
//! handle). Every monitor reports to the run's one [`Sink`], which keeps the *first* violation
//! with the simulated time it was seen: the failure report starts there, not at the end of the
//! run.
//!
//! Families, one module each:
//! - [`coverage`]: the interesting states each world must reach, counted per seed;
//! - [`probe`]: permits and the drain barrier at a backend (the handle's, or the worker's, and
//!   there the worker's own barrier), stream permits against the producers' real ends, and
//!   each producer's own deadline;
//! - [`events`]: what the engine decides without a backend, seen through its tracing events:
//!   cache hits (none while a write commits) and fills, the remote client's deadline + skew
//!   rule, the protocol, the worker's fence and stream credit;
//! - [`history`] and [`linearizability`]: every call's answer against the block-store model
//!   (linearizability over concurrent writers, unknown outcomes included);
//! - [`durability`]: the store after every restart holds every acknowledged write;
//! - [`panics`]: a panic anywhere in the run;
//! - liveness: bounds on every call, stream and shutdown, checked where the worlds wait;
//! - btail: ΔBtail's answers against the KV model (in the btail world's `checks`).
//!
//! A family that has something to check once the run's work is over implements [`Monitor`]
//! and is registered in the run's [`Monitors`] (by `run::run_one` for every run, by a world
//! for its own); `worlds::run` finishes them all, in one loop, when the world returned.

pub mod coverage;
pub mod durability;
pub mod events;
pub mod history;
pub mod linearizability;
pub mod panics;
pub mod probe;

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use strum::{IntoStaticStr, VariantArray};

use crate::report::RunStats;
use crate::{lock, trace};

/// The invariants a run checks. Their names (kebab-case) are stable: reports, JSON and tests
/// use them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, IntoStaticStr, VariantArray)]
#[strum(serialize_all = "kebab-case")]
pub enum Invariant {
    /// More reads, writes or streams at a backend than the handle's permits allow.
    Permits,
    /// A read overlapped a committing write (the drain barrier), at a backend or in the cache.
    Drain,
    /// The history has no linearization: some answer differs from the model in every order
    /// of the writes around it.
    History,
    /// As `History`, where the answer that cannot be placed is a read the cache can answer.
    Cache,
    /// A restarted store lost or half-applied an acknowledged write, or never opens again.
    Durability,
    /// A call, stream, shutdown or the whole run did not finish within its bound.
    Liveness,
    /// ΔBtail answered differently from the KV-per-revision model, or broke its own state.
    Btail,
    /// A slice ΔBtail handed out changed afterwards.
    Snapshot,
    /// A side of the wire protocol saw the other break it.
    Protocol,
    /// A write of a connection started at the IO worker after a newer connection of its
    /// client was acknowledged (the fence).
    Fence,
    /// The IO worker sent a stream more items than its client granted.
    StreamCredit,
    /// The cache kept a block from a read that a removal of that block raced.
    CacheFill,
    /// A read overlapped a write at the IO worker's backend (its own drain barrier).
    WorkerDrain,
    /// A stream producer ran at a backend while fewer stream permits were held than producers
    /// ran (the handle's stream permits; at a worker, its work permits).
    StreamPermit,
    /// A stream producer did not stop by its own deadline: it ended late, or was still running
    /// when it was cut off.
    ProducerDeadline,
    /// Something in the system under test (or the harness) panicked.
    Panic,
    /// A run gave no result within its wall-clock limit (`--run-timeout`).
    Hang,
    /// The harness itself could not set the world up.
    Harness,
}

impl Invariant {
    /// Every invariant, in report order.
    pub const ALL: &'static [Invariant] = <Invariant as VariantArray>::VARIANTS;

    /// The stable name printed in reports and JSON.
    pub fn name(self) -> &'static str {
        self.into()
    }
}

impl fmt::Display for Invariant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A broken invariant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// Which invariant.
    pub invariant: Invariant,
    /// What exactly was observed.
    pub detail: String,
    /// Simulated time since the run started when it was observed.
    pub at: Duration,
    /// For a read no linearization can place: what it read and what the model allows there.
    pub read: Option<Box<ReadMismatch>>,
}

/// A read the history check blames: what it read, against every answer the block-store model
/// gives in a state where the read could have taken effect (its window, with the writes around
/// it placed in every order the search tried), as Porcupine shows a failed linearization.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadMismatch {
    /// Who read (`client-3`, `writer`, `store`).
    pub who: String,
    /// The read, as the history records it.
    pub op: String,
    /// What it read, in a few words.
    pub read: String,
    /// What the model answers in each state where the read could have come next, each once,
    /// in the order the search met them.
    pub allowed: Vec<String>,
    /// When it was invoked and answered, in simulated time since the run started.
    pub invoked: Duration,
    /// See `invoked`.
    pub answered: Duration,
}

impl Violation {
    /// A violation of `invariant`, observed now.
    pub fn new(invariant: Invariant, detail: impl Into<String>) -> Violation {
        Violation {
            invariant,
            detail: detail.into(),
            at: trace::now(),
            read: None,
        }
    }
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.invariant, self.detail)
    }
}

/// The run's one violation sink: keeps the earliest violation any monitor reports (by
/// simulated time; the first reported among equals); clone-cheap.
#[derive(Debug, Clone, Default)]
pub struct Sink {
    first: Arc<Mutex<Option<Violation>>>,
    /// Woken by every report, for a run that stops at its first violation.
    reported: Arc<tokio::sync::Notify>,
}

impl Sink {
    /// Records `violation` in the trace, and keeps it if it is the earliest so far.
    pub fn violate(&self, violation: Violation) {
        trace::record("monitor", "violation", violation.to_string());
        let mut first = self.lock();
        if first.as_ref().is_none_or(|f| violation.at < f.at) {
            *first = Some(violation);
        }
        self.reported.notify_one();
    }

    /// Resolves once a violation has been reported (at once if one was already).
    pub async fn reported(&self) {
        if self.failed() {
            return;
        }
        self.reported.notified().await;
    }

    /// Records `result`'s violation, if it has one.
    pub fn check(&self, result: Result<(), Violation>) {
        if let Err(v) = result {
            self.violate(v);
        }
    }

    /// The first violation, if any.
    pub fn first(&self) -> Option<Violation> {
        self.lock().clone()
    }

    /// Whether anything was reported.
    pub fn failed(&self) -> bool {
        self.lock().is_some()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Violation>> {
        lock(&self.first)
    }
}

/// One monitor family of a run, as the run's end sees it. What a family observes during the
/// run reaches it through its own feed (a probe around a backend, the engine's tracing events,
/// a world's calls) and goes to the [`Sink`] at once; what can only be judged once the work is
/// over (the panics the run caught, the recorded history) is judged in [`Monitor::finish`].
pub trait Monitor: Send + Sync {
    /// The family's name (its module's).
    fn family(&self) -> &'static str;

    /// The invariants this family reports violations of.
    fn invariants(&self) -> &'static [Invariant];

    /// The end-of-run check, once the world returned: reports into `sink`, and adds the
    /// family's figures to the run's `stats`.
    fn finish(&self, sink: &Sink, stats: &mut RunStats);
}

/// The monitors of one run, finished in the order they were registered; clone-cheap.
#[derive(Clone, Default)]
pub struct Monitors {
    registered: Arc<Mutex<Vec<Arc<dyn Monitor>>>>,
}

impl Monitors {
    /// Registers `monitor` for the end of the run.
    pub fn register(&self, monitor: Arc<dyn Monitor>) {
        lock(&self.registered).push(monitor);
    }

    /// Finishes every registered monitor: the run's one end-of-run loop.
    pub fn finish(&self, sink: &Sink, stats: &mut RunStats) {
        // A monitor's check may take a while (the history's search): not under the lock.
        let registered = lock(&self.registered).clone();
        for monitor in registered {
            monitor.finish(sink, stats);
        }
    }

    /// The registered families, in order.
    pub fn families(&self) -> Vec<&'static str> {
        lock(&self.registered).iter().map(|m| m.family()).collect()
    }
}

impl fmt::Debug for Monitors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.families()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The names are part of the reports, the JSON summary and the regressions file: renaming
    /// a variant must not rename its invariant.
    #[test]
    fn invariant_names_are_pinned() {
        let names: Vec<&str> = Invariant::ALL.iter().map(|i| i.name()).collect();
        assert_eq!(
            names.join(" "),
            "permits drain history cache durability liveness btail snapshot protocol fence \
             stream-credit cache-fill worker-drain stream-permit producer-deadline panic hang \
             harness"
        );
    }
}

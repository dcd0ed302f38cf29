//! Monitors fed by the engine's own tracing events.
//!
//! Some of what the engine decides never reaches a backend, so no probe can see it: the handle
//! answers cache hits itself, and the remote client gives up on requests the worker never
//! answered. The engine emits a `trace` event for each (targets [`CACHE_TARGET`] and
//! [`REMOTE_TARGET`]); this layer hands cache hits to the run's probe (no hit while a write
//! commits) and releases to [`RemoteDeadlines`] (no request given up before its deadline plus
//! the skew allowance).

use std::time::Duration;

use tracing::Subscriber;
use tracing::field::{Field, Visit};
use tracing_subscriber::Layer;
use tracing_subscriber::layer::{Context, SubscriberExt};

use crate::monitors::coverage::{self, Goal};
use crate::monitors::probe::Probe;
use crate::monitors::{Invariant, Sink, Violation};

/// The tracing target of cache-hit events.
pub const CACHE_TARGET: &str = "engine::cache";
/// The tracing target of the remote client's events.
pub const REMOTE_TARGET: &str = engine::remote::client::TRACE_TARGET;

/// The remote client's deadline rule: a request the worker did not answer is held until its
/// deadline plus the clock-skew allowance (until then the worker may still run it, and the
/// handle's permit must still count it).
#[derive(Debug, Clone)]
pub struct RemoteDeadlines {
    /// The skew allowance the run's clients are configured with.
    pub skew: Duration,
    /// Where violations go.
    pub sink: Sink,
}

impl RemoteDeadlines {
    fn on_release(&self, op: &str, budget: Duration, waited: Duration) {
        coverage::reach(Goal::RemoteRequestReleasedUnanswered);
        if waited < budget + self.skew {
            self.sink.violate(Violation::new(
                Invariant::Permits,
                format!(
                    "the remote client gave up on an unanswered {op} after {waited:?}, before its {budget:?} deadline plus the {:?} skew allowance: the worker may still run it while the handle's permit is free",
                    self.skew
                ),
            ));
        }
    }
}

struct EngineEvents {
    probe: Probe,
    remote: RemoteDeadlines,
}

/// The fields of a release event.
#[derive(Default)]
struct Release {
    op: String,
    budget_us: u64,
    waited_us: u64,
}

impl Visit for Release {
    fn record_u64(&mut self, field: &Field, value: u64) {
        match field.name() {
            "budget_us" => self.budget_us = value,
            "waited_us" => self.waited_us = value,
            _ => {}
        }
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "op" {
            self.op = value.to_string();
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "op" {
            self.op = format!("{value:?}");
        }
    }
}

impl<S: Subscriber> Layer<S> for EngineEvents {
    fn on_event(&self, event: &tracing::Event<'_>, _ctx: Context<'_, S>) {
        match event.metadata().target() {
            CACHE_TARGET => self.probe.on_cache_hit(event.metadata().name()),
            REMOTE_TARGET => {
                let mut release = Release::default();
                event.record(&mut release);
                if release.budget_us > 0 {
                    self.remote.on_release(
                        &release.op,
                        Duration::from_micros(release.budget_us),
                        Duration::from_micros(release.waited_us),
                    );
                }
            }
            _ => {}
        }
    }
}

/// A subscriber for one run: cache hits go to `probe`, remote releases to `remote`; nothing
/// is printed.
pub fn subscriber(probe: Probe, remote: RemoteDeadlines) -> impl Subscriber + Send + Sync {
    let ours = tracing_subscriber::filter::filter_fn(|meta| {
        meta.target() == CACHE_TARGET || meta.target() == REMOTE_TARGET
    });
    tracing_subscriber::registry().with(EngineEvents { probe, remote }.with_filter(ours))
}

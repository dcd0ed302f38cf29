//! Monitors fed by the engine's own tracing events.
//!
//! Some of what the engine decides never reaches a backend, so no probe can see it: the handle
//! answers cache hits itself, the remote client gives up on requests the worker never
//! answered, and either side of the wire may see the other break the protocol (a violation of
//! its own, `protocol`, where a deployment only logs it). The engine emits a `trace` event for each (targets [`CACHE_TARGET`] and
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
/// The tracing target of protocol violations, seen by either side of the wire.
pub const PROTOCOL_TARGET: &str = engine::remote::PROTOCOL_TARGET;

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

/// The fields of a release event, or of a protocol violation.
#[derive(Default)]
struct Fields {
    op: String,
    detail: String,
    budget_us: u64,
    waited_us: u64,
}

impl Visit for Fields {
    fn record_u64(&mut self, field: &Field, value: u64) {
        match field.name() {
            "budget_us" => self.budget_us = value,
            "waited_us" => self.waited_us = value,
            _ => {}
        }
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        match field.name() {
            "op" => self.op = value.to_string(),
            "detail" => self.detail = value.to_string(),
            _ => {}
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        match field.name() {
            "op" => self.op = format!("{value:?}"),
            "detail" => self.detail = format!("{value:?}"),
            _ => {}
        }
    }
}

impl<S: Subscriber> Layer<S> for EngineEvents {
    fn on_event(&self, event: &tracing::Event<'_>, _ctx: Context<'_, S>) {
        match event.metadata().target() {
            CACHE_TARGET => self.probe.on_cache_hit(event.metadata().name()),
            PROTOCOL_TARGET => {
                let mut fields = Fields::default();
                event.record(&mut fields);
                self.remote.sink.violate(Violation::new(
                    Invariant::Protocol,
                    format!("a protocol violation on the wire: {}", fields.detail),
                ));
            }
            REMOTE_TARGET => {
                let mut fields = Fields::default();
                event.record(&mut fields);
                if fields.budget_us > 0 {
                    self.remote.on_release(
                        &fields.op,
                        Duration::from_micros(fields.budget_us),
                        Duration::from_micros(fields.waited_us),
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
        [CACHE_TARGET, REMOTE_TARGET, PROTOCOL_TARGET].contains(&meta.target())
    });
    tracing_subscriber::registry().with(EngineEvents { probe, remote }.with_filter(ours))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::monitors::probe::Limits;

    /// The invariant of the first violation the events of `emit` cause, if any.
    fn first_violation(emit: impl FnOnce()) -> Option<Invariant> {
        let sink = Sink::default();
        let remote = RemoteDeadlines {
            skew: Duration::from_millis(100),
            sink: sink.clone(),
        };
        let probe = Probe::new(Limits::default(), sink.clone());
        tracing::subscriber::with_default(subscriber(probe, remote), emit);
        sink.first().map(|v| v.invariant)
    }

    #[test]
    fn a_protocol_violation_on_either_side_fails_the_run() {
        let seen = first_violation(|| {
            tracing::warn!(target: PROTOCOL_TARGET, detail = "undecodable payload", "bad frame");
        });
        assert_eq!(seen, Some(Invariant::Protocol));
        assert_eq!(
            first_violation(|| tracing::warn!("an ordinary warning")),
            None
        );
    }

    #[test]
    fn a_request_released_before_its_deadline_plus_skew_breaks_the_rule() {
        let release = |waited_us: u64| {
            first_violation(|| {
                tracing::trace!(
                    target: REMOTE_TARGET,
                    op = "get_header",
                    budget_us = 500_000u64,
                    waited_us,
                    "released unanswered"
                );
            })
        };
        assert_eq!(release(500_000), Some(Invariant::Permits));
        assert_eq!(release(600_000), None);
    }
}

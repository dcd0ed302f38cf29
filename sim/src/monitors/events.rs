//! Monitors fed by the engine's own tracing events.
//!
//! Some of what the engine decides never reaches a backend, so no probe can see it: the handle
//! answers cache hits itself, the remote client gives up on requests the worker never
//! answered, either side of the wire may see the other break the protocol (a violation of its
//! own, `protocol`, where a deployment only logs it), and the IO worker fences connections and
//! meters stream credit. The engine emits a `trace` event for each (targets [`CACHE_TARGET`],
//! [`REMOTE_TARGET`], [`PROTOCOL_TARGET`], [`WORKER_TARGET`]); this layer hands cache hits to
//! the run's probe (no hit while a write commits), releases to [`RemoteDeadlines`] (no request
//! given up before its deadline plus the skew allowance), checks the worker's own rules with
//! [`WorkerRules`] (no write of a connection starts after a newer connection of its client was
//! acknowledged, `fence`; no stream sends more items than the client granted, counted where
//! the worker sends them, `stream-credit`) and the cache's fill path with [`CacheRules`] (no
//! fill inserts a block that a removal started to remove, `cache-fill`).

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use tracing::Subscriber;
use tracing::field::{Field, Visit};
use tracing_subscriber::Layer;
use tracing_subscriber::layer::{Context, SubscriberExt};

use crate::lock;
use crate::monitors::coverage::{self, Goal};
use crate::monitors::probe::Probe;
use crate::monitors::{Invariant, Sink, Violation};

/// The tracing target of the cache's events and of the handle's cache hits.
pub const CACHE_TARGET: &str = engine::cache::TRACE_TARGET;
/// The tracing target of the remote client's events.
pub const REMOTE_TARGET: &str = engine::remote::client::TRACE_TARGET;
/// The tracing target of protocol violations, seen by either side of the wire.
pub const PROTOCOL_TARGET: &str = engine::remote::PROTOCOL_TARGET;
/// The tracing target of the IO worker's own events.
pub const WORKER_TARGET: &str = engine::remote::worker::TRACE_TARGET;
/// ΔBtail's events: a query that joined a rebuild of its key in progress (a coverage goal).
pub const BTAIL_TARGET: &str = btail::dbtail::TRACE_TARGET;
/// Each remote request's path, for the timeline only (recorded when the run keeps every event).
pub const TIMELINE_TARGET: &str = engine::remote::TIMELINE_TARGET;

/// A remote request's path as timeline detail: the client's `request` and `reply` as instants
/// on the track of the op that made it (none when no op is marked: a read-back, or work the
/// handle finishes after its caller left), the worker's work as a slice named `serve OP` on the
/// `worker` track; each carries `flow=CLIENT:ID`, which the timeline joins into flow arrows.
fn timeline_detail(f: &Fields) {
    let flow = format!("flow={}:{}", f.client, f.id);
    match f.message.as_str() {
        "served" => {
            let started = crate::trace::now().saturating_sub(Duration::from_micros(f.took_us));
            crate::trace::detail_span("worker", &format!("serve {}", f.op), &flow, Some(started));
        }
        name => {
            if let Some(actor) = crate::trace::op_actor() {
                crate::trace::detail_instant(&actor, name, || flow);
            }
        }
    }
}

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

/// The IO worker's rules, from its events: the fence and stream credit.
#[derive(Debug, Default)]
struct WorkerRules {
    /// Per client identity, the newest connection epoch the worker acknowledged.
    acknowledged: BTreeMap<u64, u64>,
    /// Per stream (connection, request id): items the client granted, items the worker sent.
    credit: BTreeMap<(u64, u64), (u64, u64)>,
}

impl WorkerRules {
    /// Checks one worker event; the violation it shows, if any.
    fn on_event(&mut self, f: &Fields) -> Option<Violation> {
        match f.message.as_str() {
            "hello" => {
                let newest = self.acknowledged.entry(f.client).or_default();
                *newest = (*newest).max(f.newest);
            }
            "write start" => {
                let newest = self.acknowledged.get(&f.client).copied().unwrap_or(0);
                if f.epoch < newest {
                    return Some(Violation::new(
                        Invariant::Fence,
                        format!(
                            "a write of client {}'s connection epoch {} started at the worker after its epoch {newest} connection was acknowledged",
                            f.client, f.epoch
                        ),
                    ));
                }
            }
            "write fenced" => coverage::reach(Goal::FencedWriteRefused),
            "stream credit" => self.credit.entry((f.connection, f.id)).or_default().0 += f.items,
            "stream item" => {
                let (granted, sent) = self.credit.entry((f.connection, f.id)).or_default();
                *sent += 1;
                if *sent > *granted {
                    return Some(Violation::new(
                        Invariant::StreamCredit,
                        format!(
                            "the worker sent item {sent} of stream {} (connection {}) with {granted} granted",
                            f.id, f.connection
                        ),
                    ));
                }
            }
            "stream end" => {
                self.credit.remove(&(f.connection, f.id));
            }
            _ => {}
        }
        None
    }
}

/// The cache's fill rule, from its events, without its epoch: a fill must not insert a block
/// that a removal started to remove after the fill's read began, or that a removal in progress
/// is removing (either way the read may have seen the block before its removal).
#[derive(Debug, Default)]
struct CacheRules {
    /// The block above which each removal started so far removes, in the order they started.
    removals: Vec<u64>,
    /// Removals in progress, by ticket: the block above which they remove.
    in_progress: BTreeMap<u64, u64>,
    /// Reads that may fill, by ticket: how many removals had started when the read began.
    reads: BTreeMap<u64, usize>,
}

impl CacheRules {
    /// Checks one cache event (cache hits aside); the violation it shows, if any.
    fn on_event(&mut self, f: &Fields) -> Option<Violation> {
        match f.message.as_str() {
            "fill read" => {
                self.reads.insert(f.ticket, self.removals.len());
            }
            "removal start" => {
                self.removals.push(f.above);
                self.in_progress.insert(f.removal, f.above);
            }
            "removal end" => {
                self.in_progress.remove(&f.removal);
            }
            "fill" => {
                let since = self.reads.remove(&f.ticket).unwrap_or(0);
                let started = self.removals.get(since..).unwrap_or_default();
                let raced = started
                    .iter()
                    .chain(self.in_progress.values())
                    .find(|&&above| f.block > above);
                if let Some(above) = raced {
                    return Some(Violation::new(
                        Invariant::CacheFill,
                        format!(
                            "the cache kept block {} from a read that a removal of the blocks above {above} raced",
                            f.block
                        ),
                    ));
                }
            }
            _ => {}
        }
        None
    }
}

struct EngineEvents {
    probe: Probe,
    remote: RemoteDeadlines,
    worker: Mutex<WorkerRules>,
    cache: Mutex<CacheRules>,
}

/// The fields of the engine's events this monitor reads.
#[derive(Default)]
struct Fields {
    message: String,
    op: String,
    detail: String,
    budget_us: u64,
    waited_us: u64,
    client: u64,
    epoch: u64,
    newest: u64,
    connection: u64,
    id: u64,
    took_us: u64,
    items: u64,
    ticket: u64,
    block: u64,
    removal: u64,
    above: u64,
}

impl Visit for Fields {
    fn record_u64(&mut self, field: &Field, value: u64) {
        match field.name() {
            "budget_us" => self.budget_us = value,
            "waited_us" => self.waited_us = value,
            "client" => self.client = value,
            "epoch" => self.epoch = value,
            "newest" => self.newest = value,
            "connection" => self.connection = value,
            "id" => self.id = value,
            "took_us" => self.took_us = value,
            "items" => self.items = value,
            "ticket" => self.ticket = value,
            "block" => self.block = value,
            "removal" => self.removal = value,
            "above" => self.above = value,
            _ => {}
        }
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        match field.name() {
            "op" => self.op = value.to_string(),
            "detail" => self.detail = value.to_string(),
            "message" => self.message = value.to_string(),
            _ => {}
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        match field.name() {
            "op" => self.op = format!("{value:?}"),
            "detail" => self.detail = format!("{value:?}"),
            "message" => self.message = format!("{value:?}"),
            _ => {}
        }
    }
}

impl EngineEvents {
    /// Reports `found`, if it is a violation.
    fn report(&self, found: Option<Violation>) {
        if let Some(violation) = found {
            self.remote.sink.violate(violation);
        }
    }
}

impl<S: Subscriber> Layer<S> for EngineEvents {
    fn on_event(&self, event: &tracing::Event<'_>, _ctx: Context<'_, S>) {
        let target = event.metadata().target();
        // Looked at before anything else: a run that keeps no trace pays one check.
        if target == TIMELINE_TARGET && !crate::trace::keeps_all() {
            return;
        }
        let mut fields = Fields::default();
        event.record(&mut fields);
        match target {
            TIMELINE_TARGET => timeline_detail(&fields),
            CACHE_TARGET if fields.message == "cache hit" => self.probe.on_cache_hit(&fields.op),
            CACHE_TARGET => self.report(lock(&self.cache).on_event(&fields)),
            BTAIL_TARGET => coverage::reach(Goal::QueryJoinedRebuild),
            WORKER_TARGET => self.report(lock(&self.worker).on_event(&fields)),
            PROTOCOL_TARGET => self.report(Some(Violation::new(
                Invariant::Protocol,
                format!("a protocol violation on the wire: {}", fields.detail),
            ))),
            REMOTE_TARGET if fields.budget_us > 0 => self.remote.on_release(
                &fields.op,
                Duration::from_micros(fields.budget_us),
                Duration::from_micros(fields.waited_us),
            ),
            _ => {}
        }
    }
}

/// A subscriber for one run: cache hits go to `probe`, remote releases to `remote`; nothing
/// is printed.
pub fn subscriber(probe: Probe, remote: RemoteDeadlines) -> impl Subscriber + Send + Sync {
    let ours = tracing_subscriber::filter::filter_fn(|meta| {
        [
            CACHE_TARGET,
            REMOTE_TARGET,
            PROTOCOL_TARGET,
            WORKER_TARGET,
            BTAIL_TARGET,
            TIMELINE_TARGET,
        ]
        .contains(&meta.target())
    });
    let events = EngineEvents {
        probe,
        remote,
        worker: Mutex::default(),
        cache: Mutex::default(),
    };
    tracing_subscriber::registry().with(events.with_filter(ours))
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
    fn a_write_of_an_older_connection_starting_after_a_newer_hello_breaks_the_fence() {
        let hello = || tracing::trace!(target: WORKER_TARGET, client = 1u64, epoch = 2u64, newest = 2u64, "hello");
        let start = |epoch: u64| tracing::trace!(target: WORKER_TARGET, client = 1u64, epoch, newest = 2u64, "write start");
        assert_eq!(
            first_violation(|| {
                hello();
                start(1);
            }),
            Some(Invariant::Fence)
        );
        assert_eq!(
            first_violation(|| {
                start(1);
                hello();
                start(2);
            }),
            None
        );
    }

    #[test]
    fn a_stream_item_past_the_granted_credit_breaks_backpressure() {
        let credit = |id: u64, items: u64| tracing::trace!(target: WORKER_TARGET, connection = 1u64, id, items, "stream credit");
        let item =
            |id: u64| tracing::trace!(target: WORKER_TARGET, connection = 1u64, id, "stream item");
        let seen = |extra: bool| {
            first_violation(|| {
                credit(5, 2);
                credit(6, 1);
                item(5);
                item(5);
                item(6);
                if extra {
                    item(5);
                }
                credit(5, 1);
                item(5);
            })
        };
        assert_eq!(seen(false), None);
        assert_eq!(seen(true), Some(Invariant::StreamCredit));
    }

    #[test]
    fn a_fill_of_a_block_a_removal_started_to_remove_breaks_the_fill_rule() {
        let read = |ticket: u64| tracing::trace!(target: CACHE_TARGET, ticket, "fill read");
        let fill =
            |ticket: u64, block: u64| tracing::trace!(target: CACHE_TARGET, ticket, block, "fill");
        let start = |removal: u64, above: u64| tracing::trace!(target: CACHE_TARGET, removal, above, "removal start");
        let end = |removal: u64| tracing::trace!(target: CACHE_TARGET, removal, "removal end");
        // A read that began before a removal of blocks above 5 fills block 7: it may have read
        // the block before it was removed.
        let raced = first_violation(|| {
            read(1);
            start(2, 5);
            end(2);
            fill(1, 7);
        });
        assert_eq!(raced, Some(Invariant::CacheFill));
        // A fill while a removal covering the block is in progress.
        let during = first_violation(|| {
            start(1, 5);
            read(2);
            fill(2, 6);
        });
        assert_eq!(during, Some(Invariant::CacheFill));
        // Blocks the removal keeps, reads after it, and a write that removes nothing.
        let fine = first_violation(|| {
            read(1);
            start(2, 5);
            end(2);
            fill(1, 5);
            read(3);
            fill(3, 9);
            read(4);
            start(5, u64::MAX);
            fill(4, 9);
        });
        assert_eq!(fine, None);
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

//! Monitors fed by the engine's own tracing events.
//!
//! The handle answers cache hits without touching the backend, so the probe cannot see them.
//! The handle emits a `trace` event with target `engine::cache` on every hit; this layer
//! forwards it to the run's probe, which checks that no write is committing at that moment.

use tracing::Subscriber;
use tracing_subscriber::Layer;
use tracing_subscriber::layer::{Context, SubscriberExt};

use crate::monitors::probe::Probe;

/// The tracing target of cache-hit events.
pub const CACHE_TARGET: &str = "engine::cache";

struct CacheHits {
    probe: Probe,
}

impl<S: Subscriber> Layer<S> for CacheHits {
    fn on_event(&self, event: &tracing::Event<'_>, _ctx: Context<'_, S>) {
        if event.metadata().target() == CACHE_TARGET {
            self.probe.on_cache_hit(event.metadata().name());
        }
    }
}

/// A subscriber for one run: cache hits go to `probe`; nothing is printed.
pub fn subscriber(probe: Probe) -> impl Subscriber + Send + Sync {
    let only_cache = tracing_subscriber::filter::filter_fn(|meta| meta.target() == CACHE_TARGET);
    tracing_subscriber::registry().with(CacheHits { probe }.with_filter(only_cache))
}

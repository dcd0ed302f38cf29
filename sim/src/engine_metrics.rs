//! The handle's own metrics (`engine::metrics`, through the `metrics` facade) as timeline
//! detail: each permit wait a span inside the op that waited (`permit wait (read)`, `write`,
//! `drain`, `stream`), and the handle's gauges as counter tracks (`permits in use`: the reads,
//! writes and streams holding their permits; `cache entries`).
//!
//! The handle registers its metrics once, when it is built: [`registered`] builds it under this
//! recorder only when the run keeps every event, so a run that keeps no trace gets the
//! facade's no-op handles, as before, and pays nothing.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use metrics::{
    Counter, Gauge, GaugeFn, Histogram, HistogramFn, Key, KeyName, Metadata, Recorder,
    SharedString, Unit,
};

use crate::{lock, trace};

/// The timeline actor of the handle's counters.
const HANDLE: &str = "handle";

/// Runs `build` (which builds a handle) under the timeline's recorder when the run keeps every
/// event; else plainly.
pub fn registered<T>(build: impl FnOnce() -> T) -> T {
    if trace::keeps_all() {
        metrics::with_local_recorder(&TimelineRecorder, build)
    } else {
        build()
    }
}

/// Hands out timeline handles for the metrics the timeline draws, no-op ones for the rest.
struct TimelineRecorder;

impl Recorder for TimelineRecorder {
    fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}

    fn register_counter(&self, _: &Key, _: &Metadata<'_>) -> Counter {
        Counter::noop()
    }

    fn register_gauge(&self, key: &Key, _: &Metadata<'_>) -> Gauge {
        let (track, series) = match key.name() {
            "cold.reads_in_flight" => ("permits in use", "reads"),
            "cold.writes_in_flight" => ("permits in use", "writes"),
            "cold.streams_active" => ("permits in use", "streams"),
            "cold.cache_entries" => ("cache entries", "entries"),
            _ => return Gauge::noop(),
        };
        Gauge::from_arc(Arc::new(TimelineGauge {
            track,
            series,
            value: Mutex::new(0.0),
        }))
    }

    fn register_histogram(&self, key: &Key, _: &Metadata<'_>) -> Histogram {
        if key.name() != "cold.permit_wait_us" {
            return Histogram::noop();
        }
        let sem = key
            .labels()
            .find(|label| label.key() == "sem")
            .map_or("", |label| label.value());
        Histogram::from_arc(Arc::new(PermitWait {
            name: format!("permit wait ({sem})"),
        }))
    }
}

/// A gauge drawn as one series of a counter track of the handle.
struct TimelineGauge {
    track: &'static str,
    series: &'static str,
    value: Mutex<f64>,
}

impl TimelineGauge {
    fn update(&self, change: impl FnOnce(f64) -> f64) {
        let mut value = lock(&self.value);
        *value = change(*value);
        let now = *value;
        trace::detail_count(HANDLE, self.track, || format!("{}={now}", self.series));
    }
}

impl GaugeFn for TimelineGauge {
    fn increment(&self, by: f64) {
        self.update(|v| v + by);
    }

    fn decrement(&self, by: f64) {
        self.update(|v| v - by);
    }

    fn set(&self, to: f64) {
        self.update(|_| to);
    }
}

/// A permit wait (the handle records it once the permit is taken, in the waiting task) as a
/// span on the track of the op that waited; a wait outside an op (a burst read, a read-back)
/// has no slice to nest in and is left out.
struct PermitWait {
    name: String,
}

impl HistogramFn for PermitWait {
    fn record(&self, micros: f64) {
        let Some(actor) = trace::op_actor() else {
            return;
        };
        let waited = Duration::from_micros(micros.round() as u64);
        trace::detail_span(
            &actor,
            &self.name,
            "",
            Some(trace::now().saturating_sub(waited)),
        );
    }
}

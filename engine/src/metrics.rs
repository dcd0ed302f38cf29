//! Metrics and in-flight gauges.
//!
//! Names (all through the `metrics` facade, so a recorder decides where they go):
//! - gauges `cold.reads_in_flight`, `cold.writes_in_flight`, `cold.streams_active`, kept by
//!   RAII [`InFlight`] guards so they come back down even when a task panics;
//! - gauge `cold.cache_entries`, the read-through cache's entries (kept by `crate::cache`);
//! - histograms `cold.op_duration_us{op}` and `cold.permit_wait_us{sem}` with `sem` one of
//!   `read`, `write`, `drain`, `stream`;
//! - counter `cold.op_errors_total{op, error}` labelled with [`ColdStorageError::kind`].
//!
//! Gauges and histograms are registered once, when a handle is built ([`Metrics::register`]),
//! so the hot path only touches ready handles: building a labelled key per call costs more
//! than the cache hit it would measure. Install the recorder before building the handle.
//! Error counters are registered when an error happens (rare, and labelled by kind).

use std::time::Duration;

use metrics::{Gauge, Histogram};

use crate::error::{ColdResult, ColdStorageError};
use crate::layer::OpKind;
use crate::rt::{self, Instant};

/// Every operation name the handle reports, so their histograms are registered up front.
pub const OPS: [&str; 14] = {
    let mut names = [""; 14];
    let mut i = 0;
    while i < names.len() {
        names[i] = OpKind::ALL[i].name();
        i += 1;
    }
    names
};

/// What kind of work an in-flight guard counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Work {
    /// A barrier-gated read.
    Read,
    /// A write.
    Write,
    /// A log stream producer.
    Stream,
}

/// Which semaphore a permit wait was spent on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sem {
    // Declared in the order of `Sem::ALL`: a `Sem` indexes its histogram.
    /// The read semaphore, one permit.
    Read,
    /// The write semaphore.
    Write,
    /// Every read permit, for the drain barrier.
    Drain,
    /// The stream semaphore.
    Stream,
}

impl Sem {
    const ALL: [Sem; 4] = [Sem::Read, Sem::Write, Sem::Drain, Sem::Stream];

    fn label(self) -> &'static str {
        match self {
            Sem::Read => "read",
            Sem::Write => "write",
            Sem::Drain => "drain",
            Sem::Stream => "stream",
        }
    }
}

/// The metric handles of one storage handle.
#[derive(Debug)]
pub struct Metrics {
    reads: Gauge,
    writes: Gauge,
    streams: Gauge,
    permit_waits: [Histogram; 4],
    /// One per [`OpKind`], in the order of [`OpKind::ALL`].
    durations: [Histogram; OpKind::ALL.len()],
}

impl Metrics {
    /// Registers every gauge and histogram with the current recorder.
    pub fn register() -> Metrics {
        Metrics {
            reads: metrics::gauge!("cold.reads_in_flight"),
            writes: metrics::gauge!("cold.writes_in_flight"),
            streams: metrics::gauge!("cold.streams_active"),
            permit_waits: Sem::ALL
                .map(|sem| metrics::histogram!("cold.permit_wait_us", "sem" => sem.label())),
            durations: OPS.map(|op| metrics::histogram!("cold.op_duration_us", "op" => op)),
        }
    }

    /// Counts `work` in its gauge while the guard lives.
    pub fn in_flight(&self, work: Work) -> InFlight {
        let gauge = match work {
            Work::Read => &self.reads,
            Work::Write => &self.writes,
            Work::Stream => &self.streams,
        };
        gauge.increment(1.0);
        InFlight {
            gauge: gauge.clone(),
        }
    }

    /// Records how long a permit took to obtain.
    pub fn permit_waited(&self, sem: Sem, waited: Duration) {
        debug_assert_eq!(Sem::ALL[sem as usize], sem);
        self.permit_waits[sem as usize].record(micros(waited));
    }

    /// Records an operation's duration and, when it failed, its error kind.
    pub fn op<T>(&self, op: OpKind, started: Instant, result: &ColdResult<T>) {
        debug_assert_eq!(OpKind::ALL[op as usize], op);
        self.durations[op as usize].record(micros(rt::now().saturating_duration_since(started)));
        if let Err(error) = result {
            record_error(op, error);
        }
    }
}

/// Counts one unit of work in its gauge for as long as it lives.
#[derive(Debug)]
pub struct InFlight {
    gauge: Gauge,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.gauge.decrement(1.0);
    }
}

fn micros(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1e6
}

/// Counts one error of `op`.
pub fn record_error(op: OpKind, error: &ColdStorageError) {
    metrics::counter!("cold.op_errors_total", "op" => op.name(), "error" => error.kind())
        .increment(1);
}

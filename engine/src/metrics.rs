//! Metrics and in-flight gauges.
//!
//! Names (all through the `metrics` facade, so a recorder decides where they go):
//! - gauges `cold.reads_in_flight`, `cold.writes_in_flight`, `cold.streams_active`, kept by
//!   RAII [`InFlight`] guards so they come back down even when a task panics;
//! - histograms `cold.op_duration_us{op}` and `cold.permit_wait_us{sem}` with `sem` one of
//!   `read`, `write`, `drain`, `stream`;
//! - counter `cold.op_errors_total{op, error}` labelled with [`ColdStorageError::kind`].

use crate::error::{ColdResult, ColdStorageError};
use crate::rt::{self, Instant};

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

impl Work {
    fn gauge(self) -> &'static str {
        match self {
            Work::Read => "cold.reads_in_flight",
            Work::Write => "cold.writes_in_flight",
            Work::Stream => "cold.streams_active",
        }
    }
}

/// Counts one unit of work in its gauge for as long as it lives.
#[derive(Debug)]
pub struct InFlight {
    work: Work,
}

impl InFlight {
    /// Increments the gauge of `work`.
    pub fn start(work: Work) -> InFlight {
        metrics::gauge!(work.gauge()).increment(1.0);
        InFlight { work }
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        metrics::gauge!(self.work.gauge()).decrement(1.0);
    }
}

/// Which semaphore a permit wait was spent on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sem {
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
    fn label(self) -> &'static str {
        match self {
            Sem::Read => "read",
            Sem::Write => "write",
            Sem::Drain => "drain",
            Sem::Stream => "stream",
        }
    }
}

fn micros_since(start: Instant) -> f64 {
    rt::now().saturating_duration_since(start).as_secs_f64() * 1e6
}

/// Records how long a permit took to obtain.
pub fn record_permit_wait(sem: Sem, started: Instant) {
    metrics::histogram!("cold.permit_wait_us", "sem" => sem.label()).record(micros_since(started));
}

/// Records an operation's duration and, when it failed, its error kind.
pub fn record_op<T>(op: &'static str, started: Instant, result: &ColdResult<T>) {
    metrics::histogram!("cold.op_duration_us", "op" => op).record(micros_since(started));
    if let Err(error) = result {
        record_error(op, error);
    }
}

/// Counts one error of `op`.
pub fn record_error(op: &'static str, error: &ColdStorageError) {
    metrics::counter!("cold.op_errors_total", "op" => op, "error" => error.kind()).increment(1);
}

//! The panic monitor: a panic anywhere in a run is a `panic` violation.
//!
//! A runtime catches a panicking task's unwind and hands it to whoever awaits the task's
//! handle, which may turn it into an ordinary error (or drop it). A panic is never a clean
//! outcome, so the run does not rely on that path: while a run is in progress on a thread, a
//! process-wide hook records the first panic of that thread, whatever catches it afterwards
//! (the engine's debug assertions, ΔBtail's, an overflow on the simulation profile, the
//! harness's own). Other threads keep the previous hook.

use std::cell::{Cell, RefCell};
use std::sync::Once;
use std::time::Duration;

use crate::monitors::{Invariant, Monitor, Sink, Violation};
use crate::report::RunStats;

thread_local! {
    /// Whether panics on this thread are captured (a run is in progress here).
    static CAPTURE: Cell<bool> = const { Cell::new(false) };
    /// The first panic captured on this thread.
    static PANICKED: RefCell<Option<(String, Duration)>> = const { RefCell::new(None) };
}

/// Installs (once per process) the hook that records a capturing thread's panics.
fn install_hook() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if CAPTURE.with(Cell::get) {
                PANICKED.with(|p| {
                    p.borrow_mut()
                        .get_or_insert_with(|| (info.to_string(), crate::trace::now_in_hook()));
                });
            } else {
                previous(info);
            }
        }));
    });
}

/// Whether this thread's run has panicked so far.
pub fn panicked() -> bool {
    PANICKED.with(|p| p.borrow().is_some())
}

/// Captures panics on this thread while alive; its [`Monitor::finish`] (on the same thread)
/// reports the first.
#[derive(Debug)]
pub struct Capture(());

impl Capture {
    /// Starts capturing on this thread.
    pub fn start() -> Capture {
        install_hook();
        PANICKED.with(|p| p.borrow_mut().take());
        CAPTURE.with(|c| c.set(true));
        Capture(())
    }
}

impl Monitor for Capture {
    fn family(&self) -> &'static str {
        "panics"
    }

    fn invariants(&self) -> &'static [Invariant] {
        &[Invariant::Panic]
    }

    /// The first panic of the run, at the simulated time it happened.
    fn finish(&self, sink: &Sink, _: &mut RunStats) {
        if let Some((detail, at)) = PANICKED.with(|p| p.borrow_mut().take()) {
            sink.violate(Violation {
                invariant: Invariant::Panic,
                detail,
                read: None,
                at,
            });
        }
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        CAPTURE.with(|c| c.set(false));
        PANICKED.with(|p| p.borrow_mut().take());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_caught_panic_is_reported_at_the_end_of_the_run() {
        let capture = Capture::start();
        let caught = std::panic::catch_unwind(|| panic!("planted"));
        assert!(caught.is_err() && panicked());
        let (sink, mut stats) = (Sink::default(), RunStats::default());
        capture.finish(&sink, &mut stats);
        let seen = sink.first().expect("the panic is a violation");
        assert_eq!(seen.invariant, Invariant::Panic);
        assert_eq!(capture.invariants(), &[Invariant::Panic]);
        assert!(seen.detail.contains("planted"), "{}", seen.detail);
        // Reported once.
        let again = Sink::default();
        capture.finish(&again, &mut stats);
        assert!(!again.failed());
    }
}

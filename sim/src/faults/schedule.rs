//! Schedule perturbation: every seed also draws a task order.
//!
//! On tokio's paused clock, ready tasks run in FIFO order, so one seed sees one interleaving of
//! the tasks that are ready together, and a race between a task and the continuation of the
//! task that spawned it may never show. At the simulated path's await points (each backend
//! op as the probe sees it, and each client call) a run yields now and then, a number of times
//! drawn from the seed's own `schedule` stream, as shuttle's random scheduler does: another
//! ready task runs first. (Under madsim the executor picks tasks at random already; the
//! yields only add to it.)

use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use rand::RngExt;
use rand_chacha::ChaCha8Rng;

use crate::seeding;

/// Probability that an await point yields at all.
const YIELD_PROBABILITY: f64 = 0.25;
/// Most yields at one await point.
const MAX_YIELDS: u32 = 3;

thread_local! {
    /// The run's schedule stream (the run owns its thread).
    static SCHEDULE: RefCell<Option<ChaCha8Rng>> = const { RefCell::new(None) };
}

/// Starts the schedule of `seed` for the run on this thread.
pub(crate) fn start(seed: u64) {
    SCHEDULE.with(|s| *s.borrow_mut() = Some(seeding::rng(seed, "schedule", 0)));
}

/// Ends it: await points no longer yield.
pub(crate) fn finish() {
    SCHEDULE.with(|s| *s.borrow_mut() = None);
}

/// An await point: yields to other ready tasks as often as the schedule draws.
pub(crate) async fn point() {
    let yields = SCHEDULE.with(|s| {
        s.borrow_mut().as_mut().map_or(0, |rng| {
            if rng.random_bool(YIELD_PROBABILITY) {
                rng.random_range(1..=MAX_YIELDS)
            } else {
                0
            }
        })
    });
    for _ in 0..yields {
        YieldOnce(false).await;
    }
}

/// Pending once (after asking to be polled again), then ready: the task goes to the back of
/// the run queue, on any executor.
struct YieldOnce(bool);

impl Future for YieldOnce {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.0 {
            return Poll::Ready(());
        }
        self.0 = true;
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

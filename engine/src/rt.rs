//! The one place the engine touches the async runtime: spawning and time.
//!
//! Everything else in the crate calls these functions instead of `tokio::spawn` or
//! `tokio::time`, so the same code runs on plain tokio, on a paused tokio clock (the
//! simulator's worlds, where time jumps to the next timer) and under madsim (`--cfg madsim`:
//! madsim's executor picks a random ready task at every poll, and its clock jumps to the next
//! timer). This module is the only file that tells the runtimes apart.
//!
//! It also owns [`Host`]: a group of tasks that dies together, which is how a simulation that
//! runs several "processes" on one runtime crashes one of them.

use std::any::Any;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

#[cfg(madsim)]
use madsim::{task::spawn as spawn_on_runtime, time};
#[cfg(not(madsim))]
use tokio::{spawn as spawn_on_runtime, time};

#[cfg(madsim)]
pub use madsim::task::{AbortHandle, JoinError, JoinHandle};
#[cfg(madsim)]
pub use madsim::time::Instant;
#[cfg(not(madsim))]
pub use tokio::task::{AbortHandle, JoinError, JoinHandle};
#[cfg(not(madsim))]
pub use tokio::time::Instant;

/// Spawns a task on the current runtime, in the current task's [`Host`] if it runs in one.
/// Never use `spawn_blocking` on the simulated path: it hangs the simulation.
pub fn spawn<F>(future: F) -> JoinHandle<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    match HOST.try_with(Host::clone) {
        Ok(host) => host.spawn(future),
        Err(_) => spawn_on_runtime(future),
    }
}

tokio::task_local! {
    /// The host the current task belongs to, inherited by everything it spawns.
    static HOST: Host;
}

/// What a panicking task unwound with.
pub type Panic = Box<dyn Any + Send>;

/// A spawned task that ended without its output: it was cancelled (aborted, or the runtime shut
/// down). A task that panicked is never this: see [`join`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cancelled;

/// Waits for a spawned task. A panic in the task is a bug, so it continues in the joining task
/// (the caller) instead of becoming an ordinary failure; only a cancelled task is `Err`.
pub async fn join<T>(task: JoinHandle<T>) -> Result<T, Cancelled> {
    match task.await {
        Ok(out) => Ok(out),
        Err(error) => Err(resume_panic(error)),
    }
}

#[cfg(not(madsim))]
fn resume_panic(error: JoinError) -> Cancelled {
    match error.try_into_panic() {
        Ok(panic) => std::panic::resume_unwind(panic),
        Err(_) => Cancelled,
    }
}

/// madsim re-raises a task's panic out of the whole simulation, so a join error is always a
/// cancellation there.
#[cfg(madsim)]
fn resume_panic(_: JoinError) -> Cancelled {
    Cancelled
}

/// Runs `future`, catching a panic in any of its polls: `Err` carries the panic, to be resumed
/// where someone can see it (for a task whose join handle nobody awaits). After a panic the
/// future is never polled again, but it is dropped only with the returned [`CatchUnwind`], so
/// what it owns (channel senders, permits) is released after the catcher has passed the panic
/// on.
pub fn catch_unwind<F: Future>(future: F) -> CatchUnwind<F> {
    CatchUnwind {
        future: Box::pin(future),
        panicked: false,
    }
}

/// The future of [`catch_unwind`].
#[derive(Debug)]
pub struct CatchUnwind<F> {
    future: Pin<Box<F>>,
    panicked: bool,
}

impl<F: Future> Future for CatchUnwind<F> {
    type Output = Result<F::Output, Panic>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        assert!(!self.panicked, "a future that panicked is not polled again");
        // Unwind safety: the future is never polled again after a panic (above), and the
        // panic itself is passed on by the caller, so no broken state is observed silently.
        let polled = std::panic::catch_unwind(AssertUnwindSafe(|| self.future.as_mut().poll(cx)));
        match polled {
            Ok(Poll::Ready(out)) => Poll::Ready(Ok(out)),
            Ok(Poll::Pending) => Poll::Pending,
            Err(panic) => {
                self.panicked = true;
                Poll::Ready(Err(panic))
            }
        }
    }
}

/// The message a panic was raised with, for logs (`"<non-text panic>"` when it carries none).
pub fn panic_message(panic: &Panic) -> &str {
    if let Some(message) = panic.downcast_ref::<&'static str>() {
        return message;
    }
    panic
        .downcast_ref::<String>()
        .map_or("<non-text panic>", String::as_str)
}

/// A simulated process: a group of tasks that dies together.
///
/// Tasks spawned through [`Host::spawn`], and everything they spawn through [`spawn`] (at any
/// depth), belong to the host. [`Host::kill`] drops every one of their futures at its next
/// poll, in the same simulated instant, as a crash would: nothing of the host runs after it,
/// no destructor waits for anything, and a killed task never completes (its `JoinHandle`
/// stays pending, as a crashed peer's would). A killed host stays dead; a restart is a new
/// `Host`.
#[derive(Debug, Clone, Default)]
pub struct Host {
    killed: tokio_util::sync::CancellationToken,
}

impl Host {
    /// A live host with no tasks.
    pub fn new() -> Host {
        Host::default()
    }

    /// Spawns `future` as a task of this host (at once dead if the host was killed).
    pub fn spawn<F>(&self, future: F) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let killed = self.killed.clone();
        // Boxed: the runtime moves a task's future several times while spawning and finishing
        // it, and a simulation's request futures run to kilobytes.
        let future = Box::pin(future);
        spawn_on_runtime(HOST.scope(self.clone(), async move {
            let finished = tokio::select! {
                biased;
                _ = killed.cancelled() => None,
                out = future => Some(out),
            };
            // Killed: the task's future is dropped by now; the task itself never completes.
            match finished {
                Some(out) => out,
                None => std::future::pending().await,
            }
        }))
    }

    /// Kills every task of the host, now and to come.
    pub fn kill(&self) {
        self.killed.cancel();
    }

    /// Whether [`Host::kill`] was called.
    pub fn is_killed(&self) -> bool {
        self.killed.is_cancelled()
    }
}

/// The runtime's clock: simulated on a paused tokio runtime and under madsim, real otherwise.
pub fn now() -> Instant {
    Instant::now()
}

/// Sleeps on the runtime's clock.
pub async fn sleep(duration: Duration) {
    time::sleep(duration).await
}

/// Sleeps until `deadline` on the runtime's clock.
pub async fn sleep_until(deadline: Instant) {
    time::sleep_until(deadline).await
}

/// Runs `future` until `deadline`; `Err(Elapsed)` if the deadline passed first.
pub async fn timeout_at<F: Future>(deadline: Instant, future: F) -> Result<F::Output, Elapsed> {
    // madsim has no `timeout_at`; on tokio both forms are the same timer.
    time::timeout(deadline.saturating_duration_since(now()), future)
        .await
        .map_err(|_| Elapsed)
}

/// Runs `future` for at most `duration`; `Err(Elapsed)` if it did not finish.
pub async fn timeout<F: Future>(duration: Duration, future: F) -> Result<F::Output, Elapsed> {
    time::timeout(duration, future).await.map_err(|_| Elapsed)
}

/// A deadline passed before the future finished.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Elapsed;

/// Deadline arithmetic that never overflows: a duration too large for the clock saturates to
/// "far in the future" (about 30 years), which no test or simulation reaches.
pub fn deadline_after(duration: Duration) -> Instant {
    const FAR: Duration = Duration::from_secs(30 * 365 * 24 * 3600);
    let start = now();
    start.checked_add(duration.min(FAR)).unwrap_or(start + FAR)
}

#[cfg(all(test, not(madsim)))]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU32, Ordering};

    /// Counts ticks every millisecond, forever, in a grandchild task.
    async fn ticker(ticks: Arc<AtomicU32>) {
        spawn(async move {
            loop {
                sleep(Duration::from_millis(1)).await;
                ticks.fetch_add(1, Ordering::SeqCst);
            }
        })
        .await
        .expect("the ticker runs until killed");
    }

    #[tokio::test(start_paused = true)]
    async fn killing_a_host_stops_every_task_it_spawned_at_any_depth() {
        let (host, other) = (Host::new(), Host::new());
        let (in_host, in_other) = (Arc::new(AtomicU32::new(0)), Arc::new(AtomicU32::new(0)));
        let root = host.spawn(ticker(in_host.clone()));
        other.spawn(ticker(in_other.clone()));
        sleep(Duration::from_millis(10)).await;
        assert!(
            in_host.load(Ordering::SeqCst) >= 9,
            "the host's grandchild ran"
        );
        host.kill();
        assert!(host.is_killed() && !other.is_killed());
        let at_kill = in_host.load(Ordering::SeqCst);
        sleep(Duration::from_millis(10)).await;
        assert_eq!(
            in_host.load(Ordering::SeqCst),
            at_kill,
            "nothing of the host runs on"
        );
        assert!(
            in_other.load(Ordering::SeqCst) >= 19,
            "another host is untouched"
        );
        assert!(!root.is_finished(), "a killed task never completes");
        let late = host.spawn(async { 1 });
        sleep(Duration::from_millis(1)).await;
        assert!(!late.is_finished(), "a killed host runs no new task");
        let free = spawn(async { 2 }).await.expect("outside every host");
        assert_eq!(free, 2);
    }

    /// Sets its flag when dropped.
    struct DropFlag(Arc<AtomicU32>);

    impl Drop for DropFlag {
        fn drop(&mut self) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_killed_host_drops_what_its_tasks_held() {
        let host = Host::new();
        let dropped = Arc::new(AtomicU32::new(0));
        let held = DropFlag(dropped.clone());
        host.spawn(async move {
            let _held = held;
            std::future::pending::<()>().await;
        });
        sleep(Duration::from_millis(1)).await;
        assert_eq!(
            dropped.load(Ordering::SeqCst),
            0,
            "held while the host lives"
        );
        host.kill();
        sleep(Duration::from_millis(1)).await;
        assert_eq!(
            dropped.load(Ordering::SeqCst),
            1,
            "released when the host dies"
        );
    }
}

//! Coverage goals: the interesting states a world's workload must reach ("sometimes"
//! assertions).
//!
//! An invariant that is never put to the test proves nothing: a drain barrier checked in runs
//! where reads never fill the pool, or a durability check after crashes that never tore an
//! unsynced sector, passes vacuously. Each world declares its goals (`World::GOALS`); the code
//! marks a goal where the state occurs ([`reach`]); `sim explore` counts, per goal, the seeds
//! that reached it, and fails naming any goal of an explored world that no seed reached
//! (from [`MIN_SEEDS`] seeds per scenario on: fewer seeds prove nothing either way).

use std::cell::RefCell;
use std::collections::BTreeSet;

use strum::{IntoStaticStr, VariantArray};

/// Seeds per scenario from which a goal nobody reached fails the exploration.
pub const MIN_SEEDS: u64 = 100;

/// An interesting state a workload must reach.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, IntoStaticStr, VariantArray)]
#[strum(serialize_all = "kebab-case")]
pub enum Goal {
    /// 64 barrier-gated reads ran at the backend at once (the read permits' cap).
    ReadsAtCap,
    /// A write started at the backend after the read pool had been full since the last write:
    /// the drain barrier emptied a full pool.
    WriteDrainedFullPool,
    /// 8 stream producers ran at the backend at once (the stream permits' cap).
    StreamsAtCap,
    /// A stream ended with exactly `max_logs` logs and no error.
    StreamEndedAtMaxLogs,
    /// A backend operation ran out of its deadline mid-work.
    DeadlineExpiredMidWork,
    /// A write whose outcome the caller could not know was found applied.
    IndeterminateWriteApplied,
    /// At least two writes waited behind the handle's one write permit (three writes that
    /// take it in flight at once).
    #[strum(serialize = "writes-queued-at-write-permit")]
    WritesQueuedAtPermit,
    /// An append and a truncate or drain were in flight at once (from different writers).
    AppendRacedRemoval,
    /// Blocks of a removal that failed yet took effect were read back.
    RemovedBlocksReadBack,
    /// Shutdown while operations were in flight.
    ShutdownWithOpsInFlight,
    /// A crash while the disk held unsynced writes (lost or torn).
    CrashWithUnsyncedWrites,
    /// An open of the store failed and was retried.
    OpenRetried,
    /// The IO worker crashed with requests in flight at its backend.
    WorkerCrashWithRequestsInFlight,
    /// The remote client gave up on a request the worker never answered.
    RemoteRequestReleasedUnanswered,
    /// The IO worker refused a write of a connection its client had replaced (the fence).
    FencedWriteRefused,
    /// A GetAt exactly at a revision where its key changed.
    GetAtOnChangeRevision,
    /// ForgetPast cut exactly at the tail (a no-op that must change nothing).
    ForgetPastAtTail,
    /// A slice whose lower bound is a revision where a tracked key changed.
    SliceBoundOnChangeRevision,
    /// A header read answered by the cache (a cache that stops serving fails nothing else).
    HeaderCacheHit,
    /// A transaction read answered by the cache.
    TransactionCacheHit,
    /// A receipt read answered by the cache.
    ReceiptCacheHit,
    /// A ΔBtail query on a key whose rebuild another caller had started waited for it.
    QueryJoinedRebuild,
}

impl Goal {
    /// Every goal.
    pub const ALL: &'static [Goal] = <Goal as VariantArray>::VARIANTS;

    /// The stable name printed in reports and JSON.
    pub fn name(self) -> &'static str {
        self.into()
    }
}

/// The goals every engine world's workload reaches, then the world's own `$goal`s: a world's
/// `World::GOALS`.
macro_rules! engine_goals {
    ($($goal:ident),*) => {
        &[
            Goal::ReadsAtCap,
            Goal::StreamsAtCap,
            Goal::StreamEndedAtMaxLogs,
            Goal::IndeterminateWriteApplied,
            Goal::ShutdownWithOpsInFlight,
            Goal::WritesQueuedAtPermit,
            Goal::AppendRacedRemoval,
            Goal::HeaderCacheHit,
            Goal::TransactionCacheHit,
            Goal::ReceiptCacheHit,
            $(Goal::$goal),*
        ]
    };
}
pub(crate) use engine_goals;

thread_local! {
    /// The goals this thread's run has reached so far.
    static REACHED: RefCell<BTreeSet<Goal>> = const { RefCell::new(BTreeSet::new()) };
}

/// Marks `goal` reached by the run on this thread.
pub fn reach(goal: Goal) {
    REACHED.with(|r| r.borrow_mut().insert(goal));
}

/// Starts counting for a run on this thread.
pub fn start() {
    REACHED.with(|r| r.borrow_mut().clear());
}

/// The goals the run on this thread reached, in order.
pub fn finish() -> Vec<Goal> {
    REACHED.with(|r| std::mem::take(&mut *r.borrow_mut()).into_iter().collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Goal names appear in the coverage table and the JSON summary.
    #[test]
    fn goal_names_are_pinned() {
        let names: Vec<&str> = Goal::ALL.iter().map(|g| g.name()).collect();
        assert_eq!(
            names.join(" "),
            "reads-at-cap write-drained-full-pool streams-at-cap stream-ended-at-max-logs \
             deadline-expired-mid-work indeterminate-write-applied writes-queued-at-write-permit \
             append-raced-removal removed-blocks-read-back shutdown-with-ops-in-flight \
             crash-with-unsynced-writes open-retried worker-crash-with-requests-in-flight \
             remote-request-released-unanswered fenced-write-refused get-at-on-change-revision \
             forget-past-at-tail slice-bound-on-change-revision header-cache-hit \
             transaction-cache-hit receipt-cache-hit query-joined-rebuild"
        );
    }
}

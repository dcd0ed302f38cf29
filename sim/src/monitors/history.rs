//! The recorded history of an engine run, checked for linearizability against the block-store
//! model by [`crate::monitors::linearizability`].
//!
//! **Recording.** A client calls [`History::invoke`] right before it calls the handle (or the
//! store directly) and `answer_*` right after, in the same task with no await between, so the
//! history's logical clock (one tick per event) orders invocations and responses as they
//! really happened; simulated time alone ties constantly on the paused clock. A write's answer
//! is classified once ([`Fate`]): a success or an `InvalidInput` refusal is known; a
//! `TaskTerminated` refusal changed nothing; `DeadlineExceeded` claims it rolled back, so it
//! may never take effect; anything else (`Indeterminate`, an I/O error, an abandoned call) is
//! unknown, and stays open until its writer saw it *settle* ([`History::settle`]: it can no
//! longer take effect) or a crash cut it ([`History::cut`]). The writes in flight are the
//! entries still open.
//!
//! **Checking.** [`History::check`] checks what was recorded since the last check, from where
//! that one left things; it is called at the end of a run, and after every restart of an
//! in-process store (a point where nothing is in flight). A check that runs out of budget
//! makes the history *inconclusive*: counted, never a pass, and the rest is not checked.
//!
//! **The tracking model** ([`History::current`]) is the harness's guess of the store's state,
//! from which clients instantiate their next ops (appends above the latest block, reads of
//! stored blocks): acknowledged writes in response order, unknown ones as the store's tip
//! suggests, and after a restart the state the check found. It is never an expectation; racing
//! writers make it wrong now and then, which only yields refused writes, legitimate outcomes the
//! check judges like any other.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::{Arc, Mutex};

use engine::{B256, ColdStorageError, HeaderSpecifier, ReceiptSpecifier, TransactionSpecifier};
use model::block_store::BlockStoreModel;
use model::ops::{Op, Outcome, apply_model};

use crate::monitors::linearizability::{
    Checker, Cost, Effect, End, Entry, STEP_BUDGET, Time, Verdict, Via,
};
use crate::monitors::{Invariant, Monitor, Sink, Violation};
use crate::report::RunStats;
use crate::{lock, trace};

/// What the store shows about its newest block: enough to tell a write's two outcomes apart.
pub type Tip = (Option<u64>, Option<B256>);

/// The tip of a model state.
pub fn tip_of(model: &BlockStoreModel) -> Tip {
    let latest = model.get_latest_block();
    (
        latest,
        latest.and_then(|n| model.block(n)).map(|b| b.header.hash()),
    )
}

/// An operation of the history, as returned by [`History::invoke`].
pub type OpId = usize;

/// What a write's answer says about its effect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fate {
    /// Known: it took effect iff it succeeded.
    Known,
    /// Its caller cannot know whether it took effect.
    Unknown,
    /// It says it rolled back (`DeadlineExceeded`): it must not have taken effect.
    RolledBack,
}

/// Block numbers of cacheable reads remembered, for truncates aimed at cached blocks.
const CACHED_REMEMBERED: usize = 8;

/// The checker's figures for one run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HistoryStats {
    /// Histories checked (one per engine run).
    pub histories: u64,
    /// Operations recorded.
    pub operations: u64,
    /// What the search cost.
    pub cost: Cost,
    /// Histories whose check ran out of budget.
    pub inconclusive: u64,
}

/// The history of one run.
#[derive(Debug)]
pub struct History {
    entries: Vec<Entry>,
    clock: Time,
    /// Write calls in progress (invoked, not answered), for the race coverage goals.
    calls: BTreeMap<OpId, Op>,
    tracking: BlockStoreModel,
    /// Entries before it are checked, and may have left the store in any of `ends`.
    checked: usize,
    ends: Vec<End>,
    checker: Checker,
    inconclusive: Option<String>,
    /// Every block number an append ever named: what a read-back of the store reads.
    appended: BTreeSet<u64>,
    /// Blocks cacheable reads answered lately.
    cached: VecDeque<u64>,
}

impl Default for History {
    fn default() -> History {
        History::new()
    }
}

impl History {
    /// An empty store, nothing recorded.
    pub fn new() -> History {
        History::with_budget(STEP_BUDGET)
    }

    /// An empty history whose checks may expand `budget` configurations in all.
    pub fn with_budget(budget: u64) -> History {
        History {
            entries: Vec::new(),
            clock: 0,
            calls: BTreeMap::new(),
            tracking: BlockStoreModel::new(),
            checked: 0,
            ends: vec![End::empty()],
            checker: Checker::new(budget),
            inconclusive: None,
            appended: BTreeSet::new(),
            cached: VecDeque::new(),
        }
    }

    /// The tracking model: the harness's guess of the store, to instantiate ops from (see the
    /// module docs); never an expectation.
    pub fn current(&self) -> &BlockStoreModel {
        &self.tracking
    }

    fn tick(&mut self) -> Time {
        self.clock += 1;
        self.clock
    }

    /// Records the invocation of `op` by `who`, now.
    pub fn invoke(&mut self, who: &str, op: &Op) -> OpId {
        let call = self.tick();
        let id = self.entries.len();
        match op {
            Op::AppendBlock(b) => drop(self.appended.insert(b.number())),
            Op::AppendBlocks(bs) => self.appended.extend(bs.iter().map(|b| b.number())),
            _ => {}
        }
        if op.is_write() {
            self.calls.insert(id, op.clone());
        }
        self.entries.push(Entry {
            who: who.to_string(),
            call,
            ret: None,
            // A write in flight may take effect; a read constrains nothing until answered.
            effect: op.is_write().then(|| Effect::MaybeWrite(op.clone())),
            at: (trace::now(), None),
        });
        id
    }

    /// Records the answer of read `op` (`None`: its caller abandoned it), now.
    pub fn answer_read(&mut self, id: OpId, op: Op, outcome: Option<Outcome>, via: Via) {
        let ret = self.tick();
        let Some(outcome) = outcome.filter(is_checkable) else {
            return;
        };
        if via == Via::Handle {
            self.remember_cached(&op, &outcome);
        }
        let entry = &mut self.entries[id];
        entry.ret = Some(ret);
        entry.at.1 = Some(trace::now());
        entry.effect = Some(Effect::Read { op, outcome, via });
    }

    /// Records reads of the whole store made at one moment (see [`Effect::Snapshot`]).
    pub fn answer_snapshot(&mut self, id: OpId, reads: Vec<(Op, Outcome)>) {
        let ret = self.tick();
        let entry = &mut self.entries[id];
        entry.ret = Some(ret);
        entry.effect = Some(Effect::Snapshot(reads));
    }

    /// Records the answer of write `id` (`None`: its caller abandoned it), now; an
    /// acknowledged write moves the tracking model.
    pub fn answer_write(&mut self, id: OpId, outcome: Option<&Outcome>) -> Fate {
        let ret = self.tick();
        let Some(op) = self.calls.remove(&id) else {
            return Fate::Unknown;
        };
        let fate = fate(outcome);
        let entry = &mut self.entries[id];
        match (fate, outcome) {
            (Fate::Unknown, _) | (_, None) => return fate,
            (Fate::RolledBack, _) => entry.effect = Some(Effect::RolledBack(op)),
            // Refused before it ran: it constrains nothing.
            (Fate::Known, Some(answer))
                if outcome_error(answer) == Some(&ColdStorageError::TaskTerminated) =>
            {
                entry.effect = None;
            }
            (Fate::Known, Some(answer)) => {
                if outcome_error(answer).is_none() {
                    let _ = apply_model(&mut self.tracking, &op);
                }
                entry.effect = Some(Effect::Write {
                    op,
                    answer: answer.clone(),
                });
            }
        }
        entry.ret = Some(ret);
        fate
    }

    /// Closes the window of unknown write `id`: it can no longer take effect.
    pub fn settle(&mut self, id: OpId) {
        let now = self.tick();
        let entry = &mut self.entries[id];
        if entry.ret.is_none() && matches!(entry.effect, Some(Effect::MaybeWrite(_))) {
            entry.ret = Some(now);
        }
    }

    /// A crash: every write still in flight took effect before now or never will.
    pub fn cut(&mut self) {
        let now = self.tick();
        self.calls.clear();
        for entry in &mut self.entries {
            if entry.ret.is_none() && matches!(entry.effect, Some(Effect::MaybeWrite(_))) {
                entry.ret = Some(now);
            }
        }
    }

    /// Writes whose calls are in progress.
    pub fn writes_in_call(&self) -> impl Iterator<Item = &Op> {
        self.calls.values()
    }

    /// Moves the tracking model after an unknown write `op` as the store's `tip` suggests;
    /// whether it looks applied.
    pub fn guess(&mut self, op: &Op, tip: Tip) -> bool {
        let mut applied = self.tracking.clone();
        let accepted = !matches!(
            apply_model(&mut applied, op),
            Outcome::Done(Err(_)) | Outcome::Drained(Err(_))
        );
        let looks_applied = accepted && tip_of(&applied) == tip && tip_of(&self.tracking) != tip;
        if looks_applied {
            self.tracking = applied;
        }
        looks_applied
    }

    /// Every block number an append named so far.
    pub fn appended(&self) -> Vec<u64> {
        self.appended.iter().copied().collect()
    }

    /// Blocks cacheable reads answered lately (the cache may hold them).
    pub fn cached(&self) -> Vec<u64> {
        self.cached.iter().copied().collect()
    }

    fn remember_cached(&mut self, op: &Op, outcome: &Outcome) {
        let block = match op {
            Op::GetHeader(HeaderSpecifier::Number(n)) => *n,
            Op::GetTransaction(TransactionSpecifier::BlockAndIndex { block, .. }) => *block,
            Op::GetReceipt(ReceiptSpecifier::BlockAndIndex { block, .. }) => *block,
            _ => return,
        };
        let found = matches!(
            outcome,
            Outcome::Header(Ok(Some(_)))
                | Outcome::Transaction(Ok(Some(_)))
                | Outcome::Receipt(Ok(Some(_)))
        );
        if found && !self.cached.contains(&block) {
            if self.cached.len() == CACHED_REMEMBERED {
                self.cached.pop_front();
            }
            self.cached.push_back(block);
        }
    }

    /// Checks everything recorded since the last check (see the module docs). With `more`,
    /// recording goes on (after a restart): every state the history may have left the store
    /// in is kept for the next check, and the tracking model becomes one of them.
    pub fn check(&mut self, more: bool) -> Result<(), Violation> {
        if self.inconclusive.is_some() {
            return Ok(());
        }
        let ends = std::mem::take(&mut self.ends);
        match self.checker.check(&self.entries, self.checked, ends, more) {
            Verdict::Linearizable(ends) => {
                self.checked = self.entries.len();
                self.tracking = ends[0].state.clone();
                self.ends = ends;
                Ok(())
            }
            Verdict::Violation(v) => Err(v),
            Verdict::Inconclusive(why) => {
                self.inconclusive = Some(why);
                Ok(())
            }
        }
    }

    /// Why the check gave up, if it did.
    pub fn inconclusive(&self) -> Option<&str> {
        self.inconclusive.as_deref()
    }

    /// The checker's figures so far.
    pub fn stats(&self) -> HistoryStats {
        HistoryStats {
            histories: 1,
            operations: self.entries.len() as u64,
            cost: self.checker.cost,
            inconclusive: u64::from(self.inconclusive.is_some()),
        }
    }
}

/// A run's history as a [`Monitor`]: the check at the end of the run (the checks after
/// restarts are the durability monitor's, during the run).
#[derive(Debug, Clone)]
pub struct HistoryMonitor(pub Arc<Mutex<History>>);

impl Monitor for HistoryMonitor {
    fn family(&self) -> &'static str {
        "history"
    }

    fn invariants(&self) -> &'static [Invariant] {
        &[Invariant::History, Invariant::Cache, Invariant::Durability]
    }

    /// Checks what the last check left, unless the run failed already (a run cut short leaves
    /// calls open that no answer will close, and its report starts at the earlier violation).
    fn finish(&self, sink: &Sink, stats: &mut RunStats) {
        let mut history = lock(&self.0);
        if !sink.failed() {
            match history.check(false) {
                Err(v) => sink.violate(v),
                // The search's cost stays out of the trace: a faster search moves no digest.
                Ok(()) => match history.inconclusive() {
                    Some(why) => trace::record("monitor", "history.inconclusive", why),
                    None => {
                        let text = format!("operations={}", history.stats().operations);
                        trace::record("monitor", "history.ok", text);
                    }
                },
            }
        }
        stats.history = history.stats();
    }
}

/// What a write's answer (`None`: abandoned) says about its effect.
pub fn fate(outcome: Option<&Outcome>) -> Fate {
    let Some(outcome) = outcome else {
        return Fate::Unknown;
    };
    match outcome {
        Outcome::Done(Err(ColdStorageError::DeadlineExceeded { .. })) => Fate::RolledBack,
        _ => match outcome_error(outcome) {
            None | Some(ColdStorageError::InvalidInput(_) | ColdStorageError::TaskTerminated) => {
                Fate::Known
            }
            Some(_) => Fate::Unknown,
        },
    }
}

/// The error an outcome carries (a stream's terminal error included), if any.
pub fn outcome_error(outcome: &Outcome) -> Option<&ColdStorageError> {
    match outcome {
        Outcome::Header(r) => r.as_ref().err(),
        Outcome::Headers(r) => r.as_ref().err(),
        Outcome::Transaction(r) => r.as_ref().err(),
        Outcome::Transactions(r) => r.as_ref().err(),
        Outcome::Count(r) => r.as_ref().err(),
        Outcome::Receipt(r) => r.as_ref().err(),
        Outcome::Receipts(r) => r.as_ref().err(),
        Outcome::Latest(r) => r.as_ref().err(),
        Outcome::Logs(r) => r.as_ref().err(),
        Outcome::Stream(r) => r
            .as_ref()
            .err()
            .or_else(|| r.as_ref().ok().and_then(|(_, e)| e.as_ref())),
        Outcome::Done(r) => r.as_ref().err(),
        Outcome::Drained(r) => r.as_ref().err(),
    }
}

/// Errors that say "no answer" rather than giving one: a timeout, shutdown, a failing disk, a
/// stream ended early. They are checked by other monitors (liveness, durability), not here.
fn is_checkable(outcome: &Outcome) -> bool {
    if let Outcome::Stream(Ok(_)) = outcome {
        // Set up fine: whatever it delivered must be (a prefix of) a real answer.
        return true;
    }
    match outcome_error(outcome) {
        None => true,
        Some(e) => matches!(
            e,
            ColdStorageError::TooManyLogs { .. } | ColdStorageError::InvalidInput(_)
        ),
    }
}

#[cfg(test)]
mod tests {
    use engine::InvalidInput;
    use model::ops::block;

    use super::*;

    fn append(n: u64) -> Op {
        Op::AppendBlock(block(n, Vec::new(), Vec::new()))
    }

    fn read_latest(history: &mut History, seen: Option<u64>) {
        let id = history.invoke("reader", &Op::GetLatestBlock);
        let outcome = Outcome::Latest(Ok(seen));
        history.answer_read(id, Op::GetLatestBlock, Some(outcome), Via::Handle);
    }

    #[test]
    fn a_writes_answer_decides_what_is_known_of_its_effect() {
        let done = |r| Some(Outcome::Done(r));
        let invalid = ColdStorageError::InvalidInput(InvalidInput::EmptyBatch);
        let deadline = ColdStorageError::DeadlineExceeded {
            timeout: std::time::Duration::from_millis(1),
        };
        assert_eq!(fate(done(Ok(())).as_ref()), Fate::Known);
        assert_eq!(fate(done(Err(invalid)).as_ref()), Fate::Known);
        assert_eq!(
            fate(done(Err(ColdStorageError::TaskTerminated)).as_ref()),
            Fate::Known
        );
        assert_eq!(fate(done(Err(deadline.clone())).as_ref()), Fate::RolledBack);
        // A drain's deadline makes no such claim.
        let drained = Some(Outcome::Drained(Err(deadline)));
        assert_eq!(fate(drained.as_ref()), Fate::Unknown);
        assert_eq!(fate(None), Fate::Unknown);
    }

    #[test]
    fn an_acknowledged_write_moves_the_tracking_model_and_is_checked() {
        let mut history = History::new();
        let id = history.invoke("writer", &append(1));
        assert_eq!(history.writes_in_call().count(), 1);
        let fate = history.answer_write(id, Some(&Outcome::Done(Ok(()))));
        assert_eq!((fate, history.writes_in_call().count()), (Fate::Known, 0));
        assert_eq!(history.current().get_latest_block(), Some(1));
        read_latest(&mut history, Some(1));
        assert!(history.check(true).is_ok());
        read_latest(&mut history, None);
        let violation = history.check(true).expect_err("block 1 cannot vanish");
        assert_eq!(violation.invariant, crate::monitors::Invariant::History);
    }

    #[test]
    fn the_end_of_run_check_reports_a_broken_history_once_nothing_else_failed() {
        let broken = || {
            let mut history = History::new();
            let id = history.invoke("writer", &append(1));
            history.answer_write(id, Some(&Outcome::Done(Ok(()))));
            read_latest(&mut history, None);
            HistoryMonitor(Arc::new(Mutex::new(history)))
        };
        let (sink, mut stats) = (Sink::default(), RunStats::default());
        let monitor = broken();
        monitor.finish(&sink, &mut stats);
        let seen = sink.first().map(|v| v.invariant);
        assert_eq!(seen, Some(Invariant::History));
        assert!(monitor.invariants().contains(&Invariant::History));
        assert_eq!(stats.history.operations, 2);
        // A run that failed earlier is not checked again: its report starts there.
        let failed = Sink::default();
        failed.violate(Violation::new(Invariant::Liveness, "earlier"));
        broken().finish(&failed, &mut stats);
        assert_eq!(
            failed.first().map(|v| v.invariant),
            Some(Invariant::Liveness)
        );
    }

    #[test]
    fn a_crash_cuts_the_writes_in_flight_which_may_or_may_not_have_landed() {
        for landed in [None, Some(1)] {
            let mut history = History::new();
            let id = history.invoke("writer", &append(1));
            assert_eq!(history.answer_write(id, None), Fate::Unknown);
            history.cut();
            read_latest(&mut history, landed);
            assert!(history.check(true).is_ok());
            // Cut before the read: it did not land later.
            read_latest(&mut history, landed);
            assert!(history.check(true).is_ok());
        }
        let mut history = History::new();
        let id = history.invoke("writer", &append(1));
        history.answer_write(id, None);
        history.cut();
        read_latest(&mut history, None);
        read_latest(&mut history, Some(1));
        assert!(
            history.check(true).is_err(),
            "it landed after the crash cut it"
        );
    }

    #[test]
    fn an_exhausted_budget_makes_the_history_inconclusive_not_passed() {
        let mut history = History::with_budget(2);
        for n in 1..=5 {
            let id = history.invoke("writer", &append(n));
            history.answer_write(id, None);
        }
        read_latest(&mut history, Some(5));
        assert!(history.check(true).is_ok());
        assert!(history.inconclusive().is_some());
        assert_eq!(history.stats().inconclusive, 1);
        assert!(History::new().check(false).is_ok());
    }
}

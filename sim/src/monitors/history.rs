//! The recorded history of an engine run and its check against the block-store model.
//!
//! Writes come from one writer client and the handle runs one write at a time, so the backend
//! sees them in the writer's order. The history keeps `states[k]`, the model after the first
//! `k` writes that reached the backend. A read records the backend write counts at its
//! invocation (`finished`) and at its response (`started`): it is correct iff its answer equals
//! the model's answer in some state `k` with `finished ≤ k ≤ started` — linearizability for a
//! single-writer register of blocks. The cache monitor is this check applied to reads the
//! cache answered: a cached value must have existed at some point of the read's interval.
//!
//! A write whose outcome is not certain (the handle said `Indeterminate`, the backend failed
//! with an I/O error, the caller abandoned it, a crash interrupted it) is *maybe-applied*: the
//! writer resolves it against the backend itself (never through the handle) before issuing
//! the next write, and the history records whichever state the store shows, checking that it
//! is one of the two possible ones. A write that reported `DeadlineExceeded` claims it rolled
//! back; resolution checks that claim too.

use engine::{B256, ColdStorageError};
use model::block_store::BlockStoreModel;
use model::ops::{Op, Outcome, apply_model};

use crate::monitors::{Invariant, Violation};

/// One read and what it saw.
#[derive(Debug, Clone)]
struct ReadRecord {
    client: u32,
    op: Op,
    outcome: Outcome,
    /// Backend writes finished when the read was invoked.
    finished_at_invocation: u64,
    /// Backend writes started when the read returned.
    started_at_response: u64,
}

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

/// The history of one run.
#[derive(Debug)]
pub struct History {
    states: Vec<BlockStoreModel>,
    reads: Vec<ReadRecord>,
}

impl Default for History {
    fn default() -> History {
        History::new()
    }
}

impl History {
    /// An empty store.
    pub fn new() -> History {
        History {
            states: vec![BlockStoreModel::new()],
            reads: Vec::new(),
        }
    }

    /// The current model state (after every write so far).
    pub fn current(&self) -> &BlockStoreModel {
        self.states
            .last()
            .expect("there is always an initial state")
    }

    /// Writes that reached the backend so far.
    pub fn writes(&self) -> u64 {
        self.states.len() as u64 - 1
    }

    /// What the model says `op` answers now, and the state it leaves.
    pub fn expect(&self, op: &Op) -> (Outcome, BlockStoreModel) {
        let mut next = self.current().clone();
        let outcome = apply_model(&mut next, op);
        (outcome, next)
    }

    /// Records a write whose outcome is known. `reached_backend` says whether the backend ran
    /// it (the probe's count moved); `observed` is what the handle answered.
    pub fn record_write(
        &mut self,
        op: &Op,
        observed: &Outcome,
        reached_backend: bool,
    ) -> Result<(), Violation> {
        let (expected, next) = self.expect(op);
        let ok = outcome_is_ok(observed);
        if ok && !outcome_is_ok(&expected) {
            return Err(Violation::new(
                Invariant::History,
                format!(
                    "{} succeeded but the model refuses it: {expected:?}",
                    op.kind().name()
                ),
            ));
        }
        if ok && *observed != expected {
            return Err(Violation::new(
                Invariant::History,
                format!(
                    "{} answered {observed:?}, model {expected:?}",
                    op.kind().name()
                ),
            ));
        }
        if let Some(error) = outcome_error(observed)
            && matches!(error, ColdStorageError::InvalidInput(_))
            && outcome_error(&expected) != Some(error)
        {
            return Err(Violation::new(
                Invariant::History,
                format!(
                    "{} refused as {error:?}; model {expected:?}",
                    op.kind().name()
                ),
            ));
        }
        if reached_backend {
            // A refused or failed write leaves the state as it was.
            let state = if ok { next } else { self.current().clone() };
            self.states.push(state);
        }
        Ok(())
    }

    /// Records a maybe-applied write once the store's tip is known: the state becomes the one
    /// that matches. `claims_rolled_back` is set when the write said `DeadlineExceeded`.
    pub fn resolve_write(
        &mut self,
        op: &Op,
        store: Tip,
        claims_rolled_back: bool,
    ) -> Result<bool, Violation> {
        let (expected, applied) = self.expect(op);
        let unchanged = self.current().clone();
        let applied_matches = outcome_is_ok(&expected) && tip_of(&applied) == store;
        let unchanged_matches = tip_of(&unchanged) == store;
        let (state, was_applied) = match (applied_matches, unchanged_matches) {
            // A no-op write: both outcomes look alike and are alike.
            (true, true) => (unchanged, false),
            (true, false) => (applied, true),
            (false, true) => (unchanged, false),
            (false, false) => {
                return Err(Violation::new(
                    Invariant::History,
                    format!(
                        "after maybe-applied {} the store's tip is {store:?}: neither {:?} (applied) nor {:?} (not applied)",
                        op.kind().name(),
                        tip_of(&applied),
                        tip_of(&unchanged)
                    ),
                ));
            }
        };
        if was_applied && claims_rolled_back {
            return Err(Violation::new(
                Invariant::History,
                format!(
                    "{} reported DeadlineExceeded (rolled back) but was applied",
                    op.kind().name()
                ),
            ));
        }
        self.states.push(state);
        Ok(was_applied)
    }

    /// Records a read for the final check.
    pub fn record_read(
        &mut self,
        client: u32,
        op: Op,
        outcome: Outcome,
        finished_at_invocation: u64,
        started_at_response: u64,
    ) {
        self.reads.push(ReadRecord {
            client,
            op,
            outcome,
            finished_at_invocation,
            started_at_response,
        });
    }

    /// Checks every recorded read against the states of its interval.
    pub fn check_reads(&self) -> Result<u64, Violation> {
        let mut checked = 0u64;
        for read in &self.reads {
            if !is_checkable(&read.outcome) {
                continue;
            }
            checked += 1;
            let lo = read.finished_at_invocation as usize;
            let hi = (read.started_at_response as usize).min(self.states.len() - 1);
            let matches = (lo..=hi).any(|k| {
                let mut state = self.states[k].clone();
                outcomes_agree(&apply_model(&mut state, &read.op), &read.outcome)
            });
            if !matches {
                let expected = {
                    let mut state = self.states[hi.min(self.states.len() - 1)].clone();
                    apply_model(&mut state, &read.op)
                };
                let invariant = if is_cacheable(&read.op) {
                    Invariant::Cache
                } else {
                    Invariant::History
                };
                return Err(Violation::new(
                    invariant,
                    format!(
                        "client {} {:?} answered {} but no store state between writes {lo} and {hi} gives that (latest state gives {})",
                        read.client,
                        read.op,
                        short(&read.outcome),
                        short(&expected)
                    ),
                ));
            }
        }
        Ok(checked)
    }
}

/// Reads the cache may answer: a wrong answer there is reported as a cache violation.
fn is_cacheable(op: &Op) -> bool {
    use engine::{HeaderSpecifier, ReceiptSpecifier, TransactionSpecifier};
    matches!(
        op,
        Op::GetHeader(HeaderSpecifier::Number(_))
            | Op::GetTransaction(TransactionSpecifier::BlockAndIndex { .. })
            | Op::GetReceipt(ReceiptSpecifier::BlockAndIndex { .. })
    )
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

fn outcome_is_ok(outcome: &Outcome) -> bool {
    outcome_error(outcome).is_none()
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

/// Whether an observed outcome is one the model's outcome allows. A stream that ended early
/// (deadline, reorg) must have delivered a prefix of the model's items.
fn outcomes_agree(expected: &Outcome, observed: &Outcome) -> bool {
    if let (Outcome::Stream(Ok((want, want_err))), Outcome::Stream(Ok((got, got_err)))) =
        (expected, observed)
    {
        return match got_err {
            Some(ColdStorageError::TooManyLogs { .. }) | None => got == want && got_err == want_err,
            Some(_) => want.starts_with(got),
        };
    }
    expected == observed
}

fn short(outcome: &Outcome) -> String {
    let text = format!("{outcome:?}");
    if text.len() > 300 {
        format!(
            "{}…",
            &text[..text.char_indices().nth(300).map_or(text.len(), |(i, _)| i)]
        )
    } else {
        text
    }
}

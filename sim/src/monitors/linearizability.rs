//! Linearizability of an engine run's history against the block-store model.
//!
//! **The question.** Clients call the handle concurrently: several writers (appends, truncates,
//! drains), readers of every kind, and the harness's own reads of the store. Each call is an
//! *operation* with an invocation and a response on a logical clock (one tick per recorded
//! event of the run, so no two events tie, where simulated time often does). The history is
//! linearizable when one sequence of its operations (1) respects real time: an operation that
//! responded before another was invoked comes first, and (2) is a legal run of the sequential
//! specification, the block-store model (`model::ops::apply_model` on `BlockStoreModel`, which
//! shares no code with the engine): every answer is the model's answer in the state where the
//! operation sits.
//!
//! **Unknown outcomes.** A write whose outcome its caller could not learn (the handle said
//! `Indeterminate`, an I/O error, the caller abandoned it, a crash cut it) took effect once,
//! anywhere in its window, or not at all: the model decides, at the point where it is placed,
//! whether it applies (a racing writer may have made it a refused, non-contiguous append). Its
//! window closes where the harness established it can no longer take effect: when it settled
//! (no write running at the backend any more), at the crash that cut it, or never (open, as
//! Porcupine treats an operation without response). A write that answered `DeadlineExceeded`
//! claims it rolled back: it may not take effect at all.
//!
//! **The search** (Wing & Gong's, with Lowe's memoisation, as Porcupine runs it): depth first
//! over the operations that may come next, those invoked before the earliest response among
//! the operations not yet placed. A write with a known answer is placed where the model gives
//! that answer; an unknown one is placed applied, or skipped. A memo of (operations placed,
//! model state) prunes every configuration already explored. Two refinements keep it small:
//! - *Reads are placed greedily*: a read that may come next and agrees with the current state
//!   is placed at once, without branching. No linearization is lost: a read changes no state,
//!   and every operation that must precede it is placed already, so moving it forward to this
//!   point keeps every real-time constraint.
//! - *P-compositionality*: the history is cut before every write invoked after every earlier
//!   write closed. Each write left of a cut closed before each write right of it was invoked,
//!   so every linearization places all left writes first: the states the left part may end in
//!   are all the right part may start from. Each part is searched alone, exhaustively, and
//!   hands on the set of its end states. A read whose window spans a cut may sit on either
//!   side: the left part places it if it can, otherwise it is *carried* into the next part,
//!   with the end state, as an operation that may come first. With one writer, every write is
//!   a part of its own.
//!
//! **Cost** is bounded: the search expands at most its budget of configurations per history
//! and carries at most [`MAX_ENDS`] end states across a cut; beyond either it gives up and the
//! history is *inconclusive*, which is counted and reported, never taken for a pass.

use std::collections::BTreeSet;
use std::collections::HashMap; // det-ok: lookups only, never iterated
use std::collections::HashSet; // det-ok: lookups only, never iterated
use std::hash::{BuildHasherDefault, DefaultHasher, Hash, Hasher};

use std::time::Duration;

use engine::ColdStorageError;
use model::block_store::BlockStoreModel;
use model::ops::{Op, Outcome, apply_model, read_model};

use crate::monitors::{Invariant, ReadMismatch, Violation};

/// A point on the run's logical clock.
pub type Time = u64;

/// Configurations one history may expand before it is inconclusive.
pub const STEP_BUDGET: u64 = 100_000;

/// End states one part may hand on before the history is inconclusive.
pub const MAX_ENDS: usize = 256;

/// A hash map with a fixed hasher, for lookups only (never iterated).
type FixedMap<K, V> = HashMap<K, V, BuildHasherDefault<DefaultHasher>>; // det-ok: lookups only
/// A hash set with a fixed hasher, for lookups only (never iterated).
type FixedSet<K> = HashSet<K, BuildHasherDefault<DefaultHasher>>; // det-ok: lookups only

/// Where a read was answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    /// Through the handle (perhaps by its cache).
    Handle,
    /// Directly by the store, around the handle.
    Store,
}

/// What an operation did, as the checker sees it.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    /// A read and its answer.
    Read {
        /// The read.
        op: Op,
        /// Its answer.
        outcome: Outcome,
        /// Where it was answered.
        via: Via,
    },
    /// Reads of the store at one moment, which must all agree with one state: the whole store
    /// read back after a restart (the durability check).
    Snapshot(Vec<(Op, Outcome)>),
    /// A write with a known answer (success, or an `InvalidInput` refusal).
    Write {
        /// The write.
        op: Op,
        /// Its answer.
        answer: Outcome,
    },
    /// A write whose outcome is unknown.
    MaybeWrite(Op),
    /// A write that claims it rolled back (`DeadlineExceeded`): it must never take effect.
    RolledBack(Op),
}

/// One operation of the history.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    /// Who issued it (`writer-1`, `client-3`, `store`), for reports.
    pub who: String,
    /// Its invocation.
    pub call: Time,
    /// Its response (or, for an unknown write, where its window closed); `None`: open.
    pub ret: Option<Time>,
    /// What it did; `None` for an operation that constrains nothing (a read that was
    /// abandoned or answered with an error that carries no answer).
    pub effect: Option<Effect>,
    /// Its invocation and response in simulated time, for reports (the response's `None`:
    /// open).
    pub at: (Duration, Option<Duration>),
}

impl Entry {
    fn is_write(&self) -> bool {
        matches!(
            self.effect,
            Some(Effect::Write { .. } | Effect::MaybeWrite(_))
        )
    }

    fn ret_or_open(&self) -> Time {
        self.ret.unwrap_or(Time::MAX)
    }
}

/// Where a checked prefix of the history may have left things: a model state, and the reads
/// carried past the last cut (indices into the history).
#[derive(Debug, Clone, PartialEq)]
pub struct End {
    /// The model state.
    pub state: BlockStoreModel,
    /// Reads not yet placed whose windows reach past the cut.
    pub carried: Vec<usize>,
}

impl End {
    /// The start of a run: an empty store, nothing carried.
    pub fn empty() -> End {
        End {
            state: BlockStoreModel::new(),
            carried: Vec::new(),
        }
    }
}

/// What the search cost.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Cost {
    /// Parts searched (cuts plus one, per checked stretch).
    pub parts: u64,
    /// Configurations expanded.
    pub steps: u64,
    /// Configurations expanded by the largest part.
    pub max_part_steps: u64,
}

/// The checker's answer for a stretch of history.
#[derive(Debug, Clone)]
pub enum Verdict {
    /// Linearizable; where it may have left things.
    Linearizable(Vec<End>),
    /// Not linearizable.
    Violation(Violation),
    /// The budget ran out: nothing proven either way.
    Inconclusive(String),
}

/// The checker: its budget, and what it has spent.
#[derive(Debug, Clone)]
pub struct Checker {
    budget: u64,
    /// What the searches so far cost.
    pub cost: Cost,
}

impl Checker {
    /// A checker that may expand `budget` configurations in all.
    pub fn new(budget: u64) -> Checker {
        Checker {
            budget,
            cost: Cost::default(),
        }
    }

    /// Checks `entries[from..]` (in invocation order), starting from any of `start`. The
    /// history is taken to end after the last entry: its open operations stay open. With
    /// `hand_on`, every state it may end in is returned, for a check of what comes next;
    /// otherwise one is enough (and the last part's search stops at it).
    pub fn check(
        &mut self,
        entries: &[Entry],
        from: usize,
        start: Vec<End>,
        hand_on: bool,
    ) -> Verdict {
        debug_assert!(entries.windows(2).all(|w| w[0].call < w[1].call));
        let first = start.clone();
        let mut ends = start;
        let parts = parts(entries, from);
        let count = parts.len();
        for (n, part) in parts.into_iter().enumerate() {
            self.cost.parts += 1;
            let left = self.budget.saturating_sub(self.cost.steps);
            let one = !hand_on && n + 1 == count;
            let nothing = BTreeSet::new();
            let (found, steps, _) = search_part(entries, &part, &ends, &nothing, left, one, None);
            self.cost.steps += steps;
            self.cost.max_part_steps = self.cost.max_part_steps.max(steps);
            ends = match found {
                Found::Ends(next) if next.len() > MAX_ENDS => {
                    return self.inconclusive("the end states a part may hand on");
                }
                Found::Ends(next) => next,
                Found::Stuck(stuck, blocking) => {
                    let span = (from, part.last);
                    let (stuck, blamed, excluded) =
                        blame_suspects(entries, span, &first, stuck, blocking);
                    let read = blamed.and_then(|i| mismatch(entries, span, &first, &excluded, i));
                    // Dated when the blamed op answered: a client held the impossible answer
                    // from then on, whenever the check at the end noticed it. So the report's
                    // first violation and the events around it are that op's, and a violation
                    // a monitor reported later is not taken for the first.
                    let at =
                        blamed.map_or(stuck.at, |i| entries[i].at.1.unwrap_or(entries[i].at.0));
                    return Verdict::Violation(Violation {
                        at,
                        read: read.map(Box::new),
                        ..stuck
                    });
                }
                Found::OutOfBudget => return self.inconclusive("the step budget"),
            };
        }
        Verdict::Linearizable(ends)
    }

    fn inconclusive(&self, what: &str) -> Verdict {
        Verdict::Inconclusive(format!(
            "the linearizability search ran out of {what} after {} configurations",
            self.cost.steps
        ))
    }
}

/// Searches `part` from each of `starts` with the operations `excluded` left out: every end
/// state (deduplicated; with `one`, the first found), or why there is none; the
/// configurations it expanded; and the model states in which operation `watch` (an index into
/// the history) could have come next.
fn search_part(
    entries: &[Entry],
    part: &Part,
    starts: &[End],
    excluded: &BTreeSet<usize>,
    budget: u64,
    one: bool,
    watch: Option<usize>,
) -> (Found, u64, Vec<BlockStoreModel>) {
    let mut ends: Vec<End> = Vec::new();
    let mut stuck = None;
    let mut steps = 0;
    let mut seen: Vec<BlockStoreModel> = Vec::new();
    for start in starts {
        if one && !ends.is_empty() {
            break;
        }
        let mut search = Search::new(entries, part, start, excluded, one);
        search.watch = watch.and_then(|w| search.ops.iter().position(|op| op.index == w));
        let found = search.run(budget.saturating_sub(steps));
        steps += search.steps;
        for state in search.seen.iter().map(|&id| &search.states.models[id]) {
            if !seen.contains(state) {
                seen.push(state.clone());
            }
        }
        match found {
            Found::Ends(found) => {
                for end in found {
                    if !ends.contains(&end) {
                        ends.push(end);
                    }
                }
            }
            Found::Stuck(violation, blocking) => {
                stuck = stuck.or(Some((violation, blocking)));
            }
            Found::OutOfBudget => return (Found::OutOfBudget, steps, seen),
        }
    }
    match stuck {
        Some((violation, blocking)) if ends.is_empty() => {
            (Found::Stuck(violation, blocking), steps, seen)
        }
        _ => (Found::Ends(ends), steps, seen),
    }
}

/// Names the invariant a stretch of history with no linearization breaks, by the operations
/// it cannot do without: if leaving out the reads the cache may have answered makes it
/// linearizable, the first of them (by response) that breaks it again is a wrong cache
/// answer; likewise a read-back after a restart shows lost or half-applied data. Otherwise
/// the history's. The stretch is `entries[span.0..span.1]`, from `starts`: a wrong answer
/// in an earlier part can prune the true linearization there and show only later. (The
/// search's own report names the operation the longest linearization it found could not
/// place, which need not be the wrong one: another order may have gone further.)
///
/// Returns the violation, the operation blamed (an index into the history) and the operations
/// left out of the stretch where it is to blame.
fn blame_suspects(
    entries: &[Entry],
    span: (usize, usize),
    starts: &[End],
    stuck: Violation,
    blocking: Option<usize>,
) -> (Violation, Option<usize>, BTreeSet<usize>) {
    let cacheable = |e: &Entry| matches!(&e.effect, Some(Effect::Read { op, via: Via::Handle, .. }) if is_cacheable(op));
    let read_back = |e: &Entry| matches!(e.effect, Some(Effect::Snapshot(_)));
    let suspects: [&dyn Fn(&Entry) -> bool; 2] = [&cacheable, &read_back];
    for is_suspect in suspects {
        let mut ordered: Vec<usize> = (span.0..span.1)
            .filter(|&i| is_suspect(&entries[i]))
            .collect();
        ordered.sort_by_key(|&i| entries[i].ret_or_open());
        // Whether the stretch fails with the first `k` suspects in: more reads, fewer
        // linearizations, so once it fails it fails with every further one.
        let left_out = |k: usize| -> BTreeSet<usize> { ordered[k..].iter().copied().collect() };
        let fails_with = |k: usize| !linearizable(entries, span, starts, &left_out(k));
        if ordered.is_empty() || fails_with(0) {
            continue;
        }
        let (mut passing, mut failing) = (0, ordered.len());
        while failing - passing > 1 {
            let mid = (passing + failing) / 2;
            if fails_with(mid) {
                failing = mid;
            } else {
                passing = mid;
            }
        }
        let blamed = ordered[failing - 1];
        let (invariant, what) = blame(&entries[blamed], None);
        let violation = Violation::new(invariant, format!("not linearizable: {what}"));
        return (violation, Some(blamed), left_out(failing));
    }
    (stuck, blocking, BTreeSet::new())
}

/// For a read to blame (`entries[index]`), what it read and what the model answers in each
/// state in which it could have come next, searching the stretch as the blame did (with
/// `excluded` left out): the checker's own alternatives, for the failure page.
fn mismatch(
    entries: &[Entry],
    span: (usize, usize),
    starts: &[End],
    excluded: &BTreeSet<usize>,
    index: usize,
) -> Option<ReadMismatch> {
    let entry = &entries[index];
    let Some(Effect::Read { op, outcome, .. }) = &entry.effect else {
        return None;
    };
    let mut allowed: Vec<String> = Vec::new();
    for state in search_stretch(entries, span, starts, excluded, Some(index)).1 {
        let answer = read_model(&state, op).map_or_else(String::new, |o| brief(&o));
        if !allowed.contains(&answer) {
            allowed.push(answer);
        }
    }
    Some(ReadMismatch {
        who: entry.who.clone(),
        op: format!("{op:?}"),
        read: brief(outcome),
        allowed,
        invoked: entry.at.0,
        answered: entry.at.1.unwrap_or(entry.at.0),
    })
}

/// Whether `entries[span.0..span.1]` has a linearization from one of `starts`, the operations
/// `excluded` left out (a search out of budget counts as none).
fn linearizable(
    entries: &[Entry],
    span: (usize, usize),
    starts: &[End],
    excluded: &BTreeSet<usize>,
) -> bool {
    search_stretch(entries, span, starts, excluded, None).0
}

/// Searches `entries[span.0..span.1]` part by part from `starts`, `excluded` left out:
/// whether it has a linearization, and the model states in which operation `watch` could
/// have come next (see [`search_part`]).
fn search_stretch(
    entries: &[Entry],
    span: (usize, usize),
    starts: &[End],
    excluded: &BTreeSet<usize>,
    watch: Option<usize>,
) -> (bool, Vec<BlockStoreModel>) {
    let mut ends = starts.to_vec();
    let mut seen = Vec::new();
    for part in parts(entries, span.0) {
        if part.first >= span.1 {
            break;
        }
        let last = part.last >= span.1;
        let (found, _, states) =
            search_part(entries, &part, &ends, excluded, STEP_BUDGET, last, watch);
        seen.extend(states);
        match found {
            Found::Ends(next) => ends = next,
            Found::Stuck(..) | Found::OutOfBudget => return (false, seen),
        }
    }
    (true, seen)
}

/// A stretch of the history searched alone: `entries[first..last]`, cut before `end`.
#[derive(Debug, Clone, Copy)]
struct Part {
    first: usize,
    last: usize,
    /// The invocation of the write after the cut (`Time::MAX` for the last part).
    end: Time,
}

/// Cuts `entries[from..]` before every write invoked after every earlier write closed.
fn parts(entries: &[Entry], from: usize) -> Vec<Part> {
    let mut cuts = vec![from];
    let mut writes_closed_by: Time = 0;
    for (i, entry) in entries.iter().enumerate().skip(from) {
        if !entry.is_write() {
            continue;
        }
        if i > from && writes_closed_by < entry.call && cuts.last() != Some(&i) {
            cuts.push(i);
        }
        writes_closed_by = writes_closed_by.max(entry.ret_or_open());
    }
    let ends = cuts.iter().skip(1).map(|&i| (i, entries[i].call));
    cuts.iter()
        .zip(ends.chain([(entries.len(), Time::MAX)]))
        .map(|(&first, (last, end))| Part { first, last, end })
        .collect()
}

/// One operation as a part's search sees it.
#[derive(Debug, Clone, Copy)]
struct Local<'a> {
    /// Its index in the history.
    index: usize,
    entry: &'a Entry,
    /// Its invocation (0 for a read carried in: it may come first).
    call: Time,
    /// Its response within the part (`Time::MAX`: it may also sit beyond the part).
    ret: Time,
    /// Whether a linearization of the part may leave it out.
    optional: bool,
}

impl Local<'_> {
    fn is_read(&self) -> bool {
        matches!(
            self.entry.effect,
            Some(Effect::Read { .. } | Effect::Snapshot(_))
        )
    }
}

/// The operations of `part`, with the reads `carried` in before them, but for `excluded`.
fn locals<'a>(
    entries: &'a [Entry],
    part: &Part,
    carried: &[usize],
    excluded: &BTreeSet<usize>,
) -> Vec<Local<'a>> {
    let carried = carried.iter().map(|&i| (i, 0));
    let own = (part.first..part.last).map(|i| (i, entries[i].call));
    carried
        .chain(own)
        .filter(|(index, _)| !excluded.contains(index))
        .filter_map(|(index, call)| {
            let entry = &entries[index];
            let effect = entry.effect.as_ref()?;
            let spans = entry.ret_or_open() >= part.end;
            let optional = match effect {
                Effect::Read { .. } | Effect::Snapshot(_) => spans,
                Effect::MaybeWrite(_) => true,
                Effect::Write { .. } => false,
                // It may not take effect: the search leaves it out altogether.
                Effect::RolledBack(_) => return None,
            };
            let ret = if spans {
                Time::MAX
            } else {
                entry.ret_or_open()
            };
            Some(Local {
                index,
                entry,
                call,
                ret,
                optional,
            })
        })
        .collect()
}

/// Model states met by one search, each kept once.
#[derive(Debug, Default)]
struct States {
    models: Vec<BlockStoreModel>,
    by_print: FixedMap<u64, Vec<usize>>,
}

impl States {
    fn intern(&mut self, model: BlockStoreModel) -> usize {
        let mut hasher = DefaultHasher::new();
        for (number, block) in model.blocks() {
            number.hash(&mut hasher);
            block.header.hash().hash(&mut hasher);
        }
        let print = hasher.finish();
        let same = self.by_print.entry(print).or_default();
        if let Some(&id) = same.iter().find(|&&id| self.models[id] == model) {
            return id;
        }
        self.models.push(model);
        same.push(self.models.len() - 1);
        self.models.len() - 1
    }
}

/// A set of a part's operations.
type Placed = Vec<u64>;

fn has(placed: &Placed, i: usize) -> bool {
    placed[i / 64] & (1 << (i % 64)) != 0
}

/// The operations of `0..len` not in `placed`, in order.
fn unplaced(placed: &Placed, len: usize) -> impl Iterator<Item = usize> + '_ {
    placed.iter().enumerate().flat_map(move |(w, &word)| {
        let mut open = !word;
        std::iter::from_fn(move || {
            let bit = open.trailing_zeros() as usize;
            let i = w * 64 + bit;
            (bit < 64 && i < len).then(|| {
                open &= open - 1;
                i
            })
        })
    })
}

fn with(placed: &Placed, i: usize) -> Placed {
    let mut more = placed.clone();
    more[i / 64] |= 1 << (i % 64);
    more
}

/// What searching one part from one start found.
#[derive(Debug)]
enum Found {
    Ends(Vec<End>),
    /// No linearization; the operation that could not come next (an index into the
    /// history), if one could be named.
    Stuck(Violation, Option<usize>),
    OutOfBudget,
}

/// The search of one part from one start.
struct Search<'a> {
    ops: Vec<Local<'a>>,
    /// Stop at the first end state.
    one: bool,
    /// The operations every linearization of the part places.
    required: Placed,
    states: States,
    start: usize,
    memo: FixedSet<(Placed, usize)>,
    /// Whether read `i` agrees with state `s`.
    agrees: FixedMap<(usize, usize), bool>,
    /// The states write `i` may leave in state `s`.
    after: FixedMap<(usize, usize), Vec<usize>>,
    steps: u64,
    /// The configuration with the most operations placed, for the report.
    deepest: (usize, Placed, usize),
    /// An operation whose possible states are wanted, and the states in which it could have
    /// come next (each once).
    watch: Option<usize>,
    seen: Vec<usize>,
}

impl<'a> Search<'a> {
    fn new(
        entries: &'a [Entry],
        part: &Part,
        from: &End,
        excluded: &BTreeSet<usize>,
        one: bool,
    ) -> Search<'a> {
        let ops = locals(entries, part, &from.carried, excluded);
        let mut states = States::default();
        let start = states.intern(from.state.clone());
        let empty = vec![0; ops.len().div_ceil(64)];
        let required = (0..ops.len())
            .filter(|&i| !ops[i].optional)
            .fold(empty.clone(), |set, i| with(&set, i));
        Search {
            ops,
            one,
            required,
            states,
            start,
            memo: FixedSet::default(),
            agrees: FixedMap::default(),
            after: FixedMap::default(),
            steps: 0,
            deepest: (0, empty, start),
            watch: None,
            seen: Vec::new(),
        }
    }

    /// Every end state of the part (exhaustively; the first, if `one`), or why there is none.
    fn run(&mut self, budget: u64) -> Found {
        let mut ends = Vec::new();
        let mut stack = vec![(self.deepest.1.clone(), self.start)];
        while let Some((mut placed, state)) = stack.pop() {
            if let Some(w) = self.watch.filter(|&w| !has(&placed, w))
                && !self.seen.contains(&state)
                && self.candidates(&placed).contains(&w)
            {
                self.seen.push(state);
            }
            self.place_reads(&mut placed, state);
            if !self.memo.insert((placed.clone(), state)) {
                continue;
            }
            self.steps += 1;
            if self.steps > budget {
                return Found::OutOfBudget;
            }
            let count = placed.iter().map(|w| w.count_ones() as usize).sum();
            if count > self.deepest.0 {
                self.deepest = (count, placed.clone(), state);
            }
            if self.required.iter().zip(&placed).all(|(r, p)| r & !p == 0) {
                let end = self.end(&placed, state);
                if !ends.contains(&end) {
                    ends.push(end);
                }
                if self.one {
                    break;
                }
            }
            for i in self.candidates(&placed) {
                for next in self.successors(i, state) {
                    stack.push((with(&placed, i), next));
                }
            }
        }
        if ends.is_empty() {
            let (violation, blocking) = self.stuck();
            return Found::Stuck(violation, blocking);
        }
        Found::Ends(ends)
    }

    /// The operations that may come next: not placed, invoked before the earliest response
    /// among those not placed. The operations are in invocation order and each responds after
    /// its invocation, so the walk stops at the first invoked after the earliest response so
    /// far: no later one can respond earlier.
    fn candidates(&self, placed: &Placed) -> Vec<usize> {
        let mut first_ret = Time::MAX;
        let mut found = Vec::new();
        for i in unplaced(placed, self.ops.len()) {
            let op = &self.ops[i];
            if op.call >= first_ret {
                break;
            }
            first_ret = first_ret.min(op.ret);
            found.push(i);
        }
        found.retain(|&i| self.ops[i].call < first_ret);
        found
    }

    /// Places every read that may come next and agrees with `state`, until none does.
    fn place_reads(&mut self, placed: &mut Placed, state: usize) {
        loop {
            let mut ready = self.candidates(placed);
            ready.retain(|&i| self.ops[i].is_read());
            ready.retain(|&i| self.agrees(i, state));
            if ready.is_empty() {
                return;
            }
            for i in ready {
                placed[i / 64] |= 1 << (i % 64);
            }
        }
    }

    fn agrees(&mut self, i: usize, state: usize) -> bool {
        if let Some(&known) = self.agrees.get(&(i, state)) {
            return known;
        }
        let model = &self.states.models[state];
        let agrees = match &self.ops[i].entry.effect {
            Some(Effect::Read { op, outcome, .. }) => read_agrees(model, op, outcome),
            Some(Effect::Snapshot(reads)) => reads.iter().all(|(op, o)| read_agrees(model, op, o)),
            _ => false,
        };
        self.agrees.insert((i, state), agrees);
        agrees
    }

    /// The states placing write `i` in `state` may lead to: none if the model's answer is not
    /// the write's; for an unknown write, skipped and (if the model accepts it) applied.
    fn successors(&mut self, i: usize, state: usize) -> Vec<usize> {
        if let Some(known) = self.after.get(&(i, state)) {
            return known.clone();
        }
        let mut model = self.states.models[state].clone();
        let next = match &self.ops[i].entry.effect {
            Some(Effect::Write { op, answer }) => {
                if apply_model(&mut model, op) == *answer {
                    vec![self.states.intern(model)]
                } else {
                    Vec::new()
                }
            }
            Some(Effect::MaybeWrite(op)) => {
                let applied = is_ok(&apply_model(&mut model, op));
                let applied = applied.then(|| self.states.intern(model));
                std::iter::once(state)
                    .chain(applied.filter(|&s| s != state))
                    .collect()
            }
            _ => Vec::new(),
        };
        self.after.insert((i, state), next.clone());
        next
    }

    fn end(&self, placed: &Placed, state: usize) -> End {
        let carried = self.ops.iter().enumerate();
        End {
            state: self.states.models[state].clone(),
            carried: carried
                .filter(|(i, op)| op.is_read() && !has(placed, *i))
                .map(|(_, op)| op.index)
                .collect(),
        }
    }

    /// Why the part has no linearization, seen from the configuration that placed the most:
    /// the operation that had to come next (the earliest response not placed) and could not.
    fn stuck(&self) -> (Violation, Option<usize>) {
        let (count, placed, state) = &self.deepest;
        let model = &self.states.models[*state];
        let blocking = (0..self.ops.len())
            .filter(|&i| !has(placed, i) && !self.ops[i].optional)
            .min_by_key(|&i| self.ops[i].ret)
            .map(|i| self.ops[i]);
        let Some(op) = blocking else {
            let violation = Violation::new(Invariant::History, "no linearization (no op blocks?)");
            return (violation, None);
        };
        let writes: Vec<String> = (0..self.ops.len())
            .filter(|&i| has(placed, i) && !self.ops[i].is_read())
            .map(|i| describe_write(self.ops[i].entry))
            .collect();
        let (invariant, what) = blame(op.entry, Some(model));
        let violation = Violation::new(
            invariant,
            format!(
                "not linearizable: {what}; the longest linearization found places {count} of {} operations of this part, its writes in order: [{}]",
                self.ops.len(),
                writes.join(", ")
            ),
        );
        (violation, Some(op.index))
    }
}

/// The invariant an operation that could not be placed breaks, and what it did; with what the
/// model answers in `model` (where the longest linearization stopped), when known.
fn blame(entry: &Entry, model: Option<&BlockStoreModel>) -> (Invariant, String) {
    let window = format!("[{}..{}]", entry.call, entry.ret_or_open());
    let there = |op: &Op| {
        let mut state = model?.clone();
        let answer = short(&apply_model(&mut state, op));
        Some(format!(
            " (where the longest linearization found stopped, the model answers {answer})"
        ))
    };
    let (invariant, what) = match &entry.effect {
        Some(Effect::Read { op, outcome, via }) => {
            let invariant = if *via == Via::Handle && is_cacheable(op) {
                Invariant::Cache
            } else {
                Invariant::History
            };
            let what = format!(
                "{} {op:?} {window} answered {}, which no state in its window gives{}",
                entry.who,
                short(outcome),
                there(op).unwrap_or_default()
            );
            (invariant, what)
        }
        Some(Effect::Snapshot(reads)) => {
            let differs = model
                .and_then(|m| reads.iter().find(|(op, o)| !read_agrees(m, op, o)))
                .map_or(String::new(), |(op, o)| {
                    format!(
                        ": {op:?} read {}{}",
                        short(o),
                        there(op).unwrap_or_default()
                    )
                });
            let what = format!(
                "the store read back after a restart {window} holds no state the acknowledged writes allow (lost or half-applied){differs}"
            );
            (Invariant::Durability, what)
        }
        Some(Effect::Write { op, answer }) => {
            let what = format!(
                "{} {} {window} answered {}, which it gives in no order of the writes{}",
                entry.who,
                describe_op(op),
                short(answer),
                there(op).unwrap_or_default()
            );
            (Invariant::History, what)
        }
        _ => (Invariant::History, format!("{entry:?} could not be placed")),
    };
    (invariant, what)
}

/// The op's kind, and for writes the block numbers they touch.
pub fn describe_op(op: &Op) -> String {
    match op {
        Op::AppendBlock(b) => format!("AppendBlock({})", b.number()),
        Op::AppendBlocks(bs) => {
            let numbers: Vec<String> = bs.iter().map(|b| b.number().to_string()).collect();
            format!("AppendBlocks({})", numbers.join(","))
        }
        Op::TruncateAbove(n) => format!("TruncateAbove({n})"),
        Op::DrainAbove(n) => format!("DrainAbove({n})"),
        other => other.kind().name().to_string(),
    }
}

fn describe_write(entry: &Entry) -> String {
    match &entry.effect {
        Some(Effect::Write { op, .. }) => format!("{} {}", entry.who, describe_op(op)),
        Some(Effect::MaybeWrite(op)) => format!("{} {}?", entry.who, describe_op(op)),
        _ => String::new(),
    }
}

/// Whether a read's answer is one the model gives in `model`.
fn read_agrees(model: &BlockStoreModel, op: &Op, outcome: &Outcome) -> bool {
    read_model(model, op).is_some_and(|expected| outcomes_agree(&expected, outcome))
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

fn is_ok(outcome: &Outcome) -> bool {
    matches!(outcome, Outcome::Done(Ok(_)) | Outcome::Drained(Ok(_)))
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

/// An outcome in a few words for the failure page: which blocks, how many items, which
/// error; in full (as [`short`]) where a few words would not tell answers apart.
fn brief(outcome: &Outcome) -> String {
    let found = |what: Option<String>| what.unwrap_or_else(|| "none".to_string());
    match outcome {
        Outcome::Header(Ok(header)) => found(
            header
                .as_ref()
                .map(|h| format!("header of block {} ({:?})", h.number(), h.hash())),
        ),
        Outcome::Transaction(Ok(tx)) => found(tx.as_ref().map(|t| {
            format!(
                "transaction {} of block {}",
                t.meta.transaction_index, t.meta.block_number
            )
        })),
        Outcome::Receipt(Ok(receipt)) => found(receipt.as_ref().map(|r| {
            format!(
                "receipt {} of block {}",
                r.transaction_index, r.block_number
            )
        })),
        Outcome::Latest(Ok(latest)) => found(latest.map(|n| format!("block {n}"))),
        Outcome::Count(Ok(n)) => format!("{n} transactions"),
        _ => short(outcome),
    }
}

fn short(outcome: &Outcome) -> String {
    let text = format!("{outcome:?}");
    match text.char_indices().nth(300) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use engine::{HeaderSpecifier, Receipt};
    use model::ops::{block, transaction};

    use super::*;

    /// Block `n`; `variant` changes its body (and so its hash).
    fn blk(n: u64, variant: u8) -> engine::BlockData {
        if variant == 0 {
            return block(n, Vec::new(), Vec::new());
        }
        let receipt = Receipt {
            success: true,
            cumulative_gas_used: 21_000,
            logs: Vec::new(),
        };
        block(n, vec![transaction(0, 0, &[variant])], vec![receipt])
    }

    fn append(n: u64) -> Op {
        Op::AppendBlock(blk(n, 0))
    }

    fn entry(call: Time, ret: Option<Time>, effect: Effect) -> Entry {
        Entry {
            who: "test".into(),
            call,
            ret,
            effect: Some(effect),
            at: (Duration::ZERO, None),
        }
    }

    fn write(call: Time, ret: Time, op: Op) -> Entry {
        let answer = Outcome::Done(Ok(()));
        entry(call, Some(ret), Effect::Write { op, answer })
    }

    fn maybe(call: Time, ret: Option<Time>, op: Op) -> Entry {
        entry(call, ret, Effect::MaybeWrite(op))
    }

    fn read(call: Time, ret: Time, op: Op, outcome: Outcome, via: Via) -> Entry {
        entry(call, Some(ret), Effect::Read { op, outcome, via })
    }

    fn latest(call: Time, ret: Time, n: Option<u64>) -> Entry {
        let outcome = Outcome::Latest(Ok(n));
        read(call, ret, Op::GetLatestBlock, outcome, Via::Handle)
    }

    fn check(entries: &[Entry]) -> Verdict {
        Checker::new(STEP_BUDGET).check(entries, 0, vec![End::empty()], true)
    }

    fn passes(entries: &[Entry]) -> Vec<End> {
        match check(entries) {
            Verdict::Linearizable(ends) => ends,
            other => panic!("expected linearizable, got {other:?}"),
        }
    }

    fn fails(entries: &[Entry]) -> Violation {
        match check(entries) {
            Verdict::Violation(v) => v,
            other => panic!("expected a violation, got {other:?}"),
        }
    }

    #[test]
    fn a_sequential_history_passes_and_ends_in_the_models_state() {
        let ends = passes(&[write(1, 2, append(1)), latest(3, 4, Some(1))]);
        assert_eq!(ends.len(), 1);
        assert_eq!(ends[0].state.get_latest_block(), Some(1));
    }

    #[test]
    fn concurrent_writes_pass_in_the_one_order_their_answers_allow() {
        // Both succeeded: block 1 must have gone first, whatever the invocation order.
        let ends = passes(&[
            write(1, 6, append(2)),
            write(2, 5, append(1)),
            latest(7, 8, Some(2)),
        ]);
        assert_eq!(ends[0].state.blocks().len(), 2);
    }

    #[test]
    fn a_read_that_sees_a_write_before_it_was_invoked_fails() {
        let v = fails(&[latest(1, 2, Some(1)), write(3, 4, append(1))]);
        assert_eq!(v.invariant, Invariant::History);
        assert!(v.detail.contains("GetLatestBlock"), "{}", v.detail);
    }

    #[test]
    fn two_writes_whose_answers_admit_no_order_fail() {
        // Two bodies for block 1, both appended successfully: one of them must be refused.
        let a = Op::AppendBlock(blk(1, 1));
        let b = Op::AppendBlock(blk(1, 2));
        let v = fails(&[write(1, 4, a), write(2, 3, b)]);
        assert_eq!(v.invariant, Invariant::History);
    }

    #[test]
    fn a_racing_writers_refusal_passes_where_the_model_refuses_it_too() {
        let mut model = BlockStoreModel::new();
        let _ = apply_model(&mut model, &Op::AppendBlock(blk(1, 1)));
        let refused = Op::AppendBlock(blk(1, 2));
        let answer = apply_model(&mut model.clone(), &refused);
        assert!(matches!(answer, Outcome::Done(Err(_))));
        let late = entry(
            2,
            Some(3),
            Effect::Write {
                op: refused,
                answer,
            },
        );
        passes(&[write(1, 4, Op::AppendBlock(blk(1, 1))), late.clone()]);
        // Refused with no racing write before it: the model accepts it, so the answer is wrong.
        fails(&[late]);
    }

    #[test]
    fn an_unknown_write_may_take_effect_anywhere_in_its_window_or_not_at_all() {
        passes(&[
            maybe(1, None, append(1)),
            latest(2, 3, None),
            latest(4, 5, Some(1)),
        ]);
        passes(&[maybe(1, Some(2), append(1)), latest(3, 4, None)]);
        // Its window closed (it settled) before the read that sees it was invoked.
        passes(&[maybe(1, Some(2), append(1)), latest(3, 4, Some(1))]);
        fails(&[latest(1, 2, Some(1)), maybe(3, Some(4), append(1))]);
    }

    #[test]
    fn an_unknown_write_seen_applied_then_unapplied_fails() {
        let v = fails(&[
            maybe(1, None, append(1)),
            latest(2, 3, Some(1)),
            latest(4, 5, None),
        ]);
        assert_eq!(v.invariant, Invariant::History);
    }

    #[test]
    fn a_write_that_claims_it_rolled_back_must_not_be_seen() {
        let rolled = entry(1, Some(2), Effect::RolledBack(append(1)));
        passes(&[rolled.clone(), latest(3, 4, None)]);
        fails(&[rolled, latest(3, 4, Some(1))]);
    }

    #[test]
    fn a_read_spanning_a_cut_may_sit_after_it() {
        // The writes are cut apart (the first closed before the second was invoked); the read
        // spans the cut and sees the second.
        let history = [
            write(1, 2, append(1)),
            latest(3, 10, Some(2)),
            write(5, 6, append(2)),
        ];
        passes(&history);
        let mut checker = Checker::new(STEP_BUDGET);
        assert!(matches!(
            checker.check(&history, 0, vec![End::empty()], true),
            Verdict::Linearizable(_)
        ));
        assert_eq!(checker.cost.parts, 2, "one part per write");
        fails(&[
            write(1, 2, append(1)),
            latest(3, 10, Some(3)),
            write(5, 6, append(2)),
        ]);
    }

    #[test]
    fn a_read_placed_early_does_not_hide_a_later_linearization() {
        passes(&[
            latest(1, 10, None),
            write(2, 3, append(1)),
            latest(4, 5, Some(1)),
            write(6, 7, Op::TruncateAbove(0)),
            latest(8, 9, None),
        ]);
    }

    #[test]
    fn a_blamed_read_carries_every_answer_the_model_allows_in_its_window() {
        // Block 1 is appended, then a truncate removes it while the read runs: the read may
        // see block 1's header or nothing, never another header of block 1.
        let op = Op::GetHeader(HeaderSpecifier::Number(1));
        let wrong = blk(1, 9).header;
        let entries = [
            write(0, 1, append(1)),
            write(2, 5, Op::TruncateAbove(0)),
            read(
                3,
                4,
                op,
                Outcome::Header(Ok(Some(wrong.clone()))),
                Via::Store,
            ),
        ];
        let violation = fails(&entries);
        let read = violation.read.expect("the blamed read's alternatives");
        let right = brief(&Outcome::Header(Ok(Some(blk(1, 0).header))));
        assert_eq!(read.read, brief(&Outcome::Header(Ok(Some(wrong)))));
        assert_ne!(read.read, right);
        let mut allowed = read.allowed.clone();
        allowed.sort();
        let mut expected = vec![right, "none".to_string()];
        expected.sort();
        assert_eq!(allowed, expected);
    }

    #[test]
    fn a_wrong_answer_is_blamed_on_the_cache_the_store_or_the_history() {
        let header = |via| {
            let op = Op::GetHeader(HeaderSpecifier::Number(1));
            let stale = Outcome::Header(Ok(Some(blk(1, 0).header)));
            read(3, 4, op, stale, via)
        };
        let removed = || write(1, 2, Op::TruncateAbove(0));
        let first = write(0, 1, append(1));
        let shifted = |e: Entry| Entry {
            call: e.call + 1,
            ret: e.ret.map(|r| r + 1),
            ..e
        };
        let handle = [
            first.clone(),
            shifted(removed()),
            shifted(header(Via::Handle)),
        ];
        assert_eq!(fails(&handle).invariant, Invariant::Cache);
        let store = [
            first.clone(),
            shifted(removed()),
            shifted(header(Via::Store)),
        ];
        assert_eq!(fails(&store).invariant, Invariant::History);
        let snapshot = Effect::Snapshot(vec![(Op::GetLatestBlock, Outcome::Latest(Ok(Some(1))))]);
        let lost = [first, shifted(removed()), entry(5, Some(6), snapshot)];
        assert_eq!(fails(&lost).invariant, Invariant::Durability);
    }

    #[test]
    fn a_wrong_cache_answer_that_shows_only_in_a_later_part_is_still_the_caches() {
        // A truncate of unknown outcome took effect; a stale cache answer in its part says it
        // did not, which prunes the true branch there; a later read by hash (no cache) then
        // finds no state at all.
        let one = blk(1, 0);
        let by_number = Op::GetHeader(HeaderSpecifier::Number(1));
        let stale = Outcome::Header(Ok(Some(one.header.clone())));
        let by_hash = Op::GetHeader(HeaderSpecifier::Hash(one.header.hash()));
        let history = [
            write(1, 2, Op::AppendBlock(one)),
            maybe(3, Some(4), Op::TruncateAbove(0)),
            read(5, 6, by_number, stale, Via::Handle),
            write(7, 8, append(2)),
            read(9, 10, by_hash, Outcome::Header(Ok(None)), Via::Handle),
        ];
        let v = fails(&history);
        assert_eq!(v.invariant, Invariant::Cache, "{}", v.detail);
        assert!(v.detail.contains("Number(1)"), "{}", v.detail);
    }

    #[test]
    fn an_exhausted_budget_is_inconclusive_never_a_pass() {
        let mut history: Vec<Entry> = (0..8)
            .map(|i| maybe(i + 1, None, Op::AppendBlock(blk(1, i as u8 + 1))))
            .collect();
        history.push(latest(20, 21, Some(1)));
        let mut checker = Checker::new(10);
        let verdict = checker.check(&history, 0, vec![End::empty()], true);
        assert!(matches!(verdict, Verdict::Inconclusive(_)), "{verdict:?}");
        assert!(matches!(check(&history), Verdict::Linearizable(_)));
    }

    #[test]
    fn too_many_end_states_to_hand_on_is_inconclusive_but_one_is_enough_at_the_end() {
        // Nine unknown appends nothing ever read: 2^9 stores they may have left.
        let history: Vec<Entry> = (1..=9).map(|n| maybe(n, None, append(n))).collect();
        let mut checker = Checker::new(STEP_BUDGET);
        let verdict = checker.check(&history, 0, vec![End::empty()], true);
        assert!(
            matches!(verdict, Verdict::Inconclusive(_)),
            "not inconclusive"
        );
        let verdict = checker.check(&history, 0, vec![End::empty()], false);
        assert!(
            matches!(verdict, Verdict::Linearizable(_)),
            "not linearizable"
        );
    }
}

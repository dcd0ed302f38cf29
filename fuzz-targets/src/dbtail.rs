//! Structure-aware ΔBtail: a sequence of commits of one tree, each a topology drawn from
//! AllStructs over a small key set with values, walked from `T/B:`. Every transition gets the
//! Update check (Track of every subset of the test keys, then Update, against the KAdj and
//! KVDiff oracles) and every three consecutive states the rebuild check
//! ([`model::btail_check`]); every check must pass. Then one ΔBtail lives through the whole
//! sequence: keys tracked at `T/B:`, an Update per commit, a ForgetPast at a chosen revision,
//! and GetAt queries, each answer judged by [`model::get_at`] from the commits' contents; a
//! query before the tail must be refused as out of range.

use std::collections::BTreeMap;
use std::sync::Arc;

use arbitrary::{Arbitrary, Unstructured};
use btail::allstructs::AllStructs;
use btail::dbtail::{DBtail, DBtailError};
use btail::restructure::{TreeCommit, TreeEnv};
use btail::topology::{Topology, Value};
use btail::{KEY_MAX, Key, Oid};
use model::btail_check::{Walker, leaf};
use model::get_at::check_get_at;
use model::kv::KvModel;

/// Commits per input, at most.
const MAX_COMMITS: usize = 5;
/// Keys are drawn from `1..=KEYS`.
const KEYS: u32 = 3;
/// Value names.
const VALUES: [&str; 3] = ["a", "b", "c"];

/// One state of the tree.
#[derive(Debug, Clone, Arbitrary)]
pub enum State {
    /// The tree deleted (`ø`).
    Deleted,
    /// Which keys are present (bit `i` for key `i + 1`), each key's value name (two bits per
    /// key), and which of the shapes AllStructs enumerates for them (modulo their count).
    Tree {
        /// Present keys.
        keys: u8,
        /// Value names.
        values: u8,
        /// The shape.
        shape: u32,
    },
}

impl State {
    /// The topology of this state.
    pub fn topology(&self) -> Topology {
        let State::Tree {
            keys,
            values,
            shape,
        } = *self
        else {
            return Topology::deleted();
        };
        let kv: BTreeMap<i64, Value> = (0..KEYS)
            .filter(|i| keys & (1 << i) != 0)
            .map(|i| {
                let name = VALUES[usize::from(values >> (2 * i)) % 4 % VALUES.len()];
                (i64::from(i) + 1, Value::from(name))
            })
            .collect();
        let all = AllStructs::kv(&kv, 2, 2);
        all.at(u64::from(shape) % all.total())
            .expect("an index below the total names a topology")
    }
}

/// GetAt queries per input, at most.
const MAX_QUERIES: usize = 16;

/// One input: the states, then the life of one ΔBtail through them.
#[derive(Debug, Arbitrary)]
pub struct Input {
    /// Which keys are tracked at `T/B:` (bit `i` for key `i + 1`, bit [`KEYS`] for ∞).
    pub tracked: u8,
    /// The ForgetPast revision: this index among the states (`T/B:` first), modulo their count.
    pub cut: u8,
    /// GetAt queries: a tracked key and a state's revision, each an index modulo its count.
    pub queries: Vec<(u8, u8)>,
    /// The states committed after `T/B:`.
    pub states: Vec<State>,
}

/// The target.
pub fn run(data: &[u8]) {
    if let Ok(input) = Input::arbitrary_take_rest(Unstructured::new(data)) {
        run_input(&input);
    }
}

/// The target on a parsed input; returns how many GetAt answers were judged.
pub fn run_input(input: &Input) -> usize {
    let mut walker = Walker::new().expect("the initial tree commits");
    let mut commits = vec![walker.env().head().clone()];
    for state in input.states.iter().take(MAX_COMMITS) {
        let topo = state.topology();
        let commit = walker
            .commit(&topo)
            .unwrap_or_else(|e| panic!("{topo} from AllStructs does not commit: {e}"));
        commits.push(commit.clone());
        let update = walker.check_update();
        assert!(
            update.failures.is_empty(),
            "Update into {topo}: {update:#?}"
        );
        if let Some(rebuild) = walker.check_rebuild() {
            assert!(
                rebuild.failures.is_empty(),
                "rebuild into {topo}: {rebuild:#?}"
            );
        }
    }
    let rt = crate::paused_runtime();
    rt.block_on(history(walker.env(), &commits, input))
}

/// One ΔBtail through every commit: Track at `T/B:`, Update, ForgetPast, GetAt.
async fn history(env: &TreeEnv, commits: &[TreeCommit], input: &Input) -> usize {
    let mut model = KvModel::<Oid>::new();
    for c in commits {
        let oids = c.kv.iter().map(|(k, v)| {
            let oid = env.value_oid(v).expect("committed values have objects");
            (*k, oid)
        });
        model
            .record(c.rev, oids.collect())
            .expect("commits go forward");
    }
    let tracked: Vec<Key> = (0..=KEYS)
        .filter(|i| input.tracked & (1 << i) != 0)
        .map(|i| if i == KEYS { KEY_MAX } else { i64::from(i) + 1 })
        .collect();
    let start = &commits[0];
    let db = DBtail::new(Arc::new(env.store().clone()), start.rev);
    for &k in &tracked {
        let b = leaf(start, k);
        db.track(&b.path, b.keycov)
            .await
            .unwrap_or_else(|e| panic!("Track({k}) at T/B:: {e}"));
    }
    for c in &commits[1..] {
        db.update(c.rev, &c.changed)
            .await
            .unwrap_or_else(|e| panic!("Update to {}: {e}", c.topology));
    }
    let head = commits.last().expect("T/B: at least").rev;
    let cut = commits[usize::from(input.cut) % commits.len()].rev;
    db.forget_past(cut)
        .await
        .unwrap_or_else(|e| panic!("ForgetPast({cut:?}): {e}"));
    let (tail, _) = db.bounds().await;
    assert_eq!(tail, cut.max(start.rev), "the tail after ForgetPast");
    if tracked.is_empty() {
        return 0;
    }
    let mut judged = 0;
    for &(k, at) in input.queries.iter().take(MAX_QUERIES) {
        let key = tracked[usize::from(k) % tracked.len()];
        let at = commits[usize::from(at) % commits.len()].rev;
        match db.get_at(env.root(), key, at).await {
            Ok(r) => {
                check_get_at(&model, key, at, r, tail, head)
                    .unwrap_or_else(|e| panic!("GetAt({key}, {at:?}) = {r:?}: {e}"));
                judged += 1;
            }
            Err(DBtailError::AtOutOfRange { .. }) if at < tail => {}
            Err(e) => panic!("GetAt({key}, {at:?}) with tail {tail:?}: {e}"),
        }
    }
    judged
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A history over four states with every key tracked, cut at the second state, and a
    /// query of every key at every state: the ones at or after the tail are judged, those
    /// before it refused.
    #[test]
    fn a_history_is_judged_query_by_query() {
        let tree = |keys, values, shape| State::Tree {
            keys,
            values,
            shape,
        };
        let states = vec![tree(0b011, 0, 0), tree(0b111, 0b01_01, 3), State::Deleted];
        let queries: Vec<(u8, u8)> = (0..4).flat_map(|k| (0..4).map(move |at| (k, at))).collect();
        let input = Input {
            tracked: 0b1111,
            cut: 1,
            queries,
            states,
        };
        // 4 keys × the 3 states from the cut on.
        assert_eq!(run_input(&input), 12);
    }
}

//! Structure-aware ΔBtail: a sequence of commits of one tree, each a topology drawn from
//! AllStructs over a small key set with values, walked from `T/B:`. Every transition gets the
//! Update check (Track of every subset of the test keys, then Update, against the KAdj and
//! KVDiff oracles) and every three consecutive states the rebuild check
//! ([`model::btail_check`]); every check must pass.

use std::collections::BTreeMap;

use arbitrary::{Arbitrary, Unstructured};
use btail::allstructs::AllStructs;
use btail::topology::{Topology, Value};
use model::btail_check::Walker;

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

/// The target.
pub fn run(data: &[u8]) {
    let Ok(states) = Vec::<State>::arbitrary_take_rest(Unstructured::new(data)) else {
        return;
    };
    let mut walker = Walker::new().expect("the initial tree commits");
    for state in states.iter().take(MAX_COMMITS) {
        let topo = state.topology();
        walker
            .commit(&topo)
            .unwrap_or_else(|e| panic!("{topo} from AllStructs does not commit: {e}"));
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
}

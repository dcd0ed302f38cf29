//! The KV-per-revision model of a BTree, and KVDiff.
//!
//! The model is what a tree must contain at each revision: key → value name (a letter in
//! tests). KVDiff compares two contents key by key, with `ø` for an absent key; restricted to
//! a key set it is the expected ΔBtail δT of a transition.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use btail::object::{Key, Rev};
pub use btail::topology::Value;

/// The content of a tree: key → value name.
pub type Kv = BTreeMap<Key, Value>;

/// One key's change: `None` is `ø` (absent).
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct ValueChange {
    /// The value before (`None`: absent).
    pub old: Option<Value>,
    /// The value after (`None`: absent).
    pub new: Option<Value>,
}

fn fmt_value(f: &mut fmt::Formatter<'_>, v: &Option<Value>) -> fmt::Result {
    match v {
        Some(v) => write!(f, "{v}"),
        None => write!(f, "ø"),
    }
}

/// Printed `{old new}` with `ø` for absent.
impl fmt::Display for ValueChange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{{")?;
        fmt_value(f, &self.old)?;
        write!(f, " ")?;
        fmt_value(f, &self.new)?;
        write!(f, "}}")
    }
}

/// Key-level difference of two contents: only keys whose value differs.
#[derive(Clone, PartialEq, Eq, Hash, Debug, Default)]
pub struct KvDiff {
    /// key → change, ascending; never `old == new`.
    pub changes: BTreeMap<Key, ValueChange>,
}

impl KvDiff {
    /// Whether nothing changed.
    pub fn is_empty(&self) -> bool {
        self.changes.is_empty()
    }

    /// The changes of the keys in `keys` only.
    pub fn restrict(&self, keys: &BTreeSet<Key>) -> KvDiff {
        KvDiff {
            changes: self
                .changes
                .iter()
                .filter(|(k, _)| keys.contains(k))
                .map(|(k, c)| (*k, c.clone()))
                .collect(),
        }
    }

    /// The diff the other way round.
    pub fn reversed(&self) -> KvDiff {
        KvDiff {
            changes: self
                .changes
                .iter()
                .map(|(k, c)| {
                    let c = ValueChange {
                        old: c.new.clone(),
                        new: c.old.clone(),
                    };
                    (*k, c)
                })
                .collect(),
        }
    }
}

/// Printed `{k:{old new} ...}`.
impl fmt::Display for KvDiff {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{{")?;
        for (i, (k, c)) in self.changes.iter().enumerate() {
            if i > 0 {
                write!(f, " ")?;
            }
            write!(f, "{k}:{c}")?;
        }
        write!(f, "}}")
    }
}

/// KVDiff(a, b): every key whose value differs between `a` and `b`.
pub fn kv_diff(a: &Kv, b: &Kv) -> KvDiff {
    let mut changes = BTreeMap::new();
    for (k, va) in a {
        if b.get(k) != Some(va) {
            let c = ValueChange {
                old: Some(va.clone()),
                new: b.get(k).cloned(),
            };
            changes.insert(*k, c);
        }
    }
    for (k, vb) in b {
        if !a.contains_key(k) {
            let c = ValueChange {
                old: None,
                new: Some(vb.clone()),
            };
            changes.insert(*k, c);
        }
    }
    debug_assert!(changes.values().all(|c| c.old != c.new));
    KvDiff { changes }
}

/// A revision was recorded out of order.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct RevOrderError {
    /// The revision recorded.
    pub rev: Rev,
    /// The last revision before it.
    pub last: Rev,
}

impl fmt::Display for RevOrderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "revision {:?} is not after the last recorded {:?}",
            self.rev, self.last
        )
    }
}

impl std::error::Error for RevOrderError {}

/// The content of a tree at each recorded revision (strictly increasing): key → `V`, an
/// absent key is missing. `V` is a value name in the oracle tests ([`Value`]) and whatever a
/// world stores its values as elsewhere (the simulator's value oids).
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct KvModel<V = Value> {
    revs: BTreeMap<Rev, BTreeMap<Key, V>>,
}

impl<V> Default for KvModel<V> {
    fn default() -> Self {
        KvModel {
            revs: BTreeMap::new(),
        }
    }
}

impl<V: Clone + PartialEq> KvModel<V> {
    /// No revisions recorded.
    pub fn new() -> KvModel<V> {
        KvModel::default()
    }

    /// Records the content as of `rev`, which must be after every recorded revision.
    pub fn record(&mut self, rev: Rev, kv: BTreeMap<Key, V>) -> Result<(), RevOrderError> {
        if let Some((&last, _)) = self.revs.last_key_value()
            && rev <= last
        {
            return Err(RevOrderError { rev, last });
        }
        self.revs.insert(rev, kv);
        Ok(())
    }

    /// The content as of `at`: that of the newest recorded revision ≤ `at`.
    pub fn at(&self, at: Rev) -> Option<&BTreeMap<Key, V>> {
        self.revs.range(..=at).next_back().map(|(_, kv)| kv)
    }

    /// The value of `key` as of `at` (`None`: absent, or `at` before the first revision).
    pub fn value(&self, key: Key, at: Rev) -> Option<&V> {
        self.at(at)?.get(&key)
    }

    /// The recorded revisions, ascending.
    pub fn revs(&self) -> impl Iterator<Item = Rev> + '_ {
        self.revs.keys().copied()
    }

    /// `(old, new)` if `key` changed in the commit recorded at `rev` (`None` in a pair:
    /// absent); `None` if it did not change there or nothing was recorded at `rev`.
    pub fn change(&self, key: Key, rev: Rev) -> Option<(Option<V>, Option<V>)> {
        let new = self.revs.get(&rev)?.get(&key);
        let old = self
            .revs
            .range(..rev)
            .next_back()
            .and_then(|(_, kv)| kv.get(&key));
        (old != new).then(|| (old.cloned(), new.cloned()))
    }

    /// The recorded revisions in `(lo, hi]` at which `key` changed, ascending.
    pub fn changes(&self, key: Key, lo: Rev, hi: Rev) -> Vec<Rev> {
        if lo >= hi {
            return Vec::new();
        }
        let mut before = self.value(key, lo);
        let mut out = Vec::new();
        for (rev, kv) in self.revs.range(Rev(lo.0 + 1)..=hi) {
            let now = kv.get(&key);
            if now != before {
                out.push(*rev);
            }
            before = now;
        }
        out
    }
}

impl KvModel<Value> {
    /// KVDiff between the contents as of `lo` and `hi` (missing contents count as empty).
    pub fn diff(&self, lo: Rev, hi: Rev) -> KvDiff {
        let empty = Kv::new();
        kv_diff(self.at(lo).unwrap_or(&empty), self.at(hi).unwrap_or(&empty))
    }
}

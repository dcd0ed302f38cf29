//! The KAdj adjacency oracle.
//!
//! `KAdj(t1, t2, keys)[k]` is the set of keys (from `keys`) that ΔBtail may report together
//! with `k` for the transition t1 → t2: starting from the buckets covering `k` in both trees,
//! alternate between the trees, each time taking every bucket whose keycov overlaps the ranges
//! reached so far in the other tree, until nothing new is reached; the keys inside all buckets
//! reached are adjacent to `k`. Bucket keycovs are positional (set by the separators above a
//! bucket, not by the keys it holds), so the oracle needs only each tree's bucket keycovs, left
//! to right. A deleted or empty tree is one bucket covering everything. The test key set is
//! every key of both trees plus ∞ (`KEY_MAX`, "the size query").

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use btail::KEY_MAX;
use btail::blib::KeyRange;
use btail::btree::BucketInfo;
use btail::object::Key;
use btail::topology::Topology;

/// Why KAdj could not be computed or applied.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum KAdjError {
    /// The bucket keycovs of tree `tree` (1 or 2) are not a left-to-right partition of all keys.
    NotAPartition {
        /// Which tree: 1 or 2.
        tree: u8,
        /// What is wrong.
        what: String,
    },
    /// KAdj(A,B) differs from KAdj(B,A) (an oracle bug).
    Asymmetric {
        /// KAdj(A,B).
        ab: String,
        /// KAdj(B,A).
        ba: String,
    },
    /// `map` was asked about a key outside the KAdj's key set.
    UnknownKey(Key),
    /// An annotation could not be parsed.
    Parse {
        /// Byte position.
        pos: usize,
        /// What was expected.
        what: String,
    },
}

impl fmt::Display for KAdjError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KAdjError::NotAPartition { tree, what } => {
                write!(
                    f,
                    "tree {tree}: bucket keycovs are not a partition of [-∞,∞]: {what}"
                )
            }
            KAdjError::Asymmetric { ab, ba } => write!(f, "KAdj is not symmetric: {ab} vs {ba}"),
            KAdjError::UnknownKey(k) => write!(f, "key {k} is not a key of this KAdj"),
            KAdjError::Parse { pos, what } => {
                write!(f, "kadj annotation at byte {pos}: expected {what}")
            }
        }
    }
}

impl std::error::Error for KAdjError {}

/// The adjacency matrix: key → adjacent keys.
#[derive(Clone, PartialEq, Eq, Hash, Debug, Default)]
pub struct KAdj {
    adj: BTreeMap<Key, BTreeSet<Key>>,
}

fn check_partition(tree: u8, covs: &[KeyRange]) -> Result<(), KAdjError> {
    let bad = |what: String| Err(KAdjError::NotAPartition { tree, what });
    let (Some(first), Some(last)) = (covs.first(), covs.last()) else {
        return bad("no buckets".into());
    };
    if first.lo != KeyRange::ALL.lo || last.hi_ != KEY_MAX {
        return bad(format!("{first} .. {last} do not reach both ends"));
    }
    for w in covs.windows(2) {
        if w[0].is_empty() || w[0].next_lo() != Some(w[1].lo) {
            return bad(format!(
                "{} is not followed by an adjacent range but {}",
                w[0], w[1]
            ));
        }
    }
    if last.is_empty() {
        return bad(format!("empty range {last}"));
    }
    Ok(())
}

/// Indexes of the buckets of `covs` overlapping `r` (covs sorted, non-overlapping).
fn overlapping(covs: &[KeyRange], r: KeyRange) -> std::ops::Range<usize> {
    let start = covs.partition_point(|c| c.hi_ < r.lo);
    let end = covs.partition_point(|c| c.lo <= r.hi_);
    start..end.max(start)
}

fn kadj_one_way(t1: &[KeyRange], t2: &[KeyRange], keys: &BTreeSet<Key>) -> KAdj {
    let mut adj = BTreeMap::new();
    for &k in keys {
        let (mut done1, mut done2) = (vec![false; t1.len()], vec![false; t2.len()]);
        // Ranges still to walk in each tree.
        let mut q1 = vec![KeyRange::point(k)];
        let mut q2 = vec![KeyRange::point(k)];
        let mut reached = BTreeSet::new();
        while !q1.is_empty() || !q2.is_empty() {
            for r in std::mem::take(&mut q1) {
                for i in overlapping(t1, r) {
                    if !std::mem::replace(&mut done1[i], true) {
                        reached.insert((1u8, i));
                        q2.push(t1[i]);
                    }
                }
            }
            for r in std::mem::take(&mut q2) {
                for j in overlapping(t2, r) {
                    if !std::mem::replace(&mut done2[j], true) {
                        reached.insert((2u8, j));
                        q1.push(t2[j]);
                    }
                }
            }
        }
        let covered: Vec<KeyRange> = reached
            .iter()
            .map(|&(t, i)| if t == 1 { t1[i] } else { t2[i] })
            .collect();
        let set = keys
            .iter()
            .copied()
            .filter(|x| covered.iter().any(|c| c.has(*x)))
            .collect();
        adj.insert(k, set);
    }
    KAdj { adj }
}

/// All keys of both contents plus ∞ (`KEY_MAX`).
pub fn all_test_keys<'a>(
    keys1: impl IntoIterator<Item = &'a Key>,
    keys2: impl IntoIterator<Item = &'a Key>,
) -> BTreeSet<Key> {
    let mut keys: BTreeSet<Key> = keys1.into_iter().chain(keys2).copied().collect();
    keys.insert(KEY_MAX);
    keys
}

/// KAdj(t1, t2, keys) over the bucket keycovs of both trees (left to right), checked to be
/// symmetric.
pub fn kadj(t1: &[KeyRange], t2: &[KeyRange], keys: &BTreeSet<Key>) -> Result<KAdj, KAdjError> {
    check_partition(1, t1)?;
    check_partition(2, t2)?;
    let ab = kadj_one_way(t1, t2, keys);
    let ba = kadj_one_way(t2, t1, keys);
    if ab != ba {
        return Err(KAdjError::Asymmetric {
            ab: ab.to_string(),
            ba: ba.to_string(),
        });
    }
    Ok(ab)
}

/// KAdj of two topologies with the test keys (all keys of both plus ∞); `ø` is one bucket.
pub fn kadj_topologies(t1: &Topology, t2: &Topology) -> Result<KAdj, KAdjError> {
    let keys = all_test_keys(&t1.bucket_keys(), &t2.bucket_keys());
    kadj(&t1.bucket_keycovs(), &t2.bucket_keycovs(), &keys)
}

/// The bucket keycovs of a bucket listing, left to right.
pub fn keycovs(listing: &[BucketInfo]) -> Vec<KeyRange> {
    listing.iter().map(|b| b.keycov).collect()
}

impl KAdj {
    /// The keys adjacent to `k` (`None`: `k` is not a key of this KAdj).
    pub fn get(&self, k: Key) -> Option<&BTreeSet<Key>> {
        self.adj.get(&k)
    }

    /// The key set of this KAdj.
    pub fn keys(&self) -> impl Iterator<Item = Key> + '_ {
        self.adj.keys().copied()
    }

    /// `Map(keys) = ∪ kadj[k]`; every key must be a key of this KAdj.
    pub fn map<'a>(
        &self,
        keys: impl IntoIterator<Item = &'a Key>,
    ) -> Result<BTreeSet<Key>, KAdjError> {
        let mut out = BTreeSet::new();
        for k in keys {
            out.extend(
                self.adj
                    .get(k)
                    .ok_or(KAdjError::UnknownKey(*k))?
                    .iter()
                    .copied(),
            );
        }
        Ok(out)
    }

    /// The composition `self·b`: `(self·b).Map(x) = self.Map(b.Map(x))`; keyed like `b`.
    pub fn compose(&self, b: &KAdj) -> Result<KAdj, KAdjError> {
        let adj = b
            .adj
            .iter()
            .map(|(k, to)| Ok((*k, self.map(to)?)))
            .collect::<Result<_, KAdjError>>()?;
        Ok(KAdj { adj })
    }

    /// Parses an annotation `K:K,K,... K:...` (`oo` = ∞), as in the vector files.
    pub fn parse(s: &str) -> Result<KAdj, KAdjError> {
        let mut adj = BTreeMap::new();
        let mut pos = 0;
        for entry in s.split(' ') {
            let bad = |at: usize, what: &str| KAdjError::Parse {
                pos: at,
                what: what.to_string(),
            };
            if entry.is_empty() {
                pos += 1;
                continue;
            }
            let (k, rest) = entry.split_once(':').ok_or_else(|| bad(pos, "K:K,..."))?;
            let key = parse_key(k).ok_or_else(|| bad(pos, "a key (integer or oo)"))?;
            let mut to = BTreeSet::new();
            let mut at = pos + k.len() + 1;
            for x in rest.split(',') {
                to.insert(parse_key(x).ok_or_else(|| bad(at, "a key (integer or oo)"))?);
                at += x.len() + 1;
            }
            if adj.insert(key, to).is_some() {
                return Err(bad(pos, "each key once"));
            }
            pos += entry.len() + 1;
        }
        Ok(KAdj { adj })
    }

    /// Whether `self` agrees with `expected` on every key of `expected`.
    pub fn agrees_with(&self, expected: &KAdj) -> bool {
        expected.adj.iter().all(|(k, v)| self.adj.get(k) == Some(v))
    }
}

fn parse_key(s: &str) -> Option<Key> {
    if s == "oo" {
        Some(KEY_MAX)
    } else {
        s.parse().ok()
    }
}

fn fmt_key(k: Key) -> String {
    if k == KEY_MAX {
        "oo".into()
    } else {
        k.to_string()
    }
}

/// Printed like the annotations: `1:1,2,oo oo:1,2,oo`.
impl fmt::Display for KAdj {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, (k, to)) in self.adj.iter().enumerate() {
            if i > 0 {
                write!(f, " ")?;
            }
            let to: Vec<String> = to.iter().map(|x| fmt_key(*x)).collect();
            write!(f, "{}:{}", fmt_key(*k), to.join(","))?;
        }
        Ok(())
    }
}

//! Plain forms of ΔBtail's tracked node sets and key coverages, with the checks' own set
//! algebra.
//!
//! The ΔBtail checks compare what [`btail::dbtail::DBtail`] tracks with what it must track.
//! ΔBtail computes its sets with blib's algorithms (`PPTreeSubSet`, `RangedKeySet`); if the
//! expectation were built with the same algorithms, a bug in them would be in both sides. So the
//! checks read ΔBtail's sets out into plain data ([`nodes_of`], [`keys_of`]) and build the
//! expected ones here from the trees' bucket paths and key ranges, with straight loops.

use std::collections::{BTreeMap, BTreeSet};

use btail::blib::{PPTreeSubSet, RangedKeySet};
use btail::object::KEY_MAX;
use btail::{Key, Oid};

/// A parent-closed node set: node → (its parent, or [`Oid::INVALID`] for a root; how many of
/// its direct children are members).
pub type Nodes = BTreeMap<Oid, (Oid, u32)>;

/// A key set as inclusive ranges `(lo, hi)`: ascending, disjoint, no two touching.
pub type Keys = Vec<(Key, Key)>;

/// ΔBtail's node set as plain data.
pub fn nodes_of(set: &PPTreeSubSet) -> Nodes {
    set.iter()
        .map(|(oid, node)| (oid, (node.parent, node.nchild)))
        .collect()
}

/// ΔBtail's key set as plain data.
pub fn keys_of(set: &RangedKeySet) -> Keys {
    set.ranges().map(|r| (r.lo, r.hi_)).collect()
}

/// A root-to-bucket path without the invalid oid that ends the path of an embedded bucket (or
/// stands for the whole empty tree): those buckets are no node of their own.
pub fn trimmed(path: &[Oid]) -> &[Oid] {
    match path.last() {
        Some(last) if !last.is_valid() => &path[..path.len() - 1],
        _ => path,
    }
}

/// Every node on the given root-to-bucket paths, with its parent and member-child count.
pub fn nodes_on<'a>(paths: impl IntoIterator<Item = &'a [Oid]>) -> Nodes {
    let mut parents: BTreeMap<Oid, Oid> = BTreeMap::new();
    for path in paths {
        let mut parent = Oid::INVALID;
        for node in trimmed(path) {
            parents.insert(*node, parent);
            parent = *node;
        }
    }
    let mut nodes = Nodes::new();
    for (node, parent) in &parents {
        let children = parents.values().filter(|p| *p == node).count();
        let children = u32::try_from(children).expect("a tree node has fewer than 2^32 children");
        nodes.insert(*node, (*parent, children));
    }
    nodes
}

/// Every key in at least one of `ranges` (inclusive `(lo, hi)`, any order, empty ones allowed).
pub fn keys_in(ranges: impl IntoIterator<Item = (Key, Key)>) -> Keys {
    let mut sorted: Vec<(Key, Key)> = ranges.into_iter().filter(|(lo, hi)| lo <= hi).collect();
    sorted.sort();
    let mut keys = Keys::new();
    for (lo, hi) in sorted {
        match keys.last_mut() {
            // Overlapping or touching the previous range (which may end at the largest key).
            Some(last) if last.1 == KEY_MAX || lo <= last.1 + 1 => last.1 = last.1.max(hi),
            _ => keys.push((lo, hi)),
        }
    }
    keys
}

/// The keys of `a` that are not in `b`.
pub fn keys_minus(a: &Keys, b: &Keys) -> Keys {
    let mut left: Vec<(Key, Key)> = a.clone();
    for &(cut_lo, cut_hi) in b {
        let mut next = Vec::new();
        for (lo, hi) in left {
            if cut_hi < lo || hi < cut_lo {
                next.push((lo, hi));
                continue;
            }
            if lo < cut_lo {
                next.push((lo, cut_lo - 1));
            }
            if cut_hi < hi {
                next.push((cut_hi + 1, hi));
            }
        }
        left = next;
    }
    keys_in(left)
}

/// Whether every key of `a` is in `b`.
pub fn keys_within(a: &Keys, b: &Keys) -> bool {
    keys_minus(a, b).is_empty()
}

/// The last node of each path (after trimming): the buckets the paths lead to.
pub fn path_ends<'a>(paths: impl IntoIterator<Item = &'a [Oid]>) -> BTreeSet<Oid> {
    paths
        .into_iter()
        .filter_map(|p| trimmed(p).last().copied())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_ranges_merge_and_subtract_at_the_extremes() {
        let min = Key::MIN;
        assert_eq!(
            keys_in([(5, 7), (1, 2), (3, 4), (10, KEY_MAX), (9, 9), (8, 6)]),
            vec![(1, 7), (9, KEY_MAX)]
        );
        assert_eq!(
            keys_minus(&vec![(min, KEY_MAX)], &vec![(min, 0), (5, 5)]),
            vec![(1, 4), (6, KEY_MAX)]
        );
        assert!(keys_within(&vec![(2, 3)], &vec![(1, 4)]));
        assert!(!keys_within(&vec![(2, 5)], &vec![(1, 4)]));
    }

    #[test]
    fn nodes_count_their_member_children() {
        let (r, a, b) = (Oid(1), Oid(2), Oid(3));
        let paths: [&[Oid]; 3] = [&[r, a], &[r, b], &[r, Oid::INVALID]];
        let nodes = nodes_on(paths);
        assert_eq!(nodes[&r], (Oid::INVALID, 2));
        assert_eq!(nodes[&a], (r, 0));
        assert_eq!(nodes.len(), 3);
    }
}

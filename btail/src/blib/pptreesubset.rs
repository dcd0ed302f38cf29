//! PPTreeSubSet and ΔPPTreeSubSet: parent-closed ("PP-connected") subsets of tree nodes.
//!
//! A [`PPTreeSubSet`] is the set of all nodes on the root paths of some leaves: every member's
//! parent is a member too, up to a root (parent [`Oid::INVALID`]). Each member records its
//! parent and `nchild`, the number of its direct children in the set, so the set's own leaves
//! are the members with `nchild == 0`. Union and difference are defined on those leaves:
//! `A ∪ B = PP(leaves A ∪ leaves B)`, `A \ B = PP(leaves A \ leaves B)`.
//!
//! A [`ΔPPTreeSubSet`] is the change of a tracked set between two revisions of a tree: paths
//! removed, paths added, and the `nchild` of nodes that are leaves of `del`/`add` but interior in
//! the real set (a subtree that moved unchanged): those are dropped to leaves before the
//! difference and restored after the union, which re-parents the subtree whole.

use std::collections::BTreeMap;
use std::fmt;

use crate::object::Oid;

/// One member of a [`PPTreeSubSet`].
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct PPNode {
    /// The parent, [`Oid::INVALID`] for a root.
    pub parent: Oid,
    /// How many direct children are members.
    pub nchild: u32,
}

/// Why a path cannot join a [`PPTreeSubSet`].
#[derive(Clone, PartialEq, Eq, Debug, thiserror::Error)]
pub enum PPError {
    /// The path has an invalid oid somewhere but at its end.
    #[error("path {path:?} has an invalid oid inside")]
    InvalidOidInPath {
        /// The offending path.
        path: Vec<Oid>,
    },
    /// The node is already a member under another parent (corrupt tree or stale path).
    #[error("node {node:?} is reachable from two parents: {have:?} and {want:?}")]
    TwoParents {
        /// The node.
        node: Oid,
        /// Its parent in the set.
        have: Oid,
        /// Its parent in the path.
        want: Oid,
    },
}

/// Strips the trailing invalid oid of a path: `[ø]` (an artificial empty tree) becomes `[]`,
/// `[T, ø]` (a tree with an embedded bucket) becomes `[T]`.
pub fn norm_path(path: &[Oid]) -> &[Oid] {
    match path.split_last() {
        Some((last, init)) if !last.is_valid() => init,
        _ => path,
    }
}

/// A parent-closed set of tree nodes (see the module doc).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct PPTreeSubSet {
    nodes: BTreeMap<Oid, PPNode>,
}

impl PPTreeSubSet {
    /// The empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Builds a set from `(oid, parent, nchild)` triples without checks (test vectors).
    pub fn from_nodes(nodes: impl IntoIterator<Item = (Oid, Oid, u32)>) -> Self {
        PPTreeSubSet {
            nodes: nodes
                .into_iter()
                .map(|(oid, parent, nchild)| (oid, PPNode { parent, nchild }))
                .collect(),
        }
    }

    /// Whether the set has no node.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// Number of members.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Whether `oid` is a member.
    pub fn has(&self, oid: Oid) -> bool {
        self.nodes.contains_key(&oid)
    }

    /// The member record of `oid`.
    pub fn get(&self, oid: Oid) -> Option<PPNode> {
        self.nodes.get(&oid).copied()
    }

    /// All members, ascending by oid.
    pub fn iter(&self) -> impl Iterator<Item = (Oid, PPNode)> + '_ {
        self.nodes.iter().map(|(o, n)| (*o, *n))
    }

    /// The members without member children.
    pub fn leaves(&self) -> impl Iterator<Item = Oid> + '_ {
        self.nodes
            .iter()
            .filter(|(_, n)| n.nchild == 0)
            .map(|(o, _)| *o)
    }

    /// The roots (members without a parent).
    pub fn roots(&self) -> impl Iterator<Item = Oid> + '_ {
        self.nodes
            .iter()
            .filter(|(_, n)| !n.parent.is_valid())
            .map(|(o, _)| *o)
    }

    /// The path root..=oid, or `None` if `oid` is not a member.
    pub fn path(&self, oid: Oid) -> Option<Vec<Oid>> {
        let mut path = vec![oid];
        let mut node = self.nodes.get(&oid)?;
        while node.parent.is_valid() {
            path.push(node.parent);
            node = self
                .nodes
                .get(&node.parent)
                .expect("PPTreeSubSet: parent of a member is not a member");
        }
        path.reverse();
        Some(path)
    }

    /// Whether `path` could be added without a parent conflict.
    pub fn check_path(&self, path: &[Oid]) -> Result<(), PPError> {
        let path = norm_path(path);
        let mut parent = Oid::INVALID;
        for &oid in path {
            if !oid.is_valid() {
                return Err(PPError::InvalidOidInPath {
                    path: path.to_vec(),
                });
            }
            if let Some(n) = self.nodes.get(&oid)
                && n.parent != parent
            {
                return Err(PPError::TwoParents {
                    node: oid,
                    have: n.parent,
                    want: parent,
                });
            }
            parent = oid;
        }
        Ok(())
    }

    /// Adds every node of `path` (normalized with [`norm_path`]).
    pub fn add_path(&mut self, path: &[Oid]) -> Result<(), PPError> {
        self.check_path(path)?;
        let mut parent = Oid::INVALID;
        for &oid in norm_path(path) {
            if let std::collections::btree_map::Entry::Vacant(e) = self.nodes.entry(oid) {
                e.insert(PPNode { parent, nchild: 0 });
                if parent.is_valid() {
                    self.node_mut(parent).nchild += 1;
                }
            }
            parent = oid;
        }
        self.debug_verify();
        Ok(())
    }

    fn node_mut(&mut self, oid: Oid) -> &mut PPNode {
        self.nodes
            .get_mut(&oid)
            .unwrap_or_else(|| panic!("PPTreeSubSet: {oid:?} is not a member"))
    }

    /// `PP(leaves self ∪ leaves other)`. Panics if a node has different parents in the two sets
    /// (the sets then describe different trees: a bug upstream of this call).
    pub fn union_inplace(&mut self, other: &PPTreeSubSet) {
        self.x_union(other);
        self.debug_verify();
    }

    /// The union, unverified (intermediate state of [`PPTreeSubSet::apply_delta`]).
    fn x_union(&mut self, other: &PPTreeSubSet) {
        let mut added = Vec::new();
        for (&oid, n) in &other.nodes {
            match self.nodes.get(&oid) {
                Some(have) => assert!(
                    have.parent == n.parent,
                    "BUG: union: node {oid:?} reachable from multiple parents: {:?} and {:?}",
                    have.parent,
                    n.parent
                ),
                None => {
                    self.nodes.insert(
                        oid,
                        PPNode {
                            parent: n.parent,
                            nchild: 0,
                        },
                    );
                    added.push(n.parent);
                }
            }
        }
        for parent in added {
            if parent.is_valid() {
                self.node_mut(parent).nchild += 1;
            }
        }
    }

    /// `PP(leaves self \ leaves other)`. Only leaves of `other` that are leaves of `self` go;
    /// ancestors left without member children are collected.
    pub fn difference_inplace(&mut self, other: &PPTreeSubSet) {
        self.x_difference(other);
        self.debug_verify();
    }

    fn x_difference(&mut self, other: &PPTreeSubSet) {
        for (&oid, n) in &other.nodes {
            if n.nchild != 0 {
                continue;
            }
            let Some(have) = self.nodes.get(&oid) else {
                continue;
            };
            assert!(
                have.parent == n.parent,
                "BUG: difference: node {oid:?} reachable from multiple parents: {:?} and {:?}",
                have.parent,
                n.parent
            );
            if have.nchild != 0 {
                continue;
            }
            self.gc1(oid);
        }
    }

    /// Removes leaf `oid` and every ancestor it leaves childless.
    fn gc1(&mut self, oid: Oid) {
        let mut oid = oid;
        loop {
            let n = self
                .nodes
                .remove(&oid)
                .unwrap_or_else(|| panic!("PPTreeSubSet: gc of non-member {oid:?}"));
            debug_assert_eq!(n.nchild, 0, "gc of a node with children");
            if !n.parent.is_valid() {
                return;
            }
            let Some(p) = self.nodes.get_mut(&n.parent) else {
                // The parent went earlier inside a delta application; nothing to count.
                return;
            };
            p.nchild -= 1;
            if p.nchild != 0 {
                return;
            }
            oid = n.parent;
        }
    }

    /// `self ∪ other`.
    pub fn union(&self, other: &PPTreeSubSet) -> PPTreeSubSet {
        let mut s = self.clone();
        s.union_inplace(other);
        s
    }

    /// `self \ other`.
    pub fn difference(&self, other: &PPTreeSubSet) -> PPTreeSubSet {
        let mut s = self.clone();
        s.difference_inplace(other);
        s
    }

    /// Adds `sign · δ` to the `nchild` of the listed nodes that are members.
    fn x_fixup(&mut self, sign: i64, dnchild: &BTreeMap<Oid, u32>) {
        for (&oid, &d) in dnchild {
            if let Some(n) = self.nodes.get_mut(&oid) {
                let v = i64::from(n.nchild) + sign * i64::from(d);
                n.nchild = u32::try_from(v)
                    .unwrap_or_else(|_| panic!("BUG: nchild of {oid:?} fixed up to {v}"));
            }
        }
    }

    /// Applies a change: `self = (self \ δ.del) ∪ δ.add`, keeping moved subtrees whole.
    pub fn apply_delta(&mut self, d: &ΔPPTreeSubSet) {
        self.debug_verify();
        self.x_fixup(-1, &d.dnchild_non_leafs);
        self.x_difference(&d.del);
        self.x_union(&d.add);
        self.x_fixup(1, &d.dnchild_non_leafs);
        self.debug_verify();
    }

    fn debug_verify(&self) {
        if cfg!(debug_assertions) {
            self.verify();
        }
    }

    /// Asserts PP-connectedness: every parent is a member and every `nchild` is exact.
    pub fn verify(&self) {
        let mut count: BTreeMap<Oid, u32> = BTreeMap::new();
        for (oid, n) in &self.nodes {
            if n.parent.is_valid() {
                assert!(
                    self.nodes.contains_key(&n.parent),
                    "PPTreeSubSet: parent {:?} of {oid:?} is not a member",
                    n.parent
                );
                *count.entry(n.parent).or_default() += 1;
            }
        }
        for (oid, n) in &self.nodes {
            let want = count.get(oid).copied().unwrap_or(0);
            assert_eq!(
                n.nchild, want,
                "PPTreeSubSet: {oid:?} has nchild {} but {want} member children",
                n.nchild
            );
        }
    }
}

impl fmt::Debug for PPTreeSubSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{{")?;
        for (i, (oid, n)) in self.nodes.iter().enumerate() {
            if i > 0 {
                write!(f, " ")?;
            }
            let p = if n.parent.is_valid() {
                format!("{:x}", n.parent.0)
            } else {
                "ø".to_string()
            };
            write!(f, "{:x}:{{{p},{}}}", oid.0, n.nchild)?;
        }
        write!(f, "}}")
    }
}

/// The change of a [`PPTreeSubSet`] between two revisions of the tree.
#[allow(non_camel_case_types)]
#[derive(Clone, Default, PartialEq, Eq, Debug)]
pub struct ΔPPTreeSubSet {
    /// Paths no longer tracked (their leaves go).
    pub del: PPTreeSubSet,
    /// Paths newly tracked.
    pub add: PPTreeSubSet,
    /// Nodes that are leaves of `del`/`add` but have this many member children in the real set.
    pub dnchild_non_leafs: BTreeMap<Oid, u32>,
}

impl ΔPPTreeSubSet {
    /// The empty change.
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether applying this changes nothing by construction.
    pub fn is_empty(&self) -> bool {
        self.del.is_empty() && self.add.is_empty() && self.dnchild_non_leafs.is_empty()
    }

    /// Accumulates `other` into `self` (both describe the same transition).
    pub fn update(&mut self, other: &ΔPPTreeSubSet) {
        self.del.union_inplace(&other.del);
        self.add.union_inplace(&other.add);
        for (&oid, &d) in &other.dnchild_non_leafs {
            *self.dnchild_non_leafs.entry(oid).or_default() += d;
        }
    }

    /// The change in the opposite direction.
    pub fn reverse(&mut self) {
        std::mem::swap(&mut self.del, &mut self.add);
    }
}

//! BTrees over the object store: lookup, native insert/delete, invariant checks.
//!
//! A BTree is a root Tree object plus the nodes reachable from it (see
//! [`crate::object::TreeState`]). Work on a tree happens on an in-memory image, [`MemTree`]:
//! loaded from the store at a revision, modified (native insert/delete behave like ZODB's
//! `LOBTree` with `max_leaf_size = max_internal_size = 2`, so nodes split often), then
//! persisted as a batch of writes. The store drops writes that do not change a state, so δZ
//! names exactly the nodes whose state changed.
//!
//! Embedding: a root whose only child is a bucket without an oid stores that bucket inside its
//! own state ([`TreeState::Embedded`]); any other oid-less node gets a fresh oid when persisted.
//! A root without children is [`TreeState::Empty`]. A root object that does not exist is a
//! deleted tree (`ø`).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use crate::blib::KeyRange;
use crate::object::{Bucket, Key, LoadError, Object, Oid, Rev, TreeState};
use crate::store::MemStore;
use crate::topology::{Topology, TopologyBuilder, Value, child_keycov};

/// A bucket splits when it grows beyond this many entries (ZODB's `max_leaf_size`).
pub const MAX_LEAF_SIZE: usize = 2;
/// A Tree node splits when it grows beyond this many children (ZODB's `max_internal_size`).
pub const MAX_INTERNAL_SIZE: usize = 2;
/// Trees deeper than this are treated as corrupt (guards against reference cycles).
pub const MAX_DEPTH: usize = 64;

/// Why a tree could not be read or is invalid. Every variant names the offending object.
#[derive(Clone, PartialEq, Eq, Debug, thiserror::Error)]
pub enum BTreeError {
    /// The store refused the load.
    #[error("loading {oid:?}: {source}")]
    Load {
        /// The object being loaded.
        oid: Oid,
        /// The store's reason.
        source: LoadError,
    },
    /// A node references an object that does not exist at that revision.
    #[error("{parent:?} references {oid:?}, which does not exist")]
    Missing {
        /// The referencing node.
        parent: Oid,
        /// The missing object.
        oid: Oid,
    },
    /// A node violates a BTree invariant.
    #[error("node {oid:?}: {what}")]
    Invariant {
        /// The offending node (INVALID for an embedded bucket).
        oid: Oid,
        /// What is wrong.
        what: String,
    },
}

/// Checks bucket `b` with coverage `ccov`: reached once, keys strictly ascending and inside
/// its coverage.
fn check_bucket(b: &MemBucket, ccov: KeyRange, seen: &mut BTreeSet<Oid>) -> Result<(), BTreeError> {
    if b.oid.is_valid() && !seen.insert(b.oid) {
        return invariant(b.oid, "reachable twice");
    }
    if b.entries.windows(2).any(|w| w[0].0 >= w[1].0) {
        return invariant(b.oid, "bucket keys not strictly ascending");
    }
    if let Some((k, _)) = b.entries.iter().find(|(k, _)| !ccov.has(*k)) {
        return invariant(b.oid, format!("key {k} outside the keycov {ccov}"));
    }
    Ok(())
}

fn invariant<T>(oid: Oid, what: impl Into<String>) -> Result<T, BTreeError> {
    Err(BTreeError::Invariant {
        oid,
        what: what.into(),
    })
}

/// An in-memory node: a Tree or a Bucket.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum MemNode {
    /// An interior node.
    Tree(MemTree),
    /// A leaf.
    Bucket(MemBucket),
}

/// An in-memory Tree node; `oid` is INVALID for a node not yet persisted.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct MemTree {
    /// The node's oid (INVALID: not yet persisted).
    pub oid: Oid,
    /// Separator keys: `keys.len() + 1 == children.len()` unless the tree is empty.
    pub keys: Vec<Key>,
    /// Children, all Trees or all Buckets; empty only for an empty root.
    pub children: Vec<MemNode>,
}

/// An in-memory Bucket; `oid` is INVALID for an embedded or not yet persisted bucket.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct MemBucket {
    /// The bucket's oid (INVALID: embedded or not yet persisted).
    pub oid: Oid,
    /// `(key, value oid)` strictly ascending by key.
    pub entries: Vec<(Key, Oid)>,
}

/// One bucket of a tree as the oracle sees it.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct BucketInfo {
    /// The bucket's oid; INVALID for an embedded bucket, an empty or a deleted tree.
    pub oid: Oid,
    /// The keys the bucket covers by its position in the tree (its keycov: the range its
    /// parents' separators give it, whatever keys it holds).
    pub keycov: KeyRange,
    /// Oids from the root to the bucket (ending in INVALID for an embedded bucket, an empty or
    /// a deleted tree).
    pub path: Vec<Oid>,
    /// The bucket's entries: key → value oid.
    pub entries: BTreeMap<Key, Oid>,
    /// The bucket's entries with values resolved to their names: key → value letter.
    pub kv: BTreeMap<Key, Value>,
}

impl MemNode {
    /// The node's oid.
    pub fn oid(&self) -> Oid {
        match self {
            MemNode::Tree(t) => t.oid,
            MemNode::Bucket(b) => b.oid,
        }
    }

    /// Number of children (Tree) or entries (Bucket): the size ZODB compares to its limits.
    fn size(&self) -> usize {
        match self {
            MemNode::Tree(t) => t.children.len(),
            MemNode::Bucket(b) => b.entries.len(),
        }
    }

    /// The smallest key in the subtree (of its leftmost bucket).
    fn first_key(&self) -> Option<Key> {
        match self {
            MemNode::Tree(t) => t.children.first().and_then(MemNode::first_key),
            MemNode::Bucket(b) => b.entries.first().map(|e| e.0),
        }
    }
}

impl MemTree {
    /// An empty tree with root `oid`.
    pub fn empty(oid: Oid) -> MemTree {
        MemTree {
            oid,
            keys: Vec::new(),
            children: Vec::new(),
        }
    }

    /// The child index covering `key`: the number of separators ≤ key.
    fn child_index(&self, key: Key) -> usize {
        self.keys.partition_point(|k| *k <= key)
    }

    /// The value oid of `key`.
    pub fn get(&self, key: Key) -> Option<Oid> {
        let mut node = self;
        loop {
            match node.children.get(node.child_index(key))? {
                MemNode::Tree(t) => node = t,
                MemNode::Bucket(b) => {
                    let i = b.entries.binary_search_by_key(&key, |e| e.0).ok()?;
                    return Some(b.entries[i].1);
                }
            }
        }
    }

    /// All `(key, value)` entries, ascending.
    pub fn entries(&self) -> Vec<(Key, Oid)> {
        let mut out = Vec::new();
        self.for_each_bucket(KeyRange::ALL, &mut vec![], &mut |b, _, _| {
            out.extend_from_slice(&b.entries)
        });
        out
    }

    /// Sets `key` to `value` the way ZODB does: a node that grows beyond its maximum size is
    /// split in half by its parent, and a node reaching twice the maximum pushes its children
    /// one level down (which only the root can reach). New nodes have INVALID oids.
    pub fn insert(&mut self, key: Key, value: Oid) {
        self.insert_rec(key, value);
    }

    /// Returns whether the subtree grew by one key.
    fn insert_rec(&mut self, key: Key, value: Oid) -> bool {
        if self.children.is_empty() {
            self.children.push(MemNode::Bucket(MemBucket {
                oid: Oid::INVALID,
                entries: Vec::new(),
            }));
        }
        let i = self.child_index(key);
        let grew = match &mut self.children[i] {
            MemNode::Tree(t) => t.insert_rec(key, value),
            MemNode::Bucket(b) => match b.entries.binary_search_by_key(&key, |e| e.0) {
                Ok(j) => {
                    b.entries[j].1 = value;
                    false
                }
                Err(j) => {
                    b.entries.insert(j, (key, value));
                    true
                }
            },
        };
        if grew {
            let limit = match &self.children[i] {
                MemNode::Tree(_) => MAX_INTERNAL_SIZE,
                MemNode::Bucket(_) => MAX_LEAF_SIZE,
            };
            if self.children[i].size() > limit {
                self.grow(i);
            }
        }
        grew
    }

    /// Splits child `i` in half (ZODB `BTree_grow`), then pushes this node's children down a
    /// level if it reached twice the maximum size (ZODB `BTree_split_root`).
    fn grow(&mut self, i: usize) {
        let (sep, right) = match &mut self.children[i] {
            MemNode::Bucket(b) => {
                let right = b.entries.split_off(b.entries.len() / 2);
                (
                    right[0].0,
                    MemNode::Bucket(MemBucket {
                        oid: Oid::INVALID,
                        entries: right,
                    }),
                )
            }
            MemNode::Tree(t) => {
                let at = t.children.len() / 2;
                let children = t.children.split_off(at);
                let mut keys = t.keys.split_off(at - 1);
                // The separator of the moved half becomes the parent's separator.
                let sep = keys.remove(0);
                (
                    sep,
                    MemNode::Tree(MemTree {
                        oid: Oid::INVALID,
                        keys,
                        children,
                    }),
                )
            }
        };
        self.keys.insert(i, sep);
        self.children.insert(i + 1, right);
        debug_assert_eq!(self.keys.len() + 1, self.children.len());
        if self.children.len() >= 2 * MAX_INTERNAL_SIZE {
            let down = MemTree {
                oid: Oid::INVALID,
                keys: std::mem::take(&mut self.keys),
                children: std::mem::take(&mut self.children),
            };
            self.children.push(MemNode::Tree(down));
            self.grow(0);
        }
    }

    /// Removes `key` the way ZODB does (no rebalancing: empty children are unlinked, a
    /// separator equal to the removed key is replaced by the child's new first key). Returns
    /// whether the key was present.
    pub fn delete(&mut self, key: Key) -> bool {
        if self.children.is_empty() {
            return false;
        }
        let i = self.child_index(key);
        let found = match &mut self.children[i] {
            MemNode::Tree(t) => t.delete(key),
            MemNode::Bucket(b) => match b.entries.binary_search_by_key(&key, |e| e.0) {
                Ok(j) => {
                    b.entries.remove(j);
                    true
                }
                Err(_) => false,
            },
        };
        if !found {
            return false;
        }
        let child_size = self.children[i].size();
        if i > 0 && child_size > 0 && self.keys[i - 1] == key {
            // The child's first key is the smallest key left, hence above the old separator.
            if let Some(first) = self.children[i].first_key() {
                self.keys[i - 1] = first;
            }
        }
        if child_size == 0 {
            self.children.remove(i);
            if i > 0 {
                self.keys.remove(i - 1);
            } else if !self.keys.is_empty() {
                self.keys.remove(0);
            }
        }
        true
    }

    /// Sets the content to exactly `kv`: deletes keys not in `kv` (ascending), then inserts or
    /// updates the others (ascending).
    pub fn set_content(&mut self, kv: &BTreeMap<Key, Oid>) {
        for (k, _) in self.entries() {
            if !kv.contains_key(&k) {
                let deleted = self.delete(k);
                debug_assert!(deleted);
            }
        }
        for (k, v) in kv {
            if self.get(*k) != Some(*v) {
                self.insert(*k, *v);
            }
        }
        debug_assert_eq!(self.entries().len(), kv.len());
    }

    /// Calls `f(bucket, keycov, path)` for every bucket left to right; `path` is the oids from
    /// this node to the bucket's parent (the bucket itself is not included).
    fn for_each_bucket<'a>(
        &'a self,
        cov: KeyRange,
        path: &mut Vec<Oid>,
        f: &mut impl FnMut(&'a MemBucket, KeyRange, &[Oid]),
    ) {
        path.push(self.oid);
        for (i, child) in self.children.iter().enumerate() {
            let ccov = child_keycov(&self.keys, cov, i);
            match child {
                MemNode::Tree(t) => t.for_each_bucket(ccov, path, f),
                MemNode::Bucket(b) => f(b, ccov, path),
            }
        }
        path.pop();
    }

    /// Assigns fresh oids to oid-less nodes (except a bucket embedded in the root) and returns
    /// the state of every node as a batch of writes. The root's oid must be valid.
    pub fn persist(&mut self, store: &MemStore) -> Vec<(Oid, Option<Object>)> {
        assert!(self.oid.is_valid(), "persisting a tree without a root oid");
        let mut out = Vec::new();
        self.persist_rec(store, true, &mut out);
        out
    }

    fn persist_rec(
        &mut self,
        store: &MemStore,
        is_root: bool,
        out: &mut Vec<(Oid, Option<Object>)>,
    ) {
        if self.oid == Oid::INVALID {
            self.oid = store.alloc_oid();
        }
        let state = match self.children.as_mut_slice() {
            [] => TreeState::Empty,
            [MemNode::Bucket(b)] if is_root && b.oid == Oid::INVALID => {
                TreeState::Embedded(Bucket {
                    entries: b.entries.clone(),
                })
            }
            children => {
                for child in children.iter_mut() {
                    match child {
                        MemNode::Tree(t) => t.persist_rec(store, false, out),
                        MemNode::Bucket(b) => {
                            if b.oid == Oid::INVALID {
                                b.oid = store.alloc_oid();
                            }
                            out.push((
                                b.oid,
                                Some(Object::Bucket(Bucket {
                                    entries: b.entries.clone(),
                                })),
                            ));
                        }
                    }
                }
                TreeState::Node {
                    keys: self.keys.clone(),
                    children: self.children.iter().map(MemNode::oid).collect(),
                }
            }
        };
        out.push((self.oid, Some(Object::Tree(state))));
    }

    /// Checks the BTree invariants; the error names the node and what is wrong.
    pub fn check(&self) -> Result<(), BTreeError> {
        let mut seen = BTreeSet::new();
        self.check_rec(KeyRange::ALL, true, &mut seen)
    }

    fn check_rec(
        &self,
        cov: KeyRange,
        is_root: bool,
        seen: &mut BTreeSet<Oid>,
    ) -> Result<(), BTreeError> {
        let oid = self.oid;
        if !oid.is_valid() {
            return invariant(oid, "tree node without an oid");
        }
        if !seen.insert(oid) {
            return invariant(oid, "reachable twice");
        }
        if self.children.is_empty() {
            if !is_root {
                return invariant(oid, "empty Tree below the root");
            }
            if !self.keys.is_empty() {
                return invariant(oid, "empty Tree with separator keys");
            }
            return Ok(());
        }
        self.check_separators(cov)?;
        for (i, child) in self.children.iter().enumerate() {
            let ccov = child_keycov(&self.keys, cov, i);
            match child {
                MemNode::Tree(t) => t.check_rec(ccov, false, seen)?,
                MemNode::Bucket(b) => {
                    let embedded = is_root && self.children.len() == 1;
                    if !b.oid.is_valid() && !embedded {
                        return invariant(oid, format!("child {i} is a bucket without an oid"));
                    }
                    check_bucket(b, ccov, seen)?;
                }
            }
        }
        Ok(())
    }

    /// Checks a non-empty Tree's separators against its children and its coverage `cov`, and
    /// that its children are all Trees or all Buckets.
    fn check_separators(&self, cov: KeyRange) -> Result<(), BTreeError> {
        let oid = self.oid;
        if self.keys.len() + 1 != self.children.len() {
            return invariant(
                oid,
                format!(
                    "{} separators for {} children",
                    self.keys.len(),
                    self.children.len()
                ),
            );
        }
        if self.keys.windows(2).any(|w| w[0] >= w[1]) {
            return invariant(
                oid,
                format!("separators {:?} not strictly ascending", self.keys),
            );
        }
        if let (Some(first), Some(last)) = (self.keys.first(), self.keys.last())
            && (*first <= cov.lo || *last > cov.hi_)
        {
            return invariant(
                oid,
                format!("separators {:?} outside the keycov {cov}", self.keys),
            );
        }
        let trees = self
            .children
            .iter()
            .filter(|c| matches!(c, MemNode::Tree(_)))
            .count();
        if trees != 0 && trees != self.children.len() {
            return invariant(oid, "children are a mix of Trees and Buckets");
        }
        Ok(())
    }

    /// The topology of this tree with values named by `value_of`. An empty tree is `T/B:`.
    pub fn to_topology(
        &self,
        mut value_of: impl FnMut(Oid) -> Result<Value, BTreeError>,
    ) -> Result<Topology, BTreeError> {
        let mut b = TopologyBuilder::new();
        if self.children.is_empty() {
            b.tree(&[]).bucket_kv([]);
        } else {
            // Level order over the image.
            let mut level: Vec<&MemNode> = Vec::new();
            b.tree(&self.keys);
            level.extend(self.children.iter());
            while !level.is_empty() {
                let mut next = Vec::new();
                for node in level {
                    match node {
                        MemNode::Tree(t) => {
                            b.tree(&t.keys);
                            next.extend(t.children.iter());
                        }
                        MemNode::Bucket(bk) => {
                            let values = bk
                                .entries
                                .iter()
                                .map(|(_, v)| value_of(*v))
                                .collect::<Result<Vec<Value>, _>>()?;
                            b.bucket_kv(bk.entries.iter().map(|e| e.0).zip(values.iter()));
                        }
                    }
                }
                level = next;
            }
        }
        b.finish()
            .or_else(|e| invariant(self.oid, format!("not a valid topology: {e}")))
    }
}

/// Loads the tree rooted at `root` as of `at`; `Ok(None)` if the root does not exist (`ø`).
pub fn load_tree(store: &MemStore, root: Oid, at: Rev) -> Result<Option<MemTree>, BTreeError> {
    let get = |oid| {
        store
            .get(oid, at)
            .map_err(|source| BTreeError::Load { oid, source })
    };
    let Some(obj) = get(root)? else {
        return Ok(None);
    };
    load_tree_node(&get, root, &obj, 0).map(Some)
}

fn load_tree_node(
    get: &impl Fn(Oid) -> Result<Option<Arc<Object>>, BTreeError>,
    oid: Oid,
    obj: &Object,
    depth: usize,
) -> Result<MemTree, BTreeError> {
    if depth > MAX_DEPTH {
        return invariant(oid, format!("deeper than {MAX_DEPTH} levels (cycle?)"));
    }
    let Object::Tree(state) = obj else {
        return invariant(oid, "expected a Tree object");
    };
    let mut tree = MemTree::empty(oid);
    match state {
        TreeState::Empty => {}
        TreeState::Embedded(b) => tree.children.push(MemNode::Bucket(MemBucket {
            oid: Oid::INVALID,
            entries: b.entries.clone(),
        })),
        TreeState::Node { keys, children } => {
            if keys.len() + 1 != children.len() {
                return invariant(
                    oid,
                    format!("{} separators for {} children", keys.len(), children.len()),
                );
            }
            tree.keys = keys.clone();
            for &child in children {
                let Some(cobj) = get(child)? else {
                    return Err(BTreeError::Missing {
                        parent: oid,
                        oid: child,
                    });
                };
                tree.children.push(match &*cobj {
                    Object::Tree(_) => MemNode::Tree(load_tree_node(get, child, &cobj, depth + 1)?),
                    Object::Bucket(b) => MemNode::Bucket(MemBucket {
                        oid: child,
                        entries: b.entries.clone(),
                    }),
                    Object::Value(_) => {
                        return invariant(oid, format!("child {child:?} is a value object"));
                    }
                });
            }
        }
    }
    Ok(tree)
}

/// The value oid of `key` in the tree at `root` as of `at` (`None`: absent or tree deleted).
pub fn lookup(store: &MemStore, root: Oid, key: Key, at: Rev) -> Result<Option<Oid>, BTreeError> {
    Ok(load_tree(store, root, at)?.and_then(|t| t.get(key)))
}

/// Loads the tree at `root` as of `at` and checks its invariants (a deleted tree is valid).
pub fn check(store: &MemStore, root: Oid, at: Rev) -> Result<(), BTreeError> {
    match load_tree(store, root, at)? {
        Some(t) => t.check(),
        None => Ok(()),
    }
}

/// The name of the value object `oid` as of `at`.
pub fn value_name(store: &MemStore, oid: Oid, at: Rev) -> Result<Value, BTreeError> {
    match store
        .get(oid, at)
        .map_err(|source| BTreeError::Load { oid, source })?
    {
        Some(obj) => match &*obj {
            Object::Value(s) => Ok(Value::from(s.as_str())),
            _ => invariant(oid, "expected a value object"),
        },
        None => invariant(oid, "value object does not exist"),
    }
}

/// The topology of the tree at `root` as of `at`: `ø` if the root does not exist.
pub fn topology_at(store: &MemStore, root: Oid, at: Rev) -> Result<Topology, BTreeError> {
    match load_tree(store, root, at)? {
        Some(t) => t.to_topology(|v| value_name(store, v, at)),
        None => Ok(Topology::deleted()),
    }
}

/// The buckets of the tree at `root` as of `at`, left to right, for the oracle. An empty or
/// deleted tree is one INVALID bucket covering everything with path `[root, INVALID]`.
pub fn bucket_listing(store: &MemStore, root: Oid, at: Rev) -> Result<Vec<BucketInfo>, BTreeError> {
    let whole = || BucketInfo {
        oid: Oid::INVALID,
        keycov: KeyRange::ALL,
        path: vec![root, Oid::INVALID],
        entries: BTreeMap::new(),
        kv: BTreeMap::new(),
    };
    let Some(tree) = load_tree(store, root, at)? else {
        return Ok(vec![whole()]);
    };
    if tree.children.is_empty() {
        return Ok(vec![whole()]);
    }
    let mut out = Vec::new();
    let mut failed = None;
    tree.for_each_bucket(KeyRange::ALL, &mut Vec::new(), &mut |b, keycov, path| {
        let mut kv = BTreeMap::new();
        for (k, v) in &b.entries {
            match value_name(store, *v, at) {
                Ok(name) => {
                    kv.insert(*k, name);
                }
                Err(e) => failed = Some(e),
            }
        }
        let mut full = path.to_vec();
        full.push(b.oid);
        out.push(BucketInfo {
            oid: b.oid,
            keycov,
            path: full,
            entries: b.entries.iter().copied().collect(),
            kv,
        });
    });
    match failed {
        Some(e) => Err(e),
        None => Ok(out),
    }
}

/// The topology ZODB creates by inserting `kv` in ascending key order into an empty tree.
pub fn native_topology(kv: &BTreeMap<Key, Value>) -> Topology {
    // Value oids stand in for the letters: oid i names the i-th value.
    let names: Vec<&Value> = kv.values().collect();
    let mut tree = MemTree::empty(Oid(0));
    for (i, k) in kv.keys().enumerate() {
        tree.insert(*k, Oid(i as u64));
    }
    let topo = tree.to_topology(|v| Ok(names[v.0 as usize].clone()));
    // The image was built from sorted, distinct keys, so it always forms a topology.
    topo.unwrap_or_else(|e| unreachable!("native tree is not a topology: {e}"))
}

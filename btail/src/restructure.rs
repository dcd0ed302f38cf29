//! Reshaping a stored tree to a given topology with minimal object churn, and the tree test
//! environment built on it.
//!
//! Restructure works in two steps, in one commit:
//! 1. the tree's key → value content is set to the topology's by native insert/delete (as a
//!    client would), which may split and unlink nodes;
//! 2. the resulting nodes form the pool of objects to reuse: the Trees of each depth of the
//!    new topology are assigned to the pool's Trees of the same depth, then all buckets to all
//!    pool buckets, by an optimal assignment minimizing `(Δlo)² + (Δhi)²` of the keycovs
//!    (±∞ counted as ±10⁴). Unmatched new nodes get fresh objects; surplus pool nodes are
//!    dropped (they stay in the store, unreferenced).
//!
//! Every node's state is then written; the store keeps only real changes, so δZ lists exactly
//! the nodes whose state changed — the ΔBtail oracle depends on it. Special shapes: `T/B:` is
//! the empty tree ([`TreeState::Empty`](crate::object::TreeState::Empty)), a top-level `T/B`
//! bucket is embedded in the root, deeper buckets always get oids, and `ø` deletes the root
//! object (the root oid stays, so a later topology re-creates the same tree).

use std::collections::BTreeMap;

use pathfinding::kuhn_munkres::kuhn_munkres;
use pathfinding::matrix::Matrix;

use crate::blib::KeyRange;
use crate::btree::{self, BTreeError, BucketInfo, MemBucket, MemNode, MemTree};
use crate::object::{KEY_MAX, KEY_MIN, Key, Object, Oid, Rev, TreeState};
use crate::store::{Commit, CommitError, MemStore};
use crate::topology::{Node, Topology, TopologyError, Value};

/// The magnitude standing in for ±∞ in the assignment cost.
const INFINITY_COST_KEY: i128 = 10_000;
/// Cap on one assignment cost, so that sums over a matrix cannot overflow.
const MAX_COST: i128 = 1 << 40;

/// Why a restructure (or a test-env commit) failed; nothing is committed then.
#[derive(Clone, PartialEq, Eq, Debug, thiserror::Error)]
pub enum RestructureError {
    /// The stored tree could not be read or is corrupt.
    #[error("stored tree: {0}")]
    Tree(#[from] BTreeError),
    /// The topology violates the BTree key invariants.
    #[error("topology: {0}")]
    Topology(#[from] TopologyError),
    /// The topology's root is a Bucket; a tree's root is always a Tree.
    #[error("topology {0}: the root must be a Tree")]
    BucketRoot(String),
    /// A bucket of the topology carries no values.
    #[error("topology {0}: every bucket needs values (k:v)")]
    KeyOnly(String),
    /// The topology names a value that has no object.
    #[error("value {0:?} has no value object")]
    UnknownValue(Value),
    /// The store refused the commit.
    #[error("commit: {0}")]
    Commit(#[from] CommitError),
    /// After the commit the stored tree does not have the requested topology.
    #[error("stored topology {got} differs from the requested {want}")]
    Mismatch {
        /// The requested topology.
        want: String,
        /// What was read back.
        got: String,
    },
}

/// A node position for the assignment: keycov mapped to cost coordinates.
#[derive(Clone, Copy, Debug)]
struct Span {
    lo: i128,
    hi: i128,
}

impl Span {
    fn of(cov: KeyRange) -> Span {
        let lo = if cov.lo == KEY_MIN {
            -INFINITY_COST_KEY
        } else {
            i128::from(cov.lo)
        };
        let hi = if cov.hi_ == KEY_MAX {
            INFINITY_COST_KEY
        } else {
            i128::from(cov.hi_) + 1
        };
        Span { lo, hi }
    }

    fn cost(self, other: Span) -> i64 {
        let d = (self.lo - other.lo).pow(2) + (self.hi - other.hi).pow(2);
        // Bounded by MAX_COST, which fits in i64.
        d.min(MAX_COST) as i64
    }
}

/// For each new span, the index of the pool span assigned to it (if any), minimizing the
/// total cost.
fn assign(new: &[Span], pool: &[Span]) -> Vec<Option<usize>> {
    if new.is_empty() || pool.is_empty() {
        return vec![None; new.len()];
    }
    // kuhn_munkres maximizes and needs rows ≤ columns: negate, and orient the smaller side
    // as rows.
    if new.len() <= pool.len() {
        let w = Matrix::from_fn(new.len(), pool.len(), |(r, c)| -new[r].cost(pool[c]));
        let (_, cols) = kuhn_munkres(&w);
        cols.into_iter().map(Some).collect()
    } else {
        let w = Matrix::from_fn(pool.len(), new.len(), |(r, c)| -pool[r].cost(new[c]));
        let (_, cols) = kuhn_munkres(&w);
        let mut out = vec![None; new.len()];
        for (p, n) in cols.into_iter().enumerate() {
            out[n] = Some(p);
        }
        out
    }
}

/// A pool node: its oid (INVALID for a node created by step 1), depth and position.
#[derive(Clone, Copy, Debug)]
struct PoolNode {
    oid: Oid,
    depth: usize,
    span: Span,
}

fn collect_pool(
    tree: &MemTree,
    cov: KeyRange,
    depth: usize,
    trees: &mut Vec<PoolNode>,
    buckets: &mut Vec<PoolNode>,
) {
    for (i, child) in tree.children.iter().enumerate() {
        let ccov = crate::topology::child_keycov(&tree.keys, cov, i);
        let node = PoolNode {
            oid: child.oid(),
            depth: depth + 1,
            span: Span::of(ccov),
        };
        match child {
            MemNode::Tree(t) => {
                trees.push(node);
                collect_pool(t, ccov, depth + 1, trees, buckets);
            }
            MemNode::Bucket(_) => buckets.push(node),
        }
    }
}

/// Whether the topology is the top-level `T/B` shape whose bucket is embedded in the root.
fn is_embedded_shape(topo: &Topology) -> bool {
    topo.root()
        .is_some_and(|r| r.is_tree() && r.keys().is_empty() && !r.child(0).is_tree())
}

/// The batch of writes that reshapes the tree at `root` (as of the store's head) into `topo`.
/// `value_oids` names the value object of every value the topology uses.
pub fn restructure_writes(
    store: &MemStore,
    root: Oid,
    topo: &Topology,
    value_oids: &BTreeMap<Value, Oid>,
) -> Result<Vec<(Oid, Option<Object>)>, RestructureError> {
    let head = store.head();
    let current = btree::load_tree(store, root, head)?;
    let Some(troot) = topo.root() else {
        // ø: delete the root object; its nodes stay in the store unreferenced.
        return Ok(if current.is_some() {
            vec![(root, None)]
        } else {
            vec![]
        });
    };
    if !troot.is_tree() {
        return Err(RestructureError::BucketRoot(topo.to_string()));
    }
    if !topo.is_valued() {
        return Err(RestructureError::KeyOnly(topo.to_string()));
    }
    let kv = topology_kv(topo, value_oids)?;

    // Step 1: native content change; a deleted tree starts over empty with the same root.
    let mut tree = current.unwrap_or_else(|| MemTree::empty(root));
    tree.set_content(&kv);
    let (mut pool_trees, mut pool_buckets) = (Vec::new(), Vec::new());
    collect_pool(&tree, KeyRange::ALL, 0, &mut pool_trees, &mut pool_buckets);

    // Step 2: assign the new topology's nodes to pool nodes.
    let oids = assign_oids(topo, root, &pool_trees, &mut pool_buckets);

    let mut shaped = shape(troot, &oids, &kv);
    debug_assert_eq!(
        shaped.entries(),
        kv.iter().map(|(k, v)| (*k, *v)).collect::<Vec<_>>()
    );
    Ok(shaped.persist(store))
}

/// The topology's keys with the oids of their values, after checking its keys.
fn topology_kv(
    topo: &Topology,
    value_oids: &BTreeMap<Value, Oid>,
) -> Result<BTreeMap<Key, Oid>, RestructureError> {
    topo.check_keys()?;
    let value_oid = |v: &Value| {
        value_oids
            .get(v)
            .copied()
            .ok_or_else(|| RestructureError::UnknownValue(v.clone()))
    };
    topo.kv()
        .iter()
        .map(|(k, v)| Ok((*k, value_oid(v)?)))
        .collect()
}

/// The oid of every node of `topo` (by level-order index): `root` for the root, a pool node's
/// for a node assigned to it (Trees depth by depth, buckets over all depths), INVALID for a
/// node that needs a new object.
fn assign_oids(
    topo: &Topology,
    root: Oid,
    pool_trees: &[PoolNode],
    pool_buckets: &mut [PoolNode],
) -> Vec<Oid> {
    let mut oids = vec![Oid::INVALID; topo.len()];
    oids[0] = root;
    let mut new_trees: Vec<(usize, usize, Span)> = Vec::new();
    let mut new_buckets: Vec<(usize, Span)> = Vec::new();
    let embedded = is_embedded_shape(topo);
    topo.walk(|node, cov, depth| {
        if depth == 0 {
            return;
        }
        if node.is_tree() {
            new_trees.push((node.index(), depth, Span::of(cov)));
        } else if !(embedded && depth == 1) {
            new_buckets.push((node.index(), Span::of(cov)));
        }
    });
    let max_depth = new_trees.iter().map(|t| t.1).max().unwrap_or(0);
    for depth in 1..=max_depth {
        let new: Vec<&(usize, usize, Span)> = new_trees.iter().filter(|t| t.1 == depth).collect();
        let pool: Vec<&PoolNode> = pool_trees.iter().filter(|p| p.depth == depth).collect();
        let spans_new: Vec<Span> = new.iter().map(|t| t.2).collect();
        let spans_pool: Vec<Span> = pool.iter().map(|p| p.span).collect();
        for (t, m) in new.iter().zip(assign(&spans_new, &spans_pool)) {
            if let Some(p) = m {
                oids[t.0] = pool[p].oid;
            }
        }
    }
    new_buckets.sort_by_key(|b| b.1.lo);
    pool_buckets.sort_by_key(|b| b.span.lo);
    let spans_new: Vec<Span> = new_buckets.iter().map(|b| b.1).collect();
    let spans_pool: Vec<Span> = pool_buckets.iter().map(|p| p.span).collect();
    for (b, m) in new_buckets.iter().zip(assign(&spans_new, &spans_pool)) {
        if let Some(p) = m {
            oids[b.0] = pool_buckets[p].oid;
        }
    }
    oids
}

/// The new tree: `troot` built with the assigned oids and the values' oids.
fn shape(troot: Node<'_>, oids: &[Oid], kv: &BTreeMap<Key, Oid>) -> MemTree {
    let mut shaped = match build(troot, oids, kv) {
        MemNode::Tree(t) => t,
        MemNode::Bucket(_) => unreachable!("root checked to be a Tree"),
    };
    if shaped.keys.is_empty()
        && matches!(shaped.children.as_slice(), [MemNode::Bucket(b)] if b.entries.is_empty() && !b.oid.is_valid())
    {
        // `T/B:` is the empty tree.
        shaped.children.clear();
    }
    shaped
}

/// The image of topology node `node`, with the oids assigned to the level-order indexes.
fn build(node: Node<'_>, oids: &[Oid], kv: &BTreeMap<Key, Oid>) -> MemNode {
    let oid = oids[node.index()];
    if node.is_tree() {
        MemNode::Tree(MemTree {
            oid,
            keys: node.keys().to_vec(),
            children: node.children().map(|c| build(c, oids, kv)).collect(),
        })
    } else {
        MemNode::Bucket(MemBucket {
            oid,
            // Every bucket key is in kv: kv was taken from these very buckets.
            entries: node.keys().iter().map(|k| (*k, kv[k])).collect(),
        })
    }
}

/// Reshapes the tree at `root` into `topo`, commits, and checks the stored tree read back
/// (topology and invariants). Every value of `topo` must have its value object in
/// `value_oids`. The commit may be empty if nothing changes.
pub fn restructure(
    store: &MemStore,
    root: Oid,
    topo: &Topology,
    value_oids: &BTreeMap<Value, Oid>,
) -> Result<Commit, RestructureError> {
    let writes = restructure_writes(store, root, topo, value_oids)?;
    let commit = store.commit(writes)?;
    verify_stored(store, root, commit.rev, topo)?;
    Ok(commit)
}

/// Checks that the tree at `root` as of `at` has topology `want` and valid invariants.
fn verify_stored(
    store: &MemStore,
    root: Oid,
    at: Rev,
    want: &Topology,
) -> Result<(), RestructureError> {
    let got = btree::topology_at(store, root, at)?;
    if got != *want {
        return Err(RestructureError::Mismatch {
            want: want.to_string(),
            got: got.to_string(),
        });
    }
    btree::check(store, root, at)?;
    Ok(())
}

/// One commit of the [`TreeEnv`]: what the oracle needs about a tree state.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct TreeCommit {
    /// The topology committed.
    pub topology: Topology,
    /// The commit's revision.
    pub rev: Rev,
    /// δZ: every oid whose state changed (tree nodes, value objects, the dummy).
    pub changed: Vec<Oid>,
    /// The buckets with keycov, oid, path and kv (Xkv); `ø` and `T/B:` are one INVALID bucket
    /// covering everything under the root.
    pub xkv: Vec<BucketInfo>,
    /// The flattened key → value content.
    pub kv: BTreeMap<Key, Value>,
}

/// The tree test environment: one tree in a fresh store, committed topology by topology.
///
/// Starts at `T/B:`. Value objects are created once per value name, in the commit that first
/// uses them. Committing the same topology twice in a row touches a dummy object so that the
/// commit is not empty.
#[derive(Debug)]
pub struct TreeEnv {
    store: MemStore,
    root: Oid,
    dummy: Oid,
    dummy_touches: u64,
    values: BTreeMap<Value, Oid>,
    names: BTreeMap<Oid, Value>,
    prev: Option<TreeCommit>,
    last: TreeCommit,
}

impl TreeEnv {
    /// A fresh store holding the empty tree `T/B:` (and the dummy object).
    pub fn new() -> Result<TreeEnv, RestructureError> {
        let store = MemStore::new();
        let root = store.alloc_oid();
        let dummy = store.alloc_oid();
        let c = store.commit(vec![
            (root, Some(Object::Tree(TreeState::Empty))),
            (dummy, Some(Object::Value("dummy0".into()))),
        ])?;
        let topology = Topology::parse("T/B:")?;
        let last = TreeCommit {
            xkv: btree::bucket_listing(&store, root, c.rev)?,
            kv: BTreeMap::new(),
            topology,
            rev: c.rev,
            changed: c.changed,
        };
        Ok(TreeEnv {
            store,
            root,
            dummy,
            dummy_touches: 0,
            values: BTreeMap::new(),
            names: BTreeMap::new(),
            prev: None,
            last,
        })
    }

    /// The store (clones share it).
    pub fn store(&self) -> &MemStore {
        &self.store
    }

    /// The tree's root oid (constant, also across `ø`).
    pub fn root(&self) -> Oid {
        self.root
    }

    /// The latest commit.
    pub fn head(&self) -> &TreeCommit {
        &self.last
    }

    /// The commit before the latest (`None` right after [`TreeEnv::new`]).
    pub fn prev(&self) -> Option<&TreeCommit> {
        self.prev.as_ref()
    }

    /// The oid of value object `name`, if created.
    pub fn value_oid(&self, name: &str) -> Option<Oid> {
        self.values.get(name).copied()
    }

    /// The name of value object `oid`, if it is one of this env's values.
    pub fn value_name(&self, oid: Oid) -> Option<&Value> {
        self.names.get(&oid)
    }

    /// Commits `topo`, re-reads and checks the stored tree, and returns the commit.
    pub fn commit(&mut self, topo: &Topology) -> Result<TreeCommit, RestructureError> {
        let mut writes = Vec::new();
        for v in topo.kv().values() {
            if !self.values.contains_key(v) {
                let oid = self.store.alloc_oid();
                self.values.insert(v.clone(), oid);
                self.names.insert(oid, v.clone());
                writes.push((oid, Some(Object::Value(v.to_string()))));
            }
        }
        writes.extend(restructure_writes(
            &self.store,
            self.root,
            topo,
            &self.values,
        )?);
        if *topo == self.last.topology {
            self.dummy_touches += 1;
            writes.push((
                self.dummy,
                Some(Object::Value(format!("dummy{}", self.dummy_touches))),
            ));
        }
        let c = self.store.commit(writes)?;
        verify_stored(&self.store, self.root, c.rev, topo)?;
        let commit = TreeCommit {
            topology: topo.clone(),
            rev: c.rev,
            changed: c.changed,
            xkv: btree::bucket_listing(&self.store, self.root, c.rev)?,
            kv: topo.kv(),
        };
        self.prev = Some(std::mem::replace(&mut self.last, commit.clone()));
        Ok(commit)
    }
}

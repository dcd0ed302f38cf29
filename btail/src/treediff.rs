//! The diff of the tracked part of a tree between two revisions.
//!
//! Model: ΔBtail keeps `trackSet`, a PP-connected set of tree nodes (see
//! [`crate::blib::pptreesubset`]). Given δZ (every oid changed by one commit),
//! [`δz_connect_tracked`] keeps the changed tracked nodes plus the unchanged tracked nodes that
//! connect them to changed ancestors, and finds the *tops*: changed tracked nodes without a
//! changed tracked ancestor. [`treediff`] then diffs each top between the old and the new
//! revision:
//!
//! - a bucket top is diffed entry by entry ([`diff_b`]);
//! - a tree top goes through `diff_t`: phase 1 expands the old side top-down along the
//!   changed tracked nodes, reporting every reached old bucket as deleted and skipping tracked
//!   subtrees that are found unchanged, at the same place, in the new side; phase 2 makes both
//!   sides consistent: every key range removed on one side is walked on the other side, and
//!   the buckets found there are added (new side) or removed (old side), until no new range is
//!   queued. Contributions are combined with [`δ_merge`], so a key that moved between buckets
//!   with an unchanged value cancels out.
//!
//! The result is the key-level δ of the tracked keys (plus adjacent keys of the same buckets),
//! the change of the tracked set (`δtrack`), and `δtkeycov`: the keys that became covered by
//! tracked leaves. Objects are read through the async [`ObjectSource`]; the walk is iterative.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use crate::blib::{KeyRange, PPError, PPTreeSubSet, RangedKeySet, norm_path, ΔPPTreeSubSet};
use crate::object::{
    Bucket, KEY_MAX, KEY_MIN, Key, LoadError, Object, ObjectSource, Oid, Rev, TreeState,
};

/// The change of one key's value: old and new value oid, [`Oid::INVALID`] for "absent".
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct ΔValue {
    /// The value before (or [`Oid::INVALID`]).
    pub old: Oid,
    /// The value after (or [`Oid::INVALID`]).
    pub new: Oid,
}

impl ΔValue {
    /// The same change backwards.
    pub fn reversed(self) -> ΔValue {
        ΔValue {
            old: self.new,
            new: self.old,
        }
    }
}

/// Key-level δ of one tree.
pub type KVδ = BTreeMap<Key, ΔValue>;

/// Why a diff could not be computed.
#[derive(Clone, PartialEq, Eq, Debug, thiserror::Error)]
pub enum TreeDiffError {
    /// The object source failed.
    #[error(transparent)]
    Load(#[from] LoadError),
    /// The stored trees contradict the BTree invariants or the tracked set.
    #[error("corrupt tree: {0}")]
    Corrupt(String),
    /// A path could not join a tracked set.
    #[error(transparent)]
    Path(#[from] PPError),
}

fn corrupt(msg: String) -> TreeDiffError {
    TreeDiffError::Corrupt(msg)
}

/// A loaded tree node: a Tree, a Bucket, or the bucket embedded in a `T/B` root (oid invalid).
#[derive(Clone, Debug)]
pub(crate) struct Node {
    pub(crate) oid: Oid,
    obj: Arc<Object>,
}

/// What a [`Node`] is.
#[derive(Debug)]
pub(crate) enum NodeKind<'a> {
    /// A Tree (including an empty one: its own leaf).
    Tree(&'a TreeState),
    /// A Bucket, stored or embedded.
    Bucket(&'a Bucket),
}

impl Node {
    fn artificial_empty_tree() -> Node {
        Node {
            oid: Oid::INVALID,
            obj: Arc::new(Object::Tree(TreeState::Empty)),
        }
    }

    pub(crate) fn kind(&self) -> NodeKind<'_> {
        match &*self.obj {
            Object::Tree(TreeState::Embedded(b)) if !self.oid.is_valid() => NodeKind::Bucket(b),
            Object::Tree(t) => NodeKind::Tree(t),
            Object::Bucket(b) => NodeKind::Bucket(b),
            Object::Value(_) => unreachable!("Node never holds a value object"),
        }
    }

    /// Whether this node is a leaf of the range split (a bucket or an empty tree).
    fn is_leaf(&self) -> bool {
        matches!(
            self.kind(),
            NodeKind::Bucket(_) | NodeKind::Tree(TreeState::Empty)
        )
    }

    fn is_nonempty_tree(&self) -> bool {
        matches!(self.kind(), NodeKind::Tree(t) if *t != TreeState::Empty)
    }
}

/// Read access to the trees as of one revision.
#[derive(Debug)]
pub(crate) struct Conn<'a, S> {
    pub(crate) src: &'a S,
    pub(crate) at: Rev,
}

impl<S: ObjectSource> Conn<'_, S> {
    /// Loads a tree node (`None` if absent); a value object is corrupt here.
    pub(crate) async fn load(&self, oid: Oid) -> Result<Option<Node>, TreeDiffError> {
        match self.src.load(oid, self.at).await? {
            None => Ok(None),
            Some(obj) if matches!(*obj, Object::Value(_)) => Err(corrupt(format!(
                "{oid:?}@{:?} is a value object where a tree node is expected",
                self.at
            ))),
            Some(obj) => Ok(Some(Node { oid, obj })),
        }
    }

    async fn load_existing(&self, oid: Oid) -> Result<Node, TreeDiffError> {
        self.load(oid)
            .await?
            .ok_or_else(|| corrupt(format!("{oid:?} referenced but absent @{:?}", self.at)))
    }

    /// The children of a non-empty tree node with their key coverage inside `keycov`
    /// (children whose coverage is empty hold no key and are left out).
    async fn children(
        &self,
        node: &Node,
        keycov: KeyRange,
    ) -> Result<Vec<(Node, KeyRange)>, TreeDiffError> {
        let NodeKind::Tree(t) = node.kind() else {
            return Err(corrupt(format!(
                "{:?} expanded but is not a tree",
                node.oid
            )));
        };
        match t {
            TreeState::Empty => Ok(Vec::new()),
            TreeState::Embedded(_) => Ok(vec![(
                Node {
                    oid: Oid::INVALID,
                    obj: node.obj.clone(),
                },
                keycov,
            )]),
            TreeState::Node { keys, children } => {
                if children.len() != keys.len() + 1 {
                    return Err(corrupt(format!(
                        "{:?}: {} keys but {} children",
                        node.oid,
                        keys.len(),
                        children.len()
                    )));
                }
                let mut out = Vec::with_capacity(children.len());
                for (i, &c) in children.iter().enumerate() {
                    let cov = keycov.intersect(&child_cov(keys, i));
                    if cov.is_empty() {
                        continue;
                    }
                    out.push((self.load_existing(c).await?, cov));
                }
                Ok(out)
            }
        }
    }
}

/// The range covered by child `i` of a node with separator `keys`, ignoring the node's own
/// coverage: `[keys[i-1], keys[i] - 1]`, open-ended at the extremes.
pub(crate) fn child_cov(keys: &[Key], i: usize) -> KeyRange {
    let lo = if i == 0 { KEY_MIN } else { keys[i - 1] };
    let hi_ = match keys.get(i) {
        None => KEY_MAX,
        Some(&k) if k == KEY_MIN => return KeyRange::EMPTY,
        Some(&k) => k - 1,
    };
    KeyRange::new(lo, hi_)
}

/// A node placed in a [`RangeSplit`].
#[derive(Clone, Debug)]
pub(crate) struct NodeInRange {
    /// Path from the root to the node's parent.
    prefix: Arc<Vec<Oid>>,
    pub(crate) keycov: KeyRange,
    pub(crate) node: Node,
    done: bool,
}

impl NodeInRange {
    /// Path root..=node (the trailing oid is invalid for an embedded bucket or artificial tree).
    pub(crate) fn path(&self) -> Vec<Oid> {
        let mut p = Vec::with_capacity(self.prefix.len() + 1);
        p.extend_from_slice(&self.prefix);
        p.push(self.node.oid);
        p
    }
}

/// Nodes of one tree covering a key range without overlap, ascending; expanded lazily.
#[derive(Debug)]
pub(crate) struct RangeSplit {
    v: Vec<NodeInRange>,
}

impl RangeSplit {
    fn new(prefix: Vec<Oid>, keycov: KeyRange, node: Node) -> Self {
        RangeSplit {
            v: vec![NodeInRange {
                prefix: Arc::new(prefix),
                keycov,
                node,
                done: false,
            }],
        }
    }

    /// A split of the whole tree rooted at `root`.
    pub(crate) fn whole(root: Node) -> Self {
        Self::new(Vec::new(), KeyRange::ALL, root)
    }

    /// Index of the node covering `k`.
    fn get(&self, k: Key) -> Result<usize, TreeDiffError> {
        let i = self.v.partition_point(|n| n.keycov.hi_ < k);
        match self.v.get(i) {
            Some(n) if n.keycov.has(k) => Ok(i),
            _ => Err(corrupt(format!("key {k} not covered by the range split"))),
        }
    }

    /// Replaces the tree node at `i` by its children; returns the index range they occupy.
    async fn expand<S: ObjectSource>(
        &mut self,
        conn: &Conn<'_, S>,
        i: usize,
    ) -> Result<std::ops::Range<usize>, TreeDiffError> {
        let n = self.v[i].clone();
        debug_assert!(n.node.is_nonempty_tree(), "expand of a leaf");
        let children = conn.children(&n.node, n.keycov).await?;
        let mut prefix = (*n.prefix).clone();
        prefix.push(n.node.oid);
        let prefix = Arc::new(prefix);
        let len = children.len();
        let covered: Option<KeyRange> = children
            .first()
            .zip(children.last())
            .map(|(f, l)| KeyRange::new(f.1.lo, l.1.hi_));
        if covered != Some(n.keycov) {
            return Err(corrupt(format!(
                "children of {:?} cover {covered:?}, not {}",
                n.node.oid, n.keycov
            )));
        }
        self.v.splice(
            i..=i,
            children.into_iter().map(|(node, keycov)| NodeInRange {
                prefix: prefix.clone(),
                keycov,
                node,
                done: false,
            }),
        );
        Ok(i..i + len)
    }

    /// Index of the leaf covering `k`, expanding trees on the way.
    pub(crate) async fn get_to_leaf<S: ObjectSource>(
        &mut self,
        conn: &Conn<'_, S>,
        k: Key,
    ) -> Result<usize, TreeDiffError> {
        loop {
            let i = self.get(k)?;
            if self.v[i].node.is_leaf() {
                return Ok(i);
            }
            self.expand(conn, i).await?;
        }
    }

    pub(crate) fn at(&self, i: usize) -> &NodeInRange {
        &self.v[i]
    }
}

/// `δZConnectTracked`: the changed tracked nodes plus the unchanged tracked nodes connecting
/// them to changed tracked ancestors, and per root the tops (changed tracked nodes without a
/// changed tracked ancestor).
pub fn δz_connect_tracked(
    δz: &[Oid],
    track_set: &PPTreeSubSet,
) -> (BTreeSet<Oid>, BTreeMap<Oid, BTreeSet<Oid>>) {
    let changed: BTreeSet<Oid> = δz.iter().copied().collect();
    let mut δztc = BTreeSet::new();
    let mut tops: BTreeMap<Oid, BTreeSet<Oid>> = BTreeMap::new();
    for &oid in &changed {
        let Some(mut node) = track_set.get(oid) else {
            continue;
        };
        δztc.insert(oid);
        let mut cur = oid;
        let mut between = Vec::new();
        loop {
            let parent = node.parent;
            if !parent.is_valid() {
                tops.entry(cur).or_default().insert(oid);
                break;
            }
            if changed.contains(&parent) {
                δztc.extend(between);
                break;
            }
            between.push(parent);
            cur = parent;
            node = track_set
                .get(parent)
                .expect("PPTreeSubSet invariant: the parent of a member is a member");
        }
    }
    (δztc, tops)
}

/// The entry-wise diff of two buckets (`None` = empty).
pub fn diff_b(a: Option<&Bucket>, b: Option<&Bucket>) -> KVδ {
    let empty = Bucket::default();
    let (a, b) = (a.unwrap_or(&empty), b.unwrap_or(&empty));
    let mut δ = KVδ::new();
    let (mut i, mut j) = (0, 0);
    while i < a.entries.len() || j < b.entries.len() {
        let ea = a.entries.get(i);
        let eb = b.entries.get(j);
        match (ea, eb) {
            (Some(&(ka, va)), Some(&(kb, _))) if ka < kb => {
                δ.insert(
                    ka,
                    ΔValue {
                        old: va,
                        new: Oid::INVALID,
                    },
                );
                i += 1;
            }
            (Some(&(ka, va)), None) => {
                δ.insert(
                    ka,
                    ΔValue {
                        old: va,
                        new: Oid::INVALID,
                    },
                );
                i += 1;
            }
            (Some(&(ka, _)), Some(&(kb, vb))) if ka > kb => {
                δ.insert(
                    kb,
                    ΔValue {
                        old: Oid::INVALID,
                        new: vb,
                    },
                );
                j += 1;
            }
            (None, Some(&(kb, vb))) => {
                δ.insert(
                    kb,
                    ΔValue {
                        old: Oid::INVALID,
                        new: vb,
                    },
                );
                j += 1;
            }
            (Some(&(k, va)), Some(&(_, vb))) => {
                if va != vb {
                    δ.insert(k, ΔValue { old: va, new: vb });
                }
                i += 1;
                j += 1;
            }
            (None, None) => unreachable!("loop condition"),
        }
    }
    δ
}

/// `δ ⊕= δ2` for contributions of different buckets of one transition: a key in both must be a
/// removal on one side and an addition on the other (it migrated); unchanged results vanish.
pub fn δ_merge(δ: &mut KVδ, δ2: KVδ) -> Result<(), TreeDiffError> {
    for (k, v2) in δ2 {
        let Some(&v1) = δ.get(&k) else {
            δ.insert(k, v2);
            continue;
        };
        let hole = |v: ΔValue| !v.old.is_valid() && !v.new.is_valid();
        let migrates = (!v1.new.is_valid() && !v2.old.is_valid())
            || (!v1.old.is_valid() && !v2.new.is_valid());
        if !migrates {
            return Err(corrupt(format!(
                "key {k} has duplicate entries: {v1:?} and {v2:?}"
            )));
        }
        let m = if hole(v2) {
            v1
        } else if hole(v1) {
            v2
        } else if !v2.new.is_valid() {
            ΔValue {
                old: v2.old,
                new: v1.new,
            }
        } else {
            ΔValue {
                old: v1.old,
                new: v2.new,
            }
        };
        if m.old == m.new {
            δ.remove(&k);
        } else {
            δ.insert(k, m);
        }
    }
    Ok(())
}

/// The result of diffing a tree's tracked part across one transition.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TreeDiff {
    /// Key-level δ.
    pub δt: KVδ,
    /// The change of the tracked set.
    pub δtrack: ΔPPTreeSubSet,
    /// Keys newly covered by tracked leaves.
    pub δtkeycov: RangedKeySet,
}

/// Diffs the tops of one root between `at_old` and `at_new` (see the module doc).
pub async fn treediff<S: ObjectSource>(
    src: &S,
    δtops: &BTreeSet<Oid>,
    δztc: &BTreeSet<Oid>,
    track_set: &PPTreeSubSet,
    at_old: Rev,
    at_new: Rev,
) -> Result<TreeDiff, TreeDiffError> {
    let old = Conn { src, at: at_old };
    let new = Conn { src, at: at_new };
    let mut out = TreeDiff::default();
    for &top in δtops {
        let a = old.load(top).await?;
        let b = new.load(top).await?;
        let d = diff_x(a, b, δztc, track_set, &old, &new).await?;
        for (k, v) in d.δt {
            if out.δt.insert(k, v).is_some() {
                return Err(corrupt(format!(
                    "key {k} present in two disconnected subtrees"
                )));
            }
        }
        out.δtrack.update(&d.δtrack);
        out.δtkeycov.union_inplace(&d.δtkeycov);
    }
    Ok(out)
}

async fn diff_x<S: ObjectSource>(
    a: Option<Node>,
    b: Option<Node>,
    δztc: &BTreeSet<Oid>,
    track_set: &PPTreeSubSet,
    old: &Conn<'_, S>,
    new: &Conn<'_, S>,
) -> Result<TreeDiff, TreeDiffError> {
    let is_tree = |n: &Node| matches!(n.kind(), NodeKind::Tree(_));
    match (&a, &b) {
        (None, None) => Ok(TreeDiff::default()),
        (Some(x), Some(y)) if is_tree(x) != is_tree(y) => Err(corrupt(format!(
            "object {:?}: type mutated {} -> {}",
            x.oid,
            kind_name(x),
            kind_name(y)
        ))),
        _ => {
            let any = a.as_ref().or(b.as_ref()).expect("one side is present");
            if is_tree(any) {
                diff_t(a, b, δztc, track_set, old, new).await
            } else {
                let bucket = |n: &Option<Node>| match n.as_ref().map(Node::kind) {
                    Some(NodeKind::Bucket(b)) => Some(b.clone()),
                    _ => None,
                };
                Ok(TreeDiff {
                    δt: diff_b(bucket(&a).as_ref(), bucket(&b).as_ref()),
                    ..TreeDiff::default()
                })
            }
        }
    }
}

fn kind_name(n: &Node) -> &'static str {
    match n.kind() {
        NodeKind::Tree(_) => "Tree",
        NodeKind::Bucket(_) => "Bucket",
    }
}

/// The path of `oid` in the tracked set and its key coverage (read through `conn`).
async fn tracked_path_cov<S: ObjectSource>(
    track_set: &PPTreeSubSet,
    oid: Oid,
    conn: &Conn<'_, S>,
) -> Result<(Vec<Oid>, KeyRange), TreeDiffError> {
    let path = track_set
        .path(oid)
        .ok_or_else(|| corrupt(format!("top {oid:?} is not tracked")))?;
    let mut cov = KeyRange::ALL;
    for w in path.windows(2) {
        let (parent, child) = (w[0], w[1]);
        let p = conn.load_existing(parent).await?;
        let NodeKind::Tree(TreeState::Node { keys, children }) = p.kind() else {
            return Err(corrupt(format!("{parent:?} has no child {child:?}")));
        };
        let j = children
            .iter()
            .position(|&c| c == child)
            .ok_or_else(|| corrupt(format!("{parent:?} has no child {child:?}")))?;
        cov = cov.intersect(&child_cov(keys, j));
    }
    Ok((path, cov))
}

/// A key range queue/done pair of one side of [`diff_t`].
#[derive(Debug, Default)]
struct Todo {
    queue: RangedKeySet,
    done: RangedKeySet,
}

impl Todo {
    fn push(&mut self, r: KeyRange) {
        if !self.done.has_range(r) {
            let mut add = RangedKeySet::from_range(r);
            add.difference_inplace(&self.done);
            self.queue.union_inplace(&add);
        }
    }
}

/// `diffT`: the diff of tree top `A` (old) against `B` (new). See the module doc.
async fn diff_t<S: ObjectSource>(
    a: Option<Node>,
    b: Option<Node>,
    δztc: &BTreeSet<Oid>,
    track_set: &PPTreeSubSet,
    old: &Conn<'_, S>,
    new: &Conn<'_, S>,
) -> Result<TreeDiff, TreeDiffError> {
    let ab_oid = b.as_ref().or(a.as_ref()).expect("one side is present").oid;
    let cov_conn = if b.is_some() { new } else { old };
    let (ab_path, ab_cov) = tracked_path_cov(track_set, ab_oid, cov_conn).await?;
    let mut out = TreeDiff::default();
    if a.is_none() || b.is_none() {
        // The top stays tracked even when its subtree goes, so re-creation is seen later.
        out.δtrack.del.add_path(&ab_path)?;
        // PLANTED BUG (sim only): on deletion the root is not kept in the tracking set.
        if !(b.is_none() && crate::bugs::active(crate::bugs::Bug::TreediffDropsRootOnDelete)) {
            out.δtrack.add.add_path(&ab_path)?;
        }
    }
    let b_empty = b.is_none();
    let atop = a.unwrap_or_else(Node::artificial_empty_tree);
    let btop = b.unwrap_or_else(Node::artificial_empty_tree);
    let prefix = ab_path[..ab_path.len() - 1].to_vec();
    let mut d = DiffT {
        δztc,
        track_set,
        old,
        new,
        av: RangeSplit::new(prefix.clone(), ab_cov, atop),
        bv: RangeSplit::new(prefix, ab_cov, btop),
        b_idx: BTreeMap::new(),
        ak: Todo::default(),
        bk: Todo::default(),
        adel: RangedKeySet::new(),
        badd: RangedKeySet::new(),
        out,
    };
    if !b_empty {
        let n = d.bv.at(0);
        d.b_idx.insert(n.node.oid, (n.path(), n.keycov));
    }
    d.expand_changed_a().await?;
    d.make_consistent().await?;
    d.out.δtkeycov = d.badd.difference(&d.adel);
    Ok(d.out)
}

/// The state of one `diffT`: both sides split into ranges, the key ranges each side still has
/// to visit, and the diff so far.
struct DiffT<'c, 'a, S> {
    δztc: &'c BTreeSet<Oid>,
    track_set: &'c PPTreeSubSet,
    old: &'c Conn<'a, S>,
    new: &'c Conn<'a, S>,
    av: RangeSplit,
    bv: RangeSplit,
    /// B nodes seen so far: oid -> (path, keycov).
    b_idx: BTreeMap<Oid, (Vec<Oid>, KeyRange)>,
    /// Key ranges A still has to visit.
    ak: Todo,
    /// Key ranges B still has to visit.
    bk: Todo,
    /// Keys covered by tracked A leaves that were removed.
    adel: RangedKeySet,
    /// Keys covered by B leaves that were added.
    badd: RangedKeySet,
    out: TreeDiff,
}

impl<S: ObjectSource> DiffT<'_, '_, S> {
    /// Phase 1: expands A along the changed tracked nodes; every A leaf reached is removed and
    /// its range queued for B.
    async fn expand_changed_a(&mut self) -> Result<(), TreeDiffError> {
        let mut aq: Vec<NodeInRange> = vec![self.av.at(0).clone()];
        while let Some(ra) = aq.pop() {
            let i = self.av.get(ra.keycov.lo)?;
            debug_assert_eq!(
                self.av.v[i].node.oid, ra.node.oid,
                "phase 1 node moved in Av"
            );
            match ra.node.kind() {
                NodeKind::Bucket(bucket) => {
                    δ_merge(&mut self.out.δt, diff_b(Some(bucket), None))?;
                    self.remove_a_leaf(i, &ra)?;
                }
                NodeKind::Tree(TreeState::Empty) => self.remove_a_leaf(i, &ra)?,
                NodeKind::Tree(_) => {
                    for ci in self.av.expand(self.old, i).await? {
                        let ac = self.av.v[ci].clone();
                        let oid = ac.node.oid;
                        if oid.is_valid() && !self.track_set.has(oid) {
                            continue;
                        }
                        if !self.moved_unchanged(&ac).await? {
                            aq.push(ac);
                        }
                    }
                }
            }
        }
        Ok(())
    }

    /// Phase 1's removal of the A leaf `ra` (at index `i` of Av).
    fn remove_a_leaf(&mut self, i: usize, ra: &NodeInRange) -> Result<(), TreeDiffError> {
        self.out.δtrack.del.add_path(&ra.path())?;
        self.adel.add_range(ra.keycov);
        self.bk.push(ra.keycov);
        self.av.v[i].done = true;
        Ok(())
    }

    /// Whether the tracked A child `ac` is a subtree that did not change and sits at the same
    /// coverage in B: it contributes nothing, only its path may have moved (recorded here).
    async fn moved_unchanged(&mut self, ac: &NodeInRange) -> Result<bool, TreeDiffError> {
        let oid = ac.node.oid;
        if !oid.is_valid() || self.δztc.contains(&oid) {
            return Ok(false);
        }
        let found = find_in_b(&mut self.bv, &mut self.b_idx, self.new, oid, ac.keycov).await?;
        let Some((bpath, bcov)) = found else {
            return Ok(false);
        };
        if bcov != ac.keycov {
            return Ok(false);
        }
        let apath = ac.path();
        if apath != bpath {
            self.out.δtrack.del.add_path(&apath)?;
            self.out.δtrack.add.add_path(&bpath)?;
            let nchild = self.track_set.get(oid).map_or(0, |n| n.nchild);
            if nchild != 0 {
                self.out.δtrack.dnchild_non_leafs.insert(oid, nchild);
            }
        }
        Ok(true)
    }

    /// Phase 2: makes A and B consistent over every range removed on either side, until
    /// neither side has a range left to visit.
    async fn make_consistent(&mut self) -> Result<(), TreeDiffError> {
        while !self.bk.queue.is_empty() {
            let ranges: Vec<KeyRange> = self.bk.queue.ranges().collect();
            self.bk.queue.clear();
            for r in ranges {
                self.add_b_leaves(r).await?;
            }
            let ranges: Vec<KeyRange> = self.ak.queue.ranges().collect();
            self.ak.queue.clear();
            for r in ranges {
                self.remove_a_leaves(r).await?;
            }
        }
        Ok(())
    }

    /// Adds every B leaf over `r` not added yet, and queues its range for A.
    async fn add_b_leaves(&mut self, r: KeyRange) -> Result<(), TreeDiffError> {
        let mut lo = r.lo;
        loop {
            let i = self.bv.get_to_leaf(self.new, lo).await?;
            let leaf = self.bv.at(i).clone();
            if !leaf.done {
                if let NodeKind::Bucket(bucket) = leaf.node.kind() {
                    δ_merge(&mut self.out.δt, diff_b(None, Some(bucket)))?;
                }
                self.out.δtrack.add.add_path(&leaf.path())?;
                self.badd.add_range(leaf.keycov);
                self.bk.done.add_range(leaf.keycov);
                self.ak.push(leaf.keycov);
                self.bv.v[i].done = true;
            }
            match leaf.keycov.next_lo() {
                Some(next) if leaf.keycov.hi_ < r.hi_ => lo = next,
                _ => return Ok(()),
            }
        }
    }

    /// Removes every A leaf over `r` not removed yet, and queues its range for B.
    async fn remove_a_leaves(&mut self, r: KeyRange) -> Result<(), TreeDiffError> {
        let mut lo = r.lo;
        loop {
            let i = self.av.get_to_leaf(self.old, lo).await?;
            let leaf = self.av.at(i).clone();
            if !leaf.done {
                if let NodeKind::Bucket(bucket) = leaf.node.kind() {
                    δ_merge(&mut self.out.δt, diff_b(Some(bucket), None))?;
                }
                let path = leaf.path();
                self.out.δtrack.del.add_path(&path)?;
                let tracked = norm_path(&path)
                    .last()
                    .is_some_and(|&o| self.track_set.has(o));
                if tracked {
                    self.adel.add_range(leaf.keycov);
                }
                self.ak.done.add_range(leaf.keycov);
                self.bk.push(leaf.keycov);
                self.av.v[i].done = true;
            }
            match leaf.keycov.next_lo() {
                Some(next) if leaf.keycov.hi_ < r.hi_ => lo = next,
                _ => return Ok(()),
            }
        }
    }
}

/// Finds the B node with `oid` by expanding B trees that cover all of `keycov` alone; returns
/// its path and coverage. Not finding it only costs precision of the skip, never correctness.
async fn find_in_b<S: ObjectSource>(
    bv: &mut RangeSplit,
    b_idx: &mut BTreeMap<Oid, (Vec<Oid>, KeyRange)>,
    new: &Conn<'_, S>,
    oid: Oid,
    keycov: KeyRange,
) -> Result<Option<(Vec<Oid>, KeyRange)>, TreeDiffError> {
    loop {
        if let Some(found) = b_idx.get(&oid) {
            return Ok(Some(found.clone()));
        }
        let (Ok(i), Ok(j)) = (bv.get(keycov.lo), bv.get(keycov.hi_)) else {
            return Ok(None);
        };
        if i != j || !bv.at(i).node.is_nonempty_tree() {
            return Ok(None);
        }
        for ci in bv.expand(new, i).await? {
            let n = bv.at(ci);
            if n.node.oid.is_valid() {
                b_idx.insert(n.node.oid, (n.path(), n.keycov));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dv(old: u64, new: u64) -> ΔValue {
        let o = |x: u64| if x == 0 { Oid::INVALID } else { Oid(x) };
        ΔValue {
            old: o(old),
            new: o(new),
        }
    }

    #[test]
    fn diff_b_reports_added_removed_and_changed() {
        let a = Bucket {
            entries: vec![(1, Oid(10)), (2, Oid(20)), (4, Oid(40))],
        };
        let b = Bucket {
            entries: vec![(2, Oid(21)), (3, Oid(30)), (4, Oid(40))],
        };
        let d = diff_b(Some(&a), Some(&b));
        let want: KVδ = [(1, dv(10, 0)), (2, dv(20, 21)), (3, dv(0, 30))].into();
        assert_eq!(d, want);
        assert_eq!(diff_b(None, None), KVδ::new());
    }

    #[test]
    fn δ_merge_cancels_migration_and_rejects_duplicates() {
        let mut d: KVδ = [(1, dv(10, 0))].into();
        δ_merge(&mut d, [(1, dv(0, 10))].into()).unwrap();
        assert!(d.is_empty(), "moved key with same value cancels");
        let mut d: KVδ = [(1, dv(10, 0))].into();
        δ_merge(&mut d, [(1, dv(0, 11))].into()).unwrap();
        assert_eq!(d, [(1, dv(10, 11))].into());
        let mut d: KVδ = [(1, dv(10, 11))].into();
        assert!(δ_merge(&mut d, [(1, dv(10, 12))].into()).is_err());
    }

    #[test]
    fn child_cov_spans_separators_and_a_key_min_separator_leaves_its_child_no_key() {
        let keys = [KEY_MIN, 5];
        // Child 0 covers the keys below KEY_MIN: none, and computing its end must not wrap.
        assert!(child_cov(&keys, 0).is_empty());
        assert_eq!(child_cov(&keys, 1), KeyRange::new(KEY_MIN, 4));
        assert_eq!(child_cov(&keys, 2), KeyRange::new(5, KEY_MAX));
        assert_eq!(child_cov(&[], 0), KeyRange::ALL);
    }

    #[test]
    fn connect_tracked_finds_tops_and_connectors() {
        let (t0, t1, b2, b3) = (Oid(1), Oid(2), Oid(3), Oid(4));
        let mut ts = PPTreeSubSet::new();
        ts.add_path(&[t0, t1, b2]).unwrap();
        ts.add_path(&[t0, t1, b3]).unwrap();
        let (tc, tops) = δz_connect_tracked(&[t0, b2, Oid(99)], &ts);
        assert_eq!(tc, [t0, t1, b2].into());
        assert_eq!(tops, [(t0, [t0].into())].into());
        let (tc, tops) = δz_connect_tracked(&[b2, b3], &ts);
        assert_eq!(tc, [b2, b3].into());
        assert_eq!(tops, [(t0, [b2, b3].into())].into());
    }
}

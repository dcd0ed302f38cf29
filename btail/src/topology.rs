//! The topology encoding and its parser.
//!
//! A topology is the shape of a BTree with its keys (and optionally values), written in
//! level order: levels separated by `/`, the nodes of one level by `-`, left to right in the
//! order of the links from the level above. A Tree with `n` keys links the next `n + 1` nodes of
//! the next level. Nodes: `T<keys>` a Tree (`T` alone has one child), `B<keys>` a key-only
//! bucket, `B<k:v,...>` a bucket with values, `B:` an empty bucket with values. `ø` is a deleted
//! tree. Example: `T3/T-T/B1-T5/B-B7,8,9`.
//!
//! Keys are written as non-negative decimals: a negative key would collide with the `-`
//! separator, so topologies with negative keys cannot round-trip (the parser rejects them).
//!
//! [`Topology`] stores the nodes flat in level order (children of one Tree are contiguous), so
//! building and comparing topologies costs a few allocations whatever the tree size: AllStructs
//! generates millions of them.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use crate::blib::KeyRange;
use crate::object::Key;

/// The name of a value object (a letter such as `a` in tests). Values must not contain
/// `: , - /` or whitespace.
pub type Value = Arc<str>;

/// The kind of a topology node.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum NodeKind {
    /// An interior node: separator keys and `keys.len() + 1` children.
    Tree,
    /// A leaf: keys, optionally with values.
    Bucket,
}

#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
struct NodeRec {
    kind: NodeKind,
    /// Buckets only: whether the bucket carries values (`B1:a`, `B:`) or only keys (`B1`, `B`).
    valued: bool,
    keys_start: u32,
    keys_len: u32,
    /// Trees only: index of the first child in `nodes`.
    first_child: u32,
}

/// A tree shape with keys and values, or a deleted tree (`ø`).
///
/// Equality is structural (same shape, keys and values).
#[derive(Clone, PartialEq, Eq, Hash, Default)]
pub struct Topology {
    /// Level order; empty for a deleted tree.
    nodes: Vec<NodeRec>,
    keys: Vec<Key>,
    /// Parallel to `keys`: the value of a valued bucket's key, `None` elsewhere.
    values: Vec<Option<Value>>,
}

/// A topology that could not be parsed or built; `pos` is the byte offset in the input (or the
/// level-order node index for built topologies).
#[derive(Clone, PartialEq, Eq, Debug, thiserror::Error)]
#[error("topology error at {pos}: {what}")]
pub struct TopologyError {
    /// Byte position in the parsed text (node index when building).
    pub pos: usize,
    /// What was expected or what is wrong.
    pub what: String,
}

fn err<T>(pos: usize, what: impl Into<String>) -> Result<T, TopologyError> {
    Err(TopologyError {
        pos,
        what: what.into(),
    })
}

/// A view of one node of a [`Topology`].
#[derive(Clone, Copy)]
pub struct Node<'a> {
    topo: &'a Topology,
    idx: usize,
}

impl fmt::Debug for Node<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Node#{}({:?} {:?})", self.idx, self.kind(), self.keys())
    }
}

impl<'a> Node<'a> {
    fn rec(&self) -> &'a NodeRec {
        &self.topo.nodes[self.idx]
    }

    /// The node's position in level order (the root is 0).
    pub fn index(&self) -> usize {
        self.idx
    }

    /// Tree or Bucket.
    pub fn kind(&self) -> NodeKind {
        self.rec().kind
    }

    /// Whether this is a Tree node.
    pub fn is_tree(&self) -> bool {
        self.rec().kind == NodeKind::Tree
    }

    /// Separator keys of a Tree, or the keys of a Bucket.
    pub fn keys(&self) -> &'a [Key] {
        let r = self.rec();
        &self.topo.keys[r.keys_start as usize..(r.keys_start + r.keys_len) as usize]
    }

    /// Whether this is a bucket carrying values.
    pub fn is_valued(&self) -> bool {
        self.rec().valued
    }

    /// The values of a valued bucket, parallel to [`Node::keys`] (`None` for key-only nodes).
    pub fn values(&self) -> &'a [Option<Value>] {
        let r = self.rec();
        &self.topo.values[r.keys_start as usize..(r.keys_start + r.keys_len) as usize]
    }

    /// Number of children (0 for a Bucket).
    pub fn nchildren(&self) -> usize {
        match self.kind() {
            NodeKind::Tree => self.keys().len() + 1,
            NodeKind::Bucket => 0,
        }
    }

    /// Child `i` of a Tree.
    pub fn child(&self, i: usize) -> Node<'a> {
        assert!(i < self.nchildren(), "child {i} of {self:?}");
        Node {
            topo: self.topo,
            idx: self.rec().first_child as usize + i,
        }
    }

    /// The children of a Tree, left to right (none for a Bucket).
    pub fn children(&self) -> impl Iterator<Item = Node<'a>> + 'a {
        let this = *self;
        (0..this.nchildren()).map(move |i| this.child(i))
    }

    /// The key range covered by child `i`, given this node's own coverage `cov`.
    pub fn child_keycov(&self, cov: KeyRange, i: usize) -> KeyRange {
        child_keycov(self.keys(), cov, i)
    }
}

/// The coverage of child `i` of a Tree with separators `keys` covering `cov` (its keycov):
/// `[lo if i == 0 else keys[i-1], hi_ if i is last else keys[i] - 1]`.
pub fn child_keycov(keys: &[Key], cov: KeyRange, i: usize) -> KeyRange {
    assert!(i <= keys.len());
    let lo = if i == 0 { cov.lo } else { keys[i - 1] };
    let hi_ = if i == keys.len() {
        cov.hi_
    } else {
        keys[i].saturating_sub(1)
    };
    KeyRange::new(lo, hi_)
}

/// A bucket of a topology with its position: used by the KAdj oracle and Restructure.
#[derive(Clone, Copy, Debug)]
pub struct BucketPos<'a> {
    /// The bucket node.
    pub node: Node<'a>,
    /// Its keycov (positional, computed from the root).
    pub keycov: KeyRange,
    /// Its depth (the root is 0).
    pub depth: usize,
}

/// Builds a [`Topology`] from nodes pushed in level order.
#[derive(Debug, Default)]
pub struct TopologyBuilder {
    topo: Topology,
    next_child: u32,
}

impl TopologyBuilder {
    /// An empty builder; the first node pushed is the root.
    pub fn new() -> TopologyBuilder {
        TopologyBuilder {
            topo: Topology::default(),
            next_child: 1,
        }
    }

    /// An empty builder with room for `nodes` nodes and `keys` keys.
    pub fn with_capacity(nodes: usize, keys: usize) -> TopologyBuilder {
        let mut b = TopologyBuilder::new();
        b.topo.nodes.reserve(nodes);
        b.topo.keys.reserve(keys);
        b.topo.values.reserve(keys);
        b
    }

    fn push(&mut self, kind: NodeKind, valued: bool, nkeys: usize) {
        let first_child = if kind == NodeKind::Tree {
            let c = self.next_child;
            self.next_child += nkeys as u32 + 1;
            c
        } else {
            0
        };
        let keys_start = (self.topo.keys.len() - nkeys) as u32;
        self.topo.nodes.push(NodeRec {
            kind,
            valued,
            keys_start,
            keys_len: nkeys as u32,
            first_child,
        });
    }

    /// Appends a Tree node with separator keys `keys`.
    pub fn tree(&mut self, keys: &[Key]) -> &mut Self {
        self.topo.keys.extend_from_slice(keys);
        self.topo.values.extend(keys.iter().map(|_| None));
        self.push(NodeKind::Tree, false, keys.len());
        self
    }

    /// Appends a key-only bucket.
    pub fn bucket_keys(&mut self, keys: &[Key]) -> &mut Self {
        self.topo.keys.extend_from_slice(keys);
        self.topo.values.extend(keys.iter().map(|_| None));
        self.push(NodeKind::Bucket, false, keys.len());
        self
    }

    /// Appends a bucket with values.
    pub fn bucket_kv<'v>(&mut self, kv: impl IntoIterator<Item = (Key, &'v Value)>) -> &mut Self {
        let start = self.topo.keys.len();
        for (k, v) in kv {
            self.topo.keys.push(k);
            self.topo.values.push(Some(v.clone()));
        }
        let n = self.topo.keys.len() - start;
        self.push(NodeKind::Bucket, true, n);
        self
    }

    /// The topology; errors if the links of the Trees do not match the nodes pushed or a
    /// Tree's children are of different kinds.
    pub fn finish(self) -> Result<Topology, TopologyError> {
        let topo = self.topo;
        if topo.nodes.is_empty() {
            return err(0, "no nodes (use Topology::deleted for ø)");
        }
        if self.next_child as usize != topo.nodes.len() {
            return err(
                topo.nodes.len(),
                format!(
                    "Trees link {} nodes but {} were given",
                    self.next_child - 1,
                    topo.nodes.len() - 1
                ),
            );
        }
        for (i, rec) in topo.nodes.iter().enumerate() {
            if rec.kind == NodeKind::Tree {
                let first = rec.first_child as usize;
                let kinds = &topo.nodes[first..first + rec.keys_len as usize + 1];
                if kinds.iter().any(|c| c.kind != kinds[0].kind) {
                    return err(i, "children of a Tree must all be Trees or all Buckets");
                }
            }
        }
        Ok(topo)
    }
}

impl Topology {
    /// The deleted tree `ø`.
    pub fn deleted() -> Topology {
        Topology::default()
    }

    /// Whether this is the deleted tree `ø`.
    pub fn is_deleted(&self) -> bool {
        self.nodes.is_empty()
    }

    /// The root node (`None` for `ø`).
    pub fn root(&self) -> Option<Node<'_>> {
        (!self.nodes.is_empty()).then_some(Node { topo: self, idx: 0 })
    }

    /// Number of nodes.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Whether there are no nodes (`ø`).
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// Parses the topology encoding.
    pub fn parse(s: &str) -> Result<Topology, TopologyError> {
        Parser { s, pos: 0 }.topology()
    }

    /// The encoded form (same as `to_string()`).
    pub fn encode(&self) -> String {
        self.to_string()
    }

    /// Calls `f` for every node with its keycov and depth, in level order.
    pub fn walk<'a>(&'a self, mut f: impl FnMut(Node<'a>, KeyRange, usize)) {
        let Some(root) = self.root() else { return };
        // Level order: a node's coverage is known before its children are visited.
        let mut covs = Vec::with_capacity(self.nodes.len());
        let mut depths = Vec::with_capacity(self.nodes.len());
        covs.push(KeyRange::ALL);
        depths.push(0usize);
        for idx in 0..self.nodes.len() {
            let node = Node { topo: self, idx };
            let (cov, depth) = (covs[idx], depths[idx]);
            f(node, cov, depth);
            for i in 0..node.nchildren() {
                debug_assert_eq!(node.child(i).idx, covs.len());
                covs.push(node.child_keycov(cov, i));
                depths.push(depth + 1);
            }
        }
        debug_assert_eq!(root.idx, 0);
    }

    /// The buckets left to right with their keycov and depth. `ø` has none.
    pub fn buckets(&self) -> Vec<BucketPos<'_>> {
        let mut out = Vec::new();
        self.walk(|node, keycov, depth| {
            if !node.is_tree() {
                out.push(BucketPos {
                    node,
                    keycov,
                    depth,
                })
            }
        });
        // Level order visits shallow buckets first; left to right is by coverage.
        out.sort_by_key(|b| b.keycov.lo);
        out
    }

    /// The keycov of every bucket, left to right; `ø` is modelled as one bucket `[-∞,∞]`.
    pub fn bucket_keycovs(&self) -> Vec<KeyRange> {
        if self.is_deleted() {
            return vec![KeyRange::ALL];
        }
        self.buckets().iter().map(|b| b.keycov).collect()
    }

    /// The key → value content of the valued buckets.
    pub fn kv(&self) -> BTreeMap<Key, Value> {
        let mut kv = BTreeMap::new();
        for (rec_idx, rec) in self.nodes.iter().enumerate() {
            if rec.kind == NodeKind::Bucket {
                let node = Node {
                    topo: self,
                    idx: rec_idx,
                };
                for (k, v) in node.keys().iter().zip(node.values()) {
                    if let Some(v) = v {
                        kv.insert(*k, v.clone());
                    }
                }
            }
        }
        kv
    }

    /// Every key of every bucket, ascending.
    pub fn bucket_keys(&self) -> Vec<Key> {
        let mut keys: Vec<Key> = self
            .buckets()
            .iter()
            .flat_map(|b| b.node.keys().iter().copied())
            .collect();
        keys.sort_unstable();
        keys
    }

    /// Whether every bucket carries values (a deleted tree has no buckets and passes).
    pub fn is_valued(&self) -> bool {
        self.nodes
            .iter()
            .all(|r| r.kind == NodeKind::Tree || r.valued)
    }

    /// Checks the keys against the BTree invariants: keys strictly ascending in every node,
    /// bucket keys inside the bucket's keycov, and every child of a Tree covering a non-empty
    /// range. `pos` of the error is the node's level-order index.
    pub fn check_keys(&self) -> Result<(), TopologyError> {
        let mut result = Ok(());
        self.walk(|node, cov, _| {
            if result.is_err() {
                return;
            }
            let keys = node.keys();
            if keys.windows(2).any(|w| w[0] >= w[1]) {
                result = err(
                    node.idx,
                    format!("keys {keys:?} are not strictly ascending"),
                );
            } else if node.is_tree() {
                if let (Some(first), Some(last)) = (keys.first(), keys.last())
                    && (*first <= cov.lo || *last > cov.hi_)
                {
                    result = err(
                        node.idx,
                        format!("separators {keys:?} do not split the coverage {cov}"),
                    );
                }
            } else if let Some(k) = keys.iter().find(|k| !cov.has(**k)) {
                result = err(node.idx, format!("key {k} is outside the keycov {cov}"));
            }
        });
        result
    }
}

impl fmt::Display for Topology {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_deleted() {
            return write!(f, "ø");
        }
        let (mut start, mut end) = (0usize, 1usize);
        loop {
            let mut next_end = end;
            for idx in start..end {
                if idx > start {
                    write!(f, "-")?;
                }
                let node = Node { topo: self, idx };
                next_end += node.nchildren();
                match node.kind() {
                    NodeKind::Tree => write!(f, "T")?,
                    NodeKind::Bucket => write!(f, "B")?,
                }
                if node.is_valued() && node.keys().is_empty() {
                    write!(f, ":")?;
                }
                for (i, (k, v)) in node.keys().iter().zip(node.values()).enumerate() {
                    if i > 0 {
                        write!(f, ",")?;
                    }
                    write!(f, "{k}")?;
                    if let Some(v) = v {
                        write!(f, ":{v}")?;
                    }
                }
            }
            if next_end == end {
                return Ok(());
            }
            write!(f, "/")?;
            (start, end) = (end, next_end);
        }
    }
}

impl fmt::Debug for Topology {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Topology({self})")
    }
}

impl FromStr for Topology {
    type Err = TopologyError;
    fn from_str(s: &str) -> Result<Topology, TopologyError> {
        Topology::parse(s)
    }
}

struct Parser<'s> {
    s: &'s str,
    pos: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<u8> {
        self.s.as_bytes().get(self.pos).copied()
    }

    fn topology(mut self) -> Result<Topology, TopologyError> {
        if self.s == "ø" {
            return Ok(Topology::deleted());
        }
        let mut b = TopologyBuilder::new();
        // Nodes linked by the previous level; the root level has exactly one.
        let mut expected = 1usize;
        loop {
            let level_pos = self.pos;
            let mut count = 0usize;
            let mut links = 0usize;
            loop {
                links += self.node(&mut b)?;
                count += 1;
                match self.peek() {
                    Some(b'-') => self.pos += 1,
                    _ => break,
                }
            }
            if count != expected {
                return err(
                    level_pos,
                    format!("a level of {expected} node(s) (linked from above), found {count}"),
                );
            }
            match self.peek() {
                None if links == 0 => return b.finish().or_else(|e| err(self.pos, e.what)),
                None => {
                    return err(
                        self.pos,
                        format!("'/' and a level of {links} node(s) linked by the Trees above"),
                    );
                }
                Some(b'/') if links > 0 => {
                    self.pos += 1;
                    expected = links;
                }
                Some(_) if links == 0 => return err(self.pos, "end of input"),
                Some(_) => return err(self.pos, "'-' or '/'"),
            }
        }
    }

    /// Parses one node into `b`; returns the number of children it links.
    fn node(&mut self, b: &mut TopologyBuilder) -> Result<usize, TopologyError> {
        match self.peek() {
            Some(b'T') => {
                self.pos += 1;
                let mut keys = Vec::new();
                if self.peek().is_some_and(|c| c.is_ascii_digit()) {
                    loop {
                        keys.push(self.key()?);
                        if self.peek() != Some(b',') {
                            break;
                        }
                        self.pos += 1;
                    }
                }
                b.tree(&keys);
                Ok(keys.len() + 1)
            }
            Some(b'B') => {
                self.pos += 1;
                if self.peek() == Some(b':') {
                    self.pos += 1;
                    b.bucket_kv([]);
                    return Ok(0);
                }
                let mut keys = Vec::new();
                let mut values: Vec<Value> = Vec::new();
                if self.peek().is_some_and(|c| c.is_ascii_digit()) {
                    loop {
                        keys.push(self.key()?);
                        let has_value = self.peek() == Some(b':');
                        let first_has_value = !values.is_empty();
                        if keys.len() > 1 && has_value != first_has_value {
                            return err(
                                self.pos,
                                "every entry of a bucket with or without ':value'",
                            );
                        }
                        if has_value {
                            self.pos += 1;
                            values.push(self.value()?);
                        }
                        if self.peek() != Some(b',') {
                            break;
                        }
                        self.pos += 1;
                    }
                }
                if values.is_empty() {
                    b.bucket_keys(&keys);
                } else {
                    b.bucket_kv(keys.iter().copied().zip(values.iter()));
                }
                Ok(0)
            }
            _ => err(self.pos, "a node: 'T' or 'B'"),
        }
    }

    fn key(&mut self) -> Result<Key, TopologyError> {
        let start = self.pos;
        while self.peek().is_some_and(|c| c.is_ascii_digit()) {
            self.pos += 1;
        }
        if start == self.pos {
            return err(start, "a key (decimal digits)");
        }
        self.s[start..self.pos]
            .parse()
            .or_else(|_| err(start, "a key within the 64-bit signed range"))
    }

    fn value(&mut self) -> Result<Value, TopologyError> {
        let start = self.pos;
        let rest = &self.s[start..];
        let len = rest
            .find(|c: char| matches!(c, ',' | '-' | '/' | ':') || c.is_whitespace())
            .unwrap_or(rest.len());
        if len == 0 {
            return err(start, "a value after ':'");
        }
        self.pos += len;
        Ok(Value::from(&rest[..len]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deleted_tree_has_one_bucket_covering_everything() {
        let t = Topology::parse("ø").unwrap();
        assert!(t.is_deleted());
        assert_eq!(t.bucket_keycovs(), vec![KeyRange::ALL]);
        assert_eq!(t.to_string(), "ø");
    }
}

//! The vocabulary shared by every part of ΔBtail: object ids, revisions, keys, the states of
//! stored objects, and the [`ObjectSource`] trait through which ΔBtail reads history.

use std::future::Future;
use std::sync::Arc;

/// A key of the BTrees (as ZODB's LOBTree: signed 64-bit).
pub type Key = i64;
/// The smallest key, printed `-∞`.
pub const KEY_MIN: Key = i64::MIN;
/// The largest key, printed `∞` (`oo` in vector files).
pub const KEY_MAX: Key = i64::MAX;

/// An object id.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Oid(pub u64);

impl Oid {
    /// "No object": an embedded bucket, an artificial empty tree, a deleted value (VDEL).
    pub const INVALID: Oid = Oid(u64::MAX);

    /// Whether this is a real object id.
    pub fn is_valid(self) -> bool {
        self != Oid::INVALID
    }
}

/// A revision (transaction id): strictly increasing with every commit.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Rev(pub u64);

/// A bucket: sorted keys, each mapped to the oid of a value object.
#[derive(Clone, PartialEq, Eq, Debug, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Bucket {
    /// `(key, value oid)` pairs, strictly ascending by key.
    pub entries: Vec<(Key, Oid)>,
}

/// The state of a Tree node.
#[derive(Clone, PartialEq, Eq, Debug)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum TreeState {
    /// No entries: only legal for a whole tree (ZODB pickles it as `None`).
    Empty,
    /// One child bucket without an oid, stored inside the tree's own state (only at top level,
    /// the `T/B` shape).
    Embedded(Bucket),
    /// Children with separator keys: `children.len() == keys.len() + 1`; child `i` covers
    /// `[keys[i-1], keys[i])` within the node's own coverage. All children are of one kind.
    Node {
        /// Separator keys, strictly ascending.
        keys: Vec<Key>,
        /// Child oids, all Trees or all Buckets.
        children: Vec<Oid>,
    },
}

/// The state of a stored object.
#[derive(Clone, PartialEq, Eq, Debug)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum Object {
    /// An interior (or root) node.
    Tree(TreeState),
    /// A leaf node.
    Bucket(Bucket),
    /// A value object; in tests its data is a letter such as `a`.
    Value(String),
}

/// Why an object could not be loaded (absence is not an error: it is `Ok(None)`).
#[derive(Clone, PartialEq, Eq, Debug, thiserror::Error)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum LoadError {
    /// The revision is not served by this source (before its start or after its head).
    #[error("revision {at:?} is outside the source's range {tail:?}..={head:?}")]
    RevOutOfRange {
        /// The revision asked for.
        at: Rev,
        /// The oldest revision served.
        tail: Rev,
        /// The newest revision.
        head: Rev,
    },
    /// The source could not answer (network, shutdown); the message says why.
    #[error("object source unavailable: {0}")]
    Unavailable(String),
}

/// Read access to object history. Async so that a store reached over the (simulated)
/// network can serve ΔBtail exactly like the in-memory one.
pub trait ObjectSource: Send + Sync + 'static {
    /// The state of `oid` as of revision `at`; `Ok(None)` if it did not exist then.
    fn load(
        &self,
        oid: Oid,
        at: Rev,
    ) -> impl Future<Output = Result<Option<Arc<Object>>, LoadError>> + Send;
}

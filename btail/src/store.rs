//! The in-memory revisioned object store.
//!
//! Model: every object has a history of states, one entry per revision in which it changed;
//! `None` in the history means the object was deleted (or did not exist yet). A commit applies
//! a batch of writes atomically under one new revision and reports δZ: exactly the oids whose
//! state changed. Writing a state equal to the current one is not a change, so δZ is exact,
//! which the ΔBtail oracle depends on.
//!
//! The store never garbage-collects: an object no longer referenced by any tree keeps its last
//! state, like a ZODB object before pack. Oids are allocated from a counter and never reused.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use crate::object::{LoadError, Object, ObjectSource, Oid, Rev};

/// The result of a commit: the new revision and δZ.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Commit {
    /// The revision of this commit, greater than every earlier one.
    pub rev: Rev,
    /// δZ: the oids whose state changed in this commit, ascending, without duplicates.
    pub changed: Vec<Oid>,
}

/// Why a commit was refused (nothing is applied then).
#[derive(Clone, PartialEq, Eq, Debug, thiserror::Error)]
pub enum CommitError {
    /// The oid was never allocated by [`MemStore::alloc_oid`].
    #[error("object {0:?} was not allocated by this store")]
    UnknownOid(Oid),
    /// The same oid appears twice in one batch of changes.
    #[error("object {0:?} is written twice in one commit")]
    DuplicateWrite(Oid),
}

/// One object's states over time: `(rev, state)` ascending by rev.
type History = Vec<(Rev, Option<Arc<Object>>)>;

#[derive(Debug)]
struct Inner {
    objects: BTreeMap<Oid, History>,
    next_oid: u64,
    tail: Rev,
    head: Rev,
    log: Vec<Commit>,
}

/// An in-memory revisioned object store; clones share the same store.
#[derive(Clone, Debug)]
pub struct MemStore {
    inner: Arc<Mutex<Inner>>,
}

impl Default for MemStore {
    fn default() -> Self {
        MemStore::new()
    }
}

impl MemStore {
    /// An empty store whose tail and head are `Rev(1)`; the first commit is `Rev(2)`.
    pub fn new() -> MemStore {
        MemStore {
            inner: Arc::new(Mutex::new(Inner {
                objects: BTreeMap::new(),
                next_oid: 1,
                tail: Rev(1),
                head: Rev(1),
                log: Vec::new(),
            })),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock cannot leave Inner half-updated (commit validates
        // before mutating), so a poisoned lock is still consistent.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A fresh oid, never returned before. The object does not exist until committed.
    pub fn alloc_oid(&self) -> Oid {
        let mut inner = self.lock();
        let oid = Oid(inner.next_oid);
        inner.next_oid += 1;
        assert!(oid.is_valid(), "oid space exhausted");
        oid
    }

    /// The newest revision.
    pub fn head(&self) -> Rev {
        self.lock().head
    }

    /// The oldest revision served (the state before the first commit).
    pub fn tail(&self) -> Rev {
        self.lock().tail
    }

    /// Applies `changes` (`None` deletes) atomically under a new revision and returns δZ.
    ///
    /// A commit in which nothing changes still gets a revision (with an empty δZ).
    pub fn commit(&self, changes: Vec<(Oid, Option<Object>)>) -> Result<Commit, CommitError> {
        let mut inner = self.lock();
        let mut seen = std::collections::BTreeSet::new();
        for (oid, _) in &changes {
            if !oid.is_valid() || oid.0 >= inner.next_oid {
                return Err(CommitError::UnknownOid(*oid));
            }
            if !seen.insert(*oid) {
                return Err(CommitError::DuplicateWrite(*oid));
            }
        }
        let rev = Rev(inner.head.0 + 1);
        let mut changed = Vec::new();
        for (oid, state) in changes {
            let history = inner.objects.entry(oid).or_default();
            let current = history.last().and_then(|(_, s)| s.as_deref());
            if current == state.as_ref() {
                continue;
            }
            history.push((rev, state.map(Arc::new)));
            changed.push(oid);
        }
        changed.sort_unstable();
        debug_assert!(changed.windows(2).all(|w| w[0] < w[1]));
        inner.head = rev;
        let commit = Commit { rev, changed };
        inner.log.push(commit.clone());
        Ok(commit)
    }

    /// The state of `oid` as of `at`; `Ok(None)` if it did not exist (or was deleted) then.
    pub fn get(&self, oid: Oid, at: Rev) -> Result<Option<Arc<Object>>, LoadError> {
        let inner = self.lock();
        if at < inner.tail || at > inner.head {
            return Err(LoadError::RevOutOfRange {
                at,
                tail: inner.tail,
                head: inner.head,
            });
        }
        let Some(history) = inner.objects.get(&oid) else {
            return Ok(None);
        };
        // The last entry with rev ≤ at.
        let n = history.partition_point(|(rev, _)| *rev <= at);
        Ok(n.checked_sub(1).and_then(|i| history[i].1.clone()))
    }

    /// The commits with `lo < rev ≤ hi`, oldest first.
    pub fn commits_between(&self, lo: Rev, hi: Rev) -> Vec<Commit> {
        let inner = self.lock();
        let start = inner.log.partition_point(|c| c.rev <= lo);
        let end = inner.log.partition_point(|c| c.rev <= hi);
        inner.log[start..end.max(start)].to_vec()
    }
}

impl ObjectSource for MemStore {
    fn load(
        &self,
        oid: Oid,
        at: Rev,
    ) -> impl std::future::Future<Output = Result<Option<Arc<Object>>, LoadError>> + Send {
        std::future::ready(self.get(oid, at))
    }
}

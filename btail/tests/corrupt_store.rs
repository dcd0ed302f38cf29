//! A corrupt object store is an error, never a panic and never a silent answer: ΔBtail must
//! refuse a tree whose pointers lead to a value object, to nothing, or to a node with the
//! wrong number of children, both when a tracked path is validated and when an update diffs a
//! changed root, and leave its state as it was.

use std::sync::Arc;

use btail::blib::KeyRange;
use btail::dbtail::{DBtail, DBtailError};
use btail::object::{Bucket, Object, TreeState};
use btail::store::MemStore;
use btail::treediff::TreeDiffError;
use btail::{KEY_MAX, KEY_MIN, Oid, Rev};

/// A two-bucket tree `root = T5/B(1:a)-B(7:b)`, committed at the store's first revision.
struct Tree {
    store: Arc<MemStore>,
    root: Oid,
    left: Oid,
    right: Oid,
    a: Oid,
    /// An oid allocated but never committed.
    ghost: Oid,
    rev: Rev,
}

/// The changes of one commit: each oid's new state, `None` deleting it.
type Changes = Vec<(Oid, Option<Object>)>;

fn bucket(entries: &[(i64, Oid)]) -> Option<Object> {
    Some(Object::Bucket(Bucket {
        entries: entries.to_vec(),
    }))
}

fn node(keys: &[i64], children: &[Oid]) -> Option<Object> {
    Some(Object::Tree(TreeState::Node {
        keys: keys.to_vec(),
        children: children.to_vec(),
    }))
}

impl Tree {
    fn new() -> Tree {
        let store = MemStore::new();
        let [root, left, right, a, b, ghost] = [(); 6].map(|()| store.alloc_oid());
        let commit = store
            .commit(vec![
                (a, Some(Object::Value("a".into()))),
                (b, Some(Object::Value("b".into()))),
                (left, bucket(&[(1, a)])),
                (right, bucket(&[(7, b)])),
                (root, node(&[5], &[left, right])),
            ])
            .unwrap();
        Tree {
            store: Arc::new(store),
            root,
            left,
            right,
            a,
            ghost,
            rev: commit.rev,
        }
    }

    /// A ΔBtail at the first revision tracking the left bucket.
    async fn tracking_left(&self) -> DBtail<MemStore> {
        let db = DBtail::new(self.store.clone(), self.rev);
        db.track(&[self.root, self.left], KeyRange::new(KEY_MIN, 4))
            .await
            .unwrap();
        db
    }

    /// Ways to corrupt the tree, each a commit's changes and what it breaks.
    fn corruptions(&self) -> Vec<(&'static str, Changes)> {
        vec![
            (
                "a child pointer leads to a value object",
                vec![(self.root, node(&[5], &[self.a, self.right]))],
            ),
            (
                "the root is overwritten by a value object",
                vec![(self.root, Some(Object::Value("x".into())))],
            ),
            (
                "a child pointer leads to an object that never existed",
                vec![(self.root, node(&[5], &[self.ghost, self.right]))],
            ),
            (
                "a node has more separators than its children allow",
                vec![(self.root, node(&[5, 6], &[self.left, self.right]))],
            ),
        ]
    }
}

fn assert_corrupt(what: &str, result: Result<impl std::fmt::Debug, DBtailError>) {
    match result {
        Err(DBtailError::Diff(TreeDiffError::Corrupt(_))) => {}
        other => panic!("{what}: want a Corrupt error, got {other:?}"),
    }
}

#[tokio::test]
async fn an_update_over_a_corrupt_tree_is_refused_and_changes_nothing() {
    let count = Tree::new().corruptions().len();
    for i in 0..count {
        // A fresh tree for each corruption: a store never forgets a commit.
        let tree = Tree::new();
        let (what, changes) = tree.corruptions().swap_remove(i);
        let db = tree.tracking_left().await;
        db.rebuild_all().await.unwrap();
        let commit = tree.store.commit(changes).unwrap();
        assert_corrupt(what, db.update(commit.rev, &commit.changed).await);
        assert_eq!(
            db.bounds().await,
            (tree.rev, tree.rev),
            "{what}: a refused update must not move head"
        );
    }
}

#[tokio::test]
async fn tracking_a_path_through_a_corrupt_tree_is_refused() {
    let tree = Tree::new();
    let db = DBtail::new(tree.store.clone(), tree.rev);
    let commit = tree
        .store
        .commit(vec![(tree.root, node(&[5], &[tree.a, tree.right]))])
        .unwrap();
    db.update(commit.rev, &commit.changed).await.unwrap();
    assert_corrupt(
        "tracking a value object as a leaf",
        db.track(&[tree.root, tree.a], KeyRange::new(KEY_MIN, 4))
            .await,
    );
    assert!(
        db.track(&[tree.root, tree.right], KeyRange::new(5, KEY_MAX))
            .await
            .is_ok(),
        "the intact part of the tree can still be tracked"
    );
}

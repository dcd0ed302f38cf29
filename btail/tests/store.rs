//! MemStore: exact δZ, strictly increasing revisions, history reads.

use btail::object::{Bucket, LoadError, Object, ObjectSource, Oid, Rev};
use btail::store::{CommitError, MemStore};

fn value(s: &str) -> Option<Object> {
    Some(Object::Value(s.to_string()))
}

#[test]
fn delta_z_is_exactly_the_changed_states() {
    let store = MemStore::new();
    let (a, b, c) = (store.alloc_oid(), store.alloc_oid(), store.alloc_oid());
    assert!(a != b && b != c && a != c);
    let r0 = store.head();
    let c1 = store
        .commit(vec![(b, value("x")), (a, value("y"))])
        .unwrap();
    assert!(c1.rev > r0);
    assert_eq!(c1.changed, vec![a, b]);
    // Rewriting an identical state is not a change; deleting an absent object neither.
    let c2 = store
        .commit(vec![(a, value("y")), (b, value("z")), (c, None)])
        .unwrap();
    assert!(c2.rev > c1.rev);
    assert_eq!(c2.changed, vec![b]);
    let c3 = store.commit(vec![(a, None)]).unwrap();
    assert_eq!(c3.changed, vec![a]);
    assert_eq!(store.head(), c3.rev);
    assert_eq!(
        store.commits_between(c1.rev, c3.rev),
        vec![c2.clone(), c3.clone()]
    );
    assert_eq!(store.commits_between(r0, r0), vec![]);

    assert_eq!(store.get(a, r0).unwrap(), None);
    assert_eq!(
        store.get(a, c1.rev).unwrap().as_deref(),
        value("y").as_ref()
    );
    assert_eq!(
        store.get(a, c2.rev).unwrap().as_deref(),
        value("y").as_ref()
    );
    assert_eq!(store.get(a, c3.rev).unwrap(), None);
    assert_eq!(
        store.get(b, c3.rev).unwrap().as_deref(),
        value("z").as_ref()
    );
    assert_eq!(store.get(c, c3.rev).unwrap(), None);
}

#[test]
fn bad_commits_are_refused_without_effect() {
    let store = MemStore::new();
    let a = store.alloc_oid();
    let head = store.head();
    assert_eq!(
        store.commit(vec![(Oid(999), value("x"))]),
        Err(CommitError::UnknownOid(Oid(999)))
    );
    assert_eq!(
        store.commit(vec![(a, value("x")), (a, value("y"))]),
        Err(CommitError::DuplicateWrite(a))
    );
    assert_eq!(
        store.commit(vec![(Oid::INVALID, None)]),
        Err(CommitError::UnknownOid(Oid::INVALID))
    );
    assert_eq!(store.head(), head);
    assert_eq!(store.get(a, head).unwrap(), None);
}

#[test]
fn reads_outside_the_served_range_are_errors() {
    let store = MemStore::new();
    let a = store.alloc_oid();
    store
        .commit(vec![(a, Some(Object::Bucket(Bucket::default())))])
        .unwrap();
    let head = store.head();
    let err = store.get(a, Rev(head.0 + 1)).unwrap_err();
    assert!(matches!(err, LoadError::RevOutOfRange { .. }), "{err:?}");
    assert!(store.get(a, Rev(0)).is_err());
}

#[tokio::test]
async fn object_source_serves_the_same_history() {
    let store = MemStore::new();
    let a = store.alloc_oid();
    let c = store.commit(vec![(a, value("q"))]).unwrap();
    let clone = store.clone();
    assert_eq!(
        clone.load(a, c.rev).await.unwrap(),
        store.get(a, c.rev).unwrap()
    );
    assert_eq!(clone.load(a, store.tail()).await.unwrap(), None);
}

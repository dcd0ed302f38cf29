//! BTrees over the store: native ZODB-like insert/delete against a BTreeMap model, invariant
//! checks, persistence, bucket listings.

use std::collections::BTreeMap;

use btail::KEY_MAX;
use btail::blib::KeyRange;
use btail::btree::{self, BTreeError, MemNode, MemTree};
use btail::object::{Bucket, Object, Oid, TreeState};
use btail::store::MemStore;
use btail::topology::{Topology, Value};
use proptest::prelude::*;

fn kv(pairs: &[(i64, &str)]) -> BTreeMap<i64, Value> {
    pairs.iter().map(|(k, v)| (*k, Value::from(*v))).collect()
}

#[test]
fn native_topologies_follow_zodb_splits() {
    assert_eq!(btree::native_topology(&kv(&[])).to_string(), "T/B:");
    assert_eq!(
        btree::native_topology(&kv(&[(1, "a"), (2, "b")])).to_string(),
        "T/B1:a,2:b"
    );
    // Reference session: `1 1 10 1:a,2:b,3:c` starts with the native T2/B1:a-B2:b,3:c.
    assert_eq!(
        btree::native_topology(&kv(&[(1, "a"), (2, "b"), (3, "c")])).to_string(),
        "T2/B1:a-B2:b,3:c"
    );
    // A root reaching four children pushes them one level down (two per new child); a
    // non-root node growing to three children is split in half by its parent.
    let five: Vec<(i64, &str)> = (1..=5).map(|k| (k, "x")).collect();
    assert_eq!(
        btree::native_topology(&kv(&five)).to_string(),
        "T3/T2-T4/B1:x-B2:x-B3:x-B4:x,5:x"
    );
    let six: Vec<(i64, &str)> = (1..=6).map(|k| (k, "x")).collect();
    assert_eq!(
        btree::native_topology(&kv(&six)).to_string(),
        "T3,4/T2-T-T5/B1:x-B2:x-B3:x-B4:x-B5:x,6:x"
    );
}

#[test]
fn delete_unlinks_empty_children_and_fixes_separators() {
    let mut t = MemTree::empty(Oid(1));
    for k in [1, 2, 3] {
        t.insert(k, Oid(100 + k as u64));
    }
    // T2/B1-B2,3: deleting 2 makes 3 the separator; deleting 1 unlinks the first bucket.
    assert!(t.delete(2));
    assert_eq!(t.keys, vec![3]);
    assert!(!t.delete(2));
    assert!(t.delete(1));
    assert!(t.keys.is_empty());
    assert_eq!(t.children.len(), 1);
    assert!(t.delete(3));
    assert!(t.children.is_empty());
    assert!(!t.delete(3));
    t.check().unwrap();
}

#[derive(Clone, Debug)]
enum Op {
    Set(i64, u64),
    Del(i64),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0i64..24, 0u64..5).prop_map(|(k, v)| Op::Set(k, v)),
        (0i64..24).prop_map(Op::Del),
    ]
}

proptest! {
    #[test]
    fn native_ops_match_a_map_and_keep_invariants(ops in prop::collection::vec(op(), 0..80)) {
        let store = MemStore::new();
        let root = store.alloc_oid();
        let mut tree = MemTree::empty(root);
        let mut model = BTreeMap::new();
        for op in ops {
            match op {
                Op::Set(k, v) => {
                    tree.insert(k, Oid(v));
                    model.insert(k, Oid(v));
                }
                Op::Del(k) => prop_assert_eq!(tree.delete(k), model.remove(&k).is_some()),
            }
            let mut check = tree.clone();
            // Fresh nodes need oids for the invariant check: persist a copy.
            check.persist(&store);
            prop_assert!(check.check().is_ok(), "{:?}", check.check());
            prop_assert_eq!(tree.entries(), model.iter().map(|(k, v)| (*k, *v)).collect::<Vec<_>>());
        }
        for k in 0..24 {
            prop_assert_eq!(tree.get(k), model.get(&k).copied());
        }
        // Persist, load back, compare.
        let writes = tree.persist(&store);
        let c = store.commit(writes).unwrap();
        let loaded = btree::load_tree(&store, root, c.rev).unwrap().unwrap();
        prop_assert_eq!(&loaded, &tree);
        btree::check(&store, root, c.rev).unwrap();
        for k in 0..24 {
            prop_assert_eq!(btree::lookup(&store, root, k, c.rev).unwrap(), model.get(&k).copied());
        }
    }

    #[test]
    fn set_content_reaches_exactly_the_requested_kv(
        a in prop::collection::btree_map(0i64..16, 0u64..3, 0..10),
        b in prop::collection::btree_map(0i64..16, 0u64..3, 0..10),
    ) {
        let to_oids = |m: &BTreeMap<i64, u64>| m.iter().map(|(k, v)| (*k, Oid(*v))).collect::<BTreeMap<_, _>>();
        let mut t = MemTree::empty(Oid(1));
        t.set_content(&to_oids(&a));
        t.set_content(&to_oids(&b));
        prop_assert_eq!(t.entries(), to_oids(&b).into_iter().collect::<Vec<_>>());
    }
}

fn commit_tree(store: &MemStore, tree: &mut MemTree) -> btail::object::Rev {
    let writes = tree.persist(store);
    store.commit(writes).unwrap().rev
}

#[test]
fn embedded_bucket_only_at_the_root_and_listing() {
    let store = MemStore::new();
    let root = store.alloc_oid();
    let a = store.alloc_oid();
    let b = store.alloc_oid();
    store
        .commit(vec![
            (a, Some(Object::Value("a".into()))),
            (b, Some(Object::Value("b".into()))),
        ])
        .unwrap();
    let mut t = MemTree::empty(root);
    let at0 = commit_tree(&store, &mut t);
    assert_eq!(
        btree::topology_at(&store, root, at0).unwrap().to_string(),
        "T/B:"
    );
    let listing = btree::bucket_listing(&store, root, at0).unwrap();
    assert_eq!(listing.len(), 1);
    assert_eq!(listing[0].path, vec![root, Oid::INVALID]);
    assert_eq!(listing[0].keycov, KeyRange::ALL);

    t.insert(1, a);
    let at1 = commit_tree(&store, &mut t);
    assert!(matches!(
        store.get(root, at1).unwrap().as_deref(),
        Some(Object::Tree(TreeState::Embedded(_)))
    ));
    assert_eq!(
        btree::topology_at(&store, root, at1).unwrap().to_string(),
        "T/B1:a"
    );

    t.insert(2, b);
    t.insert(3, a);
    let at2 = commit_tree(&store, &mut t);
    assert_eq!(
        btree::topology_at(&store, root, at2).unwrap().to_string(),
        "T2/B1:a-B2:b,3:a"
    );
    let listing = btree::bucket_listing(&store, root, at2).unwrap();
    let MemNode::Bucket(b1) = &t.children[0] else {
        panic!()
    };
    let MemNode::Bucket(b2) = &t.children[1] else {
        panic!()
    };
    assert!(b1.oid.is_valid() && b2.oid.is_valid());
    assert_eq!(listing.len(), 2);
    assert_eq!(listing[0].oid, b1.oid);
    assert_eq!(listing[0].path, vec![root, b1.oid]);
    assert_eq!(listing[0].keycov, KeyRange::new(i64::MIN, 1));
    assert_eq!(listing[1].keycov, KeyRange::new(2, KEY_MAX));
    assert_eq!(listing[1].kv, kv(&[(2, "b"), (3, "a")]));
    assert_eq!(listing[1].entries, [(2, b), (3, a)].into_iter().collect());
    // Old revisions stay readable.
    assert_eq!(
        btree::topology_at(&store, root, at1).unwrap().to_string(),
        "T/B1:a"
    );
    assert_eq!(btree::lookup(&store, root, 3, at1).unwrap(), None);
    assert_eq!(btree::lookup(&store, root, 3, at2).unwrap(), Some(a));

    // A deleted root is ø.
    let c = store.commit(vec![(root, None)]).unwrap();
    assert_eq!(
        btree::topology_at(&store, root, c.rev).unwrap(),
        Topology::deleted()
    );
    assert_eq!(
        btree::bucket_listing(&store, root, c.rev).unwrap()[0].path,
        vec![root, Oid::INVALID]
    );
    btree::check(&store, root, c.rev).unwrap();
}

#[test]
fn invariant_violations_name_the_node() {
    let store = MemStore::new();
    let (root, b1, b2) = (store.alloc_oid(), store.alloc_oid(), store.alloc_oid());
    let bucket = |entries: Vec<(i64, Oid)>| Some(Object::Bucket(Bucket { entries }));
    let node =
        |keys: Vec<i64>, children: Vec<Oid>| Some(Object::Tree(TreeState::Node { keys, children }));
    // Key 5 sits left of separator 3.
    let c = store
        .commit(vec![
            (root, node(vec![3], vec![b1, b2])),
            (b1, bucket(vec![(5, Oid(0))])),
            (b2, bucket(vec![(4, Oid(0))])),
        ])
        .unwrap();
    match btree::check(&store, root, c.rev) {
        Err(BTreeError::Invariant { oid, what }) => {
            assert_eq!(oid, b1);
            assert!(what.contains("key 5"), "{what}");
        }
        other => panic!("{other:?}"),
    }
    // The same bucket twice.
    let c = store
        .commit(vec![
            (root, node(vec![3], vec![b2, b2])),
            (b2, bucket(vec![])),
        ])
        .unwrap();
    assert!(
        matches!(btree::check(&store, root, c.rev), Err(BTreeError::Invariant { oid, .. }) if oid == b2)
    );
    // A missing child.
    let c = store
        .commit(vec![(root, node(vec![], vec![b1])), (b1, None)])
        .unwrap();
    assert_eq!(
        btree::check(&store, root, c.rev),
        Err(BTreeError::Missing {
            parent: root,
            oid: b1
        })
    );
    // Separator count mismatch.
    let c = store
        .commit(vec![(root, node(vec![1, 2], vec![b2]))])
        .unwrap();
    assert!(
        matches!(btree::check(&store, root, c.rev), Err(BTreeError::Invariant { oid, .. }) if oid == root)
    );
}

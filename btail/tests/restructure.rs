//! Restructure and the tree test env: exact δZ, object reuse, special shapes, read-back.

use std::collections::BTreeSet;

use btail::object::{Object, Oid, TreeState};
use btail::restructure::{RestructureError, TreeEnv};
use btail::topology::Topology;

fn topo(s: &str) -> Topology {
    Topology::parse(s).unwrap()
}

fn oids(env: &TreeEnv) -> Vec<Oid> {
    env.head().xkv.iter().map(|b| b.oid).collect()
}

fn set(v: &[Oid]) -> BTreeSet<Oid> {
    v.iter().copied().collect()
}

#[test]
fn starts_empty_and_same_topology_twice_touches_only_the_dummy() {
    let mut env = TreeEnv::new().unwrap();
    let root = env.root();
    assert_eq!(env.head().topology.to_string(), "T/B:");
    assert!(matches!(
        env.store().get(root, env.head().rev).unwrap().as_deref(),
        Some(Object::Tree(TreeState::Empty))
    ));
    let c = env.commit(&topo("T/B:")).unwrap();
    assert_eq!(c.changed.len(), 1);
    assert!(!c.changed.contains(&root));
    let c2 = env.commit(&topo("T/B:")).unwrap();
    assert_eq!(c2.changed, c.changed, "the dummy again");
    assert!(c2.rev > c.rev);
    assert_eq!(env.prev().unwrap().rev, c.rev);
}

#[test]
fn value_change_touches_only_its_bucket_and_new_value() {
    let mut env = TreeEnv::new().unwrap();
    env.commit(&topo("T2/B1:a-B2:b")).unwrap();
    let before = oids(&env);
    let c = env.commit(&topo("T2/B1:a-B2:c")).unwrap();
    assert_eq!(oids(&env), before, "buckets reused");
    assert_eq!(
        set(&c.changed),
        set(&[before[1], env.value_oid("c").unwrap()])
    );
    assert_eq!(c.kv.len(), 2);
}

#[test]
fn reshaping_reuses_the_closest_nodes() {
    let mut env = TreeEnv::new().unwrap();
    let root = env.root();
    env.commit(&topo("T2/B1:a-B2:b,3:c")).unwrap();
    let before = oids(&env);
    let c = env.commit(&topo("T3/B1:a,2:b-B3:c")).unwrap();
    assert_eq!(oids(&env), before);
    assert_eq!(set(&c.changed), set(&[root, before[0], before[1]]));

    // Adding a level: the buckets keep their oids and states; only Trees change.
    let c = env.commit(&topo("T3/T-T/B1:a,2:b-B3:c")).unwrap();
    assert_eq!(oids(&env), before);
    let paths: Vec<Vec<Oid>> = env.head().xkv.iter().map(|b| b.path.clone()).collect();
    assert_eq!(paths[0].len(), 3);
    let (t1, t2) = (paths[0][1], paths[1][1]);
    assert_ne!(t1, t2);
    assert_eq!(set(&c.changed), set(&[root, t1, t2]));

    // Dropping the level again: the Trees stay in the store, unreferenced and unchanged.
    let c = env.commit(&topo("T3/B1:a,2:b-B3:c")).unwrap();
    assert_eq!(set(&c.changed), set(&[root]));
}

#[test]
fn embedded_deeper_buckets_and_deletion() {
    let mut env = TreeEnv::new().unwrap();
    let root = env.root();
    let c = env.commit(&topo("T/B1:a")).unwrap();
    assert_eq!(c.xkv[0].oid, Oid::INVALID);
    assert_eq!(c.xkv[0].path, vec![root, Oid::INVALID]);
    assert!(c.changed.contains(&root));

    let c = env.commit(&topo("T/T/B1:a")).unwrap();
    assert!(
        c.xkv[0].oid.is_valid(),
        "a bucket below the top level has an oid"
    );
    assert_eq!(c.xkv[0].path.len(), 3);

    let c = env.commit(&Topology::deleted()).unwrap();
    assert_eq!(c.changed, vec![root]);
    assert_eq!(env.store().get(root, c.rev).unwrap(), None);
    assert_eq!(c.xkv.len(), 1);
    assert_eq!(c.xkv[0].path, vec![root, Oid::INVALID]);
    assert!(c.kv.is_empty());

    let c = env.commit(&Topology::deleted()).unwrap();
    assert_eq!(c.changed.len(), 1);
    assert_ne!(c.changed[0], root);

    let c = env.commit(&topo("T2/B1:a-B2:b")).unwrap();
    assert!(c.changed.contains(&root));
    assert_eq!(c.xkv.len(), 2);

    let c = env.commit(&topo("T/B:")).unwrap();
    assert!(matches!(
        env.store().get(root, c.rev).unwrap().as_deref(),
        Some(Object::Tree(TreeState::Empty))
    ));
}

#[test]
fn values_are_created_once() {
    let mut env = TreeEnv::new().unwrap();
    let c = env.commit(&topo("T/B1:a,2:a")).unwrap();
    let a = env.value_oid("a").unwrap();
    assert!(c.changed.contains(&a));
    let c = env.commit(&topo("T/B1:a")).unwrap();
    assert!(!c.changed.contains(&a));
    assert_eq!(env.value_oid("a"), Some(a));
    assert_eq!(env.value_name(a).map(|v| &**v), Some("a"));
}

#[test]
fn bad_topologies_are_refused_without_a_commit() {
    let mut env = TreeEnv::new().unwrap();
    let rev = env.head().rev;
    assert!(matches!(
        env.commit(&topo("T/B1,2")),
        Err(RestructureError::KeyOnly(_))
    ));
    assert!(matches!(
        env.commit(&topo("B1:a")),
        Err(RestructureError::BucketRoot(_))
    ));
    assert!(matches!(
        env.commit(&topo("T3/B5:a-B1:b")),
        Err(RestructureError::Topology(_))
    ));
    assert!(matches!(
        env.commit(&topo("T/B2:a,1:b")),
        Err(RestructureError::Topology(_))
    ));
    assert_eq!(env.store().head(), rev);
}

#[test]
fn vector_walk_reads_back_every_state() {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../shared/vectors/btail-public.txt"
    ))
    .or_else(|_| std::fs::read_to_string("/work/shared/vectors/btail-public.txt"))
    .unwrap();
    let states: Vec<Topology> = text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| topo(l.split('|').next().unwrap().trim()))
        .collect();
    assert!(states.len() >= 8);
    let mut env = TreeEnv::new().unwrap();
    let walk: Vec<&Topology> = states.iter().chain(states.iter().rev()).collect();
    for t in walk {
        let c = env.commit(t).unwrap();
        assert_eq!(&c.topology, t);
        assert!(!c.changed.is_empty());
        let keycovs: Vec<_> = c.xkv.iter().map(|b| b.keycov).collect();
        assert_eq!(keycovs, t.bucket_keycovs());
    }
}

#[test]
fn assignment_minimizes_squared_keycov_distance_both_ways() {
    let mut env = TreeEnv::new().unwrap();
    env.commit(&topo("T2/B1:a-B2:b")).unwrap();
    let two = oids(&env);
    // Step 1 inserts 3 and 4 natively: B2 splits into [2,3) and a new [3,∞) bucket. More new
    // buckets than that pool: B1 and B2 keep their ranges, the split-off bucket (no oid yet)
    // serves [4,∞), and [3,4) is fresh.
    env.commit(&topo("T2,3,4/B1:a-B2:b-B3:c-B4:d")).unwrap();
    let four = oids(&env);
    assert_eq!(four[..2], two[..]);
    assert!(!two.contains(&four[2]) && !two.contains(&four[3]));
    // Fewer new buckets than old: [-∞,3) is closest to [-∞,2), [3,∞) to [4,∞).
    env.commit(&topo("T3/B1:a,2:b-B3:c,4:d")).unwrap();
    let back = oids(&env);
    assert_eq!(back, vec![four[0], four[3]]);
}

#[test]
fn standalone_restructure_commits_and_verifies() {
    use std::collections::BTreeMap;

    use btail::object::Object;
    use btail::restructure::restructure;
    use btail::store::MemStore;
    use btail::topology::Value;

    let store = MemStore::new();
    let root = store.alloc_oid();
    let (a, b) = (store.alloc_oid(), store.alloc_oid());
    store
        .commit(vec![
            (root, Some(Object::Tree(TreeState::Empty))),
            (a, Some(Object::Value("a".into()))),
            (b, Some(Object::Value("b".into()))),
        ])
        .unwrap();
    let values: BTreeMap<Value, Oid> = [(Value::from("a"), a), (Value::from("b"), b)]
        .into_iter()
        .collect();
    let c = restructure(&store, root, &topo("T2/T-T/B1:a-B2:b"), &values).unwrap();
    assert_eq!(c.changed.len(), 5, "root, two Trees, two buckets");
    assert_eq!(
        btail::btree::topology_at(&store, root, c.rev)
            .unwrap()
            .to_string(),
        "T2/T-T/B1:a-B2:b"
    );
    assert!(matches!(
        restructure(&store, root, &topo("T/B1:c"), &values),
        Err(RestructureError::UnknownValue(v)) if &*v == "c"
    ));
    let c = restructure(&store, root, &topo("T2/T-T/B1:a-B2:b"), &values).unwrap();
    assert!(c.changed.is_empty());
}

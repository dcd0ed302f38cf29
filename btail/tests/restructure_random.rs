//! Restructure over random AllStructs walks: read-back, Xkv consistency and exact δZ checked
//! independently against the store's history.

use std::collections::BTreeSet;

use btail::allstructs;
use btail::object::Oid;
use btail::restructure::TreeEnv;
use btail::topology::Topology;
use proptest::prelude::*;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

fn walk(seed: u64, steps: &[(usize, usize, bool)]) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let subsets = allstructs::shuffled(allstructs::key_subsets(5), seed);
    let mut env = TreeEnv::new().unwrap();
    for &(set_idx, topo_idx, delete) in steps {
        let kv = allstructs::random_kv(&subsets[set_idx % subsets.len()], &mut rng);
        let topo = if delete {
            Topology::deleted()
        } else {
            let sample = allstructs::sample(&kv, 3, 2, 6, seed ^ set_idx as u64);
            sample[topo_idx % sample.len()].clone()
        };
        let prev = env.head().clone();
        let c = env.commit(&topo).unwrap();
        assert_eq!(c.kv, topo.kv());
        let flat: Vec<_> = c.xkv.iter().flat_map(|b| b.kv.clone()).collect();
        assert_eq!(flat, topo.kv().into_iter().collect::<Vec<_>>());
        assert_eq!(
            c.xkv.iter().map(|b| b.keycov).collect::<Vec<_>>(),
            topo.bucket_keycovs()
        );
        assert!(!c.changed.is_empty());
        // δZ: exactly the nodes (of either state) whose stored state differs.
        let nodes: BTreeSet<Oid> = prev
            .xkv
            .iter()
            .chain(&c.xkv)
            .flat_map(|b| b.path.iter().copied())
            .filter(|o| o.is_valid())
            .collect();
        let store = env.store();
        for oid in nodes {
            let differs = store.get(oid, prev.rev).unwrap() != store.get(oid, c.rev).unwrap();
            assert_eq!(
                c.changed.contains(&oid),
                differs,
                "{oid:?} in {} → {}",
                prev.topology,
                topo
            );
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]
    #[test]
    fn random_walks_commit_exactly(
        seed in any::<u64>(),
        steps in proptest::collection::vec((0usize..32, 0usize..6, proptest::bool::weighted(0.1)), 1..12),
    ) {
        walk(seed, &steps);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    /// Changing only values keeps every node and touches exactly the buckets (or the root, for
    /// an embedded bucket) whose entries changed, plus newly created value objects.
    #[test]
    fn value_only_changes_touch_only_their_buckets(seed in any::<u64>(), keys in 1u32..32, i in 0usize..200) {
        let keys = &allstructs::key_subsets(5)[keys as usize];
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let (kv1, kv2) = (allstructs::random_kv(keys, &mut rng), allstructs::random_kv(keys, &mut rng));
        let shapes1: Vec<Topology> = allstructs::AllStructs::kv(&kv1, 2, 2).collect();
        let shapes2: Vec<Topology> = allstructs::AllStructs::kv(&kv2, 2, 2).collect();
        let (t1, t2) = (&shapes1[i % shapes1.len()], &shapes2[i % shapes2.len()]);
        let mut env = TreeEnv::new().unwrap();
        let a = env.commit(t1).unwrap();
        let b = env.commit(t2).unwrap();
        let mut want = BTreeSet::new();
        for (ba, bb) in a.xkv.iter().zip(&b.xkv) {
            prop_assert_eq!(&ba.path, &bb.path);
            if ba.kv != bb.kv {
                // An embedded bucket's entries live in the root.
                want.insert(if bb.oid.is_valid() { bb.oid } else { env.root() });
            }
        }
        for v in kv2.values() {
            if !kv1.values().any(|x| x == v) {
                want.insert(env.value_oid(v).unwrap());
            }
        }
        if t1 == t2 {
            prop_assert_eq!(b.changed.len(), 1, "only the dummy");
        } else {
            prop_assert_eq!(b.changed.iter().copied().collect::<BTreeSet<_>>(), want);
        }
    }
}

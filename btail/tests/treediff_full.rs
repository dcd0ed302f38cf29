//! treediff with every key tracked: the δ must be exactly the full key-value diff and the
//! tracked set must become exactly the leaves of the new tree, over a seeded walk of
//! AllStructs-sampled topologies (no oracle needed: with everything tracked there is no
//! adjacency slack).

use std::collections::BTreeMap;
use std::sync::Arc;

use btail::allstructs::{random_kv, sample};
use btail::blib::PPTreeSubSet;
use btail::dbtail::DBtail;
use btail::restructure::{TreeCommit, TreeEnv};
use btail::topology::Topology;
use btail::treediff::ΔValue;
use btail::{Key, Oid};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn full_diff(a: &TreeCommit, b: &TreeCommit) -> BTreeMap<Key, ΔValue> {
    let flat = |c: &TreeCommit| -> BTreeMap<Key, Oid> {
        c.xkv
            .iter()
            .flat_map(|b| b.entries.iter().map(|(k, v)| (*k, *v)))
            .collect()
    };
    let (fa, fb) = (flat(a), flat(b));
    let mut d = BTreeMap::new();
    for k in fa.keys().chain(fb.keys()) {
        let old = fa.get(k).copied().unwrap_or(Oid::INVALID);
        let new = fb.get(k).copied().unwrap_or(Oid::INVALID);
        if old != new {
            d.insert(*k, ΔValue { old, new });
        }
    }
    d
}

fn leaves(c: &TreeCommit) -> PPTreeSubSet {
    let mut s = PPTreeSubSet::new();
    for b in &c.xkv {
        s.add_path(&b.path).unwrap();
    }
    s
}

#[tokio::test]
async fn everything_tracked_gives_the_full_diff() {
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let mut env = TreeEnv::new().unwrap();
    let store = Arc::new(env.store().clone());
    let mut states: Vec<Topology> = Vec::new();
    for _ in 0..12 {
        let keys: Vec<Key> = (0..6).filter(|_| rng.random_bool(0.5)).collect();
        let kv = random_kv(&keys, &mut rng);
        states.extend(sample(&kv, 2, 2, 4, rng.random()));
    }
    states.push(Topology::deleted());
    states.push(Topology::parse("T3/B1:a-B5:b").unwrap());
    let mut prev = env.head().clone();
    for t in states {
        let next = env.commit(&t).unwrap();
        let db = DBtail::new(store.clone(), prev.rev);
        for b in &prev.xkv {
            db.track(&b.path, b.keycov).await.unwrap();
        }
        let δb = db.update(next.rev, &next.changed).await.unwrap();
        let want = full_diff(&prev, &next);
        let got = δb.by_root.get(&env.root()).cloned().unwrap_or_default();
        assert_eq!(got, want, "{} → {}", prev.topology, next.topology);
        let v = db.inspect().await;
        assert_eq!(
            v.track_set,
            leaves(&next),
            "{} → {}",
            prev.topology,
            next.topology
        );
        prev = next;
    }
}

//! ΔBtail benches.
//!
//! - group `btail_update_N`: `update_one_key`, ΔBtail's Update for a commit that changes one
//!   tracked key in a tree of N keys (fanout 64), beside `full_diff`: loading both revisions of
//!   the whole tree and diffing all their entries, the cost ΔBtail avoids.
//! - `allstructs/keys0..4_d3s2`: the AllStructs enumeration rate (5012 topologies).

use std::hint::black_box;
use std::sync::Arc;

use btail::allstructs::AllStructs;
use btail::btree::load_tree;
use btail::dbtail::DBtail;
use btail::store::MemStore;
use btail::treediff::diff_b;
use btail::{Bucket, KEY_MAX, KEY_MIN, Key, Object, Oid, Rev, TreeState};
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};

const FANOUT: usize = 64;

/// A tree of `nkeys` keys `0, 2, 4, …` built level by level, its one-key change, and what to
/// track: the path and keycov of the changed key's bucket.
struct Fixture {
    store: MemStore,
    root: Oid,
    at1: Rev,
    at2: Rev,
    changed: Vec<Oid>,
    path: Vec<Oid>,
    keycov: btail::blib::KeyRange,
}

fn build(nkeys: usize) -> Fixture {
    let store = MemStore::new();
    let va = store.alloc_oid();
    let vb = store.alloc_oid();
    let mut writes = vec![
        (va, Some(Object::Value("a".into()))),
        (vb, Some(Object::Value("b".into()))),
    ];
    let keys: Vec<Key> = (0..nkeys as Key).map(|i| 2 * i).collect();
    // Level: (oid, lowest key, path-to-children info) per node.
    let mut level: Vec<(Oid, Key)> = Vec::new();
    let mut buckets: Vec<(Oid, Vec<(Key, Oid)>)> = Vec::new();
    for chunk in keys.chunks(FANOUT) {
        let oid = store.alloc_oid();
        let entries: Vec<(Key, Oid)> = chunk.iter().map(|&k| (k, va)).collect();
        level.push((oid, chunk[0]));
        buckets.push((oid, entries.clone()));
        writes.push((oid, Some(Object::Bucket(Bucket { entries }))));
    }
    let mut parents: Vec<Vec<(Oid, Vec<Oid>)>> = Vec::new();
    while level.len() > 1 {
        let mut up = Vec::new();
        let mut links = Vec::new();
        for chunk in level.chunks(FANOUT) {
            let oid = store.alloc_oid();
            let keys: Vec<Key> = chunk[1..].iter().map(|(_, lo)| *lo).collect();
            let children: Vec<Oid> = chunk.iter().map(|(o, _)| *o).collect();
            links.push((oid, children.clone()));
            writes.push((oid, Some(Object::Tree(TreeState::Node { keys, children }))));
            up.push((oid, chunk[0].1));
        }
        parents.push(links);
        level = up;
    }
    let root = level[0].0;
    let c1 = store.commit(writes).expect("fresh oids");
    // Change the middle key: one bucket changes.
    let bi = buckets.len() / 2;
    let (boid, mut entries) = buckets[bi].clone();
    entries[0].1 = vb;
    let key = entries[0].0;
    let c2 = store
        .commit(vec![(boid, Some(Object::Bucket(Bucket { entries })))])
        .expect("allocated oid");
    // Path root → bucket, found by descending the link levels.
    let mut path = vec![boid];
    let mut cur = boid;
    for links in &parents {
        let (p, _) = links
            .iter()
            .find(|(_, ch)| ch.contains(&cur))
            .expect("every node has a parent");
        path.push(*p);
        cur = *p;
    }
    path.reverse();
    let lo = if bi == 0 { KEY_MIN } else { key };
    let hi_ = buckets.get(bi + 1).map_or(KEY_MAX, |(_, e)| e[0].0 - 1);
    Fixture {
        store,
        root,
        at1: c1.rev,
        at2: c2.rev,
        changed: c2.changed,
        path,
        keycov: btail::blib::KeyRange::new(lo, hi_),
    }
}

fn full_kv_diff(f: &Fixture) -> usize {
    let t1 = load_tree(&f.store, f.root, f.at1)
        .expect("load")
        .expect("exists");
    let t2 = load_tree(&f.store, f.root, f.at2)
        .expect("load")
        .expect("exists");
    let b1 = Bucket {
        entries: t1.entries(),
    };
    let b2 = Bucket {
        entries: t2.entries(),
    };
    diff_b(Some(&b1), Some(&b2)).len()
}

fn bench_update(c: &mut Criterion) {
    let rt = benches::runtime();
    for nkeys in [1_000usize, 100_000, 1_000_000] {
        let mut g = c.benchmark_group(format!("btail_update_{nkeys}"));
        g.sample_size(10);
        let f = build(nkeys);
        let src = Arc::new(f.store.clone());
        g.bench_function("update_one_key", |b| {
            b.iter_batched(
                || {
                    let db = DBtail::new(src.clone(), f.at1);
                    rt.block_on(async {
                        db.track(&f.path, f.keycov).await.expect("valid path");
                        db.rebuild_all().await.expect("rebuild");
                    });
                    db
                },
                |db| {
                    let delta_b = rt.block_on(db.update(f.at2, &f.changed)).expect("update");
                    assert_eq!(delta_b.by_root[&f.root].len(), 1);
                    delta_b
                },
                BatchSize::SmallInput,
            )
        });
        g.bench_function("full_diff", |b| {
            b.iter(|| {
                let n = full_kv_diff(&f);
                assert_eq!(n, 1);
                n
            })
        });
        g.finish();
    }
}

fn bench_allstructs(c: &mut Criterion) {
    let mut g = c.benchmark_group("allstructs");
    g.throughput(Throughput::Elements(5012));
    g.bench_function("keys0..4_d3s2", |b| {
        b.iter(|| {
            let n = AllStructs::keys(0..5, 3, 2).map(black_box).count();
            assert_eq!(n, 5012);
            n
        })
    });
    g.finish();
}

criterion_group!(benches, bench_update, bench_allstructs);
criterion_main!(benches);

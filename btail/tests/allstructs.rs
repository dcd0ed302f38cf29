//! AllStructs: the reference's counts and ordering, validity of every topology, the sampler.

use std::collections::{BTreeMap, BTreeSet};

use btail::allstructs::{self, AllStructs};
use btail::btree;
use btail::topology::{Topology, Value};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

fn count(keys: &[i64], d: u32, s: usize) -> usize {
    AllStructs::keys(keys.iter().copied(), d, s).count()
}

#[test]
fn counts_match_the_reference() {
    let k0_4 = [0, 1, 2, 3, 4];
    assert_eq!(count(&k0_4, 1, 1), 30);
    assert_eq!(count(&k0_4, 2, 1), 207);
    assert_eq!(count(&k0_4, 3, 2), 5012);
    let k123 = [1, 2, 3];
    assert_eq!(
        [
            count(&k123, 1, 1),
            count(&k123, 2, 1),
            count(&k123, 3, 2),
            count(&k123, 4, 2)
        ],
        [10, 33, 142, 386]
    );
    let k024 = [0, 2, 4];
    assert_eq!(
        [
            count(&k024, 1, 1),
            count(&k024, 2, 1),
            count(&k024, 3, 2),
            count(&k024, 4, 2)
        ],
        [22, 91, 484, 1389]
    );
    assert_eq!(count(&[], 3, 2), 1);
}

#[test]
fn ordering_matches_the_reference_example() {
    let kv: BTreeMap<i64, Value> = [(1, Value::from("a")), (3, Value::from("c"))]
        .into_iter()
        .collect();
    let got: Vec<String> = AllStructs::kv(&kv, 1, 1).map(|t| t.to_string()).collect();
    assert_eq!(
        got,
        [
            "T/B1:a,3:c",
            "T/T/B1:a,3:c",
            "T/T2/B1:a-B3:c",
            "T/T3/B1:a-B3:c",
            "T2/B1:a-B3:c",
            "T2/T-T/B1:a-B3:c",
            "T3/B1:a-B3:c",
            "T3/T-T/B1:a-B3:c",
        ]
    );
    assert_eq!(
        AllStructs::kv(&BTreeMap::new(), 2, 1)
            .map(|t| t.to_string())
            .collect::<Vec<_>>(),
        ["T/B:"]
    );
    assert_eq!(
        AllStructs::keys([], 2, 1)
            .map(|t| t.to_string())
            .collect::<Vec<_>>(),
        ["T/B"]
    );
}

#[test]
fn every_topology_is_distinct_valid_and_holds_exactly_the_keys() {
    let keys = [0, 2, 4];
    let all: Vec<Topology> = AllStructs::keys(keys, 3, 2).collect();
    let distinct: BTreeSet<String> = all.iter().map(|t| t.to_string()).collect();
    assert_eq!(distinct.len(), all.len());
    for t in &all {
        t.check_keys().unwrap();
        assert_eq!(t.bucket_keys(), keys);
        assert!(t.buckets().iter().all(|b| !b.node.keys().is_empty()), "{t}");
        // Depth: at most maxdepth + 1 Tree levels.
        assert!(t.buckets().iter().all(|b| b.depth <= 4), "{t}");
        assert_eq!(Topology::parse(&t.to_string()).unwrap(), *t);
    }
}

fn kv3() -> BTreeMap<i64, Value> {
    [(1, "a"), (2, "b"), (3, "c")]
        .into_iter()
        .map(|(k, v)| (k, Value::from(v)))
        .collect()
}

#[test]
fn sampler_gives_native_first_and_deduplicates_it() {
    // Reference session `1 1 10 1:a,2:b,3:c`: all 10 topologies, native first.
    let got = allstructs::sample(&kv3(), 1, 1, 10, 7);
    assert_eq!(got[0].to_string(), "T2/B1:a-B2:b,3:c");
    let set: BTreeSet<String> = got.iter().map(|t| t.to_string()).collect();
    let all: BTreeSet<String> = AllStructs::kv(&kv3(), 1, 1)
        .map(|t| t.to_string())
        .collect();
    assert_eq!(got.len(), 10);
    assert_eq!(set, all);
    // Fewer requested: a seeded subset, reproducible, different across seeds.
    let a = allstructs::sample(&kv3(), 3, 2, 20, 1);
    assert_eq!(a, allstructs::sample(&kv3(), 3, 2, 20, 1));
    assert_eq!(a.len(), 20);
    assert_eq!(a[0], btree::native_topology(&kv3()));
    assert!(a[1..].iter().all(|t| *t != a[0]));
    assert_ne!(a, allstructs::sample(&kv3(), 3, 2, 20, 2));
    assert_eq!(allstructs::sample(&kv3(), 3, 2, 1, 1).len(), 1);
}

/// The sampler builds only the topologies it keeps; it must pick exactly what a reservoir over
/// the fully built enumeration (native skipped, same rng draws) picks.
#[test]
fn sampler_equals_a_reservoir_over_the_built_enumeration() {
    use rand::RngExt;
    let reference = |kv: &BTreeMap<i64, Value>, d: u32, s: usize, n: usize, seed: u64| {
        let native = btree::native_topology(kv);
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let (mut reservoir, mut seen) = (Vec::new(), 0usize);
        for t in AllStructs::kv(kv, d, s).filter(|t| *t != native) {
            seen += 1;
            if reservoir.len() < n - 1 {
                reservoir.push(t);
            } else {
                let j = rng.random_range(0..seen);
                if j < n - 1 {
                    reservoir[j] = t;
                }
            }
        }
        let mut out = vec![native];
        out.extend(reservoir);
        out
    };
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let mut compared = 0;
    for keys in allstructs::key_subsets(5) {
        let keys: Vec<i64> = keys.iter().map(|k| k * 3 - 4).collect();
        let kv = allstructs::random_kv(&keys, &mut rng);
        for (d, s, n) in [(1, 1, 4), (2, 2, 6), (3, 2, 3)] {
            let seed = rng.random();
            assert_eq!(
                allstructs::sample(&kv, d, s, n, seed),
                reference(&kv, d, s, n, seed),
                "{kv:?} d{d} s{s} n{n}"
            );
            compared += 1;
        }
    }
    assert_eq!(compared, 32 * 3);
}

#[test]
fn generators_are_seeded() {
    let subsets = allstructs::key_subsets(3);
    assert_eq!(subsets.len(), 8);
    assert!(subsets.contains(&vec![0, 2]));
    assert_eq!(
        allstructs::shuffled(subsets.clone(), 5),
        allstructs::shuffled(subsets.clone(), 5)
    );
    let mut r1 = ChaCha8Rng::seed_from_u64(9);
    let mut r2 = ChaCha8Rng::seed_from_u64(9);
    let v1 = allstructs::random_kv(&[0, 1, 2, 3], &mut r1);
    assert_eq!(v1, allstructs::random_kv(&[0, 1, 2, 3], &mut r2));
    assert!(
        v1.values()
            .all(|v| allstructs::VALUE_LETTERS.contains(&&**v))
    );
}

#[test]
fn deeper_count_matches_the_reference() {
    assert_eq!(count(&[0, 1, 2, 3, 4], 4, 2), 30863);
}

/// A naive materializing model of `_allStructs`: nested nodes.
#[derive(Clone, Debug)]
enum N {
    T(Vec<i64>, Vec<N>),
    B(Vec<i64>),
}

fn split_vectors(keys: &[i64], nsplit: usize) -> Vec<Vec<i64>> {
    // All ascending integer tuples within (min, max] leaving a key in every sub-range.
    let (lo, hi) = (keys[0], keys[keys.len() - 1]);
    let mut out = vec![vec![]];
    for _ in 0..nsplit {
        let mut next = Vec::new();
        for v in &out {
            let start = v.last().map_or(lo + 1, |x| x + 1);
            for x in start..=hi {
                let mut w = v.clone();
                w.push(x);
                next.push(w);
            }
        }
        out = next;
    }
    out.retain(|v| {
        let bounds: Vec<i64> = std::iter::once(i64::MIN)
            .chain(v.iter().copied())
            .chain([i64::MAX])
            .collect();
        bounds
            .windows(2)
            .all(|w| keys.iter().any(|k| w[0] <= *k && *k < w[1]))
    });
    out
}

fn subranges(keys: &[i64], splits: &[i64]) -> Vec<Vec<i64>> {
    let bounds: Vec<i64> = std::iter::once(i64::MIN)
        .chain(splits.iter().copied())
        .chain([i64::MAX])
        .collect();
    bounds
        .windows(2)
        .map(|w| {
            keys.iter()
                .copied()
                .filter(|k| w[0] <= *k && *k < w[1])
                .collect()
        })
        .collect()
}

fn naive(keys: &[i64], d: u32, s: usize) -> Vec<N> {
    let mut out = Vec::new();
    for nsplit in 0..=s {
        for splits in split_vectors(keys, nsplit) {
            let subs = subranges(keys, &splits);
            out.push(N::T(
                splits.clone(),
                subs.iter().map(|k| N::B(k.clone())).collect(),
            ));
            if d > 0 {
                let mut product: Vec<Vec<N>> = vec![vec![]];
                for sub in &subs {
                    let alts = naive(sub, d - 1, s);
                    product = product
                        .into_iter()
                        .flat_map(|p| {
                            alts.iter().map(move |a| {
                                let mut q = p.clone();
                                q.push(a.clone());
                                q
                            })
                        })
                        .collect();
                }
                out.extend(product.into_iter().map(|c| N::T(splits.clone(), c)));
            }
        }
    }
    out
}

fn encode(root: &N) -> String {
    let join = |k: &[i64]| {
        k.iter()
            .map(|k| k.to_string())
            .collect::<Vec<_>>()
            .join(",")
    };
    let mut levels = Vec::new();
    let mut level = vec![root];
    while !level.is_empty() {
        let mut next = Vec::new();
        let mut parts = Vec::new();
        for n in level {
            match n {
                N::T(k, c) => {
                    parts.push(format!("T{}", join(k)));
                    next.extend(c.iter());
                }
                N::B(k) => parts.push(format!("B{}", join(k))),
            }
        }
        levels.push(parts.join("-"));
        level = next;
    }
    levels.join("/")
}

proptest::proptest! {
    #[test]
    fn lazy_enumeration_equals_a_naive_model(
        keys in proptest::collection::btree_set(0i64..12, 1..5),
        d in 0u32..3,
        s in 1usize..3,
    ) {
        let keys: Vec<i64> = keys.into_iter().collect();
        let want: Vec<String> = naive(&keys, d, s).iter().map(encode).collect();
        let got: Vec<String> = AllStructs::keys(keys.iter().copied(), d, s).map(|t| t.to_string()).collect();
        proptest::prop_assert_eq!(got, want);
    }
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(48))]

    /// Counting and random access agree with the walk: `total` is the number of topologies the
    /// iterator yields, `at(i)` its `i`-th, and nothing lies past the end.
    #[test]
    fn total_and_at_equal_the_walk(
        keys in proptest::collection::btree_set(0i64..12, 0..5),
        d in 0u32..4,
        s in 0usize..3,
    ) {
        let all = AllStructs::keys(keys.iter().copied(), d, s);
        let walked: Vec<Topology> = all.clone().collect();
        proptest::prop_assert_eq!(all.total(), walked.len() as u64);
        for (i, t) in walked.iter().enumerate() {
            let at = all.at(i as u64);
            proptest::prop_assert_eq!(at.as_ref(), Some(t), "index {}", i);
        }
        proptest::prop_assert_eq!(all.at(walked.len() as u64), None);
    }
}

#[test]
fn total_matches_the_reference_counts_without_walking() {
    let all = AllStructs::keys([0, 1, 2, 3, 4], 4, 2);
    assert_eq!(all.total(), 30863);
    // The last topology, built directly, is the walk's last.
    assert_eq!(
        all.at(30862),
        AllStructs::keys([0, 1, 2, 3, 4], 4, 2).last()
    );
}

/// `pick` draws what a uniform pick among `sample`'s `n` would: the native topology about
/// `1/n` of the time, otherwise members of the enumeration, spread over many of them.
#[test]
fn pick_favours_native_as_a_pick_among_the_sample_would() {
    let kv: BTreeMap<i64, Value> = (0..5).map(|k| (k, Value::from("a"))).collect();
    let all: BTreeSet<String> = AllStructs::kv(&kv, 3, 2).map(|t| t.to_string()).collect();
    let native = btree::native_topology(&kv);
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let (draws, n) = (3_000, 6);
    let mut natives = 0;
    let mut seen = BTreeSet::new();
    for _ in 0..draws {
        let t = allstructs::pick(&kv, 3, 2, n, &mut rng);
        if t == native {
            natives += 1;
        } else {
            assert!(
                all.contains(&t.to_string()),
                "{t} is not in the enumeration"
            );
        }
        seen.insert(t.to_string());
    }
    let expected = draws / n;
    assert!(
        natives > expected * 8 / 10 && natives < expected * 12 / 10,
        "native drawn {natives} times of {draws}, expected about {expected}"
    );
    assert!(
        seen.len() > 1_500,
        "only {} distinct topologies",
        seen.len()
    );
    // Small enumerations: exactly a pick among the sample (all of it).
    let small = kv3();
    let every: BTreeSet<String> = AllStructs::kv(&small, 1, 1)
        .map(|t| t.to_string())
        .collect();
    let mut rng = ChaCha8Rng::seed_from_u64(4);
    let picked: BTreeSet<String> = (0..400)
        .map(|_| allstructs::pick(&small, 1, 1, 10, &mut rng).to_string())
        .collect();
    assert_eq!(picked, every);
}

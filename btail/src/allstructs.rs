//! Lazy enumeration (AllStructs) and seeded sampling of tree topologies.
//!
//! `AllStructs(keys, maxdepth, maxsplit)` enumerates every Tree structure over sorted `keys`
//! in which every bucket holds at least one key: for `nsplit` in `0..=maxsplit`, for every
//! split vector (split points ascending, lexicographic; a split point between consecutive keys
//! `k_i < k_{i+1}` takes the values `k_i+1 ..= k_{i+1}`), first the Tree over buckets of the
//! sub-ranges, then, while depth remains, the Tree over every element of the Cartesian product
//! (last factor fastest) of the sub-ranges' own enumerations at depth − 1. No keys: only `T/B`.
//!
//! The enumeration is an odometer of nested cursors: nothing is materialized, each step
//! advances one cursor and each topology is emitted straight into the flat [`Topology`].
//!
//! The sampler returns the native topology (what ZODB builds by inserting the keys) first and
//! `n − 1` reservoir samples of the other topologies, from a ChaCha8 stream seeded by the
//! caller. Key-set and value generators are seeded the same way.

use std::collections::BTreeMap;

use rand::seq::SliceRandom;
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::btree::native_topology;
use crate::object::Key;
use crate::topology::{Node, Topology, TopologyBuilder, Value};

/// The value names used by the generators: `a` ..= `j`.
pub const VALUE_LETTERS: &[&str] = &["a", "b", "c", "d", "e", "f", "g", "h", "i", "j"];

/// Element counts of cursors by `(k0, k1, depth)`.
type Counts = BTreeMap<(usize, usize, u32), u128>;

/// Enumerates `_allStructs` over `keys[k0..k1]` (at least one key).
#[derive(Clone, Debug)]
struct Cursor {
    k0: usize,
    k1: usize,
    depth: u32,
    /// Gap `g` lies between `keys[k0 + g]` and `keys[k0 + g + 1]`.
    gaps: Vec<usize>,
    /// The split point chosen in each gap.
    splits: Vec<Key>,
    /// Whether the current element is the Tree over the product of `subs` (else over
    /// buckets).
    product: bool,
    /// One cursor per sub-range while `product`; kept across elements to reuse buffers.
    subs: Vec<Cursor>,
}

impl Cursor {
    fn new(k0: usize, k1: usize, depth: u32) -> Cursor {
        debug_assert!(k0 < k1);
        Cursor {
            k0,
            k1,
            depth,
            gaps: Vec::new(),
            splits: Vec::new(),
            product: false,
            subs: Vec::new(),
        }
    }

    /// Re-targets this cursor to `keys[k0..k1]` at its first element, keeping buffers.
    fn retarget(&mut self, k0: usize, k1: usize, depth: u32) {
        debug_assert!(k0 < k1);
        (self.k0, self.k1, self.depth) = (k0, k1, depth);
        self.reset();
    }

    /// Back to the first element (reusing the buffers).
    fn reset(&mut self) {
        self.gaps.clear();
        self.splits.clear();
        self.product = false;
    }

    fn ngaps(&self) -> usize {
        self.k1 - self.k0 - 1
    }

    /// Number of sub-ranges of the current split vector.
    fn nsubranges(&self) -> usize {
        self.gaps.len() + 1
    }

    /// The key index range of sub-range `i` of the current split vector.
    fn subrange(&self, i: usize) -> (usize, usize) {
        let start = if i == 0 {
            self.k0
        } else {
            self.k0 + self.gaps[i - 1] + 1
        };
        let end = if i == self.gaps.len() {
            self.k1
        } else {
            self.k0 + self.gaps[i] + 1
        };
        (start, end)
    }

    /// Whether the current element has the shape and keys of `node` (a bucket's values follow
    /// from its keys), compared in place, without building the element.
    fn matches(&self, keys: &[Key], node: Node<'_>) -> bool {
        if !node.is_tree() || node.keys() != self.splits.as_slice() {
            return false;
        }
        // Equal separators: `node` has exactly one child per sub-range.
        debug_assert_eq!(node.nchildren(), self.nsubranges());
        if self.product {
            self.subs
                .iter()
                .zip(node.children())
                .all(|(sub, child)| sub.matches(keys, child))
        } else {
            (0..self.nsubranges())
                .zip(node.children())
                .all(|(i, child)| {
                    let (k0, k1) = self.subrange(i);
                    !child.is_tree() && child.keys() == &keys[k0..k1]
                })
        }
    }

    /// Moves to the next element; `false` when exhausted (the cursor is then undefined until
    /// reset).
    fn advance(&mut self, keys: &[Key], maxsplit: usize) -> bool {
        if !self.product {
            if self.depth > 0 {
                let n = self.nsubranges();
                self.subs.truncate(n);
                for i in 0..n {
                    let (a, b) = self.subrange(i);
                    match self.subs.get_mut(i) {
                        Some(sub) => sub.retarget(a, b, self.depth - 1),
                        None => self.subs.push(Cursor::new(a, b, self.depth - 1)),
                    }
                }
                self.product = true;
                return true;
            }
        } else {
            for sub in self.subs.iter_mut().rev() {
                if sub.advance(keys, maxsplit) {
                    return true;
                }
                sub.reset();
            }
        }
        self.product = false;
        self.next_split_vector(keys, maxsplit)
    }

    /// How many elements a cursor over `keys[k0..k1]` at `depth` yields, counted split vector
    /// by split vector (a handful per range) with the sub-range counts memoized, never by
    /// walking the elements.
    fn count(
        keys: &[Key],
        maxsplit: usize,
        k0: usize,
        k1: usize,
        depth: u32,
        memo: &mut Counts,
    ) -> u128 {
        if let Some(n) = memo.get(&(k0, k1, depth)) {
            return *n;
        }
        let mut c = Cursor::new(k0, k1, depth);
        let mut total: u128 = 0;
        loop {
            // The Tree over buckets, then (with depth left) the product of the sub-ranges.
            total += 1;
            if depth > 0 {
                total += (0..c.nsubranges())
                    .map(|i| {
                        let (a, b) = c.subrange(i);
                        Cursor::count(keys, maxsplit, a, b, depth - 1, memo)
                    })
                    .product::<u128>();
            }
            if !c.next_split_vector(keys, maxsplit) {
                break;
            }
        }
        memo.insert((k0, k1, depth), total);
        total
    }

    /// Moves to element `index` (which must be below [`Cursor::count`]) without stepping
    /// through the ones before it: the same order as [`Cursor::advance`], whose product
    /// odometer turns its last sub-cursor fastest.
    fn seek(&mut self, keys: &[Key], maxsplit: usize, mut index: u128, memo: &mut Counts) {
        self.reset();
        loop {
            if index == 0 {
                return;
            }
            index -= 1;
            if self.depth > 0 {
                let sizes: Vec<u128> = (0..self.nsubranges())
                    .map(|i| {
                        let (a, b) = self.subrange(i);
                        Cursor::count(keys, maxsplit, a, b, self.depth - 1, memo)
                    })
                    .collect();
                let product: u128 = sizes.iter().product();
                if index < product {
                    self.subs = (0..sizes.len())
                        .map(|i| {
                            let (a, b) = self.subrange(i);
                            Cursor::new(a, b, self.depth - 1)
                        })
                        .collect();
                    self.product = true;
                    for (sub, size) in self.subs.iter_mut().zip(&sizes).rev() {
                        sub.seek(keys, maxsplit, index % size, memo);
                        index /= size;
                    }
                    debug_assert_eq!(index, 0, "the index fits the product");
                    return;
                }
                index -= product;
            }
            let more = self.next_split_vector(keys, maxsplit);
            assert!(more, "seek past the end of the enumeration");
        }
    }

    /// The lexicographic successor of the split vector, then the first vector with one more
    /// split point.
    fn next_split_vector(&mut self, keys: &[Key], maxsplit: usize) -> bool {
        let n = self.splits.len();
        let ngaps = self.ngaps();
        let key = |g: usize| keys[self.k0 + g];
        // Find the rightmost position that can still grow (within its gap, or into the next
        // gap if the positions right of it still fit), then refill to its right with the
        // smallest values.
        for pos in (0..n).rev() {
            let g = self.gaps[pos];
            let refill_from = if self.splits[pos] < key(g + 1) {
                self.splits[pos] += 1;
                pos + 1
            } else if g + 1 + (n - pos - 1) < ngaps {
                pos
            } else {
                continue;
            };
            for (p, gap) in (refill_from..n).zip(g + 1..) {
                self.gaps[p] = gap;
                self.splits[p] = key(gap) + 1;
            }
            debug_assert!(self.gaps.last().is_none_or(|g| *g < ngaps));
            return true;
        }
        if n < maxsplit && n < ngaps {
            self.gaps.clear();
            self.splits.clear();
            for g in 0..=n {
                self.gaps.push(g);
                self.splits.push(key(g) + 1);
            }
            return true;
        }
        false
    }
}

/// The lazy AllStructs enumeration; an [`Iterator`] of [`Topology`].
#[derive(Clone, Debug)]
pub struct AllStructs {
    keys: Vec<Key>,
    /// Parallel to `keys` when buckets carry values.
    values: Option<Vec<Value>>,
    maxsplit: usize,
    /// `None` when there are no keys (only `T/B`).
    cursor: Option<Cursor>,
    started: bool,
    done: bool,
}

impl AllStructs {
    /// Key-only topologies over `keys` (deduplicated and sorted).
    pub fn keys(keys: impl IntoIterator<Item = Key>, maxdepth: u32, maxsplit: usize) -> AllStructs {
        let mut keys: Vec<Key> = keys.into_iter().collect();
        keys.sort_unstable();
        keys.dedup();
        AllStructs::build(keys, None, maxdepth, maxsplit)
    }

    /// Topologies over the keys of `kv`, buckets carrying the values.
    pub fn kv(kv: &BTreeMap<Key, Value>, maxdepth: u32, maxsplit: usize) -> AllStructs {
        let keys = kv.keys().copied().collect();
        let values = kv.values().cloned().collect();
        AllStructs::build(keys, Some(values), maxdepth, maxsplit)
    }

    fn build(
        keys: Vec<Key>,
        values: Option<Vec<Value>>,
        maxdepth: u32,
        maxsplit: usize,
    ) -> AllStructs {
        let cursor = (!keys.is_empty()).then(|| Cursor::new(0, keys.len(), maxdepth));
        AllStructs {
            keys,
            values,
            maxsplit,
            cursor,
            started: false,
            done: false,
        }
    }

    fn push_bucket(&self, b: &mut TopologyBuilder, k0: usize, k1: usize) {
        match &self.values {
            Some(values) => {
                b.bucket_kv(self.keys[k0..k1].iter().copied().zip(values[k0..k1].iter()));
            }
            None => {
                b.bucket_keys(&self.keys[k0..k1]);
            }
        }
    }

    fn emit(&self) -> Topology {
        // Generous capacity: a reallocation costs more than the spare room.
        let m = self.keys.len();
        let mut b = TopologyBuilder::with_capacity(4 * m + 4, 3 * m + 4);
        let Some(cursor) = &self.cursor else {
            b.tree(&[]);
            self.push_bucket(&mut b, 0, 0);
            return finish(b);
        };
        // Level order without a queue: one depth-first pass per level (trees are shallow).
        let mut depth = 0;
        while self.emit_level(&mut b, cursor, depth) {
            depth += 1;
        }
        finish(b)
    }

    /// Emits, left to right, the nodes `level` levels below cursor `c`; returns whether any.
    fn emit_level(&self, b: &mut TopologyBuilder, c: &Cursor, level: usize) -> bool {
        match level {
            0 => {
                b.tree(&c.splits);
                true
            }
            1 if !c.product => {
                for i in 0..c.nsubranges() {
                    let (k0, k1) = c.subrange(i);
                    self.push_bucket(b, k0, k1);
                }
                true
            }
            _ if !c.product => false,
            _ => {
                let mut any = false;
                for sub in &c.subs {
                    any |= self.emit_level(b, sub, level - 1);
                }
                any
            }
        }
    }
}

fn finish(b: TopologyBuilder) -> Topology {
    // Every Tree links exactly its sub-ranges, all of one kind: always a valid topology.
    b.finish()
        .unwrap_or_else(|e| unreachable!("AllStructs emitted an invalid topology: {e}"))
}

impl AllStructs {
    /// Moves to the next topology without building it; `false` when exhausted.
    fn step(&mut self) -> bool {
        if self.done {
            return false;
        }
        if self.started {
            let advanced = match &mut self.cursor {
                Some(c) => c.advance(&self.keys, self.maxsplit),
                None => false,
            };
            if !advanced {
                self.done = true;
                return false;
            }
        }
        self.started = true;
        true
    }

    /// Whether the current topology (after a successful [`AllStructs::step`]) equals `t`,
    /// decided without building it when there are keys.
    fn current_is(&self, t: &Topology) -> bool {
        debug_assert!(self.started && !self.done);
        match (&self.cursor, t.root()) {
            (Some(c), Some(root)) => {
                let valued = self.values.is_some();
                c.matches(&self.keys, root) && leaves_valued(root, valued)
            }
            (Some(_), None) => false,
            (None, _) => self.emit() == *t,
        }
    }
}

impl AllStructs {
    /// How many topologies the enumeration yields in all, counted without walking it.
    pub fn total(&self) -> u64 {
        let n = match &self.cursor {
            Some(c) => Cursor::count(
                &self.keys,
                self.maxsplit,
                c.k0,
                c.k1,
                c.depth,
                &mut Counts::new(),
            ),
            None => 1,
        };
        u64::try_from(n).unwrap_or(u64::MAX)
    }

    /// The topology at `index` of the whole enumeration (`None` past its end), built without
    /// stepping through the ones before it.
    pub fn at(&self, index: u64) -> Option<Topology> {
        if index >= self.total() {
            return None;
        }
        let mut at = self.clone();
        if let Some(c) = &mut at.cursor {
            let depth = c.depth;
            c.retarget(0, at.keys.len(), depth);
            c.seek(&at.keys, at.maxsplit, u128::from(index), &mut Counts::new());
        }
        Some(at.emit())
    }
}

/// Whether every bucket under `node` carries values (`valued`) or none does.
fn leaves_valued(node: Node<'_>, valued: bool) -> bool {
    if node.is_tree() {
        node.children().all(|c| leaves_valued(c, valued))
    } else {
        node.is_valued() == valued
    }
}

impl Iterator for AllStructs {
    type Item = Topology;

    fn next(&mut self) -> Option<Topology> {
        self.step().then(|| self.emit())
    }
}

/// The native topology of `kv` first, then `n − 1` reservoir samples of the other
/// topologies of `AllStructs(kv, maxdepth, maxsplit)` (fewer if there are not enough).
pub fn sample(
    kv: &BTreeMap<Key, Value>,
    maxdepth: u32,
    maxsplit: usize,
    n: usize,
    seed: u64,
) -> Vec<Topology> {
    let native = native_topology(kv);
    let mut out = vec![native.clone()];
    if n <= 1 {
        return out;
    }
    let want = n - 1;
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut reservoir: Vec<Topology> = Vec::with_capacity(want);
    let mut seen = 0usize;
    // Only the topologies the reservoir keeps are built (a few dozen of thousands); the rng
    // draws are those of a walk that built every one, so a seed's sample is unchanged.
    let mut all = AllStructs::kv(kv, maxdepth, maxsplit);
    while all.step() {
        if all.current_is(&native) {
            continue;
        }
        seen += 1;
        if reservoir.len() < want {
            reservoir.push(all.emit());
        } else {
            let j = rng.random_range(0..seen);
            if j < want {
                reservoir[j] = all.emit();
            }
        }
    }
    debug_assert!(reservoir.len() <= want);
    out.extend(reservoir);
    out
}

/// One topology, drawn as a uniform pick among the `n` that [`sample`] returns would be: the
/// native topology with probability `1/n`, else a uniform other one of the enumeration. Where
/// [`sample`] walks the whole enumeration, this counts it and builds the topology at a random
/// index, so it costs next to nothing on large enumerations. (Small ones, with no more than
/// `n` topologies, are sampled and picked from exactly as said.)
pub fn pick(
    kv: &BTreeMap<Key, Value>,
    maxdepth: u32,
    maxsplit: usize,
    n: usize,
    rng: &mut ChaCha8Rng,
) -> Topology {
    assert!(n >= 1, "a pick among at least one topology");
    let all = AllStructs::kv(kv, maxdepth, maxsplit);
    let count = all.total();
    if count <= n as u64 {
        let mut picks = sample(kv, maxdepth, maxsplit, n, rng.random());
        let i = rng.random_range(0..picks.len());
        return picks.swap_remove(i);
    }
    let native = native_topology(kv);
    if rng.random_range(0..n) == 0 {
        return native;
    }
    // More than `n` topologies, so at least one is not native: the loop ends.
    loop {
        let t = all
            .at(rng.random_range(0..count))
            .expect("an index below the count");
        if t != native {
            return t;
        }
    }
}

/// Every subset of `{0 .. nkeys-1}`, each ascending, in binary-counting order.
pub fn key_subsets(nkeys: u32) -> Vec<Vec<Key>> {
    assert!(nkeys < 32, "2^{nkeys} key sets");
    (0u32..1 << nkeys)
        .map(|mask| {
            (0..nkeys)
                .filter(|i| mask & (1 << i) != 0)
                .map(Key::from)
                .collect()
        })
        .collect()
}

/// `items` shuffled by a ChaCha8 stream seeded with `seed`.
pub fn shuffled<T>(mut items: Vec<T>, seed: u64) -> Vec<T> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    items.shuffle(&mut rng);
    items
}

/// Random values (letters `a` ..= `j`) for `keys`, from `rng`.
pub fn random_kv(keys: &[Key], rng: &mut ChaCha8Rng) -> BTreeMap<Key, Value> {
    keys.iter()
        .map(|k| {
            (
                *k,
                Value::from(VALUE_LETTERS[rng.random_range(0..VALUE_LETTERS.len())]),
            )
        })
        .collect()
}

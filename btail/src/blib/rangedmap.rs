//! RangedMap and RangedKeySet: maps and sets over inclusive key ranges.
//!
//! A [`RangedMap`] is a sorted vector of non-overlapping `(range, value)` entries in which two
//! adjacent entries with equal values are always coalesced into one, so every map has exactly one
//! representation and `==` is set equality. The vector is linear on purpose: ΔBtail keeps these
//! proportional to a δ (or to the tracked coverage), which is small; every operation is one scan.
//! [`RangedKeySet`] is a `RangedMap<()>` with set algebra on top.

use std::fmt;

use super::KeyRange;
use crate::object::Key;

/// A map from keys to values, stored as maximal runs of keys with one value.
#[derive(Clone, PartialEq, Eq)]
pub struct RangedMap<V> {
    /// Sorted by `lo`, non-overlapping, no empty range, equal-valued neighbours not adjacent.
    entries: Vec<(KeyRange, V)>,
}

impl<V> Default for RangedMap<V> {
    fn default() -> Self {
        RangedMap {
            entries: Vec::new(),
        }
    }
}

impl<V: Clone + PartialEq> RangedMap<V> {
    /// The empty map.
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether no key is mapped.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Removes every entry.
    pub fn clear(&mut self) {
        self.entries.clear();
    }

    /// Index of the first entry whose `hi_ >= k`.
    fn first_not_below(&self, k: Key) -> usize {
        self.entries.partition_point(|(r, _)| r.hi_ < k)
    }

    /// The value of `k` and the whole run of keys mapped to it, or `None`.
    pub fn get(&self, k: Key) -> Option<(&V, KeyRange)> {
        let i = self.first_not_below(k);
        match self.entries.get(i) {
            Some((r, v)) if r.has(k) => Some((v, *r)),
            _ => None,
        }
    }

    /// Whether `k` is mapped.
    pub fn has(&self, k: Key) -> bool {
        self.get(k).is_some()
    }

    /// Maps `k` to `v`.
    pub fn set(&mut self, k: Key, v: V) {
        self.set_range(KeyRange::point(k), v);
    }

    /// Unmaps `k`.
    pub fn del(&mut self, k: Key) {
        self.del_range(KeyRange::point(k));
    }

    /// Maps every key of `r` to `v` (an empty `r` changes nothing).
    pub fn set_range(&mut self, r: KeyRange, v: V) {
        if r.is_empty() {
            return;
        }
        self.del_range(r);
        let mut i = self.first_not_below(r.lo);
        let mut new = (r, v);
        // Coalesce with the left neighbour when it ends right before r with the same value.
        if i > 0 {
            let (lr, lv) = &self.entries[i - 1];
            if lr.next_lo() == Some(r.lo) && *lv == new.1 {
                new.0.lo = lr.lo;
                self.entries.remove(i - 1);
                i -= 1;
            }
        }
        if let Some((rr, rv)) = self.entries.get(i)
            && r.next_lo() == Some(rr.lo)
            && *rv == new.1
        {
            new.0.hi_ = rr.hi_;
            self.entries.remove(i);
        }
        self.entries.insert(i, new);
        self.debug_verify();
    }

    /// Unmaps every key of `r`, shrinking or splitting the entries that overlap it.
    pub fn del_range(&mut self, r: KeyRange) {
        if r.is_empty() {
            return;
        }
        let start = self.first_not_below(r.lo);
        let mut end = start;
        while end < self.entries.len() && self.entries[end].0.lo <= r.hi_ {
            end += 1;
        }
        if start == end {
            return;
        }
        let mut keep = Vec::with_capacity(2);
        let (first_r, first_v) = &self.entries[start];
        if first_r.lo < r.lo {
            keep.push((KeyRange::new(first_r.lo, r.lo - 1), first_v.clone()));
        }
        let (last_r, last_v) = &self.entries[end - 1];
        if r.hi_ < last_r.hi_ {
            keep.push((KeyRange::new(r.hi_ + 1, last_r.hi_), last_v.clone()));
        }
        self.entries.splice(start..end, keep);
        self.debug_verify();
    }

    /// Whether every key of `r` is mapped (true for an empty `r`).
    pub fn has_range(&self, r: KeyRange) -> bool {
        if r.is_empty() {
            return true;
        }
        let mut i = self.first_not_below(r.lo);
        let mut lo = r.lo;
        loop {
            match self.entries.get(i) {
                Some((er, _)) if er.lo <= lo => {
                    if er.hi_ >= r.hi_ {
                        return true;
                    }
                    // er.hi_ < r.hi_ <= KEY_MAX, so the successor exists.
                    lo = er.hi_ + 1;
                    i += 1;
                }
                _ => return false,
            }
        }
    }

    /// Whether some key of `r` is mapped (false for an empty `r`).
    pub fn intersects_range(&self, r: KeyRange) -> bool {
        if r.is_empty() {
            return false;
        }
        let i = self.first_not_below(r.lo);
        matches!(self.entries.get(i), Some((er, _)) if er.lo <= r.hi_)
    }

    /// The entries, ascending.
    pub fn entries(&self) -> impl Iterator<Item = (KeyRange, &V)> + '_ {
        self.entries.iter().map(|(r, v)| (*r, v))
    }

    /// The ranges of the entries, ascending (adjacent ranges have different values).
    pub fn all_ranges(&self) -> impl Iterator<Item = KeyRange> + '_ {
        self.entries.iter().map(|(r, _)| *r)
    }

    fn debug_verify(&self) {
        if cfg!(debug_assertions) {
            self.verify();
        }
    }

    /// Asserts the representation invariant (sorted, disjoint, coalesced, no empty entry).
    pub fn verify(&self) {
        for (i, (r, v)) in self.entries.iter().enumerate() {
            assert!(!r.is_empty(), "RangedMap: empty entry {r}");
            if i > 0 {
                let (pr, pv) = &self.entries[i - 1];
                assert!(pr.hi_ < r.lo, "RangedMap: {pr} overlaps or precedes {r}");
                assert!(
                    !(pr.hi_ + 1 == r.lo && pv == v),
                    "RangedMap: equal-valued {pr} and {r} are not coalesced"
                );
            }
        }
    }
}

impl<V: fmt::Debug> fmt::Debug for RangedMap<V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{{")?;
        for (i, (r, v)) in self.entries.iter().enumerate() {
            if i > 0 {
                write!(f, " ")?;
            }
            write!(f, "{r}:{v:?}")?;
        }
        write!(f, "}}")
    }
}

/// A set of keys stored as maximal disjoint ranges.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct RangedKeySet {
    m: RangedMap<()>,
}

impl RangedKeySet {
    /// The empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// The set of the keys of `r`.
    pub fn from_range(r: KeyRange) -> Self {
        let mut s = Self::new();
        s.add_range(r);
        s
    }

    /// Whether the set has no key.
    pub fn is_empty(&self) -> bool {
        self.m.is_empty()
    }

    /// Removes every key.
    pub fn clear(&mut self) {
        self.m.clear();
    }

    /// Adds `k`.
    pub fn add(&mut self, k: Key) {
        self.m.set(k, ());
    }

    /// Removes `k`.
    pub fn del(&mut self, k: Key) {
        self.m.del(k);
    }

    /// Whether `k` is in the set.
    pub fn has(&self, k: Key) -> bool {
        self.m.has(k)
    }

    /// The maximal range of the set containing `k`, if any.
    pub fn range_of(&self, k: Key) -> Option<KeyRange> {
        self.m.get(k).map(|(_, r)| r)
    }

    /// Adds the keys of `r`.
    pub fn add_range(&mut self, r: KeyRange) {
        self.m.set_range(r, ());
    }

    /// Removes the keys of `r`.
    pub fn del_range(&mut self, r: KeyRange) {
        self.m.del_range(r);
    }

    /// Whether every key of `r` is in the set.
    pub fn has_range(&self, r: KeyRange) -> bool {
        self.m.has_range(r)
    }

    /// Whether some key of `r` is in the set.
    pub fn intersects_range(&self, r: KeyRange) -> bool {
        self.m.intersects_range(r)
    }

    /// The maximal ranges, ascending.
    pub fn ranges(&self) -> impl Iterator<Item = KeyRange> + '_ {
        self.m.all_ranges()
    }

    /// Whether every key of `self` is in `other`.
    pub fn is_subset(&self, other: &RangedKeySet) -> bool {
        self.ranges().all(|r| other.has_range(r))
    }

    /// `self ∪= other`.
    pub fn union_inplace(&mut self, other: &RangedKeySet) {
        for r in other.ranges() {
            self.add_range(r);
        }
    }

    /// `self \= other`.
    pub fn difference_inplace(&mut self, other: &RangedKeySet) {
        for r in other.ranges() {
            self.del_range(r);
        }
    }

    /// `self ∩= other`.
    pub fn intersection_inplace(&mut self, other: &RangedKeySet) {
        *self = self.intersection(other);
    }

    /// `self ∪ other`.
    pub fn union(&self, other: &RangedKeySet) -> RangedKeySet {
        let mut s = self.clone();
        s.union_inplace(other);
        s
    }

    /// `self \ other`.
    pub fn difference(&self, other: &RangedKeySet) -> RangedKeySet {
        let mut s = self.clone();
        s.difference_inplace(other);
        s
    }

    /// `self ∩ other`, as `(A ∪ B) \ (A \ B ∪ B \ A)`.
    pub fn intersection(&self, other: &RangedKeySet) -> RangedKeySet {
        let sym = self.difference(other).union(&other.difference(self));
        self.union(other).difference(&sym)
    }

    /// Asserts the representation invariant.
    pub fn verify(&self) {
        self.m.verify();
    }
}

impl fmt::Debug for RangedKeySet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{{")?;
        for (i, r) in self.ranges().enumerate() {
            if i > 0 {
                write!(f, " ")?;
            }
            write!(f, "{r}")?;
        }
        write!(f, "}}")
    }
}

impl FromIterator<KeyRange> for RangedKeySet {
    fn from_iter<I: IntoIterator<Item = KeyRange>>(iter: I) -> Self {
        let mut s = RangedKeySet::new();
        for r in iter {
            s.add_range(r);
        }
        s
    }
}

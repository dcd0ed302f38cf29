//! Inclusive key ranges `[lo, hi_]`.
//!
//! The upper bound is inclusive (`hi_` = "hi minus one") so the range that ends at the largest
//! key needs no key past it: `[k, KEY_MAX]` is representable and nothing overflows.

use std::fmt;

use crate::object::{KEY_MAX, KEY_MIN, Key};

/// The keys `lo..=hi_`; empty when `hi_ < lo`.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct KeyRange {
    /// Lowest key in the range.
    pub lo: Key,
    /// Highest key in the range (inclusive).
    pub hi_: Key,
}

impl KeyRange {
    /// The canonical empty range.
    pub const EMPTY: KeyRange = KeyRange { lo: 0, hi_: -1 };
    /// Every key.
    pub const ALL: KeyRange = KeyRange {
        lo: KEY_MIN,
        hi_: KEY_MAX,
    };

    /// `[lo, hi_]`.
    pub fn new(lo: Key, hi_: Key) -> KeyRange {
        KeyRange { lo, hi_ }
    }

    /// The single key `k`.
    pub fn point(k: Key) -> KeyRange {
        KeyRange { lo: k, hi_: k }
    }

    /// Whether no key is in the range.
    pub fn is_empty(&self) -> bool {
        self.hi_ < self.lo
    }

    /// Whether `k` is in the range.
    pub fn has(&self, k: Key) -> bool {
        self.lo <= k && k <= self.hi_
    }

    /// Whether every key of `other` is in `self` (an empty `other` always is).
    pub fn contains(&self, other: &KeyRange) -> bool {
        other.is_empty() || (self.lo <= other.lo && other.hi_ <= self.hi_)
    }

    /// The common keys of both ranges (possibly empty).
    pub fn intersect(&self, other: &KeyRange) -> KeyRange {
        let r = KeyRange {
            lo: self.lo.max(other.lo),
            hi_: self.hi_.min(other.hi_),
        };
        if r.is_empty() { KeyRange::EMPTY } else { r }
    }

    /// The key after `hi_`, or `None` when the range ends at the largest key.
    pub fn next_lo(&self) -> Option<Key> {
        self.hi_.checked_add(1)
    }
}

fn fmt_key(f: &mut fmt::Formatter<'_>, k: Key) -> fmt::Result {
    match k {
        KEY_MIN => write!(f, "-∞"),
        KEY_MAX => write!(f, "∞"),
        k => write!(f, "{k}"),
    }
}

/// Printed half-open as `[lo,hi)` with `hi = hi_ + 1`, `-∞`/`∞` for the extreme keys.
impl fmt::Display for KeyRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_empty() {
            return write!(f, "[)");
        }
        write!(f, "[")?;
        fmt_key(f, self.lo)?;
        write!(f, ",")?;
        // hi_ + 1 would overflow at KEY_MAX; print ∞ for it.
        fmt_key(f, self.hi_.checked_add(1).unwrap_or(KEY_MAX))?;
        write!(f, ")")
    }
}

impl fmt::Debug for KeyRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn max_key_has_no_successor_and_prints_as_infinity() {
        let r = KeyRange::new(5, KEY_MAX);
        assert!(r.has(KEY_MAX));
        assert_eq!(r.next_lo(), None);
        assert_eq!(r.to_string(), "[5,∞)");
        assert_eq!(KeyRange::ALL.to_string(), "[-∞,∞)");
        assert_eq!(KeyRange::new(1, 2).to_string(), "[1,3)");
    }

    #[test]
    fn intersection_and_containment() {
        let a = KeyRange::new(1, 10);
        assert_eq!(a.intersect(&KeyRange::new(5, 20)), KeyRange::new(5, 10));
        assert!(a.intersect(&KeyRange::new(11, 20)).is_empty());
        assert!(a.contains(&KeyRange::EMPTY));
        assert!(!a.contains(&KeyRange::new(0, 3)));
    }
}

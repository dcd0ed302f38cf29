//! Key ranges, ranged maps and key sets, PP-connected tree subsets.
//!
//! - [`keyrange`]: inclusive `[lo, hi_]` key ranges.
//! - [`rangedmap`]: [`RangedMap`] (coalesced range → value) and [`RangedKeySet`].
//! - [`pptreesubset`]: [`PPTreeSubSet`] (parent-closed node sets) and [`ΔPPTreeSubSet`].

pub mod keyrange;
pub mod pptreesubset;
pub mod rangedmap;

pub use keyrange::KeyRange;
pub use pptreesubset::{PPError, PPNode, PPTreeSubSet, norm_path, ΔPPTreeSubSet};
pub use rangedmap::{RangedKeySet, RangedMap};

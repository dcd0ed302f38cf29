//! Key ranges, ranged maps and key sets, PP-connected tree subsets.

pub mod keyrange;
pub mod pptreesubset;
pub mod rangedmap;

pub use keyrange::KeyRange;

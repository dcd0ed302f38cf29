//! Key ranges, ranged maps and key sets, PP-connected tree subsets.

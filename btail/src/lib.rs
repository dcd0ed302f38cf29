//! ΔBtail: the BTree-diff tail.

//! The KV-per-revision model of a BTree, and KVDiff.

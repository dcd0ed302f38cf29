//! Reference models and checkers.
//!
//! - [`block_store`]: the block-store model, the exact expected answer of every engine op.
//! - [`ops`]: engine operations as data, shared by property tests and simulation workloads.
//! - [`enrich`]: the model's own definitions of hashes, enrichment, filters and validation.
//! - [`conformance`]: the conformance suite every engine backend runs through the handle.
//! - [`kv`]: the KV-per-revision model of a BTree and KVDiff.
//! - [`kadj`]: the KAdj adjacency oracle.
//! - [`btail_check`]: the ΔBtail Update check and rebuild check.
//! - [`get_at`]: the oracle of ΔBtail's GetAt answers.
//! - [`track_sets`]: plain forms of ΔBtail's tracked sets and the checks' own set algebra.

pub mod block_store;
pub mod btail_check;
pub mod conformance;
pub mod enrich;
pub mod get_at;
pub mod kadj;
pub mod kv;
pub mod ops;
pub mod track_sets;

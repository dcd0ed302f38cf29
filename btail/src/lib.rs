//! ΔBtail: the BTree-diff tail.
//!
//! BTrees live as objects in a revisioned object store ([`store`]): Tree nodes hold separator
//! keys and child oids, Buckets hold keys and value oids. Every commit yields δZ, exactly the
//! oids whose state changed. ΔBtail turns the stream of δZ into per-tree key-level history
//! (vδT) for the keys a client tracks, computed by [`treediff`] on the tracked part of the
//! trees only, and rebuilt ([`dbtail`]) when tracking widens.
//!
//! Module map:
//! - [`object`]: oids, revisions, keys, object states, the [`object::ObjectSource`] trait.
//! - [`store`]: the in-memory revisioned object store.
//! - [`btree`]: BTrees over the store: lookup, native insert/delete, invariant checks.
//! - [`topology`]: the topology encoding (`T3/T-T/B1-T5/B-B7,8,9`) and its parser.
//! - [`restructure`]: reshaping a stored tree to a topology with minimal object churn.
//! - [`allstructs`]: lazy enumeration and seeded sampling of tree topologies.
//! - [`blib`]: key ranges, ranged maps and key sets, PP-connected tree subsets.
//! - [`treediff`]: the diff of the tracked part of a tree between two revisions.
//! - [`dbtail`]: ΔBtail itself: Track, Update, ForgetPast, GetAt, slices, rebuild.
//! - [`bugs`]: planted bugs for the simulator (switches, off unless a run names one).

// Planted bugs included: they are emulated safely (see `dbtail`), never with `unsafe`.
#![forbid(unsafe_code)]

pub mod allstructs;
pub mod blib;
pub mod btree;
pub mod bugs;
pub mod dbtail;
pub mod object;
pub mod restructure;
pub mod rt;
pub mod store;
pub mod topology;
pub mod treediff;

pub use object::{
    Bucket, KEY_MAX, KEY_MIN, Key, LoadError, Object, ObjectSource, Oid, Rev, TreeState,
};

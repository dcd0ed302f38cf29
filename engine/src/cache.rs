//! The read-through cache and the invariant that keeps it from serving removed blocks.

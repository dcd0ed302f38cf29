//! The in-memory revisioned object store.

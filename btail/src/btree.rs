//! BTrees over the object store: lookup, native insert/delete, invariant checks.

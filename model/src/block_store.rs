//! The block-store model: the expected state and the exact expected answer of every engine op.

//! The redb backend.

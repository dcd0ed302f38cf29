//! The shutdown coordinator.

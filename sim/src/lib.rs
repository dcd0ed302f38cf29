//! The deterministic simulation runtime.

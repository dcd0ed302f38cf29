//! The deterministic simulation runtime behind the `sim` command.
//!
//! - [`vectors`]: the ΔBtail vector-file runner (`sim vectors FILE`).

pub mod vectors;

//! The ΔBtail Update check and rebuild check.

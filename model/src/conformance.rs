//! The conformance suite every engine backend runs through the handle.

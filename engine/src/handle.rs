//! The clone-cheap handle: permits, the drain barrier, cache, streams and shutdown.

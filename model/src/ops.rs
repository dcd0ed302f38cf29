//! Engine operations as data, shared by property tests and simulation workloads.

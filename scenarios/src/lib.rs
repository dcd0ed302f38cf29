//! The catalog of fault-injected simulation scenarios.
//!
//! Each scenario names a world (engine over the network, engine in process, BTree-diff tail),
//! a workload and the fault mix a seed derives. The catalog is filled by the simulation
//! harness issue; until then it is empty on purpose.

//! Lazy enumeration (AllStructs) and seeded sampling of tree topologies.

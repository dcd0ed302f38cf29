//! The KAdj adjacency oracle.

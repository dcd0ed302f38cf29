//! PPTreeSubSet and ΔPPTreeSubSet: parent-closed subsets of tree nodes.

//! The diff of the tracked part of a tree between two revisions.

//! The topology encoding and its parser.

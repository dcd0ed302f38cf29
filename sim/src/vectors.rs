//! The ΔBtail vector-file runner (`sim vectors FILE`).

use std::path::Path;
use std::process::ExitCode;

/// Runs the vector walk in `path`; prints the summary; exit 1 on any failure, 2 on bad input.
pub fn run_file(path: &Path) -> ExitCode {
    eprintln!("sim vectors: not implemented yet ({})", path.display());
    ExitCode::from(1)
}

//! The `sim` command: runs scenarios, explores seeds, checks determinism, walks vector files.
//!
//! Exit status: 0 everything passed, 1 a violation or failure was found, 2 usage error.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Deterministic simulation testing for the storage stack.
#[derive(Debug, Parser)]
#[command(name = "sim", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Walk a ΔBtail vector file (format in its header) with the Update and rebuild checks.
    Vectors {
        /// The vector file, e.g. ../shared/vectors/btail-public.txt.
        file: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // clap prints help/version as "errors" too; only real usage errors exit 2.
            let code = if e.use_stderr() { 2 } else { 0 };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    match cli.command {
        Command::Vectors { file } => sim::vectors::run_file(&file),
    }
}

//! The `io-worker` command line: usage errors exit 2 and name what was wrong; `--help` lists
//! every flag and exits 0. (Serving is tested in `remote_process.rs`.)

use std::process::{Command, Output};

const WORKER: &str = env!("CARGO_BIN_EXE_io-worker");

fn worker(args: &[&str]) -> Output {
    Command::new(WORKER)
        .args(args)
        .output()
        .expect("io-worker runs")
}

/// `args` are refused as a usage error (exit 2) whose message contains `names`.
fn refused(args: &[&str], names: &str) {
    let out = worker(args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
    assert!(
        stderr.contains(names),
        "{args:?} should name {names:?}: {stderr}"
    );
    // Either the usage line or a pointer to `--help` follows the message.
    assert!(
        stderr.contains("Usage: io-worker") || stderr.contains("--help"),
        "{args:?}: {stderr}"
    );
}

#[test]
fn usage_errors_exit_2_and_name_what_was_wrong() {
    refused(&["--unix", "/tmp/x.sock"], "--db");
    refused(&["--db", "/tmp/x.db"], "--unix");
    refused(
        &[
            "--db",
            "/tmp/x.db",
            "--unix",
            "/tmp/x.sock",
            "--tcp",
            "127.0.0.1:0",
        ],
        "cannot be used with",
    );
    refused(&["--db", "/tmp/x.db", "--tcp", "localhost"], "--tcp");
    refused(
        &[
            "--db",
            "/tmp/x.db",
            "--unix",
            "/tmp/x.sock",
            "--read-timeout-ms",
            "soon",
        ],
        "--read-timeout-ms",
    );
    refused(
        &["--db", "/tmp/x.db", "--unix", "/tmp/x.sock", "--bogus"],
        "--bogus",
    );
    refused(&["--db"], "--db");
}

#[test]
fn help_lists_every_flag_and_exits_0() {
    let out = worker(&["--help"]);
    assert_eq!(out.status.code(), Some(0));
    let help = String::from_utf8_lossy(&out.stdout);
    for flag in [
        "--db",
        "--unix",
        "--tcp",
        "--read-timeout-ms",
        "--write-timeout-ms",
        "--max-concurrent",
        "--exit-on-stdin-close",
    ] {
        assert!(help.contains(flag), "help lacks {flag}: {help}");
    }
}

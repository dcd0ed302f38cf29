//! `io-worker` owns its socket path, tested with real processes: it refuses to start where a
//! live worker listens, and on exit removes only the socket it created.

use std::io::{BufRead, BufReader};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const WORKER: &str = env!("CARGO_BIN_EXE_io-worker");

/// Starts a worker on `db` and `socket` and waits for its ready line (or its exit).
fn start(db: &Path, socket: &Path) -> (Child, Option<String>) {
    let mut child = Command::new(WORKER)
        .arg("--db")
        .arg(db)
        .arg("--unix")
        .arg(socket)
        .stdin(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("io-worker starts");
    let stderr = child.stderr.take().expect("piped stderr");
    let mut lines = BufReader::new(stderr).lines();
    let first = lines.next().and_then(Result::ok);
    (child, first)
}

/// Stops a worker with SIGTERM and waits for it.
fn stop(mut child: Child) {
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let _ = child.wait();
}

/// Waits up to ten seconds for `child` to exit; a worker still running then is killed and
/// the test fails (rather than hanging).
fn exit_code(child: &mut Child) -> Option<i32> {
    for _ in 0..1_000 {
        if let Some(status) = child.try_wait().expect("the worker can be waited on") {
            return status.code();
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!("the second worker was still running after 10 s: it took the live socket over");
}

/// Starts a worker that must become ready.
fn start_ready(db: &Path, socket: &Path) -> Child {
    let (child, said) = start(db, socket);
    assert!(
        said.as_deref().is_some_and(|l| l.contains("ready")),
        "{said:?}"
    );
    child
}

fn listening(socket: &Path) -> bool {
    UnixStream::connect(socket).is_ok()
}

#[test]
fn a_second_worker_refuses_a_socket_a_live_worker_listens_on() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let socket = dir.path().join("w.sock");
    let first = start_ready(&dir.path().join("a.db"), &socket);
    let (mut second, said) = start(&dir.path().join("b.db"), &socket);
    assert_eq!(exit_code(&mut second), Some(1), "{said:?}");
    let said = said.unwrap_or_default();
    assert!(said.contains("another worker is listening"), "{said}");
    assert!(listening(&socket), "the first worker still owns its socket");
    stop(first);
    assert!(!socket.exists(), "the first worker removed its own socket");
}

#[test]
fn a_worker_removes_only_the_socket_it_created() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let socket = dir.path().join("w.sock");
    let first = start_ready(&dir.path().join("a.db"), &socket);
    // Someone removes the first worker's socket file; a second worker takes the path.
    std::fs::remove_file(&socket).expect("the socket file is there");
    let second = start_ready(&dir.path().join("b.db"), &socket);
    stop(first);
    std::thread::sleep(Duration::from_millis(50));
    assert!(
        listening(&socket),
        "the first worker's exit must leave the second worker's socket alone"
    );
    stop(second);
    assert!(!socket.exists(), "the second worker removed its own socket");
}

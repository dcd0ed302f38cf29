//! The IO worker as a real child process: readiness, early death, restart, parent death, and
//! a worker killed in the middle of writes. Real processes need real time: these tests use the
//! plain tokio clock with generous bounds and never assert on how fast anything was.

use std::path::{Path, PathBuf};
use std::time::Duration;

use engine::remote::client::{RemoteBackend, RemoteConfig, UnixConnector};
use engine::remote::spawner::{
    Endpoint, RestartPolicy, SpawnConfig, SpawnError, Supervisor, WorkerState,
};
use engine::{
    Address, B256, BlockData, ColdStorageError, ColdStorageRead, ColdStorageWrite, Header,
    HeaderSpecifier, InvalidInput, Log, Receipt, Transaction,
};
use model::enrich;
use tokio_util::sync::CancellationToken;

const WORKER: &str = env!("CARGO_BIN_EXE_io-worker");

fn block(number: u64) -> BlockData {
    let header = Header {
        number,
        timestamp: number,
        ..Header::default()
    }
    .seal();
    let tx = Transaction {
        sender: Address::repeat_byte(1),
        nonce: number,
        payload: vec![7; 64],
    };
    let receipt = Receipt {
        success: true,
        cumulative_gas_used: 21_000,
        logs: vec![Log {
            address: Address::repeat_byte(2),
            topics: vec![B256::from_u64(number)],
            data: vec![],
        }],
    };
    BlockData::new(header, vec![tx], vec![receipt]).unwrap()
}

fn quick(config: SpawnConfig) -> SpawnConfig {
    config.with_readiness(Duration::from_millis(20), Duration::from_secs(30))
}

fn unix_remote(endpoint: &Endpoint) -> RemoteBackend<UnixConnector> {
    let Endpoint::Unix(path) = endpoint else {
        panic!("not a unix endpoint")
    };
    RemoteBackend::new(
        UnixConnector { path: path.clone() },
        RemoteConfig::default(),
    )
}

fn sock(dir: &Path) -> Endpoint {
    Endpoint::Unix(dir.join("w.sock"))
}

#[tokio::test]
async fn a_worker_that_dies_before_listening_is_reported_at_once_with_its_stderr() {
    let dir = tempfile::tempdir().unwrap();
    // A directory is not a store: the worker fails to open it and exits before binding. The
    // readiness deadline is 30 s; a spawner that waited it out would report NotReady instead.
    let config = quick(SpawnConfig::new(WORKER, dir.path(), sock(dir.path())));
    let error = Supervisor::start(config, CancellationToken::new())
        .await
        .unwrap_err();
    match error {
        SpawnError::DiedBeforeReady { stderr, .. } => {
            assert!(stderr.contains("cannot open store"), "{stderr}")
        }
        other => panic!("expected DiedBeforeReady, got {other}"),
    }
}

#[tokio::test]
async fn a_worker_that_never_becomes_ready_is_killed_at_the_deadline() {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("hang.sh");
    std::fs::write(&script, "#!/bin/sh\necho starting >&2\nexec sleep 600\n").unwrap();
    std::process::Command::new("chmod")
        .arg("+x")
        .arg(&script)
        .status()
        .unwrap();
    let config = SpawnConfig::new(&script, dir.path().join("db"), sock(dir.path()))
        .with_readiness(Duration::from_millis(20), Duration::from_millis(300));
    let error = Supervisor::start(config, CancellationToken::new())
        .await
        .unwrap_err();
    match error {
        SpawnError::NotReady { stderr, .. } => assert!(stderr.contains("starting"), "{stderr}"),
        other => panic!("expected NotReady, got {other}"),
    }
}

#[tokio::test]
async fn serves_over_a_unix_socket_falls_back_from_a_long_path_and_cleans_up() {
    let dir = tempfile::tempdir().unwrap();
    let long = dir.path().join("x".repeat(150)).with_extension("sock");
    let cancel = CancellationToken::new();
    let config = quick(SpawnConfig::new(
        WORKER,
        dir.path().join("db"),
        Endpoint::Unix(long.clone()),
    ));
    let supervisor = Supervisor::start(config, cancel.clone()).await.unwrap();
    let endpoint = supervisor.endpoint().clone();
    assert_ne!(
        endpoint,
        Endpoint::Unix(long),
        "a path over 107 bytes must fall back"
    );
    let remote = unix_remote(&endpoint);
    remote.append_block(block(1)).await.unwrap();
    assert_eq!(remote.get_latest_block().await, Ok(Some(1)));

    // Shutting down from our side stops the worker and removes its socket.
    supervisor.stop().await;
    let Endpoint::Unix(path) = endpoint else {
        unreachable!()
    };
    assert!(
        !path.exists(),
        "stale socket file left at {}",
        path.display()
    );
}

#[tokio::test]
async fn the_worker_exits_when_its_parent_goes_away() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("p.sock");
    let mut child = tokio::process::Command::new(WORKER)
        .arg("--db")
        .arg(dir.path().join("db"))
        .arg("--unix")
        .arg(&socket)
        .arg("--exit-on-stdin-close")
        .stdin(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    for _ in 0..500 {
        if tokio::net::UnixStream::connect(&socket).await.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The parent's end of the pipe closes, as it does when the parent dies.
    drop(child.stdin.take());
    let status = tokio::time::timeout(Duration::from_secs(20), child.wait()).await;
    let status = status.expect("worker outlived its parent").unwrap();
    assert!(status.success(), "{status}");
    assert!(!socket.exists(), "stale socket file left behind");
}

fn pid_of(supervisor: &Supervisor) -> u32 {
    match &*supervisor.state().borrow() {
        WorkerState::Ready { pid, .. } => *pid,
        other => panic!("worker not ready: {other:?}"),
    }
}

fn kill9(pid: u32) {
    let status = std::process::Command::new("kill")
        .arg("-9")
        .arg(pid.to_string())
        .status()
        .unwrap();
    assert!(status.success());
}

#[tokio::test]
async fn a_worker_killed_mid_write_loses_nothing_acknowledged_and_is_restarted() {
    let dir = tempfile::tempdir().unwrap();
    let cancel = CancellationToken::new();
    let config = quick(SpawnConfig::new(
        WORKER,
        dir.path().join("db"),
        sock(dir.path()),
    ))
    .with_restart(RestartPolicy::Restart { max_restarts: 3 });
    let supervisor = Supervisor::start(config, cancel.clone()).await.unwrap();
    let remote = unix_remote(supervisor.endpoint());
    let mut state = supervisor.state();

    let mut acknowledged = Vec::new();
    let mut unknown = Vec::new();
    let mut killed = false;
    let mut next = 1u64;
    while next <= 120 {
        if next == 40 && !killed {
            // Kill it while a write is on its way.
            let pid = pid_of(&supervisor);
            let write = remote.append_block(block(next));
            let kill = async {
                tokio::time::sleep(Duration::from_micros(200)).await;
                kill9(pid);
            };
            let (outcome, ()) = tokio::join!(write, kill);
            killed = true;
            match outcome {
                Ok(()) => acknowledged.push(next),
                Err(_) => unknown.push(next),
            }
            next += 1;
            continue;
        }
        match remote.append_block(block(next)).await {
            Ok(()) => {
                acknowledged.push(next);
                next += 1;
            }
            // The one before may have been applied after all: then this number is taken.
            Err(ColdStorageError::InvalidInput(InvalidInput::NotAscending { .. })) => {
                unknown.retain(|n| *n != next);
                acknowledged.push(next);
                next += 1;
            }
            Err(e) => {
                assert!(
                    matches!(
                        e,
                        ColdStorageError::Indeterminate { .. } | ColdStorageError::Backend { .. }
                    ),
                    "unexpected error {e:?}"
                );
                unknown.push(next);
                // Wait for the restart, then retry the same block.
                let _ = tokio::time::timeout(Duration::from_secs(10), state.changed()).await;
            }
        }
    }
    eprintln!("acknowledged {}, unknown {:?}", acknowledged.len(), unknown);
    assert!(killed);
    assert!(matches!(&*state.borrow(), WorkerState::Ready { restarts, .. } if *restarts >= 1));

    for n in &acknowledged {
        let header = remote
            .get_header(HeaderSpecifier::Number(*n))
            .await
            .unwrap();
        assert_eq!(
            header.as_ref(),
            Some(&block(*n).header),
            "acknowledged block {n} lost"
        );
        let receipts = remote.get_receipts_in_block(*n).await.unwrap();
        assert_eq!(
            receipts,
            enrich::enriched_receipts(&block(*n)),
            "block {n} half-applied"
        );
    }
    for n in unknown.iter().filter(|n| !acknowledged.contains(n)) {
        let header = remote
            .get_header(HeaderSpecifier::Number(*n))
            .await
            .unwrap();
        if header.is_some() {
            assert_eq!(
                remote.get_receipts_in_block(*n).await.unwrap(),
                enrich::enriched_receipts(&block(*n))
            );
        }
    }
    supervisor.stop().await;
}

#[tokio::test]
async fn fail_fast_cancels_the_token_when_the_worker_dies() {
    let dir = tempfile::tempdir().unwrap();
    let cancel = CancellationToken::new();
    let config = quick(SpawnConfig::new(
        WORKER,
        dir.path().join("db"),
        sock(dir.path()),
    ));
    let supervisor = Supervisor::start(config, cancel.clone()).await.unwrap();
    kill9(pid_of(&supervisor));
    tokio::time::timeout(Duration::from_secs(20), cancel.cancelled())
        .await
        .expect("token not cancelled");
    let mut state = supervisor.state();
    while *state.borrow() != WorkerState::Stopped {
        tokio::time::timeout(Duration::from_secs(20), state.changed())
            .await
            .unwrap()
            .unwrap();
    }
    let Endpoint::Unix(path) = supervisor.endpoint().clone() else {
        unreachable!()
    };
    assert!(
        !PathBuf::from(&path).exists(),
        "stale socket file left behind"
    );
}

/// A worker process under a supervisor, and a handle over it whose shutdown the supervisor
/// follows; both share `cancel`.
async fn linked_handle(
    dir: &tempfile::TempDir,
    cancel: &CancellationToken,
) -> (
    Supervisor,
    engine::handle::ColdStorage<RemoteBackend<UnixConnector>>,
) {
    use engine::handle::{ColdStorage, Config};
    let config = quick(SpawnConfig::new(
        WORKER,
        dir.path().join("db"),
        sock(dir.path()),
    ));
    let supervisor = Supervisor::start(config, cancel.clone()).await.unwrap();
    let handle = ColdStorage::new(
        unix_remote(supervisor.endpoint()),
        cancel.clone(),
        Config::default(),
    );
    supervisor.follow(handle.shutdown_token());
    handle.append_block(block(1)).await.unwrap();
    (supervisor, handle)
}

/// Shutdown is linked both ways between a handle and its worker process: shutting the handle
/// down stops the worker (and removes its socket); a worker that dies under the fail-fast
/// policy makes the handle answer `TaskTerminated` at once.
#[tokio::test]
async fn shutdown_is_linked_both_ways_with_the_handle() {
    let dir = tempfile::tempdir().unwrap();
    let (supervisor, handle) = linked_handle(&dir, &CancellationToken::new()).await;
    let mut state = supervisor.state();
    handle.shutdown();
    while *state.borrow() != WorkerState::Stopped {
        tokio::time::timeout(Duration::from_secs(20), state.changed())
            .await
            .unwrap()
            .unwrap();
    }
    let Endpoint::Unix(path) = supervisor.endpoint().clone() else {
        unreachable!()
    };
    assert!(!path.exists(), "stale socket file left behind");

    let dir = tempfile::tempdir().unwrap();
    let cancel = CancellationToken::new();
    let (supervisor, handle) = linked_handle(&dir, &cancel).await;
    kill9(pid_of(&supervisor));
    tokio::time::timeout(Duration::from_secs(20), cancel.cancelled())
        .await
        .expect("fail-fast cancels");
    assert_eq!(
        handle.get_latest_block().await,
        Err(ColdStorageError::TaskTerminated)
    );
}

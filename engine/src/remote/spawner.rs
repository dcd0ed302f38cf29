//! The worker as a child process.
//!
//! [`Supervisor::start`] spawns the worker binary, waits until it is ready and then watches
//! it. Ready means listening: the worker opens its store first and binds last, so a successful
//! connection proves the store is open. The wait polls (default every 1 s, up to 30 s) and at
//! the same time watches the child, so a worker that dies before listening is reported at once
//! with the tail of its stderr instead of waiting out the deadline.
//!
//! Shutdown is linked both ways: give the supervisor the token the handle is created with, and
//! let it [`follow`](Supervisor::follow) the handle's own shutdown token. Cancelling either closes the worker's stdin
//! (its signal to stop), waits a grace period, kills it if needed and removes the socket file.
//! A worker that exits on its own is reported and, per [`RestartPolicy`], restarted (the
//! `RemoteBackend` reconnects by itself) or the token is cancelled so the handle fails fast
//! with `TaskTerminated`. The child is spawned with kill-on-drop and closes when its stdin
//! does, so neither a dropped supervisor nor a dead parent leaves an orphan.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, ChildStdin, Command};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::backend::Timeouts;
use crate::rt;

/// Longest Unix socket path the kernel accepts (sun_path is 108 bytes with its NUL).
pub const MAX_UNIX_SOCKET_PATH_BYTES: usize = 107;
/// Lines of the worker's stderr kept for error reports.
const STDERR_TAIL_LINES: usize = 20;

/// Where the worker listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// A Unix socket path.
    Unix(PathBuf),
    /// A TCP address (loopback).
    Tcp(std::net::SocketAddr),
}

/// What to do when the worker exits on its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RestartPolicy {
    /// Start it again, at most this many times over the supervisor's life.
    Restart {
        /// Restarts allowed.
        max_restarts: u32,
    },
    /// Cancel the token, so the handle's operations fail fast with `TaskTerminated`.
    FailFast,
}

/// How to run the worker.
#[derive(Debug, Clone)]
pub struct SpawnConfig {
    /// The worker binary.
    pub program: PathBuf,
    /// The store file the worker owns.
    pub db_path: PathBuf,
    /// Where it listens.
    pub endpoint: Endpoint,
    /// Backend timeouts the worker's store enforces.
    pub timeouts: Timeouts,
    /// Time between readiness probes.
    pub ready_poll_interval: Duration,
    /// How long the worker may take to become ready.
    pub ready_deadline: Duration,
    /// How long a stopping worker gets before it is killed.
    pub stop_grace: Duration,
    /// What to do when it exits on its own.
    pub restart: RestartPolicy,
    /// Extra arguments for the worker.
    pub extra_args: Vec<String>,
}

impl SpawnConfig {
    /// A configuration with the defaults: 1 s polls, 30 s readiness deadline, 2 s stop grace,
    /// fail fast.
    pub fn new(
        program: impl Into<PathBuf>,
        db_path: impl Into<PathBuf>,
        endpoint: Endpoint,
    ) -> SpawnConfig {
        SpawnConfig {
            program: program.into(),
            db_path: db_path.into(),
            endpoint,
            timeouts: Timeouts::default(),
            ready_poll_interval: Duration::from_secs(1),
            ready_deadline: Duration::from_secs(30),
            stop_grace: Duration::from_secs(2),
            restart: RestartPolicy::FailFast,
            extra_args: Vec::new(),
        }
    }
    /// Sets the readiness poll interval and deadline.
    pub fn with_readiness(mut self, poll_interval: Duration, deadline: Duration) -> SpawnConfig {
        self.ready_poll_interval = poll_interval;
        self.ready_deadline = deadline;
        self
    }
    /// Sets the restart policy.
    pub fn with_restart(mut self, restart: RestartPolicy) -> SpawnConfig {
        self.restart = restart;
        self
    }
    /// Sets the worker's backend timeouts.
    pub fn with_timeouts(mut self, timeouts: Timeouts) -> SpawnConfig {
        self.timeouts = timeouts;
        self
    }
    /// Adds worker arguments.
    pub fn with_extra_args(mut self, args: Vec<String>) -> SpawnConfig {
        self.extra_args = args;
        self
    }
}

/// Why the worker could not be started.
#[derive(Debug, thiserror::Error)]
pub enum SpawnError {
    /// The process could not be started.
    #[error("cannot start worker {program}: {source}")]
    Start {
        /// The binary.
        program: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// It did not become ready in time (it was killed).
    #[error("worker not ready within {deadline:?}; stderr tail:\n{stderr}")]
    NotReady {
        /// The deadline.
        deadline: Duration,
        /// Its last stderr lines.
        stderr: String,
    },
    /// It exited before it became ready.
    #[error("worker exited before it was ready ({status}); stderr tail:\n{stderr}")]
    DiedBeforeReady {
        /// How it exited.
        status: ExitStatus,
        /// Its last stderr lines.
        stderr: String,
    },
    /// Neither the socket path nor the short fallback fits a Unix socket address.
    #[error(
        "socket path {path} is longer than {MAX_UNIX_SOCKET_PATH_BYTES} bytes, and so is the fallback"
    )]
    SocketPathTooLong {
        /// The path asked for.
        path: PathBuf,
    },
}

/// What the supervisor reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WorkerState {
    /// Serving, with its pid and how many restarts happened so far.
    Ready {
        /// The process id.
        pid: u32,
        /// Restarts so far.
        restarts: u32,
    },
    /// It exited on its own (the string says how); a restart may follow.
    Exited(String),
    /// Stopped for good: by the token, or because restarting was not allowed or failed.
    Stopped,
}

/// Runs and watches one worker process.
#[derive(Debug)]
pub struct Supervisor {
    endpoint: Endpoint,
    state: watch::Receiver<WorkerState>,
    monitor: rt::JoinHandle<()>,
    cancel: CancellationToken,
}

struct Running {
    child: Child,
    /// Held open: the worker stops when it closes.
    stdin: Option<ChildStdin>,
    stderr: Arc<Mutex<VecDeque<String>>>,
}

impl Supervisor {
    /// Starts the worker, waits until it is ready, and watches it until `cancel` fires.
    /// The endpoint returned may differ from the configured one (short socket fallback).
    pub async fn start(
        mut config: SpawnConfig,
        cancel: CancellationToken,
    ) -> Result<Supervisor, SpawnError> {
        config.endpoint = usable_endpoint(&config.endpoint)?;
        let running = launch(&config).await?;
        let pid = running.child.id().unwrap_or(0);
        let (state_tx, state) = watch::channel(WorkerState::Ready { pid, restarts: 0 });
        let endpoint = config.endpoint.clone();
        let monitor_cancel = cancel.clone();
        let monitor = rt::spawn(monitor(config, running, monitor_cancel, state_tx));
        Ok(Supervisor {
            endpoint,
            state,
            monitor,
            cancel,
        })
    }

    /// Where the worker listens.
    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    /// The latest state; `changed()` on the receiver waits for the next one.
    pub fn state(&self) -> watch::Receiver<WorkerState> {
        self.state.clone()
    }

    /// Stops the worker when `token` is cancelled too: pass a handle's
    /// [`shutdown_token`](crate::handle::ColdStorage::shutdown_token), so shutting the handle
    /// down stops the worker (the other direction is the token given to [`Supervisor::start`]).
    pub fn follow(&self, token: CancellationToken) {
        let cancel = self.cancel.clone();
        rt::spawn(async move {
            tokio::select! {
                biased;
                _ = token.cancelled() => cancel.cancel(),
                _ = cancel.cancelled() => {}
            }
        });
    }

    /// Stops the worker (stdin closed, then killed after the grace) and waits until it is
    /// gone and its socket file removed.
    pub async fn stop(self) {
        self.cancel.cancel();
        let _ = self.monitor.await;
    }
}

/// The configured endpoint, or a short fallback when a Unix path is too long.
fn usable_endpoint(endpoint: &Endpoint) -> Result<Endpoint, SpawnError> {
    let Endpoint::Unix(path) = endpoint else {
        return Ok(endpoint.clone());
    };
    if path.as_os_str().len() <= MAX_UNIX_SOCKET_PATH_BYTES {
        return Ok(endpoint.clone());
    }
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let short = std::env::temp_dir().join(format!("iow-{}-{n}.sock", std::process::id()));
    if short.as_os_str().len() > MAX_UNIX_SOCKET_PATH_BYTES {
        return Err(SpawnError::SocketPathTooLong { path: path.clone() });
    }
    tracing::info!(requested = %path.display(), fallback = %short.display(), "socket path too long; using a short one");
    Ok(Endpoint::Unix(short))
}

fn worker_command(config: &SpawnConfig) -> Command {
    let mut command = Command::new(&config.program);
    command.arg("--db").arg(&config.db_path);
    match &config.endpoint {
        Endpoint::Unix(path) => command.arg("--unix").arg(path),
        Endpoint::Tcp(addr) => command.arg("--tcp").arg(addr.to_string()),
    };
    command
        .arg("--read-timeout-ms")
        .arg(config.timeouts.read.as_millis().to_string())
        .arg("--write-timeout-ms")
        .arg(config.timeouts.write.as_millis().to_string())
        .arg("--exit-on-stdin-close")
        .args(&config.extra_args)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    command
}

/// Spawns the worker and waits until it is ready (or has died, or the deadline passed).
async fn launch(config: &SpawnConfig) -> Result<Running, SpawnError> {
    let mut child = worker_command(config)
        .spawn()
        .map_err(|source| SpawnError::Start {
            program: config.program.clone(),
            source,
        })?;
    let stdin = child.stdin.take();
    let stderr = Arc::new(Mutex::new(VecDeque::with_capacity(STDERR_TAIL_LINES)));
    if let Some(pipe) = child.stderr.take() {
        // Drain stderr continuously: a full pipe would block the worker.
        let tail = Arc::clone(&stderr);
        rt::spawn(async move {
            let mut lines = BufReader::new(pipe).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                let mut tail = tail.lock().unwrap_or_else(PoisonError::into_inner);
                if tail.len() == STDERR_TAIL_LINES {
                    tail.pop_front();
                }
                tail.push_back(line);
            }
        });
    }
    let mut running = Running {
        child,
        stdin,
        stderr,
    };
    let deadline = rt::deadline_after(config.ready_deadline);
    loop {
        if probe(&config.endpoint).await {
            return Ok(running);
        }
        if rt::now() >= deadline {
            let _ = running.child.kill().await;
            return Err(SpawnError::NotReady {
                deadline: config.ready_deadline,
                stderr: running.stderr_tail(),
            });
        }
        let next = (rt::now() + config.ready_poll_interval).min(deadline);
        tokio::select! {
            biased;
            status = running.child.wait() => {
                // Let the stderr reader catch the last lines.
                rt::sleep(Duration::from_millis(20)).await;
                let stderr = running.stderr_tail();
                return Err(match status {
                    Ok(status) => SpawnError::DiedBeforeReady { status, stderr },
                    Err(source) => SpawnError::Start { program: config.program.clone(), source },
                });
            }
            _ = rt::sleep_until(next) => {}
        }
    }
}

impl Running {
    fn stderr_tail(&self) -> String {
        let tail = self.stderr.lock().unwrap_or_else(PoisonError::into_inner);
        tail.iter().cloned().collect::<Vec<_>>().join("\n")
    }

    /// Closes stdin (the worker's signal to stop), waits `grace`, then kills.
    async fn stop(mut self, grace: Duration) {
        drop(self.stdin.take());
        if rt::timeout(grace, self.child.wait()).await.is_err() {
            tracing::warn!("worker did not stop within {grace:?}; killing it");
            let _ = self.child.kill().await;
        }
    }
}

/// Whether something accepts connections at `endpoint`.
async fn probe(endpoint: &Endpoint) -> bool {
    match endpoint {
        #[cfg(unix)]
        Endpoint::Unix(path) => tokio::net::UnixStream::connect(path).await.is_ok(),
        #[cfg(not(unix))]
        Endpoint::Unix(_) => false,
        Endpoint::Tcp(addr) => tokio::net::TcpStream::connect(addr).await.is_ok(),
    }
}

fn remove_socket(endpoint: &Endpoint) {
    if let Endpoint::Unix(path) = endpoint {
        remove_stale(path);
    }
}

/// Removes a socket file if one is there; a missing file is fine.
pub fn remove_stale(path: &Path) {
    if let Err(e) = std::fs::remove_file(path)
        && e.kind() != std::io::ErrorKind::NotFound
    {
        tracing::warn!(path = %path.display(), error = %e, "cannot remove socket file");
    }
}

async fn monitor(
    config: SpawnConfig,
    mut running: Running,
    cancel: CancellationToken,
    state: watch::Sender<WorkerState>,
) {
    let mut restarts = 0u32;
    loop {
        let status = tokio::select! {
            biased;
            _ = cancel.cancelled() => {
                running.stop(config.stop_grace).await;
                break;
            }
            status = running.child.wait() => status,
        };
        let how = match &status {
            Ok(status) => status.to_string(),
            Err(e) => format!("wait failed: {e}"),
        };
        tracing::error!(exit = %how, stderr = %running.stderr_tail(), "worker exited on its own");
        let _ = state.send(WorkerState::Exited(how));
        let may_restart = match config.restart {
            RestartPolicy::Restart { max_restarts } => restarts < max_restarts,
            RestartPolicy::FailFast => false,
        };
        if !may_restart {
            cancel.cancel();
            break;
        }
        restarts += 1;
        // A socket file left by the dead worker would refuse connections until rebound.
        remove_socket(&config.endpoint);
        match launch(&config).await {
            Ok(next) => {
                running = next;
                let pid = running.child.id().unwrap_or(0);
                let _ = state.send(WorkerState::Ready { pid, restarts });
            }
            Err(e) => {
                tracing::error!(error = %e, "worker restart failed");
                cancel.cancel();
                break;
            }
        }
    }
    remove_socket(&config.endpoint);
    let _ = state.send(WorkerState::Stopped);
}

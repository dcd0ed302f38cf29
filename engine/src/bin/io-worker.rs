//! `io-worker`: serves a redb store over a Unix socket or loopback TCP.
//!
//! It opens the store first and listens last, so a connectable socket means ready. It stops
//! on a `Shutdown` request, on SIGTERM/SIGINT, and (with `--exit-on-stdin-close`) when its
//! stdin closes, which is how it notices that the parent that spawned it died.
//!
//! ```text
//! io-worker --db PATH (--unix PATH | --tcp ADDR) [--read-timeout-ms N] [--write-timeout-ms N]
//!           [--max-concurrent N] [--exit-on-stdin-close]
//! ```

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::{ArgGroup, Parser};
use engine::Timeouts;
use engine::redb_backend::RedbBackend;
use engine::remote::spawner::remove_stale;
use engine::remote::worker::{Worker, WorkerConfig};
use tokio::io::AsyncReadExt;
use tokio_util::sync::CancellationToken;

/// Serves a redb store over a Unix socket or loopback TCP.
#[derive(Debug, Parser)]
#[command(name = "io-worker")]
#[command(group(ArgGroup::new("endpoint").required(true).args(["unix", "tcp"])))]
struct Args {
    /// The redb store to serve (created if missing).
    #[arg(long, value_name = "PATH")]
    db: PathBuf,
    /// Listen on this Unix socket (a stale socket file is replaced).
    #[arg(long, value_name = "PATH")]
    unix: Option<PathBuf>,
    /// Listen on this TCP address (port 0 picks one; the ready line names it).
    #[arg(long, value_name = "ADDR")]
    tcp: Option<std::net::SocketAddr>,
    /// The store's read timeout in milliseconds (the backend's default if absent).
    #[arg(long, value_name = "N")]
    read_timeout_ms: Option<u64>,
    /// The store's write timeout in milliseconds (the backend's default if absent).
    #[arg(long, value_name = "N")]
    write_timeout_ms: Option<u64>,
    /// Requests served at once over all connections (0 counts as 1).
    #[arg(long, value_name = "N")]
    max_concurrent: Option<usize>,
    /// Stop when stdin closes: how a spawned worker notices that its parent died.
    #[arg(long)]
    exit_on_stdin_close: bool,
}

impl Args {
    /// The store's timeouts: the defaults, with the ones given on the command line.
    fn timeouts(&self) -> Timeouts {
        let mut timeouts = Timeouts::default();
        if let Some(ms) = self.read_timeout_ms {
            timeouts.read = Duration::from_millis(ms);
        }
        if let Some(ms) = self.write_timeout_ms {
            timeouts.write = Duration::from_millis(ms);
        }
        timeouts
    }
}

fn main() -> ExitCode {
    // Usage errors exit 2 with the usage line; `--help` prints help and exits 0.
    let args = Args::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("io-worker: cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("io-worker: {message}");
            ExitCode::from(1)
        }
    }
}

async fn run(args: Args) -> Result<(), String> {
    let db = &args.db;
    // The store first: a second worker on the same file fails here (redb locks it), before it
    // could touch the first one's socket.
    let backend = RedbBackend::builder()
        .timeouts(args.timeouts())
        .open_file(db)
        .map_err(|e| format!("cannot open store {}: {e}", db.display()))?;
    let mut config = WorkerConfig::default();
    if let Some(max) = args.max_concurrent {
        config = config.with_max_concurrent_requests(max.max(1));
    }
    let worker = Worker::new(backend, config);
    let shutdown = worker.shutdown_token();
    watch_signals(shutdown.clone(), args.exit_on_stdin_close);

    // Listening last: from here on the worker is ready.
    let served = if let Some(path) = &args.unix {
        let (listener, owned) = claim_socket(path).await?;
        eprintln!("io-worker: ready on unix:{}", path.display());
        let served = worker.serve(listener).await;
        owned.release();
        served
    } else if let Some(addr) = args.tcp {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|e| format!("cannot listen on {addr}: {e}"))?;
        let local = listener.local_addr().map_err(|e| e.to_string())?;
        eprintln!("io-worker: ready on tcp:{local}");
        worker.serve(listener).await
    } else {
        Ok(())
    };
    served.map_err(|e| format!("serving failed: {e}"))?;
    eprintln!("io-worker: stopped");
    Ok(())
}

/// The socket file a worker created, known by its identity (device and inode), so that the
/// worker removes on exit only the socket it made: another worker may have taken the path
/// over since (after this one's file was removed by hand, say).
struct OwnedSocket {
    path: PathBuf,
    identity: Option<(u64, u64)>,
}

impl OwnedSocket {
    /// Removes the socket file if it is still the one this worker created.
    fn release(self) {
        if self.identity.is_some() && socket_identity(&self.path) == self.identity {
            remove_stale(&self.path);
        }
    }
}

fn socket_identity(path: &Path) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    std::fs::symlink_metadata(path)
        .ok()
        .map(|m| (m.dev(), m.ino()))
}

/// Listens on `path`, unless a live worker already does: a socket that accepts a connection
/// is another worker's, and taking its path over would cut it off from new clients. A socket
/// file nobody listens on is stale (a worker that was killed) and is replaced.
async fn claim_socket(path: &Path) -> Result<(tokio::net::UnixListener, OwnedSocket), String> {
    if tokio::net::UnixStream::connect(path).await.is_ok() {
        return Err(format!(
            "another worker is listening on {}; refusing to take its socket over",
            path.display()
        ));
    }
    remove_stale(path);
    let listener = tokio::net::UnixListener::bind(path)
        .map_err(|e| format!("cannot listen on {}: {e}", path.display()))?;
    let owned = OwnedSocket {
        path: path.to_path_buf(),
        identity: socket_identity(path),
    };
    Ok((listener, owned))
}

/// Cancels `shutdown` on SIGTERM/SIGINT and, if asked, when stdin closes.
fn watch_signals(shutdown: CancellationToken, exit_on_stdin_close: bool) {
    let on_signal = shutdown.clone();
    engine::rt::spawn(async move {
        use tokio::signal::unix::{SignalKind, signal};
        let (Ok(mut term), Ok(mut int)) = (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) else {
            eprintln!("io-worker: cannot install signal handlers");
            return;
        };
        tokio::select! {
            biased;
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
        on_signal.cancel();
    });
    if exit_on_stdin_close {
        engine::rt::spawn(async move {
            let mut stdin = tokio::io::stdin();
            let mut buf = [0u8; 256];
            // Anything written is ignored; end of file means the parent is gone.
            while matches!(stdin.read(&mut buf).await, Ok(n) if n > 0) {}
            shutdown.cancel();
        });
    }
}

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

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use engine::Timeouts;
use engine::redb_backend::RedbBackend;
use engine::remote::spawner::remove_stale;
use engine::remote::worker::{Worker, WorkerConfig};
use tokio::io::AsyncReadExt;
use tokio_util::sync::CancellationToken;

#[derive(Debug, Default)]
struct Args {
    db: Option<PathBuf>,
    unix: Option<PathBuf>,
    tcp: Option<std::net::SocketAddr>,
    timeouts: Timeouts,
    max_concurrent: Option<usize>,
    exit_on_stdin_close: bool,
}

const USAGE: &str = "usage: io-worker --db PATH (--unix PATH | --tcp ADDR) [--read-timeout-ms N] \
[--write-timeout-ms N] [--max-concurrent N] [--exit-on-stdin-close]";

fn parse_args(mut argv: impl Iterator<Item = String>) -> Result<Args, String> {
    let mut args = Args::default();
    while let Some(flag) = argv.next() {
        let mut value = |name: &str| argv.next().ok_or_else(|| format!("{name} needs a value"));
        let number =
            |name: &str, v: String| v.parse::<u64>().map_err(|e| format!("{name} {v:?}: {e}"));
        match flag.as_str() {
            "--db" => args.db = Some(PathBuf::from(value("--db")?)),
            "--unix" => args.unix = Some(PathBuf::from(value("--unix")?)),
            "--tcp" => {
                let v = value("--tcp")?;
                args.tcp = Some(v.parse().map_err(|e| format!("--tcp {v:?}: {e}"))?);
            }
            "--read-timeout-ms" => {
                let v = value("--read-timeout-ms")?;
                args.timeouts.read = Duration::from_millis(number("--read-timeout-ms", v)?);
            }
            "--write-timeout-ms" => {
                let v = value("--write-timeout-ms")?;
                args.timeouts.write = Duration::from_millis(number("--write-timeout-ms", v)?);
            }
            "--max-concurrent" => {
                let v = value("--max-concurrent")?;
                let n = number("--max-concurrent", v)?;
                args.max_concurrent = Some(usize::try_from(n).map_err(|e| e.to_string())?.max(1));
            }
            "--exit-on-stdin-close" => args.exit_on_stdin_close = true,
            "--help" | "-h" => return Err(USAGE.to_string()),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    if args.db.is_none() {
        return Err("--db is required".into());
    }
    if args.unix.is_some() == args.tcp.is_some() {
        return Err("give exactly one of --unix and --tcp".into());
    }
    Ok(args)
}

fn main() -> ExitCode {
    let args = match parse_args(std::env::args().skip(1)) {
        Ok(args) => args,
        Err(message) => {
            eprintln!("io-worker: {message}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
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
    let db = args.db.clone().unwrap_or_default();
    // The store first: a second worker on the same file fails here (redb locks it), before it
    // could touch the first one's socket.
    let backend = RedbBackend::builder()
        .timeouts(args.timeouts)
        .open_file(&db)
        .map_err(|e| format!("cannot open store {}: {e}", db.display()))?;
    let mut config = WorkerConfig::default();
    if let Some(max) = args.max_concurrent {
        config = config.with_max_concurrent_requests(max);
    }
    let worker = Worker::new(backend, config);
    let shutdown = worker.shutdown_token();
    watch_signals(shutdown.clone(), args.exit_on_stdin_close);

    // Listening last: from here on the worker is ready.
    let served = if let Some(path) = &args.unix {
        remove_stale(path);
        let listener = tokio::net::UnixListener::bind(path)
            .map_err(|e| format!("cannot listen on {}: {e}", path.display()))?;
        eprintln!("io-worker: ready on unix:{}", path.display());
        let served = worker.serve(listener).await;
        remove_stale(path);
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

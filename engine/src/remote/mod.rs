//! The engine served over a network link: the wire protocol, the IO worker that serves a
//! backend, the [`RemoteBackend`](client::RemoteBackend) that reaches it, and the spawner
//! that runs the worker as a child process.
//!
//! - [`wire`]: frames and messages; bad input is named, never a panic.
//! - [`worker`]: serves any backend; enforces each request's deadline on its own side, and
//!   fences a client's older connections once it acknowledged a newer one.
//! - [`client`]: `RemoteBackend`; holds every request until the worker has really stopped
//!   working on it, and says `Indeterminate` when a write's outcome cannot be known (once its
//!   connection is fenced, so that outcome no longer changes).
//! - [`spawner`]: the worker as a child process: readiness, early death, restart, shutdown
//!   both ways.

pub mod client;
pub mod spawner;
pub mod wire;

/// The tracing target of every protocol violation either side sees, for monitors (a simulation
/// fails on one; a deployment logs it).
pub const PROTOCOL_TARGET: &str = "engine::protocol";

/// The tracing target of each request's path for timelines: the client's `request` (sent) and
/// `reply` (answered) and the worker's `served` (with its `took_us`), all naming the request by
/// the client's identity `client` and its request `id`, which both sides know.
pub const TIMELINE_TARGET: &str = "engine::remote::timeline";
pub mod worker;

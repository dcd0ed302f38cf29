//! The network seam: what a network world asks of its simulated network, implemented by
//! [`crate::net::Net`] (the event-driven network on the run's own runtime) and, outside madsim
//! builds, by [`crate::turmoil_net::TurmoilNet`] (turmoil, which steps every host through every
//! tick). A world written against [`Network`] runs over either, with the same workload,
//! monitors and fault plan: two independent delivery models, so a race one hides can show
//! under the other.

use std::future::Future;
use std::io;
use std::time::Duration;

use engine::remote::worker::Listener;
use tokio::io::{AsyncRead, AsyncWrite};

use crate::monitors::Violation;
use crate::net::{HostName, Net};
use crate::worlds::RunEnv;

/// A simulated network of named hosts: listeners, connects, byte streams, and the faults the
/// fault plan injects between two hosts.
pub(crate) trait Network: Clone + Send + Sync + std::fmt::Debug + 'static {
    /// One end of a connection.
    type Stream: AsyncRead + AsyncWrite + Send + Unpin + 'static;
    /// A listening port.
    type Listener: Listener<Stream = Self::Stream> + 'static;
    /// Whether [`Network::stall`] stalls only the connections open now (new ones pass), or
    /// the whole link.
    const STALLS_CONNECTIONS: bool;

    /// The network of `env`'s seed; a harness failure for a configuration without one.
    fn for_run(env: &RunEnv) -> Result<Self, Violation>;

    /// Runs `start` with `host` as the machine new tasks are spawned on (the tasks it spawns,
    /// and theirs, run there and talk from there).
    fn on_host<R>(&self, host: HostName, start: impl FnOnce() -> R) -> R;

    /// Listens on `port` of `host` (called from a task of `host`).
    fn bind(
        &self,
        host: HostName,
        port: u16,
    ) -> impl Future<Output = io::Result<Self::Listener>> + Send;

    /// Connects from `from` to `port` of `to` (called from a task of `from`).
    fn connect(
        &self,
        from: HostName,
        to: HostName,
        port: u16,
    ) -> impl Future<Output = io::Result<Self::Stream>> + Send;

    /// Cuts `a` from `b` both ways until [`Network::repair`]; what is in flight is lost.
    fn partition(&self, a: HostName, b: HostName);

    /// Heals a partition.
    fn repair(&self, a: HostName, b: HostName);

    /// Holds the direction `from → to` for `length`: delayed, not lost.
    fn hold(&self, from: HostName, to: HostName, length: Duration);

    /// Holds the direction `from → to` of the connections open now for `length`.
    fn stall(&self, from: HostName, to: HostName, length: Duration);

    /// `host`'s process crashed: what the network does about its connections and listeners
    /// (its tasks are killed by its `rt::Host`).
    fn crash(&self, host: HostName);
}

impl Network for Net {
    type Stream = crate::net::SimStream;
    type Listener = crate::net::SimListener;
    const STALLS_CONNECTIONS: bool = true;

    fn for_run(env: &RunEnv) -> Result<Net, Violation> {
        Ok(Net::for_seed(
            env.derived.seed,
            crate::worlds::network(env)?,
        ))
    }

    /// Every host's tasks share the run's one runtime.
    fn on_host<R>(&self, _: HostName, start: impl FnOnce() -> R) -> R {
        start()
    }

    async fn bind(&self, host: HostName, port: u16) -> io::Result<Self::Listener> {
        Net::bind(self, host, port)
    }

    async fn connect(&self, from: HostName, to: HostName, port: u16) -> io::Result<Self::Stream> {
        Net::connect(self, from, to, port).await
    }

    fn partition(&self, a: HostName, b: HostName) {
        Net::partition(self, a, b);
    }

    fn repair(&self, a: HostName, b: HostName) {
        Net::repair(self, a, b);
    }

    fn hold(&self, from: HostName, to: HostName, length: Duration) {
        Net::hold(self, from, to, length);
    }

    fn stall(&self, from: HostName, to: HostName, length: Duration) {
        Net::stall(self, from, to, length);
    }

    fn crash(&self, host: HostName) {
        Net::crash(self, host);
    }
}

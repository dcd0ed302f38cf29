//! The simulated network of the network worlds: named hosts, listeners, and byte streams
//! between them, on the run's own runtime (tokio's paused clock, or madsim's executor), so
//! simulated time jumps from one event to the next instead of stepping every host through
//! every tick, and under madsim the hosts' tasks interleave in the seed's random order.
//!
//! The model, close to what TCP shows an application:
//! - a connection is two one-way pipes of segments; each write is one segment, delivered after
//!   a latency drawn from the run's seed (uniform up to the seed's maximum), rounded up to the
//!   seed's tick (so messages sent about the same time arrive together, as on a stepped
//!   network), and never before an earlier segment of its pipe (TCP keeps order);
//! - a pipe holds at most [`WINDOW_BYTES`] undelivered; a writer beyond that waits;
//! - a partition between two hosts drops every segment in flight between them and every one
//!   sent while it lasts. A connection that lost a segment delivers nothing more (its
//!   retransmissions fail), so a frame is never torn, and it is reset when the partition
//!   heals. A connect across a partition waits until it heals (SYN retries);
//! - a hold of one direction between two hosts delays, without losing, every segment in flight
//!   that way and every one sent while it lasts (and a connect either way): they arrive at
//!   its end, in order, in one burst, as a clogged link or a stalled switch delivers them;
//! - a crashed host's connections are reset at once (its kernel closes them) and its
//!   listeners vanish; a connect to a port nobody listens on is refused;
//! - a dropped stream closes: the peer reads the end of the stream after the last segment,
//!   and its writes fail.
//!
//! Every random choice comes from one `ChaCha8Rng` seeded from the run's seed, drawn in the
//! order the (deterministic) executor runs the writers.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, Weak};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use engine::rt::{self, Instant};

use crate::lock;
use rand::RngExt;
use rand_chacha::ChaCha8Rng;
use scenarios::Network;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::{Notify, mpsc};

/// Undelivered bytes one pipe holds before its writer waits (a TCP window and socket buffer).
pub const WINDOW_BYTES: usize = 256 * 1024;
/// Connections a listener queues before further connects are refused (a listen backlog).
const BACKLOG: usize = 64;

/// A host's name.
pub type HostName = &'static str;

/// The network of one run; clones share it.
#[derive(Debug, Clone)]
pub struct Net {
    state: Arc<Mutex<NetState>>,
    /// Woken when a partition heals, for connects waiting across it.
    healed: Arc<Notify>,
}

#[derive(Debug)]
struct NetState {
    rng: ChaCha8Rng,
    max_latency: Duration,
    tick: Duration,
    /// Deliveries are rounded to ticks counted from here.
    epoch: Instant,
    listeners: BTreeMap<(HostName, u16), (u64, mpsc::Sender<SimStream>)>,
    next_listener_id: u64,
    /// Partitioned pairs, the smaller name first.
    partitions: BTreeSet<(HostName, HostName)>,
    /// Held directions `(from, to)`, until when (at a tick boundary).
    holds: BTreeMap<(HostName, HostName), Instant>,
    /// Every connection made, until both its ends are gone.
    connections: Vec<Connection>,
}

/// The two pipes of one connection, and the hosts at its ends.
#[derive(Debug)]
struct Connection {
    hosts: (HostName, HostName),
    pipes: [Weak<Pipe>; 2],
}

impl Connection {
    fn joins(&self, a: HostName, b: HostName) -> bool {
        self.hosts == (a, b) || self.hosts == (b, a)
    }

    fn touches(&self, host: HostName) -> bool {
        self.hosts.0 == host || self.hosts.1 == host
    }

    fn pipes(&self) -> impl Iterator<Item = Arc<Pipe>> + '_ {
        self.pipes.iter().filter_map(Weak::upgrade)
    }
}

impl NetState {
    /// The first tick boundary at or after `at`.
    fn at_tick(&self, at: Instant) -> Instant {
        // In nanoseconds: madsim's clock is finer than a microsecond.
        let tick_ns = self.tick.as_nanos().max(1);
        let ticks = at.duration_since(self.epoch).as_nanos().div_ceil(tick_ns);
        self.epoch + Duration::from_nanos((ticks * tick_ns) as u64)
    }
}

fn pair(a: HostName, b: HostName) -> (HostName, HostName) {
    if a <= b { (a, b) } else { (b, a) }
}

impl Net {
    /// A network whose latencies come from `rng`: uniform in `[0, max_latency]`, delivered at
    /// the next multiple of `tick` counted from now.
    pub fn new(rng: ChaCha8Rng, max_latency: Duration, tick: Duration) -> Net {
        assert!(!tick.is_zero(), "a network's tick is positive");
        Net {
            state: Arc::new(Mutex::new(NetState {
                rng,
                max_latency,
                tick,
                epoch: rt::now(),
                listeners: BTreeMap::new(),
                next_listener_id: 0,
                partitions: BTreeSet::new(),
                holds: BTreeMap::new(),
                connections: Vec::new(),
            })),
            healed: Arc::new(Notify::new()),
        }
    }

    /// The network of one seed's configuration: latencies from the run's `seed`, up to the
    /// configuration's maximum when network latency is on (1 ms otherwise), delivered at its
    /// tick. (Only a network world's configuration has a [`Network`].)
    pub fn for_seed(seed: u64, network: &Network) -> Net {
        let max_latency = if network.max_latency.is_zero() {
            Duration::from_millis(1)
        } else {
            network.max_latency
        };
        Net::new(
            crate::seeding::rng(seed, "network", 0),
            max_latency,
            network.tick,
        )
    }

    /// When a message sent now arrives: after a drawn latency, at a tick boundary.
    fn delivery(&self) -> Instant {
        let mut st = lock(&self.state);
        let max_latency_us = st.max_latency.as_micros() as u64;
        let latency_us = st.rng.random_range(0..=max_latency_us);
        let now = rt::now();
        let at = st.at_tick(now + Duration::from_micros(latency_us));
        assert!(at >= now, "a message never arrives before it was sent");
        at
    }

    /// Until when a hold of either direction between `a` and `b` lasts, if one is on.
    fn held_until(&self, a: HostName, b: HostName) -> Option<Instant> {
        let st = lock(&self.state);
        let until = |from, to| st.holds.get(&(from, to)).copied();
        until(a, b)
            .max(until(b, a))
            .filter(|&until| until > rt::now())
    }

    fn partitioned(&self, a: HostName, b: HostName) -> bool {
        lock(&self.state).partitions.contains(&pair(a, b))
    }

    /// Listens on `port` of `host`. `AddrInUse` if something already does.
    pub fn bind(&self, host: HostName, port: u16) -> io::Result<SimListener> {
        let mut st = lock(&self.state);
        if st.listeners.contains_key(&(host, port)) {
            return Err(io::Error::new(
                io::ErrorKind::AddrInUse,
                format!("{host}:{port} is already listening"),
            ));
        }
        let (tx, rx) = mpsc::channel(BACKLOG);
        st.next_listener_id += 1;
        let id = st.next_listener_id;
        st.listeners.insert((host, port), (id, tx));
        Ok(SimListener {
            net: self.clone(),
            host,
            port,
            id,
            incoming: rx,
        })
    }

    /// Connects from host `from` to `port` of host `to`: waits out a partition between them
    /// and a hold either way, then takes one message latency; refused if nobody listens there
    /// by then.
    pub async fn connect(&self, from: HostName, to: HostName, port: u16) -> io::Result<SimStream> {
        loop {
            // Registered before the check, so a heal in between is not missed.
            let healed = self.healed.notified();
            if self.partitioned(from, to) {
                healed.await;
                continue;
            }
            if let Some(until) = self.held_until(from, to) {
                rt::sleep_until(until).await;
                continue;
            }
            rt::sleep_until(self.delivery()).await;
            if !self.partitioned(from, to) && self.held_until(from, to).is_none() {
                break;
            }
        }
        let outbound = Arc::new(Pipe::default());
        let inbound = Arc::new(Pipe::default());
        let client = SimStream::new(self.clone(), outbound.clone(), inbound.clone());
        let server = SimStream::new(self.clone(), inbound.clone(), outbound.clone());
        let refused = || {
            io::Error::new(
                io::ErrorKind::ConnectionRefused,
                format!("nothing listens on {to}:{port}"),
            )
        };
        let listener = lock(&self.state)
            .listeners
            .get(&(to, port))
            .map(|(_, tx)| tx.clone());
        let listener = listener.ok_or_else(refused)?;
        listener.try_send(server).map_err(|_| refused())?;
        let mut st = lock(&self.state);
        st.connections
            .retain(|c| c.pipes.iter().any(|p| p.strong_count() > 0));
        st.connections.push(Connection {
            hosts: (from, to),
            pipes: [Arc::downgrade(&outbound), Arc::downgrade(&inbound)],
        });
        Ok(client)
    }

    /// The live pipes of the connections `pick` selects.
    fn pipes_of(&self, pick: impl Fn(&Connection) -> bool) -> Vec<Arc<Pipe>> {
        let st = lock(&self.state);
        st.connections
            .iter()
            .filter(|c| pick(c))
            .flat_map(Connection::pipes)
            .collect()
    }

    /// The live pipe `direction` (0: from the connecting host, 1: towards it) of the
    /// connections `pick` selects.
    fn pipes_towards(
        &self,
        pick: impl Fn(&Connection) -> bool,
        direction: usize,
    ) -> Vec<Arc<Pipe>> {
        let st = lock(&self.state);
        st.connections
            .iter()
            .filter(|c| pick(c))
            .filter_map(|c| c.pipes[direction].upgrade())
            .collect()
    }

    /// Cuts `a` from `b`: everything in flight between them, and everything sent until
    /// [`Net::repair`], is lost.
    pub fn partition(&self, a: HostName, b: HostName) {
        lock(&self.state).partitions.insert(pair(a, b));
        for pipe in self.pipes_of(|c| c.joins(a, b)) {
            pipe.update(|st| {
                st.lost = true;
                st.segments.clear();
                st.queued_bytes = 0;
            });
        }
    }

    /// Holds the direction `from → to` for `length`: what is in flight that way, and what is
    /// sent until then, arrives at the first tick after `length` (or later, if its latency says
    /// so), in order. Nothing is lost; a later hold of the same direction can only extend it.
    pub fn hold(&self, from: HostName, to: HostName, length: Duration) {
        let until = {
            let mut st = lock(&self.state);
            let until = st.at_tick(rt::now() + length);
            let until = st.holds.get(&(from, to)).map_or(until, |&u| u.max(until));
            st.holds.insert((from, to), until);
            until
        };
        self.hold_open_pipes(from, to, until);
    }

    /// Stalls the connections open now, in the direction `from → to`, for `length`: what is in
    /// flight that way on them, and what they send until then, arrives at the first tick after
    /// `length`, in order, as on a connection that lost a segment and retransmits it with a
    /// growing backoff. Unlike a hold, new connections (and connects) are not affected.
    pub fn stall(&self, from: HostName, to: HostName, length: Duration) {
        let until = lock(&self.state).at_tick(rt::now() + length);
        self.hold_open_pipes(from, to, until);
    }

    /// Holds the direction `from → to` of the connections open now until `until`.
    fn hold_open_pipes(&self, from: HostName, to: HostName, until: Instant) {
        let outbound = self.pipes_towards(|c| c.hosts == (from, to), 0);
        let inbound = self.pipes_towards(|c| c.hosts == (to, from), 1);
        for pipe in outbound.into_iter().chain(inbound) {
            pipe.update(|st| {
                st.held_until = st.held_until.max(Some(until));
                for (at, _) in &mut st.segments {
                    *at = (*at).max(until);
                }
            });
        }
    }

    /// Heals a partition: connections that lost data are reset, waiting connects proceed.
    pub fn repair(&self, a: HostName, b: HostName) {
        lock(&self.state).partitions.remove(&pair(a, b));
        for pipe in self.pipes_of(|c| c.joins(a, b)) {
            pipe.update(|st| {
                if st.lost {
                    st.reset = true;
                }
            });
        }
        self.healed.notify_waiters();
    }

    /// A crash of `host`'s process: its listeners vanish and its connections are reset. (Its
    /// tasks are killed by its [`rt::Host`].)
    pub fn crash(&self, host: HostName) {
        lock(&self.state).listeners.retain(|(h, _), _| *h != host);
        for pipe in self.pipes_of(|c| c.touches(host)) {
            pipe.update(|st| {
                st.reset = true;
                st.segments.clear();
                st.queued_bytes = 0;
            });
        }
    }

    fn unbind(&self, host: HostName, port: u16, id: u64) {
        let mut st = lock(&self.state);
        if st
            .listeners
            .get(&(host, port))
            .is_some_and(|(i, _)| *i == id)
        {
            st.listeners.remove(&(host, port));
        }
    }
}

/// One direction of a connection.
#[derive(Debug, Default)]
struct Pipe {
    state: Mutex<PipeState>,
}

#[derive(Debug, Default)]
struct PipeState {
    /// Segments in flight with their delivery time, in order.
    segments: VecDeque<(Instant, Vec<u8>)>,
    queued_bytes: usize,
    /// The writer closed: the reader sees the end after the last segment.
    fin: bool,
    /// The connection was reset: reads and writes fail.
    reset: bool,
    /// A segment was dropped by a partition: nothing more is delivered.
    lost: bool,
    /// Nothing crosses before this instant (a hold of this direction).
    held_until: Option<Instant>,
    /// The reading end is gone: writes fail.
    reader_gone: bool,
    reader: Option<Waker>,
    writer: Option<Waker>,
}

impl Pipe {
    /// Changes the state and wakes both ends, so each sees the change.
    fn update(&self, change: impl FnOnce(&mut PipeState)) {
        let mut st = lock(&self.state);
        change(&mut st);
        let wakers = [st.reader.take(), st.writer.take()];
        drop(st);
        wakers.into_iter().flatten().for_each(Waker::wake);
    }
}

fn reset_error() -> io::Error {
    io::Error::new(io::ErrorKind::ConnectionReset, "connection reset")
}

/// Waits for a segment's delivery time.
type Wait = (Instant, Pin<Box<dyn Future<Output = ()> + Send>>);

/// One end of a connection.
pub struct SimStream {
    net: Net,
    tx: Arc<Pipe>,
    rx: Arc<Pipe>,
    /// The timer for the first segment of `rx` not yet delivered.
    wait: Option<Wait>,
}

impl std::fmt::Debug for SimStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimStream")
            .field("tx", &self.tx)
            .field("rx", &self.rx)
            .finish_non_exhaustive()
    }
}

impl SimStream {
    fn new(net: Net, tx: Arc<Pipe>, rx: Arc<Pipe>) -> SimStream {
        SimStream {
            net,
            tx,
            rx,
            wait: None,
        }
    }
}

impl AsyncRead for SimStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if buf.remaining() == 0 {
            return Poll::Ready(Ok(()));
        }
        loop {
            let due = {
                let mut st = lock(&this.rx.state);
                if st.reset {
                    return Poll::Ready(Err(reset_error()));
                }
                // Woken by whatever changes the pipe; a timer wakes it for a segment in flight.
                st.reader = Some(cx.waker().clone());
                let end = st.fin && !st.lost;
                let held = st.held_until.filter(|&until| until > rt::now());
                match st.segments.front_mut() {
                    Some((at, bytes)) if *at <= rt::now() => {
                        let n = bytes.len().min(buf.remaining());
                        buf.put_slice(&bytes[..n]);
                        if n == bytes.len() {
                            st.segments.pop_front();
                        } else {
                            bytes.drain(..n);
                        }
                        st.queued_bytes -= n;
                        if let Some(writer) = st.writer.take() {
                            writer.wake();
                        }
                        return Poll::Ready(Ok(()));
                    }
                    Some((at, _)) => *at,
                    // The end of the stream, unless the FIN was lost with the data before it;
                    // it crosses a hold like data does.
                    None if end => match held {
                        Some(until) => until,
                        None => return Poll::Ready(Ok(())),
                    },
                    None => return Poll::Pending,
                }
            };
            if this.wait.as_ref().is_none_or(|(at, _)| *at != due) {
                this.wait = Some((due, Box::pin(rt::sleep_until(due))));
            }
            let (_, timer) = this.wait.as_mut().expect("set above");
            match timer.as_mut().poll(cx) {
                Poll::Ready(()) => this.wait = None,
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

impl AsyncWrite for SimStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if data.is_empty() {
            return Poll::Ready(Ok(0));
        }
        let mut st = lock(&this.tx.state);
        if st.reset {
            return Poll::Ready(Err(reset_error()));
        }
        if st.reader_gone || st.fin {
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::BrokenPipe,
                "the connection is closed",
            )));
        }
        if st.lost {
            // Sent into the partition: gone.
            return Poll::Ready(Ok(data.len()));
        }
        if st.queued_bytes >= WINDOW_BYTES {
            st.writer = Some(cx.waker().clone());
            return Poll::Pending;
        }
        let n = data.len().min(WINDOW_BYTES - st.queued_bytes);
        let at = this.net.delivery().max(st.held_until.unwrap_or(rt::now()));
        let at = st.segments.back().map_or(at, |(last, _)| at.max(*last));
        st.segments.push_back((at, data[..n].to_vec()));
        st.queued_bytes += n;
        debug_assert!(
            st.queued_bytes <= WINDOW_BYTES,
            "a pipe holds at most its window"
        );
        if let Some(reader) = st.reader.take() {
            reader.wake();
        }
        Poll::Ready(Ok(n))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.tx.update(|st| st.fin = true);
        Poll::Ready(Ok(()))
    }
}

impl Drop for SimStream {
    fn drop(&mut self) {
        self.tx.update(|st| st.fin = true);
        self.rx.update(|st| st.reader_gone = true);
    }
}

/// A listening port of a host.
#[derive(Debug)]
pub struct SimListener {
    net: Net,
    host: HostName,
    port: u16,
    id: u64,
    incoming: mpsc::Receiver<SimStream>,
}

impl SimListener {
    /// The next connection made to this port.
    pub async fn accept(&mut self) -> io::Result<SimStream> {
        self.incoming
            .recv()
            .await
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotConnected, "the listener was closed"))
    }
}

impl engine::remote::worker::Listener for SimListener {
    type Stream = SimStream;
    async fn accept(&mut self) -> io::Result<SimStream> {
        SimListener::accept(self).await
    }
}

impl Drop for SimListener {
    fn drop(&mut self) {
        self.net.unbind(self.host, self.port, self.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    fn net(max_latency_ms: u64) -> Net {
        Net::new(
            ChaCha8Rng::seed_from_u64(7),
            Duration::from_millis(max_latency_ms),
            Duration::from_millis(1),
        )
    }

    fn block_on<F: Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .expect("runtime")
            .block_on(f)
    }

    /// A connection from host `a` to port 1 of host `b`: the listener and both ends.
    async fn connected(net: &Net) -> (SimListener, SimStream, SimStream) {
        let mut listener = net.bind("b", 1).expect("bind");
        let client = net.connect("a", "b", 1).await.expect("connect");
        let server = listener.accept().await.expect("accept");
        (listener, client, server)
    }

    #[test]
    fn bytes_arrive_in_order_after_latency_and_then_the_end() {
        block_on(async {
            let net = net(20);
            let start = rt::now();
            let (_listener, mut client, mut server) = connected(&net).await;
            for i in 0..50u8 {
                client.write_all(&[i; 10]).await.expect("write");
            }
            drop(client);
            let mut got = Vec::new();
            server.read_to_end(&mut got).await.expect("read");
            let want: Vec<u8> = (0..50u8).flat_map(|i| [i; 10]).collect();
            assert_eq!(got, want);
            assert!(rt::now() > start, "delivery takes simulated time");
            assert!(rt::now() - start <= Duration::from_millis(41));
            let err = server.write_all(b"x").await.expect_err("peer closed");
            assert_eq!(err.kind(), io::ErrorKind::BrokenPipe);
        });
    }

    #[test]
    fn nothing_listening_is_refused_and_a_port_binds_once() {
        block_on(async {
            let net = net(1);
            let err = net.connect("a", "b", 1).await.expect_err("refused");
            assert_eq!(err.kind(), io::ErrorKind::ConnectionRefused);
            let listener = net.bind("b", 1).expect("bind");
            assert_eq!(
                net.bind("b", 1).expect_err("in use").kind(),
                io::ErrorKind::AddrInUse
            );
            drop(listener);
            net.bind("b", 1)
                .expect("free again after the listener is dropped");
        });
    }

    #[test]
    fn a_crash_resets_connections_and_removes_listeners() {
        block_on(async {
            let net = net(1);
            let (_listener, mut client, _server) = connected(&net).await;
            net.crash("b");
            let mut buf = [0u8; 4];
            let err = client.read(&mut buf).await.expect_err("reset");
            assert_eq!(err.kind(), io::ErrorKind::ConnectionReset);
            let err = net.connect("a", "b", 1).await.expect_err("refused");
            assert_eq!(err.kind(), io::ErrorKind::ConnectionRefused);
        });
    }

    #[test]
    fn a_partition_loses_data_holds_connects_and_resets_on_repair() {
        block_on(async {
            let net = net(1);
            let (_listener, mut client, mut server) = connected(&net).await;
            net.partition("a", "b");
            client
                .write_all(b"lost")
                .await
                .expect("writes into a partition succeed");
            let mut buf = [0u8; 4];
            let read = rt::timeout(Duration::from_secs(5), server.read(&mut buf)).await;
            assert!(read.is_err(), "nothing crosses a partition");
            let connecting = {
                let net = net.clone();
                rt::spawn(async move { net.connect("a", "b", 1).await.map(drop) })
            };
            rt::sleep(Duration::from_secs(1)).await;
            assert!(
                !connecting.is_finished(),
                "a connect waits out the partition"
            );
            net.repair("a", "b");
            connecting
                .await
                .expect("task")
                .expect("connects after the repair");
            let err = server.read(&mut buf).await.expect_err("reset on repair");
            assert_eq!(err.kind(), io::ErrorKind::ConnectionReset);
        });
    }

    #[test]
    fn a_hold_delays_one_direction_without_losing_anything() {
        block_on(async {
            let net = net(1);
            let (_listener, mut client, mut server) = connected(&net).await;
            client.write_all(b"in flight").await.expect("write");
            let held_at = rt::now();
            let length = Duration::from_millis(100);
            net.hold("a", "b", length);
            client.write_all(b" and sent").await.expect("write");
            // The other direction still flows.
            server.write_all(b"pong").await.expect("write");
            let mut pong = [0u8; 4];
            client.read_exact(&mut pong).await.expect("read");
            assert_eq!(&pong, b"pong");
            assert!(rt::now() - held_at < length, "only a → b is held");
            let mut early = [0u8; 1];
            let read = rt::timeout(length / 2, server.read(&mut early)).await;
            assert!(read.is_err(), "what was in flight is held too");
            // A connect either way waits out the hold.
            let mut listener_a = net.bind("a", 2).expect("bind");
            net.connect("b", "a", 2).await.expect("connect");
            assert!(rt::now() - held_at >= length, "connected across a hold");
            drop(listener_a.accept().await.expect("accept"));
            drop(client);
            let mut got = Vec::new();
            server.read_to_end(&mut got).await.expect("read");
            assert_eq!(got, b"in flight and sent", "nothing lost, in order");
            assert!(rt::now() - held_at >= length);
        });
    }

    #[test]
    fn the_end_of_a_stream_waits_out_a_hold() {
        block_on(async {
            let net = net(1);
            let (_listener, client, mut server) = connected(&net).await;
            let held_at = rt::now();
            net.hold("a", "b", Duration::from_millis(50));
            drop(client);
            let mut got = Vec::new();
            server.read_to_end(&mut got).await.expect("read");
            assert!(got.is_empty());
            assert!(rt::now() - held_at >= Duration::from_millis(50));
        });
    }

    #[test]
    fn a_full_window_makes_the_writer_wait_for_the_reader() {
        block_on(async {
            let net = net(0);
            let (_listener, mut client, mut server) = connected(&net).await;
            let big = vec![1u8; WINDOW_BYTES + 10];
            let writing = rt::spawn(async move {
                client.write_all(&big).await.expect("write");
                client
            });
            rt::sleep(Duration::from_millis(10)).await;
            assert!(!writing.is_finished(), "the writer waits beyond the window");
            let mut got = vec![0u8; WINDOW_BYTES + 10];
            server.read_exact(&mut got).await.expect("read");
            writing.await.expect("writer finishes once read");
        });
    }
}

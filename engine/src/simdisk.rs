//! SimDisk: an in-memory disk for redb with a volatile layer, crashes, torn writes, I/O errors and
//! latency, every random decision drawn from one seeded `ChaCha8Rng`.
//!
//! # The model
//! - The disk holds two images. The **volatile** image is what reads see: every successful
//!   `write` and `set_len` lands there at once, like a page cache. The **durable** image is what
//!   survives a crash. `sync_data` copies every dirty sector (and a changed length) from the
//!   volatile image to the durable one.
//! - Dirtiness is tracked per sector (`sector_bytes`, default 512). A write that covers part of a
//!   sector dirties the whole sector; the sector's new content is the volatile one.
//! - [`SimDisk::crash`] ends the process: each dirty sector independently either reaches the
//!   surviving image or keeps its durable content (probability `sector_survival_probability`,
//!   default ½), and an unsynced length change survives with the same probability. That is a
//!   torn write at sector granularity: a multi-sector write can survive in part, in any pattern.
//!   The crashed instance (and every clone of it) then refuses every operation with an error, as
//!   a dead process cannot write; the returned [`DiskImage`] reopens as a fresh disk
//!   ([`SimDiskBuilder::image`], or [`SimDisk::crash_and_reopen`]).
//! - **Injected errors**: each read, write (`set_len` counts as a write) and sync fails with an
//!   `io::Error` with its configured probability, and the `fail_next_*` switches fail the next N
//!   operations of a kind deterministically. A failed write is torn: each of its sectors lands in
//!   the volatile image or not. A failed sync makes a random subset of the dirty sectors durable
//!   and leaves the rest dirty (the kernel may have written some pages before the error).
//! - **Fault points**: [`SimDisk::crash_after_ops`] crashes the disk right after its next `n`-th
//!   mutating operation (write, length change or sync, whatever its outcome), and
//!   [`SimDisk::fail_after_ops`] fails the operation after the next `n`; a test walks a
//!   multi-step protocol (creating a store, say) through every point a crash or an error can
//!   hit it. The mutating operations are all the steps the redb backend's crash-atomic creation
//!   relies on: growing and truncating the file (length changes), writes and syncs.
//! - **Latency**: redb calls its backend synchronously, so the disk cannot sleep. Each operation
//!   instead adds its latency (per kind, plus a random jitter) to an *owed* virtual-time counter.
//!   The caller that drives redb ([`crate::redb_backend`]) takes the owed amount after each piece
//!   of work with [`SimDisk::take_latency`] and sleeps it on the runtime clock (`rt::sleep`),
//!   still holding whatever it holds, as a thread blocked in real I/O would; its deadline checks
//!   come after the sleep, so injected latency shows in simulated time and can trip deadlines.
//!
//! Determinism: the same seed and the same sequence of operations give the same errors, the same
//! latencies and the same surviving image. Nothing here reads a clock or the OS.

use std::fmt;
use std::io;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Default sector size: the unit a torn write tears at.
pub const DEFAULT_SECTOR_BYTES: u64 = 512;

/// The bytes that survived a crash; a fresh [`SimDisk`] reopens from them.
#[derive(Clone, PartialEq, Eq)]
pub struct DiskImage {
    bytes: Vec<u8>,
}

impl DiskImage {
    /// An image holding these bytes (for example an empty disk).
    pub fn from_bytes(bytes: Vec<u8>) -> DiskImage {
        DiskImage { bytes }
    }

    /// The surviving bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// Length in bytes.
    pub fn len_bytes(&self) -> u64 {
        self.bytes.len() as u64
    }
}

impl fmt::Debug for DiskImage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DiskImage")
            .field("len_bytes", &self.bytes.len())
            .finish()
    }
}

/// Counters of what the disk did, for tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SimDiskStats {
    /// Successful reads.
    pub reads: u64,
    /// Successful writes and length changes.
    pub writes: u64,
    /// Successful syncs.
    pub syncs: u64,
    /// Operations failed by injection (probability or `fail_next_*`).
    pub injected_errors: u64,
}

/// The kinds of operation errors and latency are configured for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OpKind {
    Read,
    Write,
    Sync,
}

/// Per-kind numbers: error probability, latency, and the `fail_next` counter.
#[derive(Debug, Clone, Copy, Default)]
struct PerKind {
    error_probability: f64,
    latency: Duration,
    fail_next: u64,
}

/// Configuration, fixed at build time (the `fail_next` counters aside).
#[derive(Debug, Clone, Copy)]
struct Config {
    sector_bytes: u64,
    sector_survival_probability: f64,
    read: PerKind,
    write: PerKind,
    sync: PerKind,
    latency_jitter: Duration,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            sector_bytes: DEFAULT_SECTOR_BYTES,
            sector_survival_probability: 0.5,
            read: PerKind::default(),
            write: PerKind::default(),
            sync: PerKind::default(),
            latency_jitter: Duration::ZERO,
        }
    }
}

impl Config {
    fn kind_mut(&mut self, kind: OpKind) -> &mut PerKind {
        match kind {
            OpKind::Read => &mut self.read,
            OpKind::Write => &mut self.write,
            OpKind::Sync => &mut self.sync,
        }
    }
}

/// Builds a [`SimDisk`].
#[derive(Debug, Clone)]
pub struct SimDiskBuilder {
    config: Config,
    rng: ChaCha8Rng,
    image: DiskImage,
}

fn checked_probability(what: &str, p: f64) -> f64 {
    assert!(
        (0.0..=1.0).contains(&p),
        "simdisk: {what} must be a probability in 0..=1, got {p}"
    );
    p
}

impl SimDiskBuilder {
    /// Seed of the disk's `ChaCha8Rng` (default 0).
    pub fn seed(mut self, seed: u64) -> SimDiskBuilder {
        self.rng = ChaCha8Rng::seed_from_u64(seed);
        self
    }

    /// The disk's rng itself, for a simulation that derives every component's rng from one
    /// master rng (replaces [`SimDiskBuilder::seed`]).
    pub fn rng(mut self, rng: ChaCha8Rng) -> SimDiskBuilder {
        self.rng = rng;
        self
    }

    /// Sector size in bytes, the tear granularity (default 512; must be at least 1).
    pub fn sector_bytes(mut self, sector_bytes: u64) -> SimDiskBuilder {
        assert!(sector_bytes > 0, "simdisk: sector_bytes must be at least 1");
        self.config.sector_bytes = sector_bytes;
        self
    }

    /// Probability that an unsynced sector reaches the surviving image on a crash (default ½).
    pub fn sector_survival_probability(mut self, p: f64) -> SimDiskBuilder {
        self.config.sector_survival_probability = checked_probability("survival", p);
        self
    }

    /// Probability that a read fails.
    pub fn read_error_probability(mut self, p: f64) -> SimDiskBuilder {
        self.config.read.error_probability = checked_probability("read error", p);
        self
    }

    /// Probability that a write or length change fails (torn).
    pub fn write_error_probability(mut self, p: f64) -> SimDiskBuilder {
        self.config.write.error_probability = checked_probability("write error", p);
        self
    }

    /// Probability that a sync fails (partly synced).
    pub fn sync_error_probability(mut self, p: f64) -> SimDiskBuilder {
        self.config.sync.error_probability = checked_probability("sync error", p);
        self
    }

    /// Virtual time each read costs.
    pub fn read_latency(mut self, latency: Duration) -> SimDiskBuilder {
        self.config.read.latency = latency;
        self
    }

    /// Virtual time each write costs.
    pub fn write_latency(mut self, latency: Duration) -> SimDiskBuilder {
        self.config.write.latency = latency;
        self
    }

    /// Virtual time each sync costs.
    pub fn sync_latency(mut self, latency: Duration) -> SimDiskBuilder {
        self.config.sync.latency = latency;
        self
    }

    /// Up to this much extra virtual time per operation, drawn uniformly (microsecond steps).
    pub fn latency_jitter(mut self, jitter: Duration) -> SimDiskBuilder {
        self.config.latency_jitter = jitter;
        self
    }

    /// Start from this image (both durable and volatile) instead of an empty disk.
    pub fn image(mut self, image: DiskImage) -> SimDiskBuilder {
        self.image = image;
        self
    }

    /// The disk.
    pub fn build(self) -> SimDisk {
        SimDisk::from_parts(self.config, self.rng, self.image)
    }
}

/// The sectors written since their last sync: a bitmap for membership and a list in first-write
/// order, so iteration (and so every fate drawn per sector) is deterministic and cheap.
#[derive(Debug, Default)]
struct DirtySectors {
    bits: Vec<u64>,
    list: Vec<u64>,
}

impl DirtySectors {
    fn insert(&mut self, index: u64) {
        let word = (index / 64) as usize;
        let bit = 1u64 << (index % 64);
        if word >= self.bits.len() {
            self.bits.resize(word + 1, 0);
        }
        if self.bits[word] & bit == 0 {
            self.bits[word] |= bit;
            self.list.push(index);
        }
    }

    fn len(&self) -> usize {
        self.list.len()
    }

    /// Empties the set, returning its sectors in first-write order.
    fn take(&mut self) -> Vec<u64> {
        for index in &self.list {
            self.bits[(*index / 64) as usize] = 0;
        }
        debug_assert!(self.bits.iter().all(|w| *w == 0));
        std::mem::take(&mut self.list)
    }
}

/// Everything behind the handle's mutex.
struct State {
    config: Config,
    rng: ChaCha8Rng,
    volatile: Vec<u8>,
    durable: Vec<u8>,
    /// Sectors written since their last sync.
    dirty_sectors: DirtySectors,
    /// The volatile length differs from the durable one.
    len_dirty: bool,
    /// Set by `crash`: the surviving image; every later operation fails.
    crashed: Option<DiskImage>,
    /// Virtual time the disk has spent and nobody has slept yet.
    latency_owed: Duration,
    /// Every `fail_next_ops` failure; consumed before the per-kind counters.
    fail_next_any: u64,
    /// Mutating operations left before the disk crashes (`crash_after_ops`).
    crash_countdown: Option<u64>,
    /// Mutating operations left to pass before one fails (`fail_after_ops`).
    failure_countdown: Option<u64>,
    stats: SimDiskStats,
}

/// A simulated disk; clones share one disk. Implements [`redb::StorageBackend`].
#[derive(Clone)]
pub struct SimDisk {
    state: Arc<Mutex<State>>,
}

impl fmt::Debug for SimDisk {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.lock();
        f.debug_struct("SimDisk")
            .field("len_bytes", &state.volatile.len())
            .field("durable_len_bytes", &state.durable.len())
            .field("dirty_sectors", &state.dirty_sectors.len())
            .field("crashed", &state.crashed.is_some())
            .field("latency_owed", &state.latency_owed)
            .field("stats", &state.stats)
            .field("config", &state.config)
            .finish()
    }
}

fn crashed_error() -> io::Error {
    io::Error::other("simdisk: the disk crashed; this instance refuses every operation")
}

fn injected_error(kind: OpKind) -> io::Error {
    io::Error::other(format!("simdisk: injected {kind:?} error"))
}

impl SimDisk {
    /// A builder with the defaults: seed 0, 512-byte sectors, no errors, no latency, empty.
    pub fn builder() -> SimDiskBuilder {
        SimDiskBuilder {
            config: Config::default(),
            rng: ChaCha8Rng::seed_from_u64(0),
            image: DiskImage::from_bytes(Vec::new()),
        }
    }

    fn from_parts(config: Config, rng: ChaCha8Rng, image: DiskImage) -> SimDisk {
        let state = State {
            config,
            rng,
            volatile: image.bytes.clone(),
            durable: image.bytes,
            dirty_sectors: DirtySectors::default(),
            len_dirty: false,
            crashed: None,
            latency_owed: Duration::ZERO,
            fail_next_any: 0,
            crash_countdown: None,
            failure_countdown: None,
            stats: SimDiskStats::default(),
        };
        SimDisk {
            state: Arc::new(Mutex::new(state)),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves consistent state (every mutation is a whole
        // step), so a poisoned lock is still usable.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Crashes the disk: draws each unsynced sector's fate, returns the surviving image and
    /// makes this instance (and its clones) refuse every further operation. Calling it again
    /// returns the same image.
    pub fn crash(&self) -> DiskImage {
        self.lock().crash()
    }

    /// Crashes and reopens from the surviving image with the same configuration; the new disk's
    /// rng continues this disk's stream, so one seed drives a whole crash-restart history.
    pub fn crash_and_reopen(&self) -> SimDisk {
        let image = self.crash();
        let state = self.lock();
        SimDisk::from_parts(state.config, state.rng.clone(), image)
    }

    /// Whether [`SimDisk::crash`] was called.
    pub fn is_crashed(&self) -> bool {
        self.lock().crashed.is_some()
    }

    /// A copy of the durable image (what a crash with no surviving sector would leave).
    pub fn durable_image(&self) -> DiskImage {
        DiskImage::from_bytes(self.lock().durable.clone())
    }

    /// Number of sectors written since their last sync.
    pub fn dirty_sectors(&self) -> usize {
        self.lock().dirty_sectors.len()
    }

    /// The virtual time spent since the last call; the caller sleeps it on the runtime clock.
    pub fn take_latency(&self) -> Duration {
        std::mem::take(&mut self.lock().latency_owed)
    }

    /// What the disk did so far.
    pub fn stats(&self) -> SimDiskStats {
        self.lock().stats
    }

    /// Fails the next `n` operations of any kind.
    pub fn fail_next_ops(&self, n: u64) {
        self.lock().fail_next_any = n;
    }

    /// Fails the next `n` reads.
    pub fn fail_next_reads(&self, n: u64) {
        self.lock().config.read.fail_next = n;
    }

    /// Fails the next `n` writes (torn) and length changes.
    pub fn fail_next_writes(&self, n: u64) {
        self.lock().config.write.fail_next = n;
    }

    /// Fails the next `n` syncs (partly synced).
    pub fn fail_next_syncs(&self, n: u64) {
        self.lock().config.sync.fail_next = n;
    }

    /// Crashes the disk (as [`SimDisk::crash`]) right after the `n`-th mutating operation
    /// from now (write, length change or sync, counted whether it succeeds or fails); the
    /// operation itself returns normally, every later one fails. `n` must be at least 1.
    pub fn crash_after_ops(&self, n: u64) {
        assert!(
            n > 0,
            "simdisk: crash_after_ops needs at least one operation"
        );
        self.lock().crash_countdown = Some(n);
    }

    /// Lets `n` mutating operations pass, then fails the next one with an injected error (a
    /// write torn, a sync partly done, a length change not done).
    pub fn fail_after_ops(&self, n: u64) {
        self.lock().failure_countdown = Some(n);
    }
}

impl State {
    /// The surviving image, drawn once; the disk refuses every operation from then on.
    fn crash(&mut self) -> DiskImage {
        if let Some(image) = &self.crashed {
            return image.clone();
        }
        let image = self.surviving_image();
        self.crashed = Some(image.clone());
        image
    }

    /// Counts a mutating operation that ran (successfully or not) towards `crash_after_ops`.
    fn mutation_done(&mut self) {
        match self.crash_countdown {
            Some(left) if left <= 1 => {
                self.crash_countdown = None;
                self.crash();
            }
            Some(left) => self.crash_countdown = Some(left - 1),
            None => {}
        }
    }

    /// Whether `fail_after_ops` fails this mutating operation.
    fn scheduled_failure(&mut self) -> bool {
        match self.failure_countdown {
            Some(0) => {
                self.failure_countdown = None;
                true
            }
            Some(left) => {
                self.failure_countdown = Some(left - 1);
                false
            }
            None => false,
        }
    }

    /// Charges latency, then decides whether the operation fails. `Err` for a crashed disk;
    /// `Ok(true)` when an error is injected.
    fn begin(&mut self, kind: OpKind) -> io::Result<bool> {
        if self.crashed.is_some() {
            return Err(crashed_error());
        }
        let jitter_us = self.config.latency_jitter.as_micros() as u64;
        let jitter = if jitter_us == 0 {
            Duration::ZERO
        } else {
            Duration::from_micros(self.rng.random_range(0..=jitter_us))
        };
        let latency = self.config.kind_mut(kind).latency + jitter;
        let scheduled = kind != OpKind::Read && self.scheduled_failure();
        let per_kind = self.config.kind_mut(kind);
        let forced = if scheduled {
            true
        } else if self.fail_next_any > 0 {
            self.fail_next_any -= 1;
            true
        } else if per_kind.fail_next > 0 {
            per_kind.fail_next -= 1;
            true
        } else {
            false
        };
        let probability = per_kind.error_probability;
        let fails = forced || (probability > 0.0 && self.rng.random_bool(probability));
        self.latency_owed = self.latency_owed.saturating_add(latency);
        if fails {
            self.stats.injected_errors += 1;
        }
        Ok(fails)
    }

    fn sector_range(&self, offset: u64, len: u64) -> std::ops::Range<u64> {
        let sector = self.config.sector_bytes;
        if len == 0 {
            return 0..0;
        }
        let end = offset.saturating_add(len);
        (offset / sector)..end.div_ceil(sector)
    }

    /// Byte range of sector `index` clipped to `len`.
    fn sector_bytes_in(&self, index: u64, len: usize) -> std::ops::Range<usize> {
        let sector = self.config.sector_bytes;
        let start = (index.saturating_mul(sector) as usize).min(len);
        let end = (index.saturating_add(1).saturating_mul(sector) as usize).min(len);
        start..end
    }

    fn write(&mut self, offset: u64, data: &[u8]) -> io::Result<()> {
        let fails = self.begin(OpKind::Write)?;
        let end = offset
            .checked_add(data.len() as u64)
            .filter(|end| *end <= self.volatile.len() as u64)
            .ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!(
                        "simdisk: write of {} bytes at {offset} past the end ({} bytes)",
                        data.len(),
                        self.volatile.len()
                    ),
                )
            })?;
        debug_assert!(end as usize <= self.volatile.len());
        let sectors = self.sector_range(offset, data.len() as u64);
        for index in sectors {
            // A failed write is torn: each of its sectors independently made it or not.
            if fails && !self.rng.random_bool(0.5) {
                continue;
            }
            let sector = self.sector_bytes_in(index, usize::MAX);
            let lo = (sector.start as u64).max(offset);
            let hi = (sector.end as u64).min(end);
            let src = (lo - offset) as usize..(hi - offset) as usize;
            self.volatile[lo as usize..hi as usize].copy_from_slice(&data[src]);
            self.dirty_sectors.insert(index);
        }
        if fails {
            return Err(injected_error(OpKind::Write));
        }
        self.stats.writes += 1;
        Ok(())
    }

    fn read(&mut self, offset: u64, out: &mut [u8]) -> io::Result<()> {
        if self.begin(OpKind::Read)? {
            return Err(injected_error(OpKind::Read));
        }
        let end = offset
            .checked_add(out.len() as u64)
            .filter(|end| *end <= self.volatile.len() as u64)
            .ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!(
                        "simdisk: read of {} bytes at {offset} past the end ({} bytes)",
                        out.len(),
                        self.volatile.len()
                    ),
                )
            })?;
        out.copy_from_slice(&self.volatile[offset as usize..end as usize]);
        self.stats.reads += 1;
        Ok(())
    }

    fn set_len(&mut self, len: u64) -> io::Result<()> {
        if self.begin(OpKind::Write)? {
            return Err(injected_error(OpKind::Write));
        }
        let len = usize::try_from(len).map_err(|_| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("simdisk: length {len} does not fit in memory"),
            )
        })?;
        let old = self.volatile.len();
        self.volatile.resize(len, 0);
        if len > old {
            // New bytes are zero in the volatile image but not yet durable: they are dirty.
            for index in self.sector_range(old as u64, (len - old) as u64) {
                self.dirty_sectors.insert(index);
            }
        }
        self.len_dirty = self.volatile.len() != self.durable.len();
        self.stats.writes += 1;
        Ok(())
    }

    /// Makes one dirty sector durable.
    fn persist_sector(&mut self, index: u64) {
        let range = self.sector_bytes_in(index, self.volatile.len());
        if self.durable.len() < range.end {
            self.durable.resize(range.end, 0);
        }
        self.durable[range.clone()].copy_from_slice(&self.volatile[range]);
    }

    fn sync(&mut self) -> io::Result<()> {
        let fails = self.begin(OpKind::Sync)?;
        // One allocation for the sectors below, not one per growing sector (a new redb file
        // is a megabyte of them).
        self.durable
            .reserve(self.volatile.len().saturating_sub(self.durable.len()));
        for index in self.dirty_sectors.take() {
            // A failed sync got some pages out before the error.
            if fails && !self.rng.random_bool(0.5) {
                self.dirty_sectors.insert(index);
                continue;
            }
            self.persist_sector(index);
        }
        if fails {
            return Err(injected_error(OpKind::Sync));
        }
        self.durable.truncate(self.volatile.len());
        self.durable.resize(self.volatile.len(), 0);
        self.len_dirty = false;
        debug_assert_eq!(self.dirty_sectors.len(), 0);
        debug_assert_eq!(self.durable, self.volatile);
        self.stats.syncs += 1;
        Ok(())
    }

    /// Runs a mutating operation, then counts it towards a scheduled crash (one that found the
    /// disk crashed already did not run).
    fn mutate(&mut self, op: impl FnOnce(&mut State) -> io::Result<()>) -> io::Result<()> {
        let crashed_before = self.crashed.is_some();
        let result = op(self);
        if !crashed_before {
            self.mutation_done();
        }
        result
    }

    /// The image a crash leaves: durable bytes, each dirty sector drawn to survive or not.
    fn surviving_image(&mut self) -> DiskImage {
        let survive = self.config.sector_survival_probability;
        let mut bytes = self.durable.clone();
        if self.len_dirty && self.rng.random_bool(survive) {
            bytes.resize(self.volatile.len(), 0);
        }
        for index in self.dirty_sectors.list.clone() {
            if !self.rng.random_bool(survive) {
                continue;
            }
            let range = self.sector_bytes_in(index, bytes.len().min(self.volatile.len()));
            bytes[range.clone()].copy_from_slice(&self.volatile[range]);
        }
        DiskImage { bytes }
    }
}

impl redb::StorageBackend for SimDisk {
    fn len(&self) -> Result<u64, io::Error> {
        let state = self.lock();
        if state.crashed.is_some() {
            return Err(crashed_error());
        }
        Ok(state.volatile.len() as u64)
    }

    fn read(&self, offset: u64, out: &mut [u8]) -> Result<(), io::Error> {
        self.lock().read(offset, out)
    }

    fn set_len(&self, len: u64) -> Result<(), io::Error> {
        self.lock().mutate(|state| state.set_len(len))
    }

    fn sync_data(&self) -> Result<(), io::Error> {
        self.lock().mutate(State::sync)
    }

    fn write(&self, offset: u64, data: &[u8]) -> Result<(), io::Error> {
        self.lock().mutate(|state| state.write(offset, data))
    }
}

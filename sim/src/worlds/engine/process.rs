//! A store's process and its lives, as the fault plan's driver crashes and restarts it: the
//! in-process redb world's whole system under test, and the network world's IO worker.
//!
//! A crash either kills the process now (its tasks die, its disk keeps only what it synced,
//! torn at sector granularity) or strikes its disk a few mutating operations on, mostly inside
//! a commit, which writes and syncs without yielding, so a kill from outside never lands
//! there: the process then fails on, and dies when it is restarted.

use engine::rt::Host;
use engine::simdisk::SimDisk;
use tokio::sync::mpsc;

use super::*;
use crate::faults::plan::{self, Schedule, Target};

/// Most mutating disk operations before an armed disk crash strikes.
const MAX_OPS_TO_DISK_CRASH: u64 = 6;

/// How a process starts and dies.
pub(crate) trait Lives {
    /// Starts life `number` (1 for the first; the disk is that life's) in a new host.
    fn boot(&mut self, number: u64) -> Host;

    /// Kills `host`, the process's, now, with whatever dies with it (its connections).
    fn kill(&mut self, host: &Host) {
        host.kill();
    }
}

/// A process over a SimDisk, as a [`Target`] of the fault plan.
#[derive(Debug)]
pub(crate) struct Process<L> {
    lives: L,
    host: Host,
    /// The disk the next life opens; a crash replaces it with what survived.
    disk: Arc<Mutex<SimDisk>>,
    derived: Derived,
    /// The seed's stream for the process's disks.
    stream: &'static str,
    /// The current life (1 for the first).
    number: u64,
    /// Draws how each crash strikes.
    rng: ChaCha8Rng,
}

impl<L: Lives> Process<L> {
    /// Boots the first life of `lives` on `disk` (the first disk of `derived`'s `stream`);
    /// crashes draw from the seed's stream `crashes`.
    pub(crate) fn start(
        mut lives: L,
        disk: Arc<Mutex<SimDisk>>,
        derived: &Derived,
        (stream, crashes): (&'static str, &str),
    ) -> Process<L> {
        Process {
            host: lives.boot(1),
            lives,
            disk,
            derived: derived.clone(),
            stream,
            number: 1,
            rng: seeding::rng(derived.seed, crashes, 0),
        }
    }

    /// The process dies now: its tasks, and every write its disk did not sync.
    fn kill(&mut self) {
        self.lives.kill(&self.host);
        self.number += 1;
        let mut current = lock(&self.disk);
        if current.dirty_sectors() > 0 {
            coverage::reach(Goal::CrashWithUnsyncedWrites);
        }
        let image = current.crash();
        *current = sim_disk(&self.derived, self.stream, self.number - 1, Some(image));
    }

    /// Ends the run: nothing of the process runs on.
    pub(crate) fn stop(&self) {
        self.host.kill();
    }
}

impl<L: Lives> Target for Process<L> {
    fn crash(&mut self) -> bool {
        if self.host.is_killed() {
            return false;
        }
        if self.rng.random_bool(0.5) {
            let writes = self.rng.random_range(1..=MAX_OPS_TO_DISK_CRASH);
            lock(&self.disk).crash_after_ops(writes);
        } else {
            self.kill();
        }
        true
    }

    fn restart(&mut self) {
        if !self.host.is_killed() {
            self.kill();
        }
        self.host = self.lives.boot(self.number);
    }
}

/// The handle over redb on SimDisk, in process, with crashes of the process.
#[derive(Debug)]
pub(crate) struct RedbWorld;

/// The process's name in the trace.
const PROCESS: &str = "process";

impl World for RedbWorld {
    const GOALS: &'static [Goal] = coverage::engine_goals!(
        WriteDrainedFullPool,
        RemovedBlocksReadBack,
        CrashWithUnsyncedWrites,
        OpenRetried
    );

    async fn run(env: &RunEnv) -> RunStats {
        let derived = &env.derived;
        let disk = Arc::new(Mutex::new(sim_disk(derived, "disk", 0, None)));
        let ctx = Ctx {
            disk: Some(Arc::clone(&disk)),
            ..Ctx::for_env(env, Site::OnDisk)
        };
        let (ended, mut end) = mpsc::channel(1);
        let lives = RedbLives {
            ctx: ctx.clone(),
            ended,
        };
        let mut process = Process::start(lives, disk, derived, ("disk", "process-crash"));
        let total =
            u64::from(derived.workload.clients) * u64::from(derived.workload.ops_per_client);
        let plan = plan::plan(derived, (PROCESS, PROCESS), Schedule::Ops { total });
        let progress = Some(ctx.watch_ops());
        // In process: no network (a link event planned here is a harness failure).
        let link = (None::<&crate::net::Net>, (PROCESS, PROCESS));
        let outcome = plan::drive(plan, link, &mut process, progress, &env.sink, end.recv()).await;
        process.stop();
        if let Some(Some(result)) = outcome {
            env.sink.check(result);
        }
        ctx.stats()
    }
}

/// The lives of the in-process world: each opens the store, checks it after a crash, and
/// runs the clients on from where the last life's stopped; the one that finishes them ends
/// the run.
#[derive(Debug)]
struct RedbLives {
    ctx: Ctx,
    /// Where the last life reports the run's end.
    ended: mpsc::Sender<Result<(), Violation>>,
}

impl Lives for RedbLives {
    fn boot(&mut self, number: u64) -> Host {
        let host = Host::new();
        let (ctx, ended) = (self.ctx.clone(), self.ended.clone());
        host.spawn(async move {
            let life = u32::try_from(number - 1).unwrap_or(u32::MAX);
            let result = redb_life(&ctx, life).await;
            // Only a life that ends the run gets here; the driver reads it at once.
            let _ = ended.send(result).await;
        });
        host
    }
}

/// One life of the in-process redb world. A life whose disk crashed under it (an armed crash
/// struck) is dead: it waits to be killed and restarted, and ends nothing.
async fn redb_life(ctx: &Ctx, life: u32) -> Result<(), Violation> {
    let Some(disk) = ctx.disk.clone() else {
        return Err(Violation::new(
            Invariant::Harness,
            "the redb world has no disk",
        ));
    };
    let what = format!("after crash {life}");
    let opened = retry_open("world", "", &what, Duration::ZERO, |_| open_redb(&disk)).await;
    let backend = match opened {
        Err(_) if ctx.disk_crashed() => std::future::pending().await,
        opened => opened?,
    };
    run_life(ctx, backend, life).await
}

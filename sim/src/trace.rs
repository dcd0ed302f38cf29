//! The run's trace: every event the harness records, stamped with simulated time.
//!
//! Events go to the current thread's recorder (one run owns a thread from start to end, and
//! every simulated task runs on it). The recorder folds every event into a SHA-256 digest, so
//! two runs of one seed can be compared by digest alone, keeps the last events for failure
//! reports, and, when asked, keeps everything for `--trace` files. Nothing recorded may depend
//! on anything but the seed: no addresses, no wall-clock time, no hash-map order.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use sha2::{Digest, Sha256};

/// Events kept for a failure report.
pub const TAIL_EVENTS: usize = 40;

/// Events a failure report shows up to the first violation's simulated time (the lead-up).
pub const EVENTS_BEFORE_VIOLATION: usize = 30;

/// Events a failure report shows after the first violation's simulated time.
pub const EVENTS_AFTER_VIOLATION: usize = 6;

/// One recorded event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// Simulated time since the run started.
    pub at: Duration,
    /// Who: a host, a client, a monitor.
    pub actor: String,
    /// What happened (`op.begin`, `op.end`, `fault.crash`, ...).
    pub name: String,
    /// Details, `key=value` separated by spaces.
    pub detail: String,
    /// For spans: how long (`op.end` events carry the op's duration).
    pub duration: Option<Duration>,
}

impl Event {
    fn line(&self) -> String {
        let mut line = format!(
            "{:>12.6}s {:<10} {:<16} {}",
            self.at.as_secs_f64(),
            self.actor,
            self.name,
            self.detail
        );
        if let Some(d) = self.duration {
            let _ = write!(line, " took={:.6}s", d.as_secs_f64());
        }
        line
    }
}

/// What a finished recording hands back.
#[derive(Debug, Clone)]
pub struct Recording {
    /// SHA-256 over every event, in order.
    pub digest: [u8; 32],
    /// How many events.
    pub events: u64,
    /// The last [`TAIL_EVENTS`] events, oldest first, as lines.
    pub tail: Vec<String>,
    /// Every event, when the recording was started with `keep_all`.
    pub all: Vec<Event>,
    /// The digest after each event, when asked (for naming the first divergence).
    pub prefix_digests: Vec<[u8; 32]>,
    /// Events for the timeline only ([`detail_span`], [`detail_count`]), kept with
    /// `keep_all`: not in the digest, the tail or the JSON-lines file.
    pub detail: Vec<Event>,
}

impl Recording {
    /// The digest as hex.
    pub fn digest_hex(&self) -> String {
        self.digest
            .iter()
            .fold(String::with_capacity(64), |mut s, b| {
                let _ = write!(s, "{b:02x}");
                s
            })
    }
}

#[derive(Debug)]
struct Recorder {
    hasher: Sha256,
    events: u64,
    /// The last events' lines (each line is made for the digest anyway).
    tail: VecDeque<String>,
    keep_all: bool,
    all: Vec<Event>,
    keep_prefixes: bool,
    prefixes: Vec<[u8; 32]>,
    detail: Vec<Event>,
    /// What events are timed by.
    clock: Clock,
}

/// A run's clock, started with the recording.
#[derive(Debug, Clone, Copy)]
enum Clock {
    /// The engine's runtime clock from this instant: the run's one paused tokio runtime, or
    /// madsim's.
    Runtime(engine::rt::Instant),
    /// turmoil's simulated time from this much: each turmoil host has a runtime (and a clock
    /// origin) of its own, but the simulation's elapsed time is the same on all of them.
    #[cfg(not(madsim))]
    Turmoil(Duration),
}

impl Clock {
    fn start() -> Clock {
        #[cfg(not(madsim))]
        if let Some(elapsed) = turmoil::sim_elapsed() {
            return Clock::Turmoil(elapsed);
        }
        Clock::Runtime(engine::rt::now())
    }

    /// Simulated time since the clock started.
    fn elapsed(&self) -> Duration {
        match *self {
            Clock::Runtime(start) => engine::rt::now().saturating_duration_since(start),
            // Outside every host (between steps) nothing of the run happens.
            #[cfg(not(madsim))]
            Clock::Turmoil(start) => turmoil::sim_elapsed()
                .unwrap_or(start)
                .saturating_sub(start),
        }
    }
}

thread_local! {
    static RECORDER: RefCell<Option<Recorder>> = const { RefCell::new(None) };
    /// Whether the recording keeps the timeline-only events: asked on every backend op, so a
    /// flag of its own, and nothing else is done for those events when it is off.
    static KEEP_DETAIL: Cell<bool> = const { Cell::new(false) };
}

tokio::task_local! {
    /// The actor whose op this task is running, set by [`in_op`] only when the run keeps
    /// every event: timeline detail recorded inside the op (its permit wait, its requests to a
    /// worker) goes on that actor's track, nested in the op's slice.
    static OP_ACTOR: String;
}

/// How much to keep.
#[derive(Debug, Clone, Copy, Default)]
pub struct Keep {
    /// Keep every event (for `--trace`).
    pub all: bool,
    /// Keep the digest after every event (for `check-determinism`).
    pub prefix_digests: bool,
}

/// Starts recording on this thread, with time from the simulation's clock: turmoil's inside a
/// turmoil simulation, else the current runtime's.
pub fn start(keep: Keep) {
    KEEP_DETAIL.with(|k| k.set(keep.all));
    RECORDER.with(|r| {
        *r.borrow_mut() = Some(Recorder {
            hasher: Sha256::new(),
            events: 0,
            tail: VecDeque::with_capacity(TAIL_EVENTS),
            keep_all: keep.all,
            all: Vec::new(),
            keep_prefixes: keep.prefix_digests,
            prefixes: Vec::new(),
            detail: Vec::new(),
            clock: Clock::start(),
        })
    });
}

/// Ends recording on this thread. Panics if none was started: that is a harness bug.
pub fn finish() -> Recording {
    KEEP_DETAIL.with(|k| k.set(false));
    let recorder = RECORDER
        .with(|r| r.borrow_mut().take())
        .expect("trace::finish without trace::start");
    Recording {
        digest: recorder.hasher.finalize().into(),
        events: recorder.events,
        tail: recorder.tail.into(),
        all: recorder.all,
        prefix_digests: recorder.prefixes,
        detail: recorder.detail,
    }
}

/// Simulated time since the recording started (zero outside a recording).
pub fn now() -> Duration {
    RECORDER.with(|r| match r.borrow().as_ref() {
        Some(recorder) => recorder.clock.elapsed(),
        None => Duration::ZERO,
    })
}

/// [`now`] for a panic hook: the panic may have struck while the recorder was borrowed, so
/// this never borrows it twice (zero then).
pub(crate) fn now_in_hook() -> Duration {
    RECORDER.with(|r| match r.try_borrow().ok().as_deref() {
        Some(Some(recorder)) => recorder.clock.elapsed(),
        _ => Duration::ZERO,
    })
}

/// Records an event (a no-op outside a recording).
pub fn record(actor: &str, name: &str, detail: impl Into<String>) {
    record_event(actor, name, detail.into(), None);
}

/// Records the end of a span that started at `started` (simulated time).
pub fn record_span(actor: &str, name: &str, detail: impl Into<String>, started: Duration) {
    let took = now().saturating_sub(started);
    record_event(actor, name, detail.into(), Some(took));
}

fn record_event(actor: &str, name: &str, detail: String, duration: Option<Duration>) {
    let at = now();
    let actor = actor.to_string();
    let name = name.to_string();
    push(Event {
        at,
        actor,
        name,
        detail,
        duration,
    });
}

/// Whether this run keeps every event, and so the timeline-only detail.
pub fn keeps_all() -> bool {
    KEEP_DETAIL.with(Cell::get)
}

/// Runs `op`, one op of `actor`, marked as such for the timeline's detail ([`op_actor`]); a
/// run that keeps no trace runs it unmarked, at no cost.
pub async fn in_op<F: std::future::Future>(actor: &str, op: F) -> F::Output {
    if keeps_all() {
        OP_ACTOR.scope(actor.to_string(), op).await
    } else {
        op.await
    }
}

/// The actor whose op this task runs, when [`in_op`] marked it.
pub fn op_actor() -> Option<String> {
    OP_ACTOR.try_with(Clone::clone).ok()
}

/// The start of a timeline-only span ([`detail_span`]): the simulated time now when the
/// recording keeps those events, else `None` (and nothing is read).
pub fn detail_start() -> Option<Duration> {
    keeps_all().then(now)
}

/// Records a span for the timeline only (work inside an op: the backend's part, at the
/// handle's backend or the worker's) that began at `started` (from [`detail_start`]), when
/// every event is kept (`--trace`, `--report`). It is not part of the digest, so a run records
/// the same digest whether or not it keeps these.
pub fn detail_span(actor: &str, name: &str, detail: &str, started: Option<Duration>) {
    if let Some(started) = started {
        push_detail(
            actor,
            || name.to_string(),
            || detail.to_string(),
            Some(started),
        );
    }
}

/// Records an instant for the timeline only (made by `detail` only when kept), like
/// [`detail_span`].
pub fn detail_instant(actor: &str, name: &str, detail: impl FnOnce() -> String) {
    push_detail(actor, || name.to_string(), detail, None);
}

/// The name prefix of a timeline counter event: `count:TRACK` (see [`detail_count`]).
pub const COUNT: &str = "count:";

/// Records counts for the timeline's counter track `track` of `actor` (`key=value` pairs,
/// made by `detail` only when kept), like [`detail_span`]: on the hot path of every run, so it
/// costs nothing then.
pub fn detail_count(actor: &str, track: &str, detail: impl FnOnce() -> String) {
    push_detail(actor, || format!("{COUNT}{track}"), detail, None);
}

fn push_detail(
    actor: &str,
    name: impl FnOnce() -> String,
    detail: impl FnOnce() -> String,
    started: Option<Duration>,
) {
    if !KEEP_DETAIL.with(Cell::get) {
        return;
    }
    RECORDER.with(|r| {
        let mut r = r.borrow_mut();
        let Some(rec) = r.as_mut().filter(|rec| rec.keep_all) else {
            return;
        };
        let at = rec.clock.elapsed();
        rec.detail.push(Event {
            at,
            actor: actor.to_string(),
            name: name(),
            detail: detail(),
            duration: started.map(|s| at.saturating_sub(s)),
        });
    });
}

fn push(event: Event) {
    RECORDER.with(|r| {
        let mut r = r.borrow_mut();
        let Some(rec) = r.as_mut() else { return };
        let line = event.line();
        rec.hasher.update(line.as_bytes());
        rec.hasher.update(b"\n");
        rec.events += 1;
        if rec.keep_prefixes {
            rec.prefixes.push(rec.hasher.clone().finalize().into());
        }
        if rec.tail.len() == TAIL_EVENTS {
            rec.tail.pop_front();
        }
        rec.tail.push_back(line);
        if rec.keep_all {
            rec.all.push(event);
        }
    });
}

/// The events around simulated time `at` (a first violation's), as numbered lines centred on
/// one marked event (`>>`): the monitor's `violation` event at `at` when it reported there,
/// else `by`'s last event at `at` (a violation found later, e.g. by the history check at the
/// end, is dated when the op it blames answered, and `by` is who ran it), else the last event
/// at or before `at`. The window is the
/// [`EVENTS_BEFORE_VIOLATION`] events before the marked one and [`EVENTS_AFTER_VIOLATION`]
/// after it; each line gives the event's number in the run (from 1), as in the `--trace` file.
pub fn around(events: &[Event], at: Duration, by: Option<&str>) -> Vec<String> {
    let reported = events
        .iter()
        .position(|e| e.at == at && e.name == "violation");
    let blamed = || {
        let by = by?;
        events.iter().rposition(|e| e.at == at && e.actor == by)
    };
    let Some(marked) = reported
        .or_else(blamed)
        .or_else(|| events.partition_point(|e| e.at <= at).checked_sub(1))
    else {
        return events
            .iter()
            .take(EVENTS_AFTER_VIOLATION)
            .enumerate()
            .map(|(i, e)| format!("#{:<6}    {}", i + 1, e.line()))
            .collect();
    };
    let first = marked.saturating_sub(EVENTS_BEFORE_VIOLATION);
    let last = (marked + 1 + EVENTS_AFTER_VIOLATION).min(events.len());
    (first..last)
        .map(|i| {
            let marker = if i == marked { ">>" } else { "  " };
            format!("#{:<6} {marker} {}", i + 1, events[i].line())
        })
        .collect()
}

/// The two trace files `--trace FILE` names: the JSON-lines file and the Chrome/Perfetto
/// trace-event file. `run.jsonl` (or any other name) gives `run.jsonl` and
/// `run.chrome.json`; a name that already ends in `.chrome.json` is the Chrome file, and the
/// JSON lines go beside it as `.jsonl`, so no name ever doubles its suffix.
pub fn file_names(path: &Path) -> (PathBuf, PathBuf) {
    let text = path.to_string_lossy();
    match text.strip_suffix(".chrome.json") {
        Some(stem) => (PathBuf::from(format!("{stem}.jsonl")), path.to_path_buf()),
        None => (path.to_path_buf(), path.with_extension("chrome.json")),
    }
}

/// Writes `recording`'s events to the two files [`file_names`] derives from `path`: JSON lines, one
/// event a line (`t_us`: simulated microseconds since the run started at which the event
/// happened, for a span its end; `duration_us`: a span's length, else null; `actor`, `event`,
/// `detail`), and a Chrome/Perfetto trace-event file (`crate::timeline`, with the detail
/// events too). Returns both paths.
pub fn write_files(path: &Path, recording: &Recording) -> std::io::Result<(PathBuf, PathBuf)> {
    let events = &recording.all;
    let (jsonl, chrome) = file_names(path);
    let mut lines = std::io::BufWriter::new(std::fs::File::create(&jsonl)?);
    for e in events {
        let v = serde_json::json!({
            "t_us": e.at.as_micros() as u64,
            "actor": e.actor,
            "event": e.name,
            "detail": e.detail,
            "duration_us": e.duration.map(|d| d.as_micros() as u64),
        });
        writeln!(lines, "{v}")?;
    }
    lines.flush()?;
    let file = std::fs::File::create(&chrome)?;
    serde_json::to_writer(
        std::io::BufWriter::new(file),
        &crate::timeline::chrome_trace(events, &recording.detail),
    )?;
    Ok((jsonl, chrome))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(details: &[&str]) -> Recording {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .unwrap();
        rt.block_on(async {
            start(Keep {
                all: true,
                prefix_digests: true,
            });
            for d in details {
                record("client-1", "op", *d);
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            finish()
        })
    }

    #[test]
    fn trace_file_names_never_double_a_suffix() {
        let names = |p: &str| {
            let (a, b) = file_names(Path::new(p));
            (a.display().to_string(), b.display().to_string())
        };
        assert_eq!(
            names("run.jsonl"),
            ("run.jsonl".into(), "run.chrome.json".into())
        );
        assert_eq!(
            names("x.chrome.json"),
            ("x.jsonl".into(), "x.chrome.json".into())
        );
        assert_eq!(names("dir/t"), ("dir/t".into(), "dir/t.chrome.json".into()));
    }

    #[test]
    fn the_window_is_around_the_violation_time() {
        let details: Vec<String> = (0..100).map(|i| format!("x={i}")).collect();
        let details: Vec<&str> = details.iter().map(String::as_str).collect();
        let all = run(&details).all;
        // Event i is at 5 ms * i; a violation dated 212 ms falls after event 42 (210 ms).
        let lines = around(&all, Duration::from_millis(212), None);
        assert_eq!(
            lines.len(),
            EVENTS_BEFORE_VIOLATION + 1 + EVENTS_AFTER_VIOLATION
        );
        let marked: Vec<&String> = lines.iter().filter(|l| l.contains(">>")).collect();
        assert_eq!(marked.len(), 1);
        assert!(
            marked[0].starts_with("#43 ") && marked[0].contains("x=42"),
            "{marked:?}"
        );
        assert!(lines[0].contains("x=12"), "{}", lines[0]);
        assert!(lines.last().unwrap().contains("x=48"));
        // At the very start and past the end the window is cut, never out of range.
        assert_eq!(
            around(&all, Duration::ZERO, None).len(),
            1 + EVENTS_AFTER_VIOLATION
        );
        let past = around(&all, Duration::from_secs(9), None);
        assert_eq!(past.len(), EVENTS_BEFORE_VIOLATION + 1);
        // A monitor's own violation event at that time is the one marked.
        let mut reported = all.clone();
        reported[30].name = "violation".into();
        reported[31].at = reported[30].at;
        let lines = around(&reported, reported[30].at, None);
        let marked = lines.iter().find(|l| l.contains(">>")).unwrap();
        assert!(
            marked.starts_with("#31 ") && marked.contains("violation"),
            "{marked}"
        );
        // A violation dated when a blamed op answered marks its actor's event at that time,
        // not the last event of the instant.
        let mut blamed = all.clone();
        blamed[50].actor = "client-3".into();
        blamed[51].at = blamed[50].at;
        let marked_by = |by| {
            let lines = around(&blamed, blamed[50].at, by);
            lines.into_iter().find(|l| l.contains(">>")).unwrap()
        };
        assert!(marked_by(Some("client-3")).starts_with("#51 "));
        assert!(marked_by(None).starts_with("#52 "));
    }

    #[test]
    fn equal_runs_have_equal_digests_and_a_difference_is_located() {
        let a = run(&["x=1", "x=2", "x=3"]);
        let b = run(&["x=1", "x=2", "x=3"]);
        let c = run(&["x=1", "x=9", "x=3"]);
        assert_eq!(a.digest, b.digest);
        assert_ne!(a.digest, c.digest);
        let first = a
            .prefix_digests
            .iter()
            .zip(&c.prefix_digests)
            .position(|(x, y)| x != y);
        assert_eq!(first, Some(1));
        assert_eq!(
            a.all[2].at,
            Duration::from_millis(10),
            "events carry simulated time"
        );
    }
}

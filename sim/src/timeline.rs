//! The run's timeline as a Chrome trace-event file, for ui.perfetto.dev or chrome://tracing.
//!
//! Layout: one process track per host or role (`clients`, `handle`, `backend` (the handle's
//! backend in process), `worker` (with its backend), `zstor`, `wcfs`, `harness`, `monitors`,
//! `faults`), one thread track per actor within it (each client, writer, host task), with
//! numbered lanes for slices that overlap without nesting. An op is a slice named by the op
//! (`get_header`, `AppendBlock(3)`…) with its outcome in its arguments and its permit waits
//! nested in it; the backend's part of it is a slice on the backend's track; in the remote
//! world the worker's run of each request is a `serve OP` slice, joined to the client's op by
//! flow arrows there and back (the request is known on both sides by the client's identity and
//! its request id). Counter tracks show the permits in use and the cache's entries at the
//! handle and the work running at each backend. A fault with a length (`partition for 14ms`,
//! `worker down for 44ms`, a hold, a stall) is a slice of that length on the `faults` track of
//! its kind; a violation is a global instant marked on every track. Times are simulated
//! microseconds since the run started. All but ops, faults and violations come from
//! timeline-only detail events (`trace::detail_span` and its kin), recorded only when a run
//! keeps every event.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{Value, json};

use crate::trace::{self, Event};

/// The process track an actor belongs to.
fn process_of(actor: &str, event: &str) -> &'static str {
    if event.starts_with("fault.") {
        return "faults";
    }
    match actor {
        "worker" | "worker-backend" => "worker",
        "backend" => "backend",
        "handle" => "handle",
        "zstor" => "zstor",
        "wcfs" => "wcfs",
        "monitor" => "monitors",
        "world" | "driver" | "probe" => "harness",
        _ => "clients",
    }
}

/// The thread track of an event within its process: faults get one per kind, the rest one
/// per actor.
fn thread_of(event: &Event) -> &str {
    match event.name.strip_prefix("fault.") {
        Some(kind) => kind,
        None => &event.actor,
    }
}

/// A counter event (`key=value` pairs) as a Chrome counter track of its process, named by its
/// track and actor (`permits in use (handle)`).
fn counter(e: &Event, pid: usize) -> Value {
    let track = e.name.strip_prefix(trace::COUNT).unwrap_or(&e.name);
    let args: serde_json::Map<String, Value> = e
        .detail
        .split_whitespace()
        .filter_map(|kv| kv.split_once('='))
        .filter_map(|(k, v)| {
            let value = v.parse::<u64>().map(|n| json!(n));
            Some((
                k.to_string(),
                value.or_else(|_| v.parse::<f64>().map(|x| json!(x))).ok()?,
            ))
        })
        .collect();
    json!({
        "ph": "C", "pid": pid, "name": format!("{track} ({})", e.actor),
        "ts": e.at.as_micros() as u64, "args": args,
    })
}

/// A slice's name: the op an `op` event names (`op=NAME`), else the event's own name.
fn slice_name(event: &Event) -> String {
    event
        .detail
        .split_whitespace()
        .find_map(|kv| kv.strip_prefix("op="))
        .map_or_else(|| event.name.clone(), str::to_string)
}

/// A fault's length from its detail (`for 14ms`, `down for 1.9s`), as the fault plan
/// prints it (Rust's `Duration` debug form).
pub(crate) fn fault_length(detail: &str) -> Option<Duration> {
    let text = detail.split_once("for ")?.1.split_whitespace().next()?;
    let unit_at = text.find(|c: char| !(c.is_ascii_digit() || c == '.'))?;
    let (number, unit) = text.split_at(unit_at);
    let number: f64 = number.parse().ok()?;
    let seconds = match unit {
        "s" => number,
        "ms" => number / 1e3,
        "µs" | "us" => number / 1e6,
        "ns" => number / 1e9,
        _ => return None,
    };
    Some(Duration::from_secs_f64(seconds))
}

/// One event placed on the timeline: its track, and its slice's extent if it has one.
struct Placed<'a> {
    event: &'a Event,
    process: &'static str,
    thread: &'a str,
    /// The thread's lane (its own Chrome thread): slices that overlap without nesting go on
    /// lanes of their own, since a track draws only properly nested slices.
    lane: usize,
    /// A slice's start and length in microseconds.
    slice: Option<(u64, u64)>,
}

impl Placed<'_> {
    fn end(&self) -> Option<u64> {
        self.slice.map(|(start, dur)| start + dur)
    }

    /// Whether this slice spans simulated microsecond `at` (ends included).
    fn spans(&self, at: u64) -> bool {
        self.slice
            .is_some_and(|(start, dur)| start <= at && at <= start + dur)
    }
}

/// `event`'s slice, if it is one: a span (its start and length), or a fault with a length.
fn slice_of(e: &Event) -> Option<(u64, u64)> {
    let at = e.at.as_micros() as u64;
    let (start, length) = match e.duration {
        Some(d) => (at.saturating_sub(d.as_micros() as u64), d),
        None if e.name.starts_with("fault.") => (at, fault_length(&e.detail)?),
        None => return None,
    };
    Some((start, length.as_micros() as u64))
}

/// Puts each thread's slices on lanes: a slice goes on the first lane where it nests in the
/// innermost slice still open there, or starts after every one of them ended.
fn assign_lanes(placed: &mut [Placed<'_>]) {
    let mut threads: BTreeMap<(&str, &str), Vec<usize>> = BTreeMap::new();
    for (i, p) in placed.iter().enumerate().filter(|(_, p)| p.slice.is_some()) {
        threads.entry((p.process, p.thread)).or_default().push(i);
    }
    for slices in threads.values_mut() {
        // Outer slices first: by start, then the longest.
        slices.sort_by_key(|&i| {
            let (start, dur) = placed[i].slice.unwrap_or_default();
            (start, std::cmp::Reverse(dur), i)
        });
        // Per lane, the ends of the slices open on it, innermost last.
        let mut lanes: Vec<Vec<u64>> = Vec::new();
        for &i in slices.iter() {
            let (start, dur) = placed[i].slice.unwrap_or_default();
            let end = start + dur;
            let lane = lanes.iter_mut().position(|open| {
                while open.last().is_some_and(|&e| e <= start) {
                    open.pop();
                }
                open.last().is_none_or(|&e| e >= end)
            });
            let lane = lane.unwrap_or_else(|| {
                lanes.push(Vec::new());
                lanes.len() - 1
            });
            lanes[lane].push(end);
            placed[i].lane = lane;
        }
    }
}

/// A thread's name on lane `lane`: its own on the first, numbered on the others.
fn lane_name(thread: &str, lane: usize) -> String {
    match lane {
        0 => thread.to_string(),
        _ => format!("{thread} ({})", lane + 1),
    }
}

/// The Chrome trace-event JSON of `events` and the timeline-only `detail` events (the
/// backend's work and the permit waits as slices, remote requests as flows, the permits in
/// use and cache entries as counters).
pub fn chrome_trace(events: &[Event], detail: &[Event]) -> Value {
    let mut placed: Vec<Placed<'_>> = events
        .iter()
        .chain(detail)
        .map(|e| Placed {
            event: e,
            process: process_of(&e.actor, &e.name),
            thread: thread_of(e),
            lane: 0,
            slice: slice_of(e),
        })
        .collect();
    assign_lanes(&mut placed);
    // Process and thread ids in name order, so the file is the same for the same run.
    let mut tracks: BTreeMap<&str, BTreeMap<(&str, usize), usize>> = BTreeMap::new();
    for p in &placed {
        tracks
            .entry(p.process)
            .or_default()
            .insert((p.thread, p.lane), 0);
    }
    let mut out = Vec::new();
    for (pid, (process, threads)) in tracks.iter_mut().enumerate() {
        out.push(json!({"ph": "M", "name": "process_name", "pid": pid, "args": {"name": process}}));
        for (tid, ((thread, lane), id)) in threads.iter_mut().enumerate() {
            *id = tid;
            out.push(json!({"ph": "M", "name": "thread_name", "pid": pid, "tid": tid, "args": {"name": lane_name(thread, *lane)}}));
        }
    }
    let ids = |p: &Placed<'_>| {
        let pid = tracks.keys().position(|k| *k == p.process).unwrap_or(0);
        (pid, tracks[p.process][&(p.thread, p.lane)])
    };
    for p in &placed {
        out.push(trace_event(p, ids(p)));
    }
    out.extend(flows(&placed, ids));
    json!({ "traceEvents": out, "displayTimeUnit": "ms" })
}

/// One placed event as a Chrome trace event on thread `(pid, tid)`.
fn trace_event(p: &Placed<'_>, (pid, tid): (usize, usize)) -> Value {
    let e = p.event;
    if e.name.starts_with(trace::COUNT) {
        return counter(e, pid);
    }
    let at = e.at.as_micros() as u64;
    let args = json!({"detail": e.detail, "actor": e.actor});
    match p.slice {
        Some((start, dur)) => json!({
            "ph": "X", "pid": pid, "tid": tid, "name": slice_name(e),
            "ts": start, "dur": dur, "args": args,
        }),
        None if e.name == "violation" => json!({
            "ph": "i", "s": "g", "pid": pid, "tid": tid, "name": format!("violation: {}", e.detail),
            "ts": at, "args": args,
        }),
        None => json!({
            "ph": "i", "s": "t", "pid": pid, "tid": tid, "name": e.name, "ts": at, "args": args,
        }),
    }
}

/// The request a detail event belongs to (`flow=CLIENT:ID`), if any.
fn flow_key(e: &Event) -> Option<&str> {
    e.detail
        .split_whitespace()
        .find_map(|kv| kv.strip_prefix("flow="))
}

/// A remote request's three timeline points: the client's `request` and `reply` instants and
/// the worker's `serve` slice (indices into the placed events).
#[derive(Default)]
struct Request {
    sent: Option<usize>,
    served: Option<usize>,
    answered: Option<usize>,
}

/// The flow arrows of remote requests: from the client's op slice where it sent the request to
/// the worker's slice that served it, and from there back to the op where the reply came.
/// Each arrow is a Chrome flow (`s` then `f`, one id), bound to the slices enclosing its ends;
/// an end that no slice encloses (an op the trace does not mark) draws no arrow.
fn flows(placed: &[Placed<'_>], ids: impl Fn(&Placed<'_>) -> (usize, usize)) -> Vec<Value> {
    let mut requests: BTreeMap<&str, Request> = BTreeMap::new();
    for (i, p) in placed.iter().enumerate() {
        let Some(key) = flow_key(p.event) else {
            continue;
        };
        let request = requests.entry(key).or_default();
        match p.event.name.as_str() {
            "request" => request.sent = Some(i),
            "reply" => request.answered = Some(i),
            _ if p.slice.is_some() => request.served = Some(i),
            _ => {}
        }
    }
    // The slice enclosing instant `i` on its actor's thread, innermost (latest start) first.
    let enclosing = |i: usize| {
        let p = &placed[i];
        let at = p.event.at.as_micros() as u64;
        placed
            .iter()
            .filter(|s| s.process == p.process && s.thread == p.thread && s.spans(at))
            .max_by_key(|s| s.slice.map(|(start, _)| start))
            .map(|s| (ids(s), at))
    };
    let mut out = Vec::new();
    let mut next_id = 0;
    let mut arrow = |name: &str,
                     from: Option<((usize, usize), u64)>,
                     to: Option<((usize, usize), u64)>| {
        let (Some(((pid, tid), ts)), Some(((to_pid, to_tid), to_ts))) = (from, to) else {
            return;
        };
        next_id += 1;
        out.push(json!({"ph": "s", "id": next_id, "cat": "remote", "name": name, "pid": pid, "tid": tid, "ts": ts, "bp": "e"}));
        out.push(json!({"ph": "f", "id": next_id, "cat": "remote", "name": name, "pid": to_pid, "tid": to_tid, "ts": to_ts, "bp": "e"}));
    };
    for request in requests.values() {
        let Some(served) = request.served.map(|i| &placed[i]) else {
            continue;
        };
        let start = served.slice.map(|(start, _)| (ids(served), start));
        let end = served.end().map(|end| (ids(served), end));
        arrow("request", request.sent.and_then(enclosing), start);
        arrow("reply", end, request.answered.and_then(enclosing));
    }
    out
}
/// Checks the structure a viewer relies on in a Chrome trace: every `X` slice is properly
/// nested in or apart from the other slices of its thread, every flow has one `s` and then one
/// `f` with its id, and every flow end lies inside a slice of its thread (to bind to).
pub fn check_structure(trace: &Value) -> Result<(), String> {
    let all = trace["traceEvents"].as_array().ok_or("no traceEvents")?;
    let number = |e: &Value, key: &str| e[key].as_u64().ok_or(format!("{e}: no {key}"));
    let mut threads: BTreeMap<(u64, u64), Vec<(u64, u64)>> = BTreeMap::new();
    for e in all.iter().filter(|e| e["ph"] == "X") {
        let (start, dur) = (number(e, "ts")?, number(e, "dur")?);
        let thread = (number(e, "pid")?, number(e, "tid")?);
        threads
            .entry(thread)
            .or_default()
            .push((start, start + dur));
    }
    for slices in threads.values() {
        for a in slices {
            for b in slices {
                let apart = a.1 <= b.0 || b.1 <= a.0;
                let nested = (a.0 <= b.0 && b.1 <= a.1) || (b.0 <= a.0 && a.1 <= b.1);
                if !(apart || nested) {
                    return Err(format!("slices {a:?} and {b:?} overlap on one thread"));
                }
            }
        }
    }
    let mut phases: BTreeMap<u64, String> = BTreeMap::new();
    for e in all.iter().filter(|e| e["ph"] == "s" || e["ph"] == "f") {
        phases
            .entry(number(e, "id")?)
            .or_default()
            .push_str(e["ph"].as_str().unwrap_or_default());
        let (thread, at) = ((number(e, "pid")?, number(e, "tid")?), number(e, "ts")?);
        let bound = threads
            .get(&thread)
            .is_some_and(|slices| slices.iter().any(|&(s, end)| s <= at && at <= end));
        if !bound {
            return Err(format!("flow end {e} is in no slice of its thread"));
        }
    }
    match phases.iter().find(|(_, p)| p.as_str() != "sf") {
        Some((id, p)) => Err(format!(
            "flow {id} has the phases {p:?}, not one s then one f"
        )),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(at_ms: u64, actor: &str, name: &str, detail: &str, took_ms: Option<u64>) -> Event {
        Event {
            at: Duration::from_millis(at_ms),
            actor: actor.into(),
            name: name.into(),
            detail: detail.into(),
            duration: took_ms.map(Duration::from_millis),
        }
    }

    /// The names a trace's metadata events of `kind` (`process_name`, `thread_name`) give.
    fn metadata_names<'a>(all: &'a [Value], kind: &str) -> Vec<&'a str> {
        all.iter()
            .filter(|e| e["name"] == kind)
            .map(|e| e["args"]["name"].as_str().unwrap())
            .collect()
    }

    #[test]
    fn lengths_parse_as_the_plan_prints_them() {
        assert_eq!(fault_length("for 14ms"), Some(Duration::from_millis(14)));
        assert_eq!(
            fault_length("worker down for 1.5s"),
            Some(Duration::from_millis(1500))
        );
        assert_eq!(
            fault_length("node->worker for 772ms"),
            Some(Duration::from_millis(772))
        );
        assert_eq!(fault_length("for 250µs"), Some(Duration::from_micros(250)));
        assert_eq!(fault_length("node-worker"), None);
    }

    #[test]
    fn tracks_slices_faults_and_violations() {
        let events = [
            event(0, "worker", "listening", "boot=1", None),
            event(5, "client-1", "op", "op=get_header outcome=ok", Some(2)),
            event(6, "driver", "fault.partition", "for 14ms", None),
            event(7, "monitor", "violation", "drain: a cache hit", None),
        ];
        let detail = [
            event(5, "backend", "get_header", "ok", Some(1)),
            event(
                5,
                "backend",
                "count:work running",
                "reads=1 writes=0 streams=0",
                None,
            ),
        ];
        let trace = chrome_trace(&events, &detail);
        let all = trace["traceEvents"].as_array().unwrap();
        let named = |ph: &str, name: &str| all.iter().find(|e| e["ph"] == ph && e["name"] == name);
        let processes = metadata_names(all, "process_name");
        assert_eq!(
            processes,
            ["backend", "clients", "faults", "monitors", "worker"]
        );
        let count = all
            .iter()
            .find(|e| e["ph"] == "C")
            .expect("a counter track");
        assert_eq!(count["args"]["reads"].as_u64(), Some(1));
        let op = named("X", "get_header").expect("the op is a slice named by its op");
        assert_eq!(
            (op["ts"].as_u64(), op["dur"].as_u64()),
            (Some(3_000), Some(2_000))
        );
        let fault = named("X", "fault.partition").expect("a fault with a length is a slice");
        assert_eq!(
            (fault["ts"].as_u64(), fault["dur"].as_u64()),
            (Some(6_000), Some(14_000))
        );
        let violation = all
            .iter()
            .find(|e| e["ph"] == "i" && e["s"] == "g")
            .expect("a violation is a global instant");
        assert!(
            violation["name"]
                .as_str()
                .unwrap()
                .starts_with("violation: drain")
        );
    }

    #[test]
    fn permit_waits_nest_requests_flow_and_overlaps_take_lanes() {
        let events = [
            event(10, "client-1", "op", "op=get_header outcome=ok", Some(10)),
            event(12, "client-2", "op", "op=get_logs outcome=ok", Some(12)),
        ];
        let detail = [
            event(2, "client-1", "permit wait (read)", "", Some(2)),
            event(3, "client-1", "request", "flow=1:7", None),
            event(3, "client-2", "request", "flow=1:8", None),
            event(6, "worker", "serve get_header", "flow=1:7", Some(2)),
            event(8, "worker", "serve get_logs", "flow=1:8", Some(3)),
            event(8, "client-1", "reply", "flow=1:7", None),
            event(9, "client-2", "reply", "flow=1:8", None),
            // Never served (the link broke): no arrow.
            event(9, "client-1", "request", "flow=1:9", None),
            event(4, "handle", "count:permits in use", "reads=1", None),
            event(5, "handle", "count:cache entries", "entries=3", None),
        ];
        let trace = chrome_trace(&events, &detail);
        let all = trace["traceEvents"].as_array().unwrap();
        check_structure(&trace).unwrap();
        let threads = metadata_names(all, "thread_name");
        assert!(
            threads.contains(&"worker") && threads.contains(&"worker (2)"),
            "overlapping worker slices take two lanes: {threads:?}"
        );
        let slice = |name: &str| {
            all.iter()
                .find(|e| e["ph"] == "X" && e["name"] == name)
                .unwrap_or_else(|| panic!("no slice {name}"))
        };
        let (op, wait) = (slice("get_header"), slice("permit wait (read)"));
        assert_eq!(
            (op["pid"].clone(), op["tid"].clone()),
            (wait["pid"].clone(), wait["tid"].clone())
        );
        assert_eq!(
            (wait["ts"].as_u64(), wait["dur"].as_u64()),
            (Some(0), Some(2_000))
        );
        let flows: Vec<&Value> = all.iter().filter(|e| e["ph"] == "s").collect();
        assert_eq!(
            flows.len(),
            4,
            "a request and a reply arrow per served request"
        );
        let counters: Vec<&str> = all
            .iter()
            .filter(|e| e["ph"] == "C")
            .map(|e| e["name"].as_str().unwrap())
            .collect();
        assert_eq!(
            counters,
            ["permits in use (handle)", "cache entries (handle)"]
        );
    }

    #[test]
    fn the_structure_check_fails_on_crossed_slices_and_lone_flows() {
        let slice = |ts: u64| json!({"ph": "X", "pid": 0, "tid": 0, "ts": ts, "dur": 5});
        let crossed = json!({"traceEvents": [slice(0), slice(3)]});
        let error = check_structure(&crossed).unwrap_err();
        assert!(error.contains("overlap on one thread"), "{error}");
        let lone =
            json!({"traceEvents": [slice(0), {"ph": "s", "id": 1, "pid": 0, "tid": 0, "ts": 1}]});
        let error = check_structure(&lone).unwrap_err();
        assert!(error.contains("flow 1"), "{error}");
        let unbound =
            json!({"traceEvents": [slice(0), {"ph": "s", "id": 1, "pid": 0, "tid": 0, "ts": 9}]});
        let error = check_structure(&unbound).unwrap_err();
        assert!(error.contains("in no slice"), "{error}");
    }
}

//! The run's timeline as a Chrome trace-event file, for ui.perfetto.dev or chrome://tracing.
//!
//! Layout: one process track per host or role (`clients`, `backend` (the handle's backend in
//! process), `worker` (with its backend), `zstor`, `wcfs`, `harness`, `monitors`, `faults`),
//! one thread track per actor within it (each client, writer, host task). An op is a slice
//! named by the op (`get_header`, `AppendBlock(3)`…) with its outcome in its arguments; the
//! backend's part of it is a slice on the backend's track (timeline-only events, recorded by
//! the probe when every event is kept), and a counter track shows the reads, writes and
//! streams running at each backend; a fault with a length (`partition for 14ms`, `worker down
//! for 44ms`, a hold, a stall) is a slice of that length on the `faults` track of its kind; a
//! violation is a global instant marked on every track. Times are simulated microseconds since
//! the run started.
//!
//! Not drawn yet: the permit wait inside an op, and flows linking a client's request to the
//! worker's work (the wire carries no id the trace could join on).

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{Value, json};

use crate::trace::Event;

/// The process track an actor belongs to.
fn process_of(actor: &str, event: &str) -> &'static str {
    if event.starts_with("fault.") {
        return "faults";
    }
    match actor {
        "worker" | "worker-backend" => "worker",
        "backend" => "backend",
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

/// A counter event (`key=value` pairs) as a Chrome counter track of its process.
fn counter(e: &Event, pid: usize) -> Value {
    let args: serde_json::Map<String, Value> = e
        .detail
        .split_whitespace()
        .filter_map(|kv| kv.split_once('='))
        .filter_map(|(k, v)| Some((k.to_string(), json!(v.parse::<u64>().ok()?))))
        .collect();
    json!({
        "ph": "C", "pid": pid, "name": format!("permits in use ({})", e.actor),
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

/// The Chrome trace-event JSON of `events` and the timeline-only `detail` events (the
/// backend's work as slices, the permits in use as counters).
pub fn chrome_trace(events: &[Event], detail: &[Event]) -> Value {
    let events: Vec<&Event> = events.iter().chain(detail).collect();
    // Process and thread ids in name order, so the file is the same for the same run.
    let mut tracks: BTreeMap<&str, BTreeMap<&str, usize>> = BTreeMap::new();
    for e in &events {
        tracks
            .entry(process_of(&e.actor, &e.name))
            .or_default()
            .insert(thread_of(e), 0);
    }
    let mut out = Vec::new();
    for (pid, (process, threads)) in tracks.iter_mut().enumerate() {
        out.push(json!({"ph": "M", "name": "process_name", "pid": pid, "args": {"name": process}}));
        for (tid, (thread, id)) in threads.iter_mut().enumerate() {
            *id = tid;
            out.push(json!({"ph": "M", "name": "thread_name", "pid": pid, "tid": tid, "args": {"name": thread}}));
        }
    }
    let ids = |e: &Event| {
        let process = process_of(&e.actor, &e.name);
        let pid = tracks.keys().position(|p| *p == process).unwrap_or(0);
        (pid, tracks[process][thread_of(e)])
    };
    for e in events {
        let (pid, tid) = ids(e);
        if e.name == "count" {
            out.push(counter(e, pid));
            continue;
        }
        let at = e.at.as_micros() as u64;
        let args = json!({"detail": e.detail, "actor": e.actor});
        let length = e
            .duration
            .map(|d| (at.saturating_sub(d.as_micros() as u64), d))
            .or_else(|| {
                let d = fault_length(&e.detail).filter(|_| e.name.starts_with("fault."))?;
                Some((at, d))
            });
        out.push(match length {
            Some((start, d)) => json!({
                "ph": "X", "pid": pid, "tid": tid, "name": slice_name(e),
                "ts": start, "dur": d.as_micros() as u64, "args": args,
            }),
            None if e.name == "violation" => json!({
                "ph": "i", "s": "g", "pid": pid, "tid": tid, "name": format!("violation: {}", e.detail),
                "ts": at, "args": args,
            }),
            None => json!({
                "ph": "i", "s": "t", "pid": pid, "tid": tid, "name": e.name, "ts": at, "args": args,
            }),
        });
    }
    json!({ "traceEvents": out, "displayTimeUnit": "ms" })
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
            event(5, "backend", "count", "reads=1 writes=0 streams=0", None),
        ];
        let trace = chrome_trace(&events, &detail);
        let all = trace["traceEvents"].as_array().unwrap();
        let named = |ph: &str, name: &str| all.iter().find(|e| e["ph"] == ph && e["name"] == name);
        let processes: Vec<&str> = all
            .iter()
            .filter(|e| e["name"] == "process_name")
            .map(|e| e["args"]["name"].as_str().unwrap())
            .collect();
        assert_eq!(
            processes,
            ["backend", "clients", "faults", "monitors", "worker"]
        );
        let count = all
            .iter()
            .find(|e| e["ph"] == "C")
            .expect("a counter track");
        assert_eq!(count["args"]["reads"].as_u64(), Some(1));
        assert!(named("X", "get_header").is_some());
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
}

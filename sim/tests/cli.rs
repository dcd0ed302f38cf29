//! The `sim` command as a user runs it: exit codes, listings, traces, bad input.

use std::process::Command;

fn sim() -> Command {
    Command::new(env!("CARGO_BIN_EXE_sim"))
}

#[test]
fn lists_scenarios_and_bugs_one_per_line_name_first() {
    let out = sim().arg("list").output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    for scenario in scenarios::CATALOG {
        assert!(
            text.lines()
                .any(|l| l.split_whitespace().next() == Some(scenario.name)),
            "{text}"
        );
    }
    let out = sim().args(["list", "--bugs"]).output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let names: Vec<_> = text
        .lines()
        .map(|l| l.split_whitespace().next().unwrap_or(""))
        .collect();
    assert!(names.contains(&"cache-bypasses-drain"), "{text}");
    assert_eq!(names.len(), sim::bugs::PlantedBug::all().len());
}

#[test]
fn usage_errors_exit_2_and_name_what_was_wrong() {
    let out = sim()
        .args(["run", "no-such-scenario", "--seed", "1"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.contains("no-such-scenario") && err.contains("engine-mem-mixed"),
        "{err}"
    );

    let out = sim()
        .args(["explore", "all", "--seeds", "1", "--bug", "nope"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8(out.stderr)
            .unwrap()
            .contains("unknown bug")
    );

    let out = sim()
        .args(["run", "engine-mem-mixed", "--seed", "minus-one"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));

    let out = sim().arg("frobnicate").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn overrides_and_shrink_refuse_bad_input_with_exit_2() {
    for (args, named) in [
        (
            &[
                "run",
                "engine-mem-mixed",
                "--seed",
                "1",
                "--set",
                "colour=red",
            ][..],
            "no such key",
        ),
        (
            &[
                "run",
                "engine-mem-mixed",
                "--seed",
                "1",
                "--set",
                "clients=0",
            ][..],
            "--set clients=0",
        ),
        (
            &[
                "run",
                "engine-mem-mixed",
                "--seed",
                "1",
                "--set",
                "tick_ms=5",
            ][..],
            "no network",
        ),
        (
            &["shrink", "engine-mem-mixed", "--seed", "1"][..],
            "nothing to shrink",
        ),
        (
            &["shrink", "engine-mem-mixed", "--search", "3"][..],
            "no seed below 3 fails",
        ),
    ] {
        let out = sim().args(args).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(named), "{args:?}: {err}");
    }
    // An override is applied, echoed in the configuration, and the run still passes.
    let out = sim()
        .args([
            "run",
            "engine-mem-mixed",
            "--seed",
            "1",
            "--set",
            "clients=2",
            "--set",
            "faults=none",
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(stdout.contains("faults=none clients=2 "), "{stdout}");
}

/// Runs `sim run engine-mem-mixed --seed SEED --bug BUG --report DIR/fail.html`, which must
/// find the bug: the directory (kept while it lives), the page and the run's output.
fn failing_report(seed: &str, bug: &str) -> (tempfile::TempDir, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("fail.html");
    let out = sim()
        .args([
            "run",
            "engine-mem-mixed",
            "--seed",
            seed,
            "--bug",
            bug,
            "--report",
        ])
        .arg(&path)
        .output()
        .unwrap();
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "{bug} is found at seed {seed}: {stdout}"
    );
    (dir, std::fs::read_to_string(&path).unwrap(), stdout)
}

#[test]
fn a_failure_page_holds_the_violation_the_timeline_and_the_command() {
    let (_dir, page, _) = failing_report("4", "cache-bypasses-drain");
    for want in [
        "<h1>FAIL engine-mem-mixed seed 4</h1>",
        "<th>invariant</th><td>drain</td>",
        "class=violation",
        "rect class=\"ok",
        "class=mark",
        "--seed 4 --bug cache-bypasses-drain</pre>",
    ] {
        assert!(page.contains(want), "the page lacks {want}");
    }
    assert_eq!(
        page.matches("<svg").count(),
        2,
        "the whole run and the lead-up"
    );
    assert!(!page.contains("<script"), "the page is static");
}

#[test]
fn a_chrome_trace_name_is_not_doubled() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("x.chrome.json");
    let out = sim()
        .args(["run", "engine-mem-mixed", "--seed", "1", "--trace"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(path.exists() && dir.path().join("x.jsonl").exists());
    assert!(!dir.path().join("x.chrome.chrome.json").exists());
}

/// Runs `sim run SCENARIO --seed SEED --trace DIR/FILE`, which must pass: the directory (kept
/// while it lives), the trace path and the run's output.
fn passing_traced_run(
    scenario: &str,
    seed: &str,
    file: &str,
) -> (tempfile::TempDir, std::path::PathBuf, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(file);
    let out = sim()
        .args(["run", scenario, "--seed", seed, "--trace"])
        .arg(&path)
        .output()
        .unwrap();
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(out.status.success(), "{stdout}");
    (dir, path, stdout)
}

#[test]
fn a_passing_run_exits_0_and_writes_both_trace_files() {
    let (_dir, path, stdout) = passing_traced_run("engine-mem-mixed", "1", "run.jsonl");
    assert!(
        stdout.starts_with("PASS scenario=engine-mem-mixed seed=1"),
        "{stdout}"
    );
    let lines = std::fs::read_to_string(&path).unwrap();
    let mut events = 0;
    for line in lines.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        assert!(
            v["t_us"].is_u64() && v["actor"].is_string() && v["event"].is_string(),
            "{line}"
        );
        events += 1;
    }
    assert!(events > 10, "only {events} events");
    let chrome: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path.with_extension("chrome.json")).unwrap())
            .unwrap();
    let trace_events = chrome["traceEvents"].as_array().unwrap();
    assert!(
        trace_events
            .iter()
            .any(|e| e["ph"] == "X" && e["dur"].is_u64()),
        "no spans in the timeline"
    );
}

/// A history violation's page shows the blamed read against the states the model allows,
/// as the checker recorded them (the report's `read:` and `allowed:` lines say the same).
#[test]
fn a_history_failure_page_shows_the_read_against_the_states_the_model_allows() {
    let (_dir, page, text) = failing_report("5", "stale-cache-after-failed-truncate");
    let line = |key: &str| {
        text.lines()
            .find_map(|l| l.trim_start().strip_prefix(key))
            .unwrap_or_else(|| panic!("no {key} line in {text}"))
            .trim()
            .to_string()
    };
    let allowed = line("allowed:");
    let read = line("read:");
    let read_value = read.rsplit_once(" read ").expect("what it read").1;
    let html = |t: &str| {
        t.replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
            .replace('"', "&quot;")
    };
    assert!(
        page.contains("<h2>The violating read</h2>"),
        "no violating read section"
    );
    assert!(
        page.contains(&format!(
            "<span class=\"state read\">{}</span>",
            html(read_value)
        )),
        "the page lacks what the read read: {read_value}"
    );
    let states: Vec<&str> = allowed.split(" | ").collect();
    assert!(
        !states.is_empty() && !allowed.is_empty(),
        "the model allows something"
    );
    for state in &states {
        assert!(
            page.contains(&format!("\">{}</span>", html(state))),
            "the page lacks the allowed state {state}"
        );
    }
    assert_eq!(
        page.matches("class=\"state allowed\"").count()
            + page.matches("class=\"state same\"").count(),
        states.len()
    );
    assert!(page.contains(" blamed\""), "the read's bar is not marked");
}

/// The remote world's Chrome trace, as a viewer loads it: its structure holds (slices nest,
/// flows pair and bind), and it has the tracks, named slices, nested permit waits, flows from a
/// client's request to the worker and back, and counters the README describes.
#[test]
fn the_remote_timeline_has_its_tracks_nested_permit_waits_flows_and_counters() {
    let (_dir, path, _) = passing_traced_run("engine-remote", "3", "run.chrome.json");
    let trace: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    sim::timeline::check_structure(&trace).unwrap();
    let all = trace["traceEvents"].as_array().unwrap();
    let processes: std::collections::BTreeMap<u64, &str> = all
        .iter()
        .filter(|e| e["name"] == "process_name")
        .map(|e| {
            (
                e["pid"].as_u64().unwrap(),
                e["args"]["name"].as_str().unwrap(),
            )
        })
        .collect();
    for process in ["clients", "worker", "handle", "faults", "backend"] {
        assert!(
            processes.values().any(|p| *p == process),
            "no {process} track: {processes:?}"
        );
    }
    let process_of = |e: &serde_json::Value| processes[&e["pid"].as_u64().unwrap()];
    let slices: Vec<&serde_json::Value> = all.iter().filter(|e| e["ph"] == "X").collect();
    let named = |name: &str| {
        slices
            .iter()
            .any(|e| e["name"] == name && process_of(e) == "clients")
    };
    assert!(
        named("get_header") && named("stream_logs"),
        "ops are slices named by their op"
    );
    let bounds = |e: &serde_json::Value| {
        let ts = e["ts"].as_u64().unwrap();
        (
            e["pid"].clone(),
            e["tid"].clone(),
            ts,
            ts + e["dur"].as_u64().unwrap(),
        )
    };
    let nested_waits = slices
        .iter()
        .filter(|e| e["name"].as_str().unwrap().starts_with("permit wait ("))
        .filter(|wait| {
            let (pid, tid, start, end) = bounds(wait);
            slices.iter().any(|op| {
                let (op_pid, op_tid, op_start, op_end) = bounds(op);
                !op["name"].as_str().unwrap().starts_with("permit wait")
                    && (op_pid, op_tid) == (pid.clone(), tid.clone())
                    && op_start <= start
                    && end <= op_end
            })
        })
        .count();
    assert!(
        nested_waits > 10,
        "only {nested_waits} permit waits nested in an op"
    );
    let flows = |ph: &str, name: &str, process: &str| {
        all.iter()
            .filter(|e| e["ph"] == ph && e["name"] == name && process_of(e) == process)
            .count()
    };
    let requests = flows("s", "request", "clients");
    assert!(requests > 10, "only {requests} request arrows");
    assert_eq!(flows("f", "request", "worker"), requests);
    assert_eq!(
        flows("s", "reply", "worker"),
        flows("f", "reply", "clients")
    );
    let counters: std::collections::BTreeSet<&str> = all
        .iter()
        .filter(|e| e["ph"] == "C")
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    for counter in [
        "permits in use (handle)",
        "cache entries (handle)",
        "work running (worker-backend)",
    ] {
        assert!(
            counters.contains(counter),
            "no {counter} counter: {counters:?}"
        );
    }
}

#[test]
fn explore_json_is_one_summary_object() {
    let out = sim()
        .args([
            "explore",
            "engine-mem-mixed",
            "--seeds",
            "2",
            "--jobs",
            "1",
            "--json",
        ])
        .output()
        .unwrap();
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["runs"], 2);
    assert_eq!(v["failures"].as_array().map(Vec::len), Some(0));
    for key in [
        "scenarios",
        "seeds",
        "simulated_seconds",
        "wall_seconds",
        "seeds_per_second",
        "worlds",
    ] {
        assert!(!v[key].is_null(), "missing {key}");
    }
}

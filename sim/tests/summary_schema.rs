//! `sim explore --json` against its documented schema (`sim/explore-summary.schema.json`),
//! with a passing and a failing exploration; and `--junit` as well-formed JUnit.
//!
//! The validator below covers the JSON Schema keywords the schema uses (`type`, `enum`,
//! `minimum`, `required`, `properties`, `additionalProperties`, `items`, `$ref` into
//! `$defs`), so a field added, renamed or retyped on either side fails this test.

use std::process::Command;

use serde_json::Value;

const SIM: &str = env!("CARGO_BIN_EXE_sim");

fn schema() -> Value {
    let text = include_str!("../explore-summary.schema.json");
    serde_json::from_str(text).expect("the schema is JSON")
}

fn type_matches(name: &str, v: &Value) -> bool {
    match name {
        "object" => v.is_object(),
        "array" => v.is_array(),
        "string" => v.is_string(),
        "integer" => v.is_u64() || v.is_i64(),
        "number" => v.is_number(),
        "boolean" => v.is_boolean(),
        "null" => v.is_null(),
        other => panic!("schema type {other} not supported by this validator"),
    }
}

/// Every way `v` breaks `s`, with its path.
fn validate(root: &Value, s: &Value, v: &Value, path: &str, errors: &mut Vec<String>) {
    if let Some(r) = s.get("$ref").and_then(Value::as_str) {
        let name = r.trim_start_matches("#/$defs/");
        return validate(root, &root["$defs"][name], v, path, errors);
    }
    if let Some(t) = s.get("type") {
        let ok = match t {
            Value::String(name) => type_matches(name, v),
            Value::Array(names) => names
                .iter()
                .any(|n| type_matches(n.as_str().unwrap_or(""), v)),
            _ => false,
        };
        if !ok {
            errors.push(format!("{path}: {v} is not of type {t}"));
            return;
        }
    }
    if let Some(Value::Array(allowed)) = s.get("enum")
        && !allowed.contains(v)
    {
        errors.push(format!("{path}: {v} not in {allowed:?}"));
    }
    if let (Some(min), Some(n)) = (s.get("minimum").and_then(Value::as_f64), v.as_f64())
        && n < min
    {
        errors.push(format!("{path}: {n} below {min}"));
    }
    if let Value::Object(fields) = v {
        for name in s
            .get("required")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let name = name.as_str().unwrap_or("");
            if !fields.contains_key(name) {
                errors.push(format!("{path}: missing {name}"));
            }
        }
        for (name, field) in fields {
            let here = format!("{path}.{name}");
            match (
                s.get("properties").and_then(|p| p.get(name)),
                s.get("additionalProperties"),
            ) {
                (Some(sub), _) => validate(root, sub, field, &here, errors),
                (None, Some(Value::Bool(false))) => {
                    errors.push(format!("{here}: not in the schema"))
                }
                (None, Some(sub @ Value::Object(_))) => validate(root, sub, field, &here, errors),
                (None, _) => {}
            }
        }
    }
    if let (Value::Array(items), Some(sub)) = (v, s.get("items")) {
        for (i, item) in items.iter().enumerate() {
            validate(root, sub, item, &format!("{path}[{i}]"), errors);
        }
    }
}

fn explore_json(args: &[&str]) -> (Option<i32>, Value) {
    let out = Command::new(SIM)
        .args([
            "explore",
            "engine-mem-mixed",
            "--seeds",
            "2",
            "--no-regressions",
            "--json",
        ])
        .args(args)
        .output()
        .expect("sim runs");
    let v = serde_json::from_slice(&out.stdout).expect("stdout is one JSON object");
    (out.status.code(), v)
}

#[test]
fn the_json_summary_follows_its_schema_passing_and_failing() {
    let schema = schema();
    let (code, passing) = explore_json(&[]);
    assert_eq!(code, Some(0));
    let (code, failing) = explore_json(&["--bug", "drain-one-permit-short"]);
    assert_eq!(code, Some(1));
    assert!(
        failing["failures"]
            .as_array()
            .is_some_and(|f| !f.is_empty())
    );
    for summary in [&passing, &failing] {
        let mut errors = Vec::new();
        validate(&schema, &schema, summary, "$", &mut errors);
        assert!(errors.is_empty(), "{errors:#?}");
    }
    // The validator can fail: a renamed field is caught.
    let mut renamed = passing.clone();
    let runs = renamed["runs"].take();
    renamed["run_count"] = runs;
    let mut errors = Vec::new();
    validate(&schema, &schema, &renamed, "$", &mut errors);
    assert_eq!(errors.len(), 2, "{errors:?}");
}

#[test]
fn junit_has_a_case_per_scenario_and_per_failing_seed() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let path = dir.path().join("junit.xml");
    let path_text = path.to_str().expect("a UTF-8 path");
    let (code, summary) = explore_json(&["--bug", "drain-one-permit-short", "--junit", path_text]);
    assert_eq!(code, Some(1));
    let xml = std::fs::read_to_string(&path).expect("the JUnit file was written");
    let failing = summary["failure_count"].as_u64().expect("a count");
    assert!(xml.starts_with("<?xml"));
    assert_eq!(xml.matches("<testsuite ").count(), 1);
    assert_eq!(xml.matches("<testcase ").count() as u64, 1 + failing);
    assert_eq!(xml.matches("<failure ").count() as u64, failing);
    assert_eq!(xml.matches("</testcase>").count() as u64, failing);
    assert!(xml.trim_end().ends_with("</testsuites>"));
}

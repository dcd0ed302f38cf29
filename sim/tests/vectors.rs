//! `sim vectors`: the public vector file passes; a deliberately wrong vector fails (exit 1,
//! the failure named); a malformed file is a usage error (exit 2, line and column named).

use std::path::PathBuf;
use std::process::Command;

const PUBLIC: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../shared/vectors/btail-public.txt"
);

fn run(file: &str) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_sim"))
        .arg("vectors")
        .arg(file)
        .output()
        .expect("run sim");
    (
        out.status.code().expect("exit code"),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn write(name: &str, text: &str) -> PathBuf {
    let p = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(name);
    std::fs::write(&p, text).expect("write vector file");
    p
}

#[test]
fn public_vectors_pass() {
    let (code, out, err) = run(PUBLIC);
    assert_eq!(code, 0, "stdout:\n{out}\nstderr:\n{err}");
    // 8 lines forward, 7 back; a rebuild check for every triplet.
    assert!(out.contains("15 transitions,"), "{out}");
    assert!(out.trim_end().ends_with(", 0 failures"), "{out}");
}

#[test]
fn wrong_kadj_vector_fails_and_is_named() {
    let p = write(
        "wrong-kadj.txt",
        "# wrong on purpose: KAdj(T/B:, T/B1:a) is 1:1,oo oo:1,oo\nT/B:\nT/B1:a | kadj 1:1 oo:1,oo\n",
    );
    let (code, out, _) = run(p.to_str().unwrap());
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("FAIL KAdj T/B: (line 2) → T/B1:a (line 3)"),
        "{out}"
    );
    // The annotation is asserted again on the way back.
    assert!(
        out.contains("FAIL KAdj T/B1:a (line 3) → T/B: (line 2)"),
        "{out}"
    );
    assert!(out.trim_end().ends_with(", 2 failures"), "{out}");
}

#[test]
fn malformed_vector_is_a_usage_error_with_position() {
    let p = write("malformed.txt", "T/B1:a\nT/B1:a | kadj 1:1,zz\n");
    let (code, _, err) = run(p.to_str().unwrap());
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("line 2, column 19"), "{err}");
    let (code, _, err) = run("/nonexistent/vectors.txt");
    assert_eq!(code, 2, "{err}");
}

#[test]
fn a_window_with_too_many_test_keys_is_refused_by_line() {
    // Each line alone has 9 test keys (∞ included); the two together 17, over the checks'
    // limit of 16: refused before checking, naming the line that closes the window.
    let half = |from: u32, v: &str| {
        (from..from + 8)
            .map(|k| format!("{k}:{v}"))
            .collect::<Vec<_>>()
            .join(",")
    };
    let p = write(
        "too-many-keys.txt",
        &format!("T/B{}\nT/B{}\n", half(1, "a"), half(9, "b")),
    );
    let (code, out, err) = run(p.to_str().unwrap());
    assert_eq!(code, 2, "stdout:\n{out}\nstderr:\n{err}");
    assert!(
        err.contains("line 2: its check window has 17 test keys"),
        "{err}"
    );
}

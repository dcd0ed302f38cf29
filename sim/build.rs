//! Records which build this is (commit, compiler, cargo profile), so every failure report and
//! JSON summary can say it: a seed reproduces a run only on the same build.

use std::path::Path;
use std::process::Command;

fn main() {
    let git = |args: &[&str]| {
        Command::new("git")
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .map(|s| s.trim().to_string())
    };
    let commit = git(&["rev-parse", "--short=12", "HEAD"]).unwrap_or_else(|| "unknown".into());
    // Rebuild when HEAD moves: the file HEAD, the branch it names, and the packed refs.
    for path in [
        git(&["rev-parse", "--git-path", "HEAD"]),
        git(&["symbolic-ref", "-q", "HEAD"]).and_then(|r| git(&["rev-parse", "--git-path", &r])),
        git(&["rev-parse", "--git-path", "packed-refs"]),
    ]
    .into_iter()
    .flatten()
    {
        if Path::new(&path).exists() {
            println!("cargo:rerun-if-changed={path}");
        }
    }
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let version = Command::new(rustc)
        .arg("--version")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map_or_else(|| "unknown".into(), |s| s.trim().to_string());
    // OUT_DIR is TARGET/<profile>/build/sim-*/out (or TARGET/<triple>/<profile>/...): the
    // profile's directory names it, custom profiles (`sim`) included; `PROFILE` only says
    // debug or release.
    let out = std::env::var("OUT_DIR").unwrap_or_default();
    let profile = Path::new(&out)
        .ancestors()
        .nth(3)
        .and_then(|p| p.file_name())
        .and_then(|n| n.to_str())
        .map_or_else(|| "unknown".into(), str::to_string);
    println!("cargo:rustc-env=SIM_BUILD_COMMIT={commit}");
    println!("cargo:rustc-env=SIM_BUILD_RUSTC={version}");
    println!("cargo:rustc-env=SIM_BUILD_PROFILE={profile}");
    println!("cargo:rerun-if-changed=build.rs");
}

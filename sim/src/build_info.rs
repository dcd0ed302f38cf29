//! Which build this is: a seed reproduces a run only on the same build (the same code, the
//! same compiler, the same profile), so reports and the JSON summary name it.

use serde::Serialize;

/// The build of this binary.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Build {
    /// The git commit it was built from (`unknown` outside a git checkout).
    pub commit: &'static str,
    /// `rustc --version` of the compiler.
    pub rustc: &'static str,
    /// The cargo profile (`sim`, `release`, `debug`, …).
    pub profile: &'static str,
}

/// This binary's build.
pub const BUILD: Build = Build {
    commit: env!("SIM_BUILD_COMMIT"),
    rustc: env!("SIM_BUILD_RUSTC"),
    profile: env!("SIM_BUILD_PROFILE"),
};

impl std::fmt::Display for Build {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "commit {}, {}, profile {}",
            self.commit, self.rustc, self.profile
        )
    }
}

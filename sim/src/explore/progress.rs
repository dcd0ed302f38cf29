//! Progress of a long command on stderr: a bar with rate and ETA on a terminal, and one
//! plain summary line every [`LINE_EVERY`] elsewhere (a CI log), so a long run is never silent.

use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How often a plain progress line is printed when stderr is not a terminal.
pub const LINE_EVERY: Duration = Duration::from_secs(10);

/// Where progress goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProgressMode {
    /// An indicatif bar (stderr is a terminal).
    Bar,
    /// A line every `every`.
    Lines {
        /// Interval between lines.
        every: Duration,
    },
    /// Nothing.
    Off,
}

impl ProgressMode {
    /// A bar on a terminal, lines every [`LINE_EVERY`] otherwise.
    pub fn for_stderr() -> ProgressMode {
        if std::io::stderr().is_terminal() {
            ProgressMode::Bar
        } else {
            ProgressMode::Lines { every: LINE_EVERY }
        }
    }
}

/// Progress of `total` (or an unknown number of) runs.
#[derive(Debug)]
pub struct Progress {
    label: &'static str,
    mode: ProgressMode,
    total: Option<u64>,
    bar: indicatif::ProgressBar,
    // det-ok: wall time of the command, outside every simulation, for progress only.
    started: Instant,
    last_line: Mutex<Instant>,
}

impl Progress {
    /// Starts showing progress of `label` over `total` runs.
    pub fn start(label: &'static str, mode: ProgressMode, total: Option<u64>) -> Progress {
        let bar = match (mode, total) {
            (ProgressMode::Bar, Some(total)) => bar(
                indicatif::ProgressBar::new(total),
                "{elapsed_precise} [{bar:30}] {pos}/{len} runs, {per_sec}, ETA {eta} {msg}",
            ),
            (ProgressMode::Bar, None) => bar(
                indicatif::ProgressBar::new_spinner(),
                "{elapsed_precise} {spinner} {pos} runs, {per_sec} {msg}",
            ),
            _ => indicatif::ProgressBar::hidden(),
        };
        // det-ok: see the field.
        let now = Instant::now();
        Progress {
            label,
            mode,
            total,
            bar,
            started: now,
            last_line: Mutex::new(now),
        }
    }

    /// `done` runs finished; `failing` says which failed so far ("" when none).
    pub fn update(&self, done: u64, failing: &str) {
        match self.mode {
            ProgressMode::Bar => {
                self.bar.set_position(done);
                self.bar.set_message(failing.to_string());
            }
            ProgressMode::Lines { every } => {
                let mut last = crate::lock(&self.last_line);
                if last.elapsed() >= every {
                    // det-ok: see the field.
                    *last = Instant::now();
                    eprintln!("{}", self.line(done, failing));
                }
            }
            ProgressMode::Off => {}
        }
    }

    /// Ends the display; the plain mode prints its last line.
    pub fn finish(&self, done: u64, failing: &str) {
        self.bar.finish_and_clear();
        if let ProgressMode::Lines { .. } = self.mode {
            eprintln!("{}", self.line(done, failing));
        }
    }

    fn line(&self, done: u64, failing: &str) -> String {
        let elapsed = self.started.elapsed().as_secs_f64();
        let rate = done as f64 / elapsed.max(1e-9);
        let of = self.total.map(|t| format!("/{t}")).unwrap_or_default();
        let eta = self
            .total
            .filter(|_| rate > 0.0)
            .map(|t| format!(", ETA {:.0}s", t.saturating_sub(done) as f64 / rate))
            .unwrap_or_default();
        let failing = if failing.is_empty() {
            "no failures".to_string()
        } else {
            format!("failing: {failing}")
        };
        format!(
            "{}: {done}{of} runs in {elapsed:.0}s ({rate:.0} runs/s{eta}), {failing}",
            self.label
        )
    }
}

fn bar(bar: indicatif::ProgressBar, template: &str) -> indicatif::ProgressBar {
    bar.set_style(
        indicatif::ProgressStyle::with_template(template)
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    bar
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plain_line_says_how_far_how_fast_and_what_failed() {
        let progress = Progress::start("explore", ProgressMode::Off, Some(400));
        let line = progress.line(100, "engine-mem 2");
        assert!(line.starts_with("explore: 100/400 runs in "), "{line}");
        assert!(line.contains("runs/s, ETA "), "{line}");
        assert!(line.ends_with("failing: engine-mem 2"), "{line}");
        let open = Progress::start("explore", ProgressMode::Off, None);
        let line = open.line(7, "");
        assert!(line.starts_with("explore: 7 runs in "), "{line}");
        assert!(
            !line.contains("ETA") && line.ends_with("no failures"),
            "{line}"
        );
    }
}

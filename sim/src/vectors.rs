//! The ΔBtail vector-file runner (`sim vectors FILE`).
//!
//! A vector file lists successive states of one tree (format in the file's header): one
//! topology (or `ø`) per line, optionally followed by `| kadj K:K,K,... ...` asserting the KAdj
//! of the transition into that line. The walk starts from `T/B:`, goes forward through every
//! line, then back in reverse to the first line. Every transition gets the Update check over
//! every subset of its test keys, every three consecutive states the rebuild check
//! ([`model::btail_check`]), and every annotated transition the KAdj assertion (on the way back
//! the annotation of the line being left, KAdj being symmetric).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::Path;
use std::process::ExitCode;

use btail::topology::Topology;
use btail::{KEY_MAX, Key};
use model::btail_check::{CheckReport, MAX_TEST_KEYS, Walker};

/// A KAdj as key → adjacent keys.
pub type KAdjMap = BTreeMap<Key, BTreeSet<Key>>;

/// One state line of a vector file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VectorLine {
    /// 1-based line number in the file.
    pub line: usize,
    /// The topology text as written.
    pub topo_text: String,
    /// The parsed topology (or the deleted tree for `ø`).
    pub topo: Topology,
    /// The asserted KAdj of the transition into this line, if annotated.
    pub kadj: Option<KAdjMap>,
}

/// A parse error with its 1-based position.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParseError {
    /// Line number.
    pub line: usize,
    /// Column (in characters) where the problem starts.
    pub col: usize,
    /// What is wrong.
    pub msg: String,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}, column {}: {}", self.line, self.col, self.msg)
    }
}

fn parse_key(s: &str) -> Option<Key> {
    if s == "oo" {
        Some(KEY_MAX)
    } else {
        s.parse().ok()
    }
}

/// Column (1-based, in characters) of byte offset `off` in `line`.
fn col_of(line: &str, off: usize) -> usize {
    line[..off].chars().count() + 1
}

/// Parses a `kadj` annotation body `K:K,K,... ...` starting at byte `base` of `line`.
fn parse_kadj(lineno: usize, line: &str, base: usize) -> Result<KAdjMap, ParseError> {
    let err = |off: usize, msg: String| ParseError {
        line: lineno,
        col: col_of(line, off),
        msg,
    };
    let body = &line[base..];
    let mut out = BTreeMap::new();
    let mut off = base;
    for tok in body.split(' ') {
        let tok_off = off;
        off += tok.len() + 1;
        if tok.is_empty() {
            continue;
        }
        let Some((k, vs)) = tok.split_once(':') else {
            return Err(err(tok_off, format!("kadj entry {tok:?} is not K:K,K,...")));
        };
        let key = parse_key(k).ok_or_else(|| err(tok_off, format!("bad key {k:?}")))?;
        let mut set = BTreeSet::new();
        let mut voff = tok_off + k.len() + 1;
        for v in vs.split(',') {
            set.insert(parse_key(v).ok_or_else(|| err(voff, format!("bad key {v:?}")))?);
            voff += v.len() + 1;
        }
        if out.insert(key, set).is_some() {
            return Err(err(tok_off, format!("key {k} listed twice")));
        }
    }
    Ok(out)
}

/// Parses a vector file's text.
pub fn parse(text: &str) -> Result<Vec<VectorLine>, ParseError> {
    let mut out = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let lineno = i + 1;
        let trimmed = raw.trim_end();
        if trimmed.trim_start().is_empty() || trimmed.trim_start().starts_with('#') {
            continue;
        }
        let lead = trimmed.len() - trimmed.trim_start().len();
        let (topo_part, annot) = match trimmed.find('|') {
            Some(p) => (&trimmed[..p], Some(p)),
            None => (trimmed, None),
        };
        let topo_text = topo_part.trim();
        let topo = if topo_text == "ø" {
            Topology::deleted()
        } else {
            Topology::parse(topo_text).map_err(|e| ParseError {
                line: lineno,
                col: lead + 1,
                msg: format!("bad topology {topo_text:?}: {e}"),
            })?
        };
        let kadj = match annot {
            None => None,
            Some(p) => {
                let rest = &trimmed[p + 1..];
                let start = p + 1 + (rest.len() - rest.trim_start().len());
                let Some(body) = trimmed[start..].strip_prefix("kadj") else {
                    return Err(ParseError {
                        line: lineno,
                        col: col_of(trimmed, start),
                        msg: "expected `kadj` after `|`".into(),
                    });
                };
                let _ = body;
                Some(parse_kadj(lineno, trimmed, start + "kadj".len())?)
            }
        };
        out.push(VectorLine {
            line: lineno,
            topo_text: topo_text.to_string(),
            topo,
            kadj,
        });
    }
    Ok(out)
}

/// Totals of a walk.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WalkSummary {
    /// Transitions walked.
    pub transitions: usize,
    /// Update checks run (one per transition and tracked subset).
    pub update_checks: usize,
    /// Rebuild checks run (one per state triplet and `keys1`/`keys2` choice).
    pub rebuild_checks: usize,
    /// Every failure, named.
    pub failures: Vec<String>,
}

impl WalkSummary {
    fn absorb(&mut self, what: &str, r: CheckReport, update: bool) {
        if update {
            self.update_checks += r.cases;
        } else {
            self.rebuild_checks += r.cases;
        }
        self.failures
            .extend(r.failures.into_iter().map(|f| format!("{what}: {f}")));
    }
}

/// Walks `lines` forward from `T/B:` and back (see the module doc).
pub fn walk(lines: &[VectorLine]) -> Result<WalkSummary, String> {
    let mut sum = WalkSummary::default();
    let mut w = Walker::new().map_err(|e| format!("tree env: {e}"))?;
    // The sequence of (line index, annotation asserting KAdj(prev, this)).
    let mut seq: Vec<(usize, Option<&KAdjMap>)> = Vec::new();
    for (i, l) in lines.iter().enumerate() {
        seq.push((i, l.kadj.as_ref()));
    }
    for i in (0..lines.len().saturating_sub(1)).rev() {
        // Going back from line i+1 to line i: KAdj(i+1, i) is line i+1's annotation.
        seq.push((i, lines[i + 1].kadj.as_ref()));
    }
    check_window_sizes(lines, &seq)?;
    let mut prev_name = "T/B:".to_string();
    for (i, kadj) in seq {
        let l = &lines[i];
        let name = format!("{prev_name} → {} (line {})", l.topo_text, l.line);
        w.commit(&l.topo)
            .map_err(|e| format!("{name}: commit failed: {e}"))?;
        sum.transitions += 1;
        if let Some(want) = kadj {
            match w.kadj_prev_head() {
                Ok(got) if got == *want => {}
                Ok(got) => sum.failures.push(format!(
                    "KAdj {name}: want {}, got {}",
                    kadj_txt(want),
                    kadj_txt(&got)
                )),
                Err(e) => sum.failures.push(format!("KAdj {name}: {e}")),
            }
        }
        sum.absorb(&format!("Update {name}"), w.check_update(), true);
        if let Some(r) = w.check_rebuild() {
            sum.absorb(&format!("rebuild ..→ {name}"), r, false);
        }
        prev_name = format!("{} (line {})", l.topo_text, l.line);
    }
    Ok(sum)
}

/// Refuses a walk whose check windows (a transition, or three consecutive states for the
/// rebuild check) have more test keys than the checks can enumerate: a clear error instead of
/// a run that would not end.
fn check_window_sizes(
    lines: &[VectorLine],
    seq: &[(usize, Option<&KAdjMap>)],
) -> Result<(), String> {
    for (j, &(i, _)) in seq.iter().enumerate() {
        let mut keys: BTreeSet<Key> = [KEY_MAX].into();
        for &(w, _) in &seq[j.saturating_sub(2)..=j] {
            keys.extend(lines[w].topo.bucket_keys());
        }
        if keys.len() > MAX_TEST_KEYS {
            return Err(format!(
                "line {}: its check window has {} test keys (∞ included); the checks cover \
                 every subset of them and take at most {MAX_TEST_KEYS}",
                lines[i].line,
                keys.len()
            ));
        }
    }
    Ok(())
}

fn key_txt(k: Key) -> String {
    if k == KEY_MAX {
        "oo".into()
    } else {
        k.to_string()
    }
}

fn kadj_txt(m: &KAdjMap) -> String {
    let parts: Vec<String> = m
        .iter()
        .map(|(k, vs)| {
            let vs: Vec<String> = vs.iter().map(|&v| key_txt(v)).collect();
            format!("{}:{}", key_txt(*k), vs.join(","))
        })
        .collect();
    parts.join(" ")
}

/// Runs the vector walk in `path`; prints the summary; exit 1 on any failure, 2 on bad input.
pub fn run_file(path: &Path) -> ExitCode {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("sim vectors: cannot read {}: {e}", path.display());
            return ExitCode::from(2);
        }
    };
    let lines = match parse(&text) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("sim vectors: {}: {e}", path.display());
            return ExitCode::from(2);
        }
    };
    if lines.is_empty() {
        eprintln!("sim vectors: {}: no vectors in the file", path.display());
        return ExitCode::from(2);
    }
    let sum = match walk(&lines) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("sim vectors: {}: {e}", path.display());
            return ExitCode::from(2);
        }
    };
    for f in &sum.failures {
        out(format!("FAIL {f}"));
    }
    out(format!(
        "{} transitions, {} update checks, {} rebuild checks, {} failures",
        sum.transitions,
        sum.update_checks,
        sum.rebuild_checks,
        sum.failures.len()
    ));
    if sum.failures.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

/// Prints a line; a reader that went away (`sim vectors FILE | head`) is not an error.
fn out(line: String) {
    use std::io::Write as _;
    let _ = writeln!(std::io::stdout(), "{line}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_errors_name_line_and_column() {
        let e = parse("# c\nT/B1:a\nT/B1:a | kadj 1:1,x\n").unwrap_err();
        assert_eq!((e.line, e.col), (3, 19), "{e}");
        let e = parse("T/Q\n").unwrap_err();
        assert_eq!((e.line, e.col), (1, 1), "{e}");
        let e = parse("T/B1:a | kadx 1:1\n").unwrap_err();
        assert_eq!((e.line, e.col), (1, 10), "{e}");
    }

    #[test]
    fn parse_reads_topologies_and_annotations() {
        let v = parse("T/B1:a | kadj 1:1,oo oo:1,oo\nø\n").unwrap();
        assert_eq!(v.len(), 2);
        let k = v[0].kadj.as_ref().unwrap();
        assert_eq!(k[&1], [1, KEY_MAX].into());
        assert_eq!(k[&KEY_MAX], [1, KEY_MAX].into());
        assert!(v[1].topo.is_deleted());
    }
}

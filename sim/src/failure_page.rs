//! `sim run … --report FILE.html`: one self-contained, offline HTML page about a run: its
//! configuration, the violation, a timeline of the ops of every actor (bars on a simulated
//! time axis, coloured by outcome, the faults shaded behind them, the violation a red line),
//! the same timeline zoomed onto the lead-up, the events around the violation, and the
//! reproduce command. No script and no external resource: it opens anywhere, also from a CI
//! artifact. `scripts/render-report.sh` renders one in headless Chromium.

use std::fmt::Write as _;
use std::time::Duration;

use crate::monitors::ReadMismatch;
use crate::report::RunReport;
use crate::trace::Event;

/// Width of a timeline's drawing area, in SVG pixels.
const TIMELINE_WIDTH_PX: f64 = 1100.0;
/// Height of one actor's lane, in SVG pixels.
const LANE_HEIGHT_PX: f64 = 18.0;
/// Room left of the lanes for the actors' names, in SVG pixels.
const LABEL_WIDTH_PX: f64 = 90.0;

/// Escapes text for HTML and SVG.
fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The page for `report`, drawn from every event of its run.
pub fn page(report: &RunReport, events: &[Event]) -> String {
    let verdict = if report.violation.is_some() {
        "FAIL"
    } else {
        "PASS"
    };
    let title = format!("{verdict} {} seed {}", report.scenario, report.derived.seed);
    let mut html = format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>{t}</title><style>{STYLE}</style></head><body><h1>{t}</h1>",
        t = escape(&title)
    );
    html.push_str(&summary(report));
    if let Some(read) = report.violation.as_ref().and_then(|v| v.read.as_deref()) {
        html.push_str(&violating_read(events, report, read));
    }
    let end = events.last().map_or(Duration::ZERO, |e| e.at);
    html.push_str("<h2>The whole run</h2>");
    html.push_str(&timeline(events, report, Duration::ZERO, end));
    if let Some(v) = &report.violation {
        let from =
            v.at.saturating_sub((v.at / 5).max(Duration::from_millis(20)));
        let to = v.at + (v.at / 20).max(Duration::from_millis(5));
        let _ = write!(
            html,
            "<h2>The lead-up: {:.6}s to {:.6}s</h2>",
            from.as_secs_f64(),
            to.as_secs_f64()
        );
        html.push_str(&timeline(events, report, from, to));
        html.push_str("<h2>Events around the first violation</h2><pre class=events>");
        for line in &report.around {
            let class = if line.contains(">>") {
                " class=mark"
            } else {
                ""
            };
            let _ = writeln!(html, "<span{class}>{}</span>", escape(line));
        }
        html.push_str("</pre>");
    }
    html.push_str("</body></html>\n");
    html
}

/// The configuration, the violation and the reproduce command.
fn summary(report: &RunReport) -> String {
    let mut out = String::from("<table class=summary>");
    let mut row = |key: &str, value: &str| {
        let _ = write!(out, "<tr><th>{key}</th><td>{}</td></tr>", escape(value));
    };
    row("configuration", &report.derived.to_string());
    if let Some(bug) = report.bug {
        row("planted bug", bug);
    }
    if let Some(v) = &report.violation {
        row("invariant", v.invariant.name());
        row("detail", &v.detail);
        row(
            "first violation",
            &format!("{:.6}s simulated", v.at.as_secs_f64()),
        );
    }
    row("ops", &report.stats.ops.to_string());
    row(
        "simulated",
        &format!("{:.6}s", report.stats.simulated.as_secs_f64()),
    );
    row("trace digest", &report.digest);
    row("build", &crate::build_info::BUILD.to_string());
    out.push_str("</table>");
    let _ = write!(
        out,
        "<p>Reproduce:</p><pre class=repro>{}</pre>",
        escape(&report.repro_command())
    );
    out
}

/// The read the history check blames, in the spirit of Porcupine's view of a failed
/// linearization: the read's bar among the ops around it, and what it read against every
/// answer the model gives in a state where it could have taken effect.
fn violating_read(events: &[Event], report: &RunReport, read: &ReadMismatch) -> String {
    let mut out = format!(
        "<h2>The violating read</h2><p><b>{}</b> <code>{}</code>, invoked at {:.6}s, answered at {:.6}s (outlined in red below).</p>",
        escape(&read.who),
        escape(&read.op),
        read.invoked.as_secs_f64(),
        read.answered.as_secs_f64()
    );
    let margin = read
        .answered
        .saturating_sub(read.invoked)
        .max(Duration::from_millis(5));
    let from = read.invoked.saturating_sub(margin);
    out.push_str(&timeline(events, report, from, read.answered + margin));
    let _ = write!(
        out,
        "<table class=states><tr><th>it read</th><td><span class=\"state read\">{}</span></td></tr>\
         <tr><th>the model allows where it could have taken effect ({} state{})</th><td>",
        escape(&read.read),
        read.allowed.len(),
        if read.allowed.len() == 1 { "" } else { "s" }
    );
    if read.allowed.is_empty() {
        out.push_str("none: no configuration the search reached could place the read next");
    }
    for allowed in &read.allowed {
        let class = if *allowed == read.read {
            "state same"
        } else {
            "state allowed"
        };
        let _ = write!(out, "<span class=\"{class}\">{}</span> ", escape(allowed));
    }
    out.push_str("</td></tr></table>");
    out
}

/// Whether `e` is the op of the read the history check blames.
fn is_blamed_read(e: &Event, report: &RunReport) -> bool {
    let read = report.violation.as_ref().and_then(|v| v.read.as_deref());
    read.is_some_and(|r| {
        e.actor == r.who
            && e.at == r.answered
            && e.duration.map(|d| e.at.saturating_sub(d)) == Some(r.invoked)
    })
}

/// A fault with a length, as `(kind, start, end)`.
fn fault_spans(events: &[Event]) -> Vec<(&str, Duration, Duration)> {
    events
        .iter()
        .filter_map(|e| {
            let kind = e.name.strip_prefix("fault.")?;
            let length = crate::timeline::fault_length(&e.detail)?;
            Some((kind, e.at, e.at + length))
        })
        .collect()
}

/// The faults with a length between `from` and `to`, as shaded bands `height` high.
fn faults_behind(
    events: &[Event],
    from: Duration,
    to: Duration,
    height: f64,
    x: &impl Fn(Duration) -> f64,
) -> String {
    let mut out = String::new();
    for (kind, start, end) in fault_spans(events) {
        if end >= from && start <= to {
            let _ = write!(
                out,
                "<rect class=fault x=\"{:.1}\" y=\"0\" width=\"{:.1}\" height=\"{height}\"><title>{kind} {:.6}s to {:.6}s</title></rect>",
                x(start),
                (x(end) - x(start)).max(1.0),
                start.as_secs_f64(),
                end.as_secs_f64()
            );
        }
    }
    out
}

/// An SVG timeline of `events` between `from` and `to`: a lane per actor with op bars.
fn timeline(events: &[Event], report: &RunReport, from: Duration, to: Duration) -> String {
    let mut actors: Vec<&str> = events
        .iter()
        .filter(|e| e.duration.is_some())
        .map(|e| e.actor.as_str())
        .collect();
    actors.sort_unstable();
    actors.dedup();
    let span = (to.saturating_sub(from)).as_secs_f64().max(1e-6);
    let x = |t: Duration| {
        LABEL_WIDTH_PX
            + (t.as_secs_f64() - from.as_secs_f64()).clamp(0.0, span) / span * TIMELINE_WIDTH_PX
    };
    let height = LANE_HEIGHT_PX * (actors.len() as f64 + 1.0);
    let mut svg = format!(
        "<svg width=\"{}\" height=\"{height}\" xmlns=\"http://www.w3.org/2000/svg\">",
        LABEL_WIDTH_PX + TIMELINE_WIDTH_PX + 10.0
    );
    svg.push_str(&faults_behind(events, from, to, height, &x));
    for (lane, actor) in actors.iter().enumerate() {
        let y = LANE_HEIGHT_PX * lane as f64;
        let _ = write!(
            svg,
            "<text x=\"2\" y=\"{:.1}\">{}</text>",
            y + 13.0,
            escape(actor)
        );
    }
    for e in events.iter().filter(|e| e.at >= from) {
        let Some(took) = e.duration else { continue };
        let start = e.at.saturating_sub(took);
        if start > to {
            continue;
        }
        let lane = actors.binary_search(&e.actor.as_str()).unwrap_or(0);
        svg.push_str(&op_bar(
            e,
            x(start),
            x(e.at),
            LANE_HEIGHT_PX * lane as f64,
            report,
        ));
    }
    if let Some(v) = report
        .violation
        .as_ref()
        .filter(|v| v.at >= from && v.at <= to)
    {
        let _ = write!(
            svg,
            "<line class=violation x1=\"{0:.1}\" x2=\"{0:.1}\" y1=\"0\" y2=\"{height}\"><title>{1}</title></line>",
            x(v.at),
            escape(&v.to_string())
        );
    }
    let _ = write!(
        svg,
        "<text x=\"{LABEL_WIDTH_PX}\" y=\"{:.1}\">{:.6}s</text><text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{:.6}s</text></svg>",
        height - 4.0,
        from.as_secs_f64(),
        LABEL_WIDTH_PX + TIMELINE_WIDTH_PX,
        height - 4.0,
        to.as_secs_f64()
    );
    svg
}

/// One op's bar: its outcome picks the colour; an op that ends at the violation's time is
/// outlined.
fn op_bar(e: &Event, x0: f64, x1: f64, y: f64, report: &RunReport) -> String {
    let outcome = e
        .detail
        .split_whitespace()
        .find_map(|kv| kv.strip_prefix("outcome="))
        .unwrap_or("");
    let class = if outcome == "ok" {
        "ok"
    } else if outcome.contains("indeterminate") {
        "unknown"
    } else {
        "err"
    };
    let at_violation = report.violation.as_ref().is_some_and(|v| v.at == e.at);
    let blamed = if is_blamed_read(e, report) {
        " blamed"
    } else {
        ""
    };
    format!(
        "<rect class=\"{class}{}{blamed}\" x=\"{x0:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{:.1}\"><title>{:.6}s {}</title></rect>",
        if at_violation { " hit" } else { "" },
        y + 3.0,
        (x1 - x0).max(1.0),
        LANE_HEIGHT_PX - 6.0,
        e.at.as_secs_f64(),
        escape(&e.detail)
    )
}

/// The page's one stylesheet.
const STYLE: &str = "body{font:14px sans-serif;margin:1.5em}pre{background:#f4f4f4;padding:.5em;overflow-x:auto}\
table.summary th{text-align:left;padding-right:1em;vertical-align:top}\
rect.ok{fill:#6aa84f}rect.err{fill:#e69138}rect.unknown{fill:#999}rect.hit{stroke:#c00;stroke-width:2}\
rect.fault{fill:#cfe2f3;opacity:.6}line.violation{stroke:#c00;stroke-width:2}\
svg text{font:11px monospace}pre.events span.mark{background:#f4cccc;font-weight:bold}\
pre.repro{font-weight:bold}rect.blamed{stroke:#c00;stroke-width:4;fill:#e06666}\
table.states th{text-align:left;padding-right:1em;font-weight:normal}\
span.state{display:inline-block;font:12px monospace;padding:.2em .5em;margin:.15em;border-radius:3px;border:2px solid}\
span.read{background:#f4cccc;border-color:#c00}span.allowed{background:#d9ead3;border-color:#6aa84f}\
span.same{background:#fff2cc;border-color:#bf9000}";

#[cfg(test)]
mod tests {
    use super::escape;

    #[test]
    fn text_is_escaped() {
        assert_eq!(
            escape("<a href=\"x\">&</a>"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&lt;/a&gt;"
        );
    }
}

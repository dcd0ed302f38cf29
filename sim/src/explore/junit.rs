//! The summary as JUnit XML, the test-report format every CI system displays: one test suite
//! per scenario, one passing test case for its passing seeds, and one failing test case per
//! failing seed (with the invariant, the detail and the reproduce command where the full
//! record was kept).

use std::fmt::Write as _;

use super::Summary;

/// The JUnit XML document of `summary`.
pub fn to_xml(summary: &Summary) -> String {
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(
        out,
        "<testsuites name=\"sim explore\" tests=\"{}\" failures=\"{}\" time=\"{:.3}\">",
        summary.per_scenario.len() as u64 + summary.failure_count,
        summary.failure_count,
        summary.wall_seconds
    );
    for (scenario, tally) in &summary.per_scenario {
        let _ = writeln!(
            out,
            "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{}\" time=\"{:.3}\">",
            escape(scenario),
            1 + tally.failures,
            tally.failures,
            tally.run_wall_seconds
        );
        let _ = writeln!(
            out,
            "    <testcase classname=\"{}\" name=\"{} passing seeds ({})\"/>",
            escape(scenario),
            tally.runs - tally.failures,
            escape(&summary.build.to_string())
        );
        for seed in &tally.failing_seeds {
            failing_case(&mut out, summary, scenario, *seed);
        }
        out.push_str("  </testsuite>\n");
    }
    out.push_str("</testsuites>\n");
    out
}

fn failing_case(out: &mut String, summary: &Summary, scenario: &str, seed: u64) {
    let record = summary
        .failures
        .iter()
        .find(|r| r.scenario == scenario && r.seed == seed);
    let _ = writeln!(
        out,
        "    <testcase classname=\"{}\" name=\"seed {seed}\">",
        escape(scenario)
    );
    match record {
        Some(r) => {
            let _ = writeln!(
                out,
                "      <failure type=\"{}\" message=\"{}\">config: {}\nat: {:.6}s simulated\ndigest: {}\nreproduce: {}</failure>",
                escape(r.invariant),
                escape(&format!("{}: {}", r.invariant, r.detail)),
                escape(&r.config),
                r.at_seconds,
                escape(&r.digest),
                escape(&r.reproduce)
            );
        }
        None => {
            let _ = writeln!(
                out,
                "      <failure type=\"failure\" message=\"failed (its full record was past the first {} kept)\">reproduce: {}</failure>",
                super::tally::MAX_RECORDED_FAILURES,
                escape(&crate::report::repro_command(scenario, seed, summary.bug))
            );
        }
    }
    out.push_str("    </testcase>\n");
}

/// Escapes text for an XML attribute or element; drops characters XML 1.0 cannot carry.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\n' => out.push_str("&#10;"),
            '\t' | '\r' => out.push(' '),
            c if (c as u32) < 0x20 => {}
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_leaves_no_markup_and_no_control_characters() {
        let text = escape("a<b>&\"c'\u{1}\nd");
        assert_eq!(text, "a&lt;b&gt;&amp;&quot;c&apos;&#10;d");
    }
}

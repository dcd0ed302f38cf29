#!/usr/bin/env python3
"""Prints the score of scripts/mutants.sh runs from the outcome files of their passes.

    python3 scripts/mutants-summary.py [--sample FILE] OUT_DIR...

Each OUT_DIR is a $MUTANTS_OUT of scripts/mutants.sh: its pass1/ and pass2/ outcomes (either
may be absent). Later directories win: a run that was resumed in parts, re-run after a gap was
closed, or whose pass 2 ran separately is summarized by naming its directories in order. A
mutant's result is its last pass-1 result (the main job), unless that missed it: then its last
pass-2 result (the mutated crate's tests), if any. --sample FILE (one mutant name a line, as
`cargo mutants --list` prints them) keeps only the mutants it names. The score is killed
(caught or timed out) over viable (all but unviable). A "caught" whose log shows no failing
test is flagged: that would be the test command failing, not a test.
"""

import json
import os
import statistics
import sys
from collections import Counter, defaultdict

KIND = {
    "CaughtMutant": "caught",
    "MissedMutant": "missed",
    "Timeout": "timeout",
    "Unviable": "unviable",
}


def outcomes(out, name):
    """The mutant outcomes of one pass, by mutant name, or {} when the pass did not run."""
    path = os.path.join(out, name, "mutants.out", "outcomes.json")
    if not os.path.exists(path):
        return {}
    with open(path, encoding="utf-8") as f:
        data = json.load(f)
    found = {}
    for o in data["outcomes"]:
        mutant = o["scenario"].get("Mutant") if isinstance(o["scenario"], dict) else None
        if mutant is not None:
            o["dir"] = os.path.join(out, name, "mutants.out")
            found[mutant["name"]] = o
    return found


def test_failed_in_log(o):
    """Whether the mutant's log shows a test that failed (not only a failing command)."""
    with open(os.path.join(o["dir"], o["log_path"]), encoding="utf-8", errors="replace") as f:
        log = f.read()
    return "test result: FAILED" in log or "panicked at" in log


def phase_seconds(o, phase):
    return sum(p["duration"] for p in o.get("phase_results", []) if p["phase"] == phase)


def parse_args(argv):
    sample, dirs = None, []
    while argv:
        arg = argv.pop(0)
        if arg == "--sample":
            with open(argv.pop(0), encoding="utf-8") as f:
                sample = {line.strip() for line in f if line.strip()}
        else:
            dirs.append(arg)
    if not dirs:
        sys.exit(__doc__)
    return sample, dirs


def merge(sample, dirs):
    """Each mutant's last outcome per pass, over the directories in order."""
    first, second = {}, {}
    for out in dirs:
        first.update(outcomes(out, "pass1"))
        second.update(outcomes(out, "pass2"))
    if sample is not None:
        first = {n: o for n, o in first.items() if n in sample}
        missing = sample - set(first)
        if missing:
            print(f"not run yet: {len(missing)} mutants of the sample")
    return first, second


def main():
    sample, dirs = parse_args(sys.argv[1:])
    first, second = merge(sample, dirs)
    final, by, suspicious = {}, {}, []
    for name, o in first.items():
        kind, by[name] = KIND[o["summary"]], "main job"
        if kind == "missed" and name in second:
            o = second[name]
            kind, by[name] = KIND[o["summary"]], "crate tests"
        if kind == "caught" and not test_failed_in_log(o):
            suspicious.append(name)
        final[name] = kind
    totals = Counter(final.values())
    viable = len(final) - totals["unviable"]
    killed = totals["caught"] + totals["timeout"]
    print(f"mutants: {len(final)}  caught: {totals['caught']}  missed: {totals['missed']}  "
          f"timeout: {totals['timeout']}  unviable: {totals['unviable']}")
    by_main = sum(1 for n, k in final.items() if k in ("caught", "timeout") and by[n] == "main job")
    print(f"killed by the main job: {by_main}; by the crate's tests after it: {killed - by_main}")
    if viable:
        print(f"score: {killed}/{viable} viable mutants killed = {100 * killed / viable:.1f}%"
              f" (the main job alone: {100 * by_main / viable:.1f}%)")
    per_file = defaultdict(Counter)
    for name, kind in final.items():
        per_file[name.split(":")[0]][kind] += 1
    print("\nper file: caught / missed / timeout / unviable")
    for path in sorted(per_file):
        c = per_file[path]
        print(f"  {path:<30} {c['caught']:>3} {c['missed']:>3} {c['timeout']:>3} {c['unviable']:>3}")
    for label, runs in (("pass 1 (main job)", first), ("pass 2 (crate tests)", second)):
        viable_runs = [o for o in runs.values() if KIND[o["summary"]] != "unviable"]
        if viable_runs:
            build = statistics.median(phase_seconds(o, "Build") for o in viable_runs)
            test = statistics.median(phase_seconds(o, "Test") for o in viable_runs)
            print(f"{label}: {len(runs)} mutants, median {build:.0f}s build + {test:.0f}s test")
    print("\nsurvivors (* not tried by pass 2):")
    for name in sorted(n for n, k in final.items() if k == "missed"):
        print(f"  {'' if name in second else '* '}{name}")
    if suspicious:
        print("\ncaught without a failing test in the log (check the test command):")
        for name in suspicious:
            print(f"  {name}")


if __name__ == "__main__":
    main()

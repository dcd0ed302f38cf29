#!/usr/bin/env python3
"""Prints the table of ratios from one criterion run of the benches crate.

Reads every `criterion/<group>/<function>/new/{benchmark,estimates}.json` under the target
directory (argument, else $CARGO_TARGET_DIR, else ./target) and prints, per group, each
function's median time beside the group's baseline: `raw` (the backend called directly),
`in_process` (the backend without the network), `full_diff` (ΔBtail's alternative) or `fsync`
(the disk's limit). `× base` is the time ratio (the handle's overhead: 1.00 is none);
`rate` is its inverse, the function's rate as a fraction of the baseline's (for durable
appends, appends per second over fsyncs per second).

    cargo bench -p benches -- --warm-up-time 1 --measurement-time 3
    python3 scripts/bench-ratios.py [TARGET_DIR] [--markdown]
"""

import json
import os
import re
import sys
from pathlib import Path

BASELINES = ("raw", "in_process", "full_diff", "fsync")


def load(root):
    """{group: {function: median ns}} from the latest run's estimates."""
    groups = {}
    for bench in sorted(root.glob("**/new/benchmark.json")):
        meta = json.loads(bench.read_text())
        estimates = json.loads((bench.parent / "estimates.json").read_text())
        function = meta.get("function_id") or meta["full_id"]
        groups.setdefault(meta["group_id"], {})[function] = estimates["median"]["point_estimate"]
    return groups


def human(ns):
    for unit, scale in (("s", 1e9), ("ms", 1e6), ("µs", 1e3)):
        if ns >= scale:
            return f"{ns / scale:.3g} {unit}"
    return f"{ns:.3g} ns"


def natural(name):
    """Sorts `append_2` before `append_16`."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


def rows(groups):
    for group, functions in groups.items():
        base = next((b for b in BASELINES if b in functions), None)
        order = sorted(functions, key=lambda f: (f != base, natural(f)))
        for function in order:
            ns = functions[function]
            if base is None or function == base:
                yield group, function, ns, "", ""
            else:
                ratio = ns / functions[base]
                yield group, function, ns, f"{ratio:.3g}× {base}", f"{1 / ratio:.3g}"


def main(argv):
    markdown = "--markdown" in argv
    args = [a for a in argv if a != "--markdown"]
    target = Path(args[0] if args else os.environ.get("CARGO_TARGET_DIR", "target"))
    root = target / "criterion"
    if not root.is_dir():
        sys.exit(f"no criterion results under {root}: run `cargo bench -p benches` first")
    table = list(rows(load(root)))
    header = ("group", "function", "median", "× base", "rate")
    if markdown:
        print("| " + " | ".join(header) + " |")
        print("|" + "---|" * len(header))
        for row in table:
            print(f"| {row[0]} | {row[1]} | {human(row[2])} | {row[3]} | {row[4]} |")
        return
    print(f"{header[0]:<40} {header[1]:<18} {header[2]:>10}  {header[3]:<22} {header[4]}")
    for group, function, ns, ratio, rate in table:
        print(f"{group:<40} {function:<18} {human(ns):>10}  {ratio:<22} {rate}")


if __name__ == "__main__":
    main(sys.argv[1:])

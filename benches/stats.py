#!/usr/bin/env python3
"""Summaries for scripts/bench.sh: median (min–max) of measured runs, and ratios.

  stats.py codegen RESULTS_DIR   reads codegen-*.tsv (tool, run, seconds, max_rss_kb) and
                                 options.tsv (tool, options, run, seconds, max_rss_kb),
                                 writes codegen.json and codegen.md
  stats.py tree RESULTS_DIR      reads tree.tsv (tool, run, seconds, max_rss_kb): the whole
                                 google-proto-files tree, writes tree.json and tree.md
  stats.py build RESULTS_DIR     reads build.tsv (case, run, seconds, ran_build_script),
                                 writes build.json and build.md
"""
import json
import statistics
import sys
from collections import defaultdict
from pathlib import Path


def fig(values):
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "runs": len(values)}


def show(f, d=2):
    return f"{f['median']:.{d}f} ({f['min']:.{d}f}–{f['max']:.{d}f})"


def rows(path):
    return [line.split("\t") for line in Path(path).read_text().splitlines() if line.strip()]


def routes(path):
    """Median figures per route, the axion-gen / protoc route ratios, and the markdown table."""
    runs = defaultdict(lambda: ([], []))
    for tool, _run, secs, kb in rows(path):
        runs[tool][0].append(float(secs))
        runs[tool][1].append(float(kb) / 1024)
    result = {tool: {"wall_s": fig(w), "peak_rss_mb": fig(m)} for tool, (w, m) in runs.items()}
    ax, pr = result["axion-gen"], result["protoc + tonic-prost-build"]
    result["ratio_wall_axion_over_protoc_route"] = ax["wall_s"]["median"] / pr["wall_s"]["median"]
    result["ratio_rss_axion_over_protoc_route"] = ax["peak_rss_mb"]["median"] / pr["peak_rss_mb"]["median"]
    result["target_wall_ratio_le_0_5_met"] = result["ratio_wall_axion_over_protoc_route"] <= 0.5
    result["target_rss_ratio_le_1_met"] = result["ratio_rss_axion_over_protoc_route"] <= 1.0
    md = ["| codegen route | wall s | peak RSS MB |", "|---|---|---|"]
    for tool in runs:
        md.append(f"| {tool} | {show(result[tool]['wall_s'])} | {show(result[tool]['peak_rss_mb'], 0)} |")
    md.append("")
    md.append(
        f"ratio axion-gen / protoc route: wall {result['ratio_wall_axion_over_protoc_route']:.2f} "
        f"(target ≤ 0.5: {'met' if result['target_wall_ratio_le_0_5_met'] else 'NOT met'}), "
        f"peak RSS {result['ratio_rss_axion_over_protoc_route']:.2f} "
        f"(target ≤ 1: {'met' if result['target_rss_ratio_le_1_met'] else 'NOT met'})"
    )
    return result, md


def tree(out):
    result, md = routes(out / "tree.tsv")
    (out / "tree.json").write_text(json.dumps(result, indent=2) + "\n")
    (out / "tree.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))


def codegen(out):
    result, md = routes(out / "codegen.tsv")
    opts = defaultdict(lambda: ([], []))
    for tool, n, _run, secs, kb in rows(out / "options.tsv"):
        opts[(tool, int(n))][0].append(float(secs))
        opts[(tool, int(n))][1].append(float(kb) / 1024)
    result["options_scaling"] = [
        {"tool": t, "options": n, "wall_s": fig(w), "peak_rss_mb": fig(m)}
        for (t, n), (w, m) in sorted(opts.items())
    ]
    (out / "codegen.json").write_text(json.dumps(result, indent=2) + "\n")
    md += ["", "| file with N custom options | tool | wall s | peak RSS MB |", "|---|---|---|---|"]
    for o in result["options_scaling"]:
        md.append(f"| {o['options']} | {o['tool']} | {show(o['wall_s'])} | {show(o['peak_rss_mb'], 0)} |")
    (out / "codegen.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))


def build(out):
    cases = defaultdict(lambda: ([], []))
    for case, _run, secs, ran in rows(out / "build.tsv"):
        cases[case][0].append(float(secs))
        cases[case][1].append(ran == "1")
    result = {c: {"wall_s": fig(w), "build_script_ran": r} for c, (w, r) in cases.items()}
    noop = result.get("no-op", {}).get("build_script_ran", [True])
    touched = result.get("touch one .proto", {}).get("build_script_ran", [False])
    result["noop_skips_build_script"] = not any(noop)
    result["touch_reruns_build_script"] = all(touched)
    (out / "build.json").write_text(json.dumps(result, indent=2) + "\n")
    md = ["| cargo build -p axion-gen --lib, after a build | wall s | build.rs ran |", "|---|---|---|"]
    for c, (w, r) in cases.items():
        md.append(f"| {c} | {show(result[c]['wall_s'])} | {sum(r)} of {len(r)} runs |")
    (out / "build.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))


if __name__ == "__main__":
    {"codegen": codegen, "tree": tree, "build": build}[sys.argv[1]](Path(sys.argv[2]))

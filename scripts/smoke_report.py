"""Aggregates the smoke runs' JSON results into one report (and an optional Markdown summary).

Usage: smoke_report.py WORK_DIR RUNS DRY_RUN EXAMPLE [MARKDOWN_OUT]
"""
import json
import math
import os
import sys

PHASES = ["install", "pack", "describe", "upload", "rollout", "total"]


def percentile(values, p):
    """Nearest-rank percentile of a non-empty list."""
    ordered = sorted(values)
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[rank - 1]


def phases_of(result, wall_ms, dry_run):
    if not dry_run:
        phases = dict(result["phase_durations_ms"])
        phases["total"] = wall_ms
        return phases
    build = result["durations_ms"]
    return {
        "install": build.get("install", 0),
        "pack": build.get("detect", 0) + build.get("pack", 0),
        "describe": build.get("describe", 0) + build.get("write", 0),
        "upload": None,
        "rollout": None,
        "total": wall_ms,
    }


def main():
    work, runs, dry_run, example = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "1", sys.argv[4]
    markdown_out = sys.argv[5] if len(sys.argv) > 5 else ""
    results = []
    for run in range(1, runs + 1):
        with open(os.path.join(work, f"run-{run}", "result.json")) as f:
            result = json.load(f)
        with open(os.path.join(work, f"run-{run}", "wall_ms")) as f:
            wall_ms = int(f.read())
        results.append({
            "run": run,
            "digest": result["digest"],
            "size_bytes": result["size_bytes"],
            "install_cached": (result.get("install") or {}).get("cached"),
            "uploaded_bytes": result.get("uploaded_bytes"),
            "status": result.get("status"),
            "url": result.get("url"),
            "phases_ms": phases_of(result, wall_ms, dry_run),
        })
    summary = {}
    for phase in PHASES:
        values = [r["phases_ms"][phase] for r in results if r["phases_ms"][phase] is not None]
        summary[phase] = {"p50": percentile(values, 50), "p95": percentile(values, 95)} if values else None
    report = {
        "example": os.path.basename(example.rstrip("/")),
        "runs": runs,
        "dry_run": dry_run,
        "phases_ms": summary,
        "results": results,
    }
    print(json.dumps(report, indent=2))
    if markdown_out:
        lines = [
            f"# Smoke: {report['example']}",
            "",
            f"{runs} run(s){' (dry run: stopped before upload)' if dry_run else ''}, each against a fresh embedded server.",
            "",
            "| phase | p50 (ms) | p95 (ms) |",
            "|---|---:|---:|",
        ]
        for phase in PHASES:
            s = summary[phase]
            lines.append(f"| {phase} | {s['p50'] if s else '-'} | {s['p95'] if s else '-'} |")
        last = results[-1]
        lines += ["", f"Digest `sha256:{last['digest']}`, {last['size_bytes']} bytes."]
        with open(markdown_out, "w") as f:
            f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()

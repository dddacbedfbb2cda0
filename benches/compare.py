#!/usr/bin/env python3
"""Compare a benchmark results file with the committed baseline of the same benchmark.

Usage: compare.py RESULTS BASELINE

The file's "schema" field says which benchmark wrote it; both files must have the same one.

pack-bench (aether-pack-bench-v1) exits 1, naming each failing metric, when:
  * Aether's pack p95 or `aether --help` p95 is more than 20% worse than the baseline's p95
    (tar | gzip is a reference, never a failure);
  * the time ratio (aether p50 / tar|gzip p50) or the size ratio (aether / gzip -6) misses its
    target;
  * the output bytes differ between thread counts or runs.
Peak RSS and the absolute --help target are shown but do not fail the comparison.

stream-bench (aether-stream-bench-v1) exits 1, naming each failing metric, when:
  * Aether's upload p95 at a size is more than 20% worse than the baseline's p95 at that size
    (curl -T is a reference, never a failure; sizes without a baseline are only shown);
  * the throughput ratio (aether MB/s / curl MB/s, worst size) is below its target;
  * the spread of the client's peak RSS across sizes is above its target.

Exits 2 on a usage error, an unknown schema or two files of different benchmarks.
"""

import json
import sys

REGRESSION = 0.20


def load(path):
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def fmt(value, unit):
    return "-" if value is None else f"{value:.3f}{unit}"


def regressions(results, baseline, rows, failures):
    """p95 of Aether's own metrics against the baseline's p95."""
    metrics = [
        ("pack p95", "s", lambda r: r["aether_pack"]["p95_s"]),
        ("help p95", "ms", lambda r: r["help"].get("p95_ms")),
        ("tar|gzip p95 (reference)", "s", lambda r: r["tar_gzip"]["p95_s"]),
    ]
    for name, unit, get in metrics:
        new, old = get(results), get(baseline)
        if new is None or old is None:
            status = "not measured" if new is None else "no baseline"
            rows.append((name, fmt(old, unit), fmt(new, unit), "", status))
            continue
        change = new / old - 1
        status = "ok"
        if change > REGRESSION and "reference" not in name:
            status = "REGRESSED"
            failures.append(f"{name}: {new:.3f}{unit} is {change:+.0%} vs baseline {old:.3f}{unit} (limit +20%)")
        rows.append((name, fmt(old, unit), fmt(new, unit), f"{change:+.1%}", status))


def pack_targets(results, baseline, rows, failures):
    """Absolute targets: the failing ones, then the informational ones."""
    for key, name in [("time_ratio", "time ratio"), ("size_ratio", "size ratio")]:
        t, b = results[key], baseline[key]
        status = "ok" if t["met"] else f"MISSED (target <= {t['target_max']})"
        if not t["met"]:
            failures.append(f"{name}: {t['value']:.3f} misses its target of <= {t['target_max']}")
        rows.append((name, fmt(b["value"], ""), fmt(t["value"], ""), "", status))

    d = results["determinism"]
    if not d["met"]:
        failures.append(f"determinism: digests differ {d['digests_by_threads']}")
    rows.append(("identical bytes (1/2/4 threads, runs)", str(baseline["determinism"]["met"]), str(d["met"]), "",
                 "ok" if d["met"] else "FAILED"))

    rss, brss = results["peak_rss"], baseline["peak_rss"]
    rows.append(("peak RSS (info)", fmt(brss["mib"], " MiB"), fmt(rss["mib"], " MiB"), "",
                 "ok" if rss["met"] else f"over {rss['target_max_mib']} MiB target"))
    help_met = results["help"].get("met")
    if help_met is not None:
        rows.append(("help p50 (info)", fmt(baseline["help"].get("p50_ms"), "ms"), fmt(results["help"]["p50_ms"], "ms"),
                     "", "ok" if help_met else f"over {results['help']['target_max_ms']} ms target"))


def compare_pack(results, baseline, rows, failures):
    if results["tree"]["source"] != baseline["tree"]["source"]:
        old, new = baseline["tree"]["source"][:30], results["tree"]["source"][:30]
        rows.append(("tree", old, new, "", "differs: timings not comparable"))
    regressions(results, baseline, rows, failures)
    pack_targets(results, baseline, rows, failures)


def stream_regressions(results, baseline, rows, failures):
    """Per size: Aether's upload p95 against the baseline's p95 at the same size."""
    old_sizes = {size["size_bytes"]: size for size in baseline["sizes"]}
    for size in results["sizes"]:
        label = f"{size['size_mib']:.0f} MiB"
        old = old_sizes.get(size["size_bytes"])
        if old is None:
            rows.append((f"aether p95 @ {label}", "-", fmt(size["aether"]["p95_s"], "s"), "", "no baseline"))
            continue
        if size["aether_mode"]["kind"] != old["aether_mode"]["kind"]:
            rows.append((f"upload mode @ {label}", old["aether_mode"]["kind"], size["aether_mode"]["kind"], "",
                         "differs: timings not comparable"))
        for name, tool, reference in [(f"aether p95 @ {label}", "aether", False),
                                      (f"curl p95 @ {label} (reference)", "curl", True)]:
            new_s, old_s = size[tool]["p95_s"], old[tool]["p95_s"]
            change = new_s / old_s - 1
            status = "ok"
            if change > REGRESSION and not reference:
                status = "REGRESSED"
                failures.append(f"{name}: {new_s:.3f}s is {change:+.0%} vs baseline {old_s:.3f}s (limit +20%)")
            rows.append((name, fmt(old_s, "s"), fmt(new_s, "s"), f"{change:+.1%}", status))


def stream_targets(results, baseline, rows, failures):
    """Throughput against curl and the flatness of the client's memory; both fail."""
    t, b = results["throughput_ratio"], baseline["throughput_ratio"]
    status = "ok" if t["met"] else f"MISSED (target >= {t['target_min']})"
    if not t["met"]:
        failures.append(f"throughput ratio: {t['value']:.3f} at {t['at_size_mib']:.0f} MiB misses its target of "
                        f">= {t['target_min']}")
    rows.append((f"throughput ratio (worst, {t['at_size_mib']:.0f} MiB)", fmt(b["value"], ""), fmt(t["value"], ""), "",
                 status))

    rss, brss = results["rss"], baseline["rss"]
    status = "ok" if rss["met"] else f"MISSED (target <= {rss['target_max_spread_mib']} MiB)"
    if not rss["met"]:
        failures.append(f"peak RSS spread: {rss['spread_mib']:.1f} MiB across sizes misses its target of "
                        f"<= {rss['target_max_spread_mib']} MiB")
    rows.append(("peak RSS spread across sizes", fmt(brss["spread_mib"], " MiB"), fmt(rss["spread_mib"], " MiB"), "",
                 status))
    old_peaks = {peak["size_mib"]: peak["peak_mib"] for peak in brss["peak_mib_by_size"]}
    for peak in rss["peak_mib_by_size"]:
        rows.append((f"peak RSS @ {peak['size_mib']:.0f} MiB (info)", fmt(old_peaks.get(peak["size_mib"]), " MiB"),
                     fmt(peak["peak_mib"], " MiB"), "", ""))


def compare_stream(results, baseline, rows, failures):
    stream_regressions(results, baseline, rows, failures)
    stream_targets(results, baseline, rows, failures)


COMPARISONS = {
    "aether-pack-bench-v1": compare_pack,
    "aether-stream-bench-v1": compare_stream,
}


def main():
    if len(sys.argv) != 3:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    results, baseline = load(sys.argv[1]), load(sys.argv[2])
    schema = results.get("schema")
    if baseline.get("schema") != schema:
        print(f"{sys.argv[1]} is {schema!r} but {sys.argv[2]} is {baseline.get('schema')!r}", file=sys.stderr)
        return 2
    compare = COMPARISONS.get(schema)
    if compare is None:
        print(f"unknown schema {schema!r} in {sys.argv[1]} (known: {', '.join(COMPARISONS)})", file=sys.stderr)
        return 2
    rows, failures = [], []
    other = results["machine"].get("other_cpu_s", 0.0)
    if other > 5.0:
        print(f"warning: other processes used {other:.0f} CPU s during this run; its timings are not comparable\n")
    compare(results, baseline, rows, failures)

    header = ("metric", "baseline", "results", "change", "status")
    widths = [max(len(str(row[i])) for row in rows + [header]) for i in range(5)]
    for row in [header] + rows:
        print("  ".join(str(cell).ljust(width) for cell, width in zip(row, widths)).rstrip())
    if failures:
        print("\nFAILED:", file=sys.stderr)
        for failure in failures:
            print(f"  {failure}", file=sys.stderr)
        return 1
    print("\nall checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env bash
# Repack after a small change, against a cold full pack, on the benchmark tree: each run packs
# the tree with an empty block cache (cold), then edits one source file and packs again with
# the cache the cold pack filled (repack). Prints both times per run, the p50s and their ratio
# (target: repack <= 0.25x cold), the blocks that changed, and writes target/bench/repack.json.
#
# Usage: benches/repack.sh [RUNS]   (default 5; needs target/bench-tree from benches/run.sh pack)
set -euo pipefail
cd "$(dirname "$0")/.."
runs="${1:-5}"
bin="${CARGO_TARGET_DIR:-$PWD/target}/release"
[[ -x "$bin/aether" ]] || cargo build --release --locked -p aether-cli >&2
tree="$PWD/target/bench-tree"
[[ -d "$tree/node_modules" ]] || { echo "no $tree: run benches/run.sh pack first" >&2; exit 1; }
out_dir="${CARGO_TARGET_DIR:-$PWD/target}/bench"
mkdir -p "$out_dir"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cp -R "$tree" "$work/tree"

pack() { # pack CACHE_DIR OUT_DIR: prints wall milliseconds
    local start end
    start=$(date +%s%N)
    XDG_CACHE_HOME="$1" "$bin/aether" deploy "$work/tree" --pack-only --no-install --out "$2" \
        --format json >"$2.json"
    end=$(date +%s%N)
    echo $(((end - start) / 1000000))
}

cold=() repack=()
for run in $(seq 1 "$runs"); do
    rm -rf "$work/cache" "$work/a" "$work/b"
    cold+=("$(pack "$work/cache" "$work/a")")
    echo "// edit $run" >>"$work/tree/server.js"
    repack+=("$(pack "$work/cache" "$work/b")")
    echo "  run $run: cold ${cold[-1]} ms, repack ${repack[-1]} ms" >&2
done
python3 - "$work" "$out_dir/repack.json" "${cold[*]}" "${repack[*]}" <<'PY'
import json, statistics, sys
work, out, cold, repack = sys.argv[1], sys.argv[2], list(map(int, sys.argv[3].split())), list(map(int, sys.argv[4].split()))
a = json.load(open(f"{work}/a/app.tar.gz.blocks.json"))["blocks"]
b = json.load(open(f"{work}/b/app.tar.gz.blocks.json"))["blocks"]
known = {x["sha256"] for x in a}
new = [x for x in b if x["sha256"] not in known]
result = {
    "cold_ms": cold, "repack_ms": repack,
    "cold_p50_ms": statistics.median(cold), "repack_p50_ms": statistics.median(repack),
    "ratio": round(statistics.median(repack) / statistics.median(cold), 3),
    "blocks": len(b), "changed_blocks": len(new), "changed_bytes": sum(x["length"] for x in new),
    "last_cold_phases_ms": json.load(open(f"{work}/a.json"))["durations_ms"],
    "last_repack_phases_ms": json.load(open(f"{work}/b.json"))["durations_ms"],
}
json.dump(result, open(out, "w"), indent=2)
print(f"cold p50 {result['cold_p50_ms']} ms, repack p50 {result['repack_p50_ms']} ms, ratio {result['ratio']} (target <= 0.25)")
print(f"blocks {result['blocks']}, changed {result['changed_blocks']} ({result['changed_bytes']} bytes)")
print(f"phases (ms), last cold: {result['last_cold_phases_ms']}; last repack: {result['last_repack_phases_ms']}")
PY
echo "results: $out_dir/repack.json" >&2

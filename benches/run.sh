#!/usr/bin/env bash
# Usage: benches/run.sh [extra pack-bench run flags, e.g. --runs 10]
#
# Builds the release binaries, prepares the benchmark tree once under target/bench-tree (reused
# afterwards, rebuilt when the fixture lockfile changed), runs the packing benchmark into
# target/bench/pack.json and compares it with benches/baselines/pack.json.
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
export CARGO_BUILD_JOBS="${CARGO_BUILD_JOBS:-2}"

cargo build --release -p aether-cli -p aether-benches

tree="$root/target/bench-tree"
lock_sha="$(sha256sum benches/fixture/package-lock.json | cut -d' ' -f1)"
# A synthetic tree is kept too: it only exists because the registry was unreachable.
if [ -f "$tree/.tree-source" ] && { grep -q "$lock_sha" "$tree/.tree-source" || grep -q synthetic "$tree/.tree-source"; }; then
    echo "reusing $tree ($(cat "$tree/.tree-source"))"
else
    benches/prepare_tree.sh "$tree"
fi

mkdir -p target/bench
target/release/pack-bench run \
    --tree "$tree" \
    --aether-bin target/release/aether \
    --out target/bench/pack.json \
    "$@"

python3 benches/compare.py target/bench/pack.json benches/baselines/pack.json

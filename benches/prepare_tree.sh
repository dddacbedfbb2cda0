#!/usr/bin/env bash
# Usage: benches/prepare_tree.sh DIR
#
# Puts the benchmark tree in DIR: the fixture project plus its production dependencies, installed
# with `npm ci --omit=dev` from the committed lockfile when the npm registry is reachable, else
# the deterministic synthetic tree from `pack-bench synth` (same order of files and bytes).
# DIR must be empty, absent, or a tree this script made earlier (it is then replaced).
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
dir="${1:?usage: $0 DIR}"
pack_bench="${PACK_BENCH:-$here/../target/release/pack-bench}"

# Refuse to delete anything this script did not make.
if [ -e "$dir" ] && [ -n "$(ls -A "$dir")" ] && [ ! -f "$dir/.tree-source" ]; then
    echo "error: $dir is not empty and was not made by $0" >&2
    exit 1
fi
rm -rf "$dir"
mkdir -p "$dir"

# One lookup of a package the lockfile pins tells whether `npm ci` can work here.
# PACK_BENCH_TREE=synthetic forces the synthetic tree, e.g. to compare the two.
registry_reachable() {
    [ "${PACK_BENCH_TREE:-}" != synthetic ] &&
        command -v npm >/dev/null && timeout 30 npm view lodash@4.18.1 version >/dev/null 2>&1
}

if registry_reachable; then
    cp "$here/fixture/package.json" "$here/fixture/package-lock.json" "$here/fixture/server.js" "$dir/"
    (cd "$dir" && npm ci --omit=dev --no-audit --no-fund)
    lock_sha="$(sha256sum "$here/fixture/package-lock.json" | cut -d' ' -f1)"
    echo "npm ci --omit=dev of fixture/package-lock.json (sha256 $lock_sha), npm $(npm --version), node $(node --version)" \
        >"$dir/.tree-source"
else
    echo "generating the synthetic tree (registry unreachable or PACK_BENCH_TREE=synthetic)" >&2
    if [ ! -x "$pack_bench" ]; then
        echo "error: $pack_bench missing; run: cargo build --release -p aether-benches" >&2
        exit 1
    fi
    "$pack_bench" synth "$dir"
fi

files=$(find "$dir" -type f | wc -l)
bytes=$(find "$dir" -type f -printf '%s\n' | awk '{ s += $1 } END { print s }')
echo "tree ready in $dir: $files files, $((bytes / 1000000)) MB ($(cat "$dir/.tree-source"))"

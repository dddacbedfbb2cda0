#!/usr/bin/env bash
# Usage: benches/run.sh [pack|stream|stream-s3|all] [extra flags for the benchmarks' `run`, e.g. --runs 10]
#
# Runs the packing benchmark, the upload (stream) benchmark, or both (the default), each
# followed by its comparison with the committed baseline in benches/baselines/. Extra flags go
# to every benchmark that runs, so with both only flags both understand (--runs) make sense.
#
# pack:   builds `aether` and `pack-bench`, prepares the benchmark tree once under
#         target/bench-tree (reused afterwards, rebuilt when the fixture lockfile changed),
#         writes target/bench/pack.json and compares it with baselines/pack.json.
# stream: builds `aether-server` and `stream-bench`, uploads to a fresh local server, writes
#         target/bench/stream.json and compares it with baselines/stream.json.
# stream-s3: the same with the server storing artifacts on a real S3-compatible server
#         (s3s-fs, started on 127.0.0.1; installed like the tests do), so both uploads go to S3;
#         writes target/bench/stream-s3.json, compared with baselines/stream-s3.json. Not part
#         of `all`.
#
# Every selected benchmark and comparison runs even when an earlier one failed; the exit
# status is non-zero when any of them failed.
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
# Where cargo puts the release binaries (CARGO_TARGET_DIR when set).
bin="${CARGO_TARGET_DIR:-$root/target}/release"
cd "$root"
export CARGO_BUILD_JOBS="${CARGO_BUILD_JOBS:-2}"

which="all"
case "${1:-}" in
    pack | stream | stream-s3 | all) which="$1"; shift ;;
esac

# Compares RESULTS with BASELINE; a missing baseline fails, with how to create one.
compare() {
    if [ ! -f "$2" ]; then
        echo "no baseline $2: after a quiet run, copy $1 there to create it" >&2
        return 1
    fi
    python3 benches/compare.py "$1" "$2"
}

run_pack() {
    cargo build --release -p aether-cli -p aether-benches

    local tree="$root/target/bench-tree"
    local lock_sha
    lock_sha="$(sha256sum benches/fixture/package-lock.json | cut -d' ' -f1)"
    # A synthetic tree is kept too: it only exists because the registry was unreachable.
    if [ -f "$tree/.tree-source" ] && { grep -q "$lock_sha" "$tree/.tree-source" || grep -q synthetic "$tree/.tree-source"; }; then
        echo "reusing $tree ($(cat "$tree/.tree-source"))"
    else
        benches/prepare_tree.sh "$tree"
    fi

    mkdir -p target/bench
    "$bin/pack-bench" run \
        --tree "$tree" \
        --aether-bin "$bin/aether" \
        --out target/bench/pack.json \
        "$@"

    compare target/bench/pack.json benches/baselines/pack.json
}

run_stream() {
    cargo build --release -p aether-server -p aether-benches

    mkdir -p target/bench
    "$bin/stream-bench" run \
        --server-bin "$bin/aether-server" \
        --out target/bench/stream.json \
        "$@"

    compare target/bench/stream.json benches/baselines/stream.json
}

run_stream-s3() {
    cargo build --release -p aether-server -p aether-benches
    PATH="$(scripts/lib/install_s3s_fs.sh):$PATH"

    mkdir -p target/bench
    "$bin/stream-bench" run \
        --server-bin "$bin/aether-server" \
        --out target/bench/stream-s3.json \
        --storage s3 \
        "$@"

    compare target/bench/stream-s3.json benches/baselines/stream-s3.json
}

# Each benchmark runs in a subshell with `set -e`, so any failing step stops that benchmark; the
# subshell must not be part of a `||` list, which would silently switch `set -e` off inside it.
status=0
run_one() {
    local name="$1"
    shift
    set +e
    (
        set -e
        "run_$name" "$@"
    )
    local rc=$?
    set -e
    if [ "$rc" -ne 0 ]; then
        status=1
        echo "$name benchmark: FAILED (exit $rc)" >&2
    fi
}
if [ "$which" = stream-s3 ]; then
    echo "== upload (stream) benchmark, artifacts on S3"
    run_one stream-s3 "$@"
    exit "$status"
fi
if [ "$which" != stream ]; then
    echo "== packing benchmark"
    run_one pack "$@"
fi
if [ "$which" != pack ]; then
    echo "== upload (stream) benchmark"
    run_one stream "$@"
fi
exit "$status"

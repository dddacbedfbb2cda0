#!/usr/bin/env bash
# End-to-end smoke of code -> artifact -> upload -> rollout against a fresh embedded platform,
# timed per phase. Prints one JSON report on stdout; progress and logs go to stderr.
#
#   scripts/smoke_e2e.sh examples/sample-node
#
#   SMOKE_RUNS=N             repeat N times (each against a fresh server); report p50/p95
#   SMOKE_DRY_RUN=1          stop before upload (install, pack, describe only)
#   SMOKE_MARKDOWN_OUT=f.md  also write a human summary
#   AETHER_BIN, AETHER_SERVER_BIN  use prebuilt binaries instead of building release ones
set -euo pipefail
EXAMPLE="${1:?usage: scripts/smoke_e2e.sh <example-dir>}"
EXAMPLE="$(cd "$EXAMPLE" && pwd)"
cd "$(dirname "$0")/.."
source scripts/lib/embedded.sh

RUNS="${SMOKE_RUNS:-1}"
DRY_RUN="${SMOKE_DRY_RUN:-0}"
[[ "$RUNS" =~ ^[1-9][0-9]*$ ]] || { echo "SMOKE_RUNS must be a positive integer" >&2; exit 2; }
ensure_binaries

WORK="$(mktemp -d)"
SERVER_PID=""
cleanup() {
  [[ -n "$SERVER_PID" ]] && stop_server "$SERVER_PID"
  rm -rf "$WORK"
}
trap cleanup EXIT
# One dependency cache for all runs, like a developer's machine; the first run fills it.
export XDG_CACHE_HOME="$WORK/cache" XDG_CONFIG_HOME="$WORK/config"

for run in $(seq 1 "$RUNS"); do
  echo "smoke run $run/$RUNS" >&2
  project="$WORK/run-$run/project"
  mkdir -p "$project"
  cp -R "$EXAMPLE/." "$project/"
  rm -rf "$project/node_modules" "$project/.aether"
  if [[ "$DRY_RUN" == "1" ]]; then
    start=$(date +%s%N)
    "$AETHER_BIN" deploy "$project" --pack-only --format json >"$WORK/run-$run/result.json"
    end=$(date +%s%N)
  else
    token="$(random_token)"
    start_server "$WORK/run-$run/data" 0 "$token" "$WORK/run-$run/server.log"
    "$AETHER_BIN" login --api "$SERVER_URL" --token "$token" >&2
    start=$(date +%s%N)
    "$AETHER_BIN" deploy "$project" --format json >"$WORK/run-$run/result.json" || {
      echo "deploy failed:" >&2; cat "$WORK/run-$run/result.json" >&2; cat "$WORK/run-$run/server.log" >&2; exit 1; }
    end=$(date +%s%N)
    url="$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["url"])' "$WORK/run-$run/result.json")"
    curl -fsS "$url" >/dev/null || { echo "the deployed app does not answer at $url" >&2; exit 1; }
    stop_server "$SERVER_PID"
    SERVER_PID=""
  fi
  echo $(((end - start) / 1000000)) >"$WORK/run-$run/wall_ms"
done

python3 scripts/smoke_report.py "$WORK" "$RUNS" "$DRY_RUN" "$EXAMPLE" "${SMOKE_MARKDOWN_OUT:-}"

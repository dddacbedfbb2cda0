#!/usr/bin/env bash
# Load on the control plane's hot routes with wrk (bounded, loopback only), on SQLite and on
# PostgreSQL: HEAD /artifacts/{digest}, GET /apps, POST /artifacts/presign (of a stored digest)
# and POST /deployments (replays of one idempotency key), each for DURATION at 64 connections.
# Prints requests/s, p50/p99 latency, non-2xx answers and socket errors per route, the server's
# RSS before and after, and writes target/bench/load.json.
#
# Usage: benches/load.sh [DURATION] [sqlite|postgres ...]   (default: 60s, both)
# AETHER_LOAD_ROUNDS=N runs the four routes N times on one server (a soak: 10 rounds of 15s are
# 10 minutes) and prints the server's RSS after each round.
# Needs: wrk (Debian's), PostgreSQL server binaries for the postgres run, a release build
# (built here unless AETHER_SERVER_BIN points at one).
set -euo pipefail
cd "$(dirname "$0")/.."
duration="${1:-60s}"
shift || true
stores=("$@")
rounds="${AETHER_LOAD_ROUNDS:-1}"
[[ ${#stores[@]} -gt 0 ]] || stores=(sqlite postgres)
command -v wrk >/dev/null || { echo "wrk is not installed (apt-get install wrk)" >&2; exit 1; }
if [[ -z "${AETHER_SERVER_BIN:-}" ]]; then
    cargo build --release --locked -p aether-server >&2
    AETHER_SERVER_BIN="${CARGO_TARGET_DIR:-$PWD/target}/release/aether-server"
fi
server_bin="$AETHER_SERVER_BIN"
out_dir="${CARGO_TARGET_DIR:-$PWD/target}/bench"
mkdir -p "$out_dir"

work="$(mktemp -d)"
chmod 755 "$work"
pg_ctl_bin=""
cleanup() {
    stop_server
    if [[ -n "$pg_ctl_bin" ]]; then
        runuser -u postgres -- "$pg_ctl_bin" -D "$work/pg/data" -m fast -w stop >/dev/null 2>&1 || true
    fi
    rm -rf "$work"
}
# shellcheck source=scripts/lib/server.sh
source scripts/lib/server.sh
trap cleanup EXIT
token="load-admin"

# A throwaway PostgreSQL cluster on a free port; prints its URL.
start_postgres() {
    local bin
    bin="$(dirname "$(ls /usr/lib/postgresql/*/bin/pg_ctl | sort -V | tail -n 1)")"
    pg_ctl_bin="$bin/pg_ctl"
    local port
    port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
    mkdir -p "$work/pg/sockets"
    chown -R postgres:postgres "$work/pg"
    runuser -u postgres -- "$bin/initdb" -D "$work/pg/data" -A trust -U postgres -E UTF8 --no-sync >/dev/null
    runuser -u postgres -- "$pg_ctl_bin" -D "$work/pg/data" -w -l "$work/pg/log" \
        -o "-p $port -k $work/pg/sockets -c listen_addresses=127.0.0.1 -c max_connections=200 -c fsync=off" start >/dev/null
    echo "postgres://postgres@127.0.0.1:$port/postgres"
}

api() { curl -fsS -H "Authorization: Bearer $token" "$@"; }

rss_kib() { awk '/^VmRSS/ {print $2}' "/proc/$server_pid/status"; }

# One wrk run; prints a JSON object of its figures.
load() {
    local name="$1" method="$2" path="$3" body="${4:-}"
    local script="$work/$name.lua"
    {
        echo "wrk.method = \"$method\""
        echo "wrk.headers[\"Authorization\"] = \"Bearer $token\""
        if [[ -n "$body" ]]; then
            echo "wrk.headers[\"Content-Type\"] = \"application/json\""
            echo "wrk.body = [[$body]]"
        fi
        cat <<'LUA'
done = function(summary, latency, requests)
  io.write(string.format("RESULT %d %d %d %d %d %.1f %.3f %.3f\n", summary.requests,
    summary.errors.status, summary.errors.connect + summary.errors.read + summary.errors.write,
    summary.errors.timeout, summary.duration, summary.requests / (summary.duration / 1e6),
    latency:percentile(50) / 1000, latency:percentile(99) / 1000))
end
LUA
    } >"$script"
    local before after line
    before="$(rss_kib)"
    line="$(wrk -t2 -c64 -d"$duration" --timeout 5s -s "$script" "$base_url$path" | grep '^RESULT')"
    after="$(rss_kib)"
    read -r _ requests non2xx socket timeouts _ rps p50 p99 <<<"$line"
    printf '  %-28s %9.0f req/s  p50 %7.2f ms  p99 %7.2f ms  non-2xx %d  socket errors %d  timeouts %d  RSS %d -> %d KiB\n' \
        "$method ${path//$digest/\{digest\}}" "$rps" "$p50" "$p99" "$non2xx" "$socket" "$timeouts" "$before" "$after" >&2
    printf '{"route": "%s %s", "requests": %d, "requests_per_s": %s, "p50_ms": %s, "p99_ms": %s, "non_2xx": %d, "socket_errors": %d, "timeouts": %d, "rss_before_kib": %d, "rss_after_kib": %d}' \
        "$method" "$path" "$requests" "$rps" "$p50" "$p99" "$non2xx" "$socket" "$timeouts" "$before" "$after"
}

results=()
for store in "${stores[@]}"; do
    if [[ "$store" == "postgres" ]]; then
        DATABASE_URL="$(start_postgres)"
        export DATABASE_URL
    else
        unset DATABASE_URL
    fi
    # The runtime is "none": deployments are recorded and fail at once, so the load measures
    # the control plane, not app processes.
    export AETHER_RUNTIME=none
    start_server "$store" "$token:admin"
    echo "== $store: $base_url, wrk -t2 -c64 -d$duration per route" >&2
    api -X POST -H 'Content-Type: application/json' -d '{"name":"load"}' "$base_url/apps" >/dev/null
    artifact="$work/artifact.bin"
    head -c 65536 /dev/urandom >"$artifact"
    digest="$(sha256sum "$artifact" | cut -d' ' -f1)"
    declared="{\"app_name\":\"load\",\"digest\":\"$digest\",\"size_bytes\":65536}"
    presigned="$(api -X POST -H 'Content-Type: application/json' -d "$declared" "$base_url/artifacts/presign")"
    upload_url="$(python3 -c 'import json,sys; print(json.load(sys.stdin)["upload_url"])' <<<"$presigned")"
    upload_id="$(python3 -c 'import json,sys; print(json.load(sys.stdin)["upload_id"])' <<<"$presigned")"
    curl -fsS -X PUT --data-binary "@$artifact" "$upload_url" >/dev/null
    api -X POST -H 'Content-Type: application/json' \
        -d "{\"app_name\":\"load\",\"digest\":\"$digest\",\"size_bytes\":65536,\"upload_id\":\"$upload_id\"}" \
        "$base_url/artifacts/complete" >/dev/null
    deploy="{\"app_name\":\"load\",\"digest\":\"$digest\",\"idempotency_key\":\"load-replay\"}"
    api -X POST -H 'Content-Type: application/json' -d "$deploy" "$base_url/deployments" >/dev/null
    runs=()
    round_rss=()
    for round in $(seq 1 "$rounds"); do
        ((rounds == 1)) || echo "   round $round/$rounds" >&2
        runs+=(
            "$(load head HEAD "/artifacts/$digest")"
            "$(load apps GET /apps)"
            "$(load presign POST /artifacts/presign "$declared")"
            "$(load deployments POST /deployments "$deploy")"
        )
        round_rss+=("$(rss_kib)")
    done
    if ((rounds > 1)); then
        echo "   server RSS after each round (KiB): ${round_rss[*]}" >&2
    fi
    results+=("{\"store\": \"$store\", \"duration\": \"$duration\", \"rounds\": $rounds, \"connections\": 64, \"rss_after_each_round_kib\": [$(IFS=,; echo "${round_rss[*]}")], \"runs\": [$(IFS=,; echo "${runs[*]}")]}")
    if grep -q "panicked" "$server_log"; then grep -A5 panicked "$server_log" >&2; exit 1; fi
    stop_server
done
(IFS=,; echo "[${results[*]}]") | python3 -m json.tool >"$out_dir/load.json"
echo "results: $out_dir/load.json" >&2

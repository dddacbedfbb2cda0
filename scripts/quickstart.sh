#!/usr/bin/env bash
# Aether's main job on one machine: start the embedded control plane, deploy
# examples/sample-node to it with the real `aether` binary over the HTTP API, and check that
# the app answers on localhost.
#
#   ./scripts/quickstart.sh          start (or reuse) the server and deploy the sample
#   ./scripts/quickstart.sh stop     stop the server and the apps it runs
#
# State lives in .aether-local/ (database, artifacts, releases, the admin token, the CLI's
# session); delete it for a fresh start.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib/embedded.sh

STATE="$PWD/.aether-local"
PORT="${AETHER_QUICKSTART_PORT:-8080}"
export XDG_CONFIG_HOME="$STATE/config" XDG_CACHE_HOME="$STATE/cache"

if [[ "${1:-}" == "stop" ]]; then
  if [[ -f "$STATE/server.pid" ]]; then
    stop_server "$(cat "$STATE/server.pid")"
    rm -f "$STATE/server.pid"
    echo "Stopped aether-server and its apps."
  else
    echo "aether-server is not running."
  fi
  exit 0
fi

ensure_binaries
mkdir -p "$STATE"
if [[ ! -f "$STATE/admin.token" ]]; then
  (umask 077 && random_token >"$STATE/admin.token")
fi
TOKEN="$(cat "$STATE/admin.token")"
API="http://127.0.0.1:$PORT"
if [[ -f "$STATE/server.pid" ]] && kill -0 "$(cat "$STATE/server.pid")" 2>/dev/null; then
  echo "aether-server already runs at $API"
else
  start_server "$STATE/data" "$PORT" "$TOKEN" "$STATE/server.log"
  echo "$SERVER_PID" >"$STATE/server.pid"
  echo "aether-server started at $API (log: $STATE/server.log)"
fi

"$AETHER_BIN" login --api "$API" --token "$TOKEN"
"$AETHER_BIN" deploy examples/sample-node --out "$STATE/build"
URL="$("$AETHER_BIN" status --app sample-node --format json | python3 -c 'import json, sys; print(json.load(sys.stdin)["running"]["url"])')"
echo
echo "GET $URL"
curl -fsS "$URL"
echo
echo "sample-node is running at $URL"
echo "Try: XDG_CONFIG_HOME=$XDG_CONFIG_HOME XDG_CACHE_HOME=$XDG_CACHE_HOME $AETHER_BIN logs --app sample-node"
echo "Stop everything with: ./scripts/quickstart.sh stop"

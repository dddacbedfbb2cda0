#!/usr/bin/env bash
# Proves that a client generated from the control plane's own OpenAPI document compiles and
# completes a deploy: against a fresh embedded server, generates TypeScript types from its
# /openapi.json (openapi-typescript), compiles tests/contract/client/deploy.ts against them with
# strict tsc (a type error fails: the generated types must fit the code), then runs it — app,
# presign, upload, complete, deployment, poll until running, GET the app — through openapi-fetch.
#
# Usage: scripts/generated_client.sh
# Needs: the aether-server binary built (cargo build -p aether-server), Node 20+ with npm, tar.
set -euo pipefail
cd "$(dirname "$0")/.."
target="${CARGO_TARGET_DIR:-$PWD/target}"
server_bin="${AETHER_SERVER_BIN:-$target/debug/aether-server}"
client_dir="$PWD/tests/contract/client"
token="client-deployer"
started_at=$SECONDS

[[ -x "$server_bin" ]] || { echo "no aether-server binary at $server_bin (cargo build -p aether-server)" >&2; exit 1; }
command -v node >/dev/null || { echo "node is not installed" >&2; exit 1; }
command -v npm >/dev/null || { echo "npm is not installed" >&2; exit 1; }

work="$(mktemp -d)"
# shellcheck source=scripts/lib/server.sh
source scripts/lib/server.sh
trap 'stop_server; rm -rf "$work"' EXIT

server_log_on_failure() {
    echo "-- aether-server log (last 40 lines)" >&2
    tail -n 40 "$server_log" >&2 || true
}

echo "== npm ci in tests/contract/client"
(cd "$client_dir" && npm ci --no-audit --no-fund --loglevel=error)

start_server client "$token:deployer"
echo "== aether-server at $base_url"

echo "== openapi-typescript $base_url/openapi.json -> schema.d.ts"
rm -f "$client_dir/schema.d.ts"
rm -rf "$client_dir/dist"
(cd "$client_dir" && ./node_modules/.bin/openapi-typescript "$base_url/openapi.json" --output schema.d.ts) || {
    echo "openapi-typescript could not generate types from the document" >&2
    exit 1
}

echo "== tsc (strict) deploy.ts against the generated types"
(cd "$client_dir" && ./node_modules/.bin/tsc -p tsconfig.json) || {
    echo "the generated types do not fit deploy.ts: see the type errors above" >&2
    exit 1
}

echo "== deploy through the generated client"
if ! AETHER_URL="$base_url" AETHER_TOKEN="$token" node "$client_dir/dist/deploy.js"; then
    server_log_on_failure
    exit 1
fi
if grep -q "panicked" "$server_log"; then
    grep -A5 "panicked" "$server_log" >&2
    exit 1
fi
# Stopping also checks that its log shows no token.
stop_server
echo "generated client: passed in $((SECONDS - started_at)) s"

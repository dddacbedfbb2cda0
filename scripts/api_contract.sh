#!/usr/bin/env bash
# Checks the control plane against its own OpenAPI document with schemathesis: every check and
# every phase (examples, coverage, fuzzing, stateful), as an admin, a deployer and a reader, each
# against a fresh embedded server. Fails on any failure or server error.
#
# Usage: scripts/api_contract.sh [MAX_EXAMPLES]   (default 25 per operation and phase)
# AETHER_CONTRACT_SEED=N makes the generated cases the same on every run (the test suite sets
# it, so that its verdict does not depend on luck); without it every run explores anew.
# Needs: the aether-server binary built (cargo build -p aether-server) and Python 3 with venv.
set -euo pipefail
cd "$(dirname "$0")/.."
max_examples="${1:-25}"
target="${CARGO_TARGET_DIR:-$PWD/target}"
server_bin="${AETHER_SERVER_BIN:-$target/debug/aether-server}"
venv="$target/contract-venv"
[[ -x "$venv/bin/schemathesis" ]] || python3 -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r tests/contract/requirements.txt

work="$(mktemp -d)"
# shellcheck source=scripts/lib/server.sh
source scripts/lib/server.sh
trap 'stop_server; rm -rf "$work"' EXIT

status=0
for role in admin deployer reader; do
    start_server "$role" "contract-admin:admin,contract-deployer:deployer,contract-reader:reader"
    echo "== schemathesis as $role against $base_url ($max_examples examples per operation and phase)"
    AETHER_CONTRACT_TOKEN="contract-$role" "$venv/bin/schemathesis" --config-file tests/contract/schemathesis.toml \
        run "$base_url/openapi.json" --checks all --max-examples "$max_examples" \
        --phases examples,coverage,fuzzing,stateful --no-color ${AETHER_CONTRACT_SEED:+--seed "$AETHER_CONTRACT_SEED"} \
        >"$work/$role.txt" 2>&1 || status=1
    tail -n 25 "$work/$role.txt"
    if grep -qE "Server error|ST(1|2|3)[0-9][0-9]" "$work/$role.txt"; then
        grep -B2 -A14 "^[0-9]*\. Test Case ID" "$work/$role.txt" | head -n 200
        status=1
    fi
    if grep -q "panicked" "$server_log"; then
        grep -A5 "panicked" "$server_log"
        status=1
    fi
    stop_server || status=1
done
exit "$status"

#!/usr/bin/env bash
# Runs Aether's whole test suite. Needs: Rust (cargo, cargo-nextest), Node.js with npm, Python 3
# with pip and venv, PostgreSQL server binaries. Test-only Python packages (the official CycloneDX
# and DSSE validators; Helm v4 as a library and the Kubernetes schemas, for the chart; moto, an
# S3-compatible server) are installed from requirements-dev.txt first, and s3s-fs (the strict
# S3-compatible server the tests start) into ~/.cache/aether-ci. Arguments go to the Rust test
# runner.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_BUILD_JOBS="${CARGO_BUILD_JOBS:-2}"
python3 -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
# The Helm chart: strict lint, renders validated against the Kubernetes schemas (1.30 and newer).
python3 scripts/check_chart.py
# The objects `aether-server render-k8s` prints (reviewed snapshots), against the same schemas.
python3 scripts/check_render_k8s.py
# The S3 store's tests start a real S3-compatible server.
PATH="$(./scripts/lib/install_s3s_fs.sh):$PATH"
export PATH
rust_status=0
echo "== [${SECONDS}s] Rust tests"
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --locked --no-fail-fast "$@" || rust_status=$?
else
  cargo test --workspace --locked --no-fail-fast "$@" || rust_status=$?
fi

echo "== [${SECONDS}s] Python bindings"
# The Python bindings: the extension built into a virtualenv (kept between runs), tested
# against the `aether` and `aether-server` binaries of this checkout.
target="${CARGO_TARGET_DIR:-$PWD/target}"
venv="$target/python-venv"
[[ -x "$venv/bin/python" ]] || python3 -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r bindings/python/requirements-test.txt
cargo build --locked -p aether-cli -p aether-server
# The same target directory as the workspace: the dependencies both share are built once.
VIRTUAL_ENV="$venv" CARGO_TARGET_DIR="$target" \
  "$venv/bin/maturin" develop --quiet --locked --manifest-path bindings/python/Cargo.toml
AETHER_BIN="$target/debug/aether" AETHER_SERVER_BIN="$target/debug/aether-server" \
  "$venv/bin/python" -m pytest bindings/python/tests
"$venv/bin/mypy" --strict examples/build.py

echo "== [${SECONDS}s] API contract"
# schemathesis against /openapi.json as each role (a bounded run; more examples locally with
# scripts/api_contract.sh N).
contract_status=0
AETHER_CONTRACT_SEED=1 AETHER_SERVER_BIN="$target/debug/aether-server" ./scripts/api_contract.sh 15 || contract_status=$?
# A client generated from the document (TypeScript) compiles and deploys.
AETHER_SERVER_BIN="$target/debug/aether-server" ./scripts/generated_client.sh || contract_status=$?
echo "== [${SECONDS}s] done"
[[ "$contract_status" -eq 0 ]] || exit "$contract_status"
exit "$rust_status"

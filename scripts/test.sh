#!/usr/bin/env bash
# Runs Aether's whole test suite. Needs: Rust (cargo, cargo-nextest), Node.js with npm, Python 3
# with pip, PostgreSQL server binaries. Test-only Python packages (the official CycloneDX and DSSE
# validators) are installed from requirements-dev.txt first, and s3s-fs (a real S3-compatible
# server the tests start) into ~/.cache/aether-ci.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_BUILD_JOBS="${CARGO_BUILD_JOBS:-2}"
python3 -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
# The S3 store's tests start a real S3-compatible server.
PATH="$(./scripts/lib/install_s3s_fs.sh):$PATH"
export PATH
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --locked --no-fail-fast "$@"
else
  cargo test --workspace --locked --no-fail-fast "$@"
fi

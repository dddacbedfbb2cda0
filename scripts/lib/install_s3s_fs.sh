#!/usr/bin/env bash
# Installs s3s-fs, the S3-compatible server the tests start, into a cache outside the checkout
# (0.14.1: newer versions need a newer Rust). Prints the directory holding the binary.
set -euo pipefail
root="${XDG_CACHE_HOME:-$HOME/.cache}/aether-ci/s3s-fs"
if [ ! -x "$root/bin/s3s-fs" ]; then
  echo "installing s3s-fs 0.14.1 into $root" >&2
  cargo install --locked s3s-fs --version 0.14.1 --features binary --root "$root" >&2
fi
echo "$root/bin"

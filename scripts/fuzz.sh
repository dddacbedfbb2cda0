#!/usr/bin/env bash
# Fuzzes aether-core's parsers of untrusted input (cargo-fuzz: libFuzzer on the nightly
# toolchain, which `rustup toolchain install nightly` provides).
#
# Usage: scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]   (default: 10 s, every target)
#
# Each target starts from its committed seeds (aether-core/fuzz/seeds/<target>/) and grows a
# scratch corpus under aether-core/fuzz/corpus/ (ignored by git). An input that crashes, leaks
# or exceeds the memory limit stops the run with a non-zero exit; libFuzzer saves it under
# aether-core/fuzz/artifacts/<target>/, and it belongs in the seeds plus a regression test.
set -euo pipefail
cd "$(dirname "$0")/../aether-core/fuzz"
seconds="${1:-10}"
shift || true

command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    mapfile -t targets < <(cargo +nightly fuzz list)
fi
for target in "${targets[@]}"; do
    corpus="corpus/$target"
    log="corpus/$target.log"
    mkdir -p "$corpus"
    echo "== fuzz $target for ${seconds}s"
    # 512 MiB per process and per allocation: an input may not make the parser hoard memory.
    if ! cargo +nightly fuzz run "$target" "$corpus" "seeds/$target" -- \
        -max_total_time="$seconds" -rss_limit_mb=512 -malloc_limit_mb=512 >"$log" 2>&1; then
        tail -n 60 "$log"
        exit 1
    fi
    grep -aE "^#[0-9]+[[:space:]]+DONE" "$log" || true
done

#!/usr/bin/env bash
# Smoke run of Bridle's fuzz targets (fuzz/, R3): installs cargo-fuzz if it
# is missing, builds every target, then runs each for a short while from its
# committed corpus and dictionary. Fails on any crash, panic, timeout or
# out-of-memory. New inputs go to a scratch directory, so the committed
# corpus is left as it is. fuzz/README.md says how to run a long session.
#
# cargo-fuzz needs nightly compiler flags (`-Z`); RUSTC_BOOTSTRAP=1 lets the
# stable toolchain accept them, so no nightly toolchain is needed.
#
#   scripts/fuzz.sh                    every target, 20 s each
#   BRIDLE_FUZZ_SECONDS=60 scripts/fuzz.sh dpop jwt
set -euo pipefail
cd "$(dirname "$0")/../fuzz"

CARGO_FUZZ_VERSION=0.13.1
if ! cargo fuzz --version 2>/dev/null | grep -qF "$CARGO_FUZZ_VERSION"; then
    cargo install --locked cargo-fuzz --version "$CARGO_FUZZ_VERSION"
fi

export RUSTC_BOOTSTRAP=1
# Overflow checks and debug assertions on; no sanitizer (the code under test
# forbids `unsafe`), which halves build and run time.
flags=(--debug-assertions --sanitizer none)
seconds="${BRIDLE_FUZZ_SECONDS:-20}"

cargo fuzz build "${flags[@]}"
if [ "$#" -gt 0 ]; then
    targets=("$@")
else
    mapfile -t targets < <(cargo fuzz list)
fi
scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
for target in "${targets[@]}"; do
    mkdir -p "$scratch/$target"
    echo "fuzz: $target for ${seconds}s"
    log="$scratch/$target.log"
    if ! cargo fuzz run "${flags[@]}" "$target" "$scratch/$target" "corpus/$target" -- \
        -max_total_time="$seconds" -timeout=10 -dict="dict/$target.dict" \
        -artifact_prefix="$scratch/" -print_final_stats=1 >"$log" 2>&1; then
        tail -n 40 "$log" >&2
        mkdir -p "artifacts/$target"
        cp "$scratch"/crash-* "$scratch"/timeout-* "$scratch"/oom-* "artifacts/$target/" 2>/dev/null || true
        echo "fuzz: $target FAILED; the failing input is in fuzz/artifacts/$target/" >&2
        exit 1
    fi
    grep -E '^(Done [0-9]+ runs|stat::number_of_executed_units|stat::average_exec_per_sec)' "$log" || true
done

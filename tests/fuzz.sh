#!/usr/bin/env bash
# Bounded fuzzing of the policy parser and formatter (cargo-fuzz, libFuzzer):
#   bash tests/fuzz.sh [SECONDS]      (default 60)
# Seeds from every .clsf file in the repository. Needs a nightly toolchain
# (for the coverage instrumentation) and cargo-fuzz; cargo-fuzz is installed from
# crates.io when missing. A toolchain cannot be installed on this project's
# machines, so without nightly the run says so loudly and stops.
set -euo pipefail
cd "$(dirname "$0")/.."
secs="${1:-60}"

if ! cargo +nightly --version >/dev/null 2>&1; then
    echo "fuzz: SKIPPED: no nightly toolchain on this machine (rustup toolchain install nightly)" >&2
    exit 0
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
    cargo install --locked cargo-fuzz
fi

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
mkdir "$work/corpus" "$work/artifacts"
find examples policies compiler/tests/data lang/tests -name '*.clsf' -print0 |
    while IFS= read -r -d '' f; do cp "$f" "$work/corpus/$(echo "$f" | tr '/' '_')"; done

cd lang/fuzz
status=0
# No sanitizer: the crates forbid unsafe code, so AddressSanitizer finds
# nothing a panic would not; without it libFuzzer runs about five times as
# many inputs in the same time.
cargo +nightly fuzz run -O --sanitizer none policy_parse "$work/corpus" -- \
    -max_total_time="$secs" -rss_limit_mb=2048 -print_final_stats=1 \
    -artifact_prefix="$work/artifacts/" >"$work/log" 2>&1 || status=$?
grep -E "^(stat::number_of_executed_units|stat::peak_rss_mb|Done)" "$work/log" || true
if [ "$status" -ne 0 ] || ls "$work"/artifacts/crash-* >/dev/null 2>&1; then
    tail -60 "$work/log" >&2
    for f in "$work"/artifacts/*; do [ -e "$f" ] && cp "$f" . && echo "fuzz: kept $(basename "$f")" >&2; done
    echo "fuzz: policy_parse FAILED" >&2
    exit 1
fi
echo "fuzz: policy_parse ran ${secs}s without a crash"

#!/usr/bin/env bash
# Bounded fuzzing (cargo-fuzz, libFuzzer) of the parsers that take untrusted
# input, in parallel:
#   - policy_parse: the policy parser and formatter, seeded with every .clsf
#     file in the repository;
#   - wire_frames: the proxy's frontend framing and message decoders, seeded
#     with real startup and query frames;
#   - sql_decide: SQL text into the statement engine (parse,
#     scope resolution, decision, rewrite; every rewrite must parse again),
#     seeded with the statements of the bypass and differential suites.
#   bash tests/fuzz.sh [SECONDS]      (default 45)
# policy_parse and sql_decide run SECONDS each, wire_frames a third of it:
# its decoders are small, and from its kept corpus it reaches every edge it
# ever reaches before the first input is mutated (191 edges at start and
# after 4.6 M inputs in 40 s, 2026-12-07). On two cores the other two then
# get as much CPU in 45 s as the three side by side got in 60 s (each a
# core for the last two thirds; inputs counted in docs/testing.md).
#   bash tests/fuzz.sh SECONDS keep   (long runs: the minimised corpus is
#                                      written back to tests/fuzz/corpora/)
# Every run starts from the seeds below plus the kept corpora.
#   bash tests/fuzz.sh build          (build the targets only; CI does this
#                                      at low priority while the suite runs)
# Needs a nightly toolchain (for the coverage instrumentation) and
# cargo-fuzz; cargo-fuzz is installed from crates.io when missing. A
# toolchain cannot be installed on this project's machines, so without
# nightly the run says so loudly and stops.
set -euo pipefail
cd "$(dirname "$0")/.."
root="$PWD"
secs="${1:-45}"
keep=false
if [ "${2:-}" = keep ]; then
    keep=true
fi
build_only=false
if [ "$secs" = build ]; then
    build_only=true
fi

if ! cargo +nightly --version >/dev/null 2>&1; then
    echo "fuzz: SKIPPED: no nightly toolchain on this machine (rustup toolchain install nightly)" >&2
    exit 0
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
    cargo install --locked cargo-fuzz
fi

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

mkdir -p "$work/policy_parse/corpus" "$work/wire_frames/corpus" "$work/sql_decide/corpus"
find examples policies compiler/tests/data lang/tests -name '*.clsf' -print0 |
    while IFS= read -r -d '' f; do cp "$f" "$work/policy_parse/corpus/$(echo "$f" | tr '/' '_')"; done
# Wire seeds: a startup packet, an SSLRequest, and a pipeline of
# Parse/Bind/Describe/Execute/Sync and a simple Query.
printf '\x00\x00\x00\x1e\x00\x03\x00\x00user\x00w\x00database\x00shop\x00\x00' >"$work/wire_frames/corpus/startup"
printf '\x00\x00\x00\x08\x04\xd2\x16\x2f' >"$work/wire_frames/corpus/sslrequest"
printf 'P\x00\x00\x00\x1a\x00SELECT $1::int\x00\x00\x01\x00\x00\x00\x17B\x00\x00\x00\x0c\x00\x00\x00\x00\x00\x00\x00\x00D\x00\x00\x00\x06P\x00E\x00\x00\x00\x09\x00\x00\x00\x00\x00S\x00\x00\x00\x04Q\x00\x00\x00\x0dSELECT 1\x00' >"$work/wire_frames/corpus/pipeline"

# SQL seeds: every statement literal of the bypass and differential suites.
n=0
grep -ohE '"(SELECT|WITH|INSERT|UPDATE|DELETE|COPY|BEGIN|TABLE|PREPARE|EXPLAIN|DO|SET|CREATE|MERGE|VALUES)[^"]*"' \
    tests/tests/bypass.rs tests/tests/differential.rs |
    while IFS= read -r line; do
        n=$((n + 1))
        printf '%s' "${line:1:${#line}-2}" >"$work/sql_decide/corpus/seed-$n"
    done

# The corpora kept from earlier long runs.
for t in policy_parse wire_frames sql_decide; do
    if [ -d "tests/fuzz/corpora/$t" ]; then
        cp tests/fuzz/corpora/"$t"/* "$work/$t/corpus/" 2>/dev/null || true
    fi
done

# The three targets are one cargo-fuzz workspace (tests/fuzz), built at
# once with the dev profile; its Cargo.toml optimises the small parsers only.
(cd tests/fuzz && cargo +nightly fuzz build --dev --sanitizer none >"$work/build.log" 2>&1) || {
    tail -40 "$work/build.log" >&2
    echo "fuzz: building tests/fuzz FAILED" >&2
    exit 1
}

if "$build_only"; then
    exit 0
fi

run() { # target seconds
    mkdir -p "$work/$1/artifacts"
    # No sanitizer: the crates forbid unsafe code, so AddressSanitizer finds
    # nothing a panic would not; without it libFuzzer runs about five times
    # as many inputs in the same time.
    (cd tests/fuzz && cargo +nightly fuzz run --dev --sanitizer none "$1" "$work/$1/corpus" -- \
        -max_total_time="$2" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
        -artifact_prefix="$work/$1/artifacts/" >"$work/$1/log" 2>&1)
}
wire_secs=$((secs / 3 > 0 ? secs / 3 : 1))
run policy_parse "$secs" & p1=$!
run wire_frames "$wire_secs" & p2=$!
run sql_decide "$secs" & p3=$!
status=0
for t in "policy_parse:$p1" "wire_frames:$p2" "sql_decide:$p3"; do
    name="${t%%:*}"
    code=0
    wait "${t##*:}" || code=$?
    grep -E "^(stat::number_of_executed_units|stat::peak_rss_mb|Done)" "$work/$name/log" || true
    if [ "$code" -ne 0 ] || ls "$work/$name"/artifacts/crash-* >/dev/null 2>&1 ||
        ls "$work/$name"/artifacts/timeout-* >/dev/null 2>&1; then
        tail -60 "$work/$name/log" >&2
        for f in "$work/$name"/artifacts/*; do [ -e "$f" ] && cp "$f" "$root/" && echo "fuzz: kept $(basename "$f")" >&2; done
        echo "fuzz: $name FAILED" >&2
        status=1
    else
        ran="$secs"
        [ "$name" = wire_frames ] && ran="$wire_secs"
        echo "fuzz: $name ran ${ran}s without a crash"
    fi
done
if "$keep" && [ "$status" -eq 0 ]; then
    # Keep only inputs that add coverage (libFuzzer's merge), replacing the
    # kept corpus.
    for name in policy_parse wire_frames sql_decide; do
        (cd tests/fuzz && cargo +nightly fuzz cmin --dev --sanitizer none "$name" "$work/$name/corpus" >"$work/$name/cmin.log" 2>&1) || {
            tail -20 "$work/$name/cmin.log" >&2
            echo "fuzz: minimising $name FAILED" >&2
            exit 1
        }
        rm -rf "tests/fuzz/corpora/$name"
        mkdir -p "tests/fuzz/corpora/$name"
        cp "$work/$name/corpus/"* "tests/fuzz/corpora/$name/"
        echo "fuzz: kept $(ls "tests/fuzz/corpora/$name" | wc -l) inputs of $name"
    done
fi
exit "$status"

#!/usr/bin/env bash
# The whole clsf test suite: installs what the tests need when missing, then
# builds everything and runs every test (unit, snapshot, end-to-end against
# a real PostgreSQL with the real psql). Fails, never skips.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tests/ensure-deps.sh
cargo build --workspace --all-targets --locked
# Twice the cores (at most 8) test threads: the end-to-end tests spend
# much of their time waiting on PostgreSQL, clients and timeouts, so two
# threads on this 2-core machine left the cores idle (e2e binary: 133 s
# with 2 threads, 110 s with 4, the cores 97 % busy).
threads="${RUST_TEST_THREADS:-$(( $(nproc) * 2 > 8 ? 8 : $(nproc) * 2 ))}"
cargo test --workspace --locked -- --test-threads "$threads"

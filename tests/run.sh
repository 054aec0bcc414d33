#!/usr/bin/env bash
# The whole clsf test suite: installs what the tests need when missing, then
# builds everything and runs every test (unit, snapshot, end-to-end against
# a real PostgreSQL with the real psql). Fails, never skips.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tests/ensure-deps.sh
cargo build --workspace --all-targets --locked
cargo test --workspace --locked

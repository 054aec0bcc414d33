#!/usr/bin/env bash
# The clsf quickstart: installs what it needs when missing, builds, starts a
# throwaway PostgreSQL with the demo data, compiles the example policy,
# starts the proxy and prints a psql command line per demo identity. Runs
# until Ctrl-C and cleans up after itself.
set -euo pipefail
cd "$(dirname "$0")/../.."
bash tests/ensure-deps.sh --quickstart
cargo build --locked -p clsfc -p clsf-runtime -p clsf-tests --bin clsfc --bin clsf-proxy --bin clsf-quickstart
exec cargo run --quiet --locked -p clsf-tests --bin clsf-quickstart

#!/usr/bin/env bash
# Makes sure what the tests and the quickstart need is installed: the
# PostgreSQL server binaries (initdb, pg_ctl), psql, and the `postgres`
# system user the harness runs the server as under root. As root it installs
# the missing Debian packages with apt-get; otherwise it prints the exact
# command and fails. It never lets a run continue without them.
set -euo pipefail

missing=()
if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 && [ -z "${CLSF_PG_BIN:-}" ]; then
    missing+=(postgresql)
fi
if ! command -v psql >/dev/null 2>&1; then
    missing+=(postgresql-client)
fi
if [ "$(id -u)" = 0 ] && ! id postgres >/dev/null 2>&1; then
    missing+=(postgresql)
fi

if [ ${#missing[@]} -gt 0 ]; then
    # Deduplicate.
    readarray -t missing < <(printf '%s\n' "${missing[@]}" | sort -u)
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "ensure-deps: installing ${missing[*]}" >&2
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq
        apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    else
        echo "ensure-deps: missing ${missing[*]}; install with:" >&2
        echo "    sudo apt-get install -y ${missing[*]}" >&2
        exit 1
    fi
fi

ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || [ -n "${CLSF_PG_BIN:-}" ] || { echo "ensure-deps: initdb still missing" >&2; exit 1; }
command -v psql >/dev/null 2>&1 || { echo "ensure-deps: psql still missing" >&2; exit 1; }

#!/usr/bin/env bash
# Makes sure what the tests and the quickstart need is installed: the
# PostgreSQL server binaries (initdb, pg_ctl), psql, and the `postgres`
# system user the harness runs the server as under root. As root it installs
# the missing Debian packages with apt-get; otherwise it prints the exact
# command and fails. It never lets a run continue without them.
#   bash tests/ensure-deps.sh              what the whole suite needs
#   bash tests/ensure-deps.sh --quickstart the server and psql only
set -euo pipefail
quickstart=false
[ "${1:-}" = --quickstart ] && quickstart=true

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
# pgJDBC for the client matrix (tests/tests/clients.rs).
if ! $quickstart && [ ! -e /usr/share/java/postgresql.jar ]; then
    missing+=(libpostgresql-jdbc-java)
fi
# Headless Chromium for the approver page's test (tests/tests/approvals.rs).
if ! $quickstart && ! command -v chromium >/dev/null 2>&1; then
    missing+=(chromium)
fi
# HAProxy in front of three replicas (tests/tests/replicas.rs).
if ! $quickstart && ! command -v haproxy >/dev/null 2>&1; then
    missing+=(haproxy)
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
if $quickstart; then
    exit 0
fi
[ -e /usr/share/java/postgresql.jar ] || { echo "ensure-deps: pgJDBC still missing" >&2; exit 1; }
command -v chromium >/dev/null 2>&1 || { echo "ensure-deps: chromium still missing" >&2; exit 1; }
command -v haproxy >/dev/null 2>&1 || { echo "ensure-deps: haproxy still missing" >&2; exit 1; }
for tool in javac java node npm python3; do
    command -v "$tool" >/dev/null 2>&1 || { echo "ensure-deps: $tool is needed by the client tests" >&2; exit 1; }
done

# The SARIF 2.1.0 JSON schema, to validate `clsfc check --format sarif`
# against. It ships inside an npm package (Microsoft's SARIF jest matchers);
# only the schema file is kept, in tests/.deps (ignored by git).
deps_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/.deps"
sarif_schema="$deps_dir/sarif-2.1.0.json"
if [ ! -s "$sarif_schema" ]; then
    command -v npm >/dev/null 2>&1 || { echo "ensure-deps: npm is needed to fetch the SARIF schema" >&2; exit 1; }
    mkdir -p "$deps_dir"
    tmp="$(mktemp -d)"
    (cd "$tmp" && npm pack --silent @microsoft/jest-sarif@1.0.0-beta.0 >/dev/null)
    tar -xzf "$tmp"/microsoft-jest-sarif-1.0.0-beta.0.tgz -C "$tmp" package/lib/schemas/sarif-2.1.0-rtm.5.json
    mv "$tmp"/package/lib/schemas/sarif-2.1.0-rtm.5.json "$sarif_schema"
    rm -rf "$tmp"
    echo "ensure-deps: fetched the SARIF 2.1.0 schema" >&2
fi

# The client and tool matrices' drivers, pinned, kept in tests/.deps
# (ignored by git): psycopg 3 (its binary wheel bundles libpq 18, which
# sends cancel requests inside TLS), SQLAlchemy 2, asyncpg and Django from PyPI, and the
# cvc5 1.3.1 solver library `clsfc check --verify` runs through
# compiler/solver/cvc5;
# node-postgres, pg-cursor, pg-copy-streams, postgres.js and the reference MCP server
# for PostgreSQL from npm, the MCP SDK whose client the MCP tests use, and
# vscode-textmate with vscode-oniguruma, which tokenise .clsf as VS Code
# does for the editor grammar's test.
# kubernetes-validate checks deploy/kubernetes against the API schemas;
# jsonschema (the reference validator) checks `clsfc check --format sarif`.
if ! PYTHONPATH="$deps_dir/python" python3 -c 'import psycopg, sqlalchemy, asyncpg, django, cvc5, kubernetes_validate, jsonschema' >/dev/null 2>&1; then
    mkdir -p "$deps_dir"
    python3 -m pip install --quiet --disable-pip-version-check --upgrade --target "$deps_dir/python" \
        'psycopg[binary]==3.3.9' 'SQLAlchemy==2.1.9' 'asyncpg==0.32.0' 'Django==5.2.20' 'cvc5==1.3.1' 'kubernetes-validate==1.31.0' 'jsonschema==4.26.0'
    echo "ensure-deps: installed psycopg 3.3.9, SQLAlchemy 2.1.9, asyncpg 0.32.0, Django 5.2.20, cvc5 1.3.1, kubernetes-validate 1.31.0 and jsonschema 4.26.0" >&2
fi
# playwright-core drives Debian's chromium for the approver page's test.
# All in one install: npm prunes what a --no-save install does not name.
node_pkgs=(pg@8.23.1 postgres@3.4.9 playwright-core@1.65.1 pg-cursor@2.22.0 pg-copy-streams@7.0.0
    @modelcontextprotocol/server-postgres@0.6.2 @modelcontextprotocol/sdk@1.32.2
    vscode-textmate@9.3.2 vscode-oniguruma@2.0.1)
node_missing=0
for pkg in "${node_pkgs[@]}"; do
    # The version too: a dependency of another package may have put an
    # older copy at the top.
    grep -q "\"version\": \"${pkg##*@}\"" "$deps_dir/node/node_modules/${pkg%@*}/package.json" 2>/dev/null ||
        node_missing=1
done
if [ "$node_missing" = 1 ]; then
    mkdir -p "$deps_dir/node"
    (cd "$deps_dir/node" && npm install --silent --no-audit --no-fund --no-save \
        "${node_pkgs[@]}" >/dev/null)
    echo "ensure-deps: installed ${node_pkgs[*]}" >&2
fi

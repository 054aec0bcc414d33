#!/usr/bin/env bash
# Pull + check at scale: GitLab's production schema (the largest in
# tests/schemas (vendored), ~14k columns, 1,401 tables with partitions) is loaded into
# a throwaway PostgreSQL, pulled with a release `clsfc schema pull`, and
# checked with the standard library patterns. Prints wall time and peak
# memory (maximum resident set size) of each step, from /usr/bin/time -v.
#
#   bash tests/bench/schema-scale.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$(pwd)
schema_sql="$root/tests/schemas/gitlab/structure.sql"
[ -f "$schema_sql" ] || { echo "missing $schema_sql" >&2; exit 1; }
pgbin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
[ -x /usr/bin/time ] || { echo "needs /usr/bin/time (Debian package time)" >&2; exit 1; }

cargo build --release --locked -p clsfc --bin clsfc >&2
clsfc="$root/target/release/clsfc"

work=$(mktemp -d)
as_pg=()
if [ "$(id -u)" = 0 ]; then
    chown postgres "$work"
    as_pg=(runuser -u postgres --)
fi
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cleanup() {
    "${as_pg[@]}" "$pgbin/pg_ctl" -D "$work/data" -m immediate stop >/dev/null 2>&1 || true
    rm -rf "$work"
}
trap cleanup EXIT
"${as_pg[@]}" "$pgbin/initdb" -D "$work/data" -U postgres --auth=trust -E UTF8 --locale=C --no-sync >/dev/null
"${as_pg[@]}" "$pgbin/pg_ctl" -D "$work/data" -l "$work/log" -w \
    -o "-p $port -k $work -c listen_addresses=127.0.0.1 -c fsync=off" start >/dev/null
psql=(psql -X -q -h 127.0.0.1 -p "$port" -U postgres)
"${psql[@]}" -c "CREATE DATABASE gitlab"
"${psql[@]}" -d gitlab -v ON_ERROR_STOP=1 -f "$schema_sql" >/dev/null
url="postgres://postgres@127.0.0.1:$port/gitlab"

mkdir -p "$work/policy"
printf 'use std::pii\nuse std::secrets\nunclassified internal\n' >"$work/policy/policy.clsf"

measure() {
    local name=$1
    shift
    /usr/bin/time -v "$@" 2>"$work/time.txt" >/dev/null || {
        cat "$work/time.txt" >&2
        exit 1
    }
    local wall rss
    wall=$(grep 'Elapsed (wall clock)' "$work/time.txt" | awk '{print $NF}')
    rss=$(grep 'Maximum resident set size' "$work/time.txt" | awk '{print $NF}')
    printf '%-6s wall %s  peak RSS %d MiB\n' "$name" "$wall" $((rss / 1024))
}
columns=$("${psql[@]}" -d gitlab -A -t -c "SELECT count(*) FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace WHERE a.attnum > 0 AND NOT a.attisdropped AND c.relkind IN ('r','p','v','m','f') AND n.nspname NOT IN ('pg_catalog','information_schema','pg_toast')")
echo "gitlab: $columns columns"
measure pull "$clsfc" schema pull --database-url "$url" -o "$work/schema.lock.json"
echo "lock: $(wc -c <"$work/schema.lock.json") bytes"
measure check "$clsfc" --color never check "$work/policy" --schema "$work/schema.lock.json"

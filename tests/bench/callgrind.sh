#!/usr/bin/env bash
# User-space instructions per transaction of the proxy, counted exactly
# with callgrind (docs/performance.md, "User-space instructions, counted
# exactly"): timings on a shared 2-core host drift by up to 14 % from run
# to run, instruction counts do not.
#   bash tests/bench/callgrind.sh QUICKSTART_DIR [PROXY] [TRANSACTIONS]
# QUICKSTART_DIR is the directory `clsf-quickstart` prints (its proxy.toml,
# tokens and upstream password); PROXY defaults to target/release/clsf-proxy.
# A second proxy runs under valgrind on port 47001 against the same
# database, as `ci`, and pgbench runs an all-clear point query (path (c)
# of clsf-bench) in each mode, then with a connection per transaction.
# Needs valgrind (Debian package valgrind).
set -euo pipefail
qs="$1"
proxy="$(realpath "${2:-target/release/clsf-proxy}")"
n="${3:-3000}"
work="$(mktemp -d)"
trap 'kill "$pid" 2>/dev/null || true; rm -rf "$work"' EXIT
cp "$qs/upstream.pw" "$qs/jwks.json" "$work/"
sed -e 's/^listen = .*/listen = "127.0.0.1:47001"/' \
    -e "s#^path = .*#path = \"$work/audit.jsonl\"#" \
    -e '/^\[mcp\]/,$d' "$qs/proxy.toml" >"$work/proxy.toml"
printf '\\set id random(10, 13)\nSELECT status FROM orders WHERE id = :id;\n' >"$work/point.sql"
(cd "$work" && exec valgrind --tool=callgrind --callgrind-out-file="$work/cg.out" \
    "$proxy" --config "$work/proxy.toml" >"$work/proxy.log" 2>&1) &
pid=$!
export PGPASSWORD="$(cat "$qs/ci.token")"
bench() { pgbench -n -h 127.0.0.1 -p 47001 -U ci -f "$work/point.sql" "$@" shop >/dev/null; }
for _ in $(seq 120); do bench -t 1 2>/dev/null && break; sleep 1; done
bench -t 200
for mode in simple extended prepared connect; do
    callgrind_control --zero "$pid" >/dev/null 2>&1
    if [ "$mode" = connect ]; then
        m=$((n / 6))
        bench -C -t "$m"
    else
        m="$n"
        bench -M "$mode" -t "$m"
    fi
    callgrind_control --dump="$mode" "$pid" >/dev/null 2>&1
    dump="$(ls -t "$work"/cg.out.* | head -1)"
    echo "== $mode ($m transactions)"
    python3 "$(dirname "$0")/callgrind_self.py" "$dump" "$m" 8
done

#!/usr/bin/env bash
# bench.sh - `make bench`: forkhttpd next to nginx (and lighttpd for CGI), by the
# protocol of BENCHMARKING.md. Builds nothing (make bench ran `make all` first).
#
#   BENCH_PAIRS=7 BENCH_SECONDS=3   alternating pairs per row, seconds per run
#   BENCH_QUICK=1                   3 pairs of 1 s runs: a smoke test
#   BENCH_IDLE_CONNS=10000          connections held in W5 (and TLS W5)
#   BENCH_ONLY=tls,gz,fork          only the HTTPS rows, the static compression rows and/or
#                                   the fork model against the bare fork servers
#   BUILD=build                     where forkhttpd, hello.so and the results are
#
# The orchestration and statistics are in scripts/bench.py; this wrapper installs
# the tools, makes the temporary directory, and on exit kills every process group
# bench.py started (it records them in $tmp/pgids) and removes the directory.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
export BUILD

if [[ ! -x $BUILD/forkhttpd ]]; then
    echo "bench.sh: $BUILD/forkhttpd missing; run 'make bench' (it builds first)" >&2
    exit 1
fi

# Tools: wrk (client), nginx (reference), lighttpd (CGI reference), curl, taskset.
need=()
command -v wrk >/dev/null || need+=(wrk)
command -v nginx >/dev/null || [[ -x /usr/sbin/nginx ]] || need+=(nginx-light)
command -v lighttpd >/dev/null || [[ -x /usr/sbin/lighttpd ]] || need+=(lighttpd)
command -v haproxy >/dev/null || [[ -x /usr/sbin/haproxy ]] || need+=(haproxy) # the balancer rows
[[ -x /usr/bin/gunicorn ]] || need+=(gunicorn)
command -v h2load >/dev/null || need+=(nghttp2-client) # TLS rows: W4 over TLS
command -v h2o >/dev/null || need+=(h2o)               # TLS rows: the second reference
command -v curl >/dev/null || need+=(curl)
command -v taskset >/dev/null || need+=(util-linux)
if ((${#need[@]})); then
    echo "bench.sh: installing ${need[*]}" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y "${need[@]}" >/dev/null 2>&1 ||
        { apt-get update >/dev/null && apt-get install -y "${need[@]}" >/dev/null; }
    # A package's service must not stay up (policy-rc.d usually prevents it anyway).
    for svc in nginx lighttpd haproxy h2o; do
        if [[ " ${need[*]} " == *" $svc"* ]] && command -v service >/dev/null; then
            service "$svc" stop >/dev/null 2>&1 || true
        fi
    done
fi
export PATH="$PATH:/usr/sbin:/sbin"

if (($(nproc) < 2)); then
    echo "bench.sh: needs 2 CPUs (server on CPU 0, wrk on CPU 1)" >&2
    exit 1
fi

tmp=$(mktemp -d /tmp/forkhttpd-bench.XXXXXX)
py=
cleanup() {
    local rc=$?
    set +e # a failing kill or wait must not end the cleanup half-way
    if [[ -n $py ]]; then
        kill -TERM "$py" 2>/dev/null
        wait "$py" 2>/dev/null
    fi
    if [[ -f $tmp/pgids ]]; then
        while read -r g; do kill -TERM -- "-$g" 2>/dev/null || true; done <"$tmp/pgids"
        sleep 0.5
        while read -r g; do kill -KILL -- "-$g" 2>/dev/null || true; done <"$tmp/pgids"
    fi
    rm -rf "$tmp"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# The fork model's ceiling (issue 19): a bare C fork-per-connection server,
# built here; bench.py skips its row when it is missing.
"${CC:-cc}" -std=gnu11 -O2 -o "$tmp/bare_fork" scripts/bench/bare_fork.c ||
    echo "bench.sh: scripts/bench/bare_fork.c did not compile; its row is skipped" >&2

/usr/bin/python3 scripts/bench.py "$tmp" &
py=$!
rc=0
wait "$py" || rc=$?
py=
exit "$rc"

#!/usr/bin/env bash
# Drives tests/health_server_fixture with curl: endpoints, status codes, metric values, clean shutdown.
# usage: health_server_curl.sh FIXTURE [promtool]
#   with "promtool": only checks /metrics with `promtool check metrics` (exit 77, a CTest skip, without promtool)
set -euo pipefail
fixture="$1"
mode="${2:-curl}"
if [ "$mode" = promtool ] && ! command -v promtool >/dev/null 2>&1; then
    echo "promtool not found (Debian: prometheus); skipping. TASKMON_WITH_PROMTOOL=1 scripts/test installs it."
    exit 77
fi
command -v curl >/dev/null 2>&1 || { echo "curl not found (Debian: curl)"; exit 1; }

work=$(mktemp -d)
pid=
cleanup() {
    [ -n "$pid" ] && kill "$pid" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

"$fixture" "$work/port" >"$work/fixture.out" 2>&1 &
pid=$!
for _ in $(seq 100); do
    [ -s "$work/port" ] && break
    sleep 0.05
done
port=$(cat "$work/port")
base="http://127.0.0.1:$port"
failures=0
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }

# expect CODE URL [curl args...]: prints the body into $work/body
expect() {
    local want="$1" url="$2" got
    shift 2
    got=$(curl -sS --max-time 10 -o "$work/body" -w '%{http_code}' "$@" "$url" || true)
    local args="$*"
    [ "$got" = "$want" ] || fail "$url ${args:0:120}: status $got, expected $want (body: $(head -c 300 "$work/body" 2>/dev/null))"
}
# contains TEXT: the last body contains TEXT (a fixed string)
contains() { grep -qF -- "$1" "$work/body" || fail "body lacks: $1 (body: $(head -c 400 "$work/body"))"; }

# db fails at once and gives up after 2 restarts (1 ms backoff): wait until it did.
for _ in $(seq 100); do
    curl -s --max-time 5 "$base/metrics" | grep -qF 'taskmon_component_state{component="db",state="gave_up"} 1' && break
    sleep 0.05
done

if [ "$mode" = promtool ]; then
    curl -sS --max-time 10 "$base/metrics" >"$work/metrics"
    promtool check metrics <"$work/metrics" || fail "promtool check metrics"
else
    expect 200 "$base/livez"; contains "ok"
    expect 200 "$base/readyz"
    expect 200 "$base/readyz?verbose"; contains "[+]web ok"; contains "[!]db not ready (not critical): gave up after 2 restarts"
    expect 200 "$base/metrics"
    contains '# TYPE taskmon_restarts_total counter'
    contains 'taskmon_restarts_total{component="db",reason="failed"} 2'
    contains 'taskmon_component_failures_total{component="db"} 3'
    contains 'taskmon_component_up{component="web"} 1'
    contains 'taskmon_component_up{component="db"} 0'
    contains 'taskmon_component_state{component="db",state="gave_up"} 1'
    contains 'taskmon_backoff_seconds{component="db"} 0'
    contains 'taskmon_component_up{component="weird \"name\"\\"} 1'
    contains 'taskmon_io_semaphore_capacity '
    contains 'taskmon_agent_steps_total{agent="fixture",outcome="succeeded"} 1'
    contains 'taskmon_agent_status{agent="fixture",status="running"} 1'
    ctype=$(curl -sS --max-time 10 -o /dev/null -w '%{content_type}' "$base/metrics")
    [ "$ctype" = "text/plain; version=0.0.4; charset=utf-8" ] || fail "/metrics Content-Type: $ctype"
    expect 404 "$base/nope"
    expect 405 "$base/livez" -X POST -d x
    expect 400 "$base/livez" -X 'BREW'
    expect 431 "$base/livez" -H "X-Big: $(head -c 10000 /dev/zero | tr '\0' a)"
    expect 413 "$base/livez" -X POST --data-binary "@-" <<<"$(head -c 20000 /dev/zero | tr '\0' a)"
    head=$(curl -sS --max-time 10 -I "$base/livez" | tr -d '\r')
    grep -q '^HTTP/1.1 200 OK$' <<<"$head" || fail "HEAD /livez: $head"
fi

kill -TERM "$pid"
status=0
wait "$pid" || status=$?
pid=
[ "$status" -eq 0 ] || fail "fixture exited with $status after SIGTERM"
grep -q '^closed$' "$work/fixture.out" || fail "fixture did not close cleanly: $(cat "$work/fixture.out")"
[ "$failures" -eq 0 ] || { echo "$failures failure(s)"; exit 1; }
echo "all checks passed"

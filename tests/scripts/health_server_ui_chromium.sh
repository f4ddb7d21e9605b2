#!/usr/bin/env bash
# Drives tests/health_server_fixture (ui mode) with headless Chromium: the /ui page shows the supervision tree from
# its snapshot, applies live events from /events after a forced failure (SIGUSR1 to the fixture), escapes the
# monitor's text, and shows the action buttons when the actions are enabled; shows the Supervisor run "agent"
# above the tree, paused through POST /api/runs/agent/pause before the page loads; lists, live, an operator action
# performed through the API while it is open, with its origin; takes a screenshot. Then the page of
# 1,000 more components (20 groups of 50): all rows present, the full render's time printed and bounded.
# usage: health_server_ui_chromium.sh FIXTURE SCREENSHOT_PNG
# Exit 77 (a CTest skip) without chromium (Debian: chromium; TASKMON_WITH_CHROMIUM=1 scripts/test installs it).
set -euo pipefail
fixture="$1"
screenshot="$2"
work=$(mktemp -d)
# shellcheck source=chromium_page.sh
source "$(dirname "${BASH_SOURCE[0]}")/chromium_page.sh"
pid=
signaller=
actor=
cleanup() {
    [ -n "$signaller" ] && kill "$signaller" 2>/dev/null || true
    [ -n "$actor" ] && kill "$actor" 2>/dev/null || true
    [ -n "$pid" ] && kill "$pid" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

token=0123456789abcdef0123456789abcdef
"$fixture" "$work/port" ui "$token" >"$work/fixture.out" 2>&1 &
pid=$!
port=$(wait_for_port "$work/port")
base="http://127.0.0.1:$port"
failures=0
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }

# Wait until db gave up (fails at once, 2 restarts) and on_demand runs, so that the page shows a stable tree.
for _ in $(seq 200); do
    tree=$(curl -s --max-time 5 "$base/api/tree" || true)
    if grep -qF '{"name":"db","state":"gave_up"' <<<"$tree" &&
        grep -qF '{"name":"on_demand","state":"running"' <<<"$tree"; then
        break
    fi
    sleep 0.05
done
before=$(grep -o '"last_sequence":[0-9]*' <<<"$tree" | cut -d: -f2)

# The run: paused through the API (with the token and the CSRF header), then its status on the page.
code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 -X POST -H "Authorization: Bearer $token" \
    -H 'X-Taskmon-Action: 1' "$base/api/runs/agent/pause")
[ "$code" = 200 ] || fail "POST /api/runs/agent/pause answered $code"
code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 -X POST -H 'X-Taskmon-Action: 1' \
    "$base/api/runs/agent/resume")
[ "$code" = 401 ] || fail "POST /api/runs/agent/resume without a token answered $code"
for _ in $(seq 200); do
    curl -s --max-time 5 "$base/api/tree" | grep -qF '"runs":[{"name":"agent","status":"paused"' && break
    sleep 0.05
done

# Forced failures while the page is open: SIGUSR1 makes on_demand fail (then its group restarts it with sink).
(while kill -USR1 "$pid" 2>/dev/null; do sleep 0.3; done) &
signaller=$!

# A polling loop, bounded: up to 10 page loads (~4 s each) until the DOM shows a live event newer than `before`.
live=0
dump_until_live "$base/ui?hold" "$work/dom.html" "$before" 10 && live=1
[ "$live" = 1 ] || fail "no live event in the DOM after $attempt page loads (last-seq ${seq:-none}, snapshot $before)"
dom="$work/dom.html"
echo "live event applied after $attempt page load(s): last-seq $seq > $before"
contains() { grep -qF -- "$1" "$dom" || fail "DOM lacks: $1"; }
contains '<body data-actions="1"'
contains 'data-group="pipeline"'
contains 'rest_for_one · '
contains 'data-component="on_demand"'
contains 'data-component="sink"'
contains 'data-component="db" data-state="gave_up"'
contains 'data-component="weird &quot;name&quot;\"'
contains 'forced failure &lt;b&gt;not bold&lt;/b&gt;'  # the monitor's text is text, never markup
contains '<button data-verb="restart">restart</button>'
contains 'data-run="agent" data-status="paused"'
contains 'deadline in 3.0 h'  # the watched component's liveness deadline (ComponentStats::liveness_deadline)
contains '<button data-verb="pause">pause</button>'
grep -q '<b>not bold</b>' "$dom" && fail "the last error was parsed as HTML"

# The action list updates live: while a page is open, POST /api/components/sink/restart (with the token) every
# 0.3 s; the page lists each operator_action event as it arrives ("<time> restart component sink by 127.0.0.1
# (http_api)"). A fresh page's list is empty (actions are not in the snapshot), so a listed one came live. sink is
# restarted by its group at every forced failure anyway. Bounded: up to 5 page loads.
(while :; do
    curl -s -o /dev/null -w '%{http_code}\n' --max-time 5 -X POST -H "Authorization: Bearer $token" \
        -H 'X-Taskmon-Action: 1' "$base/api/components/sink/restart" >>"$work/actions.out" || true
    sleep 0.3
done) &
actor=$!
listed=0
for attempt in $(seq 5); do
    chrome --dump-dom "$base/ui?hold" >"$work/actions.html" || true
    if grep -qE '<div id="action-log"><div>[0-9T:.-]+Z restart component sink by 127\.0\.0\.1 \(http_api\)</div>' \
        "$work/actions.html"; then
        listed=1
        break
    fi
done
kill "$actor" 2>/dev/null || true
wait "$actor" 2>/dev/null || true
[ "$listed" = 1 ] || fail "the page's action list did not show the API's restart of sink after $attempt page loads:" \
    "$(grep -o '<div id="action-log">.\{0,200\}' "$work/actions.html" || echo 'no #action-log')"
grep -qF 'data-last-action="restart component sink"' "$work/actions.html" || fail "body lacks data-last-action"
grep -qx 200 "$work/actions.out" ||
    fail "no POST /api/components/sink/restart answered 200: $(sort "$work/actions.out" | uniq -c)"
echo "live action list: the API's restart of sink listed with its origin after $attempt page load(s)"

chrome --screenshot="$screenshot" "$base/ui?hold" >/dev/null || true
[ -s "$screenshot" ] || fail "no screenshot at $screenshot"
kill "$signaller" 2>/dev/null || true
wait "$signaller" 2>/dev/null || true
signaller=

kill -TERM "$pid"
status=0
wait "$pid" || status=$?
pid=
[ "$status" -eq 0 ] || fail "fixture exited with $status after SIGTERM"
grep -q '^closed$' "$work/fixture.out" || fail "fixture did not close cleanly: $(cat "$work/fixture.out")"

# 1,000 more components: the page lists them all and renders them in a bounded time (generous: a shared machine).
rm -f "$work/port"
"$fixture" "$work/port" ui "$token" 1000 >"$work/fixture.out" 2>&1 &
pid=$!
base="http://127.0.0.1:$(wait_for_port "$work/port")"
for _ in $(seq 200); do
    [ "$(curl -s --max-time 5 "$base/api/tree" | grep -o '"state":"running"' | wc -l)" -ge 1004 ] && break
    sleep 0.05
done
rows=0
for attempt in $(seq 5); do
    chrome --dump-dom "$base/ui?hold" >"$work/big.html" || true
    rows=$(grep -o 'data-component="bulk-[0-9]*"' "$work/big.html" | sort -u | wc -l)
    [ "$rows" -eq 1000 ] && break
done
[ "$rows" -eq 1000 ] || fail "the page of 1,000 components lists $rows of them"
render_ms=$(grep -o 'data-render-ms="[0-9]*"' "$work/big.html" | grep -o '[0-9]*' || echo 99999)
echo "1,000 components: full render in ${render_ms} ms, page DOM $(wc -c <"$work/big.html") bytes"
[ "$render_ms" -lt 3000 ] || fail "rendering 1,000 components took ${render_ms} ms"
grep -qF 'data-group="shard-19"' "$work/big.html" || fail "group shard-19 missing"
kill -TERM "$pid"
wait "$pid" || fail "fixture (1,000 components) did not exit cleanly"
pid=

[ "$failures" -eq 0 ] || { echo "$failures failure(s)"; tail -5 "$work/chromium.err"; exit 1; }
echo "all checks passed"

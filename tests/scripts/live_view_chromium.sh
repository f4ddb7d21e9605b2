#!/usr/bin/env bash
# Drives examples/live_view with headless Chromium: its /ui page shows the tree the example declares (the storage
# group, rest_for_one, with db and indexer; api with its liveness deadline left; the planner run above the tree),
# applies live events (cache fails every 4 s on its own), and shows the action buttons; an operator action without
# the token is refused (401), the same with it performed (200); SIGINT closes the example cleanly.
# usage: live_view_chromium.sh LIVE_VIEW
set -euo pipefail
example="$1"
work=$(mktemp -d)
# shellcheck source=chromium_page.sh
source "$(dirname "${BASH_SOURCE[0]}")/chromium_page.sh"
pid=
cleanup() {
    [ -n "$pid" ] && kill "$pid" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

token=0123456789abcdef0123456789abcdef
TASKMON_ACTION_TOKEN=$token "$example" --port 0 --port-file "$work/port" >"$work/example.out" 2>&1 &
pid=$!
base="http://127.0.0.1:$(wait_for_port "$work/port")"
failures=0
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }

post() {  # METHOD-less POST of an action; prints the status code. Extra curl arguments first.
    curl -s -o /dev/null -w '%{http_code}' --max-time 5 -X POST -H 'X-Taskmon-Action: 1' "$@"
}
code=$(post "$base/api/components/cache/restart")
[ "$code" = 401 ] || fail "POST /api/components/cache/restart without the token answered $code"

# The tree once the group started (indexer after db's ready()), and its last sequence.
for _ in $(seq 200); do
    tree=$(curl -s --max-time 5 "$base/api/tree" || true)
    grep -qF '{"name":"indexer","state":"running"' <<<"$tree" && break
    sleep 0.05
done
before=$(grep -o '"last_sequence":[0-9]*' <<<"$tree" | cut -d: -f2)

# Page loads (~3 s each, at most 6) until the DOM shows a live event newer than the snapshot above.
live=0
dump_until_live "$base/ui?hold" "$work/dom.html" "$before" 6 && live=1
[ "$live" = 1 ] || fail "no live event in the DOM after $attempt page loads (last-seq ${seq:-none}, snapshot $before)"
contains() { grep -qF -- "$1" "$work/dom.html" || fail "DOM lacks: $1"; }
contains '<body data-actions="1"'
contains 'data-group="storage"'
contains 'rest_for_one · '
contains 'data-component="db"'
contains 'data-component="indexer"'
contains 'data-component="cache"'
contains 'data-component="api" data-state="running"'
contains 'deadline in '
contains 'data-run="planner" data-status="running"'

code=$(post -H "Authorization: Bearer $token" "$base/api/components/cache/restart")
[ "$code" = 200 ] || fail "POST /api/components/cache/restart with the token answered $code"

kill -INT "$pid"
status=0
wait "$pid" || status=$?
pid=
[ "$status" -eq 0 ] || fail "live_view exited with $status after SIGINT"
grep -q '^closed$' "$work/example.out" || fail "live_view did not close cleanly: $(tail -n 5 "$work/example.out")"

if [ "$failures" -gt 0 ]; then
    echo "$failures check(s) failed; live_view's output:"
    tail -n 20 "$work/example.out"
    exit 1
fi
echo "live_view: page, live event after $attempt load(s), actions refused without the token and performed with it"

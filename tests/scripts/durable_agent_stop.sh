#!/usr/bin/env bash
# examples/durable_agent stopped cleanly with SIGTERM mid-run, then run again with the same journal: the first run
# says it stopped, the second says it resumed, ends completed, and no action was executed twice.
# usage: durable_agent_stop.sh <durable_agent binary>
set -euo pipefail
agent=$1
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT

"$agent" "$dir/runs.db" >"$dir/first.txt" 2>&1 &
pid=$!
# Wait until a few actions ran (each takes 50 ms; the run has 19), then stop it: bounded to 10 s.
for _ in $(seq 1 200); do
    if [ "$(grep -c '^executed ' "$dir/first.txt" || true)" -ge 4 ]; then break; fi
    sleep 0.05
done
kill -TERM "$pid"
first_status=0
wait "$pid" || first_status=$?
echo "--- first run (SIGTERM, exit status $first_status)"; cat "$dir/first.txt"
[ "$first_status" -eq 0 ] || { echo "FAIL: the stopped run exited with status $first_status"; exit 1; }
grep -q '^run stopped' "$dir/first.txt" || { echo "FAIL: the first run did not stop cleanly"; exit 1; }

status=0
"$agent" "$dir/runs.db" >"$dir/second.txt" 2>&1 || status=$?
echo "--- second run (exit status $status)"; cat "$dir/second.txt"
[ "$status" -eq 0 ] || { echo "FAIL: the second run exited with status $status"; exit 1; }

grep -q '^resumed the run at step ' "$dir/second.txt" || { echo "FAIL: the second run did not resume"; exit 1; }
grep -q '^run completed' "$dir/second.txt" || { echo "FAIL: the second run did not complete"; exit 1; }
twice=$(cat "$dir/first.txt" "$dir/second.txt" | grep '^executed ' | sort | uniq -d)
if [ -n "$twice" ]; then
    echo "FAIL: executed twice: $twice"
    exit 1
fi
echo "OK: stopped, resumed, completed, no action executed twice"

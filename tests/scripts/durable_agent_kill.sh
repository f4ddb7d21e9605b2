#!/usr/bin/env bash
# examples/durable_agent killed with SIGKILL mid-run, then run again with the same journal: the second run says it
# resumed, ends completed, and no action was executed twice across the two processes.
# usage: durable_agent_kill.sh <durable_agent binary>
set -euo pipefail
agent=$1
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT

"$agent" "$dir/runs.db" >"$dir/first.txt" 2>&1 &
pid=$!
# Wait until a few actions ran (each takes 50 ms; the run has 19), then kill it: bounded to 10 s.
for _ in $(seq 1 200); do
    if [ "$(grep -c '^executed ' "$dir/first.txt" || true)" -ge 4 ]; then break; fi
    sleep 0.05
done
kill -KILL "$pid"
wait "$pid" || true
echo "--- first run (killed)"; cat "$dir/first.txt"

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
echo "OK: resumed, completed, no action executed twice"

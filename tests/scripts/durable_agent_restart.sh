#!/usr/bin/env bash
# examples/durable_agent interrupted mid-run, then run again with the same journal: the second run says it resumed,
# ends completed, and no action was executed twice across the two processes. With KILL (kill -9) the first process
# dies at once; with TERM it stops cleanly, must exit 0 and say "run stopped".
# usage: durable_agent_restart.sh <durable_agent binary> KILL|TERM
set -euo pipefail
agent=$1
signal=$2
case "$signal" in KILL | TERM) ;; *) echo "usage: $0 <durable_agent> KILL|TERM" >&2; exit 2 ;; esac
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT

"$agent" "$dir/runs.db" >"$dir/first.txt" 2>&1 &
pid=$!
# Wait until a few actions ran (each takes 50 ms; the run has 19), then signal it: bounded to 10 s.
for _ in $(seq 1 200); do
    if [ "$(grep -c '^executed ' "$dir/first.txt" || true)" -ge 4 ]; then break; fi
    sleep 0.05
done
kill "-$signal" "$pid"
first_status=0
wait "$pid" || first_status=$?
echo "--- first run (SIG$signal, exit status $first_status)"; cat "$dir/first.txt"
if [ "$signal" = TERM ]; then
    [ "$first_status" -eq 0 ] || { echo "FAIL: the stopped run exited with status $first_status"; exit 1; }
    grep -q '^run stopped' "$dir/first.txt" || { echo "FAIL: the first run did not stop cleanly"; exit 1; }
fi

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
echo "OK: resumed after SIG$signal, completed, no action executed twice"

#!/usr/bin/env bash
# Runs examples/worker_pool twice: to its end (3 s: back-pressure, a failed job reported, its worker restarted,
# exit 0 with every accepted job accounted for) and interrupted by SIGINT while jobs are queued and running
# (exit 0, the jobs cut short and those still queued reported, nothing unresponsive).
# usage: worker_pool_run.sh WORKER_POOL
set -euo pipefail
program="$1"

work=$(mktemp -d)
pid=
cleanup() {
    [ -n "$pid" ] && kill -KILL "$pid" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT
failures=0
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }
expect() { grep -qF "$2" "$1" || fail "$(basename "$1"): no line with '$2'"; }

# wait_exit: sets `status` to the exit status of $pid once it exited (at most 20 s), or to "timeout".
wait_exit() {
    status=timeout
    for _ in $(seq 400); do
        if ! kill -0 "$pid" 2>/dev/null; then
            status=0
            wait "$pid" || status=$?
            break
        fi
        sleep 0.05
    done
    [ "$status" = timeout ] || pid=
}

"$program" >"$work/full" 2>&1 &
pid=$!
wait_exit
[ "$status" = 0 ] || fail "worker_pool exited with $status"
expect "$work/full" "accepted after waiting"
expect "$work/full" "not processed: corrupt input in job 9"
expect "$work/full" "Successfully restarted component worker-"
expect "$work/full" "time is up: closing"
expect "$work/full" "unresponsive=0"
expect "$work/full" "worker_pool: every accepted job processed once or reported; closed cleanly"

"$program" >"$work/interrupted" 2>&1 &
pid=$!
for _ in $(seq 200); do
    grep -qF "job 1 done" "$work/interrupted" && break  # io.run() runs: the signal handler is installed
    sleep 0.05
done
kill -INT "$pid" 2>/dev/null || true  # already gone: wait_exit reports its status
wait_exit
[ "$status" = 0 ] || fail "worker_pool exited with $status after SIGINT"
expect "$work/interrupted" "SIGINT: closing"
expect "$work/interrupted" "not processed: cut short by the close"
expect "$work/interrupted" "unresponsive=0"
expect "$work/interrupted" "worker_pool: every accepted job processed once or reported; closed cleanly"

if [ "$failures" -ne 0 ]; then
    for run in full interrupted; do
        echo "--- worker_pool output ($run):"
        cat "$work/$run"
    done
    exit 1
fi
echo "worker_pool: both runs clean"

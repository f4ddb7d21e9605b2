#!/usr/bin/env bash
# Drives examples/echo_server over loopback with bash's /dev/tcp: several concurrent clients echo lines, the
# connection limit holds a third client back until one ends, SIGINT closes the server cleanly (exit 0, the
# shutdown lines logged, the open connections closed by the server).
# usage: echo_server_clients.sh ECHO_SERVER
set -euo pipefail
server="$1"

work=$(mktemp -d)
pid=
cleanup() {
    [ -n "$pid" ] && kill -KILL "$pid" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT
failures=0
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }

# Port 0: the server picks one and prints it. At most 2 connections are served at once.
SPDLOG_LEVEL=debug "$server" 0 2 >"$work/out" 2>&1 &
pid=$!
port=
for _ in $(seq 200); do
    port=$(sed -n 's/^listening on 127\.0\.0\.1:\([0-9][0-9]*\)$/\1/p' "$work/out" 2>/dev/null || true)
    [ -n "$port" ] && break
    sleep 0.05
done
[ -n "$port" ] || { echo "FAIL: no port printed: $(cat "$work/out")"; exit 1; }

# expect_line FD WANT: the next line read from FD (10 s at most) is WANT.
expect_line() {
    local fd="$1" want="$2" got=
    if ! IFS= read -r -t 10 -u "$fd" got; then
        fail "fd $fd: no line where '$want' was expected"
    elif [ "$got" != "$want" ]; then
        fail "fd $fd: got '$got', expected '$want'"
    fi
}

exec 3<>"/dev/tcp/127.0.0.1/$port"
exec 4<>"/dev/tcp/127.0.0.1/$port"
for i in 1 2 3 4 5; do
    printf 'client a line %s\n' "$i" >&3
    printf 'client b line %s\n' "$i" >&4
    expect_line 4 "client b line $i"
    expect_line 3 "client a line $i"
done
printf 'two lines\nin one write\n' >&3
expect_line 3 "two lines"
expect_line 3 "in one write"

# A third client is connected by the kernel but not served while two connections hold the permits.
exec 5<>"/dev/tcp/127.0.0.1/$port"
printf 'client c line 1\n' >&5
if IFS= read -r -t 1 -u 5 got; then
    fail "a third connection was served beyond the limit of 2: '$got'"
fi
exec 3>&-  # client a leaves: its task completes and frees a permit; client c is accepted and served
expect_line 5 "client c line 1"
printf 'client c line 2\n' >&5
expect_line 5 "client c line 2"
printf 'client b line 6\n' >&4
expect_line 4 "client b line 6"

kill -INT "$pid"
status=
for _ in $(seq 200); do
    if ! kill -0 "$pid" 2>/dev/null; then
        status=0
        wait "$pid" || status=$?
        break
    fi
    sleep 0.05
done
if [ -z "$status" ]; then
    fail "echo_server still running 10 s after SIGINT"
else
    pid=
    [ "$status" -eq 0 ] || fail "echo_server exited with $status after SIGINT"
fi
# The server closed the connections it cancelled: both clients read end-of-file.
for fd in 4 5; do
    if IFS= read -r -t 10 -u "$fd" got; then
        fail "fd $fd: read '$got' after shutdown, expected end-of-file"
    elif [ $? -gt 128 ]; then
        fail "fd $fd: connection still open after shutdown"
    fi
done

log="$work/out"
grep -qF 'Received SIGINT; closing' "$log" || fail "no 'Received SIGINT' line"
grep -qF 'TaskMonitor closed components=2 unresponsive=0' "$log" || fail "no clean 'TaskMonitor closed' line"
grep -qF 'echo_server: closed cleanly' "$log" || fail "no 'closed cleanly' line"
# Connections are named after their task ids: 1 and 2 are the acceptor and the reporter, so the first client
# is conn-3 and the third conn-5.
grep -q '\[debug\] Component conn-3 completed component=conn-3' "$log" || fail "conn-3 did not complete at debug"
grep -q '\[debug\] Component conn-5 stopped component=conn-5' "$log" || fail "conn-5 not stopped by the close"
grep -q '\[info\] .*conn-' "$log" && fail "per-connection lines at info: $(grep '\[info\] .*conn-' "$log")"
grep -qE '\[(warning|error|critical)\]' "$log" && fail "warnings or errors logged: $(grep -E '\[(warning|error|critical)\]' "$log")"
if [ "$failures" -ne 0 ]; then
    echo "--- echo_server output:"
    cat "$log"
    echo "$failures failure(s)"
    exit 1
fi
echo "all checks passed"

# Sourced by the browser tests (health_server_ui_chromium.sh, live_view_chromium.sh), after they set `work` (a
# temporary directory): finds Chromium, or exits 77 (a CTest skip; Debian: chromium, which
# TASKMON_WITH_CHROMIUM=1 scripts/test installs), checks for curl, and defines chrome() and wait_for_port().

browser=$(command -v chromium || command -v chromium-browser || true)
if [ -z "$browser" ]; then
    echo "chromium not found (Debian: chromium); skipping. TASKMON_WITH_CHROMIUM=1 scripts/test installs it."
    exit 77
fi
command -v curl >/dev/null 2>&1 || { echo "curl not found (Debian: curl)"; exit 1; }

# Chromium headless, as root in a container: no sandbox, no GPU, a profile of its own. The page's ?hold keeps its
# load event pending, so --timeout (3 s) decides when the DOM is dumped, with the live events applied meanwhile.
chrome() {
    timeout 60 "$browser" --headless --no-sandbox --disable-gpu --no-first-run --user-data-dir="$work/profile" \
        --timeout=3000 --window-size=1280,720 "$@" 2>>"$work/chromium.err"
}

# The port a server wrote into FILE once listening (waits up to 5 s).
wait_for_port() {
    for _ in $(seq 100); do
        [ -s "$1" ] && break
        sleep 0.05
    done
    cat "$1"
}

# Dumps URL's DOM into FILE (--dump-dom) until the page shows a live event newer than the sequence BEFORE, at most
# MAX page loads; sets `attempt` (the loads made) and `seq` (the page's last sequence). Fails when none did.
dump_until_live() {  # URL FILE BEFORE MAX
    for attempt in $(seq "$4"); do
        chrome --dump-dom "$1" >"$2" || true
        seq=$(grep -o 'id="last-seq">[0-9]*' "$2" | grep -o '[0-9]*$' || echo 0)
        if grep -q '<body[^>]*data-last-kind="' "$2" && [ "${seq:-0}" -gt "${3:-0}" ]; then
            return 0
        fi
    done
    return 1
}

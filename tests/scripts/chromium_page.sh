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

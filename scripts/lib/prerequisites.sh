# shellcheck shell=bash
# Sourced by scripts/demo, scripts/test and scripts/check-format: makes sure the system packages a build (or the
# format check) needs are present.
#
# taskmon_require_packages PRESET
#   PRESET: a CMake preset (demo, dev, clang, asan, tsan, release), or `format` for scripts/check-format
#   (clang-format). What each needs is listed in taskmon_packages_for below and in the README's Quick start.
#   On Debian or Ubuntu, run as root: installs the missing packages with apt-get (only the missing ones).
#   Elsewhere, or without root: prints the exact packages (Debian names) or files that are missing and exits 1.
#   TASKMON_WITH_PROMTOOL=1 also installs Debian's prometheus package for `promtool check metrics` (22 MB
#   download, about 330 MB installed, a system user and a service: not installed by default; without it
#   that one test is skipped).
#   Debian's chromium is installed for the dev preset (the README's test command), for the browser test of the
#   health server's /ui page (health_server.ui_chromium: headless --dump-dom and --screenshot; about 100 MB
#   download, 350 MB installed). TASKMON_WITH_CHROMIUM=0 leaves it out (the test is then skipped), =1 installs it
#   for any preset that runs tests.

taskmon_packages_for() {
    # The pseudo-preset `format` (scripts/check-format) needs clang-format only.
    if [ "$1" = format ]; then
        echo "clang-format"
        return
    fi
    # Every build: the compiler, CMake with Ninja, and the three libraries of the core.
    local packages="cmake ninja-build g++ libasio-dev libfmt-dev libspdlog-dev"
    # The demo preset builds and runs agent_demo: nothing more.
    if [ "$1" = demo ]; then
        echo "$packages"
        return
    fi
    # The tests: Catch2, ccache (a rebuild takes seconds), the optional integrations they cover (History as JSON,
    # the HTTP endpoints, prometheus-cpp, the durable runs' SQLite journal), xmllint for the timeline SVG checks
    # and curl for the HTTP ones.
    packages="$packages catch2 ccache nlohmann-json3-dev libhttp-parser-dev prometheus-cpp-dev libsqlite3-dev"
    packages="$packages libxml2-utils curl"
    if [ "${TASKMON_WITH_PROMTOOL:-0}" = 1 ]; then
        packages="$packages prometheus"
    fi
    if [ "${TASKMON_WITH_CHROMIUM:-}" = 1 ] || { [ "$1" = dev ] && [ "${TASKMON_WITH_CHROMIUM:-}" != 0 ]; }; then
        packages="$packages chromium"
    fi
    case "$1" in
        # dev runs the consumer checks, one of which builds through pkg-config.
        dev) packages="$packages pkg-config" ;;
        # clang and release build the benchmarks (bench/); release is where they are measured.
        clang) packages="$packages clang libbenchmark-dev" ;;
        release) packages="$packages libbenchmark-dev" ;;
    esac
    echo "$packages"
}

taskmon_missing_debian_packages() {
    local missing=() package
    for package in "$@"; do
        if ! dpkg-query -W -f='${Status}\n' "$package" 2>/dev/null | grep -q '^install ok installed$'; then
            missing+=("$package")
        fi
    done
    echo "${missing[*]}"
}

# Without dpkg we cannot ask for packages by name, so look for what the build uses directly.
taskmon_missing_files() {
    local preset=$1 missing=() tool header tools="cmake ninja c++"
    [ "$preset" = dev ] && tools="$tools pkg-config"
    for tool in $tools; do
        command -v "$tool" >/dev/null 2>&1 || missing+=("command:$tool")
    done
    if command -v c++ >/dev/null 2>&1; then
        local headers="asio.hpp fmt/core.h spdlog/spdlog.h"
        case "$preset" in clang | release) headers="$headers benchmark/benchmark.h" ;; esac
        for header in $headers; do
            printf '#include <%s>\n' "$header" | c++ -std=c++20 -E -x c++ - >/dev/null 2>&1 ||
                missing+=("header:<$header>")
        done
        [ "$preset" = demo ] || printf '#if __has_include(<catch2/catch_test_macros.hpp>) || __has_include(<catch2/catch.hpp>)\n#else\n#error\n#endif\n' |
            c++ -std=c++20 -E -x c++ - >/dev/null 2>&1 || missing+=("header:<catch2/catch.hpp>")
    fi
    echo "${missing[*]}"
}

taskmon_require_packages() {
    local preset="${1:-dev}" packages missing
    packages=$(taskmon_packages_for "$preset")
    if command -v dpkg-query >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1; then
        # shellcheck disable=SC2086
        missing=$(taskmon_missing_debian_packages $packages)
        [ -z "$missing" ] && return 0
        if [ "$(id -u)" -ne 0 ]; then
            echo "taskmon: missing Debian packages: $missing" >&2
            echo "taskmon: install them with:  sudo apt-get install -y $missing" >&2
            exit 1
        fi
        echo "taskmon: installing missing packages: $missing"
        export DEBIAN_FRONTEND=noninteractive
        # shellcheck disable=SC2086
        # A fresh machine may have no package lists yet: update once and retry.
        if ! apt-get install -y --no-install-recommends $missing; then
            apt-get update
            if ! apt-get install -y --no-install-recommends $missing; then
                echo "taskmon: apt-get could not install: $missing" >&2
                exit 1
            fi
        fi
        return 0
    fi
    if [ "$preset" = format ]; then
        command -v clang-format >/dev/null 2>&1 && return 0
        echo "taskmon: clang-format (version 14, as in Debian 12) is missing; install it from your distribution" >&2
        exit 1
    fi
    missing=$(taskmon_missing_files "$preset")
    [ -z "$missing" ] && return 0
    echo "taskmon: this is not a Debian/Ubuntu system, so nothing was installed." >&2
    echo "taskmon: missing: $missing" >&2
    echo "taskmon: needed: CMake >= 3.25, Ninja, a C++20 compiler (g++ >= 12 or clang++ >= 14)," >&2
    echo "taskmon:         Asio >= 1.22 (standalone), fmt >= 9, spdlog >= 1.10;" >&2
    echo "taskmon:         for the tests: Catch2 2.13 or 3, pkg-config (dev: a consumer check);" >&2
    echo "taskmon:         for the benchmarks (clang, release): Google Benchmark;" >&2
    echo "taskmon:         optional: nlohmann/json >= 3.11 (History as JSON), xmllint (timeline SVG checks)." >&2
    echo "taskmon:         optional: http_parser 2.9, prometheus-cpp 1.0, curl (the HTTP endpoints and their tests)." >&2
    echo "taskmon:         optional: SQLite 3 (the journal of durable agent runs)." >&2
    echo "taskmon: on Debian these are: $packages" >&2
    exit 1
}

taskmon_require_cmake_3_25() {
    local version
    version=$(cmake --version | head -n1 | sed -E 's/[^0-9]*([0-9]+\.[0-9]+).*/\1/')
    if ! printf '3.25\n%s\n' "$version" | sort -V -C; then
        echo "taskmon: CMake $version is too old: the presets need CMake 3.25 or newer (Debian 12 has 3.25.1)" >&2
        exit 1
    fi
}

// taskmon — coroutine supervision for standalone Asio.
// SPDX-License-Identifier: MIT
#pragma once

/// Library version, as three numbers and one integer MAJOR*10000 + MINOR*100 + PATCH.
/// The build reads these lines to set the CMake project version; keep their shape.
#define TASKMON_VERSION_MAJOR 0
#define TASKMON_VERSION_MINOR 1
#define TASKMON_VERSION_PATCH 0

#define TASKMON_VERSION (TASKMON_VERSION_MAJOR * 10000 + TASKMON_VERSION_MINOR * 100 + TASKMON_VERSION_PATCH)

#define TASKMON_DETAIL_STR2(x) #x
#define TASKMON_DETAIL_STR(x) TASKMON_DETAIL_STR2(x)
/// The version as a string literal, "MAJOR.MINOR.PATCH".
#define TASKMON_VERSION_STRING                \
    TASKMON_DETAIL_STR(TASKMON_VERSION_MAJOR) \
    "." TASKMON_DETAIL_STR(TASKMON_VERSION_MINOR) "." TASKMON_DETAIL_STR(TASKMON_VERSION_PATCH)

namespace taskmon {

/// The version of the headers this translation unit was compiled against.
struct Version {
    int major;
    int minor;
    int patch;
};

inline constexpr Version version{TASKMON_VERSION_MAJOR, TASKMON_VERSION_MINOR, TASKMON_VERSION_PATCH};

}  // namespace taskmon

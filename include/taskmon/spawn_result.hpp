// taskmon — coroutine supervision for standalone Asio.
// SPDX-License-Identifier: MIT
//
// SpawnResult: what TaskMonitor::try_spawn() and try_spawn_numbered() did with a task, and the task's name.
#pragma once

#include <taskmon/detail/enum_formatter.hpp>

#include <string>
#include <string_view>

namespace taskmon {

/// Whether a task was spawned, or why not.
enum class SpawnStatus {
    spawned,         ///< it runs under supervision
    monitor_closed,  ///< close() started: nothing more is spawned (an accept loop ends here)
    name_taken,      ///< a component, a group, a spawned task still running or a removed instance still running
                     ///< has the name (try_spawn() only: try_spawn_numbered() picks a free name)
};

/// The enumerator's name ("monitor_closed"); fmt::format("{}", status) prints the same.
[[nodiscard]] constexpr std::string_view to_string(SpawnStatus status) noexcept {
    switch (status) {
        case SpawnStatus::spawned: return "spawned";
        case SpawnStatus::monitor_closed: return "monitor_closed";
        case SpawnStatus::name_taken: return "name_taken";
    }
    return "unknown";
}

/// The outcome of try_spawn() / try_spawn_numbered(). A refused task was destroyed without running (its
/// coroutine's parameters, a socket for instance, were destroyed with it) before the call returned.
struct SpawnResult {
    SpawnStatus status = SpawnStatus::spawned;
    std::string name;  ///< the name asked for, or the one try_spawn_numbered() generated (empty if closed)

    /// True if the task was spawned.
    [[nodiscard]] explicit operator bool() const noexcept { return status == SpawnStatus::spawned; }
};

namespace detail {

/// Which of BasicTaskMonitor's spawn calls: spawn(), try_spawn(), spawn_numbered(), try_spawn_numbered().
/// Declared here, with the result, because task_monitor.hpp's member definitions name it before the monitor's
/// state is complete.
enum class SpawnMode { named, try_named, numbered, try_numbered };

}  // namespace detail

}  // namespace taskmon

// taskmon — coroutine supervision for standalone Asio.
// SPDX-License-Identifier: MIT
//
// ComponentStats: a snapshot of one supervised component, as returned by TaskMonitor::get_component_stats().
#pragma once

#include <taskmon/detail/enum_formatter.hpp>

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace taskmon {

/// Lifecycle of a supervised component.
enum class ComponentState : std::uint8_t {
    not_started,   ///< known (e.g. from set_restart_factories) but never registered
    running,       ///< an instance is live
    restarting,    ///< between a failure (or restart()) and the new instance running; is_restarting is true
    stopping,      ///< cancellation requested by disable() or close(); waiting for the instance to exit
    stopped,       ///< stopped on request (disable, close) and not restarted
    completed,     ///< returned normally and its restart type does not restart it
    failed,        ///< failed and is not restarted (temporary, not enabled, or no restart factory)
    gave_up,       ///< the restart limit was exceeded; no further automatic restarts
    unresponsive,  ///< ignored a requested stop for longer than its shutdown_timeout (still waited for)
    quarantined,   ///< gave up under GiveUpMode::quarantine; a trial instance starts at next_trial_at
};

/// The enumerator's name ("gave_up"); fmt::format("{}", state) prints the same.
[[nodiscard]] constexpr std::string_view to_string(ComponentState state) noexcept {
    switch (state) {
        case ComponentState::not_started: return "not_started";
        case ComponentState::running: return "running";
        case ComponentState::restarting: return "restarting";
        case ComponentState::stopping: return "stopping";
        case ComponentState::stopped: return "stopped";
        case ComponentState::completed: return "completed";
        case ComponentState::failed: return "failed";
        case ComponentState::gave_up: return "gave_up";
        case ComponentState::unresponsive: return "unresponsive";
        case ComponentState::quarantined: return "quarantined";
    }
    return "unknown";
}

/// One component's state at the moment of the snapshot. The first six keys (enabled … last_restart_time) are
/// those get_component_stats() returned in the design taskmon ports (docs/origin.md); the others are taskmon's.
struct ComponentStats {
    bool enabled = false;         ///< restarted automatically when it fails
    int restart_count = 0;        ///< restarts performed (automatic and manual)
    bool is_restarting = false;   ///< from the failure until the new instance runs
    bool task_done = true;        ///< the current instance has exited (true when none is live)
    bool task_cancelled = false;  ///< the last instance exited through cancellation (operation_aborted)
    std::optional<std::chrono::system_clock::time_point> last_restart_time;  ///< wall clock

    ComponentState state = ComponentState::not_started;
    std::string last_error;  ///< "type: what" of the last failure, empty if none
    int failure_count = 0;   ///< exceptions plus unexpected cancellations
    /// Counted automatic restarts that happened (their factory was called) within the last restart_window; a
    /// restart still waiting for its backoff is not among them.
    int restarts_in_window = 0;
    std::optional<std::chrono::system_clock::time_point> next_restart_at;  ///< wall clock, while restarting
    std::uint64_t task_id = 0;  ///< id of the current (or last) instance, unique within the monitor

    std::uint64_t generation = 0;  ///< instances of this component started so far (1 for the first)
    /// The current instance is ready: it called ComponentContext::ready(), or its policy has no
    /// startup_timeout (then ready once started). False when no instance is live.
    bool ready = false;
    /// Time since the current instance's last heartbeat (or ready(), idle(), busy(), or its start); empty when
    /// no instance is live.
    std::optional<std::chrono::nanoseconds> last_heartbeat_age;
    /// Wall clock: when the current instance misses its liveness deadline unless it acts: its startup_timeout
    /// from its start while not ready; once ready, its last heartbeat plus watchdog_timeout (idle_timeout while
    /// idle), or a later deadline from extend_deadline(). Empty when none applies: no instance live, a stop
    /// requested, a policy without those timeouts, or idle with no idle_timeout.
    std::optional<std::chrono::system_clock::time_point> liveness_deadline;
    bool idle = false;      ///< the current instance last declared itself idle()
    bool in_trial = false;  ///< the live instance is a quarantine trial (the breaker is half-open)
    std::optional<std::chrono::system_clock::time_point> next_trial_at;  ///< wall clock, while quarantined
    std::chrono::nanoseconds quarantine_cooldown{};  ///< the current (or next) cooldown; 0 if never quarantined
    std::string group;  ///< the group it belongs to (TaskMonitor::supervise_group), empty if none
    /// A short-lived task started by TaskMonitor::spawn() (listed while it runs, never restarted). Health
    /// reports, metrics and timelines leave such tasks out: one per connection would grow them without bound.
    bool spawned = false;
};

}  // namespace taskmon

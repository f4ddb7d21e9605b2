// taskmon — coroutine supervision for standalone Asio.
// SPDX-License-Identifier: MIT
//
// What the next `restarted` of a component reports as its cause, folded from the component's events as they
// happen (internal; the monitor keeps one per component, so consumers read MonitorEvent::restart_reason).
#pragma once

#include <taskmon/monitor_event.hpp>

#include <optional>

namespace taskmon::detail {

/// The cause the component's next `restarted` will report once an event of `kind` of it happened (`in_group`:
/// it is a group member). A failure, a liveness timeout, restart() or reset() and a quarantine set the cause; a
/// backoff scheduled with none is a permanent component's return; a restart() merged into a pending restart and
/// a group member stopped by its group count only when nothing else did. What ends the pending restart forgets
/// the cause; the `restarted` itself reports it and forgets it.
[[nodiscard]] constexpr std::optional<RestartReason> next_restart_cause(std::optional<RestartReason> cause,
                                                                        MonitorEventKind kind, bool in_group) noexcept {
    switch (kind) {
        case MonitorEventKind::failed: return RestartReason::failed;
        case MonitorEventKind::cancelled_unexpectedly: return RestartReason::cancelled_unexpectedly;
        case MonitorEventKind::factory_failed: return RestartReason::factory_failed;
        case MonitorEventKind::restart_requested:
        case MonitorEventKind::reset: return RestartReason::manual;
        case MonitorEventKind::watchdog_timeout: return RestartReason::watchdog_timeout;
        case MonitorEventKind::startup_timeout: return RestartReason::startup_timeout;
        case MonitorEventKind::quarantined: return RestartReason::quarantine_trial;
        case MonitorEventKind::restart_scheduled: return cause ? cause : RestartReason::completed;
        case MonitorEventKind::restart_merged: return cause ? cause : RestartReason::manual;
        case MonitorEventKind::stopped: return cause || !in_group ? cause : RestartReason::group;
        case MonitorEventKind::started:  // the retry of a failed first factory call: that restart is over
        case MonitorEventKind::restarted:
        case MonitorEventKind::gave_up:
        case MonitorEventKind::escalated:
        case MonitorEventKind::restart_cancelled:
        case MonitorEventKind::completed:
        case MonitorEventKind::not_enabled:
        case MonitorEventKind::no_factory: return std::nullopt;
        default: return cause;  // ready, stop_timeout ...: no bearing on the next restart
    }
}

}  // namespace taskmon::detail

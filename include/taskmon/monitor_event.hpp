// taskmon — coroutine supervision for standalone Asio.
// SPDX-License-Identifier: MIT
//
// MonitorEvent: one state change of a TaskMonitor, as delivered to the listeners of
// BasicTaskMonitor::subscribe() (and written as one log line).
//
//   auto subscription = monitor.subscribe([&](const taskmon::MonitorEvent& e) {
//       if (e.kind == taskmon::MonitorEventKind::gave_up) {
//           alert(e.component, e.reason);
//       }
//   });
#pragma once

#include <taskmon/detail/enum_formatter.hpp>
#include <taskmon/restart_policy.hpp>

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

namespace taskmon {

/// What happened. Every kind except `closed` and the group kinds concerns one component (MonitorEvent::component);
/// the group kinds concern MonitorEvent::group.
enum class MonitorEventKind {
    started,                 ///< first instance of a component started (register_task, supervise, spawn)
    failed,                  ///< an instance threw
    cancelled_unexpectedly,  ///< an instance exited with operation_aborted the monitor did not request
    completed,               ///< an instance returned normally and is not restarted
    restart_scheduled,       ///< backoff started: an automatic restart follows after `delay`
    restarted,               ///< a new instance is running (automatic or manual restart)
    restart_requested,       ///< restart() accepted
    restart_merged,          ///< restart() merged into a pending restart
    gave_up,                 ///< restart limit exceeded: no further automatic restarts
    not_enabled,             ///< failed, but not enabled for restart
    no_factory,              ///< failed, enabled, but no restart factory
    factory_failed,          ///< the restart factory threw or returned an empty awaitable (handled as a failure)
    stopped,                 ///< exited after a requested stop (disable, close, or restart with an error)
    stop_timeout,            ///< ignored a requested stop past its shutdown_timeout (any stop: close, disable,
                             ///< remove, restart, a liveness trip, a group's stop)
    restart_cancelled,       ///< a pending restart was dropped by disable() or close()
    closed,                  ///< close() finished (the component field is empty)
    ready,                   ///< the instance called ComponentContext::ready() (only under a startup_timeout)
    watchdog_timeout,        ///< a ready instance missed its heartbeat deadline: cancelled, counts as a failure
    startup_timeout,         ///< an instance did not call ready() within startup_timeout: likewise
    quarantined,             ///< gave up under GiveUpMode::quarantine: a trial instance follows after `delay`
    trial_started,           ///< a quarantine trial instance is running (a `restarted` precedes it)
    quarantine_closed,       ///< the trial stayed ready for reset_backoff_after: breaker closed, window cleared
    escalated,               ///< gave up under GiveUpMode::escalate: handed to async_wait_escalation()
    reset,                   ///< reset(): restart history cleared by hand
    removed,                 ///< the component left the monitor: remove_and_wait(), or a spawn()ed task ended
    policy_updated,          ///< update_policy(): the new policy applies from the next decision
    group_started,           ///< every member of a new group was started in order (`group`, `members`)
    group_restarting,        ///< a group restart began: `members` are stopped in reverse order, then started
    group_restarted,         ///< the members of a group restart all started again
    group_gave_up,           ///< a group exceeded its max_restarts (or a member escalated): it is given up
    group_shutdown,          ///< auto_shutdown: a significant member ended, the group's members are stopped
};

/// The enumerator's name, e.g. "restart_scheduled"; fmt::format("{}", kind) prints the same.
[[nodiscard]] constexpr std::string_view to_string(MonitorEventKind kind) noexcept {
    switch (kind) {
        case MonitorEventKind::started: return "started";
        case MonitorEventKind::failed: return "failed";
        case MonitorEventKind::cancelled_unexpectedly: return "cancelled_unexpectedly";
        case MonitorEventKind::completed: return "completed";
        case MonitorEventKind::restart_scheduled: return "restart_scheduled";
        case MonitorEventKind::restarted: return "restarted";
        case MonitorEventKind::restart_requested: return "restart_requested";
        case MonitorEventKind::restart_merged: return "restart_merged";
        case MonitorEventKind::gave_up: return "gave_up";
        case MonitorEventKind::not_enabled: return "not_enabled";
        case MonitorEventKind::no_factory: return "no_factory";
        case MonitorEventKind::factory_failed: return "factory_failed";
        case MonitorEventKind::stopped: return "stopped";
        case MonitorEventKind::stop_timeout: return "stop_timeout";
        case MonitorEventKind::restart_cancelled: return "restart_cancelled";
        case MonitorEventKind::closed: return "closed";
        case MonitorEventKind::ready: return "ready";
        case MonitorEventKind::watchdog_timeout: return "watchdog_timeout";
        case MonitorEventKind::startup_timeout: return "startup_timeout";
        case MonitorEventKind::quarantined: return "quarantined";
        case MonitorEventKind::trial_started: return "trial_started";
        case MonitorEventKind::quarantine_closed: return "quarantine_closed";
        case MonitorEventKind::escalated: return "escalated";
        case MonitorEventKind::reset: return "reset";
        case MonitorEventKind::removed: return "removed";
        case MonitorEventKind::policy_updated: return "policy_updated";
        case MonitorEventKind::group_started: return "group_started";
        case MonitorEventKind::group_restarting: return "group_restarting";
        case MonitorEventKind::group_restarted: return "group_restarted";
        case MonitorEventKind::group_gave_up: return "group_gave_up";
        case MonitorEventKind::group_shutdown: return "group_shutdown";
    }
    return "unknown";
}

/// What caused a restart: MonitorEvent::restart_reason of `restarted`, and the `reason` label of
/// taskmon_restarts_total. A closed set, so the label's cardinality is bounded by the code, never by the text of
/// an exception.
enum class RestartReason {
    failed,                  ///< the instance threw
    cancelled_unexpectedly,  ///< the instance exited with operation_aborted nobody requested
    completed,               ///< a permanent component returned normally
    factory_failed,          ///< the restart factory threw; this is the retry
    manual,                  ///< restart() or reset() (also the Supervisor's watchdog restarting perception)
    unknown,                 ///< no cause was recorded for it
    watchdog_timeout,        ///< the instance missed its heartbeat deadline (ComponentContext)
    startup_timeout,         ///< the instance did not call ready() within its startup_timeout
    quarantine_trial,        ///< a trial instance after a quarantine cooldown
    group,                   ///< restarted with its group (one_for_all, rest_for_one) after another member failed
};

inline constexpr std::array<RestartReason, 10> all_restart_reasons{
    RestartReason::failed,           RestartReason::cancelled_unexpectedly,
    RestartReason::completed,        RestartReason::factory_failed,
    RestartReason::manual,           RestartReason::unknown,
    RestartReason::watchdog_timeout, RestartReason::startup_timeout,
    RestartReason::quarantine_trial, RestartReason::group};

[[nodiscard]] constexpr std::string_view to_string(RestartReason reason) noexcept {
    switch (reason) {
        case RestartReason::failed: return "failed";
        case RestartReason::cancelled_unexpectedly: return "cancelled_unexpectedly";
        case RestartReason::completed: return "completed";
        case RestartReason::factory_failed: return "factory_failed";
        case RestartReason::manual: return "manual";
        case RestartReason::unknown: return "unknown";
        case RestartReason::watchdog_timeout: return "watchdog_timeout";
        case RestartReason::startup_timeout: return "startup_timeout";
        case RestartReason::quarantine_trial: return "quarantine_trial";
        case RestartReason::group: return "group";
    }
    return "unknown";
}

/// One state change. A plain aggregate: fields that do not apply to the kind keep their default (0, empty).
///
/// Every component event (all kinds but `closed`) carries `component`, `sequence`, `time`, and the component's
/// `task_id`, `restart_count` and `failure_count` as they are right after the change. The other fields:
///
/// | kind                              | also set                                           |
/// |-----------------------------------|----------------------------------------------------|
/// | failed, cancelled_unexpectedly    | reason, failure_class (failure_count includes it)  |
/// | completed                         | restart_type                                       |
/// | restart_scheduled                 | attempt, delay (the backoff), reason               |
/// | restarted                         | restart_reason; attempt, delay (the backoff or     |
/// |                                   | quarantine cooldown it was scheduled with), reason |
/// |                                   | (the failure's; "completed normally"); none of the |
/// |                                   | three for a manual or group restart                |
/// | gave_up                           | limit, window, reason (limit 0: a fatal failure)   |
/// | factory_failed                    | reason, failure_class (failure_count includes it)  |
/// | watchdog_timeout, startup_timeout | reason, delay (the timeout), failure_class         |
/// | quarantined                       | delay (the cooldown), attempt (trials so far), reason |
/// | escalated                         | limit, window, reason (as gave_up)                 |
/// | removed                           | unresponsive (1 if the instance outlived shutdown_timeout) |
/// | any (spawn()ed component)         | spawned                                            |
/// | stopped                           | reason, only if the instance threw while stopping  |
/// | stop_timeout                      | delay (the shutdown_timeout)                       |
/// | closed                            | count, unresponsive (component and task_id empty)  |
/// | group_started, group_restarted    | group, members (component and task_id empty)       |
/// | group_restarting                  | group, members (restarted), component (the cause), delay, reason |
/// | group_gave_up                     | group, component (the cause), limit, window, reason (window 0: a  |
/// |                                   | member escalated)                                  |
/// | group_shutdown                    | group, members, component (the significant member) |
/// | escalated of a group              | group, limit, window, reason (component empty)     |
struct MonitorEvent {
    MonitorEventKind kind = MonitorEventKind::started;

    /// The component's name; empty for `closed`.
    std::string component{};

    /// 1, 2, 3 … per monitor, in the order the state changes happened (assigned under the monitor's lock).
    /// Listeners on different threads can receive events out of this order; sort by it to restore it.
    std::uint64_t sequence = 0;

    /// When the change happened, on the wall clock derived from the monitor's clock, exactly like
    /// ComponentStats::last_restart_time (so `restarted`'s time equals the stats' last_restart_time, and under
    /// a virtual clock it moves with virtual time). Listeners that queue events keep the time of occurrence.
    std::chrono::system_clock::time_point time{};

    /// The instance concerned: the one that started, exited, failed or was asked to stop; for restarted the new
    /// one. For restart_scheduled, gave_up, factory_failed, restart_requested/merged/cancelled: the component's
    /// current or last instance (0 if it never had one).
    std::uint64_t task_id = 0;

    int attempt = 0;        ///< restart_scheduled, restarted: k of the backoff formula (1 for the first in a row)
    int restart_count = 0;  ///< restarts performed so far, automatic and manual (as in ComponentStats)
    int failure_count = 0;  ///< failures so far: exceptions, unexpected cancellations, factory throws
    int limit = 0;          ///< gave_up: the policy's max_restart_attempts

    std::chrono::nanoseconds
        delay{};  ///< restart_scheduled, restarted: the backoff; stop_timeout: the shutdown_timeout
    std::chrono::nanoseconds window{};  ///< gave_up: the policy's restart_window

    /// failed, cancelled_unexpectedly, factory_failed, stopped: "type: what" of the exception (as in
    /// ComponentStats::last_error); restart_scheduled, restarted, gave_up: what caused the restart ("completed normally"
    /// for a permanent component that returned).
    std::string reason{};

    RestartType restart_type = RestartType::transient;      ///< completed: the component's restart type
    RestartReason restart_reason = RestartReason::unknown;  ///< restarted: what caused the restart
    FailureClass failure_class = FailureClass::counted;  ///< failures: how RestartPolicy::classify_failure counted it

    std::size_t count = 0;         ///< closed: number of components the monitor knew
    std::size_t unresponsive = 0;  ///< closed: components still running when close() gave up waiting; removed: 1
                                   ///< if the instance was still running at its shutdown_timeout

    /// The group of the component (empty if it belongs to none); for the group kinds, the group concerned.
    std::string group{};

    /// group_started, group_restarting, group_restarted, group_shutdown: the group's members concerned
    /// (components and nested groups), in start order.
    std::vector<std::string> members{};

    /// The component was started by BasicTaskMonitor::spawn() (a short-lived task that leaves the monitor when
    /// it ends); its routine lines (started, completed, stopped without error, removed) are logged at debug.
    bool spawned = false;
};

/// A subscriber of BasicTaskMonitor::subscribe().
using MonitorEventListener = std::function<void(const MonitorEvent&)>;

}  // namespace taskmon

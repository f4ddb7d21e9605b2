// taskmon — coroutine supervision for standalone Asio.
// SPDX-License-Identifier: MIT
//
// Internal: the log lines of a TaskMonitor's events (taskmon/monitor_event.hpp). Every state change worth telling
// anyone about becomes one MonitorEvent: it is logged, then handed to the listeners of
// BasicTaskMonitor::subscribe(). The text pieces of the lines are in detail/log_text.hpp.
#pragma once

#include <taskmon/detail/config.hpp>
#include <taskmon/detail/log_text.hpp>
#include <taskmon/monitor_event.hpp>
#include <taskmon/restart_policy.hpp>

#include <fmt/format.h>
#include <spdlog/logger.h>

#include <chrono>
#include <exception>
#include <string>

namespace taskmon::detail {

/// The level of a component's routine lines (started, completed, stopped without an error, removed): a spawn()ed
/// task (one per connection on a busy server) logs them at debug.
constexpr spdlog::level::level_enum routine_level(bool spawned) noexcept {
    return spawned ? spdlog::level::debug : spdlog::level::info;
}

/// Writes the event's log line: a human sentence followed by key=value fields on the same line.
inline void log_event(spdlog::logger& logger, const MonitorEvent& e) {
    using spdlog::level::level_enum;
    // Names are one line of UTF-8 (detail/name_rules.hpp) but may hold spaces and '=': in the sentence as in the
    // key=value fields they are quoted then, so that "x component=victim" cannot pass for a field of its own.
    const FieldValue name{e.component};
    const FieldValue group{e.group};
    const auto routine = routine_level(e.spawned);
    switch (e.kind) {
        case MonitorEventKind::started:
            logger.log(routine, "Started component {} component={} task_id={}", name, name, e.task_id);
            break;
        case MonitorEventKind::failed:
            logger.log(level_enum::err, "Component {} failed component={} task_id={} failure_count={} reason={}", name,
                       name, e.task_id, e.failure_count, QuotedValue{e.reason});
            break;
        case MonitorEventKind::cancelled_unexpectedly:
            logger.log(level_enum::warn,
                       "Component {} was cancelled unexpectedly component={} task_id={} failure_count={} reason={}",
                       name, name, e.task_id, e.failure_count, QuotedValue{e.reason});
            break;
        case MonitorEventKind::completed:
            logger.log(routine, "Component {} completed component={} task_id={} restart_type={}", name, name, e.task_id,
                       to_string(e.restart_type));
            break;
        case MonitorEventKind::restart_scheduled: {
            const SecondsValue seconds{e.delay};
            logger.log(level_enum::warn,
                       "Restarting component {} (attempt {}) after {}s delay component={} attempt={} backoff={} "
                       "reason={}",
                       name, e.attempt, seconds, name, e.attempt, seconds, QuotedValue{e.reason});
            break;
        }
        case MonitorEventKind::restarted:
            logger.log(level_enum::info,
                       "Successfully restarted component {} component={} new_task_id={} restart_count={}", name, name,
                       e.task_id, e.restart_count);
            break;
        case MonitorEventKind::restart_requested:
            logger.log(level_enum::info, "Manual restart requested for component {} component={} task_id={}", name,
                       name, e.task_id);
            break;
        case MonitorEventKind::restart_merged:
            logger.log(level_enum::info, "Manual restart of component {} merged into the pending restart component={}",
                       name, name);
            break;
        case MonitorEventKind::gave_up:
            logger.log(level_enum::err,
                       "Component {} has exceeded restart limit ({} attempts per {}). Stopping auto-restart. "
                       "component={} restart_count={} reason={}",
                       name, e.limit, WindowValue{e.window}, name, e.restart_count, QuotedValue{e.reason});
            break;
        case MonitorEventKind::not_enabled:
            logger.log(level_enum::warn,
                       "Component {} is not enabled for restart; leaving it stopped component={} task_id={}", name,
                       name, e.task_id);
            break;
        case MonitorEventKind::no_factory:
            logger.log(level_enum::err, "Component {} cannot be restarted: no restart factory component={} task_id={}",
                       name, name, e.task_id);
            break;
        case MonitorEventKind::factory_failed:
            logger.log(level_enum::err, "Restart factory of component {} threw component={} failure_count={} reason={}",
                       name, name, e.failure_count, QuotedValue{e.reason});
            break;
        case MonitorEventKind::stopped:
            if (e.reason.empty()) {
                logger.log(routine, "Component {} stopped component={} task_id={}", name, name, e.task_id);
            } else {
                logger.log(level_enum::warn, "Component {} stopped with an error component={} task_id={} reason={}",
                           name, name, e.task_id, QuotedValue{e.reason});
            }
            break;
        case MonitorEventKind::stop_timeout: {
            const SecondsValue seconds{e.delay};
            logger.log(level_enum::err,
                       "Component {} did not stop within {}s of cancellation component={} task_id={} "
                       "shutdown_timeout={}",
                       name, seconds, name, e.task_id, seconds);
            break;
        }
        case MonitorEventKind::restart_cancelled:
            logger.log(level_enum::info, "Cancelled pending restart of component {} component={} restart_count={}",
                       name, name, e.restart_count);
            break;
        case MonitorEventKind::closed:
            logger.log(level_enum::info, "TaskMonitor closed components={} unresponsive={}", e.count, e.unresponsive);
            break;
        case MonitorEventKind::ready:
            logger.log(level_enum::info, "Component {} is ready component={} task_id={}", name, name, e.task_id);
            break;
        case MonitorEventKind::watchdog_timeout:
        case MonitorEventKind::startup_timeout: {
            const SecondsValue seconds{e.delay};
            const auto what = e.kind == MonitorEventKind::watchdog_timeout
                                  ? fmt::format("missed its watchdog deadline ({}s without a heartbeat)", seconds)
                                  : fmt::format("did not become ready within {}s", seconds);
            logger.log(level_enum::err,
                       "Component {} {}; cancelling it component={} task_id={} failure_count={} timeout={} "
                       "failure_class={} reason={}",
                       name, what, name, e.task_id, e.failure_count, seconds, to_string(e.failure_class),
                       QuotedValue{e.reason});
            break;
        }
        case MonitorEventKind::quarantined: {
            const SecondsValue seconds{e.delay};
            logger.log(level_enum::err,
                       "Component {} quarantined; one trial instance in {}s component={} cooldown={} trials={} "
                       "reason={}",
                       name, seconds, name, seconds, e.attempt, QuotedValue{e.reason});
            break;
        }
        case MonitorEventKind::trial_started:
            logger.log(level_enum::warn, "Quarantine trial of component {} started component={} task_id={}", name, name,
                       e.task_id);
            break;
        case MonitorEventKind::quarantine_closed:
            logger.log(level_enum::info,
                       "Component {} passed its quarantine trial; circuit closed, restart window cleared "
                       "component={} task_id={}",
                       name, name, e.task_id);
            break;
        case MonitorEventKind::escalated:
            if (e.component.empty()) {
                logger.log(level_enum::critical,
                           "Group {} gave up; escalating to the monitor's owner group={} reason={}", group, group,
                           QuotedValue{e.reason});
            } else {
                logger.log(level_enum::critical,
                           "Component {} gave up; escalating to the monitor's owner component={} restart_count={} "
                           "reason={}",
                           name, name, e.restart_count, QuotedValue{e.reason});
            }
            break;
        case MonitorEventKind::reset:
            logger.log(level_enum::info, "Restart history of component {} reset by hand component={}", name, name);
            break;
        case MonitorEventKind::removed:
            if (e.unresponsive == 0) {
                logger.log(routine, "Component {} removed component={}", name, name);
            } else {
                logger.log(level_enum::err,
                           "Component {} removed while its instance still ignores cancellation component={} "
                           "task_id={} unresponsive=1",
                           name, name, e.task_id);
            }
            break;
        case MonitorEventKind::policy_updated:
            logger.log(level_enum::info, "Policy of component {} updated component={}", name, name);
            break;
        case MonitorEventKind::group_started:
            logger.log(level_enum::info, "Started group {} group={} members={}", group, group, QuotedList{&e.members});
            break;
        case MonitorEventKind::group_restarting: {
            const SecondsValue seconds{e.delay};
            logger.log(level_enum::warn,
                       "Restarting group {} after {}s delay: member {} failed group={} component={} members={} "
                       "backoff={} reason={}",
                       group, seconds, name, group, name, QuotedList{&e.members}, seconds, QuotedValue{e.reason});
            break;
        }
        case MonitorEventKind::group_restarted:
            logger.log(level_enum::info, "Successfully restarted group {} group={} members={}", group, group,
                       QuotedList{&e.members});
            break;
        case MonitorEventKind::group_gave_up:
            if (e.window == std::chrono::nanoseconds::zero()) {  // a member escalated; no limit involved
                logger.log(level_enum::err, "Group {} gives up: member {} escalated group={} component={} reason={}",
                           group, name, group, name, QuotedValue{e.reason});
            } else {
                logger.log(level_enum::err,
                           "Group {} has exceeded its restart limit ({} per {}); giving it up group={} "
                           "component={} limit={} reason={}",
                           group, e.limit == 1 ? std::string{"1 restart"} : fmt::format("{} restarts", e.limit),
                           WindowValue{e.window}, group, name, e.limit, QuotedValue{e.reason});
            }
            break;
        case MonitorEventKind::group_shutdown:
            logger.log(level_enum::info,
                       "Significant member {} of group {} ended; shutting the group down group={} component={} "
                       "members={}",
                       name, group, group, name, QuotedList{&e.members});
            break;
    }
}

/// Logs, at error level, an exception that an event listener threw while handling `e`.
inline void log_listener_error(spdlog::logger& logger, const MonitorEvent& e, const std::exception_ptr& error) {
    const auto kind = to_string(e.kind);
    if (e.component.empty()) {
        logger.log(spdlog::level::err, "Event listener threw handling {} kind={} reason={}", kind, kind,
                   quote(describe(error)));
    } else {
        logger.log(spdlog::level::err,
                   "Event listener threw handling {} of component {} component={} kind={} reason={}", kind,
                   FieldValue{e.component}, FieldValue{e.component}, kind, quote(describe(error)));
    }
}

}  // namespace taskmon::detail

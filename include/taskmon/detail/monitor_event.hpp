// taskmon — coroutine supervision for standalone Asio.
// SPDX-License-Identifier: MIT
//
// Internal: the log lines of a TaskMonitor's events (taskmon/monitor_event.hpp), and the text helpers they use.
// Every state change worth telling anyone about becomes one MonitorEvent: it is logged, then handed to the
// listeners of BasicTaskMonitor::subscribe().
#pragma once

#include <taskmon/detail/config.hpp>
#include <taskmon/monitor_event.hpp>
#include <taskmon/restart_policy.hpp>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <spdlog/logger.h>

#include <chrono>
#include <cstdint>
#include <exception>
#include <string>
#include <string_view>
#include <system_error>
#include <typeindex>
#include <typeinfo>
#include <unordered_map>

#if __has_include(<cxxabi.h>)
#include <cxxabi.h>
#define TASKMON_HAS_CXXABI 1
#endif

#include <cstdlib>
#include <memory>
#include <utility>

namespace taskmon::detail {

/// Demangled dynamic type name of an exception object.
inline std::string demangle(const char* mangled) {
#ifdef TASKMON_HAS_CXXABI
    int status = 0;
    std::unique_ptr<char, void (*)(void*)> result{abi::__cxa_demangle(mangled, nullptr, nullptr, &status),
                                                   std::free};
    if (status == 0 && result) {
        return result.get();
    }
#endif
    return mangled;
}

/// Demangled name of `type`, cached per thread (demangling allocates).
inline const std::string& type_name(const std::type_info& type) {
    thread_local std::unordered_map<std::type_index, std::string> cache;
    auto it = cache.find(type);
    if (it == cache.end()) {
        it = cache.emplace(type, demangle(type.name())).first;
    }
    return it->second;
}

/// "type: what" of an exception object, e.g. "std::runtime_error: Connection lost".
inline std::string describe(const std::exception& e) {
    const auto& type = type_name(typeid(e));
    const char* what = e.what();
    std::string out;
    out.reserve(type.size() + 2 + std::char_traits<char>::length(what));
    out.append(type).append(": ").append(what);
    return out;
}

/// "type: what" of an exception, e.g. "std::runtime_error: Connection lost".
inline std::string describe(const std::exception_ptr& error) {
    if (!error) {
        return "";
    }
    try {
        std::rethrow_exception(error);
    } catch (const std::exception& e) {
        return describe(e);
    } catch (...) {
        return "unknown exception";
    }
}

/// Seconds with one decimal when exact to a tenth ("4.0"), else with millisecond precision ("0.125").
inline std::string format_seconds(std::chrono::nanoseconds d) {
    const double seconds = std::chrono::duration<double>(d).count();
    if (d % std::chrono::milliseconds{100} == std::chrono::nanoseconds::zero()) {
        return fmt::format("{:.1f}", seconds);
    }
    return fmt::format("{:.3f}", seconds);
}

/// "hour", "10 minutes", "minute", "30 seconds", "1500 ms": the restart window in words for the give-up line
/// ("5 attempts per hour", "per minute", "per 10 minutes").
inline std::string format_window(std::chrono::nanoseconds window) {
    using namespace std::chrono;
    const auto plural = [](long long n, std::string_view unit) {
        return n == 1 ? std::string{unit} : fmt::format("{} {}s", n, unit);
    };
    if (window % hours{1} == nanoseconds::zero()) return plural(duration_cast<hours>(window).count(), "hour");
    if (window % minutes{1} == nanoseconds::zero()) {
        return plural(duration_cast<minutes>(window).count(), "minute");
    }
    if (window % seconds{1} == nanoseconds::zero()) {
        return plural(duration_cast<seconds>(window).count(), "second");
    }
    return fmt::format("{} ms", duration_cast<milliseconds>(window).count());
}

/// Makes `text` safe inside a double-quoted key=value field.
inline std::string quote(std::string_view text) {
    std::string out;
    out.reserve(text.size() + 2);
    out.push_back('"');
    for (char c : text) {
        switch (c) {
            case '"': out += "\\\""; break;
            case '\\': out += "\\\\"; break;
            case '\n': out += "\\n"; break;
            case '\r': out += "\\r"; break;
            default: out.push_back(c);
        }
    }
    out.push_back('"');
    return out;
}

/// Writes the event's log line: a human sentence followed by key=value fields on the same line.
inline void log_event(spdlog::logger& logger, const MonitorEvent& e) {
    using spdlog::level::level_enum;
    const auto& name = e.component;
    // A spawn()ed task (one per connection on a busy server) logs its routine lines at debug.
    const auto routine = e.spawned ? level_enum::debug : level_enum::info;
    switch (e.kind) {
        case MonitorEventKind::started:
            logger.log(routine, "Started component {} component={} task_id={}", name, name, e.task_id);
            break;
        case MonitorEventKind::failed:
            logger.log(level_enum::err, "Component {} failed component={} task_id={} failure_count={} reason={}",
                       name, name, e.task_id, e.failure_count, quote(e.reason));
            break;
        case MonitorEventKind::cancelled_unexpectedly:
            logger.log(level_enum::warn,
                       "Component {} was cancelled unexpectedly component={} task_id={} failure_count={} reason={}",
                       name, name, e.task_id, e.failure_count, quote(e.reason));
            break;
        case MonitorEventKind::completed:
            logger.log(routine, "Component {} completed component={} task_id={} restart_type={}", name,
                       name, e.task_id, to_string(e.restart_type));
            break;
        case MonitorEventKind::restart_scheduled: {
            const auto seconds = format_seconds(e.delay);
            logger.log(level_enum::warn,
                       "Restarting component {} (attempt {}) after {}s delay component={} attempt={} backoff={} "
                       "reason={}",
                       name, e.attempt, seconds, name, e.attempt, seconds, quote(e.reason));
            break;
        }
        case MonitorEventKind::restarted:
            logger.log(level_enum::info,
                       "Successfully restarted component {} component={} new_task_id={} restart_count={}", name,
                       name, e.task_id, e.restart_count);
            break;
        case MonitorEventKind::restart_requested:
            logger.log(level_enum::info, "Manual restart requested for component {} component={} task_id={}",
                       name, name, e.task_id);
            break;
        case MonitorEventKind::restart_merged:
            logger.log(level_enum::info,
                       "Manual restart of component {} merged into the pending restart component={}", name, name);
            break;
        case MonitorEventKind::gave_up:
            logger.log(level_enum::err,
                       "Component {} has exceeded restart limit ({} attempts per {}). Stopping auto-restart. "
                       "component={} restart_count={} reason={}",
                       name, e.limit, format_window(e.window), name, e.restart_count, quote(e.reason));
            break;
        case MonitorEventKind::not_enabled:
            logger.log(level_enum::warn,
                       "Component {} is not enabled for restart; leaving it stopped component={} task_id={}", name,
                       name, e.task_id);
            break;
        case MonitorEventKind::no_factory:
            logger.log(level_enum::err,
                       "Component {} cannot be restarted: no restart factory component={} task_id={}", name, name,
                       e.task_id);
            break;
        case MonitorEventKind::factory_failed:
            logger.log(level_enum::err,
                       "Restart factory of component {} threw component={} failure_count={} reason={}", name, name,
                       e.failure_count, quote(e.reason));
            break;
        case MonitorEventKind::stopped:
            if (e.reason.empty()) {
                logger.log(routine, "Component {} stopped component={} task_id={}", name, name,
                           e.task_id);
            } else {
                logger.log(level_enum::warn, "Component {} stopped with an error component={} task_id={} reason={}",
                           name, name, e.task_id, quote(e.reason));
            }
            break;
        case MonitorEventKind::stop_timeout: {
            const auto seconds = format_seconds(e.delay);
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
            logger.log(level_enum::info, "TaskMonitor closed components={} unresponsive={}", e.count,
                       e.unresponsive);
            break;
        case MonitorEventKind::ready:
            logger.log(level_enum::info, "Component {} is ready component={} task_id={}", name, name, e.task_id);
            break;
        case MonitorEventKind::watchdog_timeout:
        case MonitorEventKind::startup_timeout: {
            const auto seconds = format_seconds(e.delay);
            const auto what = e.kind == MonitorEventKind::watchdog_timeout
                                  ? fmt::format("missed its watchdog deadline ({}s without a heartbeat)", seconds)
                                  : fmt::format("did not become ready within {}s", seconds);
            logger.log(level_enum::err,
                       "Component {} {}; cancelling it component={} task_id={} failure_count={} timeout={} "
                       "failure_class={} reason={}",
                       name, what, name, e.task_id, e.failure_count, seconds, to_string(e.failure_class),
                       quote(e.reason));
            break;
        }
        case MonitorEventKind::quarantined: {
            const auto seconds = format_seconds(e.delay);
            logger.log(level_enum::err,
                       "Component {} quarantined; one trial instance in {}s component={} cooldown={} trials={} "
                       "reason={}",
                       name, seconds, name, seconds, e.attempt, quote(e.reason));
            break;
        }
        case MonitorEventKind::trial_started:
            logger.log(level_enum::warn, "Quarantine trial of component {} started component={} task_id={}", name,
                       name, e.task_id);
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
                           "Group {} gave up; escalating to the monitor's owner group={} reason={}", e.group,
                           e.group, quote(e.reason));
            } else {
                logger.log(level_enum::critical,
                           "Component {} gave up; escalating to the monitor's owner component={} restart_count={} "
                           "reason={}",
                           name, name, e.restart_count, quote(e.reason));
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
            logger.log(level_enum::info, "Started group {} group={} members={}", e.group, e.group,
                       quote(fmt::format("{}", fmt::join(e.members, ","))));
            break;
        case MonitorEventKind::group_restarting: {
            const auto seconds = format_seconds(e.delay);
            logger.log(level_enum::warn,
                       "Restarting group {} after {}s delay: member {} failed group={} component={} members={} "
                       "backoff={} reason={}",
                       e.group, seconds, name, e.group, name, quote(fmt::format("{}", fmt::join(e.members, ","))),
                       seconds, quote(e.reason));
            break;
        }
        case MonitorEventKind::group_restarted:
            logger.log(level_enum::info, "Successfully restarted group {} group={} members={}", e.group, e.group,
                       quote(fmt::format("{}", fmt::join(e.members, ","))));
            break;
        case MonitorEventKind::group_gave_up:
            if (e.window == std::chrono::nanoseconds::zero()) {  // a member escalated; no limit involved
                logger.log(level_enum::err, "Group {} gives up: member {} escalated group={} component={} reason={}",
                           e.group, name, e.group, name, quote(e.reason));
            } else {
                logger.log(level_enum::err,
                           "Group {} has exceeded its restart limit ({} per {}); giving it up group={} "
                           "component={} limit={} reason={}",
                           e.group, e.limit == 1 ? std::string{"1 restart"} : fmt::format("{} restarts", e.limit),
                           format_window(e.window), e.group, name, e.limit,
                           quote(e.reason));
            }
            break;
        case MonitorEventKind::group_shutdown:
            logger.log(level_enum::info,
                       "Significant member {} of group {} ended; shutting the group down group={} component={} "
                       "members={}",
                       name, e.group, e.group, name, quote(fmt::format("{}", fmt::join(e.members, ","))));
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
                   e.component, e.component, kind, quote(describe(error)));
    }
}

}  // namespace taskmon::detail

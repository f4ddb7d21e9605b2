// taskmon — coroutine supervision for standalone Asio.
// SPDX-License-Identifier: MIT
//
// Internal: the facts of a TaskMonitor's events — lane states, and marks for failures, restarts (with the cause,
// attempt and backoff their `restarted` event carries), give-ups and kinds this header does not know.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <fmt/format.h>

#include <taskmon/detail/timeline_facts.hpp>
#include <taskmon/detail/timeline_states.hpp>
#include <taskmon/detail/timeline_time.hpp>
#include <taskmon/monitor_event.hpp>
#include <taskmon/ops/timeline_model.hpp>

namespace taskmon::detail::timeline {

/// The lane state a TaskMonitor event leaves its component in; nullopt: unchanged.
///
/// The one place that maps MonitorEventKinds to lane states: when MonitorEventKind gains kinds (liveness:
/// quarantine, readiness), map them here. Until then a kind whose name is a known lane state (e.g. a future
/// "quarantined") sets that state, and any other unknown kind leaves the state alone (it still gets a mark).
inline std::optional<std::string> state_after(const MonitorEvent& e) {
    switch (e.kind) {
        case MonitorEventKind::started:
        case MonitorEventKind::restarted: return "running";
        case MonitorEventKind::failed:
        case MonitorEventKind::cancelled_unexpectedly:
        case MonitorEventKind::not_enabled:
        case MonitorEventKind::no_factory: return "failed";  // a restart_scheduled at the same instant follows
        case MonitorEventKind::completed: return "completed";
        case MonitorEventKind::restart_scheduled: return "backing_off";
        case MonitorEventKind::restart_requested: return "restarting";
        case MonitorEventKind::gave_up: return "gave_up";
        case MonitorEventKind::stopped:
        case MonitorEventKind::restart_cancelled: return "stopped";
        case MonitorEventKind::stop_timeout: return "unresponsive";
        case MonitorEventKind::watchdog_timeout:
        case MonitorEventKind::startup_timeout: return "failed";  // cancelled; a restart_scheduled follows its exit
        case MonitorEventKind::quarantined: return "quarantined";
        case MonitorEventKind::escalated: return "gave_up";
        case MonitorEventKind::removed: return "stopped";
        case MonitorEventKind::restart_merged:
        case MonitorEventKind::factory_failed:
        case MonitorEventKind::ready:
        case MonitorEventKind::trial_started:  // its `restarted` already made it running
        case MonitorEventKind::quarantine_closed:
        case MonitorEventKind::reset:
        case MonitorEventKind::policy_updated:
        case MonitorEventKind::group_started:  // group kinds: the members' own events move their lanes
        case MonitorEventKind::group_restarting:
        case MonitorEventKind::group_restarted:
        case MonitorEventKind::group_gave_up:
        case MonitorEventKind::group_shutdown:
        case MonitorEventKind::closed: return std::nullopt;
    }
    const auto name = to_string(e.kind);
    if (name != "unknown" && find_state_style(name) != nullptr) return std::string{name};
    return std::nullopt;
}

/// Facts for TaskMonitor events, given in (time, sequence) order.
inline void facts_of(const std::vector<MonitorEvent>& events, std::vector<Fact>& out) {
    const auto mark = [&](const MonitorEvent& e, TimelineMarkKind kind, std::string label, std::string detail) {
        out.push_back(mark_fact(e.time, e.component, TimelineMark{kind, {}, std::move(label), std::move(detail)}));
    };
    for (const auto& e : events) {
        if (!e.component.empty()) {
            Fact seen;
            seen.type = Fact::Type::lane_seen;
            seen.at = e.time;
            seen.lane = e.component;
            out.push_back(std::move(seen));
        }
        const auto name = std::string{to_string(e.kind)};
        switch (e.kind) {
            case MonitorEventKind::failed:
            case MonitorEventKind::cancelled_unexpectedly:
                mark(e, TimelineMarkKind::failure, "", fmt::format("{} ({}): {}", name, e.failure_count, e.reason));
                break;
            case MonitorEventKind::restarted:
                // The restart's facts are on its event: what caused it, and the backoff (or cooldown) it waited.
                switch (e.restart_reason) {
                    case RestartReason::manual:
                    case RestartReason::unknown:
                        mark(e, TimelineMarkKind::restart, "manual",
                             fmt::format("manual restart (restart_count={})", e.restart_count));
                        break;
                    case RestartReason::group:
                        mark(e, TimelineMarkKind::restart, "group",
                             fmt::format("restarted with its group (restart_count={})", e.restart_count));
                        break;
                    case RestartReason::quarantine_trial:
                        mark(e, TimelineMarkKind::restart, fmt::format("trial {}", e.attempt),
                             fmt::format("quarantine trial {} after a cooldown of {} (restart_count={}): {}", e.attempt,
                                         short_duration(e.delay), e.restart_count, e.reason));
                        break;
                    default:
                        mark(e, TimelineMarkKind::restart, fmt::format("#{} {}", e.attempt, short_duration(e.delay)),
                             fmt::format("restart attempt {} after a backoff of {} (restart_count={}): {}", e.attempt,
                                         short_duration(e.delay), e.restart_count, e.reason));
                        break;
                }
                break;
            case MonitorEventKind::restart_merged:
                mark(e, TimelineMarkKind::note, "", "restart() merged into a pending restart");
                break;
            case MonitorEventKind::gave_up:
                mark(e, TimelineMarkKind::failure, "gave up",
                     fmt::format("gave up: more than {} restarts within {}: {}", e.limit, short_duration(e.window),
                                 e.reason));
                break;
            case MonitorEventKind::not_enabled:
            case MonitorEventKind::no_factory:
            case MonitorEventKind::factory_failed:
                mark(e, TimelineMarkKind::failure, name, e.reason.empty() ? name : name + ": " + e.reason);
                break;
            case MonitorEventKind::stop_timeout:
                mark(e, TimelineMarkKind::warning, "unresponsive",
                     fmt::format("ignored cancellation for longer than {}", short_duration(e.delay)));
                break;
            case MonitorEventKind::closed:
                mark(e, TimelineMarkKind::note, "closed",
                     fmt::format("monitor closed: {} components, {} unresponsive", e.count, e.unresponsive));
                break;
            case MonitorEventKind::started:
            case MonitorEventKind::completed:
            case MonitorEventKind::restart_scheduled:  // its lane state says backing off; `restarted` has its facts
            case MonitorEventKind::restart_cancelled:
            case MonitorEventKind::restart_requested:
            case MonitorEventKind::stopped: break;
            default:  // a kind added after this was written: visible by its name
                mark(e, TimelineMarkKind::note, name, e.reason.empty() ? name : name + ": " + e.reason);
                break;
        }
        if (auto state = state_after(e); state && !e.component.empty()) {
            Fact f;
            f.type = Fact::Type::lane_state;
            f.at = e.time;
            f.lane = e.component;
            f.state = std::move(*state);
            out.push_back(std::move(f));
        }
    }
}

}  // namespace taskmon::detail::timeline

// taskmon — coroutine supervision for standalone Asio.
// SPDX-License-Identifier: MIT
//
// Internal: the facts of a Supervisor run's History — the run's status and pauses, the six components' lanes
// from the start of the run, restarts with the time spent backing off, stalls, load shedding and the other
// events as marks.
#pragma once

#include <chrono>
#include <map>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <fmt/format.h>

#include <taskmon/agent/agent_status.hpp>
#include <taskmon/agent/history.hpp>
#include <taskmon/detail/timeline_facts.hpp>
#include <taskmon/detail/timeline_time.hpp>
#include <taskmon/ops/timeline_model.hpp>

namespace taskmon::detail::timeline {

/// The components of a Supervisor run, in its order (taskmon::components in supervisor.hpp).
inline constexpr std::string_view supervisor_components[] = {
    "perception", "perception_watchdog", "decision_loop", "actuation_loop", "pause_handler", "load_shedding_monitor",
};

/// Facts for a Supervisor run's History.
template <typename Action, typename Result>
void facts_of(const History<Action, Result>& history, std::vector<Fact>& out) {
    const auto at = [&](Offset offset) {
        // Saturating: offsets read from elsewhere (JSON) may be anything.
        using T = Clock::time_point;
        const auto since = std::chrono::duration_cast<Clock::duration>(offset);
        const auto start = history.started_wall_time;
        if (since > Clock::duration::zero() && start > T::max() - since) return T::max();
        if (since < Clock::duration::zero() && start < T::min() - since) return T::min();
        return start + since;
    };
    const auto lane_fact = [&](Fact::Type type, Offset offset, const std::string& lane) {
        Fact f;
        f.type = type;
        f.at = at(offset);
        f.lane = lane;
        return f;
    };
    const auto add_mark = [&](const HistoryEvent& e, TimelineMarkKind kind, std::string label) {
        std::string detail{to_string(e.kind)};
        if (!e.message.empty()) detail += ": " + e.message;
        out.push_back(mark_fact(at(e.at), e.component, TimelineMark{kind, {}, std::move(label), std::move(detail)}));
    };
    const auto set_state = [&](Offset offset, const std::string& lane, std::string state) {
        Fact f = lane_fact(Fact::Type::lane_state, offset, lane);
        f.state = std::move(state);
        out.push_back(std::move(f));
    };
    bool started = false;
    std::map<std::string, Offset> failed_at;  // components between a failure and their restart
    for (const auto& e : history.events) {
        switch (e.kind) {
            case HistoryEventKind::status_changed: {
                if (!e.to) break;
                Fact f = lane_fact(Fact::Type::run_status, e.at, "");
                f.state = std::string{to_string(*e.to)};
                f.detail = e.message;
                out.push_back(std::move(f));
                if (is_terminal(*e.to)) out.push_back(terminal_mark(f.at, *e.to, e.message));
                if (*e.to == AgentStatus::running && !started) {
                    started = true;  // the Supervisor starts its six components right after this change
                    for (const auto name : supervisor_components) set_state(e.at, std::string{name}, "running");
                }
                if (*e.to == AgentStatus::paused || (e.from && *e.from == AgentStatus::paused)) {
                    Fact o = lane_fact(*e.to == AgentStatus::paused ? Fact::Type::overlay_on : Fact::Type::overlay_off,
                                       e.at, "paused");
                    o.detail = e.message;
                    out.push_back(std::move(o));
                }
                break;
            }
            case HistoryEventKind::component_failed:
                failed_at[e.component] = e.at;
                add_mark(e, TimelineMarkKind::failure, "");
                set_state(e.at, e.component, "backing_off");
                break;
            case HistoryEventKind::component_restarted: {
                // Instance n + 1 is the n-th restart. Without the field (JSON that has no "instance", an event
                // made by hand) the mark reads "#?": the message is text for people, not parsed.
                const bool known = e.instance && *e.instance > 1;
                const std::string number = known ? fmt::format("#{}", *e.instance - 1) : std::string{"#?"};
                const std::string said = e.message.empty() ? std::string{} : " (" + e.message + ")";
                Fact f = lane_fact(Fact::Type::lane_mark, e.at, e.component);
                if (const auto it = failed_at.find(e.component); it != failed_at.end()) {
                    const auto down = difference(e.at, it->second);
                    f.mark = TimelineMark{TimelineMarkKind::restart,
                                          {},
                                          number + " " + short_duration(down),
                                          fmt::format("restart {}{} after {} backing off since its failure", number,
                                                      said, short_duration(down))};
                    failed_at.erase(it);
                } else {
                    f.mark = TimelineMark{TimelineMarkKind::restart,
                                          {},
                                          number + " requested",
                                          fmt::format("restart {}{} requested, not after a failure", number, said)};
                }
                out.push_back(std::move(f));
                set_state(e.at, e.component, "running");
                break;
            }
            case HistoryEventKind::component_gave_up:
                failed_at.erase(e.component);
                add_mark(e, TimelineMarkKind::failure, "gave up");
                set_state(e.at, e.component, "gave_up");
                break;
            case HistoryEventKind::watchdog_stall: {
                std::string label = "stall";
                if (e.consecutive_stalls) {
                    label += fmt::format(" {}", *e.consecutive_stalls);
                    if (e.max_consecutive_stalls) label += fmt::format("/{}", *e.max_consecutive_stalls);
                }
                add_mark(e, TimelineMarkKind::warning, std::move(label));
                break;
            }
            case HistoryEventKind::watchdog_recovered: add_mark(e, TimelineMarkKind::note, "recovered"); break;
            case HistoryEventKind::load_shedding_entered:
            case HistoryEventKind::load_shedding_left: {
                Fact o = lane_fact(e.kind == HistoryEventKind::load_shedding_entered ? Fact::Type::overlay_on
                                                                                     : Fact::Type::overlay_off,
                                   e.at, "load_shedding");
                o.detail = e.message;
                out.push_back(std::move(o));
                break;
            }
            case HistoryEventKind::decision_expired: add_mark(e, TimelineMarkKind::warning, "expired"); break;
            case HistoryEventKind::action_interrupted: add_mark(e, TimelineMarkKind::warning, "interrupted"); break;
            case HistoryEventKind::hook_error: add_mark(e, TimelineMarkKind::warning, "hook error"); break;
            case HistoryEventKind::terminal_refused: add_mark(e, TimelineMarkKind::note, "refused"); break;
            case HistoryEventKind::guidance_delivered: add_mark(e, TimelineMarkKind::note, "guidance"); break;
            default: add_mark(e, TimelineMarkKind::note, std::string{to_string(e.kind)}); break;
        }
    }
    Fact end;
    end.type = Fact::Type::end;
    end.at = at(history.total_duration());
    out.push_back(std::move(end));
}

}  // namespace taskmon::detail::timeline

// taskmon — coroutine supervision for standalone Asio.
// SPDX-License-Identifier: MIT
//
// Internal: facts, what every input of a TimelineRecorder becomes before it is folded into a Timeline (in time
// order, timeline_spans.hpp), and the facts of the inputs that are not events: status changes and notes. The
// events' own translations are in timeline_monitor_facts.hpp and timeline_history_facts.hpp.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include <fmt/format.h>

#include <taskmon/agent/agent_status.hpp>
#include <taskmon/agent/history.hpp>
#include <taskmon/detail/timeline_time.hpp>
#include <taskmon/ops/timeline_model.hpp>

namespace taskmon::detail::timeline {

/// What one recorded input says about the picture. Inputs become these; they are folded in time order.
struct Fact {
    enum class Type : std::uint8_t {
        lane_state,
        lane_mark,
        lane_seen,
        run_status,
        run_mark,
        overlay_on,
        overlay_off,
        end
    };
    Type type = Type::lane_mark;
    Clock::time_point at{};
    std::string lane;   ///< lane_*: the component; overlay_*: the overlay's name
    std::string state;  ///< lane_state, run_status: the state's name
    TimelineMark mark{};
    std::string detail;
};

/// a - b, saturated at the limits of Offset.
inline Offset difference(Offset a, Offset b) noexcept {
    Offset::rep out = 0;
    if (__builtin_sub_overflow(a.count(), b.count(), &out)) return b < Offset::zero() ? Offset::max() : Offset::min();
    return Offset{out};
}

/// A run's end as a mark: a terminal status often lasts no time at all (the components close at once).
inline Fact terminal_mark(Clock::time_point at, AgentStatus status, const std::string& reason) {
    Fact f;
    f.type = Fact::Type::run_mark;
    f.at = at;
    f.mark = TimelineMark{status == AgentStatus::failed ? TimelineMarkKind::failure : TimelineMarkKind::note,
                          {},
                          std::string{to_string(status)},
                          fmt::format("{}: {}", to_string(status), reason)};
    return f;
}

/// A mark at `at` on `lane` (a component's lane; empty: the run's row).
inline Fact mark_fact(Clock::time_point at, const std::string& lane, TimelineMark mark) {
    Fact f;
    f.type = lane.empty() ? Fact::Type::run_mark : Fact::Type::lane_mark;
    f.at = at;
    f.lane = lane;
    f.mark = std::move(mark);
    return f;
}

/// A Supervisor status change at `at`: the run's status, a mark when the status is terminal, and the start
/// (a change to paused) or the end (a change from paused) of the "paused" overlay.
inline std::vector<Fact> status_facts(const StatusTransition& change, Clock::time_point at) {
    std::vector<Fact> facts;
    Fact f;
    f.type = Fact::Type::run_status;
    f.at = at;
    f.state = std::string{to_string(change.to)};
    f.detail = change.reason;
    facts.push_back(std::move(f));
    if (is_terminal(change.to)) facts.push_back(terminal_mark(at, change.to, change.reason));
    if (change.to == AgentStatus::paused || change.from == AgentStatus::paused) {
        Fact o;
        o.type = change.to == AgentStatus::paused ? Fact::Type::overlay_on : Fact::Type::overlay_off;
        o.at = at;
        o.lane = "paused";
        o.detail = change.reason;
        facts.push_back(std::move(o));
    }
    return facts;
}

}  // namespace taskmon::detail::timeline

// taskmon — coroutine supervision for standalone Asio.
// SPDX-License-Identifier: MIT
//
// Internal: folding facts into a Timeline — lanes in the order first seen, spans from each state to the next,
// marks and overlays placed at their offsets from the origin, everything cut at the right edge.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <taskmon/agent/history.hpp>
#include <taskmon/detail/timeline_facts.hpp>
#include <taskmon/detail/timeline_time.hpp>
#include <taskmon/ops/timeline_model.hpp>

namespace taskmon::detail::timeline {

/// Folds facts (sorted by time) into a Timeline.
inline Timeline fold(std::vector<Fact> facts, std::optional<Clock::time_point> origin,
                     std::optional<Clock::time_point> until) {
    std::stable_sort(facts.begin(), facts.end(), [](const Fact& a, const Fact& b) { return a.at < b.at; });
    Timeline t;
    if (origin) {
        t.origin = *origin;
    } else if (!facts.empty()) {
        t.origin = facts.front().at;
    }
    Clock::time_point last = t.origin;
    for (const auto& f : facts) last = std::max(last, f.at);
    if (until) last = *until;
    const auto since_origin = [&](Clock::time_point at) {
        return difference(std::chrono::duration_cast<Offset>(at.time_since_epoch()),
                          std::chrono::duration_cast<Offset>(t.origin.time_since_epoch()));
    };
    t.end = std::max(Offset::zero(), since_origin(last));
    const auto offset = [&](Clock::time_point at) { return std::clamp(since_origin(at), Offset::zero(), t.end); };

    std::map<std::string, std::size_t> lane_index;
    const auto lane = [&](const std::string& name) -> TimelineLane& {
        const auto [it, inserted] = lane_index.try_emplace(name, t.lanes.size());
        if (inserted) t.lanes.push_back(TimelineLane{name, {}, {}});
        return t.lanes[it->second];
    };
    // An open span has end == Offset::max() until the next state (or the end) closes it.
    const auto change = [](std::vector<TimelineSpan>& spans, const std::string& state, Offset at,
                           const std::string& detail) {
        if (!spans.empty() && spans.back().end == Offset::max()) {
            if (spans.back().state == state) return;
            spans.back().end = at;
        }
        spans.push_back(TimelineSpan{state, at, Offset::max(), detail});
    };
    std::map<std::string, std::size_t> open_overlays;
    for (const auto& f : facts) {
        if (until && f.at > *until) break;
        const Offset at = offset(f.at);
        switch (f.type) {
            case Fact::Type::lane_seen: lane(f.lane); break;
            case Fact::Type::lane_state: change(lane(f.lane).spans, f.state, at, f.detail); break;
            case Fact::Type::lane_mark: {
                auto m = f.mark;
                m.at = at;
                lane(f.lane).marks.push_back(std::move(m));
                break;
            }
            case Fact::Type::run_status: change(t.run.spans, f.state, at, f.detail); break;
            case Fact::Type::run_mark: {
                auto m = f.mark;
                m.at = at;
                t.run.marks.push_back(std::move(m));
                break;
            }
            case Fact::Type::overlay_on:
                if (!open_overlays.count(f.lane)) {
                    open_overlays[f.lane] = t.overlays.size();
                    t.overlays.push_back(TimelineSpan{f.lane, at, Offset::max(), f.detail});
                }
                break;
            case Fact::Type::overlay_off:
                if (const auto it = open_overlays.find(f.lane); it != open_overlays.end()) {
                    t.overlays[it->second].end = at;
                    if (!f.detail.empty()) t.overlays[it->second].detail += " / left: " + f.detail;
                    open_overlays.erase(it);
                }
                break;
            case Fact::Type::end: break;
        }
    }
    const auto close = [&](std::vector<TimelineSpan>& spans) {
        for (auto& s : spans) {
            if (s.end == Offset::max()) s.end = t.end;
        }
        spans.erase(std::remove_if(spans.begin(), spans.end(), [](const TimelineSpan& s) { return s.end <= s.begin; }),
                    spans.end());
        // A state left and re-entered at the same instant is one span.
        std::vector<TimelineSpan> merged;
        for (auto& s : spans) {
            if (!merged.empty() && merged.back().state == s.state && merged.back().end == s.begin) {
                merged.back().end = s.end;
            } else {
                merged.push_back(std::move(s));
            }
        }
        spans = std::move(merged);
    };
    close(t.run.spans);
    close(t.overlays);
    for (auto& l : t.lanes) close(l.spans);
    return t;
}

}  // namespace taskmon::detail::timeline

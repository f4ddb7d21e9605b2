// taskmon — coroutine supervision for standalone Asio.
// SPDX-License-Identifier: MIT
//
// Timeline: a picture of a run. A TimelineRecorder collects what happened — a TaskMonitor's events, a
// Supervisor run's History, status changes and notes — into a Timeline: one lane per component showing when it
// was running, backing off or gave up, with restart marks (attempt and delay), failures and warnings; the run's
// status, pauses and load shedding on top. render_svg() draws it as a standalone SVG.
//
//   taskmon::TimelineRecorder recorder;
//   recorder.attach(monitor);                          // every MonitorEvent from now on
//   ... run ...
//   taskmon::write_svg("run.svg", recorder.timeline(), {.title = "ingest service"});
//
//   auto history = co_await supervisor.run();          // a Supervisor run: its History has it all
//   taskmon::write_svg("run.svg", taskmon::timeline_of(history));
//
// Lane states are names, an open set: running, backing_off, restarting, gave_up, failed, completed, stopped,
// stopping, unresponsive, quarantined have their own colours; any other name is drawn in a neutral colour and
// labelled with its name, so states added later show up without a change here.
//
// Tasks started with TaskMonitor::spawn() (MonitorEvent::spawned: one per connection) get no lane: their events
// are dropped as they arrive, so a server's connections neither crowd the picture nor grow the recorder.
#pragma once

#include <algorithm>
#include <array>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <iterator>
#include <map>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include <fmt/format.h>

#include <taskmon/agent_status.hpp>
#include <taskmon/detail/utf8.hpp>
#include <taskmon/event_subscription.hpp>
#include <taskmon/history.hpp>
#include <taskmon/monitor_event.hpp>

namespace taskmon {

/// One stretch of a lane in one state, as offsets from Timeline::origin.
struct TimelineSpan {
    std::string state;  ///< "running", "backing_off", "gave_up", a run status, an overlay name, ...
    Offset begin{};
    Offset end{};
    std::string detail;  ///< shown as the tooltip (e.g. the reason of a status change)
};

/// What a mark stands for (its glyph).
enum class TimelineMarkKind : std::uint8_t {
    restart,  ///< a new instance started; label "#attempt delay"
    failure,  ///< an instance failed, a give-up, a factory failure
    warning,  ///< a watchdog stall, an expired decision, a hook error, ...
    note,     ///< anything else, including event kinds added after this header was written
};

/// One instant on a lane.
struct TimelineMark {
    TimelineMarkKind kind = TimelineMarkKind::note;
    Offset at{};
    std::string label;   ///< short text drawn beside the mark; may be empty
    std::string detail;  ///< the full text, shown as the tooltip
};

/// A component's row (or the run's row: its status over time and run-wide marks).
struct TimelineLane {
    std::string name;
    std::vector<TimelineSpan> spans;  ///< in time order, not overlapping, none empty
    std::vector<TimelineMark> marks;  ///< in time order
};

/// What render_svg() draws. Every offset is from `origin`, and lies in [0, end].
struct Timeline {
    std::chrono::system_clock::time_point origin{};  ///< wall time of offset 0
    Offset end{};                                    ///< the right edge of the picture
    TimelineLane run{"run", {}, {}};                 ///< a Supervisor's status over time; run-wide marks
    std::vector<TimelineSpan> overlays;              ///< run-wide stretches ("paused", "load_shedding")
    std::vector<TimelineLane> lanes;                 ///< one per component, in the order first seen
};

/// How render_svg() draws. Throws std::invalid_argument from render_svg() when out of range.
struct TimelineStyle {
    std::string title = "taskmon run timeline";
    int width = 1200;      ///< of the whole picture, in pixels; at least 480
    int lane_height = 44;  ///< of one component lane; at least 30
    std::string font_family = "DejaVu Sans, Verdana, Arial, sans-serif";
};

namespace detail::timeline {

using Clock = std::chrono::system_clock;

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

/// The lane states with a colour of their own (fill, text colour), in legend order.
struct StateStyle {
    std::string_view name;
    std::string_view fill;
    std::string_view text;
};
inline constexpr StateStyle state_styles[] = {
    {"running", "#43a047", "#ffffff"},
    {"backing_off", "#ffb300", "#3e2723"},
    {"restarting", "#ffd54f", "#3e2723"},
    {"quarantined", "#8e24aa", "#ffffff"},
    {"gave_up", "#d32f2f", "#ffffff"},
    {"failed", "#8e1c1c", "#ffffff"},
    {"unresponsive", "#5d4037", "#ffffff"},
    {"stopping", "#bdbdbd", "#212121"},
    {"stopped", "#9e9e9e", "#212121"},
    {"completed", "#64b5f6", "#0d2a40"},
    // run statuses not named above
    {"pending", "#e0e0e0", "#212121"},
    {"paused", "#78909c", "#ffffff"},
    {"max_steps_reached", "#fb8c00", "#ffffff"},
    // overlays
    {"load_shedding", "#ff7043", "#ffffff"},
};
inline constexpr StateStyle unknown_state_style{"", "#546e7a", "#ffffff"};

inline const StateStyle* find_state_style(std::string_view name) noexcept {
    for (const auto& s : state_styles) {
        if (s.name == name) return &s;
    }
    return nullptr;
}

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

/// "400ms", "1.5s", "2m05s": short, for labels (at most three significant digits, no trailing zeros).
inline std::string short_duration(std::chrono::nanoseconds d) {
    using namespace std::chrono;
    const double ns = static_cast<double>(d.count());
    const double a = std::abs(ns);
    const auto number = [](double value, int decimals) {
        auto text = fmt::format("{:.{}f}", value, decimals);
        if (text.find('.') != std::string::npos) {
            while (text.back() == '0') text.pop_back();
            if (text.back() == '.') text.pop_back();
        }
        return text;
    };
    const auto scaled = [&](double unit, const char* suffix) {
        const double v = ns / unit;
        return number(v, std::abs(v) < 10 ? 2 : std::abs(v) < 100 ? 1 : 0) + suffix;
    };
    if (a < 1e3) return fmt::format("{}ns", d.count());
    if (a < 1e6) return scaled(1e3, "µs");
    if (a < 1e9) return scaled(1e6, "ms");
    if (a < 60e9) return scaled(1e9, "s");
    const auto s = duration_cast<seconds>(d).count();
    if (s < 3600) return fmt::format("{}m{:02}s", s / 60, s % 60);
    return fmt::format("{}h{:02}m", s / 3600, (s / 60) % 60);
}

/// Facts for TaskMonitor events, given in (time, sequence) order.
inline void facts_of(const std::vector<MonitorEvent>& events, std::vector<Fact>& out) {
    struct Pending {
        int attempt = 0;
        std::chrono::nanoseconds delay{};
        std::string reason;
    };
    std::map<std::string, Pending> scheduled;
    const auto mark = [&](const MonitorEvent& e, TimelineMarkKind kind, std::string label, std::string detail) {
        Fact f;
        f.at = e.time;
        if (e.component.empty()) {
            f.type = Fact::Type::run_mark;
        } else {
            f.type = Fact::Type::lane_mark;
            f.lane = e.component;
        }
        f.mark = TimelineMark{kind, {}, std::move(label), std::move(detail)};
        out.push_back(std::move(f));
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
            case MonitorEventKind::restart_scheduled:
                scheduled[e.component] = Pending{e.attempt, e.delay, e.reason};
                break;
            case MonitorEventKind::restarted:
                if (const auto it = scheduled.find(e.component); it != scheduled.end()) {
                    mark(e, TimelineMarkKind::restart,
                         fmt::format("#{} {}", it->second.attempt, short_duration(it->second.delay)),
                         fmt::format("restart attempt {} after a backoff of {} (restart_count={}): {}",
                                     it->second.attempt, short_duration(it->second.delay), e.restart_count,
                                     it->second.reason));
                    scheduled.erase(it);
                } else {
                    mark(e, TimelineMarkKind::restart, "manual",
                         fmt::format("manual restart (restart_count={})", e.restart_count));
                }
                break;
            case MonitorEventKind::restart_merged:
                mark(e, TimelineMarkKind::note, "", "restart() merged into a pending restart");
                break;
            case MonitorEventKind::gave_up:
                scheduled.erase(e.component);
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
            case MonitorEventKind::restart_cancelled: scheduled.erase(e.component); break;
            case MonitorEventKind::closed:
                mark(e, TimelineMarkKind::note, "closed",
                     fmt::format("monitor closed: {} components, {} unresponsive", e.count, e.unresponsive));
                break;
            case MonitorEventKind::started:
            case MonitorEventKind::completed:
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

/// The components of a Supervisor run, in its order (taskmon::components in supervisor.hpp).
inline constexpr std::string_view supervisor_components[] = {
    "perception", "perception_watchdog", "decision_loop", "actuation_loop", "pause_handler", "load_shedding_monitor",
};

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

/// a - b, saturated at the limits of Offset.
inline Offset difference(Offset a, Offset b) noexcept {
    Offset::rep out = 0;
    if (__builtin_sub_overflow(a.count(), b.count(), &out)) return b < Offset::zero() ? Offset::max() : Offset::min();
    return Offset{out};
}

/// "key=value" from a History event message, or empty.
inline std::string message_value(std::string_view message, std::string_view key) {
    const auto needle = std::string{key} + "=";
    std::size_t pos = 0;
    while ((pos = message.find(needle, pos)) != std::string_view::npos) {
        if (pos == 0 || message[pos - 1] == ' ') {
            const auto begin = pos + needle.size();
            const auto end = message.find(' ', begin);
            return std::string{message.substr(begin, end == std::string_view::npos ? end : end - begin)};
        }
        pos += needle.size();
    }
    return {};
}

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
        Fact f = lane_fact(e.component.empty() ? Fact::Type::run_mark : Fact::Type::lane_mark, e.at, e.component);
        std::string detail{to_string(e.kind)};
        if (!e.message.empty()) detail += ": " + e.message;
        f.mark = TimelineMark{kind, {}, std::move(label), std::move(detail)};
        out.push_back(std::move(f));
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
                const auto instance = message_value(e.message, "instance");
                std::uint64_t n = 0;
                const auto parsed = std::from_chars(instance.data(), instance.data() + instance.size(), n);
                const bool known = parsed.ec == std::errc{} && parsed.ptr == instance.data() + instance.size() && n > 1;
                const std::string number = known ? fmt::format("#{}", n - 1) : std::string{"#?"};
                Fact f = lane_fact(Fact::Type::lane_mark, e.at, e.component);
                if (const auto it = failed_at.find(e.component); it != failed_at.end()) {
                    const auto down = difference(e.at, it->second);
                    f.mark = TimelineMark{TimelineMarkKind::restart,
                                          {},
                                          number + " " + short_duration(down),
                                          fmt::format("restart {} ({}) after {} backing off since its failure", number,
                                                      e.message, short_duration(down))};
                    failed_at.erase(it);
                } else {
                    f.mark =
                        TimelineMark{TimelineMarkKind::restart,
                                     {},
                                     number + " requested",
                                     fmt::format("restart {} ({}) requested, not after a failure", number, e.message)};
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
                const auto stall = message_value(e.message, "stall");
                add_mark(e, TimelineMarkKind::warning, stall.empty() ? "stall" : "stall " + stall);
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

// --- SVG ----------------------------------------------------------------------------------------------------------

/// Text for XML: & < > " ' escaped; invalid UTF-8 and characters XML 1.0 forbids become U+FFFD.
inline std::string xml_escape(std::string_view text) {
    std::string out;
    out.reserve(text.size() + 8);
    for (std::size_t at = 0; at < text.size();) {
        const auto s = decode_utf8(text, at);  // an invalid byte is one byte long: each is replaced
        const auto cp = s.code_point;
        if (!s.valid) {
            out += utf8_replacement;
        } else if (cp < 0x80) {
            switch (cp) {
                case '&': out += "&amp;"; break;
                case '<': out += "&lt;"; break;
                case '>': out += "&gt;"; break;
                case '"': out += "&quot;"; break;
                case '\'': out += "&apos;"; break;
                default:
                    if (cp < 0x20 && cp != '\t' && cp != '\n' && cp != '\r') {
                        out += utf8_replacement;
                    } else {
                        out += static_cast<char>(cp);
                    }
            }
        } else if (cp == 0xFFFE || cp == 0xFFFF) {  // UTF-8, but not an XML 1.0 Char: one replacement
            out += utf8_replacement;
        } else {
            out.append(text.substr(at, s.length));
        }
        at += s.length;
    }
    return out;
}

/// Number of code points (continuation bytes not counted).
inline std::size_t text_length(std::string_view text) noexcept {
    return static_cast<std::size_t>(std::count_if(
        text.begin(), text.end(), [](char c) { return (static_cast<unsigned char>(c) & 0xC0u) != 0x80u; }));
}

/// At most `max` code points, ending in "…" when cut.
inline std::string shorten(std::string_view text, std::size_t max) {
    if (text_length(text) <= max) return std::string{text};
    std::size_t kept = 0;
    std::size_t i = 0;
    for (; i < text.size(); ++i) {
        if ((static_cast<unsigned char>(text[i]) & 0xC0u) != 0x80u && kept++ == max - 1) break;
    }
    return std::string{text.substr(0, i)} + "…";
}

inline std::string display_name(std::string_view state) {
    std::string out{state};
    std::replace(out.begin(), out.end(), '_', ' ');
    return out;
}

/// "2026-12-02 10:25:42 UTC"
inline std::string format_utc(Clock::time_point time) {
    using namespace std::chrono;
    const auto s = floor<seconds>(time);
    const auto day = floor<days>(s);
    const year_month_day date{day};
    const hh_mm_ss hms{s - day};
    return fmt::format("{:04}-{:02}-{:02} {:02}:{:02}:{:02} UTC", static_cast<int>(date.year()),
                       static_cast<unsigned>(date.month()), static_cast<unsigned>(date.day()), hms.hours().count(),
                       hms.minutes().count(), hms.seconds().count());
}

/// How the time axis is divided and labelled: a tick every `step`, every label a number of `unit` ("ns", "µs",
/// "ms", "s", "m", "h" or "d", as short_duration() names them) with as many decimals as the step needs, so one axis
/// never mixes units.
struct AxisScale {
    Offset step{};
    Offset unit_length{};
    std::string_view unit;

    friend bool operator==(const AxisScale&, const AxisScale&) = default;
};

/// A unit of the time axis and the steps it allows.
struct AxisUnit {
    std::string_view name;
    Offset length;
    std::array<std::int32_t, 15> steps;  ///< multiples of `length`, ascending; a 0 ends the list
};

/// Up to 10 s the steps are 1, 2 or 5 × 10^k; from there on they divide the next unit evenly (15 and 30 s a
/// minute, 15 and 30 min an hour, 3, 6 and 12 h a day), so that ticks fall on whole minutes, hours and days. Days
/// go on by 1, 2 or 5 × 10^k up to 50'000 d, beyond Offset::max() (106'751 d) over ten intervals.
inline constexpr AxisUnit axis_units[] = {
    {"ns", std::chrono::nanoseconds{1}, {1, 2, 5, 10, 20, 50, 100, 200, 500}},
    {"µs", std::chrono::microseconds{1}, {1, 2, 5, 10, 20, 50, 100, 200, 500}},
    {"ms", std::chrono::milliseconds{1}, {1, 2, 5, 10, 20, 50, 100, 200, 500}},
    {"s", std::chrono::seconds{1}, {1, 2, 5, 10, 15, 30}},
    {"m", std::chrono::minutes{1}, {1, 2, 5, 10, 15, 30}},
    {"h", std::chrono::hours{1}, {1, 2, 3, 6, 12}},
    {"d", std::chrono::hours{24}, {1, 2, 5, 10, 20, 50, 100, 200, 500, 1'000, 2'000, 5'000, 10'000, 20'000, 50'000}},
};

/// The scale of a time axis over `span` with at most `max_ticks` intervals: the smallest step of axis_units that
/// gives no more. A step under a minute is labelled in the largest of ns, µs, ms and s that the span reaches (over
/// 3 s, 0.5 s steps read "0s 0.5s 1s"; over 900 ms, 100 ms steps read "0ms 100ms"), a longer one in its own unit
/// ("0m 15m 30m", "0h 12h 24h", "0d 2d 4d").
[[nodiscard]] inline AxisScale axis_scale(Offset span, int max_ticks = 10) {
    constexpr std::size_t decimal_units = 4;  // ns, µs, ms, s: each a thousand of the one before
    span = std::max(span, Offset{1});
    const Offset::rep intervals = std::max(max_ticks, 1);
    const Offset wanted{span.count() / intervals + (span.count() % intervals != 0 ? 1 : 0)};  // ceil(span / n)
    for (std::size_t u = 0; u < std::size(axis_units); ++u) {
        for (const auto n : axis_units[u].steps) {
            if (n == 0) break;
            const Offset step = axis_units[u].length * n;
            if (step < wanted) continue;
            std::size_t label = u;
            if (u < decimal_units) {
                label = 0;
                while (label + 1 < decimal_units && span >= axis_units[label + 1].length) ++label;
            }
            return AxisScale{step, axis_units[label].length, axis_units[label].name};
        }
    }
    const auto& day = axis_units[std::size(axis_units) - 1];
    return AxisScale{span, day.length, day.name};  // over 50'000 d per interval (max_ticks 1 or 2): one interval
}

/// 0, step, 2 step ... up to `end` (without overflowing near Offset::max()).
inline std::vector<Offset> tick_offsets(Offset end, Offset step) {
    std::vector<Offset> out{Offset::zero()};
    while (end - out.back() >= step) out.push_back(out.back() + step);
    return out;
}

/// The label of the tick at `at` (a multiple of scale.step): "0s", "2.5s", "90s", "135m". In integers, so that
/// 100 ms steps print "0.3s", not "0.30000000000000004s".
inline std::string tick_label(Offset at, const AxisScale& scale) {
    const Offset::rep unit = scale.unit_length.count();
    int decimals = 0;
    Offset::rep power = 1;  // 10^decimals
    while (decimals < 9 && scale.step.count() % unit * power % unit != 0) {
        ++decimals;
        power *= 10;
    }
    std::string text = fmt::format("{}", at.count() / unit);
    if (const Offset::rep rest = at.count() % unit; rest != 0 && decimals > 0) {
        auto digits = fmt::format("{:0{}}", rest * power / unit, decimals);
        while (!digits.empty() && digits.back() == '0') digits.pop_back();
        if (!digits.empty()) text += '.' + digits;
    }
    text += scale.unit;
    return text;
}

class SvgWriter {
public:
    SvgWriter(const Timeline& t, const TimelineStyle& style) : t_(t), style_(style) {}

    std::string render() {
        layout();
        begin();
        draw_rows();
        draw_axis();
        draw_legend();
        out_ += "</svg>\n";
        return std::move(out_);
    }

private:
    static constexpr double margin = 16;
    static constexpr double char_width = 0.62;  // of the font size, a generous average for sans-serif
    static constexpr double label_font = 10;

    double x(Offset at) const {
        const double span = static_cast<double>(std::max(t_.end, Offset{1}).count());
        return plot_x0_ + (plot_x1_ - plot_x0_) * static_cast<double>(at.count()) / span;
    }
    static double text_width(std::string_view text, double font) {
        return static_cast<double>(text_length(text)) * font * char_width;
    }
    template <typename... Args>
    void put(fmt::format_string<Args...> format, Args&&... args) {
        fmt::format_to(std::back_inserter(out_), format, std::forward<Args>(args)...);
    }

    void layout() {
        std::size_t longest = 10;  // "run status"
        for (const auto& l : t_.lanes) longest = std::max(longest, text_length(l.name));
        for (const auto& o : t_.overlays) longest = std::max(longest, text_length(display_name(o.state)));
        label_chars_ = std::min<std::size_t>(longest, 32);
        const double label_width = static_cast<double>(label_chars_) * 12 * char_width + 14;
        width_ = style_.width;
        plot_x0_ = margin + label_width;
        plot_x1_ = width_ - margin - 12;
        double y = 62;
        if (!t_.run.spans.empty() || !t_.run.marks.empty()) {
            run_y_ = y;
            y += style_.lane_height;
        }
        for (const auto& o : t_.overlays) {
            const bool in_status_row = std::any_of(t_.run.spans.begin(), t_.run.spans.end(),
                                                   [&](const TimelineSpan& s) { return s.state == o.state; });
            if (!in_status_row &&
                std::find(overlay_names_.begin(), overlay_names_.end(), o.state) == overlay_names_.end()) {
                overlay_names_.push_back(o.state);
            }
        }
        overlay_y_ = y;
        y += 24.0 * static_cast<double>(overlay_names_.size());
        if (!overlay_names_.empty() || run_y_) y += 6;
        lanes_y_ = y;
        y += style_.lane_height * static_cast<double>(std::max<std::size_t>(t_.lanes.size(), 1));
        axis_y_ = y + 4;
        legend_y_ = axis_y_ + 58;
        collect_legend();
        const double per_row = std::max(1.0, std::floor((width_ - 2 * margin) / 190.0));
        legend_rows_ = static_cast<int>(std::ceil(static_cast<double>(legend_.size()) / per_row));
        height_ = legend_y_ + 20.0 * legend_rows_ + margin;
    }

    void collect_legend() {
        std::vector<std::string> states;
        const auto add = [&](const std::string& s) {
            if (std::find(states.begin(), states.end(), s) == states.end()) states.push_back(s);
        };
        for (const auto& l : t_.lanes) {
            for (const auto& s : l.spans) add(s.state);
        }
        for (const auto& s : t_.run.spans) add(s.state);
        for (const auto& o : t_.overlays) add(o.state);
        for (const auto& s : state_styles) {
            if (std::find(states.begin(), states.end(), s.name) != states.end()) {
                legend_.push_back({false, std::string{s.name}, {}});
            }
        }
        for (const auto& s : states) {
            if (find_state_style(s) == nullptr) legend_.push_back({false, s, {}});
        }
        bool kinds[4] = {false, false, false, false};
        for (const auto& l : t_.lanes) {
            for (const auto& m : l.marks) kinds[static_cast<int>(m.kind)] = true;
        }
        for (const auto& m : t_.run.marks) kinds[static_cast<int>(m.kind)] = true;
        constexpr std::string_view mark_names[] = {"restart (#n, backoff)", "failure", "warning", "note"};
        for (int k = 0; k < 4; ++k) {
            if (kinds[k]) legend_.push_back({true, std::string{mark_names[k]}, static_cast<TimelineMarkKind>(k)});
        }
    }

    void begin() {
        put("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
        put("<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{0:.0f}\" height=\"{1:.0f}\" viewBox=\"0 0 {0:.0f} "
            "{1:.0f}\" font-family=\"{2}\" font-size=\"12\">\n",
            width_, height_, xml_escape(style_.font_family));
        put("<title>{}</title>\n", xml_escape(style_.title));
        put("<defs><pattern id=\"hatch\" patternUnits=\"userSpaceOnUse\" width=\"6\" height=\"6\" "
            "patternTransform=\"rotate(45)\"><rect width=\"6\" height=\"6\" fill=\"#ffb300\"/><rect width=\"2\" "
            "height=\"6\" fill=\"#fff3c4\"/></pattern></defs>\n");
        put("<clipPath id=\"row-labels\"><rect x=\"{:.1f}\" y=\"0\" width=\"{:.1f}\" height=\"{:.0f}\"/></clipPath>\n",
            margin, plot_x0_ - 6 - margin, height_);
        put("<rect width=\"100%\" height=\"100%\" fill=\"#ffffff\"/>\n");
        put("<text x=\"{:.1f}\" y=\"26\" font-size=\"16\" font-weight=\"bold\" fill=\"#212121\">{}</text>\n", margin,
            xml_escape(shorten(style_.title, 90)));
        std::string subtitle = fmt::format("from {} · {} · {} component{}", format_utc(t_.origin),
                                           short_duration(t_.end), t_.lanes.size(), t_.lanes.size() == 1 ? "" : "s");
        put("<text x=\"{:.1f}\" y=\"44\" font-size=\"11\" fill=\"#616161\">{}</text>\n", margin, xml_escape(subtitle));
    }

    static const StateStyle& style_of(std::string_view state) {
        const auto* s = find_state_style(state);
        return s != nullptr ? *s : unknown_state_style;
    }
    static std::string fill_of(std::string_view state) {
        return state == "backing_off" ? std::string{"url(#hatch)"} : std::string{style_of(state).fill};
    }

    void row_label(double y, double h, std::string_view name, bool bold) {
        put("<text x=\"{:.1f}\" y=\"{:.1f}\" text-anchor=\"end\" fill=\"#212121\" clip-path=\"url(#row-labels)\"{}>{}"
            "<title>{}</title></text>\n",
            plot_x0_ - 8, y + h / 2 + 4, bold ? " font-weight=\"bold\"" : "", xml_escape(shorten(name, label_chars_)),
            xml_escape(name));
    }

    void span(const TimelineSpan& s, double y, double h, const char* cls) {
        const double x0 = x(s.begin);
        const double w = std::max(1.0, x(s.end) - x0);
        const auto& st = style_of(s.state);
        put("<rect class=\"{}\" data-state=\"{}\" x=\"{:.2f}\" y=\"{:.1f}\" width=\"{:.2f}\" height=\"{:.1f}\" "
            "fill=\"{}\"><title>{}: {} – {}{}{}</title></rect>\n",
            cls, xml_escape(s.state), x0, y, w, h, fill_of(s.state), xml_escape(display_name(s.state)),
            short_duration(s.begin), short_duration(s.end), s.detail.empty() ? "" : " — ", xml_escape(s.detail));
        // The name inside, where it fits (always for states without a colour of their own).
        const auto name = display_name(s.state);
        const bool wanted = s.state != "running" || std::string_view{cls} == "status";
        if (wanted && w >= text_width(name, label_font) + 10) {
            put("<text x=\"{:.2f}\" y=\"{:.1f}\" font-size=\"{}\" fill=\"{}\" pointer-events=\"none\">{}</text>\n",
                x0 + 7, y + h / 2 + 3.5, label_font, s.state == "backing_off" ? "#3e2723" : st.text, xml_escape(name));
        }
    }

    void glyph(TimelineMarkKind kind, double cx, double top, double bottom) {
        const double mid = (top + bottom) / 2;
        switch (kind) {
            case TimelineMarkKind::restart:
                put("<line x1=\"{0:.2f}\" y1=\"{1:.1f}\" x2=\"{0:.2f}\" y2=\"{2:.1f}\" stroke=\"#0d47a1\" "
                    "stroke-width=\"2\"/><path d=\"M{3:.2f},{4:.1f} l4,-6 l-8,0 z\" fill=\"#0d47a1\"/>",
                    cx, top - 2, bottom + 2, cx, top - 1);
                break;
            case TimelineMarkKind::failure:
                put("<path d=\"M{0:.2f},{1:.1f} l8,8 M{0:.2f},{2:.1f} l8,-8\" stroke=\"#b71c1c\" stroke-width=\"2.5\" "
                    "stroke-linecap=\"round\"/><path d=\"M{0:.2f},{1:.1f} l8,8 M{0:.2f},{2:.1f} l8,-8\" "
                    "stroke=\"#ffffff\" "
                    "stroke-width=\"0.8\" stroke-linecap=\"round\"/>",
                    cx - 4, mid - 4, mid + 4);
                break;
            case TimelineMarkKind::warning:
                put("<path d=\"M{:.2f},{:.1f} l5,9 l-10,0 z\" fill=\"#ef6c00\" stroke=\"#ffffff\" "
                    "stroke-width=\"0.8\"/>",
                    cx, mid - 5);
                break;
            case TimelineMarkKind::note:
                put("<path d=\"M{:.2f},{:.1f} l4,4 l-4,4 l-4,-4 z\" fill=\"#37474f\" stroke=\"#ffffff\" "
                    "stroke-width=\"0.8\"/>",
                    cx, mid - 4);
                break;
        }
    }

    /// Marks with their labels above the bar, or below it when the space above is taken; a label that fits in
    /// neither is left out (the mark's tooltip still has it).
    void marks(const std::vector<TimelineMark>& marks, double bar_top, double bar_bottom, double row_top,
               double row_bottom) {
        const char* names[] = {"restart", "failure", "warning", "note"};
        double free_above = -1e9;
        double free_below = -1e9;
        for (const auto& m : marks) {
            const double cx = x(m.at);
            put("<g class=\"mark {}\"><title>{} · {}</title>", names[static_cast<int>(m.kind)], short_duration(m.at),
                xml_escape(m.detail.empty() ? m.label : m.detail));
            glyph(m.kind, cx, bar_top, bar_bottom);
            if (!m.label.empty()) {
                const auto label = shorten(m.label, 24);
                const double w = text_width(label, label_font);
                const double left = std::clamp(cx + 4, plot_x0_, plot_x1_ - w);
                if (left >= free_above) {
                    put("<text x=\"{:.2f}\" y=\"{:.1f}\" font-size=\"{}\" fill=\"#263238\">{}</text>", left,
                        row_top + 10, label_font, xml_escape(label));
                    free_above = left + w + 4;
                } else if (left >= free_below) {
                    put("<text x=\"{:.2f}\" y=\"{:.1f}\" font-size=\"{}\" fill=\"#263238\">{}</text>", left,
                        row_bottom - 3, label_font, xml_escape(label));
                    free_below = left + w + 4;
                }
            }
            put("</g>\n");
        }
    }

    void draw_rows() {
        const double h = style_.lane_height;
        const double bar = std::round(h * 0.36);
        // Grid lines first, under everything.
        const auto scale = axis_scale(t_.end > Offset::zero() ? t_.end : Offset{std::chrono::seconds{1}});
        const auto ticks = tick_offsets(t_.end, scale.step);
        put("<g class=\"grid\" stroke=\"#eceff1\" stroke-width=\"1\">");
        for (const Offset at : ticks) {
            put("<line x1=\"{0:.2f}\" y1=\"{1:.1f}\" x2=\"{0:.2f}\" y2=\"{2:.1f}\"/>", x(at), run_y_.value_or(lanes_y_),
                axis_y_);
        }
        put("</g>\n");
        if (run_y_) {
            const double y = *run_y_;
            put("<g class=\"run\">\n<rect x=\"{:.1f}\" y=\"{:.1f}\" width=\"{:.1f}\" height=\"{:.1f}\" "
                "fill=\"#f5f7f8\"/>\n",
                margin, y, width_ - 2 * margin, h);
            row_label(y, h, t_.run.spans.empty() ? "run" : "run status", true);
            const double top = y + (h - bar) / 2;
            for (const auto& s : t_.run.spans) span(s, top, bar, "status");
            marks(t_.run.marks, top, top + bar, y, y + h);
            put("</g>\n");
        }
        for (std::size_t i = 0; i < overlay_names_.size(); ++i) {
            const double y = overlay_y_ + 24.0 * static_cast<double>(i);
            put("<g class=\"overlay\" data-overlay=\"{}\">\n", xml_escape(overlay_names_[i]));
            row_label(y, 24, display_name(overlay_names_[i]), false);
            for (const auto& o : t_.overlays) {
                if (o.state == overlay_names_[i]) span(o, y + 5, 14, "overlay-span");
            }
            put("</g>\n");
        }
        for (std::size_t i = 0; i < t_.lanes.size(); ++i) {
            const auto& lane = t_.lanes[i];
            const double y = lanes_y_ + h * static_cast<double>(i);
            put("<g class=\"lane\" data-lane=\"{}\">\n", xml_escape(lane.name));
            put("<rect x=\"{:.1f}\" y=\"{:.1f}\" width=\"{:.1f}\" height=\"{:.1f}\" fill=\"{}\"/>\n", margin, y,
                width_ - 2 * margin, h, i % 2 == 0 ? "#fafafa" : "#ffffff");
            row_label(y, h, lane.name, false);
            const double top = y + (h - bar) / 2;
            for (const auto& s : lane.spans) span(s, top, bar, "span");
            marks(lane.marks, top, top + bar, y, y + h);
            put("</g>\n");
        }
        if (t_.lanes.empty()) {
            put("<text x=\"{:.1f}\" y=\"{:.1f}\" fill=\"#757575\">no components recorded</text>\n", plot_x0_,
                lanes_y_ + h / 2 + 4);
        }
        // Pauses and other run-wide stretches, shaded across the component lanes.
        for (const auto& o : t_.overlays) {
            put("<rect class=\"overlay-shade\" x=\"{:.2f}\" y=\"{:.1f}\" width=\"{:.2f}\" height=\"{:.1f}\" "
                "fill=\"{}\" fill-opacity=\"0.14\" pointer-events=\"none\"/>\n",
                x(o.begin), lanes_y_, std::max(1.0, x(o.end) - x(o.begin)), h * static_cast<double>(t_.lanes.size()),
                style_of(o.state).fill);
        }
        // Status changes: a dashed line from the status row down through the lanes.
        if (run_y_) {
            for (std::size_t i = 1; i < t_.run.spans.size(); ++i) {
                put("<line class=\"status-change\" x1=\"{0:.2f}\" y1=\"{1:.1f}\" x2=\"{0:.2f}\" y2=\"{2:.1f}\" "
                    "stroke=\"#546e7a\" stroke-width=\"1\" stroke-dasharray=\"3,3\" pointer-events=\"none\"/>\n",
                    x(t_.run.spans[i].begin), *run_y_ + h, axis_y_);
            }
        }
    }

    void draw_axis() {
        const auto scale = axis_scale(t_.end > Offset::zero() ? t_.end : Offset{std::chrono::seconds{1}});
        const auto ticks = tick_offsets(t_.end, scale.step);
        put("<g class=\"axis\">\n<line x1=\"{:.2f}\" y1=\"{:.1f}\" x2=\"{:.2f}\" y2=\"{:.1f}\" stroke=\"#455a64\"/>\n",
            plot_x0_, axis_y_, plot_x1_, axis_y_);
        for (const Offset at : ticks) {
            put("<line x1=\"{0:.2f}\" y1=\"{1:.1f}\" x2=\"{0:.2f}\" y2=\"{2:.1f}\" stroke=\"#455a64\"/>"
                "<text x=\"{0:.2f}\" y=\"{3:.1f}\" text-anchor=\"middle\" font-size=\"11\" "
                "fill=\"#37474f\">{4}</text>\n",
                x(at), axis_y_, axis_y_ + 5, axis_y_ + 18, tick_label(at, scale));
        }
        put("<text x=\"{:.2f}\" y=\"{:.1f}\" text-anchor=\"end\" font-size=\"11\" fill=\"#616161\">time since "
            "the start of the run</text>\n</g>\n",
            plot_x1_, axis_y_ + 34);
    }

    void draw_legend() {
        put("<g class=\"legend\" font-size=\"11\">\n");
        const int per_row = std::max(1, static_cast<int>(std::floor((width_ - 2 * margin) / 190.0)));
        for (std::size_t i = 0; i < legend_.size(); ++i) {
            const double lx = margin + 190.0 * static_cast<double>(static_cast<int>(i) % per_row);
            const double ly = legend_y_ + 20.0 * static_cast<double>(static_cast<int>(i) / per_row);
            const auto& item = legend_[i];
            if (item.mark) {
                glyph(item.kind, lx + 8, ly - 9, ly + 3);
            } else {
                put("<rect x=\"{:.1f}\" y=\"{:.1f}\" width=\"16\" height=\"11\" fill=\"{}\"/>", lx, ly - 9,
                    fill_of(item.name));
            }
            put("<text x=\"{:.1f}\" y=\"{:.1f}\" fill=\"#37474f\">{}</text>\n", lx + 22, ly,
                xml_escape(item.mark ? item.name : display_name(item.name)));
        }
        put("</g>\n");
    }

    struct LegendItem {
        bool mark;
        std::string name;
        TimelineMarkKind kind;
    };

    const Timeline& t_;
    const TimelineStyle& style_;
    std::string out_;
    std::size_t label_chars_ = 10;
    double width_ = 0;
    double height_ = 0;
    double plot_x0_ = 0;
    double plot_x1_ = 0;
    std::optional<double> run_y_;
    double overlay_y_ = 0;
    double lanes_y_ = 0;
    double axis_y_ = 0;
    double legend_y_ = 0;
    int legend_rows_ = 0;
    std::vector<std::string> overlay_names_;
    std::vector<LegendItem> legend_;
};

}  // namespace detail::timeline

/// Collects a run's events into a Timeline. Thread-safe: every member may be called from any thread (a
/// TaskMonitor delivers events from its strand). Neither copyable nor movable (listeners point at it).
///
/// Inputs are kept as given and put in time order when timeline() is called, so events that arrive out of
/// order (listeners on several threads) are drawn where they happened.
class TimelineRecorder {
public:
    using Clock = std::chrono::system_clock;

    /// Offset 0 of the picture is `origin`, or else the earliest thing recorded.
    explicit TimelineRecorder(std::optional<Clock::time_point> origin = std::nullopt) : origin_(origin) {}

    /// Stops listening (see detach()).
    ~TimelineRecorder() { detach(); }

    TimelineRecorder(const TimelineRecorder&) = delete;
    TimelineRecorder& operator=(const TimelineRecorder&) = delete;

    /// Records every event `monitor` (a BasicTaskMonitor<Clock>) publishes from now on, but those of spawned
    /// tasks, until detach() or destruction. Throws what subscribe() throws (std::logic_error once the monitor's close() started).
    template <typename Monitor>
    void attach(Monitor& monitor) {
        auto subscription = monitor.subscribe([this](const MonitorEvent& e) { record(e); });
        const std::lock_guard lock{mutex_};
        subscriptions_.push_back(std::move(subscription));
    }

    /// Unsubscribes from every attached monitor; returns once no listener call is running on another thread
    /// (EventSubscription::unsubscribe()). What was recorded stays.
    void detach() noexcept {
        std::vector<EventSubscription> subscriptions;
        {
            const std::lock_guard lock{mutex_};
            subscriptions.swap(subscriptions_);
        }
        subscriptions.clear();  // outside the lock: a listener call in flight needs it to finish
    }

    /// One TaskMonitor event (attach() calls this for you). An event of a spawned task is dropped.
    void record(const MonitorEvent& event) {
        if (event.spawned) return;
        const std::lock_guard lock{mutex_};
        monitor_events_.push_back(event);
    }

    /// A Supervisor status change that happened at `at` (e.g. from SupervisorHooks::on_status_change; a run's
    /// History has them too). A change to paused starts the "paused" overlay; one from paused ends it.
    void record_status(const StatusTransition& change, Clock::time_point at) {
        using detail::timeline::Fact;
        std::vector<Fact> facts;
        Fact f;
        f.type = Fact::Type::run_status;
        f.at = at;
        f.state = std::string{to_string(change.to)};
        f.detail = change.reason;
        facts.push_back(std::move(f));
        if (is_terminal(change.to)) facts.push_back(detail::timeline::terminal_mark(at, change.to, change.reason));
        if (change.to == AgentStatus::paused || change.from == AgentStatus::paused) {
            Fact o;
            o.type = change.to == AgentStatus::paused ? Fact::Type::overlay_on : Fact::Type::overlay_off;
            o.at = at;
            o.lane = "paused";
            o.detail = change.reason;
            facts.push_back(std::move(o));
        }
        add(std::move(facts));
    }

    /// A mark of your own on `lane` (a component's lane, created if new; empty: the run's row).
    void record_note(Clock::time_point at, const std::string& lane, std::string label, std::string detail = {},
                     TimelineMarkKind kind = TimelineMarkKind::note) {
        using detail::timeline::Fact;
        Fact f;
        f.type = lane.empty() ? Fact::Type::run_mark : Fact::Type::lane_mark;
        f.at = at;
        f.lane = lane;
        f.mark = TimelineMark{kind, {}, std::move(label), std::move(detail)};
        add({std::move(f)});
    }

    /// Everything a Supervisor run's History tells: status changes and pauses, the six components' lanes from
    /// the start of the run (failures, restarts with the time spent backing off, give-ups), watchdog stalls,
    /// load shedding, expired decisions, interrupted actions, hook errors. Times are started_wall_time plus the
    /// offsets, so a History recorded under a virtual clock keeps its exact virtual times. (A History has no
    /// backoff attempt numbers: restart marks say "#n", the n-th restart, and how long the component was down.)
    template <typename Action, typename Result>
    void record_history(const History<Action, Result>& history) {
        std::vector<detail::timeline::Fact> facts;
        detail::timeline::facts_of(history, facts);
        add(std::move(facts));
    }

    /// What was recorded until now (or until `until`), with every open state ending at the right edge: the
    /// latest time recorded, or `until`.
    [[nodiscard]] Timeline timeline(std::optional<Clock::time_point> until = std::nullopt) const {
        std::vector<detail::timeline::Fact> facts;
        std::vector<MonitorEvent> events;
        {
            const std::lock_guard lock{mutex_};
            facts = facts_;
            events = monitor_events_;
        }
        std::stable_sort(events.begin(), events.end(), [](const MonitorEvent& a, const MonitorEvent& b) {
            return a.time != b.time ? a.time < b.time : a.sequence < b.sequence;
        });
        detail::timeline::facts_of(events, facts);
        return detail::timeline::fold(std::move(facts), origin_, until);
    }

private:
    void add(std::vector<detail::timeline::Fact> facts) {
        const std::lock_guard lock{mutex_};
        for (auto& f : facts) facts_.push_back(std::move(f));
    }

    std::optional<Clock::time_point> origin_;
    mutable std::mutex mutex_;
    std::vector<detail::timeline::Fact> facts_;     ///< guarded by mutex_
    std::vector<MonitorEvent> monitor_events_;      ///< guarded by mutex_, in arrival order
    std::vector<EventSubscription> subscriptions_;  ///< guarded by mutex_
};

/// The Timeline of one Supervisor run (see TimelineRecorder::record_history()).
template <typename Action, typename Result>
Timeline timeline_of(const History<Action, Result>& history) {
    TimelineRecorder recorder;
    recorder.record_history(history);
    return recorder.timeline();
}

/// The Timeline as a standalone SVG document (UTF-8; every text escaped). Throws std::invalid_argument for a
/// style out of range or a Timeline with a negative end.
inline std::string render_svg(const Timeline& timeline, const TimelineStyle& style = {}) {
    if (style.width < 480) throw std::invalid_argument("TimelineStyle.width must be >= 480");
    if (style.lane_height < 30) throw std::invalid_argument("TimelineStyle.lane_height must be >= 30");
    if (timeline.end < Offset::zero()) throw std::invalid_argument("Timeline.end must be >= 0");
    return detail::timeline::SvgWriter{timeline, style}.render();
}

/// Writes render_svg(timeline, style) to `path`. Throws std::runtime_error naming the path when it cannot.
inline void write_svg(const std::string& path, const Timeline& timeline, const TimelineStyle& style = {}) {
    const auto svg = render_svg(timeline, style);
    std::ofstream file{path, std::ios::binary | std::ios::trunc};
    if (file) file.write(svg.data(), static_cast<std::streamsize>(svg.size()));
    if (file) file.close();
    if (!file) {
        throw std::runtime_error("write_svg: cannot write " + path + ": " +
                                 std::error_code{errno, std::generic_category()}.message());
    }
}

}  // namespace taskmon

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
//
// The Timeline's types are in taskmon/ops/timeline_model.hpp, included here.
#pragma once

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <fstream>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

#include <taskmon/agent/agent_status.hpp>
#include <taskmon/agent/history.hpp>
#include <taskmon/detail/timeline_facts.hpp>
#include <taskmon/detail/timeline_history_facts.hpp>
#include <taskmon/detail/timeline_monitor_facts.hpp>
#include <taskmon/detail/timeline_spans.hpp>
#include <taskmon/detail/timeline_svg.hpp>
#include <taskmon/event_subscription.hpp>
#include <taskmon/monitor_event.hpp>
#include <taskmon/ops/timeline_model.hpp>

namespace taskmon {

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
    /// tasks, until detach() or destruction. Throws what subscribe() throws (std::logic_error once the monitor's
    /// close() started).
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
        add(detail::timeline::status_facts(change, at));
    }

    /// A mark of your own on `lane` (a component's lane, created if new; empty: the run's row).
    void record_note(Clock::time_point at, const std::string& lane, std::string label, std::string detail = {},
                     TimelineMarkKind kind = TimelineMarkKind::note) {
        add({detail::timeline::mark_fact(at, lane, TimelineMark{kind, {}, std::move(label), std::move(detail)})});
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

// Tests for taskmon/ops/timeline.hpp: what a TimelineRecorder makes of a TaskMonitor run and of a Supervisor
// History (both in virtual time, so every time is exact), states and event kinds it does not know, and the SVG
// (its structure here; its well-formedness is checked by xmllint on the files of timeline_samples.cpp).
#include <taskmon/ops/timeline.hpp>

#include "monitor_harness.hpp"
#include "taskmon_catch.hpp"
#include "timeline_scenarios.hpp"

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

using namespace std::chrono_literals;
using taskmon::MonitorEvent;
using taskmon::MonitorEventKind;
using taskmon::Offset;
using taskmon::Timeline;
using taskmon::TimelineLane;
using taskmon::TimelineMarkKind;
using taskmon::TimelineRecorder;
using taskmon::TimelineSpan;
using namespace taskmon_test;
using SystemTime = std::chrono::system_clock::time_point;

namespace {

std::size_t count(std::string_view text, std::string_view needle) {
    std::size_t n = 0;
    for (auto pos = text.find(needle); pos != std::string_view::npos; pos = text.find(needle, pos + needle.size())) {
        ++n;
    }
    return n;
}

const TimelineLane& lane(const Timeline& t, const std::string& name) {
    const auto it = std::find_if(t.lanes.begin(), t.lanes.end(), [&](const TimelineLane& l) { return l.name == name; });
    REQUIRE(it != t.lanes.end());
    return *it;
}

std::vector<std::string> names(const std::vector<TimelineLane>& lanes) {
    std::vector<std::string> out;
    for (const auto& l : lanes) out.push_back(l.name);
    return out;
}

std::vector<std::string> states(const std::vector<TimelineSpan>& spans) {
    std::vector<std::string> out;
    for (const auto& s : spans) out.push_back(s.state);
    return out;
}

std::vector<taskmon::TimelineMark> marks_of(const TimelineLane& l, TimelineMarkKind kind) {
    std::vector<taskmon::TimelineMark> out;
    for (const auto& m : l.marks) {
        if (m.kind == kind) out.push_back(m);
    }
    return out;
}

/// The span of `l` covering `at` (begin <= at < end).
const TimelineSpan* span_at(const TimelineLane& l, Offset at) {
    for (const auto& s : l.spans) {
        if (s.begin <= at && at < s.end) return &s;
    }
    return nullptr;
}

SystemTime at(Offset d) { return SystemTime{} + std::chrono::duration_cast<SystemTime::duration>(d); }

void check_well_ordered(const Timeline& t) {
    const auto check_spans = [&](const std::vector<TimelineSpan>& spans) {
        for (std::size_t i = 0; i < spans.size(); ++i) {
            CHECK(spans[i].begin < spans[i].end);
            CHECK(spans[i].begin >= Offset::zero());
            CHECK(spans[i].end <= t.end);
            if (i > 0) CHECK(spans[i - 1].end <= spans[i].begin);
        }
    };
    check_spans(t.run.spans);
    for (const auto& l : t.lanes) {
        INFO("lane " << l.name);
        check_spans(l.spans);
        for (std::size_t i = 1; i < l.marks.size(); ++i) CHECK(l.marks[i - 1].at <= l.marks[i].at);
    }
}

}  // namespace

// ---- a TaskMonitor run -------------------------------------------------------------------------------------------

TEST_CASE("timeline: a TaskMonitor run gets one lane per component, in the order they started") {
    MonitorRun run;
    const auto t = run.recorder.timeline();
    CHECK(names(t.lanes) == std::vector<std::string>{"ingest", "uploader", "cache"});
    CHECK(t.end == 12s);  // closed at 12 s of virtual time; offset 0 is the first event
    check_well_ordered(t);
}

TEST_CASE("timeline: lane states change at the exact virtual times of the events") {
    MonitorRun run;
    const auto t = run.recorder.timeline();
    const auto& ingest = lane(t, "ingest");
    CHECK(states(ingest.spans) ==
          std::vector<std::string>{"running", "backing_off", "running", "backing_off", "running"});
    REQUIRE(ingest.spans.size() == 5);
    CHECK(ingest.spans[0].begin == 0s);
    CHECK(ingest.spans[0].end == 2s);   // the first failure
    CHECK(ingest.spans[1].end == 3s);   // 1 s of backoff
    CHECK(ingest.spans[2].end == 6s);   // the second instance lived 3 s
    CHECK(ingest.spans[4].end == 12s);  // running until the monitor closed

    const auto& uploader = lane(t, "uploader");
    REQUIRE_FALSE(uploader.spans.empty());
    CHECK(uploader.spans.back().state == "gave_up");
    CHECK(uploader.spans.back().begin == 7s);  // restarts after 1 s, 2 s and 4 s of backoff, then the limit
    CHECK(uploader.spans.back().end == 12s);
    const auto give_ups = marks_of(uploader, TimelineMarkKind::failure);
    REQUIRE_FALSE(give_ups.empty());
    CHECK(give_ups.back().label == "gave up");
    CHECK_THAT(give_ups.back().detail, Catch::Matchers::Contains("more than 3 restarts within 10m00s"));

    const auto& cache = lane(t, "cache");
    CHECK(states(cache.spans) == std::vector<std::string>{"running"});  // the manual restart took no time
    const auto restarts = marks_of(cache, TimelineMarkKind::restart);
    REQUIRE(restarts.size() == 1);
    CHECK(restarts[0].label == "manual");
    CHECK(restarts[0].at == 10s);
    REQUIRE_FALSE(t.run.marks.empty());
    CHECK(t.run.marks.back().label == "closed");
}

TEST_CASE("timeline: every automatic restart is marked with its attempt and backoff, as the monitor reported it") {
    MonitorRun run;
    const auto t = run.recorder.timeline();
    const auto origin = t.origin;
    std::size_t checked = 0;
    std::map<std::string, MonitorEvent> scheduled;
    for (const auto& e : run.reference.events) {
        if (e.kind == MonitorEventKind::restart_scheduled) scheduled[e.component] = e;
        if (e.kind != MonitorEventKind::restarted || !scheduled.count(e.component)) continue;
        const auto& s = scheduled[e.component];
        const Offset when = e.time - origin;
        INFO(e.component << " restarted at " << when.count() << "ns");
        const auto marks = marks_of(lane(t, e.component), TimelineMarkKind::restart);
        const auto it = std::find_if(marks.begin(), marks.end(), [&](const auto& m) { return m.at == when; });
        REQUIRE(it != marks.end());
        CHECK(it->label == "#" + std::to_string(s.attempt) + " " + taskmon::detail::timeline::short_duration(s.delay));
        // The backoff is drawn from the scheduling to the restart (back-to-back backoffs of a component that
        // fails at once on every start make one span).
        const auto* backoff = span_at(lane(t, e.component), s.time - origin);
        REQUIRE(backoff != nullptr);
        CHECK(backoff->state == "backing_off");
        CHECK(backoff->begin <= s.time - origin);
        CHECK(backoff->end >= s.time - origin + s.delay);
        scheduled.erase(e.component);
        ++checked;
    }
    CHECK(checked == 5);  // ingest twice, uploader three times
    const auto& uploader = lane(t, "uploader");
    CHECK(states(uploader.spans) == std::vector<std::string>{"backing_off", "gave_up"});
    CHECK(uploader.spans[0].begin == 0s);
    CHECK(marks_of(lane(t, "ingest"), TimelineMarkKind::restart)[0].label == "#1 1s");
    CHECK(marks_of(lane(t, "uploader"), TimelineMarkKind::restart)[2].label == "#3 4s");
    CHECK(marks_of(lane(t, "ingest"), TimelineMarkKind::failure).size() == 2);
}

TEST_CASE("timeline: a restart is marked by the cause its `restarted` event carries, not by the events before it") {
    // Only `restarted` events: no restart_scheduled or quarantined before them to pair with.
    TimelineRecorder recorder;
    const SystemTime t0{std::chrono::hours{24 * 365 * 50}};
    const auto restarted = [&](std::string name, taskmon::RestartReason why, int attempt, Offset delay,
                               std::string reason, Offset at) {
        MonitorEvent e;
        e.kind = MonitorEventKind::restarted;
        e.component = std::move(name);
        e.time = t0 + at;
        e.restart_reason = why;
        e.attempt = attempt;
        e.delay = delay;
        e.reason = std::move(reason);
        e.restart_count = 1;
        recorder.record(e);
    };
    restarted("db", taskmon::RestartReason::failed, 2, 4s, "std::runtime_error: lost", 1s);
    restarted("follower", taskmon::RestartReason::group, 0, 0s, "", 2s);
    restarted("breaker", taskmon::RestartReason::quarantine_trial, 1, 30s, "std::runtime_error: down", 3s);
    restarted("by_hand", taskmon::RestartReason::manual, 0, 0s, "", 4s);
    const auto t = recorder.timeline();
    const auto only = [&](const std::string& name) {
        const auto marks = marks_of(lane(t, name), TimelineMarkKind::restart);
        REQUIRE(marks.size() == 1);
        return marks[0];
    };
    CHECK(only("db").label == "#2 4s");
    CHECK_THAT(only("db").detail, Catch::Matchers::Contains("after a backoff of 4s") &&
                                      Catch::Matchers::Contains("std::runtime_error: lost"));
    CHECK(only("follower").label == "group");
    CHECK(only("breaker").label == "trial 1");
    CHECK_THAT(only("breaker").detail, Catch::Matchers::Contains("cooldown of 30s"));
    CHECK(only("by_hand").label == "manual");
}

TEST_CASE("timeline: events delivered out of order are drawn where they happened") {
    MonitorRun run;
    const auto in_order = run.recorder.timeline();
    TimelineRecorder reversed;
    for (auto it = run.reference.events.rbegin(); it != run.reference.events.rend(); ++it) reversed.record(*it);
    const auto t = reversed.timeline();
    CHECK(t.origin == in_order.origin);
    CHECK(t.end == in_order.end);
    REQUIRE(names(t.lanes) == names(in_order.lanes));
    for (std::size_t i = 0; i < t.lanes.size(); ++i) {
        REQUIRE(t.lanes[i].spans.size() == in_order.lanes[i].spans.size());
        for (std::size_t k = 0; k < t.lanes[i].spans.size(); ++k) {
            CHECK(t.lanes[i].spans[k].state == in_order.lanes[i].spans[k].state);
            CHECK(t.lanes[i].spans[k].begin == in_order.lanes[i].spans[k].begin);
            CHECK(t.lanes[i].spans[k].end == in_order.lanes[i].spans[k].end);
        }
        REQUIRE(t.lanes[i].marks.size() == in_order.lanes[i].marks.size());
        for (std::size_t k = 0; k < t.lanes[i].marks.size(); ++k) {
            CHECK(t.lanes[i].marks[k].label == in_order.lanes[i].marks[k].label);
            CHECK(t.lanes[i].marks[k].at == in_order.lanes[i].marks[k].at);
        }
    }
}

TEST_CASE("timeline: timeline(until) cuts the picture at that time") {
    MonitorRun run;
    const auto origin = run.recorder.timeline().origin;
    const auto t = run.recorder.timeline(origin + 5s);
    CHECK(t.end == 5s);
    check_well_ordered(t);
    CHECK(lane(t, "uploader").spans.back().state == "backing_off");  // between the 3rd failure and restart
    CHECK(marks_of(lane(t, "cache"), TimelineMarkKind::restart).empty());
}

TEST_CASE("timeline: detach() stops recording and the recorder may outlive the monitor or die first") {
    Harness h;
    Script forever;
    std::optional<TimelineRecorder> recorder{std::in_place};
    {
        Monitor monitor{h.io.get_executor(), {}, h.logger};
        recorder->attach(monitor);
        monitor.supervise("worker", factory_of(forever));
        h.runner.run_for(1s);
        recorder->detach();
        monitor.restart("worker");
        h.runner.run_for(1s);
        h.close(monitor);
    }
    const auto t = recorder->timeline(recorder->timeline().origin + 2s);  // it saw nothing after 0 s
    REQUIRE(t.lanes.size() == 1);
    CHECK(t.lanes[0].marks.empty());  // the restart came after detach()
    CHECK(states(t.lanes[0].spans) == std::vector<std::string>{"running"});

    // A recorder destroyed while attached leaves the monitor working.
    Monitor monitor{h.io.get_executor(), {}, h.logger};
    recorder->attach(monitor);
    recorder.reset();
    Script another;
    monitor.supervise("worker", factory_of(another));
    monitor.restart("worker");
    h.runner.run_for(1s);
    h.close(monitor);
    CHECK(monitor.get_component_stats().at("worker").restart_count == 1);
}

TEST_CASE("timeline: spawned tasks get no lane and leave no trace") {
    Harness h;
    TimelineRecorder recorder;
    Monitor monitor{h.io.get_executor(), {}, h.logger};
    recorder.attach(monitor);
    Script acceptor;
    monitor.supervise("acceptor", factory_of(acceptor));
    monitor.spawn("conn-1", []() -> asio::awaitable<void> { co_await sleep_for(1s); }());
    monitor.spawn("conn-2", []() -> asio::awaitable<void> {
        co_await sleep_for(2s);
        throw std::runtime_error("peer reset");
    }());
    monitor.spawn("conn-3", []() -> asio::awaitable<void> { co_await sleep_for(1h); }());  // stopped by close()
    h.runner.run_for(3s);
    h.close(monitor);
    const auto t = recorder.timeline();
    CHECK(names(t.lanes) == std::vector<std::string>{"acceptor"});

    // Given by hand too: a spawned task's event is dropped, not kept until timeline() is called.
    TimelineRecorder by_hand{SystemTime{}};
    by_hand.record({.kind = MonitorEventKind::failed,
                    .component = "conn-9",
                    .sequence = 1,
                    .time = at(1s),
                    .reason = "std::runtime_error: peer reset",
                    .spawned = true});
    CHECK(by_hand.timeline().lanes.empty());
}

TEST_CASE("timeline: concurrent recording and reading lose nothing") {
    TimelineRecorder recorder{SystemTime{}};
    constexpr int threads = 4;
    constexpr int per_thread = 500;
    std::vector<std::thread> workers;
    for (int w = 0; w < threads; ++w) {
        workers.emplace_back([&recorder, w] {
            const auto name = "worker-" + std::to_string(w);
            for (int i = 0; i < per_thread; ++i) {
                recorder.record({.kind = MonitorEventKind::restarted,
                                 .component = name,
                                 .sequence = static_cast<std::uint64_t>(w * per_thread + i + 1),
                                 .time = at(std::chrono::milliseconds{i})});
                if (i % 100 == 0) (void)recorder.timeline();
            }
        });
    }
    for (auto& t : workers) t.join();
    const auto t = recorder.timeline();
    REQUIRE(t.lanes.size() == threads);
    for (const auto& l : t.lanes) CHECK(l.marks.size() == per_thread);
}

// ---- a Supervisor run --------------------------------------------------------------------------------------------

TEST_CASE("timeline: a Supervisor run's History shows its six components, statuses, pause and restarts") {
    SupervisorRun run;
    const auto& history = *run.history;
    REQUIRE(history.status == taskmon::AgentStatus::completed);
    const auto t = taskmon::timeline_of(history);
    check_well_ordered(t);
    CHECK(t.origin == history.started_wall_time);
    CHECK(t.end == history.total_duration());
    CHECK(names(t.lanes) == std::vector<std::string>{"perception", "perception_watchdog", "decision_loop",
                                                     "actuation_loop", "pause_handler", "load_shedding_monitor"});
    // Status row: running, paused from 1 s (at the step boundary) until the resume at 2 s, running; the end as
    // a mark.
    CHECK(states(t.run.spans) == std::vector<std::string>{"running", "paused", "running"});
    REQUIRE(t.overlays.size() == 1);
    CHECK(t.overlays[0].state == "paused");
    CHECK(t.overlays[0].begin == t.run.spans[1].begin);
    CHECK(t.overlays[0].end == 2s);
    REQUIRE_FALSE(t.run.marks.empty());
    CHECK(t.run.marks.back().label == "completed");
    CHECK(t.run.marks.back().at == t.end);

    // perception failed twice; each restart is marked with how long it was down (the 300 ms, then 600 ms backoff).
    const auto& perception = lane(t, "perception");
    const auto failures = marks_of(perception, TimelineMarkKind::failure);
    const auto restarts = marks_of(perception, TimelineMarkKind::restart);
    REQUIRE(failures.size() == 2);
    REQUIRE(restarts.size() == history.counters.restarts.at("perception"));
    REQUIRE(restarts.size() == 2);
    CHECK(restarts[0].at - failures[0].at == 300ms);
    CHECK(restarts[0].label == "#1 300ms");
    CHECK(restarts[1].label == "#2 600ms");
    CHECK_THAT(failures[0].detail, Catch::Matchers::Contains("lidar checksum error <5>"));
    const auto* backoff = span_at(perception, failures[0].at);
    REQUIRE(backoff != nullptr);
    CHECK(backoff->state == "backing_off");
    CHECK(backoff->end == restarts[0].at);
    for (const auto& name : {"perception_watchdog", "decision_loop", "actuation_loop"}) {
        CHECK(states(lane(t, name).spans) == std::vector<std::string>{"running"});
    }
}

TEST_CASE("timeline: History events of every kind land on their lane, including kinds added later") {
    taskmon::History<std::string> h;
    h.started_wall_time = at(0s);
    using taskmon::AgentStatus;
    using taskmon::HistoryEvent;
    using Kind = taskmon::HistoryEventKind;
    h.events = {
        HistoryEvent{Kind::status_changed, 0s, "", "run() started", AgentStatus::pending, AgentStatus::running, {}},
        HistoryEvent{.kind = Kind::watchdog_stall,
                     .at = 1s,
                     .component = "perception_watchdog",
                     .message = "silent_for=4s stall=1/3",
                     .consecutive_stalls = 1,
                     .max_consecutive_stalls = 3,
                     .silent_for = 4s},
        HistoryEvent{.kind = Kind::component_restarted,
                     .at = 1s,
                     .component = "perception",
                     .message = "instance=2",
                     .instance = 2},
        HistoryEvent{Kind::watchdog_recovered, 2s, "perception_watchdog", "sequence=9", {}, {}, {}},
        HistoryEvent{Kind::load_shedding_entered, 2s, "load_shedding_monitor", "trigger=cpu", {}, {}, {}},
        HistoryEvent{Kind::load_shedding_left, 4s, "load_shedding_monitor", "cpu_percent=35.0", {}, {}, {}},
        HistoryEvent{Kind::decision_expired, 5s, "actuation_loop", "age=31s", {}, {}, 4},
        HistoryEvent{Kind::hook_error, 5s, "", "hook=on_step_end error=\"boom\"", {}, {}, {}},
        HistoryEvent{Kind::component_failed, 6s, "pause_handler", "error=\"x\"", {}, {}, {}},
        HistoryEvent{Kind::component_gave_up, 6s, "pause_handler", "restart_count=5", {}, {}, {}},
        HistoryEvent{static_cast<Kind>(77), 7s, "decision_loop", "from the future", {}, {}, {}},
        HistoryEvent{Kind::status_changed,
                     8s,
                     "",
                     "critical component perception gave up",
                     AgentStatus::running,
                     AgentStatus::failed,
                     {}},
    };
    h.ended_at = 8s;
    const auto t = taskmon::timeline_of(h);
    const auto& watchdog = lane(t, "perception_watchdog");
    REQUIRE(watchdog.marks.size() == 2);
    CHECK(watchdog.marks[0].kind == TimelineMarkKind::warning);
    CHECK(watchdog.marks[0].label == "stall 1/3");
    CHECK(watchdog.marks[1].label == "recovered");
    const auto restart = marks_of(lane(t, "perception"), TimelineMarkKind::restart);
    REQUIRE(restart.size() == 1);
    CHECK(restart[0].label == "#1 requested");  // no failure before it: the watchdog's restart
    REQUIRE(t.overlays.size() == 1);
    CHECK(t.overlays[0].state == "load_shedding");
    CHECK(t.overlays[0].begin == 2s);
    CHECK(t.overlays[0].end == 4s);
    CHECK(lane(t, "actuation_loop").marks.at(0).label == "expired");
    CHECK(lane(t, "pause_handler").spans.back().state == "gave_up");
    CHECK(lane(t, "pause_handler").spans.back().begin == 6s);
    CHECK(lane(t, "decision_loop").marks.at(0).label == "unknown");  // shown, by the name to_string() gives
    CHECK(lane(t, "decision_loop").marks.at(0).detail == "unknown: from the future");
    REQUIRE(t.run.marks.size() == 2);
    CHECK(t.run.marks[0].label == "hook error");
    CHECK(t.run.marks[1].label == "failed");
    CHECK(t.run.marks[1].kind == TimelineMarkKind::failure);
    CHECK(t.run.marks[1].detail == "failed: critical component perception gave up");
}

TEST_CASE("timeline: restart and stall marks are read from the History's typed fields, never from the message") {
    taskmon::History<std::string> h;
    h.started_wall_time = at(0s);
    using taskmon::HistoryEvent;
    using Kind = taskmon::HistoryEventKind;
    h.events = {
        // The fields alone: the message has no "instance=" or "stall=".
        HistoryEvent{.kind = Kind::component_restarted, .at = 1s, .component = "a", .instance = 3},
        HistoryEvent{.kind = Kind::watchdog_stall,
                     .at = 1s,
                     .component = "w",
                     .consecutive_stalls = 2,
                     .max_consecutive_stalls = 5,
                     .silent_for = 3s},
        // A message that says otherwise does not count: the fields do.
        HistoryEvent{.kind = Kind::component_failed, .at = 2s, .component = "a", .message = "error=\"x\""},
        HistoryEvent{
            .kind = Kind::component_restarted, .at = 2500ms, .component = "a", .message = "instance=9", .instance = 4},
        HistoryEvent{.kind = Kind::watchdog_stall, .at = 3s, .component = "w", .consecutive_stalls = 3},
        // The text alone is not parsed.
        HistoryEvent{.kind = Kind::component_restarted, .at = 4s, .component = "b", .message = "instance=5"},
        HistoryEvent{.kind = Kind::watchdog_stall, .at = 4s, .component = "w", .message = "silent_for=4s stall=1/3"},
    };
    h.ended_at = 5s;
    const auto t = taskmon::timeline_of(h);
    const auto a = marks_of(lane(t, "a"), TimelineMarkKind::restart);
    REQUIRE(a.size() == 2);
    CHECK(a[0].label == "#2 requested");
    CHECK(a[0].detail == "restart #2 requested, not after a failure");
    CHECK(a[1].label == "#3 500ms");
    CHECK(a[1].detail == "restart #3 (instance=9) after 500ms backing off since its failure");
    const auto b = marks_of(lane(t, "b"), TimelineMarkKind::restart);
    REQUIRE(b.size() == 1);
    CHECK(b[0].label == "#? requested");
    const auto stalls = marks_of(lane(t, "w"), TimelineMarkKind::warning);
    REQUIRE(stalls.size() == 3);
    CHECK(stalls[0].label == "stall 2/5");
    CHECK(stalls[0].detail == "watchdog_stall");
    CHECK(stalls[1].label == "stall 3");
    CHECK(stalls[2].label == "stall");
    CHECK(stalls[2].detail == "watchdog_stall: silent_for=4s stall=1/3");
}

TEST_CASE("timeline: a History with absurd offsets (read from JSON, say) is drawn without overflow") {
    taskmon::History<std::string> h;
    h.started_wall_time = at(1'000'000s);
    using taskmon::HistoryEvent;
    using Kind = taskmon::HistoryEventKind;
    h.events = {
        HistoryEvent{Kind::component_failed, Offset::min(), "perception", "", {}, {}, {}},
        HistoryEvent{.kind = Kind::component_restarted,
                     .at = Offset::max(),
                     .component = "perception",
                     .instance = std::numeric_limits<std::uint64_t>::max()},
    };
    h.ended_at = Offset::max();
    const auto t = taskmon::timeline_of(h);
    REQUIRE(t.lanes.size() == 1);
    CHECK(t.lanes[0].marks.size() == 2);
    CHECK_THAT(t.lanes[0].marks[1].label, Catch::Matchers::StartsWith("#18446744073709551614 "));
    const auto svg = taskmon::render_svg(t);
    CHECK(count(svg, "<g class=\"mark restart\">") == 1);
    CHECK(taskmon::detail::timeline::tick_offsets(Offset::max(), Offset::max() / 3).size() == 4);
}

TEST_CASE("timeline: status changes and notes recorded by hand") {
    TimelineRecorder recorder{at(0s)};
    using taskmon::AgentStatus;
    recorder.record_status({AgentStatus::pending, AgentStatus::running, "run() started"}, at(0s));
    recorder.record_status({AgentStatus::running, AgentStatus::paused, "operator"}, at(1s));
    recorder.record_status({AgentStatus::paused, AgentStatus::running, "resume()"}, at(3s));
    recorder.record_status({AgentStatus::running, AgentStatus::stopped, "stop() called"}, at(4s));
    recorder.record_note(at(2s), "camera", "recalibrated", "by the operator", TimelineMarkKind::warning);
    const auto t = recorder.timeline(at(5s));
    CHECK(states(t.run.spans) == std::vector<std::string>{"running", "paused", "running", "stopped"});
    CHECK(t.run.spans[1].detail == "operator");
    REQUIRE(t.overlays.size() == 1);
    CHECK(t.overlays[0].begin == 1s);
    CHECK(t.overlays[0].end == 3s);
    REQUIRE(t.lanes.size() == 1);
    CHECK(t.lanes[0].name == "camera");
    CHECK(t.lanes[0].marks.at(0).kind == TimelineMarkKind::warning);
    CHECK(t.run.marks.at(0).label == "stopped");
}

TEST_CASE("timeline: an unknown MonitorEventKind leaves the lane state alone and is shown by its name") {
    CHECK_FALSE(taskmon::detail::timeline::state_after(MonitorEvent{.kind = static_cast<MonitorEventKind>(99)}));
    CHECK(taskmon::detail::timeline::state_after(MonitorEvent{.kind = MonitorEventKind::gave_up}) == "gave_up");
    const auto t = hostile_timeline();
    for (const auto& l : t.lanes) {
        const auto notes = marks_of(l, TimelineMarkKind::note);
        REQUIRE(notes.size() == 1);
        CHECK(notes[0].label == "unknown");
        CHECK(notes[0].at == 2s);
    }
}

// ---- the SVG -----------------------------------------------------------------------------------------------------

TEST_CASE("timeline: the SVG has a lane group per component and a mark per restart and failure") {
    MonitorRun run;
    const auto svg = taskmon::render_svg(run.recorder.timeline(), {.title = "ingest service"});
    CHECK(svg.rfind("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<svg xmlns=\"http://www.w3.org/2000/svg\"", 0) == 0);
    CHECK(svg.size() > 1000);
    CHECK(svg.substr(svg.size() - 7) == "</svg>\n");
    CHECK(count(svg, "<g class=\"lane\"") == 3);
    for (const auto* name : {"ingest", "uploader", "cache"}) {
        CHECK(count(svg, std::string{"<g class=\"lane\" data-lane=\""} + name + "\">") == 1);
    }
    CHECK(count(svg, "<g class=\"mark restart\">") == 6);
    CHECK(count(svg, "<g class=\"mark failure\">") == 2 + 4 + 1);  // ingest, uploader, and its give-up
    CHECK(count(svg, "data-state=\"gave_up\"") == 1);
    CHECK(count(svg, ">#1 1s<") == 2);  // ingest's and uploader's first restarts
    CHECK(count(svg, ">ingest service</text>") == 1);
    CHECK(count(svg, ">0s</text>") == 1);           // the time axis, from 0 …
    CHECK(count(svg, ">12s</text>") == 1);          // … to the end
    CHECK(count(svg, ">backing off</text>") >= 1);  // the legend names the states
}

TEST_CASE("timeline: the SVG of a Supervisor run has the status row, the pause shade and six lanes") {
    SupervisorRun run;
    const auto svg = taskmon::render_svg(taskmon::timeline_of(*run.history));
    CHECK(count(svg, "<g class=\"lane\"") == 6);
    CHECK(count(svg, "<g class=\"run\">") == 1);
    CHECK(count(svg, "class=\"status\" data-state=\"paused\"") == 1);
    CHECK(count(svg, "class=\"overlay-shade\"") == 1);
    CHECK(count(svg, "class=\"status-change\"") == 2);
    CHECK(count(svg, "<g class=\"mark restart\">") == 2);
}

TEST_CASE("timeline: every text in the SVG is escaped and invalid UTF-8 and control characters are replaced") {
    const auto svg = taskmon::render_svg(hostile_timeline(), {.title = "<b>&\"'"});
    CHECK(count(svg, "<script") == 0);
    CHECK(count(svg, "&lt;script&gt;alert(&apos;x&apos;)&lt;/script&gt;") >= 1);
    CHECK(count(svg, "a &amp; b &quot;quoted&quot;") >= 1);
    CHECK(count(svg, "&lt;b&gt;&amp;&quot;&apos;") == 2);  // <title> and the heading
    CHECK(count(svg, "]]>") == 0);
    CHECK(count(svg, "ümlaut · 日本語 ✓") >= 1);
    CHECK(count(svg, "bad\xEF\xBF\xBD\xEF\xBF\xBD utf8 \xEF\xBF\xBD\xEF\xBF\xBD ctrl") >= 1);
    for (const char c : svg) {
        const auto u = static_cast<unsigned char>(c);
        CHECK((u >= 0x20 || u == '\n'));
        CHECK(u != 0xFF);
    }
    // Every '<' opens markup.
    for (auto pos = svg.find('<'); pos != std::string::npos; pos = svg.find('<', pos + 1)) {
        const char next = svg[pos + 1];
        CHECK((std::isalpha(static_cast<unsigned char>(next)) || next == '/' || next == '?'));
    }
    // Unknown states: drawn in the neutral colour, named in the legend.
    CHECK(count(svg, "data-state=\"warming_up&lt;&amp;&gt;\"") == 1);
    CHECK(count(svg, ">warming up&lt;&amp;&gt;</text>") >= 1);
    CHECK(count(svg, "data-state=\"quarantined\"") == 1);
    CHECK(count(svg, "fill=\"#8e24aa\"") >= 2);  // quarantined: its own colour, in the lane and the legend
}

TEST_CASE("timeline: xml_escape keeps valid UTF-8 and replaces what XML 1.0 cannot hold") {
    using taskmon::detail::timeline::xml_escape;
    const std::string fffd = "\xEF\xBF\xBD";
    CHECK(xml_escape("a<b>&\"'") == "a&lt;b&gt;&amp;&quot;&apos;");
    CHECK(xml_escape("tab\tnew\nline\r") == "tab\tnew\nline\r");
    CHECK(xml_escape("ü日✓😀") == "ü日✓😀");
    CHECK(xml_escape(std::string{"\x00", 1}) == fffd);
    CHECK(xml_escape("\x1b[31m") == fffd + "[31m");
    CHECK(xml_escape("\xc3\x28") == fffd + "(");                         // a lead byte without its continuation
    CHECK(xml_escape("\xc0\xaf") == fffd + fffd);                        // overlong
    CHECK(xml_escape("\xe0\x80\xaf") == fffd + fffd + fffd);             // overlong, three bytes
    CHECK(xml_escape("\xed\xa0\x80") == fffd + fffd + fffd);             // a surrogate
    CHECK(xml_escape("\xf4\x90\x80\x80") == fffd + fffd + fffd + fffd);  // beyond U+10FFFF
    CHECK(xml_escape("\xef\xbf\xbe") == fffd);                           // U+FFFE
    CHECK(xml_escape("\xe2\x82") == fffd + fffd);                        // cut short
}

TEST_CASE("timeline: short durations read well") {
    using taskmon::detail::timeline::short_duration;
    CHECK(short_duration(500ns) == "500ns");
    CHECK(short_duration(1500ns) == "1.5µs");
    CHECK(short_duration(12340us) == "12.3ms");
    CHECK(short_duration(400ms) == "400ms");
    CHECK(short_duration(401'200us) == "401ms");
    CHECK(short_duration(1s) == "1s");
    CHECK(short_duration(1500ms) == "1.5s");
    CHECK(short_duration(12'340ms) == "12.3s");
    CHECK(short_duration(125s) == "2m05s");
    CHECK(short_duration(3h + 5min) == "3h05m");
}

TEST_CASE("timeline: the axis' step and unit fit the span: nice steps, one unit per axis") {
    using taskmon::detail::timeline::axis_scale;
    // At most 10 intervals at the smallest step of 1-2-5 up to 10 s, 15 s, 30 s, 1-2-5-10-15-30 min, 1-2-3-6-12 h,
    // then 1-2-5 days; labelled in the largest decimal unit the span reaches below a minute, else in the step's.
    const auto [span, step, unit] = GENERATE(table<Offset, Offset, std::string>({
        {0ns, 1ns, "ns"},
        {999ns, 100ns, "ns"},
        {50us, 5us, "µs"},
        {1500us, 200us, "ms"},
        {900ms, 100ms, "ms"},
        {1s, 100ms, "s"},
        {3040ms, 500ms, "s"},
        {10s, 1s, "s"},
        {12s, 2s, "s"},
        {90s, 10s, "s"},
        {150s, 15s, "s"},
        {300s, 30s, "s"},
        {301s, 1min, "m"},
        {10min, 1min, "m"},
        {25min, 5min, "m"},
        {2h + 20min, 15min, "m"},
        {10'000s, 30min, "m"},
        {4h, 30min, "m"},  // not 2000 s: its ticks at whole minutes (6000 s) would read "100m" among "2000s"
        {5h, 30min, "m"},
        {5h + 1s, 1h, "h"},
        {20h, 2h, "h"},
        {30h, 3h, "h"},
        {72h, 12h, "h"},
        {120h, 12h, "h"},
        {144h, 24h, "d"},
        {365 * 24h, 50 * 24h, "d"},
        {Offset::max(), 20'000 * 24h, "d"},
    }));
    CAPTURE(span.count(), step.count(), unit);
    const auto scale = axis_scale(span);
    CHECK(scale.step == step);
    CHECK(scale.unit == unit);
    CHECK(span / scale.step <= 10);
    // No smaller step of the table would do: the next smaller one gives more than 10 intervals.
    Offset smaller{0};
    for (const auto& u : taskmon::detail::timeline::axis_units) {
        for (const auto n : u.steps) {
            if (n != 0 && u.length * n < scale.step) smaller = std::max(smaller, u.length * n);
        }
    }
    if (smaller > 0ns) CHECK(span / smaller + (span % smaller != 0ns ? 1 : 0) > 10);
    // The unit's length matches its name.
    const std::map<std::string, Offset> lengths{{"ns", 1ns}, {"µs", 1us}, {"ms", 1ms}, {"s", 1s},
                                                {"m", 1min}, {"h", 1h},   {"d", 24h}};
    CHECK(scale.unit_length == lengths.at(unit));
}

TEST_CASE("timeline: axis_scale keeps to max_ticks and never overflows") {
    using taskmon::detail::timeline::axis_scale;
    using taskmon::detail::timeline::tick_offsets;
    for (const int max_ticks : {1, 2, 5, 10, 20}) {
        for (const Offset span :
             std::vector<Offset>{1ns, 7ns, 1s, 59s, 61min, 100h, Offset::max() / 2, Offset::max()}) {
            INFO("max_ticks " << max_ticks << ", span " << span.count() << " ns");
            const auto scale = axis_scale(span, max_ticks);
            CHECK(scale.step > 0ns);
            CHECK(tick_offsets(span, scale.step).size() <= static_cast<std::size_t>(max_ticks) + 1);
        }
    }
    CHECK(axis_scale(-5s).step == 1ns);  // a negative span (render_svg refuses one) is read as the least
}

TEST_CASE("timeline: tick labels are exact numbers of the axis' one unit") {
    using taskmon::detail::timeline::axis_scale;
    using taskmon::detail::timeline::tick_label;
    const auto [span, at, label] = GENERATE(table<Offset, Offset, std::string>({
        {3040ms, 0ns, "0s"},
        {3040ms, 2500ms, "2.5s"},
        {3040ms, 3s, "3s"},
        {12s, 2s, "2s"},
        {1s, 300ms, "0.3s"},
        {1s, 700ms, "0.7s"},
        {900ms, 100ms, "100ms"},
        {1500us, 1400us, "1.4ms"},
        {50us, 45us, "45µs"},
        {999ns, 900ns, "900ns"},
        {90s, 90s, "90s"},
        {10min, 3min, "3m"},
        {2h + 20min, 135min, "135m"},
        {10'000s, 0ns, "0m"},
        {10'000s, 150min, "150m"},
        {3 * 24h, 72h, "72h"},
        {365 * 24h, 350 * 24h, "350d"},
    }));
    CAPTURE(span.count(), at.count());
    CHECK(tick_label(at, axis_scale(span)) == label);
}

TEST_CASE("timeline: a long run's axis is labelled in one unit, at nice steps") {
    // The labels of the drawn axis, in order (the last text of the group is its caption).
    const auto axis_labels = [](const std::string& svg) {
        const auto begin = svg.find("<g class=\"axis\">");
        const auto end = svg.find("</g>", begin);
        std::vector<std::string> out;
        for (auto pos = svg.find("\">", begin); pos < end; pos = svg.find("\">", pos + 1)) {
            const auto close = svg.find("</text>", pos);
            if (close < end && svg.find('<', pos + 2) == close) out.push_back(svg.substr(pos + 2, close - pos - 2));
        }
        REQUIRE_FALSE(out.empty());
        out.pop_back();
        return out;
    };
    const auto [span, expected] = GENERATE(table<Offset, std::vector<std::string>>({
        {90s, {"0s", "10s", "20s", "30s", "40s", "50s", "60s", "70s", "80s", "90s"}},
        {2h + 20min, {"0m", "15m", "30m", "45m", "60m", "75m", "90m", "105m", "120m", "135m"}},
        {10'000s, {"0m", "30m", "60m", "90m", "120m", "150m"}},
        {4h, {"0m", "30m", "60m", "90m", "120m", "150m", "180m", "210m", "240m"}},
        {3 * 24h, {"0h", "12h", "24h", "36h", "48h", "60h", "72h"}},
    }));
    CAPTURE(span.count());
    Timeline t;
    t.end = span;
    t.lanes.push_back(TimelineLane{"ingest", {{"running", 0ns, span, ""}}, {}});
    const auto labels = axis_labels(taskmon::render_svg(t));
    CHECK(labels == expected);
    // One unit per axis: every label is digits and the same suffix.
    const auto unit_of = [](const std::string& label) { return label.substr(label.find_first_not_of("0123456789.")); };
    for (const auto& label : labels) CHECK(unit_of(label) == unit_of(labels.front()));
}

TEST_CASE("timeline: an empty recorder gives an empty picture that still renders") {
    TimelineRecorder recorder;
    const auto t = recorder.timeline();
    CHECK(t.lanes.empty());
    CHECK(t.end == 0ns);
    const auto svg = taskmon::render_svg(t);
    CHECK(count(svg, "no components recorded") == 1);
    CHECK(count(svg, "<g class=\"lane\"") == 0);
}

TEST_CASE("timeline: bad styles are refused and write_svg names the file it cannot write") {
    const Timeline t;
    CHECK_THROWS_WITH(taskmon::render_svg(t, {.width = 100}), "TimelineStyle.width must be >= 480");
    CHECK_THROWS_WITH(taskmon::render_svg(t, {.lane_height = 10}), "TimelineStyle.lane_height must be >= 30");
    Timeline backwards;
    backwards.end = -1s;
    CHECK_THROWS_AS(taskmon::render_svg(backwards), std::invalid_argument);
    CHECK_THROWS_WITH(taskmon::write_svg("/nonexistent-dir/run.svg", t),
                      Catch::Matchers::Contains("cannot write /nonexistent-dir/run.svg"));
}

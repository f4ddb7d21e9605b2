// Runs recorded for the timeline tests (test_timeline.cpp) and for the SVG files checked by xmllint
// (timeline_samples.cpp): a TaskMonitor run and a Supervisor run in virtual time, and a run with hostile text.
#pragma once

#include <taskmon/agent/supervisor.hpp>
#include <taskmon/ops/timeline.hpp>
#include <taskmon/task_monitor.hpp>
#include <taskmon/testing/manual_clock.hpp>

#include "monitor_harness.hpp"
#include "supervisor_harness.hpp"

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/io_context.hpp>
#include <asio/this_coro.hpp>
#include <asio/use_awaitable.hpp>
#include <spdlog/sinks/null_sink.h>

#include <chrono>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace taskmon_test {

/// A TaskMonitor run in virtual time, recorded by a TimelineRecorder and by a plain Recorder (the reference).
///   ingest:   fails at 2 s and at 6 s; restarted after 1 s and 2 s of backoff (attempts 1 and 2).
///   uploader: fails at once on every start: restarts after 1 s, 2 s, 4 s, then gives up at 7 s.
///   cache:    runs; restarted by hand at 10 s.
/// The monitor is closed at 12 s.
struct MonitorRun {
    Harness h;
    Script ingest;
    Script uploader = failing_now(100);
    Script cache;
    Recorder reference;
    taskmon::TimelineRecorder recorder;
    Monitor monitor{h.io.get_executor(),
                    {.max_restart_attempts = 3,
                     .restart_window = std::chrono::minutes{10},
                     .base_backoff = std::chrono::seconds{1},
                     .max_backoff = std::chrono::seconds{4}},
                    h.logger};
    std::optional<taskmon::EventSubscription> reference_subscription;
    taskmon::testing::ManualClock::time_point start = h.time.now();

    MonitorRun() {
        using namespace std::chrono_literals;
        ingest.lifetimes = {2s, 3s};
        reference_subscription.emplace(monitor.subscribe(reference.listener()));
        recorder.attach(monitor);
        monitor.supervise("ingest", factory_of(ingest));
        monitor.supervise("uploader", factory_of(uploader));
        monitor.supervise("cache", factory_of(cache));
        h.runner.run_for(10s);
        monitor.restart("cache");
        h.runner.run_for(2s);
        h.close(monitor);
    }
};

/// A Supervisor run in virtual time: perception throws on its 5th and 12th capture; the operator pauses at
/// 1 s and resumes at 2 s; decide() says done on step 12. The run's History is in `history`.
struct SupervisorRun : SupervisorHarness {
    SupervisorRun() {
        using namespace std::chrono_literals;
        agent.perceive_fn = [](int n) -> asio::awaitable<int> {
            co_await sleep_for(10ms);
            if (n == 5 || n == 12) throw std::runtime_error("lidar checksum error <" + std::to_string(n) + ">");
            co_return n;
        };
        agent.decide_fn = [](int, const Context& ctx) {
            return ctx.step == 12 ? Decision::done("clean") : Decision::act({"move"});
        };
        taskmon::AgentSettings settings;
        settings.capture_interval = 100ms;
        settings.shed_capture_interval = 1s;
        settings.perception_timeout = 4s;
        settings.watchdog_startup_grace = 4s;
        settings.critical_restart_policy = {.max_restart_attempts = 5, .base_backoff = 300ms, .max_backoff = 2s};
        auto robot = make(settings);
        start(*robot);
        at(1s, [&] { robot->pause(); });
        at(2s, [&] { robot->resume(); });
        if (!finish(std::chrono::hours{1})) {
            throw std::runtime_error("the Supervisor run did not end within an hour of virtual time");
        }
    }
};

/// Text that must be escaped: markup characters, invalid UTF-8, control characters, a very long name.
inline const std::vector<std::string>& hostile_names() {
    static const std::vector<std::string> names{
        "<script>alert('x')</script>", "a & b \"quoted\"",    std::string{"bad\xff\xfe utf8 \x01\x02 ctrl"},
        "ümlaut · 日本語 ✓",           std::string(200, 'w'),
    };
    return names;
}

/// A hand-made run over hostile_names(), with a state and an event kind this library does not know yet.
inline taskmon::Timeline hostile_timeline() {
    using namespace std::chrono_literals;
    taskmon::TimelineRecorder recorder{std::chrono::system_clock::time_point{}};
    const auto at = [](std::chrono::nanoseconds d) {
        using std::chrono::system_clock;
        return system_clock::time_point{} + std::chrono::duration_cast<system_clock::duration>(d);
    };
    std::uint64_t sequence = 0;
    for (const auto& name : hostile_names()) {
        recorder.record(
            {.kind = taskmon::MonitorEventKind::started, .component = name, .sequence = ++sequence, .time = at(0s)});
        recorder.record({.kind = taskmon::MonitorEventKind::failed,
                         .component = name,
                         .sequence = ++sequence,
                         .time = at(1s),
                         .reason = "std::runtime_error: ]]> <!-- -- & \x03"});
        recorder.record({.kind = taskmon::MonitorEventKind::restart_scheduled,
                         .component = name,
                         .sequence = ++sequence,
                         .time = at(1s),
                         .attempt = 1,
                         .delay = 500ms,
                         .reason = "std::runtime_error: ]]> <!-- -- & \x03"});
        recorder.record({.kind = taskmon::MonitorEventKind::restarted,
                         .component = name,
                         .sequence = ++sequence,
                         .time = at(1500ms)});
        // An event kind added after this library version: shown by its number-less name ("unknown").
        recorder.record({.kind = static_cast<taskmon::MonitorEventKind>(99),
                         .component = name,
                         .sequence = ++sequence,
                         .time = at(2s),
                         .reason = "<future>"});
    }
    recorder.record_note(at(2500ms), "", "note <&>", "a run-wide note with \"quotes\"");
    auto timeline = recorder.timeline(at(4s));
    // States this version has no colour for, and quarantine.
    for (auto [lane, state] : {std::pair{0, "quarantined"}, std::pair{1, "warming_up<&>"}}) {
        auto& spans = timeline.lanes[static_cast<std::size_t>(lane)].spans;
        spans.back().end = 2s;
        spans.push_back({state, 2s, 4s, "set by <liveness>"});
    }
    return timeline;
}

}  // namespace taskmon_test

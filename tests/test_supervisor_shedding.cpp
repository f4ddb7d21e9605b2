// Supervisor tests: load shedding: hysteresis, the slower capture and the io_semaphore count.
// In virtual time: every scenario runs hours of simulated time in milliseconds and is deterministic. The scripted
// agent and the run harness are in support/supervisor_harness.hpp.
#include <taskmon/agent/supervisor.hpp>
#include <taskmon/testing/manual_clock.hpp>

#include "supervisor_harness.hpp"
#include "taskmon_catch.hpp"

#include <asio/bind_cancellation_slot.hpp>
#include <asio/cancellation_signal.hpp>
#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/io_context.hpp>
#include <asio/this_coro.hpp>
#include <asio/use_awaitable.hpp>
#include <taskmon/io_semaphore.hpp>

#include <chrono>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

using namespace taskmon_test;  // Sup, History, Agent, SupervisorHarness, fast_settings, the common taskmon names ...

TEST_CASE("supervisor: shedding enters and leaves with hysteresis and slows perception") {
    SupervisorHarness h;
    std::vector<double> cpu_script{50, 99, 97, 97, 97, 95, 50};
    std::size_t sample = 0;
    auto cpu = [&]() -> std::optional<taskmon::CpuUsage> {
        const double value = sample < cpu_script.size() ? cpu_script[sample] : 50.0;
        ++sample;
        return taskmon::CpuUsage{value, 1.0};
    };
    auto settings = fast_settings();
    settings.load_sample_interval = 1s;
    settings.capture_interval = 100ms;
    settings.shed_capture_interval = 2s;
    settings.max_steps = 1000;
    h.agent.decide_fn = [](int, const Context&) { return Decision::act({}); };
    auto sup = h.make(settings, {}, cpu);
    h.start(*sup);
    // Samples at 1 s (50), 2 s (99: enter), 3-5 s (97: inside the band, stay), 6 s (95: leave).
    int captures_before = 0, captures_shedding = 0;
    bool shedding_seen_in_context = false;
    h.at(2500ms, [&] { captures_before = h.agent.perceive_calls; });
    h.at(5500ms, [&] {
        captures_shedding = h.agent.perceive_calls - captures_before;
        for (const auto& c : h.agent.contexts) shedding_seen_in_context |= c.shedding;
    });
    h.at(10s, [&] { sup->stop(); });
    REQUIRE(h.finish());
    const auto& hist = *h.history;
    REQUIRE(count_events(hist, HistoryEventKind::load_shedding_entered) == 1);
    REQUIRE(count_events(hist, HistoryEventKind::load_shedding_left) == 1);
    CHECK(hist.events_of(HistoryEventKind::load_shedding_entered)[0].at == 2s);
    CHECK(hist.events_of(HistoryEventKind::load_shedding_left)[0].at == 6s);
    CHECK_THAT(hist.events_of(HistoryEventKind::load_shedding_entered)[0].message,
               Catch::Matchers::Contains("cpu_percent=99.0"));
    CHECK(hist.counters.load_shedding_entries == 1);
    // 3 s of shedding at one capture per 2 s, instead of ~30 at 100 ms.
    CHECK(captures_shedding <= 3);
    CHECK(shedding_seen_in_context);
    CHECK(hist.counters.watchdog_stalls == 0);  // shedding never starves the watchdog
}

TEST_CASE("supervisor: on_shedding_change reports each change with the sample that decided it") {
    SupervisorHarness h;
    std::vector<std::optional<double>> cpu_script{50.0, 99.0, std::nullopt, 50.0, 99.0};
    std::size_t sample = 0;
    auto cpu = [&]() -> std::optional<taskmon::CpuUsage> {
        const auto value = sample < cpu_script.size() ? cpu_script[sample] : std::optional<double>{99.0};
        ++sample;
        if (!value) return std::nullopt;
        return taskmon::CpuUsage{*value, 1.0};
    };
    auto settings = fast_settings();
    settings.load_sample_interval = 1s;
    settings.max_steps = 1000;
    h.agent.decide_fn = [](int, const Context&) { return Decision::act({}); };
    std::vector<std::pair<std::chrono::nanoseconds, taskmon::SheddingChange>> changes;
    Sup::Hooks hooks;
    const auto t0 = taskmon::testing::ManualClock::now();
    hooks.on_shedding_change = [&](const taskmon::SheddingChange& c) {
        changes.emplace_back(taskmon::testing::ManualClock::now() - t0, c);
    };
    auto sup = h.make(settings, std::move(hooks), cpu);
    h.start(*sup);
    // Samples at 1 s (50), 2 s (99: enter), 3 s (CPU unknown, no lag: leave), 4 s (50), 5 s (99: enter again);
    // the run stops at 5.5 s while shedding: an unsampled leave.
    h.at(5500ms, [&] { sup->stop(); });
    REQUIRE(h.finish());
    REQUIRE(changes.size() == 4);
    CHECK(changes[0].first == 2s);
    CHECK(changes[0].second.shedding);
    CHECK(changes[0].second.sampled);
    REQUIRE(changes[0].second.cpu);
    CHECK(changes[0].second.cpu->system_percent == 99.0);
    CHECK(changes[0].second.loop_lag == 0ns);  // virtual time: timers fire on time
    CHECK_THAT(changes[0].second.reason, Catch::Matchers::Contains("cpu_percent=99.0"));
    CHECK(changes[1].first == 3s);
    CHECK_FALSE(changes[1].second.shedding);
    CHECK(changes[1].second.sampled);
    CHECK_FALSE(changes[1].second.cpu);  // unknown CPU fails open
    CHECK(changes[2].first == 5s);
    CHECK(changes[2].second.shedding);
    CHECK(changes[3].first == 5500ms);
    CHECK_FALSE(changes[3].second.shedding);
    CHECK_FALSE(changes[3].second.sampled);
    CHECK_FALSE(changes[3].second.cpu);
    CHECK_THAT(changes[3].second.reason, Catch::Matchers::StartsWith("the run ended"));
    // The hook saw what the History recorded, change for change.
    CHECK(count_events(*h.history, HistoryEventKind::load_shedding_entered) == 2);
    CHECK(count_events(*h.history, HistoryEventKind::load_shedding_left) == 2);
}

TEST_CASE("supervisor: while shedding, the io_semaphore count is lowered and then restored") {
    SupervisorHarness h;
    const std::size_t before = taskmon::get_io_semaphore_stats().capacity;
    REQUIRE(before > 1);
    std::vector<double> cpu_script{50, 99, 99, 50};
    std::size_t sample = 0;
    auto cpu = [&]() -> std::optional<taskmon::CpuUsage> {
        const double value = sample < cpu_script.size() ? cpu_script[sample] : 50.0;
        ++sample;
        return taskmon::CpuUsage{value, 1.0};
    };
    auto settings = fast_settings();
    settings.load_sample_interval = 1s;
    settings.shed_io_semaphore_count = 1;
    settings.max_steps = 1000;
    h.agent.decide_fn = [](int, const Context&) { return Decision::act({}); };
    auto sup = h.make(settings, {}, cpu);
    h.start(*sup);
    std::size_t during = 0, after_leave = 0;
    h.at(2500ms, [&] { during = taskmon::get_io_semaphore_stats().capacity; });
    h.at(4500ms, [&] { after_leave = taskmon::get_io_semaphore_stats().capacity; });
    h.at(5s, [&] { sup->stop(); });
    REQUIRE(h.finish());
    CHECK(during == 1);
    CHECK(after_leave == before);
    CHECK(taskmon::get_io_semaphore_stats().capacity == before);
    REQUIRE(count_events(*h.history, HistoryEventKind::load_shedding_entered) == 1);
    CHECK_THAT(h.history->events_of(HistoryEventKind::load_shedding_entered)[0].message,
               Catch::Matchers::Contains(fmt::format("io_semaphore_count={}->1", before)));
}

TEST_CASE("supervisor: a run that ends while shedding restores the io_semaphore count") {
    SupervisorHarness h;
    const std::size_t before = taskmon::get_io_semaphore_stats().capacity;
    auto settings = fast_settings();
    settings.shed_io_semaphore_count = 1;
    settings.max_steps = 1000;
    h.agent.decide_fn = [](int, const Context&) { return Decision::act({}); };
    auto sup = h.make(settings, {}, [] { return std::optional<taskmon::CpuUsage>{taskmon::CpuUsage{99.9, 50.0}}; });
    h.start(*sup);
    std::size_t during = 0;
    h.at(3s, [&] { during = taskmon::get_io_semaphore_stats().capacity; });
    h.at(4s, [&] { sup->stop(); });
    REQUIRE(h.finish());
    CHECK(during == 1);
    CHECK(taskmon::get_io_semaphore_stats().capacity == before);
    REQUIRE(count_events(*h.history, HistoryEventKind::load_shedding_left) == 1);
    CHECK(h.history->events_of(HistoryEventKind::load_shedding_left)[0].message.rfind("the run ended", 0) == 0);
}

TEST_CASE("supervisor: destroying the io_context while shedding restores the io_semaphore count") {
    const std::size_t before = taskmon::get_io_semaphore_stats().capacity;
    std::size_t during = 0;
    {
        SupervisorHarness h;
        auto settings = fast_settings();
        settings.shed_io_semaphore_count = 1;
        settings.max_steps = 100000;
        auto sup = h.make(settings, {}, [] { return std::optional<taskmon::CpuUsage>{taskmon::CpuUsage{99.9, 50.0}}; });
        h.start(*sup);
        h.runner.run_for(5s);
        REQUIRE_FALSE(h.history.has_value());
        during = taskmon::get_io_semaphore_stats().capacity;
        sup.reset();
    }  // the io_context is destroyed with the run suspended, shedding
    CHECK(during == 1);
    CHECK(taskmon::get_io_semaphore_stats().capacity == before);
    taskmon::set_io_semaphore_count(before);  // leave the process-wide semaphore as the other tests expect
}

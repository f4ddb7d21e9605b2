// TaskMonitor tests: backoff, the restart window and giving up.
// Everything time-dependent runs in virtual time (ManualClock); the scripted components are in
// support/monitor_harness.hpp.
#include <taskmon/detail/log_text.hpp>  // format_window
#include <taskmon/task_monitor.hpp>
#include <taskmon/testing/manual_clock.hpp>

#include "monitor_harness.hpp"
#include "taskmon_catch.hpp"

#include <asio/co_spawn.hpp>
#include <asio/io_context.hpp>
#include <asio/this_coro.hpp>
#include <asio/use_awaitable.hpp>

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

using namespace taskmon_test;  // Harness, Monitor, Script, scripted, factory_of, the common taskmon names ...
using taskmon::MonitorEventKind;

TEST_CASE("Backoff doubles from 2 s up to the 60 s cap by default", "[task_monitor]") {
    Harness h;
    auto script = failing_now(8);
    RestartPolicy policy;
    policy.max_restart_attempts = 100;
    Monitor monitor{h.io.get_executor(), policy, h.logger};
    monitor.supervise("perception", factory_of(script));
    h.runner.run_for(10min);
    REQUIRE(script.starts == 9);
    CHECK(gaps(script.start_times) == std::vector<Duration>{2s, 4s, 8s, 16s, 32s, 60s, 60s, 60s});
    const auto restarts = h.lines_with("Restarting component perception");
    REQUIRE(restarts.size() == 8);
    CHECK(restarts[0].find("(attempt 1) after 2.0s delay") != std::string::npos);
    CHECK(restarts[5].find("(attempt 6) after 60.0s delay") != std::string::npos);
    h.close(monitor);
}

TEST_CASE("Backoff resets after a run of reset_backoff_after without failing", "[task_monitor]") {
    Harness h;
    Script script;
    script.lifetimes = {0s, 0s, 0s, 10min, 0s, 9min, 0s};
    RestartPolicy policy;
    policy.max_restart_attempts = 100;
    Monitor monitor{h.io.get_executor(), policy, h.logger};
    monitor.supervise("perception", factory_of(script));
    h.runner.run_for(2h);
    REQUIRE(script.starts == 8);
    const auto g = gaps(script.start_times);
    // 2, 4, 8; then a 10 min stable run resets k: 2 (+10 min run), 4; a 9 min run does not: 8 (+9 min), 16.
    CHECK(g == std::vector<Duration>{2s, 4s, 8s, 10min + 2s, 4s, 9min + 8s, 16s});
    h.close(monitor);
}

TEST_CASE("Jittered backoff is reproducible with a seeded random source", "[task_monitor]") {
    const auto delays = [](std::uint64_t seed) {
        Harness h;
        auto script = failing_now(6);
        RestartPolicy policy{.max_restart_attempts = 10, .jitter = taskmon::JitterKind::full};
        Monitor monitor{h.io.get_executor(), policy, h.logger, taskmon::seeded_random_source(seed)};
        monitor.supervise("c", factory_of(script));
        h.runner.run_for(1h);
        h.close(monitor);
        return gaps(script.start_times);
    };
    const auto a = delays(99);
    const auto b = delays(99);
    const auto c = delays(100);
    REQUIRE(a.size() == 6);
    CHECK(a == b);
    CHECK(a != c);
    const std::vector<Duration> nominal{2s, 4s, 8s, 16s, 32s, 60s};
    for (std::size_t i = 0; i < a.size(); ++i) {
        CHECK(a[i] >= 0s);
        CHECK(a[i] <= nominal[i]);
    }
}

TEST_CASE("Regression: a component failing right after a restart is restarted again", "[task_monitor]") {
    // An exit that arrives while the component's restart is still being started must be handled, not dropped.
    Harness h;
    auto script = failing_now(3);  // fails at once on its first three starts, then runs
    Monitor monitor{h.io.get_executor(), {.base_backoff = 0ms, .max_backoff = 0ms}, h.logger};
    monitor.supervise("perception", factory_of(script));
    h.runner.run_for(1s);
    CHECK(script.starts == 4);
    const auto stats = monitor.get_component_stats().at("perception");
    CHECK(stats.state == ComponentState::running);
    CHECK(stats.restart_count == 3);
    CHECK(stats.failure_count == 3);
    CHECK(script.max_live == 1);
    h.close(monitor);
}

TEST_CASE("The 6th restart within an hour is refused with one ERROR line", "[task_monitor]") {
    Harness h;
    auto script = failing_now(100);
    Monitor monitor{h.io.get_executor(), {}, h.logger};
    monitor.supervise("perception", factory_of(script));
    h.runner.run_for(3h);
    CHECK(script.starts == 6);  // the first start and 5 restarts
    const auto stats = monitor.get_component_stats().at("perception");
    CHECK(stats.state == ComponentState::gave_up);
    CHECK(stats.restart_count == 5);
    CHECK(stats.failure_count == 6);
    CHECK(stats.task_done);
    CHECK_FALSE(stats.is_restarting);
    CHECK_FALSE(stats.next_restart_at);
    const auto gave_up = h.lines_with("exceeded restart limit");
    REQUIRE(gave_up.size() == 1);
    CHECK(gave_up[0] ==
          "error|Component perception has exceeded restart limit (5 attempts per hour). Stopping auto-restart. "
          "component=perception restart_count=5 reason=\"std::runtime_error: Connection lost\"");
    // The defaults interact: the restarts came after 2, 4, 8, 16 and 32 s, and the 6th was refused at 62 s.
    CHECK(script.start_times.back() == 62s);
    h.close(monitor);
}

TEST_CASE("The give-up line names the restart window in words", "[task_monitor]") {
    struct Row {
        int attempts;
        std::chrono::milliseconds window;
        const char* words;  // what the give-up line says
    };
    const auto row = GENERATE(values<Row>({
        {3, 10min, "(3 attempts per 10 minutes). Stopping auto-restart."},
        {2, 1min, "(2 attempts per minute). Stopping auto-restart."},
    }));
    CAPTURE(row.words);
    Harness h;
    auto script = failing_now(100);
    Monitor monitor{
        h.io.get_executor(),
        {.max_restart_attempts = row.attempts, .restart_window = row.window, .base_backoff = 1s, .max_backoff = 1s},
        h.logger};
    monitor.supervise("decision", factory_of(script));
    h.runner.run_for(1h);
    const auto gave_up = h.lines_with("exceeded restart limit");
    REQUIRE(gave_up.size() == 1);
    CHECK(gave_up[0].find(row.words) != std::string::npos);
    CHECK(gave_up[0].find("restart_count=" + std::to_string(row.attempts)) != std::string::npos);
    h.close(monitor);
}

TEST_CASE("format_window names a window in words: per hour or minute or 90 seconds", "[task_monitor]") {
    using taskmon::detail::format_window;
    const auto [window, words] = GENERATE(table<Duration, std::string>({
        {1h, "hour"},
        {2h, "2 hours"},
        {1min, "minute"},
        {10min, "10 minutes"},
        {90s, "90 seconds"},
        {1s, "second"},
        {1500ms, "1500 ms"},
        {250us, "250 us"},  // a Duration takes any std::chrono::duration: finer windows are written as they are
        {1500ns, "1500 ns"},
    }));
    CAPTURE(words);
    CHECK(format_window(window) == words);
}

TEST_CASE("A component that fails every 20 minutes never gives up", "[task_monitor]") {
    Harness h;
    Script script;
    script.lifetimes.assign(200, 20min);
    Monitor monitor{h.io.get_executor(), {}, h.logger};
    monitor.supervise("perception", factory_of(script));
    h.runner.run_for(24h);
    const auto stats = monitor.get_component_stats().at("perception");
    CHECK(stats.state != ComponentState::gave_up);
    CHECK(stats.restart_count >= 70);
    CHECK(stats.restarts_in_window <= 3);
    CHECK(h.lines_with("exceeded restart limit").empty());
    h.close(monitor);
}

TEST_CASE("Old restarts slide out of the window", "[task_monitor]") {
    RestartPolicy policy{.max_restart_attempts = 2,
                         .restart_window = 1h,
                         .base_backoff = 1s,
                         .max_backoff = 1s,
                         .reset_backoff_after = 24h};
    SECTION("restarts still inside the window count") {
        Harness h;
        Script script;
        script.lifetimes = {0s, 0s, 59min, 0s};
        Monitor monitor{h.io.get_executor(), policy, h.logger};
        monitor.supervise("c", factory_of(script));
        h.runner.run_for(5h);
        const auto stats = monitor.get_component_stats().at("c");
        CHECK(stats.state == ComponentState::gave_up);
        CHECK(stats.restart_count == 2);
        h.close(monitor);
    }
    SECTION("restarts older than the window no longer count") {
        Harness h;
        Script script;
        script.lifetimes = {0s, 0s, 61min, 0s, 0s};
        Monitor monitor{h.io.get_executor(), policy, h.logger};
        monitor.supervise("c", factory_of(script));
        h.runner.run_for(59min);
        CHECK(monitor.get_component_stats().at("c").restarts_in_window == 2);
        h.runner.run_for(5h);
        const auto stats = monitor.get_component_stats().at("c");
        CHECK(stats.state == ComponentState::gave_up);
        CHECK(stats.restart_count == 4);  // two early, then two more once the early ones slid out
        h.close(monitor);
    }
}

TEST_CASE("A restart exactly one window old no longer counts, in the decision and in the stats", "[task_monitor]") {
    Harness h;
    Script script;
    script.lifetimes = {0s, 1h, 0s, 0s};  // fails at 0, is restarted at 1 s, fails at 1 h + 1 s
    Monitor monitor{h.io.get_executor(),
                    {.max_restart_attempts = 1,
                     .restart_window = 1h,
                     .base_backoff = 1s,
                     .max_backoff = 1s,
                     .reset_backoff_after = 24h},
                    h.logger};
    monitor.supervise("c", factory_of(script));
    h.runner.run_for(1h);
    CHECK(monitor.get_component_stats().at("c").restarts_in_window == 1);  // the restart at 1 s
    h.runner.run_for(1s);
    CHECK(monitor.get_component_stats().at("c").restarts_in_window == 0);  // exactly one window old
    // The failure at 1 h + 1 s restarts at 1 h + 2 s: the restart at 1 s is then more than a window back.
    h.runner.run_for(1s);
    const auto stats = monitor.get_component_stats().at("c");
    CHECK(stats.restart_count == 2);
    CHECK(stats.restarts_in_window == 1);
    h.runner.run_for(1min);
    CHECK(monitor.get_component_stats().at("c").state == ComponentState::gave_up);
    h.close(monitor);
}

TEST_CASE("unlimited_restart_attempts never gives up, however many restarts fall in the window", "[task_monitor]") {
    Harness h;
    auto failing = failing_now(500);
    Monitor monitor{h.io.get_executor(),
                    {.max_restart_attempts = taskmon::unlimited_restart_attempts,
                     .restart_window = 1h,
                     .base_backoff = 1s,
                     .max_backoff = 1s},
                    h.logger};
    monitor.supervise("crashy", factory_of(failing));
    REQUIRE(h.runner.run_until([&] { return failing.starts == 501; }, 1h));
    const auto stats = monitor.get_component_stats().at("crashy");
    CHECK(stats.state == ComponentState::running);
    CHECK(stats.restart_count == 500);
    CHECK(stats.failure_count == 500);
    CHECK(stats.restarts_in_window == 500);  // all within the hour: any finite limit below 500 would have refused
    CHECK(h.lines_with("exceeded restart limit").empty());
    CHECK(h.close(monitor) == 0s);
}

/// For every automatic restart, how many restarts happened within the window that ends at it (it included).
static int most_restarts_in_any_window(const std::vector<Duration>& restarts, Duration window) {
    int most = 0;
    for (std::size_t i = 0; i < restarts.size(); ++i) {
        const auto in_window = std::count_if(restarts.begin(), restarts.begin() + static_cast<std::ptrdiff_t>(i) + 1,
                                             [&](Duration t) { return t > restarts[i] - window; });
        most = std::max(most, static_cast<int>(in_window));
    }
    return most;
}

TEST_CASE("The window counts restarts when they happen: a backoff that shrinks lets no extra restart through",
          "[task_monitor][window]") {
    // 2 restarts per 10 s; backoff 1 s, 9 s (capped); 1 s of running resets it. Instances live 0.5, 0.5, 1, 1 s:
    // restarts happen at 1.5, 11 and 13 s. The failure at 14 s would restart at 15 s, the third restart within
    // (5 s, 15 s]: refused. Counting when restarts were decided (0.5, 2, 12, 14 s) would let it through.
    Harness h;
    Recorder recorder;
    Script script;
    script.lifetimes = {500ms, 500ms, 1s, 1s, 500ms};
    Monitor monitor{h.io.get_executor(),
                    {.max_restart_attempts = 2,
                     .restart_window = 10s,
                     .base_backoff = 1s,
                     .max_backoff = 9s,
                     .backoff_multiplier = 9.0,
                     .reset_backoff_after = 1s},
                    h.logger};
    auto subscription = monitor.subscribe(recorder.listener());
    monitor.supervise("c", factory_of(script));
    h.runner.run_for(1min);
    CHECK(times_of(recorder, MonitorEventKind::restarted) == std::vector<Duration>{1500ms, 11s, 13s});
    REQUIRE(recorder.of(MonitorEventKind::gave_up).size() == 1);
    CHECK(since_first(recorder, recorder.of(MonitorEventKind::gave_up).front()) == 14s);
    CHECK(script.starts == 4);
    CHECK(monitor.get_component_stats().at("c").state == ComponentState::gave_up);
    h.close(monitor);
}

TEST_CASE("The restart limit holds at every instant under jitter and shrinking backoffs", "[task_monitor][window]") {
    // Seeded runs of random lifetimes with full jitter: whatever the draws, no window ever holds more restarts
    // than max_restart_attempts (the invariant a chaos test checks), and every give-up comes with a full window.
    const auto window = Duration{10s};
    for (std::uint64_t seed = 1; seed <= 25; ++seed) {
        INFO("seed " << seed);
        Harness h;
        Recorder recorder;
        std::mt19937_64 engine{seed};
        const std::vector<Duration> choices{0s, 300ms, 500ms, 1s, 2s, 4s};
        Script script;
        for (int i = 0; i < 60; ++i) {
            script.lifetimes.push_back(choices[engine() % choices.size()]);
        }
        Monitor monitor{h.io.get_executor(),
                        {.max_restart_attempts = 3,
                         .restart_window = 10s,
                         .base_backoff = 200ms,
                         .max_backoff = 5s,
                         .backoff_multiplier = 3.0,
                         .jitter = taskmon::JitterKind::full,
                         .reset_backoff_after = 1s,
                         .give_up_mode = taskmon::GiveUpMode::quarantine,
                         .quarantine_cooldown = 20s,
                         .max_quarantine_cooldown = 20s},
                        taskmon_test::null_logger(),
                        taskmon::seeded_random_source(seed)};
        auto subscription = monitor.subscribe(recorder.listener());
        monitor.supervise("c", factory_of(script));
        h.runner.run_for(10min);
        // Automatic restarts only: a quarantine trial is not one, and a passed trial clears the window.
        std::vector<Duration> restarts;
        bool trial = false;
        for (const auto& e : recorder.events) {
            if (e.kind == MonitorEventKind::quarantined) {
                trial = true;  // the next restart is the trial
            } else if (e.kind == MonitorEventKind::restarted && trial) {
                trial = false;
                restarts.clear();  // a new budget once out of quarantine (passed or not, the window starts over)
            } else if (e.kind == MonitorEventKind::restarted) {
                restarts.push_back(since_first(recorder, e));
            }
        }
        CHECK(most_restarts_in_any_window(restarts, window) <= 3);
        CHECK(script.starts > 10);
        h.close(monitor);
    }
}

TEST_CASE("A RandomSource returning NaN or out-of-range numbers keeps the delay in [0, max_backoff]",
          "[task_monitor][jitter]") {
    struct Case {
        double draw;
        Duration delay;  // of the first restart (base 2 s, full jitter)
        bool logged;     // an error line names the source
    };
    const auto nan = std::numeric_limits<double>::quiet_NaN();
    for (const auto& [draw, delay, logged] : std::vector<Case>{{nan, 2s, true},
                                                               {7.5, 2s, false},
                                                               {-1.0, 0s, false},
                                                               {std::numeric_limits<double>::infinity(), 2s, false},
                                                               {0.25, 500ms, false}}) {
        INFO("draw " << draw);
        Harness h;
        Recorder recorder;
        auto script = failing_now(1);
        Monitor monitor{
            h.io.get_executor(), {.jitter = taskmon::JitterKind::full}, h.logger, [draw = draw] { return draw; }};
        auto subscription = monitor.subscribe(recorder.listener());
        monitor.supervise("c", factory_of(script));
        h.runner.run_for(1min);
        const auto scheduled = recorder.of(MonitorEventKind::restart_scheduled);
        REQUIRE(scheduled.size() == 1);
        CHECK(scheduled.front().delay == delay);
        CHECK(recorder.of(MonitorEventKind::restarted).size() == 1);
        CHECK(h.lines_with("error|Random source failed; component c waits its backoff without jitter component=c "
                           "reason=\"returned NaN\"")
                  .size() == (logged ? 1U : 0U));
        h.close(monitor);
    }
}

TEST_CASE("A RandomSource that throws is logged, the restart waits its nominal backoff, state stays consistent",
          "[task_monitor][jitter]") {
    Harness h;
    Recorder recorder;
    auto script = failing_now(2);
    Monitor monitor{h.io.get_executor(), {.jitter = taskmon::JitterKind::equal}, h.logger, []() -> double {
                        throw std::runtime_error("entropy pool empty");
                    }};
    auto subscription = monitor.subscribe(recorder.listener());
    monitor.supervise("c", factory_of(script));
    h.runner.run_for(1s);  // the first failure is handled: nothing escaped io_context::run()
    auto stats = monitor.get_component_stats().at("c");
    CHECK(stats.state == ComponentState::restarting);
    CHECK(stats.task_done);
    CHECK(recorder.kinds() == Names{"started", "failed", "restart_scheduled"});
    h.runner.run_for(1min);
    CHECK(gaps(script.start_times) == std::vector<Duration>{2s, 4s});
    for (const auto& e : recorder.of(MonitorEventKind::restart_scheduled)) {
        CHECK(e.delay == (e.attempt == 1 ? Duration{2s} : Duration{4s}));
    }
    CHECK(monitor.get_component_stats().at("c").state == ComponentState::running);
    const auto lines = h.lines_with("reason=\"threw std::runtime_error: entropy pool empty\"");
    REQUIRE(lines.size() == 2);
    CHECK(lines.front().rfind("error|Random source failed; component c waits its backoff without jitter", 0) == 0);
    h.close(monitor);
}

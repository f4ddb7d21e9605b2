// Tests for taskmon/task_monitor.hpp. Everything time-dependent runs in virtual time (ManualClock).
#include <taskmon/task_monitor.hpp>
#include <taskmon/testing/manual_clock.hpp>

#include "monitor_event_harness.hpp"
#include "taskmon_catch.hpp"

#include <asio/bind_cancellation_slot.hpp>
#include <asio/cancellation_signal.hpp>
#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/io_context.hpp>
#include <asio/steady_timer.hpp>
#include <asio/this_coro.hpp>
#include <asio/use_awaitable.hpp>
#include <asio/use_future.hpp>
#include <spdlog/sinks/null_sink.h>
#include <spdlog/sinks/ringbuffer_sink.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <future>
#include <map>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

using namespace std::chrono_literals;
using taskmon::ComponentState;
using taskmon::RestartPolicy;
using taskmon::RestartType;
using taskmon::testing::ManualClock;
using taskmon::testing::ManualTime;
using taskmon::testing::ManualTimer;
using taskmon::testing::VirtualTimeRunner;

namespace {

using Monitor = taskmon::BasicTaskMonitor<ManualClock>;
using Duration = ManualClock::duration;

using taskmon_test::Harness;  // virtual time, an io_context, a runner and a readable log

/// What a scripted component does: lives for lifetimes[i] (virtual time) on its i-th start, then throws; past
/// the end of the script it runs until cancelled.
struct Script {
    std::vector<Duration> lifetimes;
    std::vector<Duration> starts;  // virtual time of every start
    int live = 0;
    int max_live = 0;
    int exits = 0;
};

asio::awaitable<void> scripted(Script& script, std::string message = "Connection lost") {
    const auto index = script.starts.size();
    script.starts.push_back(ManualClock::now().time_since_epoch());
    ++script.live;
    script.max_live = std::max(script.max_live, script.live);
    struct Exit {
        Script& s;
        ~Exit() {
            --s.live;
            ++s.exits;
        }
    } exit_guard{script};
    ManualTimer timer{co_await asio::this_coro::executor};
    if (index < script.lifetimes.size()) {
        timer.expires_after(script.lifetimes[index]);
        co_await timer.async_wait(asio::use_awaitable);
        throw std::runtime_error(message);
    }
    for (;;) {
        timer.expires_after(1h);
        co_await timer.async_wait(asio::use_awaitable);
    }
}

/// A factory for `scripted`.
taskmon::RestartFactory factory_of(Script& script) {
    return [&script] { return scripted(script); };
}

/// Script whose component fails immediately `n` times.
Script failing_now(int n) {
    Script s;
    s.lifetimes.assign(static_cast<std::size_t>(n), 0s);
    return s;
}

std::vector<Duration> gaps(const std::vector<Duration>& starts) {
    std::vector<Duration> out;
    for (std::size_t i = 1; i < starts.size(); ++i) {
        out.push_back(starts[i] - starts[i - 1]);
    }
    return out;
}

}  // namespace

TEST_CASE("Backoff doubles from 2 s up to the 60 s cap by default", "[task_monitor]") {
    Harness h;
    auto script = failing_now(8);
    RestartPolicy policy;
    policy.max_restart_attempts = 100;
    Monitor monitor{h.io.get_executor(), policy, h.logger};
    monitor.supervise("perception", factory_of(script));
    h.runner.run_for(10min);
    REQUIRE(script.starts.size() == 9);
    CHECK(gaps(script.starts) == std::vector<Duration>{2s, 4s, 8s, 16s, 32s, 60s, 60s, 60s});
    const auto restarts = h.lines_with("Restarting component perception");
    REQUIRE(restarts.size() == 8);
    CHECK(restarts[0].find("(attempt 1) after 2.0s delay") != std::string::npos);
    CHECK(restarts[5].find("(attempt 6) after 60.0s delay") != std::string::npos);
    h.close(monitor);
}

TEST_CASE("The 6th restart within an hour is refused with one ERROR line", "[task_monitor]") {
    Harness h;
    auto script = failing_now(100);
    Monitor monitor{h.io.get_executor(), {}, h.logger};
    monitor.supervise("perception", factory_of(script));
    h.runner.run_for(3h);
    CHECK(script.starts.size() == 6);  // the first start and 5 restarts
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
    CHECK(script.starts.back() == 62s);
    h.close(monitor);
}

TEST_CASE("The give-up line names a window that is not an hour", "[task_monitor]") {
    Harness h;
    auto script = failing_now(100);
    Monitor monitor{h.io.get_executor(),
                    {.max_restart_attempts = 3, .restart_window = 10min, .base_backoff = 1s, .max_backoff = 1s},
                    h.logger};
    monitor.supervise("decision", factory_of(script));
    h.runner.run_for(1h);
    const auto gave_up = h.lines_with("exceeded restart limit");
    REQUIRE(gave_up.size() == 1);
    CHECK(gave_up[0].find("(3 attempts per 10 minutes)") != std::string::npos);
    CHECK(gave_up[0].find("restart_count=3") != std::string::npos);
    h.close(monitor);
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
    RestartPolicy policy{.max_restart_attempts = 2, .restart_window = 1h, .base_backoff = 1s, .max_backoff = 1s,
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

TEST_CASE("Backoff resets after a run of reset_backoff_after without failing", "[task_monitor]") {
    Harness h;
    Script script;
    script.lifetimes = {0s, 0s, 0s, 10min, 0s, 9min, 0s};
    RestartPolicy policy;
    policy.max_restart_attempts = 100;
    Monitor monitor{h.io.get_executor(), policy, h.logger};
    monitor.supervise("perception", factory_of(script));
    h.runner.run_for(2h);
    REQUIRE(script.starts.size() == 8);
    const auto g = gaps(script.starts);
    // 2, 4, 8; then a 10 min stable run resets k: 2 (+10 min run), 4; a 9 min run does not: 8 (+9 min), 16.
    CHECK(g == std::vector<Duration>{2s, 4s, 8s, 10min + 2s, 4s, 9min + 8s, 16s});
    h.close(monitor);
}

TEST_CASE("Restart types decide what a normal return means", "[task_monitor]") {
    Harness h;
    int transient_runs = 0, permanent_runs = 0, temporary_runs = 0;
    auto returns = [](int& runs) -> asio::awaitable<void> {
        ++runs;
        co_return;
    };
    auto throws = [](int& runs) -> asio::awaitable<void> {
        ++runs;
        throw std::runtime_error("boom");
        co_return;
    };
    Monitor monitor{h.io.get_executor(), {.base_backoff = 1s, .max_backoff = 1s}, h.logger};
    monitor.supervise("transient", [&] { return returns(transient_runs); });
    monitor.supervise("permanent", [&] { return returns(permanent_runs); },
                      RestartPolicy{.max_restart_attempts = 3, .base_backoff = 1s, .max_backoff = 1s,
                                    .restart_type = RestartType::permanent});
    monitor.supervise("temporary", [&] { return throws(temporary_runs); },
                      RestartPolicy{.restart_type = RestartType::temporary});
    h.runner.run_for(1h);
    const auto stats = monitor.get_component_stats();
    CHECK(transient_runs == 1);
    CHECK(stats.at("transient").state == ComponentState::completed);
    CHECK(stats.at("transient").task_done);
    CHECK(stats.at("transient").restart_count == 0);
    CHECK(permanent_runs == 4);  // restarted after every normal return until the limit
    CHECK(stats.at("permanent").restart_count == 3);
    CHECK(stats.at("permanent").state == ComponentState::gave_up);
    CHECK(temporary_runs == 1);  // never restarted, even after failing
    CHECK(stats.at("temporary").state == ComponentState::failed);
    CHECK(stats.at("temporary").failure_count == 1);
    CHECK(stats.at("temporary").last_error == "std::runtime_error: boom");
    CHECK(h.lines_with("Component transient completed component=transient").size() == 1);
    h.close(monitor);
}

TEST_CASE("An unexpected cancellation is restarted like a failure", "[task_monitor]") {
    Harness h;
    int starts = 0;
    std::shared_ptr<ManualTimer> rogue_target;
    auto component = [&]() -> asio::awaitable<void> {
        ++starts;
        auto timer = std::make_shared<ManualTimer>(co_await asio::this_coro::executor, 1h);
        rogue_target = timer;
        co_await timer->async_wait(asio::use_awaitable);
    };
    Monitor monitor{h.io.get_executor(), {}, h.logger};
    monitor.supervise("perception", component);
    h.runner.run_for(1s);
    REQUIRE(starts == 1);
    // Someone else cancels the operation the component waits on: the monitor did not request it.
    asio::post(h.io, [&] { rogue_target->cancel(); });
    h.runner.run_for(1s);
    auto stats = monitor.get_component_stats().at("perception");
    CHECK(stats.task_cancelled);
    CHECK(stats.is_restarting);
    CHECK(stats.state == ComponentState::restarting);
    CHECK(stats.failure_count == 1);
    CHECK(h.lines_with("was cancelled unexpectedly").size() == 1);
    h.runner.run_for(2s);
    stats = monitor.get_component_stats().at("perception");
    CHECK(starts == 2);
    CHECK(stats.state == ComponentState::running);
    CHECK_FALSE(stats.task_cancelled);
    CHECK(stats.restart_count == 1);
    h.close(monitor);
}

TEST_CASE("A cancellation wrapped in multiple_exceptions is classified by its first exception", "[task_monitor]") {
    Harness h;
    int starts = 0;
    auto component = [&]() -> asio::awaitable<void> {
        if (++starts == 1) {
            throw asio::multiple_exceptions(
                std::make_exception_ptr(std::system_error(asio::error::operation_aborted)));
        }
        ManualTimer timer{co_await asio::this_coro::executor, 1h};
        co_await timer.async_wait(asio::use_awaitable);
    };
    Monitor monitor{h.io.get_executor(), {}, h.logger};
    monitor.supervise("c", component);
    h.runner.run_for(1s);
    auto stats = monitor.get_component_stats().at("c");
    CHECK(stats.task_cancelled);
    CHECK(stats.failure_count == 1);
    CHECK(h.lines_with("was cancelled unexpectedly").size() == 1);
    h.runner.run_for(2s);
    CHECK(starts == 2);
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
        return gaps(script.starts);
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
    // The ported design dropped the exit of a component that failed again while its restart flag was still set.
    Harness h;
    auto script = failing_now(3);  // fails at once on its first three starts, then runs
    Monitor monitor{h.io.get_executor(), {.base_backoff = 0ms, .max_backoff = 0ms}, h.logger};
    monitor.supervise("perception", factory_of(script));
    h.runner.run_for(1s);
    CHECK(script.starts.size() == 4);
    const auto stats = monitor.get_component_stats().at("perception");
    CHECK(stats.state == ComponentState::running);
    CHECK(stats.restart_count == 3);
    CHECK(stats.failure_count == 3);
    CHECK(script.max_live == 1);
    h.close(monitor);
}

TEST_CASE("Siblings are isolated from a failing component", "[task_monitor]") {
    Harness h;
    auto bad = failing_now(1000);
    int ticks = 0;
    auto good = [&]() -> asio::awaitable<void> {
        ManualTimer timer{co_await asio::this_coro::executor};
        for (;;) {
            timer.expires_after(1s);
            co_await timer.async_wait(asio::use_awaitable);
            ++ticks;
        }
    };
    Monitor monitor{h.io.get_executor(), {}, h.logger};
    monitor.supervise("bad", factory_of(bad));
    monitor.supervise("good", good);
    const auto good_id = monitor.get_component_stats().at("good").task_id;
    h.runner.run_for(10min);
    const auto stats = monitor.get_component_stats();
    CHECK(stats.at("bad").state == ComponentState::gave_up);
    CHECK(stats.at("good").state == ComponentState::running);
    CHECK(stats.at("good").restart_count == 0);
    CHECK(stats.at("good").failure_count == 0);
    CHECK(stats.at("good").task_id == good_id);
    CHECK(ticks == 600);
    h.close(monitor);
}

TEST_CASE("close() during a backoff never calls the factory again", "[task_monitor]") {
    Harness h;
    auto script = failing_now(100);
    Monitor monitor{h.io.get_executor(), {}, h.logger};
    monitor.supervise("perception", factory_of(script));
    h.runner.run_for(3s);  // started at 0, failed, restarted at 2 s, failed; now waiting 4 s
    REQUIRE(script.starts.size() == 2);
    REQUIRE(monitor.get_component_stats().at("perception").is_restarting);
    CHECK(h.close(monitor) == 0s);
    CHECK(h.lines_with("Cancelled pending restart of component perception").size() == 1);
    h.runner.run_for(2h);
    CHECK(script.starts.size() == 2);
    const auto stats = monitor.get_component_stats().at("perception");
    CHECK(stats.state == ComponentState::stopped);
    CHECK_FALSE(stats.is_restarting);
    CHECK(h.io.stopped());  // no timer left behind
}

TEST_CASE("close() cancels running components and waits for them", "[task_monitor]") {
    Harness h;
    Script a, b;
    Monitor monitor{h.io.get_executor(), {}, h.logger};
    monitor.supervise("a", factory_of(a));
    monitor.supervise("b", factory_of(b));
    h.runner.run_for(1min);
    CHECK(h.close(monitor) == 0s);
    CHECK(a.live == 0);
    CHECK(b.live == 0);
    const auto stats = monitor.get_component_stats();
    CHECK(stats.at("a").state == ComponentState::stopped);
    CHECK(stats.at("a").failure_count == 0);
    CHECK(stats.at("a").task_cancelled);
    CHECK(h.lines_with("TaskMonitor closed components=2 unresponsive=0").size() == 1);
    // Idempotent: a second close completes at once.
    CHECK(h.close(monitor) == 0s);
}

TEST_CASE("close() returns by the shutdown timeout when a component ignores cancellation", "[task_monitor]") {
    Harness h;
    int cancels_ignored = 0;
    bool finished = false;
    auto stubborn = [&]() -> asio::awaitable<void> {
        ManualTimer timer{co_await asio::this_coro::executor};
        for (int i = 0; i < 60; ++i) {
            try {
                timer.expires_after(1s);
                co_await timer.async_wait(asio::use_awaitable);
            } catch (const std::system_error&) {
                ++cancels_ignored;
            }
            co_await asio::this_coro::reset_cancellation_state();
        }
        finished = true;
    };
    Monitor monitor{h.io.get_executor(), {.shutdown_timeout = 5s}, h.logger};
    monitor.supervise("stubborn", stubborn);
    h.runner.run_for(10s);
    CHECK(h.close(monitor) == 5s);
    CHECK(cancels_ignored == 1);
    auto stats = monitor.get_component_stats().at("stubborn");
    CHECK(stats.state == ComponentState::unresponsive);
    CHECK_FALSE(stats.task_done);
    const auto timeout = h.lines_with("did not stop within");
    REQUIRE(timeout.size() == 1);
    CHECK(timeout[0].rfind("error|Component stubborn did not stop within 5.0s of cancellation", 0) == 0);
    CHECK(h.lines_with("unresponsive=1").size() == 1);
    // When it finally ends it is reported stopped, and never restarted.
    h.runner.run();
    CHECK(finished);
    stats = monitor.get_component_stats().at("stubborn");
    CHECK(stats.state == ComponentState::stopped);
    CHECK(stats.restart_count == 0);
}

TEST_CASE("restart() while running replaces the instance exactly once", "[task_monitor]") {
    Harness h;
    Script script;
    Monitor monitor{h.io.get_executor(), {}, h.logger};
    monitor.supervise("perception", factory_of(script));
    h.runner.run_for(1s);
    monitor.restart("perception");
    monitor.restart("perception");
    monitor.restart("perception");
    auto stats = monitor.get_component_stats().at("perception");
    CHECK(stats.is_restarting);
    CHECK(stats.state == ComponentState::restarting);
    h.runner.run_for(1s);
    CHECK(script.starts.size() == 2);
    CHECK(script.max_live == 1);
    stats = monitor.get_component_stats().at("perception");
    CHECK(stats.state == ComponentState::running);
    CHECK(stats.restart_count == 1);
    CHECK(stats.failure_count == 0);
    CHECK(stats.restarts_in_window == 0);  // manual restarts do not use up the automatic budget
    CHECK(stats.last_restart_time.has_value());
    CHECK(h.lines_with("merged into the pending restart").size() == 2);
    h.close(monitor);
}

TEST_CASE("restart() during a backoff merges into it and starts at once", "[task_monitor]") {
    Harness h;
    auto script = failing_now(1);
    Monitor monitor{h.io.get_executor(), {.base_backoff = 30s, .max_backoff = 60s}, h.logger};
    monitor.supervise("perception", factory_of(script));
    h.runner.run_for(1s);
    REQUIRE(monitor.get_component_stats().at("perception").is_restarting);
    monitor.restart("perception");
    monitor.restart("perception");
    h.runner.run_for(1s);
    CHECK(script.starts.size() == 2);
    CHECK(script.starts[1] == 1s);
    h.runner.run_for(2min);  // the old backoff timer must not start a second instance
    CHECK(script.starts.size() == 2);
    CHECK(script.max_live == 1);
    CHECK(monitor.get_component_stats().at("perception").restart_count == 1);
    h.close(monitor);
}

TEST_CASE("restart() after give-up resets the restart budget", "[task_monitor]") {
    Harness h;
    auto script = failing_now(6);
    Monitor monitor{h.io.get_executor(), {}, h.logger};
    monitor.supervise("perception", factory_of(script));
    h.runner.run_for(5min);
    REQUIRE(monitor.get_component_stats().at("perception").state == ComponentState::gave_up);
    monitor.restart("perception");
    h.runner.run_for(1s);
    const auto stats = monitor.get_component_stats().at("perception");
    CHECK(stats.state == ComponentState::running);
    CHECK(stats.restart_count == 6);
    CHECK(stats.restarts_in_window == 0);
    h.close(monitor);
}

TEST_CASE("Stats describe every stage of a component's life", "[task_monitor]") {
    Harness h;
    Script script;
    script.lifetimes = {10s, 10s};
    Monitor monitor{h.io.get_executor(), {.max_restart_attempts = 1, .base_backoff = 2s}, h.logger};
    monitor.set_restart_factories({{"perception", factory_of(script)}});

    auto s = monitor.get_component_stats().at("perception");
    CHECK(s.state == ComponentState::not_started);
    CHECK_FALSE(s.enabled);
    CHECK(s.task_done);

    monitor.register_task("perception", scripted(script));
    monitor.enable({"perception"});
    s = monitor.get_component_stats().at("perception");
    CHECK(s.state == ComponentState::running);
    CHECK(s.enabled);
    CHECK_FALSE(s.task_done);
    CHECK_FALSE(s.is_restarting);
    CHECK(s.restart_count == 0);
    CHECK_FALSE(s.last_restart_time);
    CHECK(s.task_id == 1);

    h.runner.run_for(11s);  // failed at 10 s, restart due at 12 s
    s = monitor.get_component_stats().at("perception");
    CHECK(s.state == ComponentState::restarting);
    CHECK(s.is_restarting);
    CHECK(s.task_done);
    CHECK_FALSE(s.task_cancelled);
    CHECK(s.failure_count == 1);
    CHECK(s.last_error == "std::runtime_error: Connection lost");
    CHECK(s.restarts_in_window == 1);
    REQUIRE(s.next_restart_at);

    h.runner.run_for(2s);
    auto after = monitor.get_component_stats().at("perception");
    CHECK(after.state == ComponentState::running);
    CHECK_FALSE(after.is_restarting);
    CHECK_FALSE(after.task_done);
    CHECK(after.restart_count == 1);
    CHECK(after.task_id == 2);
    REQUIRE(after.last_restart_time);
    CHECK(*after.last_restart_time == *s.next_restart_at);
    CHECK_FALSE(after.next_restart_at);

    h.runner.run_for(1min);  // fails again: one restart per hour allowed, so it gives up
    s = monitor.get_component_stats().at("perception");
    CHECK(s.state == ComponentState::gave_up);
    CHECK(s.failure_count == 2);

    monitor.restart("perception");
    h.runner.run_for(1s);
    CHECK(monitor.get_component_stats().at("perception").state == ComponentState::running);
    monitor.disable({"perception"});
    s = monitor.get_component_stats().at("perception");
    CHECK(s.state == ComponentState::stopping);
    CHECK_FALSE(s.enabled);
    h.runner.run_for(1s);
    s = monitor.get_component_stats().at("perception");
    CHECK(s.state == ComponentState::stopped);
    CHECK(s.task_done);
    CHECK(s.task_cancelled);
    CHECK(s.failure_count == 2);  // a requested stop is not a failure
    h.close(monitor);
}

TEST_CASE("Log lines carry the design's text and key=value fields", "[task_monitor]") {
    Harness h;
    auto script = failing_now(2);
    Monitor monitor{h.io.get_executor(), {}, h.logger};
    monitor.supervise("perception", factory_of(script));
    h.runner.run_for(1min);
    const auto restarting = h.lines_with("Restarting component");
    REQUIRE(restarting.size() == 2);
    CHECK(restarting[1] ==
          "warning|Restarting component perception (attempt 2) after 4.0s delay component=perception attempt=2 "
          "backoff=4.0 reason=\"std::runtime_error: Connection lost\"");
    const auto restarted = h.lines_with("Successfully restarted");
    REQUIRE(restarted.size() == 2);
    CHECK(restarted[1] == "info|Successfully restarted component perception component=perception new_task_id=3 "
                          "restart_count=2");
    const auto failed = h.lines_with("Component perception failed");
    REQUIRE(failed.size() == 2);
    CHECK(failed[0] == "error|Component perception failed component=perception task_id=1 failure_count=1 "
                       "reason=\"std::runtime_error: Connection lost\"");
    h.close(monitor);
}

TEST_CASE("Reasons with quotes and newlines stay on one line", "[task_monitor]") {
    Harness h;
    int runs = 0;
    auto component = [&]() -> asio::awaitable<void> {
        ++runs;
        throw std::runtime_error("bad \"value\"\nnext");
        co_return;
    };
    Monitor monitor{h.io.get_executor(), {.max_restart_attempts = 0}, h.logger};
    monitor.supervise("c", component);
    h.runner.run_for(1s);
    const auto gave_up = h.lines_with("exceeded restart limit");
    REQUIRE(gave_up.size() == 1);
    CHECK(gave_up[0].find(R"(reason="std::runtime_error: bad \"value\"\nnext")") != std::string::npos);
    h.close(monitor);
}

TEST_CASE("A failing factory counts as a failure and is retried", "[task_monitor]") {
    Harness h;
    Script script;
    int calls = 0;
    Monitor monitor{h.io.get_executor(), {.base_backoff = 1s, .max_backoff = 1s}, h.logger};
    monitor.supervise("c", [&]() -> asio::awaitable<void> {
        ++calls;
        if (calls == 2) {
            throw std::runtime_error("no device");
        }
        return scripted(script);
    });
    script.lifetimes = {0s};
    h.runner.run_for(1min);
    CHECK(calls == 3);
    const auto stats = monitor.get_component_stats().at("c");
    CHECK(stats.state == ComponentState::running);
    CHECK(stats.failure_count == 2);
    CHECK(stats.restart_count == 1);
    CHECK(h.lines_with("Restart factory of component c threw").size() == 1);
    h.close(monitor);
}

TEST_CASE("Only enabled components are restarted", "[task_monitor]") {
    Harness h;
    auto script = failing_now(1);
    Monitor monitor{h.io.get_executor(), {}, h.logger};
    monitor.set_restart_factories({{"pause_handler", factory_of(script)}});
    monitor.register_task("pause_handler", scripted(script));
    h.runner.run_for(1h);
    const auto stats = monitor.get_component_stats().at("pause_handler");
    CHECK(script.starts.size() == 1);
    CHECK(stats.state == ComponentState::failed);
    CHECK(stats.failure_count == 1);
    CHECK(h.lines_with("is not enabled for restart").size() == 1);
    h.close(monitor);
}

TEST_CASE("An enabled component without a factory is reported, not silently dropped", "[task_monitor]") {
    Harness h;
    auto script = failing_now(1);
    Monitor monitor{h.io.get_executor(), {}, h.logger};
    monitor.register_task("orphan", scripted(script));
    monitor.enable({"orphan"});
    h.runner.run_for(1h);
    CHECK(monitor.get_component_stats().at("orphan").state == ComponentState::failed);
    CHECK(h.lines_with("no restart factory").size() == 1);
    h.close(monitor);
}

TEST_CASE("disable() stops a component without counting a failure", "[task_monitor]") {
    Harness h;
    auto failing = failing_now(100);
    Script steady;
    Monitor monitor{h.io.get_executor(), {}, h.logger};
    monitor.supervise("failing", factory_of(failing));
    monitor.supervise("steady", factory_of(steady));
    h.runner.run_for(1s);  // failing is in its 2 s backoff
    monitor.disable({"failing", "steady"});
    h.runner.run_for(1h);
    const auto stats = monitor.get_component_stats();
    CHECK(failing.starts.size() == 1);
    CHECK(stats.at("failing").state == ComponentState::stopped);
    CHECK(stats.at("steady").state == ComponentState::stopped);
    CHECK(stats.at("steady").failure_count == 0);
    CHECK(steady.live == 0);
    h.close(monitor);
}

TEST_CASE("Invalid policies are rejected naming the field", "[task_monitor]") {
    asio::io_context io;
    const auto rejects = [&](RestartPolicy policy, const std::string& field) {
        try {
            taskmon::TaskMonitor monitor{io.get_executor(), policy};
            FAIL("accepted an invalid " << field);
        } catch (const std::invalid_argument& e) {
            CHECK(std::string{e.what()}.find(field) != std::string::npos);
        }
    };
    rejects({.max_restart_attempts = -1}, "max_restart_attempts");
    rejects({.restart_window = 0s}, "restart_window");
    rejects({.restart_window = -1s}, "restart_window");
    rejects({.base_backoff = -1ms}, "base_backoff");
    rejects({.base_backoff = 10s, .max_backoff = 5s}, "max_backoff");
    rejects({.backoff_multiplier = 0.5}, "backoff_multiplier");
    rejects({.backoff_multiplier = std::numeric_limits<double>::quiet_NaN()}, "backoff_multiplier");
    rejects({.jitter = taskmon::JitterKind::proportional, .jitter_ratio = 1.5}, "jitter_ratio");
    rejects({.jitter_ratio = -0.1}, "jitter_ratio");
    rejects({.reset_backoff_after = -1s}, "reset_backoff_after");
    rejects({.shutdown_timeout = -1s}, "shutdown_timeout");
    CHECK_NOTHROW(taskmon::TaskMonitor{io.get_executor(), {.base_backoff = 1500ms, .max_backoff = 1500ms}});
}

TEST_CASE("Bad names are rejected and change nothing", "[task_monitor]") {
    Harness h;
    Script a;
    Monitor monitor{h.io.get_executor(), {}, h.logger};
    monitor.supervise("a", factory_of(a));
    const auto before = monitor.get_component_stats();

    const auto message_of = [](auto&& call) -> std::string {
        try {
            call();
        } catch (const std::invalid_argument& e) {
            return e.what();
        }
        return "no exception";
    };
    CHECK(message_of([&] { monitor.register_task("", scripted(a)); }).find("empty") != std::string::npos);
    CHECK(message_of([&] { monitor.register_task("a", scripted(a)); }).find("duplicate component name 'a'") !=
          std::string::npos);
    CHECK(message_of([&] { monitor.supervise("a", factory_of(a)); }).find("'a'") != std::string::npos);
    CHECK(message_of([&] { monitor.supervise("b", taskmon::RestartFactory{}); }).find("factory") != std::string::npos);
    CHECK(message_of([&] { monitor.supervise("b", factory_of(a), RestartPolicy{.max_backoff = 1s}); })
              .find("max_backoff") != std::string::npos);
    CHECK(message_of([&] { monitor.set_restart_factories({{"", factory_of(a)}}); }).find("empty") !=
          std::string::npos);
    // A list with one unknown name changes none of the names in it.
    CHECK(message_of([&] { monitor.disable({"a", "ghost"}); }).find("unknown component 'ghost'") !=
          std::string::npos);
    CHECK(message_of([&] { monitor.enable({"ghost"}); }).find("'ghost'") != std::string::npos);
    CHECK(message_of([&] { monitor.restart("ghost"); }).find("'ghost'") != std::string::npos);

    h.runner.run_for(1s);
    const auto after = monitor.get_component_stats();
    CHECK(after.size() == 1);
    CHECK(after.at("a").enabled);
    CHECK(after.at("a").state == ComponentState::running);
    CHECK(after.at("a").task_id == before.at("a").task_id);
    CHECK(a.starts.size() == 1);  // only supervise() called the factory; the rejected calls ran nothing
    h.close(monitor);
}

TEST_CASE("Calls after close throw std::logic_error", "[task_monitor]") {
    Harness h;
    Script a;
    Monitor monitor{h.io.get_executor(), {}, h.logger};
    monitor.supervise("a", factory_of(a));
    h.close(monitor);
    CHECK_THROWS_AS(monitor.register_task("b", scripted(a)), std::logic_error);
    CHECK_THROWS_AS(monitor.supervise("b", factory_of(a)), std::logic_error);
    CHECK_THROWS_AS(monitor.set_restart_factories({{"b", factory_of(a)}}), std::logic_error);
    CHECK_THROWS_AS(monitor.enable({"a"}), std::logic_error);
    CHECK_THROWS_AS(monitor.restart("a"), std::logic_error);
    CHECK(monitor.get_component_stats().size() == 1);
}

TEST_CASE("Destroying a monitor without close stops its components safely", "[task_monitor]") {
    Harness h;
    auto failing = failing_now(100);
    Script steady;
    {
        Monitor monitor{h.io.get_executor(), {}, h.logger};
        monitor.supervise("failing", factory_of(failing));
        monitor.supervise("steady", factory_of(steady));
        h.runner.run_for(1s);
    }
    h.runner.run();
    CHECK(h.io.stopped());
    CHECK(failing.starts.size() == 1);
    CHECK(steady.live == 0);
}

TEST_CASE("Destroying the io_context after the monitor without running it is safe", "[task_monitor]") {
    Script steady;
    auto failing = failing_now(100);
    ManualTime time;
    {
        asio::io_context io;
        {
            Monitor monitor{io.get_executor(), {},
                            std::make_shared<spdlog::logger>("null", std::make_shared<spdlog::sinks::null_sink_mt>())};
            monitor.supervise("failing", factory_of(failing));
            monitor.supervise("steady", factory_of(steady));
            VirtualTimeRunner{io, time}.run_for(1s);
        }
    }
    CHECK(steady.live == 0);  // the frame was destroyed with the io_context
}

TEST_CASE("Every method is safe from two threads on a two-thread io_context", "[task_monitor][threads]") {
    asio::io_context io;
    auto work = asio::make_work_guard(io);
    std::atomic<int> starts{0};
    auto flaky = [&]() -> asio::awaitable<void> {
        starts.fetch_add(1);
        asio::steady_timer timer{co_await asio::this_coro::executor, 1ms};
        co_await timer.async_wait(asio::use_awaitable);
        throw std::runtime_error("flaky");
    };
    auto steady = [&]() -> asio::awaitable<void> {
        asio::steady_timer timer{co_await asio::this_coro::executor};
        for (;;) {
            timer.expires_after(1ms);
            co_await timer.async_wait(asio::use_awaitable);
        }
    };
    auto sink = std::make_shared<spdlog::sinks::ringbuffer_sink_mt>(16);
    auto logger = std::make_shared<spdlog::logger>("taskmon-threads", sink);
    taskmon::TaskMonitor monitor{io.get_executor(),
                                 {.max_restart_attempts = 1000, .base_backoff = 0ms, .max_backoff = 1ms},
                                 logger};
    std::thread t1{[&] { io.run(); }};
    std::thread t2{[&] { io.run(); }};

    for (int i = 0; i < 4; ++i) {
        monitor.supervise("flaky" + std::to_string(i), flaky);
        monitor.supervise("steady" + std::to_string(i), steady);
    }
    std::thread poker{[&] {
        for (int i = 0; i < 200; ++i) {
            const auto name = "steady" + std::to_string(i % 4);
            monitor.restart(name);
            monitor.disable({name});
            monitor.enable({name});
            (void)monitor.get_component_stats();
        }
    }};
    for (int i = 0; i < 200; ++i) {
        (void)monitor.get_component_stats();
        monitor.restart("flaky" + std::to_string(i % 4));
    }
    poker.join();
    const auto deadline = std::chrono::steady_clock::now() + 60s;
    while (starts.load() < 40 && std::chrono::steady_clock::now() < deadline) {
        std::this_thread::sleep_for(1ms);
    }
    CHECK(starts.load() >= 40);

    std::promise<void> closed;
    asio::co_spawn(io, monitor.close(), [&](std::exception_ptr) { closed.set_value(); });
    closed.get_future().wait();
    for (const auto& [name, stats] : monitor.get_component_stats()) {
        CHECK(stats.task_done);
        CHECK(stats.state != ComponentState::running);
    }
    work.reset();
    t1.join();
    t2.join();
    CHECK(io.stopped());
}

TEST_CASE("The documented API compiles and runs as written", "[task_monitor]") {
    Harness h;
    int runs = 0;
    auto perception_loop = [&]() -> asio::awaitable<void> {
        ++runs;
        ManualTimer timer{co_await asio::this_coro::executor, 1h};
        co_await timer.async_wait(asio::use_awaitable);
    };
    Monitor monitor{h.io.get_executor(), {.max_restart_attempts = 5, .base_backoff = 2s, .max_backoff = 60s},
                    h.logger};
    monitor.set_restart_factories({{"perception", [&] { return perception_loop(); }}});
    monitor.register_task("perception", perception_loop());
    monitor.enable({"perception"});
    std::map<std::string, taskmon::ComponentStats> stats = monitor.get_component_stats();
    CHECK(stats.at("perception").enabled);
    bool closed = false;
    asio::co_spawn(
        h.io,
        [&]() -> asio::awaitable<void> {
            co_await monitor.close();
            closed = true;
        },
        [](std::exception_ptr e) { REQUIRE_FALSE(e); });
    h.runner.run();
    CHECK(closed);
    CHECK(runs == 1);
    static_assert(std::is_same_v<taskmon::TaskMonitor, taskmon::BasicTaskMonitor<std::chrono::steady_clock>>);
}

// ---- edge cases and regressions ----------------------------------------------------------------------------

TEST_CASE("restart() of a component known only by its factory starts it once; register_task then throws",
          "[task_monitor]") {
    Harness h;
    Script script;
    Monitor monitor{h.io.get_executor(), {}, h.logger};
    monitor.set_restart_factories({{"c", factory_of(script)}});
    monitor.restart("c");
    CHECK_THROWS_AS(monitor.register_task("c", scripted(script)), std::invalid_argument);
    h.runner.run_for(1s);
    CHECK(script.starts.size() == 1);
    CHECK(script.max_live == 1);
    CHECK(monitor.get_component_stats().at("c").state == ComponentState::running);
    CHECK(h.close(monitor) == 0s);
    CHECK(script.live == 0);
}

TEST_CASE("A failure of an instance being restarted by restart() is recorded, not dropped", "[task_monitor]") {
    Harness h;
    int starts = 0;
    auto component = [&]() -> asio::awaitable<void> {
        ++starts;
        ManualTimer timer{co_await asio::this_coro::executor, 1h};
        try {
            co_await timer.async_wait(asio::use_awaitable);
        } catch (const std::system_error&) {
            throw std::runtime_error("cleanup failed");  // fails while being stopped
        }
    };
    Monitor monitor{h.io.get_executor(), {}, h.logger};
    monitor.supervise("c", component);
    h.runner.run_for(1s);
    monitor.restart("c");
    h.runner.run_for(1s);
    const auto stats = monitor.get_component_stats().at("c");
    CHECK(starts == 2);
    CHECK(stats.state == ComponentState::running);
    CHECK(stats.restart_count == 1);
    CHECK(stats.last_error == "std::runtime_error: cleanup failed");
    CHECK(h.lines_with("stopped with an error").size() == 1);
    h.close(monitor);
}

namespace {

/// A sink that throws something that is not a std::exception (spdlog rethrows those) on every message.
struct ThrowingSink final : spdlog::sinks::sink {
    void log(const spdlog::details::log_msg&) override { throw 42; }
    void flush() override {}
    void set_pattern(const std::string&) override {}
    void set_formatter(std::unique_ptr<spdlog::formatter>) override {}
};

}  // namespace

TEST_CASE("A logger that throws never breaks supervision or close()", "[task_monitor]") {
    ManualTime time;
    asio::io_context io;
    VirtualTimeRunner runner{io, time};
    auto logger = std::make_shared<spdlog::logger>("throwing", std::make_shared<ThrowingSink>());
    auto script = failing_now(2);
    Script steady;
    Monitor monitor{io.get_executor(), {.base_backoff = 1s, .max_backoff = 1s}, logger};
    REQUIRE_NOTHROW(monitor.supervise("c", factory_of(script)));
    REQUIRE_NOTHROW(monitor.supervise("steady", factory_of(steady)));
    REQUIRE_NOTHROW(runner.run_for(1min));
    CHECK(script.starts.size() == 3);
    CHECK(monitor.get_component_stats().at("c").state == ComponentState::running);
    REQUIRE_NOTHROW(monitor.restart("steady"));
    REQUIRE_NOTHROW(runner.run_for(1s));
    CHECK(steady.starts.size() == 2);
    bool closed = false;
    asio::co_spawn(io, monitor.close(), [&](std::exception_ptr) { closed = true; });
    REQUIRE_NOTHROW(runner.run_until([&] { return closed; }, 1h));
    CHECK(closed);
    CHECK(time.elapsed() == 1min + 1s);  // close did not wait for a deadline
}

TEST_CASE("The give-up line names a one-minute window like the hour: per minute", "[task_monitor]") {
    Harness h;
    auto script = failing_now(100);
    Monitor monitor{h.io.get_executor(),
                    {.max_restart_attempts = 2, .restart_window = 1min, .base_backoff = 1s, .max_backoff = 1s},
                    h.logger};
    monitor.supervise("c", factory_of(script));
    h.runner.run_for(1h);
    const auto gave_up = h.lines_with("exceeded restart limit");
    REQUIRE(gave_up.size() == 1);
    CHECK(gave_up[0].find("(2 attempts per minute). Stopping auto-restart.") != std::string::npos);
    using taskmon::detail::format_window;
    CHECK(format_window(1h) == "hour");
    CHECK(format_window(2h) == "2 hours");
    CHECK(format_window(90s) == "90 seconds");
    CHECK(format_window(1s) == "second");
    CHECK(format_window(1500ms) == "1500 ms");
    h.close(monitor);
}

TEST_CASE("A monitor on a strand executor supervises, closes and is destroyed safely", "[task_monitor][strand]") {
    // Regression: ~BasicTaskMonitor touched freed memory when the monitor's executor was a strand.
    SECTION("closed, then destroyed") {
        Harness h;
        auto failing = failing_now(100);
        Script steady;
        {
            Monitor monitor{asio::make_strand(h.io), {}, h.logger};
            monitor.supervise("failing", factory_of(failing));
            monitor.supervise("steady", factory_of(steady));
            h.runner.run_for(5s);
            CHECK(failing.starts.size() == 2);  // started at 0 and 2 s; the next start is due at 6 s
            CHECK(monitor.get_component_stats().at("steady").state == ComponentState::running);
            h.close(monitor);
        }
        h.runner.run();
        CHECK(steady.live == 0);
    }
    SECTION("destroyed without close while instances and a backoff are pending") {
        Harness h;
        auto failing = failing_now(100);
        Script steady;
        {
            Monitor monitor{asio::make_strand(h.io), {}, h.logger};
            monitor.supervise("failing", factory_of(failing));
            monitor.supervise("steady", factory_of(steady));
            h.runner.run_for(1s);
        }
        h.runner.run();
        CHECK(h.io.stopped());
        CHECK(failing.starts.size() == 1);
        CHECK(steady.live == 0);
    }
    SECTION("destroyed without close, then the io_context is destroyed without running") {
        ManualTime time;
        Script steady;
        {
            asio::io_context io;
            {
                auto sink = std::make_shared<spdlog::sinks::null_sink_mt>();
                Monitor monitor{asio::make_strand(io), {}, std::make_shared<spdlog::logger>("null", sink)};
                monitor.supervise("steady", factory_of(steady));
                VirtualTimeRunner{io, time}.run_for(1s);
            }
        }
        CHECK(steady.live == 0);
    }
}

TEST_CASE("disable() then enable() during a backoff, then restart(), starts exactly one instance",
          "[task_monitor]") {
    Harness h;
    auto script = failing_now(1);
    Monitor monitor{h.io.get_executor(), {.base_backoff = 10s, .max_backoff = 10s}, h.logger};
    monitor.supervise("c", factory_of(script));
    h.runner.run_for(1s);
    REQUIRE(monitor.get_component_stats().at("c").is_restarting);
    monitor.disable({"c"});
    monitor.enable({"c"});
    auto stats = monitor.get_component_stats().at("c");
    CHECK(stats.state == ComponentState::stopped);
    CHECK_FALSE(stats.is_restarting);
    h.runner.run_for(1min);
    CHECK(script.starts.size() == 1);  // the dropped backoff never fires
    monitor.restart("c");
    monitor.restart("c");
    h.runner.run_for(1min);
    CHECK(script.starts.size() == 2);
    CHECK(script.max_live == 1);
    CHECK(monitor.get_component_stats().at("c").state == ComponentState::running);
    h.close(monitor);
}

TEST_CASE("A normal return while a restart() is pending restarts once under every restart type",
          "[task_monitor]") {
    for (auto type : {RestartType::transient, RestartType::permanent, RestartType::temporary}) {
        Harness h;
        int starts = 0;
        auto component = [&]() -> asio::awaitable<void> {
            ++starts;
            ManualTimer timer{co_await asio::this_coro::executor, 1h};
            try {
                co_await timer.async_wait(asio::use_awaitable);
            } catch (const std::system_error&) {
                co_return;  // returns normally when cancelled
            }
        };
        Monitor monitor{h.io.get_executor(), {.restart_type = type}, h.logger};
        monitor.supervise("c", component);
        h.runner.run_for(1s);
        monitor.restart("c");
        h.runner.run_for(1s);
        CHECK(starts == 2);
        const auto stats = monitor.get_component_stats().at("c");
        CHECK(stats.state == ComponentState::running);
        CHECK(stats.restart_count == 1);
        h.close(monitor);
    }
}

TEST_CASE("A restart exactly one window old no longer counts, in the decision and in the stats",
          "[task_monitor]") {
    Harness h;
    Script script;
    script.lifetimes = {0s, 1h, 0s, 0s};  // fails at 0, is restarted at 1 s (a restart at t = 0), fails at 1 h + 1 s
    Monitor monitor{h.io.get_executor(),
                    {.max_restart_attempts = 1, .restart_window = 1h, .base_backoff = 1s, .max_backoff = 1s,
                     .reset_backoff_after = 24h},
                    h.logger};
    monitor.supervise("c", factory_of(script));
    h.runner.run_for(1h);
    CHECK(monitor.get_component_stats().at("c").restarts_in_window == 0);  // the restart decided at 0 is 1 h old
    h.runner.run_for(2s);
    const auto stats = monitor.get_component_stats().at("c");
    CHECK(stats.restart_count == 2);
    CHECK(stats.restarts_in_window == 1);
    h.runner.run_for(1min);
    CHECK(monitor.get_component_stats().at("c").state == ComponentState::gave_up);
    h.close(monitor);
}

TEST_CASE("set_restart_factories with one bad entry changes nothing", "[task_monitor]") {
    Harness h;
    Script a, b;
    Monitor monitor{h.io.get_executor(), {}, h.logger};
    try {
        monitor.set_restart_factories({{"a", factory_of(a)}, {"b", {}}, {"c", factory_of(b)}});
        FAIL("accepted an empty factory");
    } catch (const std::invalid_argument& e) {
        CHECK(std::string{e.what()}.find("'b'") != std::string::npos);
    }
    CHECK(monitor.get_component_stats().empty());
    h.close(monitor);
}

TEST_CASE("close() called twice concurrently from two threads completes both", "[task_monitor][threads]") {
    asio::io_context io;
    auto work = asio::make_work_guard(io);
    auto steady = []() -> asio::awaitable<void> {
        asio::steady_timer timer{co_await asio::this_coro::executor, 24h};
        co_await timer.async_wait(asio::use_awaitable);
    };
    auto logger = std::make_shared<spdlog::logger>("null", std::make_shared<spdlog::sinks::null_sink_mt>());
    std::thread t1{[&] { io.run(); }};
    std::thread t2{[&] { io.run(); }};
    {
        taskmon::TaskMonitor monitor{asio::make_strand(io), {}, logger};
        for (int i = 0; i < 8; ++i) {
            monitor.supervise("c" + std::to_string(i), steady);
        }
        std::promise<void> a, b;
        std::thread closer{[&] { asio::co_spawn(io, monitor.close(), [&](std::exception_ptr) { a.set_value(); }); }};
        asio::co_spawn(io, monitor.close(), [&](std::exception_ptr) { b.set_value(); });
        closer.join();
        CHECK(a.get_future().wait_for(30s) == std::future_status::ready);
        CHECK(b.get_future().wait_for(30s) == std::future_status::ready);
        for (const auto& [name, stats] : monitor.get_component_stats()) {
            CHECK(stats.state == ComponentState::stopped);
        }
    }
    work.reset();
    t1.join();
    t2.join();
}

TEST_CASE("A strand executor on a two-thread io_context is safe from other threads", "[task_monitor][threads]") {
    asio::io_context io;
    auto work = asio::make_work_guard(io);
    std::atomic<int> starts{0};
    auto flaky = [&]() -> asio::awaitable<void> {
        starts.fetch_add(1);
        asio::steady_timer timer{co_await asio::this_coro::executor, 1ms};
        co_await timer.async_wait(asio::use_awaitable);
        throw std::runtime_error("flaky");
    };
    auto logger = std::make_shared<spdlog::logger>("null", std::make_shared<spdlog::sinks::null_sink_mt>());
    std::thread t1{[&] { io.run(); }};
    std::thread t2{[&] { io.run(); }};
    {
        taskmon::TaskMonitor monitor{asio::make_strand(io),
                                     {.max_restart_attempts = 1000, .base_backoff = 0ms, .max_backoff = 1ms},
                                     logger};
        std::thread other{[&] {
            for (int i = 0; i < 4; ++i) {
                monitor.supervise("flaky" + std::to_string(i), flaky);
            }
            for (int i = 0; i < 100; ++i) {
                monitor.restart("flaky" + std::to_string(i % 4));
                (void)monitor.get_component_stats();
            }
        }};
        for (int i = 0; i < 100; ++i) {
            (void)monitor.get_component_stats();
        }
        other.join();
        const auto deadline = std::chrono::steady_clock::now() + 60s;
        while (starts.load() < 20 && std::chrono::steady_clock::now() < deadline) {
            std::this_thread::sleep_for(1ms);
        }
        CHECK(starts.load() >= 20);
    }  // destroyed without close while instances run on both threads
    work.reset();
    t1.join();
    t2.join();
}

TEST_CASE("supervise() with a factory that throws propagates it and changes nothing", "[task_monitor]") {
    Harness h;
    Script script;
    Monitor monitor{h.io.get_executor(), {}, h.logger};
    CHECK_THROWS_WITH(monitor.supervise("c", []() -> asio::awaitable<void> { throw std::runtime_error("no device"); }),
                      "no device");
    CHECK(monitor.get_component_stats().empty());
    monitor.supervise("c", factory_of(script));
    h.runner.run_for(1s);
    CHECK(script.starts.size() == 1);
    CHECK(monitor.get_component_stats().at("c").task_id == 1);
    h.close(monitor);
}

TEST_CASE("close() started while a restart factory runs starts nothing", "[task_monitor]") {
    Harness h;
    auto script = failing_now(1);
    int calls = 0;
    bool closed = false;
    Monitor* self = nullptr;
    Monitor monitor{h.io.get_executor(), {.base_backoff = 1s, .max_backoff = 1s}, h.logger};
    self = &monitor;
    monitor.supervise("c", [&]() -> asio::awaitable<void> {
        if (++calls == 2) {
            (void)self->get_component_stats();  // no deadlock: the factory runs without the monitor's lock
            asio::co_spawn(h.io, self->close(), [&](std::exception_ptr) { closed = true; });
        }
        return scripted(script);
    });
    h.runner.run_until([&] { return closed; }, 1h);
    CHECK(closed);
    CHECK(calls == 2);
    CHECK(script.starts.size() == 1);  // the instance the factory made was never started
    const auto stats = monitor.get_component_stats().at("c");
    CHECK(stats.state == ComponentState::stopped);
    CHECK_FALSE(stats.is_restarting);
    CHECK(h.lines_with("TaskMonitor closed components=1 unresponsive=0").size() == 1);
}

TEST_CASE("Components sharing a pool strand are supervised independently", "[task_monitor][strand]") {
    for (std::size_t pool : {std::size_t{0}, std::size_t{1}, std::size_t{2}}) {
        Harness h;
        auto failing = failing_now(100);
        Script steady, other;
        Monitor monitor{h.io.get_executor(), {}, h.logger, {}, pool};
        monitor.supervise("failing", factory_of(failing));
        monitor.supervise("steady", factory_of(steady));
        monitor.supervise("other", factory_of(other));
        h.runner.run_for(10min);
        const auto stats = monitor.get_component_stats();
        CHECK(stats.at("failing").state == ComponentState::gave_up);
        CHECK(stats.at("steady").state == ComponentState::running);
        CHECK(stats.at("steady").restart_count == 0);
        monitor.restart("other");
        monitor.disable({"steady"});
        h.runner.run_for(1s);
        CHECK(other.starts.size() == 2);
        CHECK(other.max_live == 1);
        CHECK(steady.live == 0);
        CHECK(h.close(monitor) == 0s);
        CHECK(other.live == 0);
    }
}

TEST_CASE("A component's executor is its pool strand: shared beyond strand_pool_size, inherited by its children",
          "[task_monitor][strand]") {
    Harness h;
    Monitor monitor{h.io.get_executor(), {}, h.logger, {}, 2};
    std::map<std::string, asio::any_io_executor> seen;
    std::optional<bool> child_on_parent_strand;
    std::optional<bool> child_on_plain_executor;
    auto component = [&](std::string name) -> asio::awaitable<void> {
        const auto ex = co_await asio::this_coro::executor;
        seen[name] = ex;
        if (name == "a") {
            auto on_parent = [&, ex]() -> asio::awaitable<void> {
                child_on_parent_strand = (co_await asio::this_coro::executor) == ex;
            };
            auto on_plain = [&, ex]() -> asio::awaitable<void> {
                child_on_plain_executor = (co_await asio::this_coro::executor) == ex;
            };
            asio::co_spawn(ex, std::move(on_parent), asio::detached);
            asio::co_spawn(monitor.get_executor(), std::move(on_plain), asio::detached);
        }
        ManualTimer timer{ex, 1h};
        co_await timer.async_wait(asio::use_awaitable);
    };
    monitor.supervise("a", [&] { return component("a"); });
    monitor.supervise("b", [&] { return component("b"); });
    monitor.supervise("c", [&] { return component("c"); });
    h.runner.run_for(1s);
    REQUIRE(seen.size() == 3);
    CHECK(seen["a"] != monitor.get_executor());
    CHECK(monitor.get_executor() == h.io.get_executor());
    CHECK(seen["a"] != seen["b"]);
    CHECK(seen["c"] == seen["a"]);  // a pool of two strands: the third component shares the first one's
    REQUIRE(child_on_parent_strand.has_value());
    CHECK(*child_on_parent_strand);
    REQUIRE(child_on_plain_executor.has_value());
    CHECK_FALSE(*child_on_plain_executor);
    CHECK(h.close(monitor) == 0s);
}

TEST_CASE("Components on one pool strand never run at the same time on a two-thread io_context",
          "[task_monitor][strand][threads]") {
    asio::io_context io;
    auto work = asio::make_work_guard(io);
    std::atomic<int> inside{0};
    std::atomic<int> max_inside{0};
    std::atomic<int> steps{0};
    auto busy = [&]() -> asio::awaitable<void> {
        for (;;) {
            const int now = inside.fetch_add(1) + 1;
            int seen = max_inside.load();
            while (now > seen && !max_inside.compare_exchange_weak(seen, now)) {
            }
            for (int i = 0; i < 100; ++i) {
                std::this_thread::yield();  // stay inside long enough for the other thread to overlap
            }
            inside.fetch_sub(1);
            steps.fetch_add(1);
            co_await asio::post(co_await asio::this_coro::executor, asio::use_awaitable);
        }
    };
    auto logger = std::make_shared<spdlog::logger>("null", std::make_shared<spdlog::sinks::null_sink_mt>());
    std::thread t1{[&] { io.run(); }};
    std::thread t2{[&] { io.run(); }};
    {
        taskmon::TaskMonitor monitor{io.get_executor(), {}, logger, {}, 1};
        monitor.supervise("a", busy);
        monitor.supervise("b", busy);
        const auto deadline = std::chrono::steady_clock::now() + 60s;
        while (steps.load() < 200 && std::chrono::steady_clock::now() < deadline) {
            std::this_thread::sleep_for(1ms);
        }
        CHECK(steps.load() >= 200);
        std::promise<void> closed;
        asio::co_spawn(io, monitor.close(), [&](std::exception_ptr) { closed.set_value(); });
        closed.get_future().wait();
    }
    CHECK(max_inside.load() == 1);
    work.reset();
    t1.join();
    t2.join();
}

namespace {
/// Sleeps `d` of virtual time on a wait not bound to the coroutine's cancellation: close() can not end it.
asio::awaitable<void> ignores_cancellation_for(Duration d) {
    ManualTimer timer{co_await asio::this_coro::executor, d};
    co_await timer.async_wait(asio::bind_cancellation_slot(asio::cancellation_slot{}, asio::use_awaitable));
}
}  // namespace

TEST_CASE("task_monitor: destroying the io_context while close() waits frees the coroutine awaiting it") {
    // The coroutine owns the monitor and waits in its close(): without the context's shutdown destroying the
    // parked completion, coroutine → monitor → parked completion → coroutine would never be freed.
    std::weak_ptr<int> token_seen;
    {
        ManualTime time;
        asio::io_context io;
        VirtualTimeRunner runner{io, time};
        auto monitor = std::make_shared<Monitor>(
            io.get_executor(), taskmon::RestartPolicy{.shutdown_timeout = 1min},
            std::make_shared<spdlog::logger>("null", std::make_shared<spdlog::sinks::null_sink_mt>()));
        monitor->register_task("stubborn", ignores_cancellation_for(1h));
        auto token = std::make_shared<int>(0);
        token_seen = token;
        bool closed = false;
        asio::co_spawn(
            io,
            [monitor, token, &closed]() -> asio::awaitable<void> {
                co_await monitor->close();
                closed = true;
            },
            asio::detached);
        monitor.reset();
        token.reset();
        runner.run_for(10s);  // close() waits for the stubborn component (shutdown_timeout 1 min)
        REQUIRE_FALSE(closed);
        REQUIRE_FALSE(token_seen.expired());
    }
    CHECK(token_seen.expired());
}

// ---- async_close ---------------------------------------------------------------------------------------------

namespace {
/// Exits `cleanup` of virtual time after being cancelled (a component with some cleanup to do).
asio::awaitable<void> slow_to_stop(Duration cleanup, bool& exited) {
    ManualTimer timer{co_await asio::this_coro::executor, 24h};
    try {
        co_await timer.async_wait(asio::use_awaitable);
    } catch (const std::system_error&) {
    }
    co_await asio::this_coro::reset_cancellation_state();
    timer.expires_after(cleanup);
    co_await timer.async_wait(asio::use_awaitable);
    exited = true;
}

std::shared_ptr<spdlog::logger> null_logger() {
    return std::make_shared<spdlog::logger>("null", std::make_shared<spdlog::sinks::null_sink_mt>());
}
}  // namespace

TEST_CASE("async_close with a callback: called on the monitor's executor once the close completed",
          "[task_monitor][async_close]") {
    Harness h;
    bool exited = false;
    Monitor monitor{h.io.get_executor(), {}, h.logger};
    monitor.supervise("cleaner", [&] { return slow_to_stop(2s, exited); });
    h.runner.run_for(1s);
    const auto start = h.time.now();
    int calls = 0;
    bool on_executor = false;
    Duration took{};
    monitor.async_close([&] {
        ++calls;
        on_executor = h.io.get_executor().running_in_this_thread();
        took = h.time.now() - start;
    });
    CHECK(calls == 0);  // never inside the call
    CHECK_THROWS_AS(monitor.supervise("late", [&] { return slow_to_stop(0s, exited); }), std::logic_error);
    REQUIRE(h.runner.run_until([&] { return calls > 0; }, 1h));
    CHECK(calls == 1);
    CHECK(on_executor);
    CHECK(took == 2s);  // it waited for the component's cleanup
    CHECK(exited);
    CHECK(monitor.get_component_stats().at("cleaner").state == ComponentState::stopped);
    CHECK(h.lines_with("TaskMonitor closed components=1 unresponsive=0").size() == 1);
}

TEST_CASE("async_close is idempotent: every call completes once, with the first close, and later ones at once",
          "[task_monitor][async_close]") {
    Harness h;
    bool exited = false;
    Monitor monitor{h.io.get_executor(), {}, h.logger};
    monitor.supervise("cleaner", [&] { return slow_to_stop(3s, exited); });
    h.runner.run_for(1s);
    const auto start = h.time.now();
    std::vector<Duration> completed;
    const auto record = [&] { completed.push_back(h.time.now() - start); };
    monitor.async_close(record);
    monitor.async_close(record);
    asio::co_spawn(
        h.io,
        [&]() -> asio::awaitable<void> {
            co_await monitor.async_close(asio::use_awaitable);
            record();
        },
        asio::detached);
    asio::co_spawn(h.io, monitor.close(), [&](std::exception_ptr e) {
        CHECK_FALSE(e);
        record();
    });
    h.runner.run();
    CHECK(completed == std::vector<Duration>(4, Duration{3s}));
    CHECK(exited);

    // After the close: completes without waiting, still never inside the call.
    monitor.async_close(record);
    CHECK(completed.size() == 4);
    h.runner.run();
    REQUIRE(completed.size() == 5);
    CHECK(completed.back() == 3s);
    CHECK(h.lines_with("TaskMonitor closed").size() == 1);
}

TEST_CASE("async_close with asio::use_future, the io_context running on another thread",
          "[task_monitor][async_close][threads]") {
    asio::io_context io;
    auto work = asio::make_work_guard(io);
    std::thread runner{[&] { io.run(); }};
    std::atomic<int> live{0};
    auto steady = [&]() -> asio::awaitable<void> {
        ++live;
        struct Exit {
            std::atomic<int>& n;
            ~Exit() { --n; }
        } exit_guard{live};
        asio::steady_timer timer{co_await asio::this_coro::executor, 24h};
        co_await timer.async_wait(asio::use_awaitable);
    };
    {
        taskmon::TaskMonitor monitor{io.get_executor(), {}, null_logger()};
        monitor.supervise("a", steady);
        monitor.supervise("b", steady);
        std::future<void> closed = monitor.async_close(asio::use_future);
        REQUIRE(closed.wait_for(30s) == std::future_status::ready);
        CHECK_NOTHROW(closed.get());
        CHECK(live == 0);
        for (const auto& [name, stats] : monitor.get_component_stats()) {
            CHECK(stats.state == ComponentState::stopped);
        }
        // Idempotent: a second future is ready too.
        auto again = monitor.async_close(asio::use_future);
        CHECK(again.wait_for(30s) == std::future_status::ready);
    }
    work.reset();
    runner.join();
}

TEST_CASE("async_close with asio::use_future: destroying the io_context first breaks the promise",
          "[task_monitor][async_close]") {
    ManualTime time;
    Script steady;  // outlives the io_context, which destroys the component's frame
    std::future<void> closed;
    {
        asio::io_context io;
        Monitor monitor{io.get_executor(), {}, null_logger()};
        monitor.supervise("steady", factory_of(steady));
        closed = monitor.async_close(asio::use_future);
    }  // nobody ran the io_context
    REQUIRE(closed.wait_for(0s) == std::future_status::ready);
    try {
        closed.get();
        FAIL("the future should report a broken promise");
    } catch (const std::future_error& e) {
        CHECK(e.code() == std::future_errc::broken_promise);
    }
}

// ---- unlimited_restart_attempts ---------------------------------------------------------------------------

TEST_CASE("unlimited_restart_attempts never gives up, however many restarts fall in the window",
          "[task_monitor]") {
    Harness h;
    auto failing = failing_now(500);
    Monitor monitor{h.io.get_executor(),
                    {.max_restart_attempts = taskmon::unlimited_restart_attempts, .restart_window = 1h,
                     .base_backoff = 1s, .max_backoff = 1s},
                    h.logger};
    monitor.supervise("crashy", factory_of(failing));
    REQUIRE(h.runner.run_until([&] { return failing.starts.size() == 501; }, 1h));
    const auto stats = monitor.get_component_stats().at("crashy");
    CHECK(stats.state == ComponentState::running);
    CHECK(stats.restart_count == 500);
    CHECK(stats.failure_count == 500);
    CHECK(stats.restarts_in_window == 500);  // all within the hour: any finite limit below 500 would have refused
    CHECK(h.lines_with("exceeded restart limit").empty());
    CHECK(h.close(monitor) == 0s);
}

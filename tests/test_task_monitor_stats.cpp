// TaskMonitor tests: component stats, log lines and the documented API.
// Everything time-dependent runs in virtual time (ManualClock); the scripted components are in
// support/monitor_harness.hpp.
#include <taskmon/task_monitor.hpp>
#include <taskmon/testing/manual_clock.hpp>

#include "monitor_harness.hpp"
#include "taskmon_catch.hpp"

#include <asio/co_spawn.hpp>
#include <asio/io_context.hpp>
#include <asio/this_coro.hpp>
#include <asio/use_awaitable.hpp>

#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <type_traits>

using namespace taskmon_test;  // Harness, Monitor, Script, scripted, factory_of, the common taskmon names ...

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
    CHECK(s.restarts_in_window == 0);  // decided, not happened: it counts once it happens at 12 s
    REQUIRE(s.next_restart_at);

    h.runner.run_for(2s);
    auto after = monitor.get_component_stats().at("perception");
    CHECK(after.restarts_in_window == 1);
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
    CHECK(restarted[1] ==
          "info|Successfully restarted component perception component=perception new_task_id=3 "
          "restart_count=2");
    const auto failed = h.lines_with("Component perception failed");
    REQUIRE(failed.size() == 2);
    CHECK(failed[0] ==
          "error|Component perception failed component=perception task_id=1 failure_count=1 "
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
    CHECK(script.starts == 3);
    CHECK(monitor.get_component_stats().at("c").state == ComponentState::running);
    REQUIRE_NOTHROW(monitor.restart("steady"));
    REQUIRE_NOTHROW(runner.run_for(1s));
    CHECK(steady.starts == 2);
    bool closed = false;
    asio::co_spawn(io, monitor.close(), [&](std::exception_ptr) { closed = true; });
    REQUIRE_NOTHROW(runner.run_until([&] { return closed; }, 1h));
    CHECK(closed);
    CHECK(time.elapsed() == 1min + 1s);  // close did not wait for a deadline
}

TEST_CASE("The documented API compiles and runs as written", "[task_monitor]") {
    Harness h;
    int runs = 0;
    auto perception_loop = [&]() -> asio::awaitable<void> {
        ++runs;
        ManualTimer timer{co_await asio::this_coro::executor, 1h};
        co_await timer.async_wait(asio::use_awaitable);
    };
    Monitor monitor{h.io.get_executor(), {.max_restart_attempts = 5, .base_backoff = 2s, .max_backoff = 60s}, h.logger};
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

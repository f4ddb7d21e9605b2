// taskmon/separate_compilation.hpp: a TaskMonitor and a Supervisor on the steady clock built with
// TASKMON_SEPARATE_COMPILATION (this test links taskmon::compiled in every preset), so their machinery comes from
// the library. Every call and every completion-token path (callback, use_awaitable, use_future) runs against the
// compiled instantiation (a clock of one's own: test_custom_clock.cpp). Backoffs are zero: nothing here waits for
// time to pass.
#include <taskmon/agent/supervisor.hpp>
#include <taskmon/task_monitor.hpp>

#if !defined(TASKMON_SEPARATE_COMPILATION)
#error "test_separate_compilation must be built with TASKMON_SEPARATE_COMPILATION (link taskmon::compiled)"
#endif

#include <asio/co_spawn.hpp>
#include <asio/executor_work_guard.hpp>
#include <asio/io_context.hpp>
#include <asio/steady_timer.hpp>
#include <asio/this_coro.hpp>
#include <asio/use_awaitable.hpp>
#include <asio/use_future.hpp>
#include <spdlog/logger.h>

#include <chrono>
#include <future>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

#include "own_clock.hpp"
#include "taskmon_catch.hpp"

using namespace std::chrono_literals;

using namespace taskmon_test;

TEST_CASE("separate compilation: a steady-clock TaskMonitor restarts and closes with a callback") {
    asio::io_context io;
    taskmon::TaskMonitor monitor{io.get_executor(), immediate(), quiet()};
    std::vector<taskmon::MonitorEventKind> kinds;
    auto subscription = monitor.subscribe([&](const taskmon::MonitorEvent& e) { kinds.push_back(e.kind); });
    auto starts = std::make_shared<int>(0);
    monitor.supervise("flaky", [starts] { return fail_first(starts, 1); });
    run_until(io, [&] { return *starts == 2; });
    auto stats = monitor.get_component_stats().at("flaky");
    CHECK(stats.state == taskmon::ComponentState::running);
    CHECK(stats.failure_count == 1);
    CHECK(stats.restart_count == 1);
    CHECK(monitor.policy().max_restart_attempts == 1);
    CHECK(monitor.get_executor() == asio::any_io_executor{io.get_executor()});
    CHECK_THROWS_AS(monitor.supervise("flaky", [starts] { return fail_first(starts, 0); }), std::invalid_argument);

    int closed = 0;
    monitor.async_close([&] { ++closed; });
    monitor.async_close([&] { ++closed; });  // a second close completes with the first
    io.run();
    CHECK(closed == 2);
    CHECK(kinds.back() == taskmon::MonitorEventKind::closed);
    CHECK_THROWS_AS(monitor.restart("flaky"), std::logic_error);
}

TEST_CASE("separate compilation: escalation and remove_and_wait through use_awaitable") {
    asio::io_context io;
    taskmon::TaskMonitor monitor{io.get_executor(), immediate(taskmon::GiveUpMode::escalate), quiet()};
    std::optional<taskmon::MonitorEvent> escalation;
    bool removed = false;
    std::optional<std::error_code> after_close;
    asio::co_spawn(
        io,
        [&]() -> asio::awaitable<void> {
            escalation = co_await monitor.async_wait_escalation();
            co_await monitor.remove_and_wait("steady");  // throws unless it exited when asked
            removed = true;
            co_await monitor.close();
            try {
                co_await monitor.async_wait_escalation();
            } catch (const std::system_error& e) {
                after_close = e.code();
            }
        },
        [](std::exception_ptr e) { REQUIRE_FALSE(e); });
    auto failing = std::make_shared<int>(0);
    auto steady = std::make_shared<int>(0);
    monitor.supervise("doomed", [failing] { return fail_first(failing, 100); });
    monitor.supervise("steady", [steady] { return fail_first(steady, 0); });
    io.run();

    REQUIRE(escalation);
    CHECK(escalation->kind == taskmon::MonitorEventKind::escalated);
    CHECK(escalation->component == "doomed");
    CHECK(*failing == 2);  // one restart allowed, the second failure gives up
    CHECK(removed);
    CHECK(monitor.get_component_stats().count("steady") == 0);
    REQUIRE(after_close);
    CHECK(*after_close == asio::error::operation_aborted);
}

TEST_CASE("separate compilation: async_close with use_future while another thread runs the io_context") {
    asio::io_context io;
    auto work = asio::make_work_guard(io);
    std::thread runner{[&] { io.run(); }};
    std::future<void> closed;
    {
        taskmon::TaskMonitor monitor{io.get_executor(), immediate(), quiet()};
        auto starts = std::make_shared<int>(0);
        monitor.supervise("worker", [starts] { return fail_first(starts, 0); });
        closed = monitor.async_close(asio::use_future);
        CHECK(closed.wait_for(60s) == std::future_status::ready);
    }
    work.reset();
    runner.join();
    CHECK_NOTHROW(closed.get());
}

TEST_CASE("separate compilation: a steady-clock Supervisor runs an agent to its end") {
    asio::io_context io;
    std::vector<int> acted;
    auto agent = counting_agent<std::chrono::steady_clock>(io, acted);
    const auto history = run_agent(io, agent);
    CHECK(history.status == taskmon::AgentStatus::completed);
    CHECK(history.final_result() == "counted to 3");
    REQUIRE(history.steps.size() == 3);
    CHECK(history.steps[0].actions.at(0).action == 1);
    CHECK(acted == std::vector<int>{1, 2});
    CHECK(agent.get_component_stats().size() == 6);
    CHECK_THROWS_AS(agent.run(), std::logic_error);  // once only, at once
}

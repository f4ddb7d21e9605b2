// Helpers of the tests that run TaskMonitor and Supervisor against the separately compiled library
// (test_separate_compilation.cpp) and on a clock of their own (test_custom_clock.cpp, test_any_clock.cpp). This
// header does not include taskmon/custom_clock.hpp: a test that uses OwnClock includes it (or its former name)
// itself, which is what those tests check. Backoffs and capture intervals are zero: nothing waits for time to pass.
#pragma once

#include <taskmon/agent/supervisor.hpp>
#include <taskmon/task_monitor.hpp>

#include <asio/co_spawn.hpp>
#include <asio/io_context.hpp>
#include <asio/steady_timer.hpp>
#include <asio/this_coro.hpp>
#include <asio/use_awaitable.hpp>
#include <spdlog/logger.h>

#include <chrono>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "taskmon_catch.hpp"

// Not in an anonymous namespace: g++ 12 warns (-Wsubobject-linkage) about coroutine frames of header templates
// instantiated with a type from one.
namespace taskmon_test {

/// A clock of one's own: the steady clock's time under another type, so nothing of taskmon::compiled fits it.
struct OwnClock {
    using rep = std::chrono::nanoseconds::rep;
    using period = std::chrono::nanoseconds::period;
    using duration = std::chrono::nanoseconds;
    using time_point = std::chrono::time_point<OwnClock>;
    static constexpr bool is_steady = true;
    static time_point now() noexcept { return time_point{std::chrono::steady_clock::now().time_since_epoch()}; }
};

/// A logger without sinks.
inline std::shared_ptr<spdlog::logger> quiet() { return std::make_shared<spdlog::logger>("separate"); }

/// One restart allowed, at once.
inline taskmon::RestartPolicy immediate(taskmon::GiveUpMode mode = taskmon::GiveUpMode::stop) {
    using namespace std::chrono_literals;
    return {.max_restart_attempts = 1, .base_backoff = 0ms, .max_backoff = 0ms, .give_up_mode = mode};
}

/// Fails on its first `failures` starts, then runs until cancelled.
inline asio::awaitable<void> fail_first(std::shared_ptr<int> starts, int failures) {
    if (++*starts <= failures) throw std::runtime_error("planned failure");
    asio::steady_timer forever{co_await asio::this_coro::executor, asio::steady_timer::time_point::max()};
    co_await forever.async_wait(asio::use_awaitable);
}

/// An agent whose step n acts with n, done at step 3.
template <typename Clock>
taskmon::Supervisor<int, int, std::string, Clock> counting_agent(asio::io_context& io, std::vector<int>& acted) {
    using namespace std::chrono_literals;
    taskmon::AgentSettings settings;
    settings.capture_interval = 0ms;
    return {io.get_executor(),
            {.perceive = [n = 0]() mutable -> asio::awaitable<int> { co_return ++n; },
             .decide = [](const int&, const auto& context) -> asio::awaitable<taskmon::Decision<int>> {
                 const auto step = static_cast<int>(context.step);
                 if (step == 3) co_return taskmon::Decision<int>::done("counted to " + std::to_string(step));
                 co_return taskmon::Decision<int>::act({step});
             },
             .act = [&acted](const int& action) -> asio::awaitable<taskmon::ActionResult> {
                 acted.push_back(action);
                 co_return taskmon::ActionResult::ok();
             }},
            settings,
            {},
            quiet()};
}

/// Runs `agent` on `io` to its end and returns the history.
template <typename Agent>
typename Agent::HistoryType run_agent(asio::io_context& io, Agent& agent) {
    std::optional<typename Agent::HistoryType> history;
    asio::co_spawn(
        io, [&]() -> asio::awaitable<void> { history = co_await agent.run(); },
        [](std::exception_ptr e) { REQUIRE_FALSE(e); });
    io.run();
    REQUIRE(history);
    return *history;
}

/// Runs `io` until `done()` or it runs out of work.
template <typename Done>
void run_until(asio::io_context& io, Done done) {
    while (!done() && io.run_one() > 0) {
    }
}

/// A TaskMonitor on OwnClock restarts a component that failed once, then closes: its members must be defined in
/// the calling translation unit (taskmon/custom_clock.hpp), since taskmon::compiled has none for OwnClock.
inline void restart_and_close_on_own_clock() {
    asio::io_context io;
    taskmon::BasicTaskMonitor<OwnClock> monitor{io.get_executor(), immediate(), quiet()};
    auto starts = std::make_shared<int>(0);
    monitor.supervise("flaky", [starts] { return fail_first(starts, 1); });
    run_until(io, [&] { return *starts == 2; });
    CHECK(monitor.get_component_stats().at("flaky").restart_count == 1);
    bool closed = false;
    monitor.async_close([&] { closed = true; });
    io.run();
    CHECK(closed);
}

}  // namespace taskmon_test

// Tests for taskmon/state_wait.hpp: async_wait_ready(), async_wait_state() and async_wait_group_state() complete
// once the state holds, at their timeout, at the monitor's close or at a cancellation. In virtual time.
#include <taskmon/state_wait.hpp>
#include <taskmon/task_monitor.hpp>

#include "asio_use_future.hpp"
#include "monitor_harness.hpp"

#include <asio/bind_cancellation_slot.hpp>
#include <asio/bind_executor.hpp>
#include <asio/cancellation_signal.hpp>
#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/executor_work_guard.hpp>
#include <asio/experimental/as_tuple.hpp>
#include <asio/experimental/awaitable_operators.hpp>
#include <asio/steady_timer.hpp>
#include <asio/strand.hpp>
#include <asio/this_coro.hpp>
#include <spdlog/sinks/null_sink.h>

#include <chrono>
#include <optional>
#include <stdexcept>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

using namespace std::chrono_literals;
using taskmon::ComponentContext;
using taskmon::ComponentState;
using taskmon::GroupState;
using taskmon::RestartPolicy;
using taskmon_test::Harness;
using taskmon_test::Monitor;
using taskmon_test::sleep_for;

namespace {

/// How a wait ended and when, in virtual time since the harness started.
struct Outcome {
    std::optional<std::error_code> ec;
    std::chrono::nanoseconds at{};
};

/// A completion handler recording into `out`.
auto record(Harness& h, Outcome& out) {
    return [&h, &out](std::error_code ec) {
        out.ec = ec;
        out.at = h.time.elapsed();
    };
}

/// A component that calls ready() after `delay`, then runs until cancelled.
auto ready_after(std::chrono::nanoseconds delay) {
    return [delay](ComponentContext ctx) -> asio::awaitable<void> {
        co_await sleep_for(delay);
        ctx.ready();
        co_await sleep_for(24h);
    };
}

const RestartPolicy needs_ready{.startup_timeout = 1min};

}  // namespace

TEST_CASE("state wait: async_wait_ready completes when the component calls ready(), not before",
          "[state_wait][task_monitor]") {
    Harness h;
    Monitor monitor{h.io.get_executor(), RestartPolicy{}, h.logger};
    monitor.supervise("db", ready_after(3s), needs_ready);
    Outcome out;
    taskmon::async_wait_ready(monitor, "db", 10s, record(h, out));
    CHECK_FALSE(out.ec);  // never inside the call
    h.runner.run_for(2s);
    CHECK_FALSE(out.ec);
    h.runner.run_for(2s);
    REQUIRE(out.ec);
    CHECK_FALSE(*out.ec);
    CHECK(out.at == 3s);
    h.close(monitor);
}

TEST_CASE("state wait: a state that already holds completes at once, through the handler's executor",
          "[state_wait][task_monitor]") {
    Harness h;
    Monitor monitor{h.io.get_executor(), RestartPolicy{}, h.logger};
    monitor.supervise("svc", []() -> asio::awaitable<void> { co_await sleep_for(24h); });  // ready at start
    Outcome out;
    auto strand = asio::make_strand(h.io);
    bool on_strand = false;
    taskmon::async_wait_ready(monitor, "svc", 10s, asio::bind_executor(strand, [&](std::error_code ec) {
                                  on_strand = strand.running_in_this_thread();
                                  record(h, out)(ec);
                              }));
    CHECK_FALSE(out.ec);
    h.runner.run_for(0s);
    REQUIRE(out.ec);
    CHECK_FALSE(*out.ec);
    CHECK(out.at == 0s);
    CHECK(on_strand);
    h.close(monitor);
}

TEST_CASE("state wait: the handler's executor has work until the completion runs there", "[state_wait][task_monitor]") {
    Harness h;
    Monitor monitor{h.io.get_executor(), RestartPolicy{}, h.logger};
    monitor.supervise("db", ready_after(3s), needs_ready);
    asio::io_context other;  // where the handler runs: nothing else keeps it busy
    Outcome out;
    taskmon::async_wait_ready(monitor, "db", 10s, asio::bind_executor(other, record(h, out)));
    other.poll();
    CHECK_FALSE(other.stopped());  // waiting, not out of work
    h.runner.run_for(5s);
    CHECK_FALSE(out.ec);  // posted to `other`, not run yet
    other.poll();
    REQUIRE(out.ec);
    CHECK_FALSE(*out.ec);
    CHECK(other.stopped());  // the work ended with the completion
    h.close(monitor);
}

TEST_CASE("state wait: bad input throws and starts nothing", "[state_wait][task_monitor]") {
    Harness h;
    Monitor monitor{h.io.get_executor(), RestartPolicy{}, h.logger};
    Outcome out;
    CHECK_THROWS_WITH(taskmon::async_wait_ready(monitor, "", 1s, record(h, out)),
                      "async_wait_ready: component or group name must not be empty");
    CHECK_THROWS_WITH(taskmon::async_wait_state(monitor, "a", ComponentState::running, -1s, record(h, out)),
                      "async_wait_state: the timeout must not be negative");
    CHECK_THROWS_AS(taskmon::async_wait_group_state(monitor, "g\n", GroupState::running, 1s, record(h, out)),
                    std::invalid_argument);
    h.runner.run_for(1s);
    CHECK_FALSE(out.ec);
    h.close(monitor);
}

TEST_CASE("state wait: the timeout runs on the monitor's clock and completes with timed_out",
          "[state_wait][task_monitor]") {
    Harness h;
    Monitor monitor{h.io.get_executor(), RestartPolicy{}, h.logger};
    monitor.supervise("slow", ready_after(30s), needs_ready);
    Outcome out;
    taskmon::async_wait_ready(monitor, "slow", 5s, record(h, out));
    h.runner.run_for(1min);
    REQUIRE(out.ec);
    CHECK(*out.ec == asio::error::timed_out);
    CHECK(out.at == 5s);
    // With use_awaitable the timeout is thrown as a std::system_error.
    bool threw = false;
    asio::co_spawn(
        h.io,
        [&]() -> asio::awaitable<void> {
            try {
                co_await taskmon::async_wait_state(monitor, "slow", ComponentState::stopped, 1s);
            } catch (const std::system_error& e) {
                threw = e.code() == asio::error::timed_out;
            }
        },
        asio::detached);
    h.runner.run_for(2s);
    CHECK(threw);
    h.close(monitor);
}

TEST_CASE("state wait: a name supervised later is waited for; a component's end state too",
          "[state_wait][task_monitor]") {
    Harness h;
    Monitor monitor{h.io.get_executor(), RestartPolicy{}, h.logger};
    Outcome ready;
    Outcome done;
    taskmon::async_wait_ready(monitor, "late", 10s, record(h, ready));
    taskmon::async_wait_state(monitor, "job", ComponentState::completed, 10s, record(h, done));
    h.runner.run_for(1s);
    monitor.supervise("late", ready_after(1s), needs_ready);
    monitor.supervise("job", []() -> asio::awaitable<void> { co_await sleep_for(4s); });
    h.runner.run_for(10s);
    REQUIRE(ready.ec);
    CHECK_FALSE(*ready.ec);
    CHECK(ready.at == 2s);
    REQUIRE(done.ec);
    CHECK_FALSE(*done.ec);
    CHECK(done.at == 5s);
    h.close(monitor);
}

TEST_CASE("state wait: a group's state", "[state_wait][task_monitor][group]") {
    Harness h;
    Monitor monitor{h.io.get_executor(), RestartPolicy{}, h.logger};
    monitor.supervise_group("link", {{.name = "socket", .context_factory = ready_after(2s), .policy = needs_ready},
                                     {.name = "reader", .context_factory = ready_after(1s), .policy = needs_ready}});
    Outcome out;
    taskmon::async_wait_group_state(monitor, "link", GroupState::running, 10s, record(h, out));
    h.runner.run_for(10s);
    REQUIRE(out.ec);
    CHECK_FALSE(*out.ec);
    CHECK(out.at == 3s);  // the reader starts once the socket is ready (2 s); the group runs once it is ready too
    h.close(monitor);
}

TEST_CASE("state wait: the monitor's close or a cancellation ends a wait with operation_aborted",
          "[state_wait][task_monitor][close]") {
    Harness h;
    Monitor monitor{h.io.get_executor(), RestartPolicy{}, h.logger};
    monitor.supervise("never", ready_after(24h), needs_ready);
    Outcome closed;
    Outcome cancelled;
    taskmon::async_wait_ready(monitor, "never", 1h, record(h, closed));
    asio::cancellation_signal signal;
    taskmon::async_wait_ready(monitor, "never", 1h, asio::bind_cancellation_slot(signal.slot(), record(h, cancelled)));
    h.runner.run_for(1s);
    signal.emit(asio::cancellation_type::terminal);
    h.runner.run_for(1s);
    REQUIRE(cancelled.ec);
    CHECK(*cancelled.ec == asio::error::operation_aborted);
    CHECK(cancelled.at == 1s);
    CHECK_FALSE(closed.ec);
    h.close(monitor);
    REQUIRE(closed.ec);
    CHECK(*closed.ec == asio::error::operation_aborted);
    // After the close a wait ends at once: with success if the state holds, else aborted.
    Outcome after;
    Outcome stopped;
    taskmon::async_wait_state(monitor, "never", ComponentState::running, 1h, record(h, after));
    taskmon::async_wait_state(monitor, "never", ComponentState::stopped, 1h, record(h, stopped));
    h.runner.run_for(1s);
    REQUIRE(after.ec);
    CHECK(*after.ec == asio::error::operation_aborted);
    REQUIRE(stopped.ec);
    CHECK_FALSE(*stopped.ec);
}

TEST_CASE("state wait: from a thread outside the io_context's, on a monitor run by two threads",
          "[state_wait][task_monitor][threads]") {
    // Real time, bounded: the component is ready at once; only the timeout case waits its 50 ms.
    asio::io_context io;
    auto work = asio::make_work_guard(io);
    taskmon::TaskMonitor monitor{
        io.get_executor(), RestartPolicy{.startup_timeout = 1h},
        std::make_shared<spdlog::logger>("state_wait", std::make_shared<spdlog::sinks::null_sink_mt>())};
    std::vector<std::thread> runners;
    for (int i = 0; i < 2; ++i) {
        runners.emplace_back([&io] { io.run(); });
    }
    for (int round = 0; round < 20; ++round) {
        const auto name = "db-" + std::to_string(round);
        auto ready = taskmon::async_wait_ready(monitor, name, std::chrono::seconds{30}, asio::use_future);
        monitor.supervise(name, [](ComponentContext ctx) -> asio::awaitable<void> {
            ctx.ready();
            asio::steady_timer timer{co_await asio::this_coro::executor, std::chrono::hours{1}};
            co_await timer.async_wait(asio::use_awaitable);
        });
        CHECK_NOTHROW(ready.get());
    }
    auto never = taskmon::async_wait_state(monitor, "db-0", ComponentState::stopped, std::chrono::milliseconds{50},
                                           asio::use_future);
    try {
        never.get();
        FAIL("a wait for a state that never came completed");
    } catch (const std::system_error& e) {
        CHECK(e.code() == asio::error::timed_out);
    }
    monitor.async_close(asio::use_future).get();
    work.reset();
    for (auto& t : runners) {
        t.join();
    }
}

TEST_CASE("state wait: the non-throwing form with as_tuple, as in main()", "[state_wait][task_monitor]") {
    Harness h;
    Monitor monitor{h.io.get_executor(), RestartPolicy{}, h.logger};
    monitor.supervise("db", ready_after(1s), needs_ready);
    std::optional<std::error_code> seen;
    asio::co_spawn(
        h.io,
        [&]() -> asio::awaitable<void> {
            auto [ec] = co_await taskmon::async_wait_ready(monitor, "db", 5s,
                                                           asio::experimental::as_tuple(asio::use_awaitable));
            seen = ec;
        },
        asio::detached);
    h.runner.run_for(2s);
    REQUIRE(seen);
    CHECK_FALSE(*seen);
    h.close(monitor);
}

TEST_CASE("state wait: the loser of an awaitable_operators race is cancelled, and so ends",
          "[state_wait][task_monitor]") {
    using namespace asio::experimental::awaitable_operators;
    Harness h;
    Monitor monitor{h.io.get_executor(), RestartPolicy{}, h.logger};
    monitor.supervise("never", ready_after(24h), needs_ready);
    std::optional<std::size_t> winner;
    asio::co_spawn(
        h.io,
        [&]() -> asio::awaitable<void> {
            const auto result = co_await (taskmon::async_wait_ready(monitor, "never", 1h) || sleep_for(2s));
            winner = result.index();
        },
        asio::detached);
    h.runner.run_for(3s);
    REQUIRE(winner);
    CHECK(*winner == 1);  // the sleep; the wait was cancelled and completed, or the race would not have ended
    h.close(monitor);
}

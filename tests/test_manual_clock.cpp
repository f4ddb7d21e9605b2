// Tests for taskmon/testing/manual_clock.hpp: virtual timers and the autojump runner (the clock and its time:
// test_manual_time.cpp).
#include <taskmon/testing/manual_clock.hpp>

#include "taskmon_catch.hpp"

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/error.hpp>
#include <asio/post.hpp>
#include <asio/use_awaitable.hpp>

#include <chrono>
#include <functional>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

using namespace std::chrono_literals;
using taskmon::testing::ManualClock;
using taskmon::testing::ManualTime;
using taskmon::testing::ManualTimer;
using taskmon::testing::VirtualTimeRunner;

TEST_CASE("The runner jumps over an hour-long timer without sleeping", "[manual_clock]") {
    ManualTime time;
    asio::io_context io;
    ManualTimer timer{io, 1h};
    bool fired = false;
    timer.async_wait([&](std::error_code ec) { fired = !ec; });
    VirtualTimeRunner runner{io, time};
    const auto real_start = std::chrono::steady_clock::now();
    runner.run();
    CHECK(fired);
    CHECK(time.elapsed() == 1h);
    CHECK(io.stopped());
    // Not a speed test: only asserts that the hour was not slept in real time.
    CHECK(std::chrono::steady_clock::now() - real_start < 10min);
}

TEST_CASE("A coroutine sees the exact virtual timestamps of its sleeps", "[manual_clock]") {
    ManualTime time;
    asio::io_context io;
    std::vector<ManualClock::duration> wakeups;
    asio::co_spawn(
        io,
        [&]() -> asio::awaitable<void> {
            ManualTimer timer{co_await asio::this_coro::executor};
            for (auto delay : {2s, 4s, 8s, 16s, 32s, 60s, 60s}) {
                timer.expires_after(delay);
                co_await timer.async_wait(asio::use_awaitable);
                wakeups.push_back(time.elapsed());
            }
        },
        asio::detached);
    VirtualTimeRunner{io, time}.run();
    CHECK(wakeups == std::vector<ManualClock::duration>{2s, 6s, 14s, 30s, 62s, 122s, 182s});
}

TEST_CASE("Concurrent timers fire in deadline order", "[manual_clock]") {
    ManualTime time;
    asio::io_context io;
    std::vector<int> order;
    std::vector<std::unique_ptr<ManualTimer>> timers;
    for (int i : {3, 1, 2}) {
        timers.push_back(std::make_unique<ManualTimer>(io, std::chrono::seconds{i}));
        timers.back()->async_wait([&, i](std::error_code) {
            order.push_back(i);
            CHECK(time.elapsed() == std::chrono::seconds{i});
        });
    }
    VirtualTimeRunner{io, time}.run();
    CHECK(order == std::vector<int>{1, 2, 3});
}

TEST_CASE("run_for stops at its deadline and fires timers due exactly then", "[manual_clock]") {
    ManualTime time;
    asio::io_context io;
    ManualTimer timer{io, 10s};
    int fired = 0;
    timer.async_wait([&](std::error_code ec) { fired += ec ? 0 : 1; });
    VirtualTimeRunner runner{io, time};
    runner.run_for(5s);
    CHECK(fired == 0);
    CHECK(time.elapsed() == 5s);
    runner.run_for(5s);
    CHECK(fired == 1);
    CHECK(time.elapsed() == 10s);
    // With no timers left, time still advances to the requested point.
    runner.run_for(1h);
    CHECK(time.elapsed() == 1h + 10s);
}

TEST_CASE("A cancelled timer does not pull virtual time forward", "[manual_clock]") {
    ManualTime time;
    asio::io_context io;
    ManualTimer far{io, 1h};
    ManualTimer near{io, 1s};
    std::error_code far_result;
    far.async_wait([&](std::error_code ec) { far_result = ec; });
    near.async_wait([&](std::error_code) { far.cancel(); });
    VirtualTimeRunner{io, time}.run();
    CHECK(far_result == asio::error::operation_aborted);
    CHECK(time.elapsed() == 1s);
}

TEST_CASE("run_until a predicate stops as soon as it holds", "[manual_clock]") {
    ManualTime time;
    asio::io_context io;
    int ticks = 0;
    asio::co_spawn(
        io,
        [&]() -> asio::awaitable<void> {
            ManualTimer timer{co_await asio::this_coro::executor};
            for (;;) {
                timer.expires_after(1min);
                co_await timer.async_wait(asio::use_awaitable);
                ++ticks;
            }
        },
        asio::detached);
    VirtualTimeRunner runner{io, time};
    CHECK(runner.run_until([&] { return ticks == 30; }));
    CHECK(time.elapsed() == 30min);
    CHECK_FALSE(runner.run_until([&] { return ticks == 1000; }, 10min));
    CHECK(ticks == 40);
    CHECK(time.elapsed() == 40min);
}

TEST_CASE("run returns when only non-virtual work is pending", "[manual_clock]") {
    ManualTime time;
    asio::io_context io;
    auto guard = asio::make_work_guard(io);
    int ran = 0;
    asio::post(io, [&] { ++ran; });
    VirtualTimeRunner runner{io, time};
    CHECK(runner.run() == 1);
    CHECK(ran == 1);
    CHECK_FALSE(io.stopped());
    CHECK(time.elapsed() == 0s);
}

TEST_CASE("The runner throws instead of hanging on a program that never goes idle", "[manual_clock]") {
    ManualTime time;
    asio::io_context io;
    std::function<void()> spin = [&] { asio::post(io, spin); };
    asio::post(io, spin);
    VirtualTimeRunner runner{io, time, VirtualTimeRunner::Limits{.max_steps = 1000}};
    CHECK_THROWS_AS(runner.run(), std::runtime_error);
    io.stop();
}

TEST_CASE("The runner can be reused after the context ran out of work", "[manual_clock]") {
    ManualTime time;
    asio::io_context io;
    VirtualTimeRunner runner{io, time};
    ManualTimer first{io, 1s};
    first.async_wait([](std::error_code) {});
    runner.run();
    CHECK(io.stopped());
    ManualTimer second{io, 2s};
    bool fired = false;
    second.async_wait([&](std::error_code ec) { fired = !ec; });
    runner.run();
    CHECK(fired);
    CHECK(time.elapsed() == 3s);
}

TEST_CASE("A timer set to the end of time is never jumped to", "[manual_clock]") {
    ManualTime time;
    asio::io_context io;
    ManualTimer never{io, ManualClock::time_point::max()};
    ManualTimer soon{io, 3s};
    bool never_fired = false;
    bool soon_fired = false;
    never.async_wait([&](std::error_code ec) { never_fired = !ec; });
    soon.async_wait([&](std::error_code ec) { soon_fired = !ec; });
    VirtualTimeRunner runner{io, time};
    runner.run();
    CHECK(soon_fired);
    CHECK_FALSE(never_fired);
    CHECK(time.elapsed() == 3s);
    never.cancel();
    runner.run();
    CHECK(io.stopped());
}

TEST_CASE(
    "A ManualTimer stays out of the reactor: under io.run() a pending wait ends when cancelled, a due one at once",
    "[manual_clock]") {
    ManualTime time;
    asio::io_context io;
    ManualTimer due{io, ManualClock::now()};
    ManualTimer pending{io, 1h};
    std::error_code due_result = asio::error::would_block, pending_result = asio::error::would_block;
    due.async_wait([&](std::error_code ec) { due_result = ec; });
    pending.async_wait([&](std::error_code ec) { pending_result = ec; });
    // Another thread runs the context: it runs the due wait's handler, then waits (no virtual time moves there)
    // until this thread cancels the pending one.
    std::thread runner{[&] { io.run(); }};
    asio::post(io, [&] { pending.cancel(); });
    runner.join();
    CHECK(due_result == std::error_code{});
    CHECK(pending_result == asio::error::operation_aborted);
    CHECK(time.elapsed() == 0s);
}

TEST_CASE("A blocking wait on a ManualTimer returns if its time has come and is refused otherwise", "[manual_clock]") {
    ManualTime time;
    asio::io_context io;
    ManualTimer timer{io, 1s};
    std::error_code ec;
    timer.wait(ec);  // nothing on this thread could move the time to it
    CHECK(ec == asio::error::operation_not_supported);
    time.advance(1s);
    timer.wait(ec);
    CHECK_FALSE(ec);
}

TEST_CASE("The runner fires a timer that became due when a handler moved the time", "[manual_clock]") {
    ManualTime time;
    asio::io_context io;
    ManualTimer timer{io, 30s};
    std::vector<std::string> order;
    timer.async_wait([&](std::error_code ec) { order.push_back(ec ? "cancelled" : "fired"); });
    asio::post(io, [&] {
        time.advance(30s);  // as a test hook may do
        order.push_back("advanced");
    });
    VirtualTimeRunner runner{io, time};
    CHECK(runner.poll() == 2);  // the timer fired without a jump: the handler had moved the time to it
    CHECK(order == std::vector<std::string>{"advanced", "fired"});
    CHECK(time.elapsed() == 30s);
}

// CallDeadline and bounded_call, in virtual time: one timer per loop bounds every call the loop makes.
#include <taskmon/detail/call_deadline.hpp>
#include <taskmon/testing/manual_clock.hpp>

#include <chrono>
#include <exception>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <system_error>

#include <asio/bind_cancellation_slot.hpp>
#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/error.hpp>
#include <asio/io_context.hpp>
#include <asio/post.hpp>
#include <asio/strand.hpp>
#include <asio/this_coro.hpp>
#include <asio/use_awaitable.hpp>

#include "taskmon_catch.hpp"

using namespace std::chrono_literals;
using taskmon::testing::ManualClock;
using taskmon::testing::ManualTimer;
using Deadline = taskmon::detail::CallDeadline<ManualClock>;

namespace {

asio::awaitable<void> sleep_for(ManualClock::duration d) {
    ManualTimer timer{co_await asio::this_coro::executor, d};
    co_await timer.async_wait(asio::use_awaitable);
}

asio::awaitable<int> slow_value(ManualClock::duration d, int value) {
    co_await sleep_for(d);
    co_return value;
}

/// A loop coroutine bound to a CallDeadline on a strand, driven in virtual time.
struct Loop {
    taskmon::testing::ManualTime time;
    asio::io_context io;
    taskmon::testing::VirtualTimeRunner runner{io, time};
    asio::strand<asio::io_context::executor_type> strand{io.get_executor()};
    std::shared_ptr<Deadline> deadline = std::make_shared<Deadline>(strand);
    bool finished = false;
    std::exception_ptr error;

    template <typename Body>
    void start(Body body) {
        asio::co_spawn(strand, std::move(body),
                       asio::bind_cancellation_slot(deadline->slot(), [this](std::exception_ptr e) {
                           error = e;
                           finished = true;
                           deadline->finish();
                       }));
    }
    bool finish() {
        return runner.run_until([this] { return finished; });
    }
};

}  // namespace

TEST_CASE("call_deadline: calls that finish in time return their value and share one timer wait") {
    Loop loop;
    int sum = 0;
    loop.start([&]() -> asio::awaitable<void> {
        for (int i = 0; i < 100; ++i) {
            sum += co_await taskmon::detail::bounded_call<int>(*loop.deadline, 10s, "call timed out",
                                                               [i] { return slow_value(1ms, i); });
        }
    });
    REQUIRE(loop.finish());
    CHECK_FALSE(loop.error);
    CHECK(sum == 4950);
    // 100 calls of 1 ms under a 10 s timeout: the timer was armed once, not once per call.
    CHECK(loop.deadline->waits_started() == 1);
}

TEST_CASE("call_deadline: a call past its timeout is cancelled and throws DeadlineExceeded and the loop goes on") {
    Loop loop;
    std::optional<std::string> timeout_message;
    ManualClock::time_point thrown_at{};
    int after = 0;
    loop.start([&]() -> asio::awaitable<void> {
        try {
            co_await taskmon::detail::bounded_call<int>(*loop.deadline, 2s, "slow() timed out after 2s",
                                                        [] { return slow_value(1h, 1); });
        } catch (const taskmon::detail::DeadlineExceeded& e) {  // a TimeoutError the caller can tell from a call's own
            timeout_message = e.what();
            thrown_at = ManualClock::now();
        }
        // The cancellation that ended the call does not stick to the loop: its next waits and calls work.
        co_await sleep_for(5s);
        after =
            co_await taskmon::detail::bounded_call<int>(*loop.deadline, 2s, "again", [] { return slow_value(1s, 7); });
    });
    const auto start = loop.time.now();
    REQUIRE(loop.finish());
    CHECK_FALSE(loop.error);
    CHECK(timeout_message == std::optional<std::string>{"slow() timed out after 2s"});
    CHECK(thrown_at - start == 2s);
    CHECK(after == 7);
}

TEST_CASE("call_deadline: a call that ignores cancellation is still reported as timed out when it returns") {
    Loop loop;
    bool timed_out = false;
    loop.start([&]() -> asio::awaitable<void> {
        try {
            co_await taskmon::detail::bounded_call<int>(*loop.deadline, 1s, "stubborn", []() -> asio::awaitable<int> {
                try {
                    co_await sleep_for(1h);
                } catch (const std::system_error&) {
                    // swallows the cancellation and returns a value anyway
                }
                co_return 42;
            });
        } catch (const taskmon::TimeoutError&) {
            timed_out = true;
        }
    });
    REQUIRE(loop.finish());
    CHECK(timed_out);
}

TEST_CASE("call_deadline: a deadline passing between calls never cancels the loop's own waits") {
    Loop loop;
    loop.start([&]() -> asio::awaitable<void> {
        co_await taskmon::detail::bounded_call<int>(*loop.deadline, 1s, "quick", [] { return slow_value(1ms, 1); });
        co_await sleep_for(1h);  // the timer armed for the call fires in here: nothing may happen
        co_await taskmon::detail::bounded_call<int>(*loop.deadline, 1s, "quick", [] { return slow_value(1ms, 2); });
    });
    REQUIRE(loop.finish());
    CHECK_FALSE(loop.error);
}

TEST_CASE("call_deadline: an exception of the call propagates unchanged") {
    Loop loop;
    std::string what;
    loop.start([&]() -> asio::awaitable<void> {
        try {
            co_await taskmon::detail::bounded_call<int>(*loop.deadline, 1s, "t", []() -> asio::awaitable<int> {
                co_await sleep_for(10ms);
                throw std::runtime_error("sensor broke");
            });
        } catch (const std::runtime_error& e) {
            what = e.what();
        }
    });
    REQUIRE(loop.finish());
    CHECK(what == "sensor broke");
}

TEST_CASE("call_deadline: cancellation from outside ends the call as cancelled, never as a timeout") {
    Loop loop;
    loop.start([&]() -> asio::awaitable<void> {
        co_await taskmon::detail::bounded_call<int>(*loop.deadline, 10s, "t", [] { return slow_value(1h, 1); });
    });
    loop.runner.run_for(1s);
    asio::post(loop.strand, [&] { loop.deadline->cancel(asio::cancellation_type::terminal); });
    REQUIRE(loop.finish());
    REQUIRE(loop.error);
    bool aborted = false;
    try {
        std::rethrow_exception(loop.error);
    } catch (const std::system_error& e) {
        aborted = e.code() == asio::error::operation_aborted;
    } catch (...) {
    }
    CHECK(aborted);
    CHECK(loop.deadline->cancelled());
    CHECK(loop.time.elapsed() < 2s);
}

TEST_CASE("call_deadline: a call with a shorter timeout than the pending wait re-arms the timer") {
    Loop loop;
    bool timed_out = false;
    loop.start([&]() -> asio::awaitable<void> {
        co_await taskmon::detail::bounded_call<int>(*loop.deadline, 1h, "long", [] { return slow_value(1ms, 1); });
        try {
            co_await taskmon::detail::bounded_call<int>(*loop.deadline, 1s, "short", [] { return slow_value(1h, 2); });
        } catch (const taskmon::TimeoutError&) {
            timed_out = true;
        }
    });
    const auto start = loop.time.now();
    REQUIRE(loop.finish());
    CHECK(timed_out);
    CHECK(loop.time.now() - start < 2s);
    CHECK(loop.deadline->waits_started() == 2);
}

#include <taskmon/detail/bounded_queue.hpp>

#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include <asio/bind_cancellation_slot.hpp>
#include <asio/cancellation_signal.hpp>
#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/executor_work_guard.hpp>
#include <asio/experimental/as_tuple.hpp>
#include <asio/io_context.hpp>
#include <asio/use_awaitable.hpp>

#include "taskmon_catch.hpp"

namespace {

using Queue = taskmon::detail::BoundedQueue<std::string>;

struct PushOutcome {
    asio::error_code ec;
    bool done = false;
};
struct PopOutcome {
    asio::error_code ec;
    std::string item;
    bool done = false;
};

auto on_push(PushOutcome& out) {
    return [&out](asio::error_code ec) {
        out.ec = ec;
        out.done = true;
    };
}
auto on_pop(PopOutcome& out) {
    return [&out](asio::error_code ec, std::string item) {
        out.ec = ec;
        out.item = std::move(item);
        out.done = true;
    };
}

}  // namespace

TEST_CASE("bounded_queue: zero capacity is rejected") {
    asio::io_context io;
    CHECK_THROWS_AS(Queue(io.get_executor(), 0), std::invalid_argument);
}

TEST_CASE("bounded_queue: try_push and try_pop keep FIFO order up to capacity") {
    asio::io_context io;
    Queue q{io.get_executor(), 2};
    std::string a = "a", b = "b", c = "c";
    CHECK(q.try_push(a));
    CHECK(q.try_push(b));
    CHECK_FALSE(q.try_push(c));
    CHECK(c == "c");  // a refused item is left untouched
    CHECK(q.size() == 2);
    CHECK(q.try_pop() == std::optional<std::string>{"a"});
    CHECK(q.try_pop() == std::optional<std::string>{"b"});
    CHECK_FALSE(q.try_pop().has_value());
}

TEST_CASE("bounded_queue: a push into a full queue waits until a pop makes room (backpressure)") {
    asio::io_context io;
    Queue q{io.get_executor(), 1};
    PushOutcome first, second;
    q.async_push("1", on_push(first));
    q.async_push("2", on_push(second));
    io.poll();
    CHECK(first.done);
    CHECK_FALSE(first.ec);
    CHECK_FALSE(second.done);
    CHECK(q.waiting_pushers() == 1);
    CHECK(q.size() == 1);

    CHECK(q.try_pop() == std::optional<std::string>{"1"});
    CHECK(q.size() == 1);  // the waiting push was admitted at once
    io.poll();
    CHECK(second.done);
    CHECK_FALSE(second.ec);
    CHECK(q.try_pop() == std::optional<std::string>{"2"});
}

TEST_CASE("bounded_queue: a pop on an empty queue waits and receives the next push directly") {
    asio::io_context io;
    Queue q{io.get_executor(), 1};
    PopOutcome pop;
    q.async_pop(on_pop(pop));
    io.poll();
    CHECK_FALSE(pop.done);
    std::string item = "x";
    CHECK(q.try_push(item));
    CHECK(q.empty());       // handed to the waiting pop, not queued
    CHECK_FALSE(pop.done);  // never inline
    io.poll();
    CHECK(pop.done);
    CHECK(pop.item == "x");
}

TEST_CASE("bounded_queue: cancelling a waiting push discards its item and keeps the others in order") {
    asio::io_context io;
    Queue q{io.get_executor(), 1};
    std::string head = "head";
    REQUIRE(q.try_push(head));
    asio::cancellation_signal signal;
    PushOutcome cancelled, kept;
    q.async_push("cancelled", asio::bind_cancellation_slot(signal.slot(), on_push(cancelled)));
    q.async_push("kept", on_push(kept));
    signal.emit(asio::cancellation_type::terminal);
    io.poll();
    CHECK(cancelled.ec == asio::error::operation_aborted);
    CHECK(q.waiting_pushers() == 1);
    CHECK(q.try_pop() == std::optional<std::string>{"head"});
    CHECK(q.try_pop() == std::optional<std::string>{"kept"});
    io.poll();
    CHECK(kept.done);
    CHECK_FALSE(kept.ec);
}

TEST_CASE("bounded_queue: cancelling a waiting pop completes it with operation_aborted and loses no item") {
    asio::io_context io;
    Queue q{io.get_executor(), 2};
    asio::cancellation_signal signal;
    PopOutcome pop;
    q.async_pop(asio::bind_cancellation_slot(signal.slot(), on_pop(pop)));
    signal.emit(asio::cancellation_type::terminal);
    io.poll();
    CHECK(pop.ec == asio::error::operation_aborted);
    std::string item = "survives";
    CHECK(q.try_push(item));
    CHECK(q.size() == 1);  // not handed to the cancelled pop
}

TEST_CASE("bounded_queue: close fails waiting pushes, ends pops at eof, keeps queued items drainable") {
    asio::io_context io;
    auto busy = asio::make_work_guard(io);  // keep poll() working after the queue's own work is gone
    Queue q{io.get_executor(), 1};
    PushOutcome waiting_push, late_push;
    q.async_push("queued", [](asio::error_code) {});
    q.async_push("blocked", on_push(waiting_push));
    io.poll();
    q.close();
    q.async_push("late", on_push(late_push));
    io.poll();
    CHECK(waiting_push.ec == asio::error::broken_pipe);
    CHECK(late_push.ec == asio::error::broken_pipe);
    std::string refused = "refused";
    CHECK_FALSE(q.try_push(refused));

    PopOutcome queued, after;
    q.async_pop(on_pop(queued));
    io.poll();
    REQUIRE(queued.done);
    CHECK_FALSE(queued.ec);
    CHECK(queued.item == "queued");
    q.async_pop(on_pop(after));
    io.poll();
    REQUIRE(after.done);
    CHECK(after.ec == asio::error::eof);
}

TEST_CASE("bounded_queue: close wakes a waiting pop with eof") {
    asio::io_context io;
    Queue q{io.get_executor(), 1};
    PopOutcome pop;
    q.async_pop(on_pop(pop));
    io.poll();
    q.close();
    io.poll();
    CHECK(pop.ec == asio::error::eof);
}

TEST_CASE("bounded_queue: drain returns queued items in order and admits waiting pushes") {
    asio::io_context io;
    Queue q{io.get_executor(), 2};
    PushOutcome third;
    q.async_push("1", [](asio::error_code) {});
    q.async_push("2", [](asio::error_code) {});
    q.async_push("3", on_push(third));
    io.poll();
    CHECK(q.drain() == std::vector<std::string>{"1", "2"});
    io.poll();
    CHECK(third.done);
    CHECK_FALSE(third.ec);
    CHECK(q.drain() == std::vector<std::string>{"3"});
}

TEST_CASE("bounded_queue: a producer coroutine is paced by a slower consumer coroutine") {
    asio::io_context io;
    Queue q{io.get_executor(), 2};
    std::vector<std::string> consumed;
    std::size_t max_size = 0;
    asio::co_spawn(
        io,
        [&]() -> asio::awaitable<void> {
            for (int i = 0; i < 20; ++i) {
                co_await q.async_push(std::to_string(i), asio::use_awaitable);
                max_size = std::max(max_size, q.size());
            }
            q.close();
        },
        asio::detached);
    asio::co_spawn(
        io,
        [&]() -> asio::awaitable<void> {
            for (;;) {
                auto [ec, item] = co_await q.async_pop(asio::experimental::as_tuple(asio::use_awaitable));
                if (ec) break;
                consumed.push_back(std::move(item));
            }
        },
        asio::detached);
    io.run();
    REQUIRE(consumed.size() == 20);
    for (int i = 0; i < 20; ++i) CHECK(consumed[static_cast<std::size_t>(i)] == std::to_string(i));
    CHECK(max_size <= 2);
}

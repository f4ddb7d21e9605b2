#include <taskmon/detail/latest_slot.hpp>

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <asio/bind_cancellation_slot.hpp>
#include <asio/cancellation_signal.hpp>
#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/io_context.hpp>
#include <asio/redirect_error.hpp>
#include <asio/use_awaitable.hpp>

#include "taskmon_catch.hpp"

namespace {

using TimePoint = std::chrono::steady_clock::time_point;
using Slot = taskmon::detail::LatestSlot<std::string, TimePoint>;
using Snapshot = Slot::Snapshot;

TimePoint at(int ms) { return TimePoint{} + std::chrono::milliseconds{ms}; }

struct Outcome {
    asio::error_code ec;
    Snapshot snapshot;
    bool done = false;
};

auto recorder(Outcome& out) {
    return [&out](asio::error_code ec, Snapshot s) {
        out.ec = ec;
        out.snapshot = std::move(s);
        out.done = true;
    };
}

}  // namespace

TEST_CASE("latest_slot: publish numbers values in order and keeps only the latest") {
    asio::io_context io;
    Slot slot{io.get_executor()};
    CHECK(slot.sequence() == 0);
    CHECK_FALSE(slot.latest().has_value());
    CHECK(slot.publish("a", at(1)) == 1);
    CHECK(slot.publish("b", at(2)) == 2);
    CHECK(slot.publish("c", at(3)) == 3);
    REQUIRE(slot.latest().has_value());
    CHECK(slot.latest()->value == "c");
    CHECK(slot.latest()->sequence == 3);
    CHECK(slot.latest()->captured_at == at(3));
    CHECK(slot.try_take_newer(2)->value == "c");
    CHECK_FALSE(slot.try_take_newer(3).has_value());
}

TEST_CASE("latest_slot: a waiter past the current sequence waits and then gets the freshest value") {
    asio::io_context io;
    Slot slot{io.get_executor()};
    slot.publish("old", at(1));
    Outcome out;
    slot.async_wait_newer(1, recorder(out));
    io.poll();
    CHECK_FALSE(out.done);
    CHECK(slot.waiting() == 1);
    slot.publish("new", at(5));
    CHECK_FALSE(out.done);  // never completed inline
    slot.publish("newest", at(6));
    io.poll();
    REQUIRE(out.done);
    CHECK_FALSE(out.ec);
    // Completed by the first publish, which copied that value.
    CHECK(out.snapshot.value == "new");
    CHECK(out.snapshot.sequence == 2);
    CHECK(out.snapshot.captured_at == at(5));
    CHECK(slot.waiting() == 0);
}

TEST_CASE("latest_slot: a wait for a value already newer completes at once, but posted") {
    asio::io_context io;
    Slot slot{io.get_executor()};
    slot.publish("a", at(1));
    slot.publish("b", at(2));
    Outcome out;
    slot.async_wait_newer(0, recorder(out));
    CHECK_FALSE(out.done);
    CHECK(slot.waiting() == 0);
    io.poll();
    REQUIRE(out.done);
    CHECK(out.snapshot.value == "b");  // the freshest, not the first unseen
    CHECK(out.snapshot.sequence == 2);
}

TEST_CASE("latest_slot: waiters past different sequences complete only when the slot passes them") {
    asio::io_context io;
    Slot slot{io.get_executor()};
    Outcome past0, past1;
    slot.async_wait_newer(0, recorder(past0));
    slot.async_wait_newer(1, recorder(past1));
    slot.publish("one", at(1));
    io.poll();
    CHECK(past0.done);
    CHECK(past0.snapshot.sequence == 1);
    CHECK_FALSE(past1.done);
    slot.publish("two", at(2));
    io.poll();
    CHECK(past1.done);
    CHECK(past1.snapshot.value == "two");
}

TEST_CASE("latest_slot: cancelling a waiter completes it with operation_aborted and leaves others") {
    asio::io_context io;
    Slot slot{io.get_executor()};
    asio::cancellation_signal signal;
    Outcome cancelled, other;
    slot.async_wait_newer(0, asio::bind_cancellation_slot(signal.slot(), recorder(cancelled)));
    slot.async_wait_newer(0, recorder(other));
    signal.emit(asio::cancellation_type::terminal);
    CHECK(slot.waiting() == 1);
    io.poll();
    REQUIRE(cancelled.done);
    CHECK(cancelled.ec == asio::error::operation_aborted);
    CHECK_FALSE(other.done);
    signal.emit(asio::cancellation_type::terminal);  // a late emit touches nothing
    slot.publish("x", at(1));
    io.poll();
    CHECK(other.done);
    CHECK_FALSE(other.ec);
}

TEST_CASE("latest_slot: partial and total cancellation also end a wait") {
    for (auto type : {asio::cancellation_type::partial, asio::cancellation_type::total}) {
        asio::io_context io;
        Slot slot{io.get_executor()};
        asio::cancellation_signal signal;
        Outcome out;
        slot.async_wait_newer(0, asio::bind_cancellation_slot(signal.slot(), recorder(out)));
        signal.emit(type);
        io.poll();
        CHECK(out.ec == asio::error::operation_aborted);
    }
}

TEST_CASE("latest_slot: close ends current and later waits with eof, publish becomes a no-op") {
    asio::io_context io;
    Slot slot{io.get_executor()};
    slot.publish("kept", at(1));
    Outcome waiting, later;
    slot.async_wait_newer(1, recorder(waiting));
    slot.close();
    slot.async_wait_newer(0, recorder(later));
    io.poll();
    CHECK(waiting.ec == asio::error::eof);
    CHECK(later.ec == asio::error::eof);
    CHECK(slot.publish("ignored", at(2)) == 0);
    CHECK(slot.latest()->value == "kept");
}

TEST_CASE("latest_slot: coroutine consumer with use_awaitable sees a conflated stream") {
    asio::io_context io;
    Slot slot{io.get_executor()};
    std::vector<std::uint64_t> seen;
    asio::co_spawn(
        io,
        [&]() -> asio::awaitable<void> {
            std::uint64_t last = 0;
            while (last < 5) {
                auto snap = co_await slot.async_wait_newer(last, asio::use_awaitable);
                seen.push_back(snap.sequence);
                last = snap.sequence;
            }
        },
        asio::detached);
    io.poll();
    slot.publish("1", at(1));
    slot.publish("2", at(2));  // the consumer was already woken with 1; 2 waits in the slot
    slot.publish("3", at(3));  // replaces 2: 2 is never seen
    io.poll();
    slot.publish("4", at(4));  // completes the waiting consumer with 4 at once
    slot.publish("5", at(5));  // held until the consumer waits past 4 again
    io.poll();
    CHECK(seen == std::vector<std::uint64_t>{1, 3, 4, 5});
    CHECK(slot.latest()->value == "5");
}

TEST_CASE("latest_slot: a pending waiter keeps the io_context busy and destroying the slot is safe") {
    asio::io_context io;
    Outcome out;
    {
        Slot slot{io.get_executor()};
        slot.async_wait_newer(0, recorder(out));
        CHECK(io.poll() == 0);
        CHECK_FALSE(io.stopped());  // outstanding work while parked
    }
    // The parked handler was destroyed, not invoked; the work it held is released.
    CHECK(io.poll() == 0);
    CHECK(io.stopped());
    CHECK_FALSE(out.done);
}

#include <taskmon/detail/condition_wait.hpp>
#include <taskmon/testing/manual_clock.hpp>

#include <chrono>
#include <exception>
#include <memory>
#include <optional>
#include <system_error>

#include <asio/any_io_executor.hpp>
#include <asio/bind_cancellation_slot.hpp>
#include <asio/cancellation_signal.hpp>
#include <asio/co_spawn.hpp>
#include <asio/io_context.hpp>
#include <asio/post.hpp>
#include <asio/strand.hpp>
#include <asio/this_coro.hpp>

#include "taskmon_catch.hpp"

using namespace std::chrono_literals;
using Clock = taskmon::testing::ManualClock;
using taskmon::testing::ManualTime;
using taskmon::testing::VirtualTimeRunner;

namespace {

using Strand = asio::strand<asio::any_io_executor>;

/// The state the waits read, owning its ConditionWait as the Supervisor's state does.
struct Owner {
    explicit Owner(Strand s) : strand(s), waits(std::move(s)) {}
    Strand strand;
    taskmon::detail::ConditionWait<Clock> waits;
    int value = 0;
};

struct Outcome {
    bool done = false;
    std::exception_ptr error;
    std::optional<Clock::time_point> at;
};

/// Waits until value >= target (or the deadline). A function, not a lambda: its parameters live in its frame.
asio::awaitable<void> wait_body(Owner* o, std::weak_ptr<const void> weak, int target,
                                std::optional<Clock::time_point> deadline) {
    // A coroutine passes only terminal cancellation by default: let every type through to the wait.
    co_await asio::this_coro::reset_cancellation_state(asio::enable_total_cancellation());
    // Named: no temporary with a destructor inside the co_await expression (g++ 12).
    auto wait = o->waits.wait_until(
        std::move(weak), [o, target] { return o->value >= target; }, deadline);
    co_await std::move(wait);
}

/// Spawns on the owner's strand a wait until value >= target (or the deadline), recording how it ended.
void wait_for(const std::shared_ptr<Owner>& owner, int target, Outcome& out,
              std::optional<Clock::time_point> deadline = std::nullopt, asio::cancellation_slot slot = {}) {
    asio::co_spawn(owner->strand, wait_body(owner.get(), owner, target, deadline),
                   asio::bind_cancellation_slot(slot, [&out](std::exception_ptr e) {
                       out.done = true;
                       out.error = e;
                       out.at = Clock::now();
                   }));
}

std::shared_ptr<Owner> make_owner(asio::io_context& io) {
    return std::make_shared<Owner>(asio::make_strand(asio::any_io_executor{io.get_executor()}));
}

}  // namespace

TEST_CASE("condition_wait: a wait whose predicate already holds returns without parking") {
    asio::io_context io;
    ManualTime time;
    auto owner = make_owner(io);
    owner->value = 3;
    Outcome out;
    wait_for(owner, 2, out);
    io.poll();
    CHECK(out.done);
    CHECK_FALSE(out.error);
    CHECK(owner->waits.parked() == 0);
}

TEST_CASE("condition_wait: a wait parks until a notify finds its predicate true") {
    asio::io_context io;
    ManualTime time;
    auto owner = make_owner(io);
    Outcome out;
    wait_for(owner, 2, out);
    io.poll();
    CHECK_FALSE(out.done);
    CHECK(owner->waits.parked() == 1);

    owner->value = 2;  // a change without notify() wakes nobody
    io.poll();
    CHECK_FALSE(out.done);

    owner->value = 1;
    asio::post(owner->strand, [&] { owner->waits.notify(); });
    io.poll();
    CHECK_FALSE(out.done);  // notified, but the predicate does not hold
    CHECK(owner->waits.parked() == 1);

    asio::post(owner->strand, [&] {
        owner->value = 2;
        owner->waits.notify();
        CHECK_FALSE(out.done);  // resumed later, never inside notify()
    });
    io.poll();
    CHECK(out.done);
    CHECK_FALSE(out.error);
    CHECK(owner->waits.parked() == 0);
}

TEST_CASE("condition_wait: notify wakes exactly the waits whose predicate holds") {
    asio::io_context io;
    ManualTime time;
    auto owner = make_owner(io);
    Outcome one, two, three;
    wait_for(owner, 1, one);
    wait_for(owner, 2, two);
    wait_for(owner, 1, three);
    io.poll();
    REQUIRE(owner->waits.parked() == 3);
    asio::post(owner->strand, [&] {
        owner->value = 1;
        owner->waits.notify();
    });
    io.poll();
    CHECK(one.done);
    CHECK_FALSE(two.done);
    CHECK(three.done);
    CHECK(owner->waits.parked() == 1);
}

TEST_CASE("condition_wait: a deadline ends the wait at that virtual time") {
    asio::io_context io;
    ManualTime time;
    VirtualTimeRunner runner{io, time};
    auto owner = make_owner(io);
    Outcome out;
    const auto deadline = time.now() + 5s;
    wait_for(owner, 1, out, deadline);
    runner.run();
    CHECK(out.done);
    CHECK_FALSE(out.error);
    CHECK(out.at == deadline);
    CHECK(owner->value == 0);
}

TEST_CASE("condition_wait: a deadline already passed returns at once") {
    asio::io_context io;
    ManualTime time{Clock::time_point{10s}};
    auto owner = make_owner(io);
    Outcome out;
    wait_for(owner, 1, out, Clock::time_point{10s});
    io.poll();
    CHECK(out.done);
    CHECK(owner->waits.parked() == 0);
}

TEST_CASE("condition_wait: a predicate holding before the deadline ends the wait early") {
    asio::io_context io;
    ManualTime time;
    VirtualTimeRunner runner{io, time};
    auto owner = make_owner(io);
    Outcome out;
    wait_for(owner, 1, out, time.now() + 5s);
    runner.run_for(2s);
    CHECK_FALSE(out.done);
    asio::post(owner->strand, [&] {
        owner->value = 1;
        owner->waits.notify();
    });
    runner.run();  // the deadline's timer is cancelled with the wait: the run ends without going to 5 s
    CHECK(out.done);
    CHECK(out.at == Clock::time_point{2s});
    CHECK(time.now() == Clock::time_point{2s});
}

TEST_CASE("condition_wait: cancellation of any type throws operation_aborted") {
    const auto type =
        GENERATE(asio::cancellation_type::terminal, asio::cancellation_type::partial, asio::cancellation_type::total);
    asio::io_context io;
    ManualTime time;
    auto owner = make_owner(io);
    asio::cancellation_signal signal;
    Outcome out;
    wait_for(owner, 1, out, std::nullopt, signal.slot());
    io.poll();
    REQUIRE(owner->waits.parked() == 1);
    asio::post(owner->strand, [&] { signal.emit(type); });
    io.poll();
    REQUIRE(out.done);
    REQUIRE(out.error);
    try {
        std::rethrow_exception(out.error);
    } catch (const std::system_error& e) {
        CHECK(e.code() == asio::error::operation_aborted);
    }
    CHECK(owner->waits.parked() == 0);
}

TEST_CASE("condition_wait: destroying the owner destroys its parked waits without resuming them") {
    asio::io_context io;
    ManualTime time;
    VirtualTimeRunner runner{io, time};
    auto owner = make_owner(io);
    Outcome plain, timed;
    wait_for(owner, 1, plain);
    wait_for(owner, 1, timed, time.now() + 5s);
    io.poll();
    REQUIRE(owner->waits.parked() == 2);
    owner.reset();  // the timed wait's timer is destroyed with it; its handler finds no owner to notify
    runner.run();
    CHECK_FALSE(plain.done);
    CHECK_FALSE(timed.done);
    CHECK(io.stopped());
}

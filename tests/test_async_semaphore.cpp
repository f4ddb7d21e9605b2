#include <taskmon/async_semaphore.hpp>
#include <taskmon/testing/manual_clock.hpp>

#include <asio/bind_cancellation_slot.hpp>
#include <asio/bind_executor.hpp>
#include <asio/cancellation_signal.hpp>
#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/executor_work_guard.hpp>
#include <asio/experimental/as_tuple.hpp>
#include <asio/experimental/awaitable_operators.hpp>
#include <asio/io_context.hpp>
#include <asio/post.hpp>
#include <asio/steady_timer.hpp>
#include <asio/strand.hpp>
#include <asio/this_coro.hpp>
#include <asio/use_awaitable.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <exception>
#include <future>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <system_error>
#include <thread>
#include <utility>
#include <variant>
#include <vector>

#include "enum_names.hpp"
#include "taskmon_catch.hpp"

namespace Catch {
template <>
struct StringMaker<taskmon::SemaphoreStats> {
    static std::string convert(const taskmon::SemaphoreStats& s) {
        return "{capacity=" + std::to_string(s.capacity) + " available=" + std::to_string(s.available) +
               " in_use=" + std::to_string(s.in_use) + " waiting=" + std::to_string(s.waiting) + "}";
    }
};
}  // namespace Catch

using namespace std::chrono_literals;
using asio::experimental::awaitable_operators::operator||;
using taskmon::AsyncSemaphore;
using taskmon::SemaphorePermit;
using taskmon::SemaphoreStats;

namespace {

SemaphoreStats make_stats(std::size_t capacity, std::size_t available, std::size_t in_use, std::size_t waiting) {
    SemaphoreStats s;
    s.capacity = capacity;
    s.available = available;
    s.in_use = in_use;
    s.waiting = waiting;
    return s;
}

// Tracks how many permits are held at once and the largest such number.
struct InFlight {
    std::atomic<int> now{0};
    std::atomic<int> max{0};

    void enter() {
        const int n = now.fetch_add(1) + 1;
        int seen = max.load();
        while (n > seen && !max.compare_exchange_weak(seen, n)) {
        }
    }
    void leave() { now.fetch_sub(1); }
};

asio::awaitable<void> yield_once() { co_await asio::post(co_await asio::this_coro::executor, asio::use_awaitable); }

// Runs `ctx` on `threads` threads until it runs out of work.
void run_on_threads(asio::io_context& ctx, int threads) {
    std::vector<std::thread> pool;
    for (int i = 0; i < threads; ++i) {
        pool.emplace_back([&ctx] { ctx.run(); });
    }
    for (auto& t : pool) {
        t.join();
    }
}

void rethrow_if(const std::exception_ptr& e) {
    if (e) {
        std::rethrow_exception(e);
    }
}

}  // namespace

TEST_CASE("AsyncSemaphore: construction validates the count and starts with every permit available") {
    CHECK_THROWS_AS(AsyncSemaphore{0}, std::invalid_argument);
    CHECK_THROWS_AS(AsyncSemaphore{AsyncSemaphore::max_count() + 1}, std::invalid_argument);
    AsyncSemaphore sem{3};
    CHECK(sem.stats() == make_stats(3, 3, 0, 0));
    AsyncSemaphore largest{AsyncSemaphore::max_count()};
    CHECK(largest.stats().available == AsyncSemaphore::max_count());
}

TEST_CASE("AsyncSemaphore: try_acquire takes permits until none is left and permits give them back") {
    AsyncSemaphore sem{2};
    auto a = sem.try_acquire();
    auto b = sem.try_acquire();
    REQUIRE(a);
    REQUIRE(b);
    CHECK(a->owns_permit());
    CHECK(a->semaphore() == &sem);
    CHECK_FALSE(sem.try_acquire());
    CHECK(sem.stats() == make_stats(2, 0, 2, 0));

    a->release();
    CHECK_FALSE(a->owns_permit());
    a->release();  // releasing an empty permit changes nothing
    CHECK(sem.stats() == make_stats(2, 1, 1, 0));

    SemaphorePermit moved = std::move(*b);
    CHECK_FALSE(b->owns_permit());
    CHECK(moved.owns_permit());
    CHECK(sem.stats().in_use == 1);
    {
        SemaphorePermit assigned;
        CHECK_FALSE(assigned);
        assigned = std::move(moved);
        CHECK(sem.stats().in_use == 1);
    }
    CHECK(sem.stats() == make_stats(2, 2, 0, 0));

    // Move-assigning onto a holding permit releases the old one.
    auto c = sem.try_acquire();
    auto d = sem.try_acquire();
    *c = std::move(*d);
    CHECK(sem.stats().in_use == 1);
}

TEST_CASE("AsyncSemaphore: co_await acquire() takes a free permit without suspending") {
    asio::io_context ctx;
    AsyncSemaphore sem{1};
    bool done = false;
    asio::co_spawn(
        ctx,
        [&]() -> asio::awaitable<void> {
            auto permit = co_await sem.acquire();
            CHECK(permit.owns_permit());
            CHECK(sem.stats() == make_stats(1, 0, 1, 0));
            done = true;
        },
        asio::detached);
    // One handler: the co_spawn start. A suspension would need a second one.
    CHECK(ctx.run_one() == 1);
    CHECK(done);
    CHECK(sem.stats() == make_stats(1, 1, 0, 0));
}

TEST_CASE("AsyncSemaphore: async_acquire never completes inline, even with a free permit") {
    asio::io_context ctx;
    AsyncSemaphore sem{1};
    std::optional<std::error_code> result;
    SemaphorePermit held;
    sem.async_acquire(asio::bind_executor(ctx, [&](std::error_code ec, SemaphorePermit p) {
        result = ec;
        held = std::move(p);
    }));
    CHECK_FALSE(result);
    CHECK(sem.stats() == make_stats(1, 0, 1, 0));  // granted at once, delivered through the executor
    ctx.run();
    REQUIRE(result);
    CHECK_FALSE(*result);
    CHECK(held.owns_permit());
}

TEST_CASE("AsyncSemaphore: async_acquire completes through any executor kind") {
    AsyncSemaphore sem{1};
    auto gate = sem.try_acquire();

    // No associated executor: the completion runs on the system executor, on another thread.
    struct SystemResult {
        std::error_code ec;
        bool owned = false;
        std::thread::id thread;
    };
    std::promise<SystemResult> system_done;
    sem.async_acquire([&](std::error_code ec, SemaphorePermit p) {
        SystemResult r{ec, p.owns_permit(), std::this_thread::get_id()};
        p.release();  // before the test thread goes on
        system_done.set_value(r);
    });
    gate.reset();
    const SystemResult system_result = system_done.get_future().get();
    CHECK_FALSE(system_result.ec);
    CHECK(system_result.owned);
    CHECK(system_result.thread != std::this_thread::get_id());

    // A legacy (Networking TS style) executor: io_context::strand.
    asio::io_context ctx;
    asio::io_context::strand legacy{ctx};
    auto gate2 = sem.try_acquire();
    REQUIRE(gate2);
    bool in_strand = false;
    sem.async_acquire(asio::bind_executor(legacy, [&](std::error_code ec, SemaphorePermit p) {
        CHECK_FALSE(ec);
        CHECK(p.owns_permit());
        in_strand = legacy.running_in_this_thread();
    }));
    gate2.reset();
    ctx.run();
    CHECK(in_strand);

    // as_tuple: errors as values instead of exceptions.
    asio::io_context ctx2;
    auto gate3 = sem.try_acquire();
    REQUIRE(gate3);
    std::error_code code;
    asio::cancellation_signal signal;
    asio::co_spawn(
        ctx2,
        [&]() -> asio::awaitable<void> {
            auto [ec, permit] = co_await sem.async_acquire(asio::experimental::as_tuple(asio::use_awaitable));
            code = ec;
            CHECK_FALSE(permit.owns_permit());
        },
        asio::bind_cancellation_slot(signal.slot(), asio::detached));
    ctx2.poll();
    signal.emit(asio::cancellation_type::terminal);
    ctx2.run();
    CHECK(code == asio::error::operation_aborted);
}

TEST_CASE("AsyncSemaphore: waiters get permits in arrival order") {
    asio::io_context ctx;
    AsyncSemaphore sem{1};
    auto gate = sem.try_acquire();
    std::vector<int> order;
    for (int i = 0; i < 10; ++i) {
        asio::co_spawn(
            ctx,
            [&, i]() -> asio::awaitable<void> {
                auto permit = co_await sem.acquire();
                order.push_back(i);
                co_await yield_once();
            },
            asio::detached);
        ctx.poll();  // waiter i is queued before waiter i + 1 starts
    }
    CHECK(sem.stats() == make_stats(1, 0, 1, 10));
    gate.reset();
    ctx.run();
    CHECK(order == std::vector<int>{0, 1, 2, 3, 4, 5, 6, 7, 8, 9});
    CHECK(sem.stats() == make_stats(1, 1, 0, 0));
}

TEST_CASE("AsyncSemaphore: a released permit belongs to the first waiter, so try_acquire fails meanwhile") {
    asio::io_context ctx;
    AsyncSemaphore sem{1};
    auto gate = sem.try_acquire();
    bool waiter_resumed = false;
    asio::co_spawn(
        ctx,
        [&]() -> asio::awaitable<void> {
            auto permit = co_await sem.acquire();
            waiter_resumed = true;
        },
        asio::detached);
    ctx.poll();
    CHECK(sem.stats() == make_stats(1, 0, 1, 1));
    CHECK_FALSE(sem.try_acquire());  // a newcomer does not jump the queue

    gate.reset();
    // Granted but not yet resumed: the permit is in use by the waiter, not available.
    CHECK_FALSE(waiter_resumed);
    CHECK(sem.stats() == make_stats(1, 0, 1, 0));
    CHECK_FALSE(sem.try_acquire());

    ctx.run();
    CHECK(waiter_resumed);
    CHECK(sem.try_acquire());
}

TEST_CASE("AsyncSemaphore: a waiter resumes on its own executor, never inside the releasing call") {
    AsyncSemaphore sem{1};
    auto gate = sem.try_acquire();
    asio::io_context waiter_ctx;
    std::atomic<bool> resumed{false};
    std::atomic<bool> resumed_on_own_thread{false};
    std::thread::id waiter_thread;
    asio::co_spawn(
        waiter_ctx,
        [&]() -> asio::awaitable<void> {
            auto permit = co_await sem.acquire();
            resumed_on_own_thread = std::this_thread::get_id() == waiter_thread;
            resumed = true;
        },
        asio::detached);
    std::thread runner([&] {
        waiter_thread = std::this_thread::get_id();
        waiter_ctx.run();  // the queued acquire keeps the context's work count above zero
    });
    while (sem.stats().waiting == 0) {
        std::this_thread::yield();
    }
    gate.reset();
    runner.join();
    CHECK(resumed);
    CHECK(resumed_on_own_thread);

    // Single-threaded: releasing inside another coroutine does not run the waiter inline.
    asio::io_context ctx;
    auto gate2 = sem.try_acquire();
    REQUIRE(gate2);
    bool second_resumed = false;
    bool resumed_inside_release = false;
    asio::co_spawn(
        ctx,
        [&]() -> asio::awaitable<void> {
            auto permit = co_await sem.acquire();
            second_resumed = true;
        },
        asio::detached);
    ctx.poll();
    asio::co_spawn(
        ctx,
        [&]() -> asio::awaitable<void> {
            gate2->release();
            resumed_inside_release = second_resumed;
            co_return;
        },
        asio::detached);
    ctx.run();
    CHECK(second_resumed);
    CHECK_FALSE(resumed_inside_release);
}

TEST_CASE("AsyncSemaphore: a waiter on a strand resumes inside its strand") {
    asio::io_context ctx;
    AsyncSemaphore sem{1};
    auto gate = sem.try_acquire();
    auto strand = asio::make_strand(ctx);
    std::atomic<bool> resumed{false};
    std::atomic<bool> in_strand{false};
    asio::co_spawn(
        strand,
        [&]() -> asio::awaitable<void> {
            auto permit = co_await sem.acquire();
            in_strand = strand.running_in_this_thread();
            resumed = true;
        },
        asio::detached);
    std::thread runner([&] { ctx.run(); });
    while (sem.stats().waiting == 0) {
        std::this_thread::yield();
    }
    gate.reset();  // released on this thread, outside the strand
    runner.join();
    CHECK(resumed);
    CHECK(in_strand);
}

TEST_CASE("AsyncSemaphore: concurrency never exceeds the count (200 coroutines, 2 threads)") {
    asio::io_context ctx;
    AsyncSemaphore sem{4};
    InFlight flight;
    std::atomic<int> finished{0};
    for (int i = 0; i < 200; ++i) {
        asio::co_spawn(
            ctx,
            [&]() -> asio::awaitable<void> {
                for (int round = 0; round < 5; ++round) {
                    auto permit = co_await sem.acquire();
                    flight.enter();
                    co_await yield_once();
                    co_await yield_once();
                    flight.leave();
                }
                finished.fetch_add(1);
            },
            asio::detached);
    }
    run_on_threads(ctx, 2);
    CHECK(finished == 200);
    CHECK(flight.max.load() >= 1);
    CHECK(flight.max.load() <= 4);
    CHECK(sem.stats() == make_stats(4, 4, 0, 0));
}

TEST_CASE("AsyncSemaphore: one semaphore serves several io_contexts on several threads") {
    AsyncSemaphore sem{3};
    InFlight flight;
    std::atomic<int> finished{0};
    std::vector<std::unique_ptr<asio::io_context>> contexts;
    for (int c = 0; c < 3; ++c) {
        contexts.push_back(std::make_unique<asio::io_context>());
        for (int i = 0; i < 40; ++i) {
            asio::co_spawn(
                *contexts.back(),
                [&]() -> asio::awaitable<void> {
                    for (int round = 0; round < 10; ++round) {
                        auto permit = co_await sem.acquire();
                        flight.enter();
                        co_await yield_once();
                        flight.leave();
                    }
                    finished.fetch_add(1);
                },
                asio::detached);
        }
    }
    std::vector<std::thread> threads;
    for (auto& ctx : contexts) {
        threads.emplace_back([&ctx] { ctx->run(); });
    }
    for (auto& t : threads) {
        t.join();
    }
    CHECK(finished == 120);
    CHECK(flight.max.load() <= 3);
    CHECK(sem.stats() == make_stats(3, 3, 0, 0));
}

TEST_CASE("AsyncSemaphore: a waiting acquire cancelled by a timer leaves the queue and reports operation_aborted") {
    asio::io_context ctx;
    taskmon::testing::ManualTime time;
    taskmon::testing::VirtualTimeRunner runner{ctx, time};
    AsyncSemaphore sem{1};
    auto gate = sem.try_acquire();
    std::optional<std::size_t> winner;
    std::optional<SemaphoreStats> after_cancel;
    asio::co_spawn(
        ctx,
        [&]() -> asio::awaitable<void> {
            taskmon::testing::ManualTimer timer{ctx, 5s};
            auto result = co_await (sem.acquire() || timer.async_wait(asio::use_awaitable));
            winner = result.index();
            after_cancel = sem.stats();
        },
        asio::detached);
    runner.run_for(1s);
    CHECK(sem.stats() == make_stats(1, 0, 1, 1));
    runner.run();
    REQUIRE(winner);
    CHECK(*winner == 1);
    CHECK(*after_cancel == make_stats(1, 0, 1, 0));
    gate.reset();
    CHECK(sem.stats() == make_stats(1, 1, 0, 0));

    // The acquire alone, cancelled through its slot, throws operation_aborted.
    asio::cancellation_signal signal;
    std::error_code code;
    asio::co_spawn(
        ctx,
        [&]() -> asio::awaitable<void> {
            auto held = sem.try_acquire();
            try {
                auto permit = co_await sem.acquire();
            } catch (const std::system_error& e) {
                code = e.code();
            }
        },
        asio::bind_cancellation_slot(signal.slot(), asio::detached));
    runner.poll();
    CHECK(sem.stats().waiting == 1);
    signal.emit(asio::cancellation_type::terminal);
    runner.run();
    CHECK(code == asio::error::operation_aborted);
    CHECK(sem.stats() == make_stats(1, 1, 0, 0));
}

TEST_CASE("AsyncSemaphore: cancelling a waiter in the middle keeps the others in order") {
    asio::io_context ctx;
    AsyncSemaphore sem{1};
    auto gate = sem.try_acquire();
    std::vector<asio::cancellation_signal> signals(5);
    std::vector<int> granted;
    std::vector<int> aborted;
    for (int i = 0; i < 5; ++i) {
        sem.async_acquire(asio::bind_cancellation_slot(
            signals[static_cast<std::size_t>(i)].slot(),
            asio::bind_executor(
                ctx, [&, i](std::error_code ec, SemaphorePermit) { (ec ? aborted : granted).push_back(i); })));
    }
    signals[2].emit(asio::cancellation_type::partial);
    CHECK(sem.stats().waiting == 4);
    signals[2].emit(asio::cancellation_type::terminal);  // a second cancellation is harmless
    signals[4].emit(asio::cancellation_type::none);      // not a cancellation request
    CHECK(sem.stats().waiting == 4);
    gate.reset();
    ctx.run();
    CHECK(aborted == std::vector<int>{2});
    CHECK(granted == std::vector<int>{0, 1, 3, 4});
    CHECK(sem.stats() == make_stats(1, 1, 0, 0));
}

TEST_CASE("AsyncSemaphore: a cancellation that arrives after the grant keeps the permit, once") {
    asio::io_context ctx;
    AsyncSemaphore sem{1};
    auto gate = sem.try_acquire();
    asio::cancellation_signal signal;
    std::optional<std::error_code> result;
    bool got_permit = false;
    sem.async_acquire(asio::bind_cancellation_slot(signal.slot(),
                                                   asio::bind_executor(ctx, [&](std::error_code ec, SemaphorePermit p) {
                                                       result = ec;
                                                       got_permit = p.owns_permit();
                                                   })));
    gate.reset();                                    // grants the permit to the waiter
    signal.emit(asio::cancellation_type::terminal);  // too late: the grant stands
    CHECK(sem.stats() == make_stats(1, 0, 1, 0));
    ctx.run();
    REQUIRE(result);
    CHECK_FALSE(*result);
    CHECK(got_permit);
    CHECK(sem.stats() == make_stats(1, 1, 0, 0));

    // And the other way round: cancelled first, then released: the permit stays with the semaphore.
    auto gate2 = sem.try_acquire();
    result.reset();
    got_permit = false;
    asio::cancellation_signal signal2;
    sem.async_acquire(asio::bind_cancellation_slot(signal2.slot(),
                                                   asio::bind_executor(ctx, [&](std::error_code ec, SemaphorePermit p) {
                                                       result = ec;
                                                       got_permit = p.owns_permit();
                                                   })));
    signal2.emit(asio::cancellation_type::terminal);
    gate2.reset();
    CHECK(sem.stats() == make_stats(1, 1, 0, 0));
    ctx.restart();
    ctx.run();
    CHECK(result == std::error_code{asio::error::operation_aborted});
    CHECK_FALSE(got_permit);
}

TEST_CASE("AsyncSemaphore: a storm of 1000 waiters, half cancelled by timers, ends with every permit back") {
    asio::io_context ctx;
    taskmon::testing::ManualTime time;
    taskmon::testing::VirtualTimeRunner runner{ctx, time};
    AsyncSemaphore sem{4};
    InFlight flight;
    int acquired = 0;
    int cancelled = 0;
    std::vector<SemaphorePermit> initial;
    for (int i = 0; i < 4; ++i) {
        initial.push_back(*sem.try_acquire());
    }
    for (int i = 0; i < 1000; ++i) {
        asio::co_spawn(
            ctx,
            [&, i]() -> asio::awaitable<void> {
                auto hold = [&](SemaphorePermit permit) -> asio::awaitable<void> {
                    flight.enter();
                    ++acquired;
                    taskmon::testing::ManualTimer work{ctx, 1ms};
                    co_await work.async_wait(asio::use_awaitable);
                    flight.leave();
                    permit.release();
                };
                if (i % 2 == 0) {
                    // Deadlines spread over the first 500 ms, while permits are being handed on.
                    taskmon::testing::ManualTimer deadline{ctx, std::chrono::milliseconds(i / 2 + 1)};
                    auto result = co_await (sem.acquire() || deadline.async_wait(asio::use_awaitable));
                    if (result.index() == 0) {
                        co_await hold(std::move(std::get<0>(result)));
                    } else {
                        ++cancelled;
                    }
                } else {
                    co_await hold(co_await sem.acquire());
                }
            },
            asio::detached);
    }
    runner.poll();
    CHECK(sem.stats() == make_stats(4, 0, 4, 1000));
    runner.run_for(100ms);
    // Every even waiter with a deadline up to 100 ms gave up; nobody got a permit yet.
    CHECK(cancelled == 100);
    CHECK(sem.stats() == make_stats(4, 0, 4, 900));
    initial.clear();  // the four permits go to the head of the queue while later deadlines keep firing
    runner.run();
    CHECK(acquired + cancelled == 1000);
    CHECK(acquired >= 500);
    CHECK(cancelled > 100);
    CHECK(flight.max.load() <= 4);
    CHECK(sem.stats() == make_stats(4, 4, 0, 0));
}

TEST_CASE("AsyncSemaphore: a release racing with a waiter queueing hands the permit on, stats stay consistent") {
    // Each round: this thread takes the only permit and gives it to the releaser thread, which releases it while
    // this thread starts an acquire. The release may find the semaphore idle (the acquire then takes the free
    // permit), find the waiter queued (the permit passes to it under the lock), or lose its compare-and-swap to
    // the waiter queueing; in every case the acquire must get the permit exactly once.
    AsyncSemaphore sem{1};
    asio::io_context ctx;
    auto work = asio::make_work_guard(ctx);
    std::thread completions([&] { ctx.run(); });

    constexpr int rounds = 20000;
    std::optional<SemaphorePermit> handed;
    std::atomic<int> go{-1};
    std::atomic<bool> stop{false};
    std::thread releaser([&] {
        for (int round = 0; round < rounds; ++round) {
            while (go.load(std::memory_order_acquire) != round) {
                if (stop.load()) {
                    return;
                }
                std::this_thread::yield();
            }
            // Empty `handed` before the release: the next round refills it once the permit is back.
            SemaphorePermit permit = std::move(*handed);
            handed.reset();
            permit.release();
        }
    });
    std::atomic<bool> stats_ok{true};
    std::thread observer([&] {
        while (!stop.load()) {
            const SemaphoreStats s = sem.stats();
            if (s.capacity != 1 || s.in_use > 1 || s.waiting > 1 || s.available + s.in_use != 1 ||
                (s.waiting > 0 && s.available > 0)) {
                stats_ok = false;
            }
            std::this_thread::yield();
        }
    });

    int granted = 0;
    for (int round = 0; round < rounds; ++round) {
        std::optional<SemaphorePermit> mine = sem.try_acquire();
        if (!mine) {
            FAIL_CHECK("round " << round << ": the permit was not free");
            break;
        }
        handed = std::move(mine);
        std::promise<std::pair<std::error_code, bool>> done;
        go.store(round, std::memory_order_release);
        sem.async_acquire(asio::bind_executor(ctx, [&](std::error_code ec, SemaphorePermit p) {
            const bool owned = p.owns_permit();
            p.release();  // before the next round starts
            done.set_value({ec, owned});
        }));
        const auto [ec, owned] = done.get_future().get();
        granted += !ec && owned;
    }
    stop = true;
    releaser.join();
    observer.join();
    work.reset();
    completions.join();
    CHECK(granted == rounds);
    CHECK(stats_ok);
    CHECK(sem.stats() == make_stats(1, 1, 0, 0));
}

TEST_CASE("AsyncSemaphore: cancel and release racing on two threads never lose or duplicate a permit") {
    asio::io_context ctx;
    AsyncSemaphore sem{3};
    InFlight flight;
    std::atomic<int> acquired{0};
    std::atomic<int> cancelled{0};
    std::exception_ptr failure;
    std::mutex failure_mutex;
    for (int i = 0; i < 64; ++i) {
        // Each coroutine on its own strand: per-operation cancellation must be emitted on the operation's
        // executor, as with any Asio operation on a multi-threaded context.
        asio::co_spawn(
            asio::make_strand(ctx),
            [&, i]() -> asio::awaitable<void> {
                try {
                    for (int round = 0; round < 40; ++round) {
                        asio::steady_timer deadline{co_await asio::this_coro::executor};
                        deadline.expires_after(std::chrono::microseconds((i + round) % 7 * 20));
                        auto result = co_await (sem.acquire() || deadline.async_wait(asio::use_awaitable));
                        if (result.index() == 0) {
                            flight.enter();
                            acquired.fetch_add(1);
                            co_await yield_once();
                            flight.leave();
                        } else {
                            cancelled.fetch_add(1);
                        }
                    }
                } catch (...) {
                    std::lock_guard lock(failure_mutex);
                    failure = std::current_exception();
                }
            },
            asio::detached);
    }
    run_on_threads(ctx, 2);
    rethrow_if(failure);
    CHECK(acquired + cancelled == 64 * 40);
    CHECK(flight.max.load() <= 3);
    CHECK(sem.stats() == make_stats(3, 3, 0, 0));
}

TEST_CASE("AsyncSemaphore: growing serves waiters at once in FIFO order, shrinking admits nobody until in_use drops") {
    asio::io_context ctx;
    AsyncSemaphore sem{2};
    std::vector<SemaphorePermit> held;
    held.push_back(*sem.try_acquire());
    held.push_back(*sem.try_acquire());
    std::vector<int> order;
    std::vector<SemaphorePermit> granted(6);
    for (int i = 0; i < 6; ++i) {
        sem.async_acquire(asio::bind_executor(ctx, [&, i](std::error_code ec, SemaphorePermit p) {
            REQUIRE_FALSE(ec);
            order.push_back(i);
            granted[static_cast<std::size_t>(i)] = std::move(p);
        }));
    }
    CHECK(sem.stats() == make_stats(2, 0, 2, 6));

    sem.set_count(5);  // three more permits: waiters 0, 1, 2
    CHECK(sem.stats() == make_stats(5, 0, 5, 3));
    ctx.poll();  // (run() would not return: the queued acquires are outstanding work)
    CHECK(order == std::vector<int>{0, 1, 2});

    sem.set_count(2);  // five in use, two allowed
    CHECK(sem.stats() == make_stats(2, 0, 5, 3));
    held.clear();
    CHECK(sem.stats() == make_stats(2, 0, 3, 3));
    granted[0].release();
    CHECK(sem.stats() == make_stats(2, 0, 2, 3));
    CHECK_FALSE(sem.try_acquire());
    granted[1].release();  // in_use 1 < 2: waiter 3 is admitted
    CHECK(sem.stats() == make_stats(2, 0, 2, 2));
    ctx.poll();
    CHECK(order == std::vector<int>{0, 1, 2, 3});

    sem.set_count(2);  // same count: nothing changes
    CHECK(sem.stats() == make_stats(2, 0, 2, 2));
    sem.set_count(10);
    CHECK(sem.stats() == make_stats(10, 6, 4, 0));
    ctx.restart();
    ctx.run();
    CHECK(order == std::vector<int>{0, 1, 2, 3, 4, 5});
    granted.clear();
    CHECK(sem.stats() == make_stats(10, 10, 0, 0));
}

TEST_CASE("AsyncSemaphore: resizing up and down under load keeps the stats truthful") {
    asio::io_context ctx;
    AsyncSemaphore sem{4};
    std::atomic<int> finished{0};
    std::atomic<bool> stats_ok{true};
    InFlight flight;
    for (int i = 0; i < 100; ++i) {
        asio::co_spawn(
            ctx,
            [&]() -> asio::awaitable<void> {
                for (int round = 0; round < 10; ++round) {
                    auto permit = co_await sem.acquire();
                    flight.enter();
                    co_await yield_once();
                    flight.leave();
                }
                finished.fetch_add(1);
            },
            asio::detached);
    }
    std::atomic<bool> stop{false};
    std::thread resizer([&] {
        const std::size_t counts[] = {1, 8, 2, 6, 3, 1, 5};
        for (std::size_t n = 0; !stop.load(); ++n) {
            sem.set_count(counts[n % std::size(counts)]);
            const SemaphoreStats s = sem.stats();
            const std::size_t expected_available = s.in_use < s.capacity ? s.capacity - s.in_use : 0;
            if (s.available != expected_available || (s.waiting > 0 && s.available > 0) || s.in_use > 8) {
                stats_ok = false;
            }
            std::this_thread::yield();
        }
    });
    run_on_threads(ctx, 2);
    stop = true;
    resizer.join();
    CHECK(finished == 100);
    CHECK(stats_ok);
    CHECK(flight.max.load() <= 8);
    const SemaphoreStats s = sem.stats();
    CHECK(s.in_use == 0);
    CHECK(s.waiting == 0);
    CHECK(s.available == s.capacity);
}

TEST_CASE("AsyncSemaphore: set_count rejects bad counts and changes nothing") {
    AsyncSemaphore sem{3};
    auto p = sem.try_acquire();
    CHECK_THROWS_AS(sem.set_count(0), std::invalid_argument);
    CHECK_THROWS_AS(sem.set_count(AsyncSemaphore::max_count() + 1), std::invalid_argument);
    CHECK(sem.stats() == make_stats(3, 2, 1, 0));
    try {
        sem.set_count(0);
        FAIL("set_count(0) did not throw");
    } catch (const std::invalid_argument& e) {
        CHECK(std::string(e.what()).find("count") != std::string::npos);
        CHECK(std::string(e.what()).find("got 0") != std::string::npos);
    }
}

TEST_CASE("AsyncSemaphore: close ends waiting and later acquires with an error, not a hang") {
    asio::io_context ctx;
    AsyncSemaphore sem{1};
    auto held = sem.try_acquire();
    std::error_code waiting_code;
    std::error_code later_code;
    asio::co_spawn(
        ctx,
        [&]() -> asio::awaitable<void> {
            try {
                auto permit = co_await sem.acquire();
            } catch (const std::system_error& e) {
                waiting_code = e.code();
            }
        },
        asio::detached);
    ctx.poll();
    CHECK(sem.stats().waiting == 1);
    sem.close();
    CHECK(sem.is_closed());
    CHECK(sem.stats() == make_stats(1, 0, 1, 0));
    ctx.run();
    CHECK(waiting_code == taskmon::SemaphoreErrc::closed);
    CHECK(waiting_code.message() == "the semaphore is closed");
    CHECK(std::string(waiting_code.category().name()) == "taskmon.semaphore");

    asio::co_spawn(
        ctx,
        [&]() -> asio::awaitable<void> {
            try {
                auto permit = co_await sem.acquire();
            } catch (const std::system_error& e) {
                later_code = e.code();
            }
        },
        asio::detached);
    ctx.restart();
    ctx.run();
    CHECK(later_code == taskmon::SemaphoreErrc::closed);

    held.reset();  // held permits still release normally
    CHECK(sem.stats() == make_stats(1, 1, 0, 0));
    CHECK_FALSE(sem.try_acquire());
    CHECK_THROWS_AS(sem.set_count(2), std::logic_error);
    sem.close();  // idempotent
    CHECK(sem.stats() == make_stats(1, 1, 0, 0));
}

TEST_CASE("AsyncSemaphore: fmt formats SemaphoreErrc as its name") {
    taskmon_test::check_enum_names(taskmon::SemaphoreErrc::closed, taskmon::SemaphoreErrc::closed);
    CHECK(fmt::format("{}", taskmon::SemaphoreErrc::closed) == "closed");
}

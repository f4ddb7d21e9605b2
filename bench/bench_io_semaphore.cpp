// AsyncSemaphore against the bare-Asio baselines, side by side in one run (figures in docs/benchmarks.md):
//  (a) uncontended `co_await acquire()` + release  vs  `co_await` of a trivial nested awaitable
//      (reference: the same nested awaitable plus one atomic fetch_add/fetch_sub pair, the thread-safe floor)
//  (b) contended hand-off, 1 permit, 2 and 64 coroutines, one thread  vs  channel<void()> as a semaphore
//      (references: the yield alone; the yield plus one bare `co_await defer`, the floor for a waiting acquire)
//  (c) cancelling one waiter with 20 and 20,000 queued  vs  the same on a channel
//  (d) (b) on a 2-thread pool (the channel needs a strand there: it is not thread-safe)
#include <taskmon/async_semaphore.hpp>

#include <asio/bind_cancellation_slot.hpp>
#include <asio/bind_executor.hpp>
#include <asio/cancellation_signal.hpp>
#include <asio/co_spawn.hpp>
#include <asio/defer.hpp>
#include <asio/detached.hpp>
#include <asio/experimental/channel.hpp>
#include <asio/io_context.hpp>
#include <asio/post.hpp>
#include <asio/strand.hpp>
#include <asio/this_coro.hpp>
#include <asio/thread_pool.hpp>
#include <asio/use_awaitable.hpp>

#include <benchmark/benchmark.h>

#include <atomic>
#include <cstdint>
#include <future>
#include <memory>
#include <stdexcept>
#include <system_error>
#include <utility>
#include <vector>

namespace {

using Channel = asio::experimental::channel<void()>;

constexpr int handoffs_per_iteration = 4096;

asio::awaitable<int> trivial_awaitable() { co_return 1; }

asio::awaitable<void> yield_once() { co_await asio::post(co_await asio::this_coro::executor, asio::use_awaitable); }

// Reports the time per unit of work, e.g. per hand-off, as a counter named `name`.
void per_item(benchmark::State& state, const char* name, std::int64_t items_per_iteration) {
    state.counters[name] =
        benchmark::Counter(static_cast<double>(items_per_iteration),
                           benchmark::Counter::kIsIterationInvariantRate | benchmark::Counter::kInvert);
}

// Runs `body` as a coroutine on a fresh io_context on this thread.
template <typename Body>
void run_coroutine(Body body) {
    asio::io_context ctx;
    std::exception_ptr failure;
    asio::co_spawn(ctx, body(), [&](std::exception_ptr e) { failure = e; });
    ctx.run();
    if (failure) {
        std::rethrow_exception(failure);
    }
}

// ---- (a) uncontended --------------------------------------------------------------------------------------

void BM_a_baseline_nested_awaitable(benchmark::State& state) {
    run_coroutine([&]() -> asio::awaitable<void> {
        for (auto _ : state) {
            benchmark::DoNotOptimize(co_await trivial_awaitable());
        }
    });
}

void BM_a_semaphore_acquire_release(benchmark::State& state) {
    taskmon::AsyncSemaphore sem{1};
    run_coroutine([&]() -> asio::awaitable<void> {
        for (auto _ : state) {
            auto permit = co_await sem.acquire();
            benchmark::DoNotOptimize(permit);
        }
    });
}

// The floor for any thread-safe semaphore: a nested awaitable that takes a token with one atomic fetch_add and
// gives it back with one fetch_sub in the token's destructor (no capacity check, no FIFO, no waiters). Two locked
// read-modify-writes per acquire/release is the least a semaphore shared across threads can do.
class AtomicToken {
public:
    AtomicToken() = default;
    explicit AtomicToken(std::atomic<std::uint64_t>& count) noexcept : count_(&count) {}
    AtomicToken(AtomicToken&& other) noexcept : count_(std::exchange(other.count_, nullptr)) {}
    AtomicToken& operator=(AtomicToken&&) = delete;
    ~AtomicToken() {
        if (count_ != nullptr) {
            count_->fetch_sub(1, std::memory_order_release);
        }
    }

private:
    std::atomic<std::uint64_t>* count_ = nullptr;
};

asio::awaitable<AtomicToken> take_token(std::atomic<std::uint64_t>& count) {
    count.fetch_add(1, std::memory_order_acquire);
    co_return AtomicToken{count};
}

void BM_a_reference_atomic_pair_floor(benchmark::State& state) {
    std::atomic<std::uint64_t> count{0};
    run_coroutine([&]() -> asio::awaitable<void> {
        for (auto _ : state) {
            auto token = co_await take_token(count);
            benchmark::DoNotOptimize(token);
        }
    });
}

// For reference: what acquire() would cost without its inline fast path (an async operation every time).
void BM_a_semaphore_async_acquire_no_fast_path(benchmark::State& state) {
    taskmon::AsyncSemaphore sem{1};
    run_coroutine([&]() -> asio::awaitable<void> {
        for (auto _ : state) {
            auto permit = co_await sem.async_acquire(asio::use_awaitable);
            benchmark::DoNotOptimize(permit);
        }
    });
}

void BM_a_semaphore_try_acquire_release(benchmark::State& state) {
    taskmon::AsyncSemaphore sem{1};
    for (auto _ : state) {
        auto permit = sem.try_acquire();
        benchmark::DoNotOptimize(permit);
    }
}

void BM_a_channel_try_send_then_receive(benchmark::State& state) {
    run_coroutine([&]() -> asio::awaitable<void> {
        Channel ch{co_await asio::this_coro::executor, 1};
        for (auto _ : state) {
            if (!ch.try_send()) {
                co_await ch.async_send(asio::use_awaitable);
            }
            ch.try_receive([](auto&&...) {});
        }
    });
}

// ---- (b) contended hand-off on one thread -----------------------------------------------------------------
// N coroutines share one permit; each round: acquire, yield once while holding it, release.

void BM_b_reference_yield_only(benchmark::State& state) {
    const int coroutines = static_cast<int>(state.range(0));
    const int rounds = handoffs_per_iteration / coroutines;
    for (auto _ : state) {
        asio::io_context ctx;
        for (int c = 0; c < coroutines; ++c) {
            asio::co_spawn(
                ctx,
                [&]() -> asio::awaitable<void> {
                    for (int r = 0; r < rounds; ++r) {
                        co_await yield_once();
                    }
                },
                asio::detached);
        }
        ctx.run();
    }
    per_item(state, "per_handoff", handoffs_per_iteration);
}

// The floor for a waiting primitive awaited through use_awaitable: the yield plus one Asio operation that does
// nothing but complete through a posted continuation on the io_context's own executor (the path a granted
// acquire takes). A waiting acquire pays at least this, before any semaphore logic.
void BM_b_reference_yield_plus_defer(benchmark::State& state) {
    const int coroutines = static_cast<int>(state.range(0));
    const int rounds = handoffs_per_iteration / coroutines;
    for (auto _ : state) {
        asio::io_context ctx;
        for (int c = 0; c < coroutines; ++c) {
            asio::co_spawn(
                ctx,
                [&]() -> asio::awaitable<void> {
                    for (int r = 0; r < rounds; ++r) {
                        co_await asio::defer(ctx.get_executor(), asio::use_awaitable);
                        co_await yield_once();
                    }
                },
                asio::detached);
        }
        ctx.run();
    }
    per_item(state, "per_handoff", handoffs_per_iteration);
}

void BM_b_channel_handoff(benchmark::State& state) {
    const int coroutines = static_cast<int>(state.range(0));
    const int rounds = handoffs_per_iteration / coroutines;
    for (auto _ : state) {
        asio::io_context ctx;
        Channel ch{ctx, 1};
        for (int c = 0; c < coroutines; ++c) {
            asio::co_spawn(
                ctx,
                [&]() -> asio::awaitable<void> {
                    for (int r = 0; r < rounds; ++r) {
                        if (!ch.try_send()) {
                            co_await ch.async_send(asio::use_awaitable);
                        }
                        co_await yield_once();
                        ch.try_receive([](auto&&...) {});
                    }
                },
                asio::detached);
        }
        ctx.run();
    }
    per_item(state, "per_handoff", handoffs_per_iteration);
}

void BM_b_semaphore_handoff(benchmark::State& state) {
    const int coroutines = static_cast<int>(state.range(0));
    const int rounds = handoffs_per_iteration / coroutines;
    for (auto _ : state) {
        asio::io_context ctx;
        taskmon::AsyncSemaphore sem{1};
        for (int c = 0; c < coroutines; ++c) {
            asio::co_spawn(
                ctx,
                [&]() -> asio::awaitable<void> {
                    for (int r = 0; r < rounds; ++r) {
                        auto permit = co_await sem.acquire();
                        co_await yield_once();
                    }
                },
                asio::detached);
        }
        ctx.run();
    }
    per_item(state, "per_handoff", handoffs_per_iteration);
}

// ---- (c) cancelling one waiter ----------------------------------------------------------------------------
// `queued` waiters wait; each iteration cancels the newest one, lets its completion run, and queues a new one in
// its place, so the queue length stays constant.

void BM_c_semaphore_cancel_one(benchmark::State& state) {
    const auto queued = static_cast<std::size_t>(state.range(0));
    asio::io_context ctx;
    taskmon::AsyncSemaphore sem{1};
    auto holder = sem.try_acquire();
    std::vector<std::unique_ptr<asio::cancellation_signal>> signals;
    std::int64_t aborted = 0;
    auto enqueue = [&](asio::cancellation_signal& signal) {
        sem.async_acquire(asio::bind_cancellation_slot(
            signal.slot(), asio::bind_executor(ctx, [&](std::error_code ec, taskmon::SemaphorePermit) {
                aborted += ec == asio::error::operation_aborted;
            })));
    };
    for (std::size_t i = 0; i < queued; ++i) {
        signals.push_back(std::make_unique<asio::cancellation_signal>());
        enqueue(*signals.back());
    }
    for (auto _ : state) {
        signals.back()->emit(asio::cancellation_type::terminal);
        ctx.poll_one();
        enqueue(*signals.back());
    }
    if (aborted != static_cast<std::int64_t>(state.iterations()) || sem.stats().waiting != queued) {
        state.SkipWithError("a cancelled waiter did not leave the queue");
    }
    sem.close();
    ctx.restart();
    ctx.run();
}

void BM_c_channel_cancel_one(benchmark::State& state) {
    const auto queued = static_cast<std::size_t>(state.range(0));
    asio::io_context ctx;
    Channel ch{ctx, 1};
    if (!ch.try_send()) {
        throw std::logic_error("channel not empty");
    }
    std::vector<std::unique_ptr<asio::cancellation_signal>> signals;
    std::int64_t aborted = 0;
    auto enqueue = [&](asio::cancellation_signal& signal) {
        ch.async_send(asio::bind_cancellation_slot(signal.slot(), [&](std::error_code ec) {
            aborted += ec == asio::experimental::error::channel_cancelled || ec == asio::error::operation_aborted;
        }));
    };
    for (std::size_t i = 0; i < queued; ++i) {
        signals.push_back(std::make_unique<asio::cancellation_signal>());
        enqueue(*signals.back());
    }
    for (auto _ : state) {
        signals.back()->emit(asio::cancellation_type::terminal);
        ctx.poll_one();
        enqueue(*signals.back());
    }
    if (aborted != static_cast<std::int64_t>(state.iterations())) {
        state.SkipWithError("a cancelled channel waiter did not complete");
    }
    ch.cancel();
    ctx.restart();
    ctx.run();
}

// ---- (d) contended hand-off on a 2-thread pool ------------------------------------------------------------

template <typename SpawnAll>
void run_on_pool(benchmark::State& state, int coroutines, SpawnAll spawn_all) {
    asio::thread_pool pool{2};
    for (auto _ : state) {
        std::atomic<int> remaining{coroutines};
        std::promise<void> all_done;
        spawn_all(pool, [&] {
            if (remaining.fetch_sub(1) == 1) {
                all_done.set_value();
            }
        });
        all_done.get_future().wait();
    }
    pool.join();
    per_item(state, "per_handoff", handoffs_per_iteration);
}

void BM_d_channel_handoff_2_threads(benchmark::State& state) {
    const int coroutines = static_cast<int>(state.range(0));
    const int rounds = handoffs_per_iteration / coroutines;
    run_on_pool(state, coroutines, [&](asio::thread_pool& pool, auto finished) {
        // The channel and every coroutine using it on one strand.
        auto strand = asio::make_strand(pool);
        auto ch = std::make_shared<Channel>(strand, 1);
        for (int c = 0; c < coroutines; ++c) {
            asio::co_spawn(
                strand,
                [ch, rounds, finished]() -> asio::awaitable<void> {
                    for (int r = 0; r < rounds; ++r) {
                        if (!ch->try_send()) {
                            co_await ch->async_send(asio::use_awaitable);
                        }
                        co_await yield_once();
                        ch->try_receive([](auto&&...) {});
                    }
                    finished();
                },
                asio::detached);
        }
    });
}

void BM_d_semaphore_handoff_2_threads(benchmark::State& state) {
    const int coroutines = static_cast<int>(state.range(0));
    const int rounds = handoffs_per_iteration / coroutines;
    taskmon::AsyncSemaphore sem{1};
    run_on_pool(state, coroutines, [&](asio::thread_pool& pool, auto finished) {
        for (int c = 0; c < coroutines; ++c) {
            asio::co_spawn(
                pool,
                [&sem, rounds, finished]() -> asio::awaitable<void> {
                    for (int r = 0; r < rounds; ++r) {
                        auto permit = co_await sem.acquire();
                        co_await yield_once();
                    }
                    finished();
                },
                asio::detached);
        }
    });
}

}  // namespace

BENCHMARK(BM_a_baseline_nested_awaitable);
BENCHMARK(BM_a_reference_atomic_pair_floor);
BENCHMARK(BM_a_semaphore_acquire_release);
BENCHMARK(BM_a_semaphore_async_acquire_no_fast_path);
BENCHMARK(BM_a_semaphore_try_acquire_release);
BENCHMARK(BM_a_channel_try_send_then_receive);

BENCHMARK(BM_b_reference_yield_only)->Arg(2)->Arg(64);
BENCHMARK(BM_b_reference_yield_plus_defer)->Arg(2);  // with 64 all coroutines run at once: not comparable
BENCHMARK(BM_b_channel_handoff)->Arg(2)->Arg(64);
BENCHMARK(BM_b_semaphore_handoff)->Arg(2)->Arg(64);

BENCHMARK(BM_c_semaphore_cancel_one)->Arg(20)->Arg(20000);
BENCHMARK(BM_c_channel_cancel_one)->Arg(20)->Arg(20000);

BENCHMARK(BM_d_channel_handoff_2_threads)->Arg(2)->Arg(64)->UseRealTime();
BENCHMARK(BM_d_semaphore_handoff_2_threads)->Arg(2)->Arg(64)->UseRealTime();

BENCHMARK_MAIN();

// The simulation's cost per handler against a plain single-threaded io_context running the same handlers, in the
// same run (docs/benchmarks.md, "Simulation"):
//   1. a chain: one handler that posts the next, 10,000 times (one handler ready at a time);
//   2. a crowd: 64 handlers, each posting its successor until 10,000 have run (64 ready at a time, so the seeded
//      choice picks among many);
//   3. each with a timer pending far in the future, as a supervised program always has one (then the io_context is
//      never out of work, and each poll for finished operations asks the reactor).
#include <taskmon/testing/simulation.hpp>

#include <asio/io_context.hpp>
#include <asio/post.hpp>
#include <asio/steady_timer.hpp>
#include <benchmark/benchmark.h>

#include <chrono>
#include <cstdint>

namespace {

constexpr int handlers = 10'000;

/// Posts itself to `ex` until `left` runs out; the handler that takes it to zero cancels `timer` (so that the
/// run ends when the work does, as in a program whose last component stops).
template <typename Executor, typename Timer>
struct Relay {
    Executor ex;
    int* left;
    Timer* timer;
    void operator()() const {
        if (--*left > 0) {
            asio::post(ex, Relay{ex, left, timer});
        } else if (*left == 0) {
            timer->cancel();
        }
    }
};

template <typename Executor, typename Timer>
void start(const Executor& ex, int* left, int width, Timer& timer) {
    for (int i = 0; i < width; ++i) {
        asio::post(ex, Relay<Executor, Timer>{ex, left, &timer});
    }
}

// Arguments: the handlers ready at a time (1 or 64); whether a timer is pending (0 or 1).

void BM_io_context(benchmark::State& state) {
    const auto width = static_cast<int>(state.range(0));
    const bool timer_pending = state.range(1) != 0;
    for (auto _ : state) {
        asio::io_context io{1};
        asio::steady_timer timer{io, std::chrono::hours{24}};
        if (timer_pending) {
            timer.async_wait([](std::error_code) {});
        }
        int left = handlers;
        start(io.get_executor(), &left, width, timer);
        io.run();
        benchmark::DoNotOptimize(left);
    }
    state.SetItemsProcessed(state.iterations() * handlers);
}
BENCHMARK(BM_io_context)->ArgsProduct({{1, 64}, {0, 1}});

void BM_simulation(benchmark::State& state) {
    const auto width = static_cast<int>(state.range(0));
    const bool timer_pending = state.range(1) != 0;
    std::uint64_t seed = 0;
    for (auto _ : state) {
        taskmon::testing::Simulation sim{++seed};
        taskmon::testing::ManualTimer timer{sim.get_executor(), std::chrono::hours{24}};
        if (timer_pending) {
            timer.async_wait([](std::error_code) {});
        }
        int left = handlers;
        start(sim.get_executor(), &left, width, timer);
        sim.run();
        benchmark::DoNotOptimize(left);
    }
    state.SetItemsProcessed(state.iterations() * handlers);
}
BENCHMARK(BM_simulation)->ArgsProduct({{1, 64}, {0, 1}});

}  // namespace

BENCHMARK_MAIN();

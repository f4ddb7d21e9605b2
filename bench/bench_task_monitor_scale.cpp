// TaskMonitor at scale, against the bare-Asio baseline in the same run:
//   1. start + close of 100,000 and 1,000,000 idle components (each suspended on a timer) vs as many bare
//      co_spawn + cancel of the same coroutine: the time of each phase, the resident memory with all of them
//      suspended, and the heap bytes per component;
//   2. a restart storm: components that fail at once with zero backoff, on one and on two threads, and one
//      listener that checks every event's sequence number: events per second delivered, and how many were lost
//      or came out of order (must be 0).
// Each case runs once (Iterations(1)): for resident memory figures that do not carry over from the case before,
// run one case per process, e.g. --benchmark_filter='BM_scale_task_monitor/1000000$'.
#include <taskmon/task_monitor.hpp>

#include "task_monitor_cases.hpp"

#include <asio/bind_cancellation_slot.hpp>
#include <asio/cancellation_signal.hpp>
#include <asio/co_spawn.hpp>
#include <asio/io_context.hpp>
#include <benchmark/benchmark.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <limits>
#include <malloc.h>
#include <string>
#include <thread>
#include <unistd.h>
#include <vector>

namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

using taskmon_bench::fail_at_once;
using taskmon_bench::null_logger;
using taskmon_bench::wait_forever;

/// Resident memory of this process (/proc/self/statm), in bytes.
double resident_bytes() {
    long pages = 0;
    long resident = 0;
    if (std::FILE* f = std::fopen("/proc/self/statm", "r")) {
        if (std::fscanf(f, "%ld %ld", &pages, &resident) != 2) {
            resident = 0;
        }
        std::fclose(f);
    }
    return static_cast<double>(resident) * static_cast<double>(sysconf(_SC_PAGESIZE));
}

/// Live heap bytes (glibc: in-use arena bytes plus mmapped blocks; Asio's frames come from aligned_alloc).
double heap_in_use() {
    const auto info = mallinfo2();
    return static_cast<double>(info.uordblks + info.hblkhd);
}

double seconds_since(Clock::time_point start) { return std::chrono::duration<double>(Clock::now() - start).count(); }

/// What one run of n coroutines measured.
struct ScaleFigures {
    double start_seconds = 0;
    double close_seconds = 0;
    double resident = 0;       // with all n suspended
    double heap_per_item = 0;  // heap bytes per coroutine, all n suspended
};

/// Runs `start` (n coroutines started and polled until all are suspended), then `close` (all of them ended),
/// timing both and taking the memory figures between them.
template <typename Start, typename Close>
ScaleFigures measure(int n, Start&& start, Close&& close) {
    ScaleFigures f;
    malloc_trim(0);
    const auto heap_before = heap_in_use();
    const auto started = Clock::now();
    start();
    f.start_seconds = seconds_since(started);
    f.resident = resident_bytes();
    f.heap_per_item = (heap_in_use() - heap_before) / n;
    const auto closing = Clock::now();
    close();
    f.close_seconds = seconds_since(closing);
    return f;
}

void report(benchmark::State& state, const ScaleFigures& f, int n) {
    state.counters["start_s"] = f.start_seconds;
    state.counters["close_s"] = f.close_seconds;
    state.counters["total_s"] = f.start_seconds + f.close_seconds;
    state.counters["rss_MB"] = f.resident / 1e6;
    state.counters["heap_B_per_item"] = f.heap_per_item;
    state.SetItemsProcessed(state.iterations() * n);
}

// ---- 1. start + close at scale -------------------------------------------------------------------------------

/// Argument: the number of coroutines.
void BM_scale_bare(benchmark::State& state) {
    const auto n = static_cast<int>(state.range(0));
    ScaleFigures f;
    for (auto _ : state) {
        asio::io_context io{1};
        std::vector<asio::cancellation_signal> signals;
        int done = 0;
        f = measure(
            n,
            [&] {
                signals = std::vector<asio::cancellation_signal>(static_cast<std::size_t>(n));
                for (auto& signal : signals) {
                    asio::co_spawn(io, wait_forever(),
                                   asio::bind_cancellation_slot(signal.slot(), [&](std::exception_ptr) { ++done; }));
                }
                io.poll();  // every coroutine is now suspended on its timer
            },
            [&] {
                for (auto& signal : signals) {
                    signal.emit(asio::cancellation_type::terminal);
                }
                while (done < n) {
                    io.run_one();
                }
            });
    }
    report(state, f, n);
}
BENCHMARK(BM_scale_bare)->Arg(100'000)->Arg(1'000'000)->Unit(benchmark::kMillisecond)->Iterations(1);

/// Argument: the number of components (default strand pool).
void BM_scale_task_monitor(benchmark::State& state) {
    const auto n = static_cast<int>(state.range(0));
    std::vector<std::string> names;
    names.reserve(static_cast<std::size_t>(n));
    for (int i = 0; i < n; ++i) {
        names.push_back("component-" + std::to_string(i));
    }
    ScaleFigures f;
    for (auto _ : state) {
        asio::io_context io{1};
        taskmon::TaskMonitor monitor{io.get_executor(), {}, null_logger()};
        f = measure(
            n,
            [&] {
                for (const auto& name : names) {
                    monitor.register_task(name, wait_forever());
                }
                io.poll();
            },
            [&] {
                bool closed = false;
                asio::co_spawn(io, monitor.close(), [&](std::exception_ptr) { closed = true; });
                while (!closed) {
                    io.run_one();
                }
            });
    }
    report(state, f, n);
}
BENCHMARK(BM_scale_task_monitor)->Arg(100'000)->Arg(1'000'000)->Unit(benchmark::kMillisecond)->Iterations(1);

// ---- 2. a restart storm and one listener ---------------------------------------------------------------------

/// Arguments: the number of components failing at once and restarting with zero backoff; the number of threads
/// running the io_context. Runs until the listener received `events_wanted` events.
void BM_restart_storm_listener(benchmark::State& state) {
    const auto components = static_cast<int>(state.range(0));
    const auto threads = static_cast<int>(state.range(1));
    constexpr std::uint64_t events_wanted = 300'000;
    std::uint64_t received = 0;
    std::uint64_t out_of_order = 0;  // a sequence number other than the one after the previous event's
    double seconds = 0;
    for (auto _ : state) {
        asio::io_context io{threads};
        std::vector<long long> starts(static_cast<std::size_t>(components));
        taskmon::TaskMonitor monitor{io.get_executor(), taskmon_bench::restart_at_once(), null_logger()};
        std::uint64_t last = 0;
        Clock::time_point start;
        bool closing = false;
        // The listener runs on whichever thread made the change; the monitor's strand serialises these.
        auto subscription = monitor.subscribe([&](const taskmon::MonitorEvent& e) {
            if (received == 0) {
                start = Clock::now();
            } else if (e.sequence != last + 1) {
                ++out_of_order;
            }
            last = e.sequence;
            if (++received == events_wanted) {
                seconds = seconds_since(start);
                closing = true;
                asio::co_spawn(io, monitor.close(), [](std::exception_ptr) {});
            }
        });
        for (int i = 0; i < components; ++i) {
            auto& count = starts[static_cast<std::size_t>(i)];
            monitor.supervise("storm-" + std::to_string(i), [&count] { return fail_at_once(count); });
        }
        std::vector<std::thread> pool;
        for (int t = 1; t < threads; ++t) {
            pool.emplace_back([&io] { io.run(); });
        }
        io.run();
        for (auto& t : pool) {
            t.join();
        }
        benchmark::DoNotOptimize(closing);
    }
    state.counters["events"] = static_cast<double>(received);
    state.counters["events_per_s"] = static_cast<double>(events_wanted - 1) / seconds;
    state.counters["lost_or_reordered"] = static_cast<double>(out_of_order);
}
BENCHMARK(BM_restart_storm_listener)
    ->Args({1, 1})
    ->Args({1'000, 1})
    ->Args({1'000, 2})
    ->Unit(benchmark::kMillisecond)
    ->Iterations(1);

}  // namespace

BENCHMARK_MAIN();

// TaskMonitor against the bare-Asio baseline, side by side in one run:
//   1. restart latency (zero backoff, null logger) vs a bare co_spawn-and-wait of the same coroutine, without and
//      with one event listener;
//   2. start + close of 12.5k and 100k components vs as many bare co_spawn + cancel (linear: the same cost each);
//   3. bytes per supervised component beyond what a bare co_spawn of the same coroutine costs (glibc only), also
//      for a watched component (context factory and watchdog policy);
//      and for a spawn()ed task; spawn() to removed of a task that returns at once, against a bare co_spawn run to
//      its end;
//   4. the cost of ComponentContext::heartbeat().
#include <taskmon/task_monitor.hpp>

#include "task_monitor_cases.hpp"

#include <asio/bind_cancellation_slot.hpp>
#include <asio/cancellation_signal.hpp>
#include <asio/co_spawn.hpp>
#include <asio/io_context.hpp>
#include <asio/steady_timer.hpp>
#include <asio/use_awaitable.hpp>
#include <benchmark/benchmark.h>
#include <spdlog/sinks/null_sink.h>

#include <atomic>
#include <cstdlib>
#include <limits>
#include <malloc.h>
#include <memory>
#include <new>
#include <string>
#include <vector>

// ---- allocation accounting ----------------------------------------------------------------------------------
// Asio's recycling allocator takes coroutine frames and handlers from std::aligned_alloc, bypassing operator new,
// so live heap bytes are read from glibc's allocator statistics (in-use arena bytes plus mmapped blocks).

namespace {

long long heap_in_use() {
    const auto info = mallinfo2();
    return static_cast<long long>(info.uordblks + info.hblkhd);
}

}  // namespace

namespace {

using namespace std::chrono_literals;

using taskmon_bench::close_monitor;
using taskmon_bench::fail_at_once;
using taskmon_bench::null_logger;
using taskmon_bench::return_at_once;
using taskmon_bench::run_until_next_start;
using taskmon_bench::wait_forever;

// ---- 1. restart latency --------------------------------------------------------------------------------------

void BM_bare_spawn_and_wait(benchmark::State& state) {
    asio::io_context io{1};
    long long starts = 0;
    for (auto _ : state) {
        bool done = false;
        asio::co_spawn(io, fail_at_once(starts), [&](std::exception_ptr e) { done = e != nullptr; });
        while (!done) {
            io.run_one();
        }
        io.restart();
    }
    state.SetItemsProcessed(starts);
}
BENCHMARK(BM_bare_spawn_and_wait);

/// Restarts of a component that fails at once, with `listeners` event listeners each counting what they get.
void task_monitor_restart(benchmark::State& state, int listeners) {
    asio::io_context io{1};
    auto work = asio::make_work_guard(io);
    long long starts = 0;
    taskmon::TaskMonitor monitor{io.get_executor(), taskmon_bench::restart_at_once(), null_logger()};
    long long events = 0;
    std::vector<taskmon::EventSubscription> subscriptions;
    for (int i = 0; i < listeners; ++i) {
        subscriptions.push_back(monitor.subscribe([&events](const taskmon::MonitorEvent&) { ++events; }));
    }
    monitor.supervise("c", [&] { return fail_at_once(starts); });
    while (starts == 0) {
        io.run_one();
    }
    for (auto _ : state) {
        const auto before = starts;
        run_until_next_start(io, starts, before);
    }
    state.SetItemsProcessed(starts);
    if (listeners > 0) {
        state.counters["events_per_restart"] = static_cast<double>(events) / listeners / static_cast<double>(starts);
    }
    close_monitor(io, monitor);
}

void BM_task_monitor_restart(benchmark::State& state) { task_monitor_restart(state, 0); }
BENCHMARK(BM_task_monitor_restart);

/// The same with one event listener subscribed: the cost of delivering failed, restart_scheduled, restarted.
void BM_task_monitor_restart_one_listener(benchmark::State& state) { task_monitor_restart(state, 1); }
BENCHMARK(BM_task_monitor_restart_one_listener);

// ---- 2. start + close of many components ---------------------------------------------------------------------
// At two sizes, 12,500 and 100,000: the time per component (items_per_second) must not fall with the size. A close
// whose cost per exit grows with the number of components (a scan at every exit) made 100,000 take 25 times as
// long as 12,500, where 8 times is linear.

constexpr int many = 100'000;
constexpr int fewer = many / 8;

/// Argument: the number of coroutines.
void BM_bare_spawn_cancel(benchmark::State& state) {
    const auto n = static_cast<int>(state.range(0));
    for (auto _ : state) {
        asio::io_context io{1};
        std::vector<asio::cancellation_signal> signals(static_cast<std::size_t>(n));
        int done = 0;
        for (int i = 0; i < n; ++i) {
            asio::co_spawn(io, wait_forever(),
                           asio::bind_cancellation_slot(signals[static_cast<std::size_t>(i)].slot(),
                                                        [&](std::exception_ptr) { ++done; }));
        }
        io.poll();  // every coroutine is now suspended on its timer
        for (auto& signal : signals) {
            signal.emit(asio::cancellation_type::terminal);
        }
        while (done < n) {
            io.run_one();
        }
    }
    state.SetItemsProcessed(state.iterations() * n);
}
BENCHMARK(BM_bare_spawn_cancel)->Arg(fewer)->Arg(many)->Unit(benchmark::kMillisecond)->Iterations(5);

/// Arguments: the monitor's strand pool size (0: one strand per component), the number of components.
void BM_task_monitor_start_close(benchmark::State& state) {
    const auto pool = static_cast<std::size_t>(state.range(0));
    const auto n = static_cast<int>(state.range(1));
    std::vector<std::string> names;
    for (int i = 0; i < n; ++i) {
        names.push_back("component-" + std::to_string(i));
    }
    for (auto _ : state) {
        asio::io_context io{1};
        taskmon::TaskMonitor monitor{io.get_executor(), {}, null_logger(), {}, pool};
        for (const auto& name : names) {
            monitor.register_task(name, wait_forever());
        }
        io.poll();
        close_monitor(io, monitor);
    }
    state.SetItemsProcessed(state.iterations() * n);
}
BENCHMARK(BM_task_monitor_start_close)
    ->Args({static_cast<long>(taskmon::default_strand_pool_size), fewer})
    ->Args({static_cast<long>(taskmon::default_strand_pool_size), many})
    ->Args({0, many})
    ->Unit(benchmark::kMillisecond)
    ->Iterations(5);

// ---- 3. bytes per component ----------------------------------------------------------------------------------

constexpr int sample = 10'000;

/// Live heap bytes per coroutine once `sample` of them are suspended: bare co_spawn with a cancellation slot.
void BM_bytes_bare_spawn(benchmark::State& state) {
    double per = 0;
    for (auto _ : state) {
        asio::io_context io{1};
        std::vector<asio::cancellation_signal> signals(sample);
        const auto before = heap_in_use();
        for (int i = 0; i < sample; ++i) {
            asio::co_spawn(
                io, wait_forever(),
                asio::bind_cancellation_slot(signals[static_cast<std::size_t>(i)].slot(), [](std::exception_ptr) {}));
        }
        io.poll();
        per = static_cast<double>(heap_in_use() - before) / sample;
        for (auto& signal : signals) {
            signal.emit(asio::cancellation_type::terminal);
        }
        io.run();
    }
    state.counters["bytes_per_coroutine"] = per;
}
BENCHMARK(BM_bytes_bare_spawn)->Iterations(1);

/// The same coroutine supervised by a TaskMonitor (names are allocated beforehand and not counted, as the
/// bare baseline has no names; the monitor's own copy of each name is counted). Argument: the strand pool size.
/// Live heap bytes per component once `sample` components, added by `add(monitor, name)` to a monitor with
/// `policy` and `pool` strands, are suspended; then closes the monitor.
template <typename Add>
void measure_bytes(benchmark::State& state, const taskmon::RestartPolicy& policy, std::size_t pool, Add add) {
    double per = 0;
    std::vector<std::string> names;
    for (int i = 0; i < sample; ++i) {
        names.push_back("component-" + std::to_string(i));
    }
    for (auto _ : state) {
        asio::io_context io{1};
        taskmon::TaskMonitor monitor{io.get_executor(), policy, null_logger(), {}, pool};
        const auto before = heap_in_use();
        for (const auto& name : names) {
            add(monitor, name);
        }
        io.poll();
        per = static_cast<double>(heap_in_use() - before) / sample;
        close_monitor(io, monitor);
    }
    state.counters["bytes_per_coroutine"] = per;
}

void BM_bytes_task_monitor(benchmark::State& state) {
    measure_bytes(
        state, {}, static_cast<std::size_t>(state.range(0)),
        [](taskmon::TaskMonitor& monitor, const std::string& name) { monitor.register_task(name, wait_forever()); });
}
BENCHMARK(BM_bytes_task_monitor)->Arg(taskmon::default_strand_pool_size)->Arg(0)->Iterations(1);

/// The same coroutine under a watchdog: a context factory and a liveness policy (a liveness record per instance
/// and a watch timer per component).
void BM_bytes_task_monitor_watched(benchmark::State& state) {
    measure_bytes(state, {.watchdog_timeout = 1h}, taskmon::default_strand_pool_size,
                  [](taskmon::TaskMonitor& monitor, const std::string& name) {
                      monitor.supervise(name, [](taskmon::ComponentContext) { return wait_forever(); });
                  });
}
BENCHMARK(BM_bytes_task_monitor_watched)->Iterations(1);

/// The same coroutine started by spawn() (a short-lived task: no factory, no liveness record, no timer).
void BM_bytes_task_monitor_spawn(benchmark::State& state) {
    measure_bytes(state, {}, taskmon::default_strand_pool_size,
                  [](taskmon::TaskMonitor& monitor, const std::string& name) { monitor.spawn(name, wait_forever()); });
}
BENCHMARK(BM_bytes_task_monitor_spawn)->Iterations(1);

/// A spawned task that returns at once, from spawn() until it left the monitor (started, completed, removed:
/// three events, logged to a null logger), against a bare co_spawn of the same coroutine run to its end.

void BM_bare_spawn_return(benchmark::State& state) {
    asio::io_context io{1};
    for (auto _ : state) {
        asio::co_spawn(io, return_at_once(), [](std::exception_ptr) {});
        io.run();
        io.restart();
    }
    state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_bare_spawn_return);

void BM_task_monitor_spawn_return(benchmark::State& state) {
    asio::io_context io{1};
    taskmon::TaskMonitor monitor{io.get_executor(), {}, null_logger()};
    const std::string name = "conn";
    for (auto _ : state) {
        monitor.spawn(name, return_at_once());
        io.run();  // returns once the task left the monitor (nothing else is pending)
        io.restart();
    }
    state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_task_monitor_spawn_return);

// ---- 4. a heartbeat -----------------------------------------------------------------------------------------

/// ComponentContext::heartbeat() of a live, watched instance: a clock read and relaxed atomic stores.
void BM_component_context_heartbeat(benchmark::State& state) {
    asio::io_context io{1};
    taskmon::TaskMonitor monitor{io.get_executor(), {.watchdog_timeout = 1h}, null_logger()};
    taskmon::ComponentContext context;
    monitor.supervise("beating", [&context](taskmon::ComponentContext ctx) {
        context = ctx;
        return wait_forever();
    });
    io.poll();
    for (auto _ : state) {
        context.heartbeat();
    }
    close_monitor(io, monitor);
}
BENCHMARK(BM_component_context_heartbeat);

}  // namespace

BENCHMARK_MAIN();

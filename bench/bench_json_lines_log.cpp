// What JsonLinesLog adds on the monitor's path, against the same monitor without it, side by side in one run:
// restarts of a component that fails at once (three events each: failed, restart_scheduled, restarted). The
// listener filters and copies each event into JsonLinesLog's queue; its thread formats the line
// (monitor_event_json()) and logs it through a synchronous logger whose sink drops the line (spdlog's null_sink),
// off the monitor's thread. The CPU column is the benchmark thread's own CPU time (the monitor's thread), so the
// difference per restart divided by three is the cost per event on the monitor's path; the worker's time is not
// in it. Counters: lines logged and events dropped (queue full), after a flush() outside the timing.
#include <taskmon/ops/json_lines_log.hpp>
#include <taskmon/task_monitor.hpp>

#include "task_monitor_cases.hpp"

#include <asio/co_spawn.hpp>
#include <asio/io_context.hpp>
#include <benchmark/benchmark.h>
#include <spdlog/sinks/null_sink.h>

#include <exception>
#include <memory>
#include <optional>

namespace {

using taskmon_bench::close_monitor;
using taskmon_bench::fail_at_once;
using taskmon_bench::null_logger;
using taskmon_bench::run_until_next_start;

/// Restarts of a component that fails at once; with a JsonLinesLog if `with_log`.
void restart(benchmark::State& state, bool with_log) {
    asio::io_context io{1};
    auto work = asio::make_work_guard(io);
    long long starts = 0;
    taskmon::TaskMonitor monitor{io.get_executor(), taskmon_bench::restart_at_once(), null_logger()};
    auto lines = std::make_shared<spdlog::logger>("events", std::make_shared<spdlog::sinks::null_sink_st>());
    lines->set_level(spdlog::level::info);
    std::optional<taskmon::JsonLinesLog> log;
    if (with_log) log.emplace(monitor, lines);
    monitor.supervise("c", [&] { return fail_at_once(starts); });
    while (starts == 0) {
        io.run_one();
    }
    for (auto _ : state) {
        const auto before = starts;
        run_until_next_start(io, starts, before);
    }
    state.SetItemsProcessed(starts);
    if (log) {
        log->flush();
        state.counters["lines"] = static_cast<double>(log->stats().lines);
        state.counters["dropped"] = static_cast<double>(log->stats().dropped);
    }
    close_monitor(io, monitor);
}

void BM_restart_without_log(benchmark::State& state) { restart(state, false); }
BENCHMARK(BM_restart_without_log)->Iterations(100'000);

void BM_restart_with_json_lines_log(benchmark::State& state) { restart(state, true); }
BENCHMARK(BM_restart_with_json_lines_log)->Iterations(100'000);

}  // namespace

BENCHMARK_MAIN();

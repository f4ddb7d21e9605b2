// What JsonLinesLog adds on the monitor's path, against the same monitor without it, side by side in one run:
// restarts of a component that fails at once (three events each: failed, restart_scheduled, restarted), each event
// formatted by monitor_event_json() and logged through a synchronous logger whose sink drops the line
// (spdlog's null_sink), so that the figure is JsonLinesLog's own work plus spdlog's formatting of the line, not a
// sink's. The difference per restart divided by three is the cost per event.
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
    if (log) state.counters["lines"] = static_cast<double>(log->stats().lines);
    close_monitor(io, monitor);
}

void BM_restart_without_log(benchmark::State& state) { restart(state, false); }
BENCHMARK(BM_restart_without_log)->Iterations(100'000);

void BM_restart_with_json_lines_log(benchmark::State& state) { restart(state, true); }
BENCHMARK(BM_restart_with_json_lines_log)->Iterations(100'000);

}  // namespace

BENCHMARK_MAIN();

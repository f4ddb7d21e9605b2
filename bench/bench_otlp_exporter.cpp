// What OtlpExporter adds on the monitor's path, against the same monitor without it, side by side in one run:
// restarts of a component that fails at once (three events each: failed, restart_scheduled, restarted; one span
// ended per restart), with no listener and with an exporter whose sender never runs, so that only the listener's
// work is measured: the span's bookkeeping under the exporter's lock and the move into its queue.
//   - BM_restart_with_otlp_exporter: the queue has room (2^21 spans; a fixed 200,000 iterations bound its memory);
//   - BM_restart_with_otlp_exporter_queue_full: the queue is full, every ended span is dropped and counted.
// The difference per restart divided by three is the cost per event.
#include <taskmon/ops/otlp_exporter.hpp>
#include <taskmon/task_monitor.hpp>

#include "task_monitor_cases.hpp"

#include <asio/co_spawn.hpp>
#include <asio/io_context.hpp>
#include <benchmark/benchmark.h>

#include <exception>
#include <memory>
#include <optional>

namespace {

using taskmon_bench::close_monitor;
using taskmon_bench::fail_at_once;
using taskmon_bench::null_logger;
using taskmon_bench::run_until_next_start;

constexpr int iterations = 200'000;

/// Restarts of a component that fails at once; with an exporter of `max_queued_spans` if not 0.
void restart(benchmark::State& state, std::size_t max_queued_spans) {
    asio::io_context io{1};
    asio::io_context exporter_io{1};  // never run: nothing is sent, the queue only fills
    auto work = asio::make_work_guard(io);
    long long starts = 0;
    taskmon::TaskMonitor monitor{io.get_executor(), taskmon_bench::restart_at_once(), null_logger()};
    std::optional<taskmon::OtlpExporter> exporter;
    if (max_queued_spans != 0) {
        taskmon::OtlpExporterSettings settings;
        settings.max_queued_spans = max_queued_spans;
        settings.max_batch_size = max_queued_spans;
        exporter.emplace(exporter_io.get_executor(), monitor, settings);
    }
    monitor.supervise("c", [&] { return fail_at_once(starts); });
    while (starts == 0) {
        io.run_one();
    }
    if (exporter && max_queued_spans == 1) {  // fill the queue before measuring
        while (exporter->stats().queued_spans < 1) {
            io.run_one();
        }
    }
    for (auto _ : state) {
        const auto before = starts;
        run_until_next_start(io, starts, before);
    }
    state.SetItemsProcessed(starts);
    if (exporter) {
        const auto stats = exporter->stats();
        state.counters["queued"] = static_cast<double>(stats.queued_spans);
        state.counters["dropped"] = static_cast<double>(stats.spans_dropped_queue_full);
    }
    close_monitor(io, monitor);
}

void BM_restart_without_exporter(benchmark::State& state) { restart(state, 0); }
BENCHMARK(BM_restart_without_exporter)->Iterations(iterations);

void BM_restart_with_otlp_exporter(benchmark::State& state) { restart(state, std::size_t{1} << 21); }
BENCHMARK(BM_restart_with_otlp_exporter)->Iterations(iterations);

void BM_restart_with_otlp_exporter_queue_full(benchmark::State& state) { restart(state, 1); }
BENCHMARK(BM_restart_with_otlp_exporter_queue_full)->Iterations(iterations);

}  // namespace

BENCHMARK_MAIN();

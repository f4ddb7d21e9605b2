// A durable Supervisor's costs (figures in docs/benchmarks.md, "Durable Supervisor"): the time per step of a run
// of 200 steps with one action each, without a journal, with one at synchronous NORMAL and at FULL, in the same
// program so the ratio compares like with like; and resuming a run of 10,000 steps (max_history_items = 100, so
// each checkpoint's History is bounded). Files go to a fresh directory under TASKMON_BENCH_DIR (default: the system's
// temporary directory), which must be on the disk being measured.
#include <taskmon/agent/durable_run.hpp>
#include <taskmon/agent/sqlite_journal.hpp>

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/io_context.hpp>
#include <benchmark/benchmark.h>
#include <spdlog/sinks/null_sink.h>
#include <spdlog/spdlog.h>

#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <system_error>

#include "bench_dir.hpp"

namespace {

using Sup = taskmon::Supervisor<int, std::string>;

/// A fresh directory for one benchmark (bench_dir.hpp).
struct BenchDir : taskmon_bench::BenchDir {
    BenchDir() : taskmon_bench::BenchDir{"taskmon-bench-durable"} {}
};

enum class Mode { plain, normal, full };

Sup::Functions agent(std::uint64_t steps) {
    return {.perceive = []() -> asio::awaitable<int> { co_return 1; },
            .decide = [steps](const int&, const Sup::Context& ctx) -> asio::awaitable<Sup::DecisionType> {
                if (ctx.step >= steps) co_return Sup::DecisionType::done("done");
                co_return Sup::DecisionType::act({"a" + std::to_string(ctx.step)});
            },
            .act = [](const std::string&) -> asio::awaitable<taskmon::ActionResult> {
                co_return taskmon::ActionResult::ok();
            }};
}

taskmon::DurableRun<std::string> durable(std::shared_ptr<taskmon::JournalWriter> writer, std::string run_id) {
    const auto same = [](const std::string& text) { return text; };
    const auto copy = [](std::string_view blob) { return std::string{blob}; };
    return {.writer = std::move(writer),
            .run_id = std::move(run_id),
            .serialize_action = same,
            .deserialize_action = copy,
            .serialize_result = same,
            .deserialize_result = copy};
}

taskmon::AgentSettings settings(std::uint64_t max_steps) {
    taskmon::AgentSettings s;
    s.capture_interval = std::chrono::milliseconds{0};
    s.shed_capture_interval = std::chrono::milliseconds{0};
    s.max_steps = max_steps;
    s.max_history_items = 100;
    return s;
}

std::shared_ptr<spdlog::logger> quiet() {
    return std::make_shared<spdlog::logger>("bench", std::make_shared<spdlog::sinks::null_sink_mt>());
}

/// Runs `sup` to its end on `io` and returns its History.
Sup::HistoryType run_to_end(asio::io_context& io, Sup& sup) {
    std::optional<Sup::HistoryType> history;
    asio::co_spawn(
        io, [&]() -> asio::awaitable<void> { history = co_await sup.run(); }, asio::detached);
    while (!history) {
        io.run_for(std::chrono::milliseconds{10});
        io.restart();
    }
    return std::move(*history);
}

/// Runs `sup` to its end on `io`; it must complete.
void run(asio::io_context& io, Sup& sup) {
    if (run_to_end(io, sup).status != taskmon::AgentStatus::completed) {
        throw std::runtime_error("the run did not complete");
    }
}

void BM_SupervisorSteps(benchmark::State& state) {
    const auto mode = static_cast<Mode>(state.range(0));
    constexpr std::uint64_t steps = 200;
    BenchDir dir;
    int run_number = 0;
    for (auto _ : state) {
        asio::io_context io;
        std::shared_ptr<taskmon::JournalWriter> writer;
        if (mode != Mode::plain) {
            taskmon::SqliteJournalOptions options;
            options.full_sync = mode == Mode::full;
            writer = std::make_shared<taskmon::JournalWriter>(
                std::make_unique<taskmon::SqliteRunJournal>(dir.file("runs.db"), options));
        }
        {
            auto sup =
                mode == Mode::plain
                    ? std::make_unique<Sup>(io.get_executor(), agent(steps), settings(steps), Sup::Hooks{}, quiet())
                    : std::make_unique<Sup>(io.get_executor(), agent(steps),
                                            durable(writer, "run-" + std::to_string(++run_number)), settings(steps),
                                            Sup::Hooks{}, quiet());
            run(io, *sup);
        }
        writer.reset();
        io.run();
    }
    // Wall seconds per step (printed with an SI prefix: "105u" is 105 µs).
    state.counters["per_step"] =
        benchmark::Counter(static_cast<double>(steps) * static_cast<double>(state.iterations()),
                           benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
}

/// A run of 10,000 steps left running (its end is never written: the fault hook refuses it), then resumed: the
/// time from run() to on_run_start (load, restore of the History and the state), then stop() (refused too).
void BM_ResumeAfter10000Steps(benchmark::State& state) {
    constexpr std::uint64_t steps = 10'000;
    BenchDir dir;
    const std::string path = dir.file("runs.db");
    taskmon::SqliteJournalOptions options;
    options.quick_check_at_open = state.range(0) != 0;
    options.fault_hook = [](std::string_view point) {
        if (point == "status:before") throw std::runtime_error("left running");
    };
    {
        asio::io_context io;
        auto writer =
            std::make_shared<taskmon::JournalWriter>(std::make_unique<taskmon::SqliteRunJournal>(path, options));
        {
            Sup sup{io.get_executor(), agent(steps), durable(writer, "long"), settings(steps), {}, quiet()};
            run(io, sup);
        }
        writer.reset();
        io.run();
    }
    for (auto _ : state) {
        asio::io_context io;
        const auto start = std::chrono::steady_clock::now();
        auto writer =
            std::make_shared<taskmon::JournalWriter>(std::make_unique<taskmon::SqliteRunJournal>(path, options));
        std::optional<std::chrono::steady_clock::duration> resumed_after;
        Sup* running = nullptr;
        Sup::Hooks hooks;
        hooks.on_run_start = [&] {
            resumed_after = std::chrono::steady_clock::now() - start;
            running->stop("measured");
        };
        {
            Sup sup{io.get_executor(),   agent(2 * steps), durable(writer, "long"),
                    settings(2 * steps), std::move(hooks), quiet()};
            running = &sup;
            const auto history = run_to_end(io, sup);
            if (history.counters.steps != steps) throw std::runtime_error("the resume did not restore 10,000 steps");
        }
        writer.reset();
        io.run();
        state.SetIterationTime(std::chrono::duration<double>(*resumed_after).count());
    }
}

}  // namespace

// Real time: a journaled step mostly waits for the writer thread, so its CPU time says little of what it costs.
BENCHMARK(BM_SupervisorSteps)
    ->Arg(static_cast<int>(Mode::plain))
    ->Arg(static_cast<int>(Mode::normal))
    ->Arg(static_cast<int>(Mode::full))
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);
BENCHMARK(BM_ResumeAfter10000Steps)->Arg(0)->Arg(1)->UseManualTime()->Unit(benchmark::kMillisecond);

BENCHMARK_MAIN();

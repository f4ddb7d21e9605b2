// SqliteRunJournal's costs (figures in docs/benchmarks.md, "Run journal"): a checkpoint with a 1 KB state blob,
// an intent + result pair, and a step's three writes alone and as one group, each with synchronous NORMAL and FULL;
// the file's size per step; and resuming a run of
// 10,000 steps (load, and opening the file with its quick_check). Files go to a fresh directory under
// TASKMON_BENCH_DIR (default: the system's temporary directory), which must be on the disk being measured: on
// tmpfs an fsync costs nothing.
#include <taskmon/agent/run_journal.hpp>
#include <taskmon/agent/sqlite_journal.hpp>

#include <benchmark/benchmark.h>

#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <stdexcept>
#include <string>
#include <system_error>

#include "bench_dir.hpp"

namespace {

/// A fresh directory for one benchmark (bench_dir.hpp).
struct BenchDir : taskmon_bench::BenchDir {
    BenchDir() : taskmon_bench::BenchDir{"taskmon-bench-journal"} {}
};

taskmon::SqliteJournalOptions sync_options(bool full_sync) {
    taskmon::SqliteJournalOptions options;
    options.full_sync = full_sync;
    return options;
}

const std::string state_1kb(1024, 's');

// One checkpoint per iteration: a 64-byte step record and a 1 KB state, no history. Counter bytes_per_step: the
// file's size once closed (the log checkpointed into it) over the steps written.
void checkpoint(benchmark::State& state) {
    BenchDir dir;
    std::string path = dir.file("journal.db");
    std::uint64_t step = 0;
    {
        taskmon::SqliteRunJournal journal{path, sync_options(state.range(0) != 0)};
        journal.begin_run("run", "settings", std::chrono::system_clock::now());
        const std::string record(64, 'r');
        for (auto _ : state) {
            ++step;
            journal.checkpoint("run", {step, record, state_1kb, {}, {}});
        }
    }
    state.counters["bytes_per_step"] =
        static_cast<double>(std::filesystem::file_size(path)) / static_cast<double>(step == 0 ? 1 : step);
    state.SetLabel(state.range(0) != 0 ? "synchronous=FULL" : "synchronous=NORMAL");
}

// One intent (synced before the action would be dispatched) and its result per iteration: two transactions.
void intent_and_result(benchmark::State& state) {
    BenchDir dir;
    taskmon::SqliteRunJournal journal{dir.file("journal.db"), sync_options(state.range(0) != 0)};
    journal.begin_run("run", "settings", std::chrono::system_clock::now());
    const std::string action(128, 'a');
    std::uint64_t count = 0;
    for (auto _ : state) {
        std::uint64_t step = 1 + count / 1000;
        auto index = static_cast<std::uint32_t>(count % 1000);
        ++count;
        std::string key = taskmon::idempotency_key("run", step, index, action);
        journal.record_intent({"run", step, index, key, action});
        journal.record_action_result(key, taskmon::JournalOutcome::succeeded, "ok");
    }
    state.SetLabel(state.range(0) != 0 ? "synchronous=FULL" : "synchronous=NORMAL");
}

// A run of 10,000 steps (1 KB state, a history blob of 4 KB every 100 steps, two actions per step), written once.
constexpr std::uint64_t resume_steps = 10'000;

// A whole step's writes per iteration, as the writer commits them when they are queued together: the result of the
// step's action, its checkpoint (64-byte record, 1 KB state) and the next step's intent, separately (three
// transactions) or in one group() (one commit).
void step_writes(benchmark::State& state) {
    const bool grouped = state.range(1) != 0;
    BenchDir dir;
    taskmon::SqliteRunJournal journal{dir.file("journal.db"), sync_options(state.range(0) != 0)};
    journal.begin_run("run", "settings", std::chrono::system_clock::now());
    const std::string action(128, 'a');
    const std::string record(64, 'r');
    std::uint64_t step = 1;
    std::string key = taskmon::idempotency_key("run", step, 0, action);
    journal.record_intent({"run", step, 0, key, action});
    for (auto _ : state) {
        std::string next = taskmon::idempotency_key("run", step + 1, 0, action);
        const auto writes = [&] {
            journal.record_action_result(key, taskmon::JournalOutcome::succeeded, "ok");
            journal.checkpoint("run", {step, record, state_1kb, {}, {}});
            journal.record_intent({"run", step + 1, 0, next, action});
        };
        if (grouped) {
            journal.group(writes);
        } else {
            writes();
        }
        ++step;
        key = std::move(next);
    }
    state.SetLabel(std::string{state.range(0) != 0 ? "synchronous=FULL" : "synchronous=NORMAL"} +
                   (grouped ? ", one group" : ", three transactions"));
}

void write_long_run(const std::string& path) {
    taskmon::SqliteRunJournal journal{path};
    journal.begin_run("run", "settings", std::chrono::system_clock::now());
    const std::string history(4096, 'h');
    for (std::uint64_t step = 1; step <= resume_steps; ++step) {
        for (std::uint32_t index = 0; index < 2; ++index) {
            std::string key = taskmon::idempotency_key("run", step, index, "act");
            journal.record_intent({"run", step, index, key, "act"});
            journal.record_action_result(key, taskmon::JournalOutcome::succeeded, "ok");
        }
        journal.checkpoint("run", {step, "record", state_1kb, step % 100 == 0 ? history : std::string{}, {}});
    }
}

// load() of the 10,000-step run on an open journal: what a resume reads.
void load_long_run(benchmark::State& state) {
    BenchDir dir;
    std::string path = dir.file("journal.db");
    write_long_run(path);
    taskmon::SqliteRunJournal journal{path};
    for (auto _ : state) {
        auto snapshot = journal.load("run");
        benchmark::DoNotOptimize(snapshot);
    }
    state.counters["file_mb"] = static_cast<double>(std::filesystem::file_size(path)) / 1e6;
}

// Opening the 10,000-step run's file (schema check, quick_check of every page, WAL mode) and loading the run:
// a resume after a restart.
void open_and_load_long_run(benchmark::State& state) {
    BenchDir dir;
    std::string path = dir.file("journal.db");
    write_long_run(path);
    taskmon::SqliteJournalOptions options;
    options.quick_check_at_open = state.range(0) != 0;
    for (auto _ : state) {
        taskmon::SqliteRunJournal journal{path, options};
        auto snapshot = journal.load("run");
        benchmark::DoNotOptimize(snapshot);
    }
    state.SetLabel(state.range(0) != 0 ? "quick_check" : "no quick_check");
}

}  // namespace

BENCHMARK(checkpoint)->Arg(0)->Arg(1)->Unit(benchmark::kMicrosecond);
BENCHMARK(intent_and_result)->Arg(0)->Arg(1)->Unit(benchmark::kMicrosecond);
BENCHMARK(step_writes)->Args({0, 0})->Args({0, 1})->Args({1, 0})->Args({1, 1})->Unit(benchmark::kMicrosecond);
BENCHMARK(load_long_run)->Unit(benchmark::kMicrosecond);
BENCHMARK(open_and_load_long_run)->Arg(1)->Arg(0)->Unit(benchmark::kMillisecond);

BENCHMARK_MAIN();

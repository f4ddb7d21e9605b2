// durable_agent: a Supervisor run journaled in SQLite (docs/durable_runs.md) that can be killed at any moment
// (kill -9) and started again with the same journal file: it resumes from its last checkpoint and never runs an
// action twice. Ctrl-C (or SIGTERM) stops it cleanly, and the next start resumes it too. Each action prints
// "executed <action>"; a resumed run prints what it found in the journal.
//
//   durable_agent runs.db        # kill it with kill -9 (or Ctrl-C) mid-run, then run the same command again
#include <taskmon/agent/durable_run.hpp>
#include <taskmon/agent/sqlite_journal.hpp>

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/io_context.hpp>
#include <asio/signal_set.hpp>
#include <asio/steady_timer.hpp>
#include <asio/this_coro.hpp>
#include <asio/use_awaitable.hpp>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include <chrono>
#include <csignal>
#include <cstdio>
#include <exception>
#include <memory>
#include <optional>
#include <string>

namespace {

using Agent = taskmon::Supervisor<int, std::string>;
constexpr std::uint64_t last_step = 20;  // 19 steps with one action each, then done

taskmon::DurableRun<std::string> journaled(std::shared_ptr<taskmon::JournalWriter> writer) {
    const auto same = [](const std::string& text) { return text; };
    const auto copy = [](std::string_view blob) { return std::string{blob}; };
    return {.writer = std::move(writer),
            .run_id = "demo",
            .serialize_action = same,
            .deserialize_action = copy,
            .serialize_result = same,
            .deserialize_result = copy};
}

}  // namespace

int main(int argc, char** argv) {
    if (argc != 2) {
        std::fprintf(stderr, "usage: durable_agent <journal file>\n");
        return 2;
    }
    try {
        asio::io_context io;
        auto writer = std::make_shared<taskmon::JournalWriter>(std::make_unique<taskmon::SqliteRunJournal>(argv[1]));
        Agent::Functions agent{
            .perceive = []() -> asio::awaitable<int> { co_return 1; },
            .decide = [](const int&, const Agent::Context& ctx) -> asio::awaitable<Agent::DecisionType> {
                if (ctx.step >= last_step) co_return Agent::DecisionType::done("all tasks done");
                co_return Agent::DecisionType::act({"task-" + std::to_string(ctx.step)});
            },
            .act = [](const std::string& action) -> asio::awaitable<taskmon::ActionResult> {
                // A slow side effect, so that a kill lands in the middle of the run.
                asio::steady_timer timer{co_await asio::this_coro::executor, std::chrono::milliseconds{50}};
                co_await timer.async_wait(asio::use_awaitable);
                std::printf("executed %s\n", action.c_str());
                std::fflush(stdout);
                co_return taskmon::ActionResult::ok();
            }};
        taskmon::AgentSettings settings;
        settings.capture_interval = std::chrono::milliseconds{0};
        settings.shed_capture_interval = std::chrono::milliseconds{0};
        std::optional<std::uint64_t> first_step;
        Agent::Hooks hooks;
        hooks.on_step_start = [&first_step](std::uint64_t step) {
            if (!first_step) first_step = step;
        };
        auto logger = spdlog::stderr_logger_mt("durable_agent");
        logger->set_level(spdlog::level::err);  // the default restart policies warn at start
        std::optional<Agent::HistoryType> history;
        std::exception_ptr error;
        {
            Agent robot{io.get_executor(), agent, journaled(writer), settings, std::move(hooks), logger};
            // A clean stop: the run is journaled "stopped", and the next start resumes it.
            asio::signal_set signals{io, SIGINT, SIGTERM};
            signals.async_wait([&robot](const std::error_code& ec, int) {
                if (!ec) robot.stop("stopped by a signal");
            });
            asio::co_spawn(
                io, [&]() -> asio::awaitable<void> { history = co_await robot.run(); },
                [&error, &signals](std::exception_ptr e) {
                    error = e;
                    signals.cancel();  // io.run() returns once nothing waits
                });
            io.run();
        }
        writer.reset();
        if (error) std::rethrow_exception(error);
        if (first_step && *first_step > 1)
            std::printf("resumed the run at step %llu\n", static_cast<unsigned long long>(*first_step));
        for (const auto& event : history->events) {
            if (event.kind == taskmon::HistoryEventKind::action_skipped_committed) {
                std::printf("skipped (already done before the crash): step %llu %s\n",
                            static_cast<unsigned long long>(event.step.value_or(0)), event.message.c_str());
            } else if (event.kind == taskmon::HistoryEventKind::action_reconciled) {
                std::printf("in flight at the crash, not run again: step %llu %s\n",
                            static_cast<unsigned long long>(event.step.value_or(0)), event.message.c_str());
            }
        }
        std::printf("run %s: %s\n", std::string{taskmon::to_string(history->status)}.c_str(), history->reason.c_str());
        if (history->status == taskmon::AgentStatus::stopped) {
            std::printf("stopped; run the same command again to resume\n");
            return 0;
        }
        return history->status == taskmon::AgentStatus::completed ? 0 : 1;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "durable_agent: %s\n", e.what());
        return 1;
    }
}

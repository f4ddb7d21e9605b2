// A small server for the shell tests of taskmon/ops/health_server.hpp (tests/scripts/*.sh): a TaskMonitor with a
// component in each interesting state, its MonitorMetrics and an AgentMetrics, served by a HealthServer on an
// ephemeral loopback port. Writes the port to argv[1] once listening; on SIGTERM or SIGINT closes the server
// and the monitor and exits 0 (so the scripts also check a clean shutdown).
#include <taskmon/agent/supervisor.hpp>
#include <taskmon/ops/agent_metrics.hpp>
#include <taskmon/ops/health.hpp>
#include <taskmon/ops/health_server.hpp>
#include <taskmon/ops/monitor_metrics.hpp>
#include <taskmon/task_monitor.hpp>

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/io_context.hpp>
#include <asio/signal_set.hpp>
#include <asio/steady_timer.hpp>
#include <asio/this_coro.hpp>
#include <asio/use_awaitable.hpp>
#include <spdlog/sinks/null_sink.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <stdexcept>
#include <string>

using namespace std::chrono_literals;

namespace {

asio::awaitable<void> runs_forever() {
    asio::steady_timer timer{co_await asio::this_coro::executor};
    for (;;) {
        timer.expires_after(1h);
        co_await timer.async_wait(asio::use_awaitable);
    }
}

asio::awaitable<void> fails_at_once() {
    co_await asio::post(co_await asio::this_coro::executor, asio::use_awaitable);
    throw std::runtime_error("disk \"full\"\nsecond line");
}

}  // namespace

int main(int argc, char** argv) {
    if (argc != 2) {
        std::fprintf(stderr, "usage: %s PORT_FILE\n", argv[0]);
        return 2;
    }
    auto logger = std::make_shared<spdlog::logger>("fixture", std::make_shared<spdlog::sinks::null_sink_mt>());
    asio::io_context io;
    taskmon::TaskMonitor monitor{io.get_executor(), {.max_restart_attempts = 2, .base_backoff = 1ms}, logger};
    taskmon::MonitorMetrics metrics{monitor};
    taskmon::AgentMetrics agent_metrics{{{"agent", "fixture"}}};
    auto hooks = agent_metrics.wrap(taskmon::SupervisorHooks<int, std::string>{});
    hooks.on_status_change({taskmon::AgentStatus::pending, taskmon::AgentStatus::running, "start"});
    taskmon::StepRecord<int, std::string> step;
    step.outcome = taskmon::StepOutcome::succeeded;
    step.fate = taskmon::DecisionFate::executed;
    hooks.on_step_end(step);

    monitor.supervise("web", [] { return runs_forever(); });
    monitor.supervise("weird \"name\"\\", [] { return runs_forever(); });  // label escaping
    monitor.supervise("db", [] { return fails_at_once(); });               // gives up after 2 restarts

    taskmon::HealthServer server{
        io.get_executor(),
        {.health = [&] { return taskmon::check_health(monitor, taskmon::CriticalComponents::only({"web"})); },
         .metrics =
             [&] {
                 auto families = metrics.collect();
                 taskmon::merge_families(families, agent_metrics.collect());
                 return families;
             }},
        {.port = 0, .read_timeout = 500ms},
        logger};
    {
        std::ofstream out{argv[1]};
        out << server.local_endpoint().port() << '\n';
    }
    asio::signal_set signals{io, SIGTERM, SIGINT};
    signals.async_wait([&](asio::error_code ec, int) {
        if (ec) return;
        asio::co_spawn(
            io,
            [&]() -> asio::awaitable<void> {
                co_await server.close();
                co_await monitor.close();
            },
            asio::detached);
    });
    io.run();  // returns once the server and the monitor are closed
    std::puts("closed");
    return 0;
}

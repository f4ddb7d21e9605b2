// A small server for the shell tests of taskmon/ops/health_server.hpp (tests/scripts/*.sh): a TaskMonitor with a
// component in each interesting state, its MonitorMetrics and an AgentMetrics, served by a HealthServer on an
// ephemeral loopback port. Writes the port to argv[1] once listening; on SIGTERM or SIGINT closes the server
// and the monitor and exits 0 (so the scripts also check a clean shutdown). It also serves the live view
// (/api/tree, /events, /ui); with argv[2] == "ui" (the browser test) a group "pipeline" (rest_for_one) holds the
// component "on_demand", which fails each time the process receives SIGUSR1, a Supervisor run "agent" (a step
// every 100 ms, no actions) is on the page through a RunView, and the operator actions (components' and runs')
// are enabled with the token in argv[3].
#include <taskmon/agent/supervisor.hpp>
#include <taskmon/ops/agent_metrics.hpp>
#include <taskmon/ops/health.hpp>
#include <taskmon/ops/health_server.hpp>
#include <taskmon/ops/monitor_json.hpp>
#include <taskmon/ops/monitor_metrics.hpp>
#include <taskmon/ops/run_view.hpp>
#include <taskmon/task_monitor.hpp>

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/io_context.hpp>
#include <asio/signal_set.hpp>
#include <asio/steady_timer.hpp>
#include <asio/this_coro.hpp>
#include <asio/use_awaitable.hpp>
#include <spdlog/sinks/null_sink.h>

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

using namespace std::chrono_literals;

namespace {

asio::awaitable<void> runs_forever() {
    asio::steady_timer timer{co_await asio::this_coro::executor};
    for (;;) {
        timer.expires_after(1h);
        co_await timer.async_wait(asio::use_awaitable);
    }
}

/// Fails when the process receives SIGUSR1 (the browser test's forced failure); waits again once restarted.
asio::awaitable<void> fails_on_sigusr1() {
    asio::signal_set signal{co_await asio::this_coro::executor, SIGUSR1};
    co_await signal.async_wait(asio::use_awaitable);
    throw std::runtime_error("forced failure <b>not bold</b>");
}

asio::awaitable<void> fails_at_once() {
    co_await asio::post(co_await asio::this_coro::executor, asio::use_awaitable);
    throw std::runtime_error("disk \"full\"\nsecond line");
}

using Agent = taskmon::Supervisor<int, std::string>;

std::unique_ptr<Agent> make_agent(asio::io_context& io, const taskmon::RunView& view,
                                  std::shared_ptr<spdlog::logger> logger) {
    return std::make_unique<Agent>(
        io.get_executor(),
        Agent::Functions{.perceive = []() -> asio::awaitable<int> { co_return 1; },
                         .decide = [](const int&, const Agent::Context&) -> asio::awaitable<Agent::DecisionType> {
                             co_return Agent::DecisionType::act({});
                         },
                         .act = [](const std::string&) -> asio::awaitable<taskmon::ActionResult> {
                             co_return taskmon::ActionResult::ok();
                         }},
        taskmon::AgentSettings{.max_steps = 1'000'000}, view.wrap(Agent::Hooks{}), std::move(logger));
}

}  // namespace

int main(int argc, char** argv) {
    const bool ui = (argc == 4 || argc == 5) && std::string{argv[2]} == "ui";
    if (argc != 2 && !ui) {
        std::fprintf(stderr, "usage: %s PORT_FILE [ui TOKEN [EXTRA_COMPONENTS]]\n", argv[0]);
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
    // Keeps SIGUSR1 handled between two instances of on_demand (Asio restores the default action, which ends the
    // process, when the last signal_set of a signal goes away); it never waits, so it is no work for run().
    asio::signal_set usr1_guard{io};
    if (ui) {
        usr1_guard.add(SIGUSR1);
        monitor.supervise_group(
            "pipeline",
            {{.name = "on_demand",
              .factory = [] { return fails_on_sigusr1(); },
              .policy = taskmon::RestartPolicy{.max_restart_attempts = taskmon::unlimited_restart_attempts,
                                               .base_backoff = 1ms}},
             {.name = "sink", .factory = [] { return runs_forever(); }}},
            {.strategy = taskmon::RestartStrategy::rest_for_one});
        // A watched component: its row shows the liveness deadline left (3 h after its start).
        monitor.supervise(
            "watched",
            [](const taskmon::ComponentContext& ctx) {
                ctx.heartbeat();
                return runs_forever();
            },
            taskmon::RestartPolicy{.watchdog_timeout = 3h});
        // The page with many components: EXTRA_COMPONENTS more, in groups of 50.
        const int extra = argc == 5 ? std::stoi(argv[4]) : 0;
        for (int first = 0; first < extra; first += 50) {
            std::vector<taskmon::GroupMember> members;
            for (int i = first; i < std::min(first + 50, extra); ++i) {
                members.push_back({.name = fmt::format("bulk-{:04}", i), .factory = [] { return runs_forever(); }});
            }
            monitor.supervise_group(fmt::format("shard-{:02}", first / 50), std::move(members));
        }
    }

    taskmon::RunView run_view{"agent"};
    std::unique_ptr<Agent> agent;
    bool agent_done = false;
    if (ui) agent = make_agent(io, run_view, logger);

    taskmon::HealthServer server{
        io.get_executor(),
        {.health = [&] { return taskmon::check_health(monitor, taskmon::CriticalComponents::only({"web"})); },
         .metrics =
             [&] {
                 auto families = metrics.collect();
                 taskmon::merge_families(families, agent_metrics.collect());
                 return families;
             },
         .tree = [&](std::uint64_t last) { return taskmon::monitor_snapshot_json(monitor, last); },
         .subscribe = [&](taskmon::MonitorEventListener l) { return monitor.subscribe(std::move(l)); },
         .act = [&](const std::string& name, taskmon::OperatorAction a) { taskmon::apply(monitor, name, a); },
         .action_token = ui ? std::string{argv[3]} : std::string{},
         .runs = ui ? std::function<std::string()>{[&] { return taskmon::run_views_json({run_view}); }}
                    : std::function<std::string()>{},
         .run_act =
             [&](const std::string& name, taskmon::RunAction a) {
                 if (!agent || name != "agent") throw std::invalid_argument("no run named " + name);
                 taskmon::apply(*agent, a);
             }},
        {.port = 0, .read_timeout = 500ms},
        logger};
    {
        std::ofstream out{argv[1]};
        out << server.local_endpoint().port() << '\n';
    }
    if (agent) {
        run_view.set_sink([&server](std::string json) { server.publish(std::move(json)); });
        asio::co_spawn(
            io,
            [&]() -> asio::awaitable<void> {
                auto running = agent->run();
                (void)co_await std::move(running);
                agent_done = true;
            },
            asio::detached);
    }
    asio::signal_set signals{io, SIGTERM, SIGINT};
    signals.async_wait([&](asio::error_code ec, int) {
        if (ec) return;
        asio::co_spawn(
            io,
            [&]() -> asio::awaitable<void> {
                if (agent) {
                    agent->stop("SIGTERM");
                    asio::steady_timer poll{io};
                    while (!agent_done) {  // run() completes once its components closed
                        poll.expires_after(1ms);
                        co_await poll.async_wait(asio::use_awaitable);
                    }
                }
                co_await server.close();
                co_await monitor.close();
            },
            asio::detached);
    });
    io.run();  // returns once the server and the monitor are closed
    std::puts("closed");
    return 0;
}

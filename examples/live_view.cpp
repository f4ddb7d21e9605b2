// live_view: a small service with a live view of its supervision tree in the browser, until Ctrl-C.
//
//   api        heartbeats every second under a 10 s watchdog: its row shows the liveness deadline left
//   cache      fails every 4 s (a lost connection): restarts with a backoff, its history strip fills
//   storage    a rest_for_one group: db (ready after 300 ms), then indexer, which needs it
//   planner    a Supervisor run (perceive → decide → act, one step a second), shown above the tree
//
// Open http://127.0.0.1:8080/ui (the port is --port's): the tree as declared, each component's state, restarts,
// backoff, last error, heartbeat age and deadline, updated live from /events. /api/tree is the same as JSON.
// With TASKMON_ACTION_TOKEN set (16 or more printable characters), the page's buttons restart, reset, disable and
// enable components and pause, resume and stop the run: enter the token on the page. Without it the page is
// read-only and every action is refused (401).
//
// Usage: live_view [--port N] [--port-file FILE] [--otlp HOST:PORT] [--json-lines]
//   --port N          listen on 127.0.0.1:N (8080; 0: a free port, printed and written to --port-file)
//   --otlp HOST:PORT  also send every incarnation as a span to an OpenTelemetry collector (OTLP/HTTP JSON)
//   --json-lines      also log every event as one line of JSON on stdout
// Ctrl-C (SIGINT) or SIGTERM stops the run, the server and the monitor, in that order.
#include <taskmon/agent/supervisor.hpp>
#include <taskmon/ops/agent_metrics.hpp>
#include <taskmon/ops/health.hpp>
#include <taskmon/ops/health_server.hpp>
#include <taskmon/ops/json_lines_log.hpp>
#include <taskmon/ops/monitor_json.hpp>
#include <taskmon/ops/monitor_metrics.hpp>
#include <taskmon/ops/otlp_exporter.hpp>
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
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>

using namespace std::chrono_literals;

namespace {

asio::awaitable<void> sleep(std::chrono::milliseconds d) {
    asio::steady_timer timer{co_await asio::this_coro::executor, d};
    co_await timer.async_wait(asio::use_awaitable);
}

asio::awaitable<void> api(taskmon::ComponentContext ctx) {
    for (;;) {
        ctx.heartbeat();
        co_await sleep(1s);
    }
}

asio::awaitable<void> cache() {
    co_await sleep(4s);
    throw std::runtime_error("connection to cache-1:6379 lost");
}

asio::awaitable<void> db(taskmon::ComponentContext ctx) {
    co_await sleep(300ms);
    ctx.ready();
    for (;;) co_await sleep(1h);
}

asio::awaitable<void> indexer() {
    for (;;) co_await sleep(1h);
}

using Planner = taskmon::Supervisor<int, std::string>;

Planner::Functions planner_agent() {
    return {.perceive = []() -> asio::awaitable<int> { co_return 1; },
            .decide = [](const int&, const Planner::Context& context) -> asio::awaitable<Planner::DecisionType> {
                co_return Planner::DecisionType::act({"plan step " + std::to_string(context.step)});
            },
            .act = [](const std::string&) -> asio::awaitable<taskmon::ActionResult> {
                co_return taskmon::ActionResult::ok();
            }};
}

struct Options {
    std::uint16_t port = 8080;
    std::string port_file;
    std::optional<std::pair<std::string, std::uint16_t>> otlp;
    bool json_lines = false;
};

std::uint16_t parse_port(std::string_view text, const char* what) {
    const int port = std::stoi(std::string{text});
    if (port < 0 || port > 65535) throw std::invalid_argument(std::string{what} + ": not a port: " + std::string{text});
    return static_cast<std::uint16_t>(port);
}

Options parse(int argc, char** argv) {
    Options o;
    for (int i = 1; i < argc; ++i) {
        const std::string_view arg = argv[i];
        const bool has_value = i + 1 < argc;
        if (arg == "--port" && has_value) {
            o.port = parse_port(argv[++i], "--port");
        } else if (arg == "--port-file" && has_value) {
            o.port_file = argv[++i];
        } else if (arg == "--otlp" && has_value) {
            const std::string_view value = argv[++i];
            const auto colon = value.rfind(':');
            if (colon == std::string_view::npos) throw std::invalid_argument("--otlp: expected HOST:PORT");
            o.otlp.emplace(std::string{value.substr(0, colon)}, parse_port(value.substr(colon + 1), "--otlp"));
        } else if (arg == "--json-lines") {
            o.json_lines = true;
        } else {
            throw std::invalid_argument("unknown argument: " + std::string{arg});
        }
    }
    return o;
}

}  // namespace

int main(int argc, char** argv) try {
    const Options options = parse(argc, argv);
    const char* token = std::getenv("TASKMON_ACTION_TOKEN");
    auto logger = std::make_shared<spdlog::logger>("live_view", std::make_shared<spdlog::sinks::stdout_sink_mt>());
    asio::io_context io;

    taskmon::TaskMonitor monitor{io.get_executor(), {.base_backoff = 500ms, .max_backoff = 8s}, logger};
    taskmon::MonitorMetrics metrics{monitor};
    std::optional<taskmon::JsonLinesLog> json_lines;
    if (options.json_lines) {
        auto out = std::make_shared<spdlog::logger>("events", std::make_shared<spdlog::sinks::stdout_sink_mt>());
        out->set_pattern("%v");
        json_lines.emplace(monitor, std::move(out));
    }
    std::optional<taskmon::OtlpExporter> traces;
    if (options.otlp) {
        traces.emplace(io.get_executor(), monitor,
                       taskmon::OtlpExporterSettings{
                           .host = options.otlp->first, .port = options.otlp->second, .service_name = "live_view"});
    }

    monitor.supervise("api", api, taskmon::RestartPolicy{.watchdog_timeout = 10s});
    monitor.supervise("cache", cache, taskmon::RestartPolicy::connection());
    monitor.supervise_group("storage", {{.name = "db", .context_factory = db}, {.name = "indexer", .factory = indexer}},
                            {.strategy = taskmon::RestartStrategy::rest_for_one});

    taskmon::RunView view{"planner"};
    taskmon::AgentMetrics agent_metrics{{{"agent", "planner"}}};
    Planner planner{io.get_executor(), planner_agent(),
                    taskmon::AgentSettings{.max_steps = 10'000'000, .capture_interval = 1s},
                    view.wrap(agent_metrics.wrap(Planner::Hooks{})),
                    std::make_shared<spdlog::logger>("planner", std::make_shared<spdlog::sinks::null_sink_mt>())};

    taskmon::HealthServer server{
        io.get_executor(),
        {.health = [&] { return taskmon::check_health(monitor); },
         .metrics =
             [&] {
                 auto families = metrics.collect();
                 taskmon::merge_families(families, agent_metrics.collect());
                 return families;
             },
         .tree = [&](std::uint64_t last) { return taskmon::monitor_snapshot_json(monitor, last); },
         .subscribe = [&](taskmon::MonitorEventListener l) { return monitor.subscribe(std::move(l)); },
         .act = [&](const std::string& name, taskmon::OperatorAction a) { taskmon::apply(monitor, name, a); },
         .action_token = token ? std::string{token} : std::string{},
         .runs = [&] { return taskmon::run_views_json({view}); },
         .run_act =
             [&](const std::string& name, taskmon::RunAction a) {
                 if (name != "planner") throw std::invalid_argument("no run named " + name);
                 taskmon::apply(planner, a);
             }},
        {.address = "127.0.0.1", .port = options.port},
        logger};
    view.set_sink([&server](std::string json) { server.publish(std::move(json)); });
    const auto port = server.local_endpoint().port();
    std::printf("live view: http://127.0.0.1:%u/ui (operator actions %s)\n", port,
                token ? "on: enter TASKMON_ACTION_TOKEN on the page" : "off: TASKMON_ACTION_TOKEN is not set");
    std::fflush(stdout);
    if (!options.port_file.empty()) std::ofstream{options.port_file} << port << '\n';

    bool run_ended = false;
    asio::co_spawn(
        io,
        [&]() -> asio::awaitable<void> {
            auto running = planner.run();
            (void)co_await std::move(running);
            run_ended = true;
        },
        asio::detached);

    asio::signal_set signals{io, SIGINT, SIGTERM};
    signals.async_wait([&](asio::error_code ec, int) {
        if (ec) return;
        asio::co_spawn(
            io,
            [&]() -> asio::awaitable<void> {
                planner.stop("signal");
                while (!run_ended) co_await sleep(10ms);  // run() completes once its components closed
                co_await server.close();
                co_await monitor.close();
                if (traces) co_await traces->close(5s);
            },
            asio::detached);
    });
    io.run();  // returns once the run, the server, the monitor and the exporter are closed
    std::puts("closed");
    return 0;
} catch (const std::exception& e) {
    std::fprintf(stderr, "live_view: %s\n", e.what());
    return 2;
}

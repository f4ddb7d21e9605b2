// supervision_tree_demo: a small supervision tree in a TaskMonitor, for a few seconds.
//
//   app (one_for_one)
//   ├── metrics               steady; untouched by the connection's trouble
//   └── connection (one_for_all, at most 3 group restarts per 10 seconds)
//       ├── socket            connects (ready after 200 ms); the others need it
//       ├── reader            the peer resets the connection under it, twice
//       └── writer            steady
//
// Watch the log: the members start in order, each once the one before is ready; when reader fails, writer and
// socket are stopped in reverse order and confirmed gone, then after reader's backoff all three start again in
// order (a one_for_all restart). The third connection stays up. metrics never restarts.
//
// Usage: supervision_tree_demo [--escalate]
//   --escalate   the peer keeps resetting: "connection" exceeds its limit, gives up and is restarted as a whole
//                by "app"; "app" allows one such restart per minute, so the next give-up reaches the top of the
//                tree and main() receives the escalation (async_wait_escalation) and closes the monitor.
//
// Ctrl-C (SIGINT) or SIGTERM closes the monitor early; the tree is stopped in reverse order.
#include <taskmon/task_monitor.hpp>

#include <asio/co_spawn.hpp>
#include <asio/io_context.hpp>
#include <asio/signal_set.hpp>
#include <asio/steady_timer.hpp>
#include <asio/this_coro.hpp>
#include <asio/use_awaitable.hpp>
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <spdlog/sinks/stdout_color_sinks.h>

#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <memory>
#include <stdexcept>
#include <string_view>
#include <system_error>
#include <utility>

using namespace std::chrono_literals;

namespace {

asio::awaitable<void> sleep(std::chrono::milliseconds d) {
    asio::steady_timer timer{co_await asio::this_coro::executor, d};
    co_await timer.async_wait(asio::use_awaitable);
}

/// Connects (200 ms), says it is ready, then holds the connection.
asio::awaitable<void> socket(taskmon::ComponentContext ctx) {
    co_await sleep(200ms);
    ctx.ready();
    for (;;) {
        co_await sleep(1s);
    }
}

/// Reads until the peer resets the connection: 600 ms into each of its first `resets` starts.
asio::awaitable<void> reader(int& starts, int resets) {
    co_await sleep(600ms);
    if (++starts <= resets) {
        throw std::runtime_error("connection reset by peer");
    }
    for (;;) {
        co_await sleep(1s);
    }
}

asio::awaitable<void> steady() {
    for (;;) {
        co_await sleep(250ms);
    }
}

}  // namespace

int main(int argc, char** argv) {
    bool escalate = false;
    if (argc == 2 && std::strcmp(argv[1], "--escalate") == 0) {
        escalate = true;
    } else if (argc != 1) {
        fmt::print(stderr, "usage: {} [--escalate]\n", argv[0]);
        return 2;
    }
    const int resets = escalate ? 1000 : 2;
    fmt::print(
        "supervision_tree_demo: app(metrics, connection(socket, reader, writer)); the peer resets the "
        "connection {}\n",
        escalate ? "every time (--escalate)" : "twice");
    std::fflush(stdout);  // the log lines go through their own stream

    auto sink = std::make_shared<spdlog::sinks::stdout_color_sink_mt>();
    auto logger = std::make_shared<spdlog::logger>("tree_demo", sink);
    logger->set_pattern("%H:%M:%S.%e %^%-7l%$ %v");
    asio::io_context io;
    const taskmon::RestartPolicy policy{.max_restart_attempts = taskmon::unlimited_restart_attempts,
                                        .base_backoff = 300ms,
                                        .max_backoff = 300ms,
                                        .shutdown_timeout = 500ms};
    const auto members_policy = [&] {
        auto p = policy;
        p.startup_timeout = 2s;  // ready() is expected within 2 s: the next member waits for it
        return p;
    }();
    taskmon::TaskMonitor monitor{io.get_executor(), policy, logger};

    int reader_starts = 0;
    monitor.supervise_group("app", {{.name = "metrics", .factory = [] { return steady(); }}},
                            {.max_restarts = 1, .restart_window = 1min});
    monitor.supervise_group(
        "connection",
        {{.name = "socket",
          .context_factory = [](taskmon::ComponentContext ctx) { return socket(std::move(ctx)); },
          .policy = members_policy},
         {.name = "reader", .factory = [&] { return reader(reader_starts, resets); }},
         {.name = "writer", .factory = [] { return steady(); }}},
        {.strategy = taskmon::RestartStrategy::one_for_all, .max_restarts = 3, .restart_window = 10s}, "app");

    // One way out: the end of the script, an escalation from the top of the tree, or SIGINT/SIGTERM.
    asio::signal_set signals{io, SIGINT, SIGTERM};
    asio::steady_timer script_timer{io, escalate ? 30s : 5s};
    bool closing = false;
    const auto shut_down = [&](std::string_view why) {
        if (std::exchange(closing, true)) {
            return;
        }
        fmt::print("-- {}: closing the monitor\n", why);
        std::fflush(stdout);
        signals.cancel();
        script_timer.cancel();
        monitor.async_close([] { fmt::print("-- monitor closed\n"); });
    };
    signals.async_wait([&](std::error_code ec, int signal) {
        if (!ec) {
            shut_down(signal == SIGINT ? "SIGINT" : "SIGTERM");
        }
    });
    script_timer.async_wait([&](std::error_code ec) {
        if (!ec) {
            shut_down("time is up");
        }
    });
    monitor.async_wait_escalation([&](std::error_code ec, const taskmon::MonitorEvent& e) {
        if (!ec) {
            fmt::print("-- escalation from group {}: {}\n", e.group, e.reason);
            shut_down("the tree gave up");
        }
    });

    io.run();

    fmt::print("\n{:<11} {:<8} {:<13} {:>8}  {}\n", "group", "parent", "state", "restarts", "members");
    for (const auto& [name, g] : monitor.get_group_stats()) {
        fmt::print("{:<11} {:<8} {:<13} {:>8}  {}\n", name, g.parent.empty() ? "-" : g.parent, g.state, g.restart_count,
                   fmt::join(g.members, ", "));
    }
    fmt::print("\n{:<9} {:<11} {:<12} {:>8} {:>8}\n", "component", "group", "state", "restarts", "failures");
    for (const auto& [name, s] : monitor.get_component_stats()) {
        fmt::print("{:<9} {:<11} {:<12} {:>8} {:>8}\n", name, s.group, s.state, s.restart_count, s.failure_count);
    }
    return 0;
}

// systemd_demo: a service that reports its health to systemd (docs/operations.md has the unit file).
//
//   db       runs steadily
//   camera   fails at every start once --break-camera-after has passed; gives up after three restarts
//
// While every component runs, systemd gets READY=1, a STATUS= line and WATCHDOG=1 every half WatchdogSec. When
// camera gives up the pings stop, on_not_live closes everything and the process exits with status 1, so
// Restart=on-failure restarts it. SIGINT/SIGTERM close cleanly (STOPPING=1) with status 0. Without systemd
// (no NOTIFY_SOCKET) it runs the same and prints the health lines only.
//
// Usage: systemd_demo [--break-camera-after SECONDS]   (default 3; 0: never)
#include <taskmon/ops/health.hpp>
#include <taskmon/ops/systemd_notifier.hpp>
#include <taskmon/task_monitor.hpp>

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/io_context.hpp>
#include <asio/signal_set.hpp>
#include <asio/steady_timer.hpp>
#include <asio/use_awaitable.hpp>
#include <fmt/format.h>

#include <chrono>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <stdexcept>
#include <string>
#include <system_error>
#include <utility>

using namespace std::chrono_literals;

namespace {

asio::awaitable<void> db() {
    asio::steady_timer timer{co_await asio::this_coro::executor};
    for (;;) {
        timer.expires_after(100ms);
        co_await timer.async_wait(asio::use_awaitable);
    }
}

asio::awaitable<void> camera(std::chrono::steady_clock::time_point breaks_at) {
    asio::steady_timer timer{co_await asio::this_coro::executor};
    for (;;) {
        timer.expires_after(100ms);
        co_await timer.async_wait(asio::use_awaitable);
        if (std::chrono::steady_clock::now() >= breaks_at) {
            throw std::runtime_error("camera unplugged");
        }
    }
}

}  // namespace

int main(int argc, char** argv) {
    int break_after_s = 3;
    for (int i = 1; i < argc; ++i) {
        if (std::strcmp(argv[i], "--break-camera-after") == 0 && i + 1 < argc) {
            break_after_s = std::atoi(argv[++i]);
        } else {
            fmt::print(stderr, "usage: {} [--break-camera-after SECONDS]\n", argv[0]);
            return 2;
        }
    }
    const auto breaks_at = break_after_s > 0 ? std::chrono::steady_clock::now() + std::chrono::seconds{break_after_s}
                                             : std::chrono::steady_clock::time_point::max();

    asio::io_context io;
    taskmon::TaskMonitor monitor{io.get_executor(), {.max_restart_attempts = 3, .base_backoff = 200ms}};
    monitor.supervise("db", [] { return db(); });
    monitor.supervise("camera", [breaks_at] { return camera(breaks_at); });

    int exit_code = 0;
    bool closing = false;
    std::optional<taskmon::SystemdNotifier> notifier;
    taskmon::EventSubscription refresh;
    asio::signal_set signals{io, SIGINT, SIGTERM};
    const auto shutdown = [&]() -> asio::awaitable<void> {
        if (std::exchange(closing, true)) co_return;
        signals.cancel();
        co_await notifier->close();  // STOPPING=1
        refresh.unsubscribe();
        co_await monitor.close();
    };

    notifier.emplace(
        io.get_executor(), [&] { return taskmon::check_health(monitor); }, taskmon::SystemdEnvironment::from_process(),
        taskmon::SystemdNotifierOptions{.on_not_live = [&](const taskmon::HealthReport& report) {
            fmt::print("not live, exiting with status 1: {}\n", taskmon::health_summary(report));
            exit_code = 1;  // a critical component gave up: let systemd restart the process
            asio::co_spawn(io, shutdown(), asio::detached);
        }});
    std::string last;
    refresh = monitor.subscribe([&](const taskmon::MonitorEvent&) {
        notifier->update();
        if (auto line = taskmon::health_summary(taskmon::check_health(monitor)); line != last) {
            fmt::print("health: {}\n", line);
            last = std::move(line);
        }
    });
    notifier->start();
    signals.async_wait([&](const std::error_code& ec, int) {
        if (!ec) asio::co_spawn(io, shutdown(), asio::detached);
    });

    io.run();
    const auto stats = notifier->stats();
    fmt::print("sent {} notification(s), {} watchdog ping(s), {} failure(s); exit status {}\n", stats.messages_sent,
               stats.watchdog_pings, stats.send_failures, exit_code);
    return exit_code;
}

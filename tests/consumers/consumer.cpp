// Built by each consumer check: includes the umbrella header and supervises a component that fails once, which
// proves the include path, the Asio configuration (standalone, coroutines on clang too), fmt and spdlog all
// work from an installed or embedded taskmon.
#include <taskmon/taskmon.hpp>

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/io_context.hpp>
#include <fmt/core.h>
#include <spdlog/logger.h>

#include <chrono>
#include <memory>
#include <stdexcept>

int main() {
    using namespace std::chrono_literals;
    asio::io_context io;
    auto quiet = std::make_shared<spdlog::logger>("consumer");  // no sinks
    taskmon::TaskMonitor monitor{io.get_executor(), {.base_backoff = 0ms, .max_backoff = 0ms}, quiet};

    int runs = 0;
    monitor.supervise("flaky", [&runs]() -> asio::awaitable<void> {
        if (++runs == 1) throw std::runtime_error("first run fails");
        co_return;  // the second run returns normally: a transient component is then done
    });
    asio::co_spawn(
        io,
        [&]() -> asio::awaitable<void> {
            while (monitor.get_component_stats().at("flaky").state != taskmon::ComponentState::completed) {
                co_await asio::post(io, asio::use_awaitable);
            }
            co_await monitor.close();
        },
        asio::detached);
    io.run();

    const auto stats = monitor.get_component_stats().at("flaky");
    if (runs != 2 || stats.restart_count != 1 || stats.failure_count != 1) {
        fmt::print("unexpected: runs={} restart_count={} failure_count={}\n", runs, stats.restart_count,
                   stats.failure_count);
        return 1;
    }
    fmt::print("taskmon {} consumer ok\n", TASKMON_VERSION_STRING);
    return 0;
}

// Compile cost of taskmon/task_monitor.hpp: the baseline program with its component under a TaskMonitor.
#include <taskmon/task_monitor.hpp>

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/io_context.hpp>
#include <asio/steady_timer.hpp>
#include <asio/this_coro.hpp>
#include <asio/use_awaitable.hpp>
#include <spdlog/spdlog.h>

#include <chrono>

asio::awaitable<void> component() {
    asio::steady_timer timer{co_await asio::this_coro::executor, std::chrono::milliseconds{1}};
    co_await timer.async_wait(asio::use_awaitable);
    spdlog::info("tick {}", 1);
}

int main() {
    asio::io_context io;
    taskmon::TaskMonitor monitor{io.get_executor()};
    monitor.supervise("component", [] { return component(); });
    monitor.async_close([] {});
    io.run();
}

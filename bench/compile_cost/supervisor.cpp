// Compile cost of taskmon/agent/supervisor.hpp: the baseline program's work as an agent under a Supervisor.
#include <taskmon/agent/supervisor.hpp>

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/io_context.hpp>
#include <asio/steady_timer.hpp>
#include <asio/this_coro.hpp>
#include <asio/use_awaitable.hpp>
#include <spdlog/spdlog.h>

#include <chrono>

int main() {
    asio::io_context io;
    taskmon::Supervisor<int, int> agent{
        io.get_executor(),
        {.perceive = []() -> asio::awaitable<int> {
             asio::steady_timer timer{co_await asio::this_coro::executor, std::chrono::milliseconds{1}};
             co_await timer.async_wait(asio::use_awaitable);
             co_return 1;
         },
         .decide = [](const int& seen, const auto&) -> asio::awaitable<taskmon::Decision<int>> {
             co_return taskmon::Decision<int>::act({seen});
         },
         .act = [](const int&) -> asio::awaitable<taskmon::ActionResult> { co_return taskmon::ActionResult::ok(); }},
        {.max_steps = 3}};
    asio::co_spawn(
        io,
        [&]() -> asio::awaitable<void> {
            auto history = co_await agent.run();
            spdlog::info("steps {}", history.steps.size());
        },
        asio::detached);
    io.run();
}

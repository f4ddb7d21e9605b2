// Built by each consumer check: includes the umbrella header and runs a coroutine on Asio, which proves the
// include path, the Asio configuration (standalone, coroutines on clang too), fmt and spdlog all link.
#include <taskmon/taskmon.hpp>

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/io_context.hpp>
#include <asio/use_awaitable.hpp>
#include <fmt/core.h>
#include <spdlog/logger.h>

#include <memory>

namespace {
asio::awaitable<int> answer() { co_return 42; }
}  // namespace

int main() {
    asio::io_context io;
    int result = 0;
    asio::co_spawn(io, [&]() -> asio::awaitable<void> { result = co_await answer(); }, asio::detached);
    io.run();
    auto logger = std::make_shared<spdlog::logger>("consumer");  // no sinks: proves spdlog links
    logger->info("unused");
    if (result != 42) return 1;
    fmt::print("taskmon {} consumer ok\n", TASKMON_VERSION_STRING);
    return 0;
}

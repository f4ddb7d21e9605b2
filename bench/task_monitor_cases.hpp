// The coroutines, logger and loops the TaskMonitor benchmarks (bench_task_monitor.cpp and the add-ons' benchmarks
// that measure a restart) and the instruction-count driver (instructions_task_monitor.cpp) share, so that all
// measure the same work.
#pragma once

#include <taskmon/restart_policy.hpp>
#include <taskmon/task_monitor.hpp>

#include <asio/awaitable.hpp>
#include <asio/co_spawn.hpp>
#include <asio/io_context.hpp>
#include <asio/steady_timer.hpp>
#include <asio/this_coro.hpp>
#include <asio/use_awaitable.hpp>
#include <spdlog/logger.h>
#include <spdlog/sinks/null_sink.h>

#include <chrono>
#include <exception>
#include <limits>
#include <memory>
#include <stdexcept>

namespace taskmon_bench {

/// A logger that formats nothing: the figures measure supervision, not logging.
inline std::shared_ptr<spdlog::logger> null_logger() {
    auto logger = std::make_shared<spdlog::logger>("null", std::make_shared<spdlog::sinks::null_sink_mt>());
    logger->set_level(spdlog::level::off);
    return logger;
}

/// The policy of the restart cases: restart at once, never give up, no jitter.
inline taskmon::RestartPolicy restart_at_once() {
    using namespace std::chrono_literals;
    return {.max_restart_attempts = std::numeric_limits<int>::max(),
            .restart_window = 1ms,
            .base_backoff = 0ms,
            .max_backoff = 0ms};
}

/// The supervised coroutine of the restart cases: counts its start, then fails.
inline asio::awaitable<void> fail_at_once(long long& starts) {
    ++starts;
    throw std::runtime_error("fail");
    co_return;
}

/// The coroutine of the start/close and memory cases: waits on a timer until cancelled.
inline asio::awaitable<void> wait_forever() {
    asio::steady_timer timer{co_await asio::this_coro::executor, std::chrono::hours{24}};
    co_await timer.async_wait(asio::use_awaitable);
}

/// The short-lived task of the spawn() cases.
inline asio::awaitable<void> return_at_once() { co_return; }

/// Runs `io` until `starts` moves past `from`: the next start of a fail_at_once component (one restart).
inline void run_until_next_start(asio::io_context& io, const long long& starts, long long from) {
    while (starts == from) {
        io.run_one();
    }
}

/// Closes `monitor`, running `io` until the close completed.
inline void close_monitor(asio::io_context& io, taskmon::TaskMonitor& monitor) {
    bool closed = false;
    asio::co_spawn(io, monitor.close(), [&](std::exception_ptr) { closed = true; });
    while (!closed) {
        io.run_one();
    }
}

}  // namespace taskmon_bench

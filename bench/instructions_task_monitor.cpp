// A driver for instruction counts (valgrind --tool=callgrind): runs one TaskMonitor case `n` times, so that
// scripts/instructions can take the difference between two sizes and cancel the set-up out. Wall time on a shared
// machine moves by ±25 % between runs of one binary; instruction counts do not move, so they judge a change to
// the core. The cases are those of bench_task_monitor.cpp, with a null logger:
//   restart       n restarts of a component that fails at once, zero backoff (failed, restart_scheduled,
//                 restarted);
//   start_close   n components registered, each suspended on a timer, then one close() (default strand pool);
//   spawn_return  n spawn()s of a task that returns at once, each run until it left the monitor;
//   spawn_pool    n spawn()s of that task on a one-thread asio::thread_pool, made at once, then one close().
// usage: instructions_task_monitor restart|start_close|spawn_return|spawn_pool N
#include <taskmon/task_monitor.hpp>

#include "task_monitor_cases.hpp"

#include <asio/co_spawn.hpp>
#include <asio/io_context.hpp>
#include <asio/post.hpp>
#include <asio/steady_timer.hpp>
#include <asio/thread_pool.hpp>
#include <asio/use_awaitable.hpp>
#include <spdlog/sinks/null_sink.h>

#include <cstdio>
#include <cstdlib>
#include <future>
#include <limits>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace {

using namespace std::chrono_literals;

using taskmon_bench::fail_at_once;
using taskmon_bench::null_logger;
using taskmon_bench::return_at_once;
using taskmon_bench::wait_forever;

void close(asio::io_context& io, taskmon::TaskMonitor& monitor) {
    bool closed = false;
    asio::co_spawn(io, monitor.close(), [&](std::exception_ptr) { closed = true; });
    while (!closed) {
        io.run_one();
    }
}

void restart(long long n) {
    asio::io_context io{1};
    auto work = asio::make_work_guard(io);
    long long starts = 0;
    taskmon::TaskMonitor monitor{io.get_executor(), taskmon_bench::restart_at_once(), null_logger()};
    monitor.supervise("c", [&] { return fail_at_once(starts); });
    while (starts < n + 1) {  // the first start and n restarts
        io.run_one();
    }
    close(io, monitor);
}

void start_close(long long n) {
    std::vector<std::string> names;
    for (long long i = 0; i < n; ++i) {
        names.push_back("component-" + std::to_string(i));
    }
    asio::io_context io{1};
    taskmon::TaskMonitor monitor{io.get_executor(), {}, null_logger()};
    for (const auto& name : names) {
        monitor.register_task(name, wait_forever());
    }
    io.poll();
    close(io, monitor);
}

void spawn_return(long long n) {
    asio::io_context io{1};
    taskmon::TaskMonitor monitor{io.get_executor(), {}, null_logger()};
    const std::string name = "conn";
    for (long long i = 0; i < n; ++i) {
        monitor.spawn(name, return_at_once());
        io.run();
        io.restart();
    }
}

void spawn_pool(long long n) {
    asio::thread_pool pool{1};
    taskmon::TaskMonitor monitor{pool.get_executor(), {}, null_logger()};
    std::promise<void> closed;
    // Everything on the pool's thread (the calling thread only waits), so that the count does not depend on how
    // the two threads interleave.
    asio::post(pool, [&] {
        for (long long i = 0; i < n; ++i) {
            monitor.spawn("conn-" + std::to_string(i), return_at_once());
        }
        // close() also waits for the spawned tasks that have not ended yet
        asio::co_spawn(pool, monitor.close(), [&](std::exception_ptr) { closed.set_value(); });
    });
    closed.get_future().wait();
    pool.join();
}

}  // namespace

int main(int argc, char** argv) {
    if (argc != 3) {
        std::fprintf(stderr, "usage: %s restart|start_close|spawn_return|spawn_pool N\n", argv[0]);
        return 2;
    }
    const std::string_view which = argv[1];
    const long long n = std::atoll(argv[2]);
    if (which == "restart") {
        restart(n);
    } else if (which == "start_close") {
        start_close(n);
    } else if (which == "spawn_return") {
        spawn_return(n);
    } else if (which == "spawn_pool") {
        spawn_pool(n);
    } else {
        std::fprintf(stderr, "unknown case '%s'\n", argv[1]);
        return 2;
    }
    return 0;
}

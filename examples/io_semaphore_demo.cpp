// io_semaphore demo: 50 simulated downloads share the global I/O semaphore, first with 4 permits, then 8.
//
// Every download holds a permit while it "transfers" (a timer of 100-300 ms). A reporter prints the
// semaphore's live figures; when half the downloads are done, the count is raised to 8 and the queue drains
// faster. Runs for about two seconds on two threads and exits by itself.
#include <taskmon/io_semaphore.hpp>

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/io_context.hpp>
#include <asio/steady_timer.hpp>
#include <asio/this_coro.hpp>
#include <asio/use_awaitable.hpp>

#include <fmt/core.h>

#include <atomic>
#include <chrono>
#include <random>
#include <thread>
#include <vector>

using namespace std::chrono_literals;

namespace {

constexpr int total_downloads = 50;
constexpr int resize_after = total_downloads / 2;

std::atomic<int> completed{0};

double seconds_since(std::chrono::steady_clock::time_point start) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

asio::awaitable<void> download(int id, std::chrono::milliseconds transfer_time) {
    auto permit = co_await taskmon::io_semaphore();  // queued in FIFO order while 4 (later 8) are running
    asio::steady_timer transfer{co_await asio::this_coro::executor, transfer_time};
    co_await transfer.async_wait(asio::use_awaitable);
    permit.release();  // give the permit back before the bookkeeping below
    if (completed.fetch_add(1) + 1 == resize_after) {
        taskmon::set_io_semaphore_count(8);
        const auto s = taskmon::get_io_semaphore_stats();
        fmt::print("-- download {} was number {}: count raised to 8; at once in_use={} waiting={}\n", id, resize_after,
                   s.in_use, s.waiting);
    }
}

asio::awaitable<void> report(std::chrono::steady_clock::time_point start) {
    asio::steady_timer tick{co_await asio::this_coro::executor};
    while (completed.load() < total_downloads) {
        const auto s = taskmon::get_io_semaphore_stats();
        fmt::print("t={:4.2f}s  capacity={}  in_use={}  waiting={:2}  done={:2}/{}\n", seconds_since(start), s.capacity,
                   s.in_use, s.waiting, completed.load(), total_downloads);
        tick.expires_after(200ms);
        co_await tick.async_wait(asio::use_awaitable);
    }
}

}  // namespace

int main() {
    taskmon::set_io_semaphore_count(4);
    asio::io_context ctx;
    const auto start = std::chrono::steady_clock::now();

    std::minstd_rand random{42};
    std::uniform_int_distribution<int> transfer_ms{100, 300};
    for (int id = 1; id <= total_downloads; ++id) {
        asio::co_spawn(ctx, download(id, std::chrono::milliseconds(transfer_ms(random))), asio::detached);
    }
    asio::co_spawn(ctx, report(start), asio::detached);

    std::thread second_thread([&ctx] { ctx.run(); });
    ctx.run();
    second_thread.join();

    const auto s = taskmon::get_io_semaphore_stats();
    fmt::print("all {} downloads done in {:.2f}s; capacity={} in_use={} waiting={} available={}\n", completed.load(),
               seconds_since(start), s.capacity, s.in_use, s.waiting, s.available);
    return completed.load() == total_downloads && s.in_use == 0 && s.waiting == 0 ? 0 : 1;
}

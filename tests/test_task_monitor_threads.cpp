// TaskMonitor tests: other threads, two-thread io_contexts, strands and the strand pool.
// Everything time-dependent runs in virtual time (ManualClock); the scripted components are in
// support/monitor_harness.hpp.
#include <taskmon/task_monitor.hpp>
#include <taskmon/testing/manual_clock.hpp>

#include "monitor_harness.hpp"
#include "taskmon_catch.hpp"

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/executor_work_guard.hpp>
#include <asio/io_context.hpp>
#include <asio/post.hpp>
#include <asio/steady_timer.hpp>
#include <asio/strand.hpp>
#include <asio/this_coro.hpp>
#include <asio/use_awaitable.hpp>
#include <spdlog/sinks/ringbuffer_sink.h>

#include <algorithm>
#include <atomic>
#include <future>
#include <map>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

using namespace taskmon_test;  // Harness, Monitor, Script, scripted, factory_of, the common taskmon names ...

TEST_CASE("Every method is safe from two threads on a two-thread io_context", "[task_monitor][threads]") {
    asio::io_context io;
    auto work = asio::make_work_guard(io);
    std::atomic<int> starts{0};
    auto flaky = [&]() -> asio::awaitable<void> {
        starts.fetch_add(1);
        asio::steady_timer timer{co_await asio::this_coro::executor, 1ms};
        co_await timer.async_wait(asio::use_awaitable);
        throw std::runtime_error("flaky");
    };
    auto steady = [&]() -> asio::awaitable<void> {
        asio::steady_timer timer{co_await asio::this_coro::executor};
        for (;;) {
            timer.expires_after(1ms);
            co_await timer.async_wait(asio::use_awaitable);
        }
    };
    auto sink = std::make_shared<spdlog::sinks::ringbuffer_sink_mt>(16);
    auto logger = std::make_shared<spdlog::logger>("taskmon-threads", sink);
    taskmon::TaskMonitor monitor{
        io.get_executor(), {.max_restart_attempts = 1000, .base_backoff = 0ms, .max_backoff = 1ms}, logger};
    std::thread t1{[&] { io.run(); }};
    std::thread t2{[&] { io.run(); }};

    for (int i = 0; i < 4; ++i) {
        monitor.supervise("flaky" + std::to_string(i), flaky);
        monitor.supervise("steady" + std::to_string(i), steady);
    }
    std::thread poker{[&] {
        for (int i = 0; i < 200; ++i) {
            const auto name = "steady" + std::to_string(i % 4);
            monitor.restart(name);
            monitor.disable({name});
            monitor.enable({name});
            (void)monitor.get_component_stats();
        }
    }};
    for (int i = 0; i < 200; ++i) {
        (void)monitor.get_component_stats();
        monitor.restart("flaky" + std::to_string(i % 4));
    }
    poker.join();
    const auto deadline = std::chrono::steady_clock::now() + 60s;
    while (starts.load() < 40 && std::chrono::steady_clock::now() < deadline) {
        std::this_thread::sleep_for(1ms);
    }
    CHECK(starts.load() >= 40);

    std::promise<void> closed;
    asio::co_spawn(io, monitor.close(), [&](std::exception_ptr) { closed.set_value(); });
    closed.get_future().wait();
    for (const auto& [name, stats] : monitor.get_component_stats()) {
        CHECK(stats.task_done);
        CHECK(stats.state != ComponentState::running);
    }
    work.reset();
    t1.join();
    t2.join();
    CHECK(io.stopped());
}

TEST_CASE("close() called twice concurrently from two threads completes both", "[task_monitor][threads]") {
    asio::io_context io;
    auto work = asio::make_work_guard(io);
    auto steady = []() -> asio::awaitable<void> {
        asio::steady_timer timer{co_await asio::this_coro::executor, 24h};
        co_await timer.async_wait(asio::use_awaitable);
    };
    auto logger = null_logger();
    std::thread t1{[&] { io.run(); }};
    std::thread t2{[&] { io.run(); }};
    {
        taskmon::TaskMonitor monitor{asio::make_strand(io), {}, logger};
        for (int i = 0; i < 8; ++i) {
            monitor.supervise("c" + std::to_string(i), steady);
        }
        std::promise<void> a, b;
        std::thread closer{[&] { asio::co_spawn(io, monitor.close(), [&](std::exception_ptr) { a.set_value(); }); }};
        asio::co_spawn(io, monitor.close(), [&](std::exception_ptr) { b.set_value(); });
        closer.join();
        CHECK(a.get_future().wait_for(30s) == std::future_status::ready);
        CHECK(b.get_future().wait_for(30s) == std::future_status::ready);
        for (const auto& [name, stats] : monitor.get_component_stats()) {
            CHECK(stats.state == ComponentState::stopped);
        }
    }
    work.reset();
    t1.join();
    t2.join();
}

TEST_CASE("A monitor on a strand executor supervises, closes and is destroyed safely", "[task_monitor][strand]") {
    // Regression: ~BasicTaskMonitor touched freed memory when the monitor's executor was a strand. Destroyed
    // without close(): the "Destroying ..." tests in test_task_monitor_close.cpp run on a strand too.
    Harness h;
    auto failing = failing_now(100);
    Script steady;
    {
        Monitor monitor{asio::make_strand(h.io), {}, h.logger};
        monitor.supervise("failing", factory_of(failing));
        monitor.supervise("steady", factory_of(steady));
        h.runner.run_for(5s);
        CHECK(failing.starts == 2);  // started at 0 and 2 s; the next start is due at 6 s
        CHECK(monitor.get_component_stats().at("steady").state == ComponentState::running);
        h.close(monitor);
    }
    h.runner.run();
    CHECK(steady.live == 0);
}

TEST_CASE("A strand executor on a two-thread io_context is safe from other threads", "[task_monitor][threads]") {
    asio::io_context io;
    auto work = asio::make_work_guard(io);
    std::atomic<int> starts{0};
    auto flaky = [&]() -> asio::awaitable<void> {
        starts.fetch_add(1);
        asio::steady_timer timer{co_await asio::this_coro::executor, 1ms};
        co_await timer.async_wait(asio::use_awaitable);
        throw std::runtime_error("flaky");
    };
    auto logger = null_logger();
    std::thread t1{[&] { io.run(); }};
    std::thread t2{[&] { io.run(); }};
    {
        taskmon::TaskMonitor monitor{
            asio::make_strand(io), {.max_restart_attempts = 1000, .base_backoff = 0ms, .max_backoff = 1ms}, logger};
        std::thread other{[&] {
            for (int i = 0; i < 4; ++i) {
                monitor.supervise("flaky" + std::to_string(i), flaky);
            }
            for (int i = 0; i < 100; ++i) {
                monitor.restart("flaky" + std::to_string(i % 4));
                (void)monitor.get_component_stats();
            }
        }};
        for (int i = 0; i < 100; ++i) {
            (void)monitor.get_component_stats();
        }
        other.join();
        const auto deadline = std::chrono::steady_clock::now() + 60s;
        while (starts.load() < 20 && std::chrono::steady_clock::now() < deadline) {
            std::this_thread::sleep_for(1ms);
        }
        CHECK(starts.load() >= 20);
    }  // destroyed without close while instances run on both threads
    work.reset();
    t1.join();
    t2.join();
}

TEST_CASE("Components sharing a pool strand are supervised independently", "[task_monitor][strand]") {
    const auto pool = GENERATE(std::size_t{0}, std::size_t{1}, std::size_t{2});
    CAPTURE(pool);
    Harness h;
    auto failing = failing_now(100);
    Script steady, other;
    Monitor monitor{h.io.get_executor(), {}, h.logger, {}, pool};
    monitor.supervise("failing", factory_of(failing));
    monitor.supervise("steady", factory_of(steady));
    monitor.supervise("other", factory_of(other));
    h.runner.run_for(10min);
    const auto stats = monitor.get_component_stats();
    CHECK(stats.at("failing").state == ComponentState::gave_up);
    CHECK(stats.at("steady").state == ComponentState::running);
    CHECK(stats.at("steady").restart_count == 0);
    monitor.restart("other");
    monitor.disable({"steady"});
    h.runner.run_for(1s);
    CHECK(other.starts == 2);
    CHECK(other.max_live == 1);
    CHECK(steady.live == 0);
    CHECK(h.close(monitor) == 0s);
    CHECK(other.live == 0);
}

TEST_CASE("A component's executor is its pool strand: shared beyond strand_pool_size, inherited by its children",
          "[task_monitor][strand]") {
    Harness h;
    Monitor monitor{h.io.get_executor(), {}, h.logger, {}, 2};
    std::map<std::string, asio::any_io_executor> seen;
    std::optional<bool> child_on_parent_strand;
    std::optional<bool> child_on_plain_executor;
    auto component = [&](std::string name) -> asio::awaitable<void> {
        const auto ex = co_await asio::this_coro::executor;
        seen[name] = ex;
        if (name == "a") {
            auto on_parent = [&, ex]() -> asio::awaitable<void> {
                child_on_parent_strand = (co_await asio::this_coro::executor) == ex;
            };
            auto on_plain = [&, ex]() -> asio::awaitable<void> {
                child_on_plain_executor = (co_await asio::this_coro::executor) == ex;
            };
            asio::co_spawn(ex, std::move(on_parent), asio::detached);
            asio::co_spawn(monitor.get_executor(), std::move(on_plain), asio::detached);
        }
        ManualTimer timer{ex, 1h};
        co_await timer.async_wait(asio::use_awaitable);
    };
    monitor.supervise("a", [&] { return component("a"); });
    monitor.supervise("b", [&] { return component("b"); });
    monitor.supervise("c", [&] { return component("c"); });
    h.runner.run_for(1s);
    REQUIRE(seen.size() == 3);
    CHECK(seen["a"] != monitor.get_executor());
    CHECK(monitor.get_executor() == h.io.get_executor());
    CHECK(seen["a"] != seen["b"]);
    CHECK(seen["c"] == seen["a"]);  // a pool of two strands: the third component shares the first one's
    REQUIRE(child_on_parent_strand.has_value());
    CHECK(*child_on_parent_strand);
    REQUIRE(child_on_plain_executor.has_value());
    CHECK_FALSE(*child_on_plain_executor);
    CHECK(h.close(monitor) == 0s);
}

TEST_CASE("A strand per component (strand_pool_size 0): a component that left gives its strand to the next one",
          "[task_monitor][strand]") {
    Harness h;
    Monitor monitor{h.io.get_executor(), {}, h.logger, {}, 0};
    std::vector<asio::any_io_executor> seen;
    auto record = [&]() -> asio::awaitable<void> { seen.push_back(co_await asio::this_coro::executor); };
    // A server spawning a task per connection: 50 tasks one after another run on one strand, not on 50.
    for (int i = 0; i < 50; ++i) {
        monitor.spawn("conn-" + std::to_string(i), record());
        h.runner.run_for(1ms);
    }
    REQUIRE(seen.size() == 50);
    CHECK(std::all_of(seen.begin(), seen.end(), [&](const auto& ex) { return ex == seen.front(); }));
    // A supervise() whose factory throws never joins the monitor: its strand is not kept either.
    CHECK_THROWS_AS(monitor.supervise("broken", []() -> asio::awaitable<void> { throw std::runtime_error("no"); }),
                    std::runtime_error);
    monitor.spawn("after", record());
    h.runner.run_for(1ms);
    REQUIRE(seen.size() == 51);
    CHECK(seen.back() == seen.front());
    // Two components at once still get a strand each.
    monitor.supervise("a", [&]() -> asio::awaitable<void> {
        seen.push_back(co_await asio::this_coro::executor);
        ManualTimer timer{co_await asio::this_coro::executor, 1h};
        co_await timer.async_wait(asio::use_awaitable);
    });
    monitor.spawn("b", record());
    h.runner.run_for(1ms);
    REQUIRE(seen.size() == 53);
    CHECK(seen[51] != seen[52]);
    CHECK(h.close(monitor) == 0s);
}

TEST_CASE("Components on one pool strand never run at the same time on a two-thread io_context",
          "[task_monitor][strand][threads]") {
    asio::io_context io;
    auto work = asio::make_work_guard(io);
    std::atomic<int> inside{0};
    std::atomic<int> max_inside{0};
    std::atomic<int> steps{0};
    auto busy = [&]() -> asio::awaitable<void> {
        for (;;) {
            const int now = inside.fetch_add(1) + 1;
            int seen = max_inside.load();
            while (now > seen && !max_inside.compare_exchange_weak(seen, now)) {
            }
            for (int i = 0; i < 100; ++i) {
                std::this_thread::yield();  // stay inside long enough for the other thread to overlap
            }
            inside.fetch_sub(1);
            steps.fetch_add(1);
            co_await asio::post(co_await asio::this_coro::executor, asio::use_awaitable);
        }
    };
    auto logger = null_logger();
    std::thread t1{[&] { io.run(); }};
    std::thread t2{[&] { io.run(); }};
    {
        taskmon::TaskMonitor monitor{io.get_executor(), {}, logger, {}, 1};
        monitor.supervise("a", busy);
        monitor.supervise("b", busy);
        const auto deadline = std::chrono::steady_clock::now() + 60s;
        while (steps.load() < 200 && std::chrono::steady_clock::now() < deadline) {
            std::this_thread::sleep_for(1ms);
        }
        CHECK(steps.load() >= 200);
        std::promise<void> closed;
        asio::co_spawn(io, monitor.close(), [&](std::exception_ptr) { closed.set_value(); });
        closed.get_future().wait();
    }
    CHECK(max_inside.load() == 1);
    work.reset();
    t1.join();
    t2.join();
}

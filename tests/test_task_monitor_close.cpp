// TaskMonitor tests: close(), async_close() and destruction.
// Everything time-dependent runs in virtual time (ManualClock); the scripted components are in
// support/monitor_harness.hpp.
#include <taskmon/task_monitor.hpp>
#include <taskmon/testing/manual_clock.hpp>

#include "monitor_harness.hpp"
#include "taskmon_catch.hpp"

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/io_context.hpp>
#include <asio/steady_timer.hpp>
#include <asio/strand.hpp>
#include <asio/this_coro.hpp>
#include <asio/use_awaitable.hpp>
#include <asio/use_future.hpp>

#include <atomic>
#include <future>
#include <memory>
#include <string>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

using namespace taskmon_test;  // Harness, Monitor, Script, scripted, factory_of, the common taskmon names ...
using taskmon::MonitorEventKind;

TEST_CASE("close() during a backoff never calls the factory again", "[task_monitor]") {
    Harness h;
    auto script = failing_now(100);
    Monitor monitor{h.io.get_executor(), {}, h.logger};
    monitor.supervise("perception", factory_of(script));
    h.runner.run_for(3s);  // started at 0, failed, restarted at 2 s, failed; now waiting 4 s
    REQUIRE(script.starts == 2);
    REQUIRE(monitor.get_component_stats().at("perception").is_restarting);
    CHECK(h.close(monitor) == 0s);
    CHECK(h.lines_with("Cancelled pending restart of component perception").size() == 1);
    h.runner.run_for(2h);
    CHECK(script.starts == 2);
    const auto stats = monitor.get_component_stats().at("perception");
    CHECK(stats.state == ComponentState::stopped);
    CHECK_FALSE(stats.is_restarting);
    CHECK(h.io.stopped());  // no timer left behind
}

TEST_CASE("close() cancels running components and waits for them", "[task_monitor]") {
    Harness h;
    Script a, b;
    Monitor monitor{h.io.get_executor(), {}, h.logger};
    monitor.supervise("a", factory_of(a));
    monitor.supervise("b", factory_of(b));
    h.runner.run_for(1min);
    CHECK(h.close(monitor) == 0s);
    CHECK(a.live == 0);
    CHECK(b.live == 0);
    const auto stats = monitor.get_component_stats();
    CHECK(stats.at("a").state == ComponentState::stopped);
    CHECK(stats.at("a").failure_count == 0);
    CHECK(stats.at("a").task_cancelled);
    CHECK(h.lines_with("TaskMonitor closed components=2 unresponsive=0").size() == 1);
    // Idempotent: a second close completes at once.
    CHECK(h.close(monitor) == 0s);
}

TEST_CASE("close() returns by the shutdown timeout when a component ignores cancellation", "[task_monitor]") {
    Harness h;
    int cancels_ignored = 0;
    bool finished = false;
    auto stubborn = [&]() -> asio::awaitable<void> {
        ManualTimer timer{co_await asio::this_coro::executor};
        for (int i = 0; i < 60; ++i) {
            try {
                timer.expires_after(1s);
                co_await timer.async_wait(asio::use_awaitable);
            } catch (const std::system_error&) {
                ++cancels_ignored;
            }
            co_await asio::this_coro::reset_cancellation_state();
        }
        finished = true;
    };
    Monitor monitor{h.io.get_executor(), {.shutdown_timeout = 5s}, h.logger};
    monitor.supervise("stubborn", stubborn);
    h.runner.run_for(10s);
    CHECK(h.close(monitor) == 5s);
    CHECK(cancels_ignored == 1);
    auto stats = monitor.get_component_stats().at("stubborn");
    CHECK(stats.state == ComponentState::unresponsive);
    CHECK_FALSE(stats.task_done);
    const auto timeout = h.lines_with("did not stop within");
    REQUIRE(timeout.size() == 1);
    CHECK(timeout[0].rfind("error|Component stubborn did not stop within 5.0s of cancellation", 0) == 0);
    CHECK(h.lines_with("unresponsive=1").size() == 1);
    // When it finally ends it is reported stopped, and never restarted.
    h.runner.run();
    CHECK(finished);
    stats = monitor.get_component_stats().at("stubborn");
    CHECK(stats.state == ComponentState::stopped);
    CHECK(stats.restart_count == 0);
}

TEST_CASE("close() started while a restart factory runs starts nothing", "[task_monitor]") {
    Harness h;
    auto script = failing_now(1);
    int calls = 0;
    bool closed = false;
    Monitor* self = nullptr;
    Monitor monitor{h.io.get_executor(), {.base_backoff = 1s, .max_backoff = 1s}, h.logger};
    self = &monitor;
    monitor.supervise("c", [&]() -> asio::awaitable<void> {
        if (++calls == 2) {
            (void)self->get_component_stats();  // no deadlock: the factory runs without the monitor's lock
            asio::co_spawn(h.io, self->close(), [&](std::exception_ptr) { closed = true; });
        }
        return scripted(script);
    });
    h.runner.run_until([&] { return closed; }, 1h);
    CHECK(closed);
    CHECK(calls == 2);
    CHECK(script.starts == 1);  // the instance the factory made was never started
    const auto stats = monitor.get_component_stats().at("c");
    CHECK(stats.state == ComponentState::stopped);
    CHECK_FALSE(stats.is_restarting);
    CHECK(h.lines_with("TaskMonitor closed components=1 unresponsive=0").size() == 1);
}

// Both run on the io_context's executor and on a strand (regression: ~BasicTaskMonitor touched freed memory
// when the monitor's executor was a strand).
TEST_CASE("Destroying a monitor without close stops its components safely", "[task_monitor][strand]") {
    const bool on_strand = GENERATE(false, true);
    INFO((on_strand ? "on a strand" : "on the io_context's executor"));
    Harness h;
    auto failing = failing_now(100);
    Script steady;
    {
        Monitor monitor{on_strand ? asio::any_io_executor{asio::make_strand(h.io)} : h.io.get_executor(), {}, h.logger};
        monitor.supervise("failing", factory_of(failing));
        monitor.supervise("steady", factory_of(steady));
        h.runner.run_for(1s);  // failing is in its backoff, steady runs
    }
    h.runner.run();
    CHECK(h.io.stopped());
    CHECK(failing.starts == 1);
    CHECK(steady.live == 0);
    // One instance ran (failing was in its backoff): what it used had to outlive it, and the log says so.
    CHECK(h.lines_with("warning|TaskMonitor destroyed without close(): its running instances are cancelled and not "
                       "waited for; what they use must outlive them (co_await close() first) running=1")
              .size() == 1);
}

TEST_CASE("Destroying a monitor whose close() started, or with nothing running, warns of nothing", "[task_monitor]") {
    Harness h;
    Script steady;
    bool stubborn_ran = false;
    bool closed = false;  // outside the block: the close completes after the monitor is gone
    {
        Monitor closing{h.io.get_executor(), RestartPolicy{.shutdown_timeout = 10s}, h.logger};
        closing.supervise("steady", factory_of(steady));
        closing.supervise("stubborn", [&]() -> asio::awaitable<void> {  // the close waits 10 s for it
            stubborn_ran = true;
            co_await taskmon_test::sleep_ignoring_cancellation(1min);
        });
        h.runner.run_for(1s);
        closing.async_close([&] { closed = true; });
        h.runner.run_for(1s);
        REQUIRE(stubborn_ran);
        REQUIRE_FALSE(closed);  // destroyed while its close waits: the close was asked for, the warning not due
        Monitor idle{h.io.get_executor(), {}, h.logger};
        idle.set_restart_factories({{"later", factory_of(steady)}});  // known, never started
    }
    h.runner.run();
    CHECK(closed);
    CHECK(h.lines_with("TaskMonitor destroyed without close()").empty());
}

TEST_CASE("Destroying the io_context after the monitor without running it is safe", "[task_monitor][strand]") {
    const bool on_strand = GENERATE(false, true);
    INFO((on_strand ? "on a strand" : "on the io_context's executor"));
    Script steady;
    auto failing = failing_now(100);
    ManualTime time;
    {
        asio::io_context io;
        {
            Monitor monitor{
                on_strand ? asio::any_io_executor{asio::make_strand(io)} : io.get_executor(), {}, null_logger()};
            monitor.supervise("failing", factory_of(failing));
            monitor.supervise("steady", factory_of(steady));
            VirtualTimeRunner{io, time}.run_for(1s);
        }
    }
    CHECK(steady.live == 0);  // the frame was destroyed with the io_context
}

TEST_CASE("task_monitor: destroying the io_context while close() waits frees the coroutine awaiting it") {
    // The coroutine owns the monitor and waits in its close(): without the context's shutdown destroying the
    // parked completion, coroutine → monitor → parked completion → coroutine would never be freed.
    std::weak_ptr<int> token_seen;
    {
        ManualTime time;
        asio::io_context io;
        VirtualTimeRunner runner{io, time};
        auto monitor = std::make_shared<Monitor>(io.get_executor(), taskmon::RestartPolicy{.shutdown_timeout = 1min},
                                                 null_logger());
        monitor->register_task("stubborn", sleep_ignoring_cancellation(1h));
        auto token = std::make_shared<int>(0);
        token_seen = token;
        bool closed = false;
        asio::co_spawn(
            io,
            [monitor, token, &closed]() -> asio::awaitable<void> {
                co_await monitor->close();
                closed = true;
            },
            asio::detached);
        monitor.reset();
        token.reset();
        runner.run_for(10s);  // close() waits for the stubborn component (shutdown_timeout 1 min)
        REQUIRE_FALSE(closed);
        REQUIRE_FALSE(token_seen.expired());
    }
    CHECK(token_seen.expired());
}

TEST_CASE("async_close with a callback: called on the monitor's executor once the close completed",
          "[task_monitor][async_close]") {
    Harness h;
    bool exited = false;
    Monitor monitor{h.io.get_executor(), {}, h.logger};
    monitor.supervise("cleaner", [&] { return slow_to_stop(2s, exited); });
    h.runner.run_for(1s);
    const auto start = h.time.now();
    int calls = 0;
    bool on_executor = false;
    Duration took{};
    monitor.async_close([&] {
        ++calls;
        on_executor = h.io.get_executor().running_in_this_thread();
        took = h.time.now() - start;
    });
    CHECK(calls == 0);  // never inside the call
    CHECK_THROWS_AS(monitor.supervise("late", [&] { return slow_to_stop(0s, exited); }), std::logic_error);
    REQUIRE(h.runner.run_until([&] { return calls > 0; }, 1h));
    CHECK(calls == 1);
    CHECK(on_executor);
    CHECK(took == 2s);  // it waited for the component's cleanup
    CHECK(exited);
    CHECK(monitor.get_component_stats().at("cleaner").state == ComponentState::stopped);
    CHECK(h.lines_with("TaskMonitor closed components=1 unresponsive=0").size() == 1);
}

TEST_CASE("async_close is idempotent: every call completes once, with the first close, and later ones at once",
          "[task_monitor][async_close]") {
    Harness h;
    bool exited = false;
    Monitor monitor{h.io.get_executor(), {}, h.logger};
    monitor.supervise("cleaner", [&] { return slow_to_stop(3s, exited); });
    h.runner.run_for(1s);
    const auto start = h.time.now();
    std::vector<Duration> completed;
    const auto record = [&] { completed.push_back(h.time.now() - start); };
    monitor.async_close(record);
    monitor.async_close(record);
    asio::co_spawn(
        h.io,
        [&]() -> asio::awaitable<void> {
            co_await monitor.async_close(asio::use_awaitable);
            record();
        },
        asio::detached);
    asio::co_spawn(h.io, monitor.close(), [&](std::exception_ptr e) {
        CHECK_FALSE(e);
        record();
    });
    h.runner.run();
    CHECK(completed == std::vector<Duration>(4, Duration{3s}));
    CHECK(exited);

    // After the close: completes without waiting, still never inside the call.
    monitor.async_close(record);
    CHECK(completed.size() == 4);
    h.runner.run();
    REQUIRE(completed.size() == 5);
    CHECK(completed.back() == 3s);
    CHECK(h.lines_with("TaskMonitor closed").size() == 1);
}

TEST_CASE("async_close with asio::use_future, the io_context running on another thread",
          "[task_monitor][async_close][threads]") {
    asio::io_context io;
    auto work = asio::make_work_guard(io);
    std::thread runner{[&] { io.run(); }};
    std::atomic<int> live{0};
    auto steady = [&]() -> asio::awaitable<void> {
        ++live;
        struct Exit {
            std::atomic<int>& n;
            ~Exit() { --n; }
        } exit_guard{live};
        asio::steady_timer timer{co_await asio::this_coro::executor, 24h};
        co_await timer.async_wait(asio::use_awaitable);
    };
    {
        taskmon::TaskMonitor monitor{io.get_executor(), {}, null_logger()};
        monitor.supervise("a", steady);
        monitor.supervise("b", steady);
        std::future<void> closed = monitor.async_close(asio::use_future);
        REQUIRE(closed.wait_for(30s) == std::future_status::ready);
        CHECK_NOTHROW(closed.get());
        CHECK(live == 0);
        for (const auto& [name, stats] : monitor.get_component_stats()) {
            CHECK(stats.state == ComponentState::stopped);
        }
        // Idempotent: a second future is ready too.
        auto again = monitor.async_close(asio::use_future);
        CHECK(again.wait_for(30s) == std::future_status::ready);
    }
    work.reset();
    runner.join();
}

TEST_CASE("async_close with asio::use_future: destroying the io_context first breaks the promise",
          "[task_monitor][async_close]") {
    ManualTime time;
    Script steady;  // outlives the io_context, which destroys the component's frame
    std::future<void> closed;
    {
        asio::io_context io;
        Monitor monitor{io.get_executor(), {}, null_logger()};
        monitor.supervise("steady", factory_of(steady));
        closed = monitor.async_close(asio::use_future);
    }  // nobody ran the io_context
    REQUIRE(closed.wait_for(0s) == std::future_status::ready);
    try {
        closed.get();
        FAIL("the future should report a broken promise");
    } catch (const std::future_error& e) {
        CHECK(e.code() == std::future_errc::broken_promise);
    }
}

TEST_CASE("close() reports each instance that ignores cancellation at its own shutdown_timeout",
          "[task_monitor][close]") {
    // The close ends at the longest wait, but each instance is reported when its own wait is over, with its own
    // timeout in the event; one removed earlier (still running) is waited for its own timeout from the close.
    Harness h;
    Recorder recorder;
    Monitor monitor{h.io.get_executor(), {.shutdown_timeout = 5s}, h.logger};
    auto subscription = monitor.subscribe(recorder.listener());
    const auto stubborn = [] { return sleep_ignoring_cancellation(1h); };
    monitor.supervise("quick", stubborn, RestartPolicy{.shutdown_timeout = 1s});
    monitor.supervise("slow", stubborn);  // the monitor's 5 s
    monitor.supervise("medium", stubborn, RestartPolicy{.shutdown_timeout = 3s});
    monitor.supervise("removed", stubborn, RestartPolicy{.shutdown_timeout = 2s});
    bool removed = false;
    monitor.remove_and_wait("removed", [&](std::error_code) { removed = true; });
    h.runner.run_for(10s);
    REQUIRE(removed);  // timed out at 2 s; its instance still runs
    const auto start = h.time.now();
    CHECK(h.close(monitor) == 5s);
    std::vector<std::pair<std::string, Duration>> reported;
    for (const auto& e : recorder.of(MonitorEventKind::stop_timeout)) {
        if (since_first(recorder, e) >= 10s) {
            const auto delay = std::chrono::duration_cast<Duration>(e.delay);
            reported.emplace_back(e.component, delay);
            CHECK(since_first(recorder, e) == 10s + delay);  // at its own deadline
        }
    }
    CHECK(reported == std::vector<std::pair<std::string, Duration>>{{"quick", 1s}, {"medium", 3s}, {"slow", 5s}});
    const auto closed = recorder.of(MonitorEventKind::closed);
    REQUIRE(closed.size() == 1);
    CHECK(closed.front().unresponsive == 4);
    CHECK(h.time.now() - start == 5s);
}

// Tests for taskmon/component_context.hpp: liveness of supervised components (heartbeats, idle/busy, deadline
// extension, readiness) as the TaskMonitor enforces it. Everything runs in virtual time.
#include <taskmon/component_context.hpp>
#include <taskmon/task_monitor.hpp>

#include "monitor_harness.hpp"

#include <asio/bind_cancellation_slot.hpp>
#include <asio/this_coro.hpp>

#include <chrono>
#include <string>
#include <thread>
#include <utility>
#include <vector>

using namespace std::chrono_literals;
using taskmon::ComponentContext;
using taskmon::ComponentState;
using taskmon::MonitorEventKind;
using taskmon::RestartPolicy;
using taskmon::testing::ManualClock;
using taskmon::testing::ManualTimer;
using taskmon_test::Duration;
using taskmon_test::Harness;
using taskmon_test::Monitor;
using taskmon_test::Recorder;
using taskmon_test::since_first;
using taskmon_test::sleep_for;
using taskmon_test::sleep_ignoring_cancellation;
using taskmon_test::times_of;

TEST_CASE("component_context: a detached context does nothing", "[component_context]") {
    const ComponentContext detached;
    detached.heartbeat();
    detached.idle();
    detached.busy();
    detached.extend_deadline(1h);
    detached.ready();
    CHECK_FALSE(detached);
    CHECK_FALSE(detached.is_ready());
    CHECK(detached.task_id() == 0);
    CHECK(detached.generation() == 0);
}

TEST_CASE("component_context: a context factory gets its own instance's id and generation", "[component_context]") {
    Harness h;
    std::vector<std::pair<std::uint64_t, std::uint64_t>> seen;
    Monitor monitor{h.io.get_executor(), RestartPolicy{.base_backoff = 1s, .max_backoff = 1s}, h.logger};
    monitor.supervise("worker", [&](ComponentContext ctx) -> asio::awaitable<void> {
        seen.emplace_back(ctx.task_id(), ctx.generation());
        CHECK(ctx.is_ready());  // no startup_timeout: ready at start
        co_await sleep_for(10s);
        throw std::runtime_error("boom");
    });
    h.runner.run_for(12s);
    auto stats = monitor.get_component_stats().at("worker");
    REQUIRE(seen.size() == 2);
    CHECK(seen[0].second == 1);
    CHECK(seen[1].second == 2);
    CHECK(seen[1].first == stats.task_id);
    CHECK(stats.generation == 2);
    CHECK(stats.ready);
    h.close(monitor);
}

TEST_CASE("component_context: an idle component never trips the watchdog", "[component_context]") {
    Harness h;
    Recorder recorder;
    Monitor monitor{h.io.get_executor(), RestartPolicy{.watchdog_timeout = 10s}, h.logger};
    auto subscription = monitor.subscribe(recorder.listener());
    monitor.supervise("consumer", [&](ComponentContext ctx) -> asio::awaitable<void> {
        ctx.idle();  // waiting for work that does not come, for ten hours
        co_await sleep_for(10h);
        ctx.busy();
        co_await sleep_for(1h);
    });
    h.runner.run_for(9h);
    auto stats = monitor.get_component_stats().at("consumer");
    CHECK(stats.state == ComponentState::running);
    CHECK(stats.idle);
    CHECK(stats.failure_count == 0);
    CHECK(stats.last_heartbeat_age == Duration{9h});
    CHECK(recorder.of(MonitorEventKind::watchdog_timeout).empty());
    h.close(monitor);
}

TEST_CASE("component_context: a busy component that stops heartbeating is restarted", "[component_context]") {
    Harness h;
    Recorder recorder;
    int starts = 0;
    Monitor monitor{h.io.get_executor(), RestartPolicy{.base_backoff = 2s, .max_backoff = 2s, .watchdog_timeout = 10s},
                    h.logger};
    auto subscription = monitor.subscribe(recorder.listener());
    monitor.supervise("poller", [&](ComponentContext ctx) -> asio::awaitable<void> {
        if (++starts > 1) {
            for (;;) {  // the second instance is healthy
                ctx.heartbeat();
                co_await sleep_for(5s);
            }
        }
        for (int i = 0; i < 6; ++i) {  // heartbeats every 5 s until t = 25 s, then hangs
            ctx.heartbeat();
            co_await sleep_for(5s);
        }
        co_await sleep_for(24h);
    });
    h.runner.run_for(1h);
    // Last heartbeat at 25 s: the deadline is 35 s; the restart follows the 2 s backoff.
    CHECK(times_of(recorder, MonitorEventKind::watchdog_timeout) == std::vector<Duration>{35s});
    CHECK(times_of(recorder, MonitorEventKind::restarted) == std::vector<Duration>{37s});
    const auto timeout = recorder.of(MonitorEventKind::watchdog_timeout).at(0);
    CHECK(timeout.reason == "watchdog timeout");
    CHECK(timeout.delay == 10s);
    CHECK(timeout.failure_count == 1);
    const auto scheduled = recorder.of(MonitorEventKind::restart_scheduled);
    REQUIRE(scheduled.size() == 1);
    CHECK(scheduled[0].reason == "watchdog timeout");
    auto stats = monitor.get_component_stats().at("poller");
    CHECK(stats.state == ComponentState::running);
    CHECK(stats.failure_count == 1);
    CHECK(stats.last_error == "watchdog timeout");
    CHECK(stats.restarts_in_window == 1);
    CHECK(starts == 2);
    CHECK(h.lines_with("error|Component poller missed its watchdog deadline (10.0s without a heartbeat)").size() == 1);
    h.close(monitor);
}

TEST_CASE("component_context: watched components share one watch timer, each caught at its own deadline",
          "[component_context]") {
    Harness h;
    Recorder recorder;
    Monitor monitor{h.io.get_executor(), RestartPolicy{.base_backoff = 1h, .max_backoff = 1h, .watchdog_timeout = 10s},
                    h.logger};
    auto subscription = monitor.subscribe(recorder.listener());
    // Registered latest deadline first: the k-th beats once at 2k s, then hangs, so its deadline is 10 + 2k s.
    for (int k = 4; k >= 0; --k) {
        monitor.supervise("c" + std::to_string(k), [k](ComponentContext ctx) -> asio::awaitable<void> {
            co_await sleep_for(2s * k);
            ctx.heartbeat();
            co_await sleep_for(24h);
        });
    }
    // One that ends before its deadline: its exit ends its watch (restarted only after the 1 h backoff).
    monitor.supervise("quitter", [](ComponentContext ctx) -> asio::awaitable<void> {
        ctx.heartbeat();
        co_await sleep_for(5s);
    });
    h.runner.run_for(30s);
    CHECK(times_of(recorder, MonitorEventKind::watchdog_timeout) == std::vector<Duration>{10s, 12s, 14s, 16s, 18s});
    std::vector<std::string> caught;
    for (const auto& e : recorder.of(MonitorEventKind::watchdog_timeout)) {
        caught.push_back(e.component);
    }
    CHECK(caught == std::vector<std::string>{"c0", "c1", "c2", "c3", "c4"});
    CHECK(monitor.get_component_stats().at("quitter").failure_count == 0);
    h.close(monitor);
}

TEST_CASE("component_context: once nothing is watched, no watch wait keeps the context busy", "[component_context]") {
    Harness h;
    Monitor monitor{h.io.get_executor(),
                    RestartPolicy{.restart_type = taskmon::RestartType::temporary, .watchdog_timeout = 1h}, h.logger};
    monitor.supervise("once", [](ComponentContext ctx) -> asio::awaitable<void> {
        ctx.heartbeat();
        co_await sleep_for(5s);  // ends, and is not restarted, long before its 1 h deadline
    });
    h.runner.run_for(10s);
    CHECK(monitor.get_component_stats().at("once").failure_count == 0);
    h.io.poll();
    CHECK(h.io.stopped());  // nothing pending: the watch timer no longer waits for the deadline of an instance gone
    h.io.restart();
    h.close(monitor);
}

TEST_CASE("component_context: a component turning busy without a heartbeat is caught on time", "[component_context]") {
    // idle with no idle_timeout arms no deadline; busy() only writes an atomic, so the monitor must look again
    // within one watchdog_timeout to catch a busy instance that then hangs.
    Harness h;
    Recorder recorder;
    Monitor monitor{h.io.get_executor(), RestartPolicy{.watchdog_timeout = 10s}, h.logger};
    auto subscription = monitor.subscribe(recorder.listener());
    monitor.supervise("consumer", [&](ComponentContext ctx) -> asio::awaitable<void> {
        ctx.idle();
        co_await sleep_for(33s);
        ctx.busy();  // at 33 s, then no heartbeat
        co_await sleep_for(24h);
    });
    h.runner.run_for(60s);
    CHECK(times_of(recorder, MonitorEventKind::watchdog_timeout) == std::vector<Duration>{43s});
    h.close(monitor);
}

TEST_CASE("component_context: idle_timeout bounds an idle component", "[component_context]") {
    Harness h;
    Recorder recorder;
    Monitor monitor{h.io.get_executor(), RestartPolicy{.watchdog_timeout = 10s, .idle_timeout = 1min}, h.logger};
    auto subscription = monitor.subscribe(recorder.listener());
    monitor.supervise("consumer", [&](ComponentContext ctx) -> asio::awaitable<void> {
        ctx.idle();
        co_await sleep_for(50s);  // idle past watchdog_timeout, within idle_timeout
        ctx.idle();               // a heartbeat while idle, at 50 s
        co_await sleep_for(24h);
    });
    h.runner.run_for(2min);
    const auto timeouts = recorder.of(MonitorEventKind::watchdog_timeout);
    REQUIRE(timeouts.size() == 1);
    CHECK(times_of(recorder, MonitorEventKind::watchdog_timeout) == std::vector<Duration>{110s});
    CHECK(timeouts[0].delay == 1min);
    h.close(monitor);
}

TEST_CASE("component_context: extend_deadline covers one long operation", "[component_context]") {
    Harness h;
    Recorder recorder;
    Monitor monitor{h.io.get_executor(), RestartPolicy{.watchdog_timeout = 10s}, h.logger};
    auto subscription = monitor.subscribe(recorder.listener());
    monitor.supervise("migrator", [&](ComponentContext ctx) -> asio::awaitable<void> {
        ctx.extend_deadline(5min);
        co_await sleep_for(4min);  // one long step, well past watchdog_timeout
        ctx.heartbeat();           // at 4 min: the deadline is 4 min 10 s again, not 5 min
        co_await sleep_for(24h);
    });
    h.runner.run_for(10min);
    CHECK(times_of(recorder, MonitorEventKind::watchdog_timeout) == std::vector<Duration>{5min});
    h.close(monitor);
}

TEST_CASE("component_context: startup_timeout requires ready() in time", "[component_context]") {
    Harness h;
    Recorder recorder;
    int starts = 0;
    Monitor monitor{h.io.get_executor(), RestartPolicy{.base_backoff = 1s, .max_backoff = 1s, .startup_timeout = 30s},
                    h.logger};
    auto subscription = monitor.subscribe(recorder.listener());
    monitor.supervise("db", [&](ComponentContext ctx) -> asio::awaitable<void> {
        const bool slow = ++starts == 1;
        co_await sleep_for(slow ? 40s : 20s);  // the first connect takes too long
        ctx.ready();
        co_await sleep_for(24h);
    });
    h.runner.run_for(5s);
    CHECK_FALSE(monitor.get_component_stats().at("db").ready);
    h.runner.run_for(2min);
    // The first instance misses its 30 s; the second (started at 31 s) is ready at 51 s.
    CHECK(times_of(recorder, MonitorEventKind::startup_timeout) == std::vector<Duration>{30s});
    CHECK(times_of(recorder, MonitorEventKind::ready) == std::vector<Duration>{51s});
    const auto timeout = recorder.of(MonitorEventKind::startup_timeout).at(0);
    CHECK(timeout.reason == "startup timeout");
    CHECK(timeout.delay == 30s);
    auto stats = monitor.get_component_stats().at("db");
    CHECK(stats.ready);
    CHECK(stats.failure_count == 1);
    CHECK(stats.last_error == "startup timeout");
    h.close(monitor);
}

TEST_CASE("component_context: the watchdog starts at ready() under a startup_timeout", "[component_context]") {
    Harness h;
    Recorder recorder;
    Monitor monitor{h.io.get_executor(), RestartPolicy{.watchdog_timeout = 10s, .startup_timeout = 1min}, h.logger};
    auto subscription = monitor.subscribe(recorder.listener());
    monitor.supervise("db", [&](ComponentContext ctx) -> asio::awaitable<void> {
        co_await sleep_for(45s);  // longer than watchdog_timeout, within startup_timeout
        ctx.ready();
        co_await sleep_for(24h);  // and then silent
    });
    h.runner.run_for(100s);  // the restarted instance (at 57 s) is still starting up
    CHECK(recorder.of(MonitorEventKind::startup_timeout).empty());
    CHECK(times_of(recorder, MonitorEventKind::watchdog_timeout) == std::vector<Duration>{55s});
    h.close(monitor);
}

TEST_CASE("component_context: reset_backoff_after counts from ready()", "[component_context]") {
    Harness h;
    Recorder recorder;
    int starts = 0;
    Monitor monitor{
        h.io.get_executor(),
        RestartPolicy{.base_backoff = 1s, .max_backoff = 1min, .reset_backoff_after = 10min, .startup_timeout = 1h},
        h.logger};
    auto subscription = monitor.subscribe(recorder.listener());
    monitor.supervise("svc", [&](ComponentContext ctx) -> asio::awaitable<void> {
        ++starts;
        // 1st: up 12 min but ready only for the last 4 of them; 2nd: ready at once, up 11 min.
        co_await sleep_for(starts == 1 ? 8min : 0min);
        ctx.ready();
        co_await sleep_for(starts == 1 ? 4min : 11min);
        if (starts <= 2) {
            throw std::runtime_error("lost");
        }
        co_await sleep_for(24h);
    });
    h.runner.run_for(1h);
    const auto scheduled = recorder.of(MonitorEventKind::restart_scheduled);
    REQUIRE(scheduled.size() == 2);
    CHECK(scheduled[0].attempt == 1);
    CHECK(scheduled[1].attempt == 1);  // ready for 11 min >= 10 min: stable, the backoff starts over
    h.close(monitor);
}

TEST_CASE("component_context: not ready for long is not stable", "[component_context]") {
    Harness h;
    Recorder recorder;
    int starts = 0;
    Monitor monitor{
        h.io.get_executor(),
        RestartPolicy{.base_backoff = 1s, .max_backoff = 1min, .reset_backoff_after = 10min, .startup_timeout = 1h},
        h.logger};
    auto subscription = monitor.subscribe(recorder.listener());
    monitor.supervise("svc", [&](ComponentContext ctx) -> asio::awaitable<void> {
        ++starts;
        co_await sleep_for(starts == 2 ? 8min : 0min);  // the 2nd is up 12 min, ready for only 4
        ctx.ready();
        co_await sleep_for(starts == 2 ? 4min : 1s);
        if (starts <= 2) {
            throw std::runtime_error("lost");
        }
        co_await sleep_for(24h);
    });
    h.runner.run_for(1h);
    const auto scheduled = recorder.of(MonitorEventKind::restart_scheduled);
    REQUIRE(scheduled.size() == 2);
    CHECK(scheduled[1].attempt == 2);
    h.close(monitor);
}

TEST_CASE("component_context: a hung instance is reported at its shutdown_timeout and restarted once it exits",
          "[component_context]") {
    Harness h;
    Recorder recorder;
    int starts = 0;
    Monitor monitor{
        h.io.get_executor(),
        RestartPolicy{.base_backoff = 1s, .max_backoff = 1s, .shutdown_timeout = 5s, .watchdog_timeout = 10s},
        h.logger};
    auto subscription = monitor.subscribe(recorder.listener());
    monitor.supervise("stuck", [&](ComponentContext ctx) -> asio::awaitable<void> {
        if (++starts == 1) {
            co_await sleep_ignoring_cancellation(1min);  // hung on something that ignores cancellation
            co_return;
        }
        for (;;) {
            ctx.heartbeat();
            co_await sleep_for(1s);
        }
    });
    h.runner.run_for(20s);
    CHECK(times_of(recorder, MonitorEventKind::watchdog_timeout) == std::vector<Duration>{10s});
    CHECK(times_of(recorder, MonitorEventKind::stop_timeout) == std::vector<Duration>{15s});
    CHECK(monitor.get_component_stats().at("stuck").state == ComponentState::unresponsive);
    CHECK(starts == 1);  // never two live instances
    h.runner.run_for(1min);
    // It returned at 60 s; the watchdog's failure then takes the normal path: backoff 1 s.
    CHECK(times_of(recorder, MonitorEventKind::restarted) == std::vector<Duration>{61s});
    CHECK(monitor.get_component_stats().at("stuck").state == ComponentState::running);
    h.close(monitor);
}

TEST_CASE("component_context: a plain factory under a watchdog policy is watched from its start",
          "[component_context]") {
    // It cannot heartbeat: the watchdog fires, as the policy asks. (Use a context factory.)
    Harness h;
    Recorder recorder;
    Monitor monitor{h.io.get_executor(), RestartPolicy{.watchdog_timeout = 10s}, h.logger};
    auto subscription = monitor.subscribe(recorder.listener());
    monitor.supervise("plain", []() -> asio::awaitable<void> { co_await sleep_for(24h); });
    h.runner.run_for(11s);
    CHECK(recorder.of(MonitorEventKind::watchdog_timeout).size() == 1);
    h.close(monitor);
}

TEST_CASE("component_context: no liveness policy means no watching", "[component_context]") {
    Harness h;
    Recorder recorder;
    Monitor monitor{h.io.get_executor(), RestartPolicy{}, h.logger};
    auto subscription = monitor.subscribe(recorder.listener());
    monitor.supervise("quiet", [](ComponentContext ctx) -> asio::awaitable<void> {
        ctx.busy();
        co_await sleep_for(24h);
    });
    h.runner.run_for(23h);
    CHECK(recorder.kinds() == taskmon_test::Names{"started"});
    auto stats = monitor.get_component_stats().at("quiet");
    CHECK(stats.ready);
    CHECK(stats.last_heartbeat_age == Duration{23h});
    CHECK_FALSE(stats.liveness_deadline);
    h.close(monitor);
}

TEST_CASE("component_context: heartbeats from another thread are seen", "[component_context]") {
    // The context is used from a thread that is not running the io_context (atomics only).
    Harness h;
    Recorder recorder;
    ComponentContext captured;
    Monitor monitor{h.io.get_executor(), RestartPolicy{.watchdog_timeout = 10s}, h.logger};
    auto subscription = monitor.subscribe(recorder.listener());
    monitor.supervise("remote", [&](ComponentContext ctx) -> asio::awaitable<void> {
        captured = ctx;
        co_await sleep_for(24h);
    });
    for (int i = 0; i < 10; ++i) {
        h.runner.run_for(5s);
        std::thread beat{[&] {
            const taskmon::testing::ManualTime::Scope scope{h.time};
            captured.heartbeat();
        }};
        beat.join();
    }
    CHECK(recorder.of(MonitorEventKind::watchdog_timeout).empty());
    h.close(monitor);
}

TEST_CASE("component_context: ready() called by the factory itself is reported once", "[component_context]") {
    Harness h;
    Recorder recorder;
    Monitor monitor{h.io.get_executor(), RestartPolicy{.startup_timeout = 10s}, h.logger};
    auto subscription = monitor.subscribe(recorder.listener());
    monitor.supervise("eager", [](ComponentContext ctx) {
        ctx.ready();  // before the coroutine even starts
        return sleep_for(24h);
    });
    h.runner.run_for(1min);
    CHECK(recorder.kinds() == taskmon_test::Names{"started", "ready"});
    CHECK(monitor.get_component_stats().at("eager").ready);
    h.close(monitor);
}

TEST_CASE(
    "component_context: stats carry the liveness deadline: startup, heartbeat, idle, extended, none when "
    "stopping",
    "[component_context]") {
    Harness h;
    Recorder recorder;
    Monitor monitor{
        h.io.get_executor(),
        RestartPolicy{.watchdog_timeout = 10s, .idle_timeout = 1h, .startup_timeout = 30s, .quarantine_cooldown = 1h},
        h.logger};
    auto subscription = monitor.subscribe(recorder.listener());
    monitor.supervise("db", [&](ComponentContext ctx) -> asio::awaitable<void> {
        co_await sleep_for(5s);
        ctx.ready();
        co_await sleep_for(3s);
        ctx.heartbeat();  // t = 8 s
        co_await sleep_for(2s);
        ctx.idle();  // t = 10 s
        co_await sleep_for(4s);
        ctx.busy();                 // t = 14 s
        ctx.extend_deadline(1min);  // until t = 74 s
        co_await sleep_for(24h);
    });
    const auto deadline_after_start = [&] {
        const auto started = recorder.of(MonitorEventKind::started).at(0).time;
        const auto deadline = monitor.get_component_stats().at("db").liveness_deadline;
        REQUIRE(deadline);
        return std::chrono::duration_cast<Duration>(*deadline - started);
    };
    h.runner.run_for(1s);
    CHECK_FALSE(monitor.get_component_stats().at("db").ready);
    CHECK(deadline_after_start() == Duration{30s});       // startup_timeout from the start
    h.runner.run_for(8s);                                 // t = 9 s
    CHECK(deadline_after_start() == Duration{18s});       // the heartbeat at 8 s + watchdog_timeout
    h.runner.run_for(2s);                                 // t = 11 s
    CHECK(deadline_after_start() == Duration{10s + 1h});  // idle at 10 s + idle_timeout
    h.runner.run_for(4s);                                 // t = 15 s
    CHECK(deadline_after_start() == Duration{74s});       // the extension
    monitor.disable({"db"});
    CHECK_FALSE(monitor.get_component_stats().at("db").liveness_deadline);  // a stop requested: none
    h.close(monitor);
    CHECK_FALSE(monitor.get_component_stats().at("db").liveness_deadline);
}

TEST_CASE("component_context: a deadline extended past what system_clock holds reads as its maximum",
          "[component_context]") {
    Harness h;
    Monitor monitor{h.io.get_executor(), RestartPolicy{.watchdog_timeout = 10s}, h.logger};
    monitor.supervise("batch", [&](ComponentContext ctx) -> asio::awaitable<void> {
        ctx.extend_deadline(std::chrono::hours::max());  // saturates to nanoseconds::max() after the epoch
        co_await sleep_for(24h);
    });
    h.runner.run_for(1s);
    CHECK(monitor.get_component_stats().at("batch").liveness_deadline == std::chrono::system_clock::time_point::max());
    h.close(monitor);
}

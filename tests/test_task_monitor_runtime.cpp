// Tests for changing a running taskmon/task_monitor.hpp: adding components, remove_and_wait(), update_policy(),
// and the shutdown_timeout of requested stops. Everything runs in virtual time.
#include <taskmon/task_monitor.hpp>

#include "monitor_harness.hpp"

#include <asio/bind_cancellation_slot.hpp>
#include <asio/co_spawn.hpp>

#include <chrono>
#include <optional>
#include <stdexcept>
#include <string>
#include <system_error>
#include <vector>

using namespace std::chrono_literals;
using taskmon::ComponentState;
using taskmon::MonitorEventKind;
using taskmon::RestartPolicy;
using taskmon::testing::ManualTimer;
using taskmon_test::Duration;
using taskmon_test::Harness;
using taskmon_test::invalid_argument_message;
using taskmon_test::Monitor;
using taskmon_test::Recorder;
using taskmon_test::since_first;
using taskmon_test::sleep_for;
using taskmon_test::sleep_ignoring_cancellation;
using taskmon_test::times_of;

namespace {

/// Starts remove_and_wait(name) as a callback; the result lands in `result`.
void remove(Monitor& monitor, const std::string& name, std::optional<std::error_code>& result) {
    monitor.remove_and_wait(name, [&result](std::error_code ec) { result = ec; });
}

}  // namespace

TEST_CASE("runtime: remove_and_wait stops a running component and forgets it", "[task_monitor][remove]") {
    Harness h;
    Recorder recorder;
    Monitor monitor{h.io.get_executor(), RestartPolicy{}, h.logger};
    auto subscription = monitor.subscribe(recorder.listener());
    int starts = 0;
    monitor.supervise("worker", [&]() -> asio::awaitable<void> {
        ++starts;
        co_await sleep_for(24h);
    });
    monitor.supervise("other", []() -> asio::awaitable<void> { co_await sleep_for(24h); });
    h.runner.run_for(1s);
    bool removed = false;
    asio::co_spawn(
        h.io,
        [&]() -> asio::awaitable<void> {
            co_await monitor.remove_and_wait("worker");
            removed = true;
        },
        [](std::exception_ptr e) { REQUIRE_FALSE(e); });
    h.runner.run_for(1s);
    CHECK(removed);
    CHECK(monitor.get_component_stats().count("worker") == 0);
    CHECK(monitor.get_component_stats().at("other").state == ComponentState::running);
    const auto kinds = recorder.kinds();
    CHECK(std::vector<std::string>(kinds.end() - 2, kinds.end()) == std::vector<std::string>{"stopped", "removed"});
    CHECK(recorder.of(MonitorEventKind::removed).at(0).unresponsive == 0);
    // The name can be used again.
    monitor.supervise("worker", [&]() -> asio::awaitable<void> {
        ++starts;
        co_await sleep_for(24h);
    });
    h.runner.run_for(1s);
    CHECK(starts == 2);
    CHECK(monitor.get_component_stats().at("worker").state == ComponentState::running);
    h.close(monitor);
}

TEST_CASE("runtime: remove_and_wait of a component that ignores cancellation returns at its shutdown_timeout",
          "[task_monitor][remove]") {
    Harness h;
    Recorder recorder;
    Monitor monitor{h.io.get_executor(), RestartPolicy{.shutdown_timeout = 5s}, h.logger};
    auto subscription = monitor.subscribe(recorder.listener());
    bool finished = false;
    monitor.supervise(
        "stubborn",
        [&]() -> asio::awaitable<void> {
            co_await sleep_ignoring_cancellation(1min);
            finished = true;
        },
        RestartPolicy{.shutdown_timeout = 2s});  // its own timeout, not the monitor's
    h.runner.run_for(10s);
    std::optional<std::error_code> result;
    remove(monitor, "stubborn", result);
    h.runner.run_for(1s);
    CHECK_FALSE(result);
    h.runner.run_for(1s);
    REQUIRE(result);
    CHECK(*result == asio::error::timed_out);
    CHECK(since_first(recorder, recorder.of(MonitorEventKind::stop_timeout).at(0)) == 12s);
    const auto removed = recorder.of(MonitorEventKind::removed);
    REQUIRE(removed.size() == 1);
    CHECK(removed[0].unresponsive == 1);
    CHECK(monitor.get_component_stats().empty());
    CHECK(h.lines_with("error|Component stubborn removed while its instance still ignores cancellation").size() == 1);
    // When it finally ends it is reported stopped; close() has nothing left to wait for.
    h.runner.run_for(1min);
    CHECK(finished);
    CHECK(recorder.kinds().back() == "stopped");
    CHECK(h.close(monitor) == 0s);
}

TEST_CASE("runtime: close() waits for a removed component that is still running", "[task_monitor][remove]") {
    Harness h;
    Recorder recorder;
    Monitor monitor{h.io.get_executor(), RestartPolicy{.shutdown_timeout = 2s}, h.logger};
    auto subscription = monitor.subscribe(recorder.listener());
    monitor.supervise("stubborn", []() -> asio::awaitable<void> { co_await sleep_ignoring_cancellation(1h); });
    std::optional<std::error_code> result;
    remove(monitor, "stubborn", result);
    h.runner.run_for(3s);
    REQUIRE(result == std::optional<std::error_code>{asio::error::timed_out});
    CHECK(h.close(monitor) == 2s);
    const auto closed = recorder.of(MonitorEventKind::closed);
    REQUIRE(closed.size() == 1);
    CHECK(closed[0].unresponsive == 1);
    CHECK(closed[0].count == 0);
}

TEST_CASE("runtime: remove_and_wait during a backoff completes at once", "[task_monitor][remove]") {
    Harness h;
    Recorder recorder;
    Monitor monitor{h.io.get_executor(), RestartPolicy{.base_backoff = 1min, .max_backoff = 1min}, h.logger};
    auto subscription = monitor.subscribe(recorder.listener());
    int starts = 0;
    monitor.supervise("db", [&]() -> asio::awaitable<void> {
        ++starts;
        co_await asio::this_coro::executor;
        throw std::runtime_error("down");
    });
    h.runner.run_for(1s);
    REQUIRE(monitor.get_component_stats().at("db").state == ComponentState::restarting);
    std::optional<std::error_code> result;
    remove(monitor, "db", result);
    h.runner.run_for(1s);
    CHECK(result == std::optional<std::error_code>{std::error_code{}});
    CHECK(monitor.get_component_stats().empty());
    h.runner.run_for(1h);
    CHECK(starts == 1);  // the pending restart was dropped
    const auto kinds = recorder.kinds();
    CHECK(std::vector<std::string>(kinds.end() - 2, kinds.end()) ==
          std::vector<std::string>{"restart_cancelled", "removed"});
    h.close(monitor);
}

TEST_CASE("runtime: concurrent removals of one component complete together", "[task_monitor][remove]") {
    Harness h;
    Monitor monitor{h.io.get_executor(), RestartPolicy{}, h.logger};
    monitor.supervise("worker", []() -> asio::awaitable<void> { co_await sleep_for(24h); });
    std::optional<std::error_code> first;
    std::optional<std::error_code> second;
    remove(monitor, "worker", first);
    remove(monitor, "worker", second);
    h.runner.run_for(1s);
    CHECK(first == std::optional<std::error_code>{std::error_code{}});
    CHECK(second == std::optional<std::error_code>{std::error_code{}});
    h.close(monitor);
}

TEST_CASE("runtime: remove_and_wait rejects bad calls and changes nothing", "[task_monitor][remove]") {
    Harness h;
    Monitor monitor{h.io.get_executor(), RestartPolicy{}, h.logger};
    monitor.supervise("worker", []() -> asio::awaitable<void> { co_await sleep_for(24h); });
    std::optional<std::error_code> result;
    CHECK_THROWS_WITH(remove(monitor, "nope", result), "remove_and_wait: unknown component 'nope'");
    remove(monitor, "worker", result);
    CHECK_THROWS_WITH(monitor.restart("worker"), "restart: component 'worker' is being removed");
    CHECK_THROWS_WITH(monitor.enable({"worker"}), "enable: component 'worker' is being removed");
    h.runner.run_for(1s);
    h.close(monitor);
    CHECK_THROWS_AS(remove(monitor, "worker", result), std::logic_error);
    std::string thrown;  // with use_awaitable too, the call throws (inside the coroutine, before it suspends)
    asio::co_spawn(
        h.io, [&]() -> asio::awaitable<void> { co_await monitor.remove_and_wait("nope"); },
        [&](std::exception_ptr e) {
            try {
                std::rethrow_exception(e);
            } catch (const std::logic_error& error) {
                thrown = error.what();
            }
        });
    h.runner.run_for(1s);
    CHECK(thrown == "remove_and_wait: the TaskMonitor is closed");
}

TEST_CASE("runtime: update_policy during a pending backoff keeps its timer", "[task_monitor][update_policy]") {
    Harness h;
    Recorder recorder;
    Monitor monitor{h.io.get_executor(),
                    RestartPolicy{.max_restart_attempts = 5, .base_backoff = 10s, .max_backoff = 10s}, h.logger};
    auto subscription = monitor.subscribe(recorder.listener());
    monitor.supervise("db", []() -> asio::awaitable<void> {
        co_await asio::this_coro::executor;
        throw std::runtime_error("down");
    });
    h.runner.run_for(1s);  // failed at 0 s: restart due at 10 s
    monitor.update_policy("db", RestartPolicy{.max_restart_attempts = 1, .base_backoff = 1min, .max_backoff = 1min});
    h.runner.run_for(1h);
    const auto restarted = recorder.of(MonitorEventKind::restarted);
    REQUIRE(restarted.size() == 1);
    CHECK(since_first(recorder, restarted[0]) == 10s);  // the pending backoff kept its 10 s
    // The next decision uses the new policy: one restart in the window already, so it gives up.
    const auto gave_up = recorder.of(MonitorEventKind::gave_up);
    REQUIRE(gave_up.size() == 1);
    CHECK(gave_up[0].limit == 1);
    CHECK(since_first(recorder, gave_up[0]) == 10s);
    CHECK(recorder.of(MonitorEventKind::policy_updated).size() == 1);
    h.close(monitor);
}

TEST_CASE("runtime: update_policy changes the next backoff", "[task_monitor][update_policy]") {
    Harness h;
    Recorder recorder;
    Monitor monitor{h.io.get_executor(), RestartPolicy{.base_backoff = 1s, .max_backoff = 1s}, h.logger};
    auto subscription = monitor.subscribe(recorder.listener());
    int starts = 0;
    monitor.supervise("db", [&]() -> asio::awaitable<void> {
        ++starts;
        co_await sleep_for(30s);
        throw std::runtime_error("down");
    });
    h.runner.run_for(10s);
    monitor.update_policy("db", RestartPolicy{.base_backoff = 7s, .max_backoff = 7s});
    h.runner.run_for(40s);
    const auto scheduled = recorder.of(MonitorEventKind::restart_scheduled);
    REQUIRE(scheduled.size() == 1);
    CHECK(scheduled[0].delay == 7s);
    h.close(monitor);
}

TEST_CASE("runtime: update_policy adds a watchdog to a running context component", "[task_monitor][update_policy]") {
    Harness h;
    Recorder recorder;
    Monitor monitor{h.io.get_executor(), RestartPolicy{}, h.logger};
    auto subscription = monitor.subscribe(recorder.listener());
    monitor.supervise("svc", [](taskmon::ComponentContext ctx) -> asio::awaitable<void> {
        ctx.heartbeat();
        co_await sleep_for(24h);
    });
    h.runner.run_for(1min);
    monitor.update_policy("svc", RestartPolicy{.watchdog_timeout = 10s});
    h.runner.run_for(1s);
    // Its last heartbeat was at its start, over a minute ago: the next check trips.
    CHECK(recorder.of(MonitorEventKind::watchdog_timeout).size() == 1);
    h.close(monitor);
}

TEST_CASE("runtime: update_policy rejects bad input and changes nothing", "[task_monitor][update_policy]") {
    Harness h;
    Monitor monitor{h.io.get_executor(), RestartPolicy{}, h.logger};
    monitor.supervise("db", []() -> asio::awaitable<void> { co_await sleep_for(24h); });
    CHECK_THROWS_WITH(monitor.update_policy("db", RestartPolicy{.base_backoff = -1s}),
                      "update_policy: policy of component 'db': base_backoff must not be negative");
    CHECK_THROWS_WITH(monitor.update_policy("nope", RestartPolicy{}), "update_policy: unknown component 'nope'");
    h.close(monitor);
    CHECK_THROWS_AS(monitor.update_policy("db", RestartPolicy{}), std::logic_error);
}

TEST_CASE("runtime: a disabled component that ignores cancellation is reported at its shutdown_timeout",
          "[task_monitor]") {
    Harness h;
    Recorder recorder;
    Monitor monitor{h.io.get_executor(), RestartPolicy{.shutdown_timeout = 3s}, h.logger};
    auto subscription = monitor.subscribe(recorder.listener());
    monitor.supervise("stubborn", []() -> asio::awaitable<void> { co_await sleep_ignoring_cancellation(1min); });
    monitor.disable({"stubborn"});
    h.runner.run_for(5s);
    const auto timeouts = recorder.of(MonitorEventKind::stop_timeout);
    REQUIRE(timeouts.size() == 1);
    CHECK(since_first(recorder, timeouts[0]) == 3s);
    CHECK(monitor.get_component_stats().at("stubborn").state == ComponentState::unresponsive);
    h.runner.run_for(1min);
    CHECK(monitor.get_component_stats().at("stubborn").state == ComponentState::stopped);
    h.close(monitor);
}

TEST_CASE("runtime: components added while others run are supervised alike", "[task_monitor]") {
    Harness h;
    Monitor monitor{h.io.get_executor(), RestartPolicy{.base_backoff = 1s, .max_backoff = 1s}, h.logger};
    monitor.supervise("first", []() -> asio::awaitable<void> { co_await sleep_for(24h); });
    h.runner.run_for(1h);
    int starts = 0;
    monitor.supervise("late", [&]() -> asio::awaitable<void> {
        if (++starts == 1) {
            co_await sleep_for(5s);
            throw std::runtime_error("down");
        }
        co_await sleep_for(24h);
    });
    h.runner.run_for(10s);
    CHECK(starts == 2);
    CHECK(monitor.get_component_stats().at("late").restart_count == 1);
    h.close(monitor);
}

TEST_CASE("runtime: a component may supervise another on its own strand that calls the monitor at once",
          "[task_monitor]") {
    Harness h;
    // One strand for every component: the parent's coroutine runs on the strand the child is started on.
    Monitor monitor{h.io.get_executor(), RestartPolicy{}, h.logger, {}, 1};
    std::optional<ComponentState> child_saw;
    monitor.supervise("parent", [&]() -> asio::awaitable<void> {
        monitor.supervise("child", [&]() -> asio::awaitable<void> {
            child_saw = monitor.get_component_stats().at("parent").state;  // before its first suspension
            co_await sleep_for(24h);
        });
        co_await sleep_for(24h);
    });
    h.runner.run_for(1s);
    REQUIRE(child_saw);
    CHECK(*child_saw == ComponentState::running);
    CHECK(monitor.get_component_stats().at("child").state == ComponentState::running);
    h.close(monitor);
}

TEST_CASE("runtime: remove_and_wait of a component already reported unresponsive completes at once",
          "[task_monitor][remove]") {
    Harness h;
    Recorder recorder;
    Monitor monitor{h.io.get_executor(), RestartPolicy{.shutdown_timeout = 2s}, h.logger};
    auto subscription = monitor.subscribe(recorder.listener());
    monitor.supervise("stubborn", []() -> asio::awaitable<void> { co_await sleep_ignoring_cancellation(1h); });
    monitor.restart("stubborn");
    h.runner.run_for(3s);
    REQUIRE(monitor.get_component_stats().at("stubborn").state == ComponentState::unresponsive);
    std::optional<std::error_code> result;
    remove(monitor, "stubborn", result);
    h.runner.run_for(1ms);
    CHECK(result == std::optional<std::error_code>{asio::error::timed_out});
    CHECK(monitor.get_component_stats().empty());
    CHECK(recorder.of(MonitorEventKind::removed).at(0).unresponsive == 1);
    CHECK(h.close(monitor) == 2s);  // close() still waits for it, up to its shutdown_timeout
}

TEST_CASE("runtime: the name of a component removed while it ignores cancellation stays taken until it exits",
          "[task_monitor][remove]") {
    // Never two live instances under one name: remove_and_wait() completes with timed_out at the shutdown_timeout,
    // but the name is free only once the old instance exits (its `stopped` event).
    Harness h;
    Recorder recorder;
    Monitor monitor{h.io.get_executor(), RestartPolicy{.shutdown_timeout = 2s}, h.logger};
    auto subscription = monitor.subscribe(recorder.listener());
    bool old_finished = false;
    monitor.supervise("stubborn", [&]() -> asio::awaitable<void> {
        co_await sleep_ignoring_cancellation(1min);
        old_finished = true;
    });
    std::optional<std::error_code> result;
    remove(monitor, "stubborn", result);
    h.runner.run_for(3s);
    REQUIRE(result == std::optional<std::error_code>{asio::error::timed_out});
    const auto fresh = [] { return sleep_for(24h); };
    CHECK(invalid_argument_message([&] { monitor.supervise("stubborn", fresh); }) ==
          "supervise: component 'stubborn' was removed but its instance still runs (it ignored cancellation past its "
          "shutdown_timeout); the name is free once that instance exits");
    CHECK(invalid_argument_message([&] {
              monitor.register_task("stubborn", fresh());
          }).rfind("register_task: component", 0) == 0);
    CHECK(invalid_argument_message([&] {
              monitor.spawn("stubborn", fresh());
          }).rfind("spawn: component 'stubborn' was removed", 0) == 0);
    CHECK(invalid_argument_message([&] {
              monitor.set_restart_factories({{"stubborn", fresh}});
          }).find("still runs") != std::string::npos);
    CHECK(invalid_argument_message([&] {
              monitor.supervise_group("stubborn", {{.name = "m", .factory = fresh}});
          }).find("still runs") != std::string::npos);
    CHECK(invalid_argument_message([&] {
              monitor.supervise_group("g", {{.name = "stubborn", .factory = fresh}});
          }).find("still runs") != std::string::npos);
    CHECK(monitor.get_component_stats().empty());
    CHECK(monitor.get_group_stats().empty());
    h.runner.run_for(1min);  // the old instance exits
    REQUIRE(old_finished);
    CHECK(recorder.kinds().back() == "stopped");
    monitor.supervise("stubborn", fresh);
    h.runner.run_for(1s);
    CHECK(monitor.get_component_stats().at("stubborn").state == ComponentState::running);
    h.close(monitor);
}

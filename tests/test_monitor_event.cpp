// Tests for taskmon/monitor_event.hpp and the event stream of BasicTaskMonitor::subscribe(). Everything
// time-dependent runs in virtual time (ManualClock); the [threads] case uses real threads.
#include <taskmon/monitor_event.hpp>
#include <taskmon/task_monitor.hpp>
#include <taskmon/testing/manual_clock.hpp>

#include "enum_names.hpp"
#include "monitor_harness.hpp"
#include "taskmon_catch.hpp"

#include <asio/co_spawn.hpp>
#include <asio/io_context.hpp>
#include <asio/post.hpp>
#include <asio/steady_timer.hpp>
#include <asio/this_coro.hpp>
#include <asio/use_awaitable.hpp>
#include <spdlog/sinks/null_sink.h>

#include <algorithm>
#include <chrono>
#include <functional>
#include <future>
#include <iterator>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>
#include <system_error>
#include <thread>
#include <type_traits>
#include <vector>

using namespace std::chrono_literals;
using taskmon::ComponentState;
using taskmon::MonitorEvent;
using taskmon::MonitorEventKind;
using taskmon::RestartPolicy;
using taskmon::RestartType;
using taskmon::testing::ManualTimer;
using namespace taskmon_test;

namespace {

constexpr MonitorEventKind all_kinds[] = {
    MonitorEventKind::started,
    MonitorEventKind::failed,
    MonitorEventKind::cancelled_unexpectedly,
    MonitorEventKind::completed,
    MonitorEventKind::restart_scheduled,
    MonitorEventKind::restarted,
    MonitorEventKind::restart_requested,
    MonitorEventKind::restart_merged,
    MonitorEventKind::gave_up,
    MonitorEventKind::not_enabled,
    MonitorEventKind::no_factory,
    MonitorEventKind::factory_failed,
    MonitorEventKind::stopped,
    MonitorEventKind::stop_timeout,
    MonitorEventKind::restart_cancelled,
    MonitorEventKind::closed,
    MonitorEventKind::ready,
    MonitorEventKind::watchdog_timeout,
    MonitorEventKind::startup_timeout,
    MonitorEventKind::quarantined,
    MonitorEventKind::trial_started,
    MonitorEventKind::quarantine_closed,
    MonitorEventKind::escalated,
    MonitorEventKind::reset,
    MonitorEventKind::removed,
    MonitorEventKind::policy_updated,
    MonitorEventKind::group_started,
    MonitorEventKind::group_restarting,
    MonitorEventKind::group_restarted,
    MonitorEventKind::group_gave_up,
    MonitorEventKind::group_shutdown,
};

}  // namespace

// ---- the header ----------------------------------------------------------------------------------------------

TEST_CASE("to_string names every MonitorEventKind by its enumerator", "[monitor_event]") {
    static_assert(to_string(MonitorEventKind::restart_scheduled) == "restart_scheduled");  // constexpr
    const Names expected{"started",
                         "failed",
                         "cancelled_unexpectedly",
                         "completed",
                         "restart_scheduled",
                         "restarted",
                         "restart_requested",
                         "restart_merged",
                         "gave_up",
                         "not_enabled",
                         "no_factory",
                         "factory_failed",
                         "stopped",
                         "stop_timeout",
                         "restart_cancelled",
                         "closed",
                         "ready",
                         "watchdog_timeout",
                         "startup_timeout",
                         "quarantined",
                         "trial_started",
                         "quarantine_closed",
                         "escalated",
                         "reset",
                         "removed",
                         "policy_updated",
                         "group_started",
                         "group_restarting",
                         "group_restarted",
                         "group_gave_up",
                         "group_shutdown"};
    Names names;
    for (auto kind : all_kinds) {
        names.emplace_back(to_string(kind));
    }
    CHECK(names == expected);
    CHECK(std::set<std::string>(names.begin(), names.end()).size() == std::size(all_kinds));
    CHECK(static_cast<int>(MonitorEventKind::group_shutdown) + 1 == static_cast<int>(std::size(all_kinds)));
    CHECK(to_string(static_cast<MonitorEventKind>(99)) == "unknown");
}

TEST_CASE("MonitorEvent is an aggregate whose unused fields stay empty", "[monitor_event]") {
    static_assert(std::is_aggregate_v<MonitorEvent>);
    const MonitorEvent e{.kind = MonitorEventKind::gave_up, .component = "perception", .limit = 5};
    CHECK(e.kind == MonitorEventKind::gave_up);
    CHECK(e.component == "perception");
    CHECK(e.limit == 5);
    CHECK(e.sequence == 0);
    CHECK(e.time == std::chrono::system_clock::time_point{});
    CHECK(e.task_id == 0);
    CHECK(e.attempt == 0);
    CHECK(e.restart_count == 0);
    CHECK(e.failure_count == 0);
    CHECK(e.delay == 0ns);
    CHECK(e.window == 0ns);
    CHECK(e.reason.empty());
    CHECK(e.restart_type == RestartType::transient);
    CHECK(e.count == 0);
    CHECK(e.unresponsive == 0);
    static_assert(std::is_same_v<taskmon::MonitorEventListener, std::function<void(const MonitorEvent&)>>);
}

// ---- the event stream ----------------------------------------------------------------------------------------

TEST_CASE("A component that fails until it gives up publishes each step with its fields", "[monitor_event]") {
    Harness h;
    auto script = failing_now(100);
    Monitor monitor{h.io.get_executor(),
                    {.max_restart_attempts = 2, .restart_window = 10min, .base_backoff = 1s, .max_backoff = 10s},
                    h.logger};
    Recorder r;
    auto subscription = monitor.subscribe(r.listener());
    monitor.supervise("perception", factory_of(script));
    h.runner.run_for(1h);
    h.close(monitor);

    CHECK(r.kinds() == Names{"started", "failed", "restart_scheduled", "restarted", "failed", "restart_scheduled",
                             "restarted", "failed", "gave_up", "closed"});
    REQUIRE(r.events.size() == 10);
    for (std::size_t i = 0; i < r.events.size(); ++i) {
        CHECK(r.events[i].sequence == i + 1);
    }
    for (std::size_t i = 0; i + 1 < r.events.size(); ++i) {
        CHECK(r.events[i].component == "perception");
    }
    const auto& e = r.events;
    const auto t0 = e[0].time;
    const std::string reason = "std::runtime_error: Connection lost";

    CHECK(e[0].task_id == 1);
    CHECK(e[0].restart_count == 0);
    CHECK(e[0].failure_count == 0);

    CHECK(e[1].task_id == 1);
    CHECK(e[1].failure_count == 1);
    CHECK(e[1].reason == reason);
    CHECK(e[1].time == t0);

    CHECK(e[2].attempt == 1);
    CHECK(e[2].delay == 1s);
    CHECK(e[2].reason == reason);
    CHECK(e[2].task_id == 1);

    CHECK(e[3].task_id == 2);
    CHECK(e[3].restart_count == 1);
    CHECK(e[3].time - t0 == 1s);
    CHECK(e[3].restart_reason == taskmon::RestartReason::failed);  // the facts of the restart, on `restarted`
    CHECK(e[3].attempt == 1);
    CHECK(e[3].delay == 1s);
    CHECK(e[3].reason == reason);

    CHECK(e[4].task_id == 2);
    CHECK(e[4].failure_count == 2);
    CHECK(e[5].attempt == 2);
    CHECK(e[5].delay == 2s);

    CHECK(e[6].task_id == 3);
    CHECK(e[6].restart_count == 2);
    CHECK(e[6].time - t0 == 3s);
    CHECK(e[6].time == monitor.get_component_stats().at("perception").last_restart_time);
    CHECK(e[6].restart_reason == taskmon::RestartReason::failed);
    CHECK(e[6].attempt == 2);
    CHECK(e[6].delay == 2s);

    CHECK(e[7].failure_count == 3);
    CHECK(e[8].limit == 2);
    CHECK(e[8].window == 10min);
    CHECK(e[8].reason == reason);
    CHECK(e[8].restart_count == 2);
    CHECK(e[8].time - t0 == 3s);
    CHECK(e[8].delay == 0ns);  // fields of other kinds stay empty
    CHECK(e[8].attempt == 0);

    CHECK(e[9].component.empty());
    CHECK(e[9].count == 1);
    CHECK(e[9].unresponsive == 0);
    CHECK(e[9].task_id == 0);
}

TEST_CASE("`restarted` says what caused the restart: a manual restart, a permanent return, a quarantine trial",
          "[monitor_event]") {
    Harness h;
    Recorder r;
    auto script = failing_now(2);
    Monitor monitor{h.io.get_executor(),
                    {.max_restart_attempts = 1,
                     .base_backoff = 1s,
                     .give_up_mode = taskmon::GiveUpMode::quarantine,
                     .quarantine_cooldown = 30s},
                    h.logger};
    auto subscription = monitor.subscribe(r.listener());
    monitor.supervise("db", factory_of(script));
    const RestartPolicy permanent{.base_backoff = 5s, .max_backoff = 5s, .restart_type = RestartType::permanent};
    monitor.supervise(
        "tick", []() -> asio::awaitable<void> { co_return; }, permanent);
    monitor.supervise("svc", []() -> asio::awaitable<void> {
        ManualTimer timer{co_await asio::this_coro::executor, 1h};
        co_await timer.async_wait(asio::use_awaitable);
    });
    h.runner.run_for(6s);    // db: failed, restarted after 1 s, failed, quarantined; tick returned and restarted
    monitor.restart("svc");  // running: stopped, then started again at once
    h.runner.run_for(1min);  // db's trial after the 30 s cooldown
    const auto restarted = [&](const std::string& name) {
        std::vector<MonitorEvent> out;
        for (const auto& e : r.of(MonitorEventKind::restarted)) {
            if (e.component == name) {
                out.push_back(e);
            }
        }
        return out;
    };
    const auto db = restarted("db");
    REQUIRE(db.size() == 2);
    CHECK(db[0].restart_reason == taskmon::RestartReason::failed);
    CHECK(db[1].restart_reason == taskmon::RestartReason::quarantine_trial);
    CHECK(db[1].attempt == 1);                                     // the first trial
    CHECK(db[1].delay == 30s);                                     // its cooldown
    CHECK(db[1].reason == "std::runtime_error: Connection lost");  // the failure that opened the breaker
    const auto tick = restarted("tick");
    REQUIRE(!tick.empty());
    CHECK(tick[0].restart_reason == taskmon::RestartReason::completed);  // a permanent component returned
    CHECK(tick[0].attempt == 1);
    CHECK(tick[0].delay == 5s);
    CHECK(tick[0].reason == "completed normally");
    const auto svc = restarted("svc");
    REQUIRE(svc.size() == 1);
    CHECK(svc[0].restart_reason == taskmon::RestartReason::manual);
    CHECK(svc[0].attempt == 0);  // restart() waits no backoff
    CHECK(svc[0].delay == 0s);
    CHECK(svc[0].reason.empty());
    h.close(monitor);
}

TEST_CASE("Listeners run after the event's log line", "[monitor_event]") {
    Harness h;
    auto script = failing_now(1);
    Monitor monitor{h.io.get_executor(), {.base_backoff = 1s, .max_backoff = 1s}, h.logger};
    const std::map<MonitorEventKind, std::string> line_of{
        {MonitorEventKind::started, "info|Started component c "},
        {MonitorEventKind::failed, "error|Component c failed "},
        {MonitorEventKind::restart_scheduled, "warning|Restarting component c (attempt 1) after 1.0s delay "},
        {MonitorEventKind::restarted, "info|Successfully restarted component c "},
        {MonitorEventKind::stopped, "info|Component c stopped "},
        {MonitorEventKind::closed, "info|TaskMonitor closed "},
    };
    Names logged_before;  // for each event: its line if it was already written when the listener ran
    auto subscription = monitor.subscribe([&](const MonitorEvent& e) {
        const auto& prefix = line_of.at(e.kind);
        for (const auto& line : h.lines()) {
            if (line.rfind(prefix, 0) == 0) {
                logged_before.push_back(prefix);
                return;
            }
        }
        logged_before.emplace_back("not yet logged: " + prefix);
    });
    monitor.supervise("c", factory_of(script));
    h.runner.run_for(1min);
    h.close(monitor);
    Names expected;
    for (auto kind : {MonitorEventKind::started, MonitorEventKind::failed, MonitorEventKind::restart_scheduled,
                      MonitorEventKind::restarted, MonitorEventKind::stopped, MonitorEventKind::closed}) {
        expected.push_back(line_of.at(kind));
    }
    CHECK(logged_before == expected);
}

TEST_CASE("Every subscriber gets every event, in the order they subscribed", "[monitor_event]") {
    Harness h;
    auto script = failing_now(2);
    Monitor monitor{h.io.get_executor(), {.base_backoff = 1s, .max_backoff = 1s}, h.logger};
    std::vector<std::pair<int, std::uint64_t>> calls;  // (listener, sequence)
    auto first = monitor.subscribe([&](const MonitorEvent& e) { calls.emplace_back(1, e.sequence); });
    auto second = monitor.subscribe([&](const MonitorEvent& e) { calls.emplace_back(2, e.sequence); });
    auto third = monitor.subscribe([&](const MonitorEvent& e) { calls.emplace_back(3, e.sequence); });
    monitor.supervise("c", factory_of(script));
    h.runner.run_for(1min);
    h.close(monitor);
    // started, failed, scheduled, restarted (x2), stopped, closed
    REQUIRE(calls.size() == 3 * 9);
    for (std::size_t i = 0; i < calls.size(); ++i) {
        CHECK(calls[i].first == static_cast<int>(i % 3) + 1);
        CHECK(calls[i].second == i / 3 + 1);
    }
}

TEST_CASE("Events of register_task, supervise, restart and disable arrive before the call returns", "[monitor_event]") {
    Harness h;
    Script a, b;
    auto failing = failing_now(1);
    Monitor monitor{h.io.get_executor(), {.base_backoff = 30s, .max_backoff = 30s}, h.logger};
    Recorder r;
    auto subscription = monitor.subscribe(r.listener());
    monitor.register_task("a", scripted(a));
    CHECK(r.kinds() == Names{"started"});
    monitor.supervise("b", factory_of(b));
    CHECK(r.kinds() == Names{"started", "started"});
    monitor.restart("b");
    CHECK(r.kinds().back() == "restart_requested");
    monitor.restart("b");
    CHECK(r.kinds().back() == "restart_merged");
    h.runner.run_for(1s);
    CHECK(r.kinds().back() == "restarted");  // on the monitor's strand, here the runner's thread
    monitor.supervise("f", factory_of(failing));
    h.runner.run_for(1s);  // f failed and waits 30 s
    CHECK(r.kinds().back() == "restart_scheduled");
    monitor.disable({"f"});
    CHECK(r.kinds().back() == "restart_cancelled");
    CHECK(r.events.back().component == "f");
    h.close(monitor);
}

TEST_CASE("A throwing listener is logged once per throw and breaks neither restarts nor close()", "[monitor_event]") {
    Harness h;
    auto script = failing_now(2);
    Monitor monitor{h.io.get_executor(), {.base_backoff = 1s, .max_backoff = 1s}, h.logger};
    int thrown = 0;
    auto std_thrower = monitor.subscribe([&](const MonitorEvent& e) {
        if (e.kind == MonitorEventKind::failed) {
            ++thrown;
            throw std::runtime_error("listener broke");
        }
    });
    auto odd_thrower = monitor.subscribe([&](const MonitorEvent& e) {
        if (e.kind == MonitorEventKind::closed) {
            ++thrown;
            throw 42;  // not a std::exception
        }
    });
    Recorder after;
    auto recorder = monitor.subscribe(after.listener());
    monitor.supervise("c", factory_of(script));
    h.runner.run_for(1min);
    CHECK(script.starts == 3);
    CHECK(monitor.get_component_stats().at("c").state == ComponentState::running);
    CHECK(h.close(monitor) == 0s);
    CHECK(thrown == 3);
    CHECK(after.kinds() == Names{"started", "failed", "restart_scheduled", "restarted", "failed", "restart_scheduled",
                                 "restarted", "stopped", "closed"});
    const auto errors = h.lines_with("Event listener threw");
    REQUIRE(errors.size() == 3);
    CHECK(errors[0] ==
          "error|Event listener threw handling failed of component c component=c kind=failed "
          "reason=\"std::runtime_error: listener broke\"");
    CHECK(errors[2] == "error|Event listener threw handling closed kind=closed reason=\"unknown exception\"");
}

TEST_CASE("A listener may call get_component_stats() and restart() re-entrantly", "[monitor_event]") {
    Harness h;
    auto script = failing_now(3);
    Monitor monitor{h.io.get_executor(), {.max_restart_attempts = 1, .base_backoff = 1s, .max_backoff = 1s}, h.logger};
    std::vector<ComponentState> states_seen;
    int restarts_requested = 0;
    Recorder first, second;
    auto reacting = monitor.subscribe([&](const MonitorEvent& e) {
        first.events.push_back(e);
        if (e.component.empty()) {
            return;
        }
        states_seen.push_back(monitor.get_component_stats().at(e.component).state);
        if (e.kind == MonitorEventKind::gave_up && restarts_requested++ == 0) {
            monitor.restart(e.component);  // publishes restart_requested on this thread: queued, not recursive
            CHECK(first.events.back().kind == MonitorEventKind::gave_up);
        }
    });
    auto watching = monitor.subscribe(second.listener());
    monitor.supervise("c", factory_of(script));
    h.runner.run_for(1h);
    // 0: started, fails; 1 s: restarted, fails, gives up; the listener restarts it: fails, gives up again (the
    // manual restart gave it a fresh budget of one), restarted after 1 s and runs.
    const Names expected{
        "started",   "failed", "restart_scheduled", "restarted", "failed", "gave_up", "restart_requested",
        "restarted", "failed", "restart_scheduled", "restarted"};
    CHECK(first.kinds() == expected);
    CHECK(second.kinds() == expected);  // the second listener saw gave_up before the restart it caused
    CHECK(script.starts == 4);
    CHECK(restarts_requested == 1);
    REQUIRE(states_seen.size() == expected.size());
    CHECK(states_seen[5] == ComponentState::gave_up);
    CHECK(states_seen.back() == ComponentState::running);
    h.close(monitor);
}

TEST_CASE("A listener may unsubscribe itself or another listener during a delivery", "[monitor_event]") {
    Harness h;
    auto script = failing_now(100);
    Monitor monitor{
        h.io.get_executor(), {.max_restart_attempts = 100, .base_backoff = 1s, .max_backoff = 1s}, h.logger};
    taskmon::EventSubscription self_removing, victim;
    Recorder victim_seen, late_seen;
    int self_calls = 0;
    std::optional<taskmon::EventSubscription> late;
    self_removing = monitor.subscribe([&](const MonitorEvent& e) {
        ++self_calls;
        if (e.kind == MonitorEventKind::failed) {
            victim.unsubscribe();  // later in order: it does not get this event
            self_removing.unsubscribe();
            late.emplace(monitor.subscribe(late_seen.listener()));  // gets what is published from now on
        }
    });
    victim = monitor.subscribe(victim_seen.listener());
    monitor.supervise("c", factory_of(script));
    h.runner.run_for(1500ms);
    CHECK(self_calls == 2);  // started, failed
    CHECK(victim_seen.kinds() == Names{"started"});
    CHECK(late_seen.kinds() == Names{"restarted", "failed", "restart_scheduled"});
    CHECK_FALSE(self_removing.subscribed());
    h.close(monitor);
}

TEST_CASE("close() publishes restart_cancelled and stopped per component, then closed", "[monitor_event]") {
    Harness h;
    Script a, b;
    auto failing = failing_now(1);
    Monitor monitor{h.io.get_executor(), {.base_backoff = 30s, .max_backoff = 30s}, h.logger};
    Recorder r;
    auto subscription = monitor.subscribe(r.listener());
    monitor.supervise("a", factory_of(a));
    monitor.supervise("b", factory_of(b));
    monitor.supervise("f", factory_of(failing));
    h.runner.run_for(1s);
    r.events.clear();
    CHECK(h.close(monitor) == 0s);
    CHECK(r.kinds() == Names{"restart_cancelled", "stopped", "stopped", "closed"});
    REQUIRE(r.events.size() == 4);
    CHECK(r.events[0].component == "f");
    CHECK(r.events[1].reason.empty());
    CHECK((std::set<std::string>{r.events[1].component, r.events[2].component}) == std::set<std::string>{"a", "b"});
    CHECK(r.events[3].count == 3);
    CHECK(r.events[3].unresponsive == 0);
    CHECK(std::is_sorted(r.events.begin(), r.events.end(),
                         [](const MonitorEvent& x, const MonitorEvent& y) { return x.sequence < y.sequence; }));
}

TEST_CASE("A component ignoring cancellation gets stop_timeout, closed counts it, and stopped comes last",
          "[monitor_event]") {
    Harness h;
    bool finished = false;
    auto stubborn = [&]() -> asio::awaitable<void> {
        ManualTimer timer{co_await asio::this_coro::executor};
        for (int i = 0; i < 10; ++i) {
            try {
                timer.expires_after(1s);
                co_await timer.async_wait(asio::use_awaitable);
            } catch (const std::system_error&) {  // ignores the cancellation
            }
            co_await asio::this_coro::reset_cancellation_state();
        }
        finished = true;
    };
    Monitor monitor{h.io.get_executor(), {.shutdown_timeout = 5s}, h.logger};
    Recorder r;
    auto subscription = monitor.subscribe(r.listener());
    monitor.supervise("stubborn", stubborn);
    h.runner.run_for(1s);
    CHECK(h.close(monitor) == 5s);
    CHECK(r.kinds() == Names{"started", "stop_timeout", "closed"});
    CHECK(r.events[1].delay == 5s);
    CHECK(r.events[1].task_id == 1);
    CHECK(r.events[2].unresponsive == 1);
    h.runner.run();
    CHECK(finished);
    CHECK(r.kinds() == Names{"started", "stop_timeout", "closed", "stopped"});
}

TEST_CASE("Each remaining kind carries its documented fields", "[monitor_event]") {
    Harness h;
    Recorder r;
    Monitor monitor{h.io.get_executor(), {.base_backoff = 1s, .max_backoff = 1s}, h.logger};
    auto subscription = monitor.subscribe(r.listener());

    SECTION("completed: restart_type") {
        monitor.supervise(
            "once", []() -> asio::awaitable<void> { co_return; },
            RestartPolicy{.restart_type = RestartType::temporary});
        h.runner.run_for(1s);
        const auto completed = r.of(MonitorEventKind::completed);
        REQUIRE(completed.size() == 1);
        CHECK(completed[0].restart_type == RestartType::temporary);
        CHECK(completed[0].task_id == 1);
    }
    SECTION("cancelled_unexpectedly: reason") {
        std::shared_ptr<ManualTimer> exposed;
        monitor.supervise("c", [&]() -> asio::awaitable<void> {
            exposed = std::make_shared<ManualTimer>(co_await asio::this_coro::executor, 1h);
            co_await exposed->async_wait(asio::use_awaitable);
        });
        h.runner.run_for(1s);
        asio::post(h.io, [&] { exposed->cancel(); });
        h.runner.run_for(100ms);
        const auto cancelled = r.of(MonitorEventKind::cancelled_unexpectedly);
        REQUIRE(cancelled.size() == 1);
        CHECK(cancelled[0].reason.rfind("std::system_error", 0) == 0);
        CHECK(cancelled[0].failure_count == 1);
    }
    SECTION("not_enabled and no_factory") {
        auto a = failing_now(1);
        auto b = failing_now(1);
        monitor.register_task("not_enabled", scripted(a));
        monitor.register_task("orphan", scripted(b));
        monitor.enable({"orphan"});
        h.runner.run_for(1s);
        CHECK(r.kinds() == Names{"started", "started", "failed", "not_enabled", "failed", "no_factory"});
        CHECK(r.of(MonitorEventKind::not_enabled).at(0).component == "not_enabled");
        CHECK(r.of(MonitorEventKind::no_factory).at(0).component == "orphan");
        CHECK(r.of(MonitorEventKind::no_factory).at(0).task_id == 2);
    }
    SECTION("factory_failed: reason and failure_count, then the next backoff") {
        auto script = failing_now(1);
        int calls = 0;
        monitor.supervise("c", [&]() -> asio::awaitable<void> {
            if (++calls == 2) {
                throw std::logic_error("no config");
            }
            return scripted(script);
        });
        h.runner.run_for(1min);
        CHECK(r.kinds() ==
              Names{"started", "failed", "restart_scheduled", "factory_failed", "restart_scheduled", "restarted"});
        const auto failed = r.of(MonitorEventKind::factory_failed).at(0);
        CHECK(failed.reason == "std::logic_error: no config");
        CHECK(failed.failure_count == 2);
        CHECK(r.events[4].attempt == 2);
    }
    SECTION("stopped with a reason when the instance throws while being stopped") {
        monitor.supervise("c", []() -> asio::awaitable<void> {
            ManualTimer timer{co_await asio::this_coro::executor, 1h};
            try {
                co_await timer.async_wait(asio::use_awaitable);
            } catch (const std::system_error&) {
                throw std::runtime_error("cleanup failed");
            }
        });
        h.runner.run_for(1s);
        monitor.disable({"c"});
        h.runner.run_for(1s);
        const auto stopped = r.of(MonitorEventKind::stopped);
        REQUIRE(stopped.size() == 1);
        CHECK(stopped[0].reason == "std::runtime_error: cleanup failed");
        CHECK(stopped[0].task_id == 1);
    }
    h.close(monitor);
}

TEST_CASE("subscribe() rejects an empty listener and any call after close()", "[monitor_event]") {
    Harness h;
    Monitor monitor{h.io.get_executor(), {}, h.logger};
    CHECK_THROWS_AS((void)monitor.subscribe(nullptr), std::invalid_argument);
    try {
        (void)monitor.subscribe(taskmon::MonitorEventListener{});
        FAIL("no exception");
    } catch (const std::invalid_argument& e) {
        CHECK(std::string{e.what()} == "subscribe: listener must not be empty");
    }
    Recorder before;
    auto subscription = monitor.subscribe(before.listener());
    h.close(monitor);
    Recorder after;
    try {
        (void)monitor.subscribe(after.listener());
        FAIL("no exception");
    } catch (const std::logic_error& e) {
        CHECK(std::string{e.what()} == "subscribe: the TaskMonitor is closed");
    }
    CHECK(before.kinds() == Names{"closed"});
    CHECK(subscription.subscribed());
}

// ---- threads -------------------------------------------------------------------------------------------------

TEST_CASE("Events from several threads reach listeners that come and go", "[monitor_event][threads]") {
    asio::io_context io;
    auto work = asio::make_work_guard(io);
    auto flaky = [&]() -> asio::awaitable<void> {
        asio::steady_timer timer{co_await asio::this_coro::executor, 1ms};
        co_await timer.async_wait(asio::use_awaitable);
        throw std::runtime_error("flaky");
    };
    auto steady = [&]() -> asio::awaitable<void> {
        asio::steady_timer timer{co_await asio::this_coro::executor, 1h};
        co_await timer.async_wait(asio::use_awaitable);
    };
    auto logger = std::make_shared<spdlog::logger>("null", std::make_shared<spdlog::sinks::null_sink_mt>());
    std::thread t1{[&] { io.run(); }};
    std::thread t2{[&] { io.run(); }};
    std::mutex mutex;
    std::vector<std::uint64_t> sequences;
    {
        taskmon::TaskMonitor monitor{
            io.get_executor(), {.max_restart_attempts = 1000, .base_backoff = 0ms, .max_backoff = 1ms}, logger};
        auto all = monitor.subscribe([&](const MonitorEvent& e) {
            std::lock_guard lock{mutex};
            sequences.push_back(e.sequence);
        });
        for (int i = 0; i < 3; ++i) {
            monitor.supervise("flaky" + std::to_string(i), flaky);
            monitor.supervise("steady" + std::to_string(i), steady);
        }
        std::thread churn{[&] {
            for (int i = 0; i < 200; ++i) {
                auto s = monitor.subscribe([&](const MonitorEvent&) { (void)monitor.get_component_stats(); });
                monitor.restart("steady" + std::to_string(i % 3));
                std::this_thread::yield();
            }
        }};
        for (int i = 0; i < 200; ++i) {
            monitor.restart("flaky" + std::to_string(i % 3));
        }
        churn.join();
        std::promise<void> closed;
        asio::co_spawn(io, monitor.close(), [&](std::exception_ptr) { closed.set_value(); });
        closed.get_future().wait();
    }
    work.reset();
    t1.join();
    t2.join();
    std::sort(sequences.begin(), sequences.end());
    REQUIRE_FALSE(sequences.empty());
    CHECK(std::adjacent_find(sequences.begin(), sequences.end()) == sequences.end());  // each event once
    CHECK(sequences.front() == 1);
    CHECK(sequences.back() == sequences.size());  // none lost: 1..n, the closed event last
}

TEST_CASE("fmt formats every MonitorEventKind as its name", "[monitor_event]") {
    taskmon_test::check_enum_names(MonitorEventKind::started, MonitorEventKind::group_shutdown);
    CHECK(fmt::format("{}", MonitorEventKind::restart_scheduled) == "restart_scheduled");
}

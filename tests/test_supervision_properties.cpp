// SupervisionProperties and its checks (testing/supervision_properties.hpp, testing/detail/supervision_checks.hpp):
// each check fed events that keep a promise and events that break it, then the properties on a simulated monitor.
#include <taskmon/async_semaphore.hpp>
#include <taskmon/component_group.hpp>
#include <taskmon/task_monitor.hpp>
#include <taskmon/testing/detail/supervision_checks.hpp>
#include <taskmon/testing/supervision_properties.hpp>

#include "monitor_harness.hpp"
#include "simulation_rig.hpp"
#include "taskmon_catch.hpp"

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/use_awaitable.hpp>

#include <chrono>
#include <cstdint>
#include <exception>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

using namespace std::chrono_literals;
using taskmon::FailureClass;
using taskmon::MonitorEvent;
using taskmon::MonitorEventKind;
using taskmon::RestartReason;
using taskmon::testing::PropertyViolation;
using taskmon::testing::SupervisionProperties;
using taskmon_test::Monitor;
using K = taskmon::MonitorEventKind;

namespace {

/// Event `sequence` of `kind` about `component`, at `at` seconds past the epoch.
MonitorEvent ev(std::uint64_t sequence, MonitorEventKind kind, std::string component = "c", int failure_count = 0,
                int at = 0) {
    MonitorEvent e;
    e.sequence = sequence;
    e.kind = kind;
    e.component = std::move(component);
    e.failure_count = failure_count;
    e.time = std::chrono::system_clock::time_point{std::chrono::seconds{at}};
    return e;
}

MonitorEvent restarted(std::uint64_t sequence, std::string component, RestartReason reason, int at = 0) {
    auto e = ev(sequence, K::restarted, std::move(component), 0, at);
    e.restart_reason = reason;
    return e;
}

MonitorEvent group_event(std::uint64_t sequence, MonitorEventKind kind, std::string group,
                         std::vector<std::string> members) {
    auto e = ev(sequence, kind, "");
    e.group = std::move(group);
    e.members = std::move(members);
    return e;
}

/// The groups of a tree, for GroupOrderCheck: g = a, b, inner; inner = x, y.
std::optional<std::vector<std::string>> tree(std::string_view name) {
    if (name == "g") {
        return std::vector<std::string>{"a", "b", "inner"};
    }
    if (name == "inner") {
        return std::vector<std::string>{"x", "y"};
    }
    return std::nullopt;
}

}  // namespace

TEST_CASE("EventOrder puts events back in sequence order and names a lost or repeated one",
          "[supervision_properties]") {
    taskmon::testing::detail::EventOrder order;
    std::string error;
    std::vector<std::uint64_t> seen;
    const auto accept = [&](std::uint64_t sequence) {
        order.accept(ev(sequence, K::ready), error, [&](const MonitorEvent& e) { seen.push_back(e.sequence); });
    };
    accept(5);  // a listener may subscribe late
    CHECK(seen == std::vector<std::uint64_t>{5});
    accept(7);  // held until 6 comes
    CHECK(seen.size() == 1);
    CHECK(order.missing() == "event 6 never arrived (event 7 did)");
    accept(6);
    CHECK(seen == std::vector<std::uint64_t>{5, 6, 7});
    CHECK(order.missing().empty());
    CHECK(error.empty());
    accept(6);
    CHECK(seen.size() == 3);
    CHECK(error == "event 6 was delivered twice");
}

TEST_CASE("FailureCountCheck: each failure raises failure_count by one, nothing else changes it",
          "[supervision_properties]") {
    taskmon::testing::detail::FailureCountCheck check;
    CHECK(check.on_event(ev(1, K::started, "c", 0)).empty());
    CHECK(check.on_event(ev(2, K::failed, "c", 1)).empty());
    CHECK(check.on_event(ev(3, K::restart_scheduled, "c", 1)).empty());
    CHECK(check.on_event(ev(4, K::factory_failed, "c", 2)).empty());
    CHECK(check.on_event(ev(5, K::watchdog_timeout, "c", 3)).empty());
    CHECK(check.on_event(ev(6, K::started, "d", 0)).empty());  // each component counts on its own
    SECTION("a failure counted without its event") {
        CHECK(check.on_event(ev(7, K::restarted, "c", 4)) ==
              "component 'c' has failure_count 4, expected 3 (event 7, restarted of 'c')");
    }
    SECTION("a failure reported without being counted (or reported twice)") {
        CHECK(check.on_event(ev(7, K::failed, "c", 3)) ==
              "component 'c' has failure_count 3, expected 4 (event 7, failed of 'c')");
    }
    SECTION("a removed component's name starts again from zero") {
        CHECK(check.on_event(ev(7, K::removed, "c", 3)).empty());
        CHECK(check.on_event(ev(8, K::started, "c", 0)).empty());
    }
    SECTION("... once the instance that outlived its removal has exited") {
        auto removed = ev(7, K::removed, "c", 3);
        removed.unresponsive = 1;
        removed.task_id = 9;
        CHECK(check.on_event(removed).empty());
        auto late = ev(8, K::stopped, "c", 3);
        late.task_id = 9;
        CHECK(check.on_event(late).empty());
        CHECK(check.on_event(ev(9, K::started, "c", 0)).empty());
    }
}

TEST_CASE("RestartWindowCheck: no window holds more than max_restart_attempts counted restarts",
          "[supervision_properties]") {
    const taskmon::RestartPolicy policy{.max_restart_attempts = 2, .restart_window = 60s};
    taskmon::testing::detail::RestartWindowCheck check{
        [&policy](std::string_view) -> const taskmon::RestartPolicy& { return policy; }};
    std::uint64_t seq = 0;
    // A counted failure, its decision, and the restart `at` seconds in.
    const auto fail_and_restart = [&](int at, FailureClass cls = FailureClass::counted) {
        auto failed = ev(++seq, K::failed, "c", 0, at);
        failed.failure_class = cls;
        CHECK(check.on_event(failed).empty());
        CHECK(check.on_event(ev(++seq, K::restart_scheduled, "c", 0, at)).empty());
        return check.on_event(restarted(++seq, "c", RestartReason::failed, at + 1));
    };
    CHECK(fail_and_restart(0).empty());
    CHECK(fail_and_restart(10).empty());
    SECTION("a third within the window") {
        CHECK(fail_and_restart(20) ==
              "component 'c' restarted 3 times within its restart_window of 60000 ms, more than "
              "max_restart_attempts 2 (event 9, restarted of 'c')");
    }
    SECTION("once the first left the window") { CHECK(fail_and_restart(61).empty()); }
    SECTION("not counted: a failure the classifier did not count, or one with no restart of its own") {
        CHECK(fail_and_restart(20, FailureClass::not_counted).empty());
        CHECK(check.on_event(ev(++seq, K::failed, "c", 0, 30)).empty());  // joined a group restart: no decision
        CHECK(check.on_event(restarted(++seq, "c", RestartReason::failed, 31)).empty());
        CHECK(check.on_event(restarted(++seq, "c", RestartReason::group, 32)).empty());
    }
    SECTION("reset() clears the window") {
        CHECK(check.on_event(ev(++seq, K::reset, "c", 0, 20)).empty());
        CHECK(fail_and_restart(21).empty());
        CHECK(fail_and_restart(22).empty());
    }
}

TEST_CASE("GroupOrderCheck: members start in order, stop in reverse, and start again after the last stop",
          "[supervision_properties]") {
    taskmon::testing::detail::GroupOrderCheck check{tree};
    std::uint64_t seq = 0;
    for (const auto* m : {"a", "b", "x", "y"}) {
        CHECK(check.on_event(ev(++seq, K::started, m)).empty());
    }
    CHECK(check.on_event(group_event(++seq, K::group_started, "g", {"a", "b", "inner"})).empty());
    auto restarting = group_event(++seq, K::group_restarting, "g", {"a", "b", "inner"});
    restarting.component = "a";
    CHECK(check.on_event(restarting).empty());
    SECTION("in order: the nested group's members are stopped first, then started last") {
        for (const auto* m : {"y", "x", "b"}) {  // (a failed: it has nothing to stop)
            CHECK(check.on_event(ev(++seq, K::stopped, m)).empty());
        }
        for (const auto* m : {"a", "b", "x", "y"}) {
            CHECK(check.on_event(restarted(++seq, m, RestartReason::group)).empty());
        }
        CHECK(check.on_event(group_event(++seq, K::group_restarted, "g", {"a", "b", "inner"})).empty());
        CHECK(check.on_event(ev(++seq, K::stopped, "b")).empty());  // the restart is over
    }
    SECTION("a stop out of reverse order") {
        CHECK(check.on_event(ev(++seq, K::stopped, "b")).empty());
        CHECK(check.on_event(ev(++seq, K::stopped, "y")) ==
              "group 'g' stopped member 'y' after 'b', which is declared before it (stops go in reverse order) "
              "(event 8, stopped of 'y')");
    }
    SECTION("a start out of order") {
        CHECK(check.on_event(restarted(++seq, "b", RestartReason::group)).empty());
        CHECK(check.on_event(restarted(++seq, "a", RestartReason::group)) ==
              "group 'g' started member 'a' after 'b', which is declared after it (event 8, restarted of 'a')");
    }
    SECTION("a stop after a start, unless a new failure began a new restart") {
        CHECK(check.on_event(restarted(++seq, "a", RestartReason::group)).empty());
        SECTION("none did") {
            CHECK(check.on_event(ev(++seq, K::stopped, "y")) ==
                  "group 'g' stopped member 'y' after it started 'a' again (event 8, stopped of 'y')");
        }
        SECTION("one did") {
            auto again = group_event(++seq, K::group_restarting, "inner", {"x", "y"});
            again.component = "x";
            CHECK(check.on_event(again).empty());
            CHECK(check.on_event(ev(++seq, K::stopped, "y")).empty());
        }
        SECTION("close() began: it stops the tree whatever restart was under way") {
            check.close_started();
            CHECK(check.on_event(ev(++seq, K::stopped, "y")).empty());
            CHECK(check.on_event(ev(++seq, K::stopped, "a")).empty());
        }
    }
    SECTION("the late exit of an instance that outlived its stop is not a stop of a later restart") {
        auto timeout = ev(++seq, K::stop_timeout, "y");
        timeout.task_id = 4;
        CHECK(check.on_event(timeout).empty());
        CHECK(check.on_event(group_event(++seq, K::group_restarted, "g", {"a", "b", "inner"})).empty());
        auto again = group_event(++seq, K::group_restarting, "g", {"a", "b", "inner"});
        again.component = "b";
        CHECK(check.on_event(again).empty());
        CHECK(check.on_event(restarted(++seq, "a", RestartReason::group)).empty());  // (y is not running)
        auto late = ev(++seq, K::stopped, "y");
        late.task_id = 4;
        CHECK(check.on_event(late).empty());  // else: "stopped member 'y' after it started 'a' again"
    }
    SECTION("a group that started its members out of order") {
        CHECK(check.on_event(ev(++seq, K::started, "p")).empty());
        CHECK(check.on_event(ev(++seq, K::started, "o")).empty());
        CHECK(check.on_event(group_event(++seq, K::group_started, "h", {"o", "p"})) ==
              "group 'h' started member 'p' before 'o', which is declared before it (event 9, group_started of "
              "group 'h')");
    }
}

TEST_CASE("SupervisionProperties: a monitor under faults keeps every promise, across seeds",
          "[supervision_properties][simulation]") {
    for (std::uint64_t seed = 1; seed <= 8; ++seed) {
        taskmon_test::SimulationRig rig{seed};
        SupervisionProperties properties{rig.sim, *rig.monitor, taskmon_test::rig_policy};
        properties.watch(rig.faults);
        std::vector<taskmon::GroupMember> members;
        for (const auto* name : {"a", "b", "c"}) {
            members.push_back(
                {.name = name, .factory = rig.faults.wrap(name, taskmon::RestartFactory{taskmon_test::steady})});
            rig.faults.set_rates(
                name,
                {.throws_at_start = 0.2, .throws_later = 0.3, .hangs = 0.05, .slow_stop = 0.2, .max_delay = 10min});
        }
        properties.set_policies(members);
        rig.monitor->supervise_group("g", std::move(members), {.strategy = taskmon::RestartStrategy::one_for_all});
        rig.monitor->supervise("alone", rig.faults.wrap("alone", taskmon::RestartFactory{taskmon_test::steady}));
        rig.faults.set_rates("alone", {.throws_later = 0.5, .max_delay = 10min});
        CHECK_NOTHROW(rig.sim.run_for(6h));
        const auto deadline = properties.expect_close();
        CHECK(deadline - rig.sim.now() == 15s);  // the group's three timeouts, later than the ungrouped 5 s
        CHECK(rig.close() <= 15s);
        CHECK(properties.closed());
        CHECK(properties.events_checked() == rig.events.size());  // every event, the closed one too
    }
}

TEST_CASE("SupervisionProperties: a close that misses its deadline, and a permit leaked past close()",
          "[supervision_properties][simulation]") {
    taskmon_test::SimulationRig rig{7};
    SupervisionProperties properties{rig.sim, *rig.monitor, taskmon_test::rig_policy};
    taskmon::AsyncSemaphore pool{2};
    properties.watch_permits("pool", pool);
    std::vector<taskmon::SemaphorePermit> leaked;
    SECTION("the deadline passes with the monitor still open") {
        rig.monitor->supervise("a", taskmon::RestartFactory{taskmon_test::steady});
        rig.sim.run_for(1min);
        properties.expect_close();  // ... and no close() follows
        CHECK_THROWS_WITH(rig.sim.run_for(1min),
                          Catch::Matchers::Contains("property 'close() by its deadline' failed: the monitor has not "
                                                    "closed"));
    }
    SECTION("a component hands its permit to something that outlives it") {
        rig.monitor->supervise("a", taskmon::RestartFactory{[&]() -> asio::awaitable<void> {
                                   leaked.push_back(co_await pool.acquire());
                                   co_await taskmon_test::steady();
                               }});
        rig.sim.run_for(1min);
        asio::co_spawn(rig.sim.get_executor(), rig.monitor->close(), asio::detached);
        CHECK_THROWS_WITH(rig.sim.run(), Catch::Matchers::Contains("property 'no permit leaked' failed: semaphore "
                                                                   "'pool' has 1 permits in use"));
    }
    SECTION("permits returned by the components are no leak") {
        rig.monitor->supervise("a", taskmon::RestartFactory{[&]() -> asio::awaitable<void> {
                                   auto permit = co_await pool.acquire();
                                   co_await taskmon_test::steady();
                               }});
        rig.sim.run_for(1min);
        CHECK(pool.stats().in_use == 1);
        CHECK_NOTHROW(rig.close());
    }
}

TEST_CASE("SupervisionProperties: a component removed while its instance ignores the stop still holds up close()",
          "[supervision_properties][simulation]") {
    // Removed after its shutdown_timeout (unresponsive), it is waited for by close() up to that timeout again,
    // and its late exit keeps its failure_count: neither is a violation.
    taskmon_test::SimulationRig rig{5};
    SupervisionProperties properties{rig.sim, *rig.monitor, taskmon_test::rig_policy};
    const auto slow = taskmon::RestartPolicy{.shutdown_timeout = 30s};
    rig.monitor->supervise("a", taskmon::RestartFactory{taskmon_test::steady});
    rig.monitor->supervise("db", taskmon::RestartFactory{[] { return taskmon_test::sleep_ignoring_cancellation(1h); }},
                           slow);
    properties.set_policy("db", slow);
    rig.sim.run_for(1min);
    std::optional<std::error_code> removed;
    rig.monitor->remove_and_wait("db", [&](std::error_code ec) { removed = ec; });
    REQUIRE(rig.sim.run_until([&] { return removed.has_value(); }, 1min));
    CHECK(*removed == asio::error::timed_out);
    CHECK(properties.expect_close() - rig.sim.now() == 30s);  // db's timeout, not only a's 5 s
    CHECK_NOTHROW(rig.close());
    CHECK_NOTHROW(rig.sim.run());  // db's instance exits an hour in: its late `stopped`
}

TEST_CASE("SupervisionProperties refuses an empty name or function, changing nothing", "[supervision_properties]") {
    taskmon_test::SimulationRig rig{1};
    SupervisionProperties properties{rig.sim, *rig.monitor, taskmon_test::rig_policy};
    CHECK_THROWS_AS(properties.set_policy("", {}), std::invalid_argument);
    CHECK_THROWS_AS(properties.watch_permits("", [] { return taskmon::SemaphoreStats{}; }), std::invalid_argument);
    CHECK_THROWS_AS(properties.watch_permits("pool", std::function<taskmon::SemaphoreStats()>{}),
                    std::invalid_argument);
    CHECK(properties.events_checked() == 0);
}

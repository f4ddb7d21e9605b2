// Tests for taskmon/component_group.hpp: TaskMonitor::supervise_group() — ordered start and stop, the three
// restart strategies, group limits and escalation through nested groups, auto_shutdown. Virtual time.
#include <taskmon/component_group.hpp>
#include <taskmon/task_monitor.hpp>

#include "enum_names.hpp"
#include "group_harness.hpp"
#include "monitor_harness.hpp"

#include <asio/this_coro.hpp>

#include <algorithm>
#include <chrono>
#include <future>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

using namespace std::chrono_literals;
using taskmon::AutoShutdown;
using taskmon::ComponentState;
using taskmon::GiveUpMode;
using taskmon::GroupMember;
using taskmon::GroupPolicy;
using taskmon::GroupState;
using taskmon::MonitorEventKind;
using taskmon::RestartPolicy;
using taskmon::RestartStrategy;
using taskmon::RestartType;
using taskmon_test::Duration;
using taskmon_test::Harness;
using taskmon_test::Journal;
using taskmon_test::member;
using taskmon_test::Monitor;
using taskmon_test::Names;
using taskmon_test::quick;
using taskmon_test::Recorder;
using taskmon_test::Role;
using taskmon_test::sleep_for;
using taskmon_test::sleep_ignoring_cancellation;

TEST_CASE("groups: members start in declaration order, each once the one before is ready", "[group]") {
    Harness h;
    Journal j{h};
    Recorder r;
    Monitor monitor{h.io.get_executor(), RestartPolicy{}, h.logger};
    auto subscription = monitor.subscribe(r.listener());
    Role a{.ready_after = 2s}, b{.ready_after = 3s}, c{};
    monitor.supervise_group("g", {member(j, "a", a, quick), member(j, "b", b, quick), member(j, "c", c, quick)});
    CHECK(monitor.get_group_stats().at("g").state == GroupState::starting);
    h.runner.run_for(10s);
    CHECK(j.of("start ") == Names{"a", "b", "c"});
    CHECK(j.at("start b") == j.at("ready a"));
    CHECK(j.at("start b") == 2s);
    CHECK(j.at("start c") == 5s);
    const auto stats = monitor.get_group_stats().at("g");
    CHECK(stats.state == GroupState::running);
    CHECK(stats.members == Names{"a", "b", "c"});
    CHECK(stats.strategy == RestartStrategy::one_for_one);
    CHECK(monitor.get_component_stats().at("b").group == "g");
    CHECK(r.of(MonitorEventKind::started).size() == 3);
    REQUIRE(r.of(MonitorEventKind::group_started).size() == 1);
    CHECK(r.of(MonitorEventKind::group_started)[0].members == Names{"a", "b", "c"});
    CHECK(r.of(MonitorEventKind::started)[1].group == "g");
    CHECK(h.lines_with("Started group g group=g members=\"a,b,c\"").size() == 1);
    h.close(monitor);
}

TEST_CASE("groups: start_after_ready false starts the next member at once", "[group]") {
    Harness h;
    Journal j{h};
    Monitor monitor{h.io.get_executor(), RestartPolicy{}, h.logger};
    Role a{.ready_after = 2s}, b{};
    monitor.supervise_group("g", {member(j, "a", a, quick), member(j, "b", b, quick)}, {.start_after_ready = false});
    h.runner.run_for(10s);
    CHECK(j.at("start b") == 0s);
    h.close(monitor);
}

TEST_CASE("groups: one_for_all restarts every member once per failure, in order, never two instances",
          "[group][one_for_all]") {
    Harness h;
    Journal j{h};
    Recorder r;
    Monitor monitor{h.io.get_executor(), RestartPolicy{}, h.logger};
    auto subscription = monitor.subscribe(r.listener());
    Role a{}, b{.fail_after = {5s}}, c{};
    monitor.supervise_group("g", {member(j, "a", a, quick), member(j, "b", b, quick), member(j, "c", c, quick)},
                            {.strategy = RestartStrategy::one_for_all});
    h.runner.run_for(1min);
    // b fails at 5 s: c then a are stopped (reverse order), then all start in order after b's 1 s backoff.
    CHECK(j.all() == Names{"start a", "ready a", "start b", "ready b", "start c", "ready c", "exit b", "exit c",
                           "exit a", "start a", "ready a", "start b", "ready b", "start c", "ready c"});
    CHECK(j.at("start a", 1) == 6s);
    for (const auto* role : {&a, &b, &c}) {
        CHECK(role->starts == 2);
        CHECK(role->max_live == 1);
    }
    const auto restarting = r.of(MonitorEventKind::group_restarting);
    REQUIRE(restarting.size() == 1);
    CHECK(restarting[0].group == "g");
    CHECK(restarting[0].component == "b");
    CHECK(restarting[0].members == Names{"a", "b", "c"});
    CHECK(restarting[0].delay == 1s);
    CHECK(r.of(MonitorEventKind::group_restarted).size() == 1);
    const auto stats = monitor.get_component_stats();
    CHECK(stats.at("a").restart_count == 1);
    CHECK(stats.at("b").restart_count == 1);
    CHECK(stats.at("b").failure_count == 1);
    CHECK(stats.at("c").restart_count == 1);
    CHECK(stats.at("a").failure_count == 0);
    CHECK(monitor.get_group_stats().at("g").restart_count == 1);
    CHECK(monitor.get_group_stats().at("g").state == GroupState::running);
    h.close(monitor);
}

TEST_CASE("groups: rest_for_one restarts the failed member and those after it only", "[group][rest_for_one]") {
    Harness h;
    Journal j{h};
    Monitor monitor{h.io.get_executor(), RestartPolicy{}, h.logger};
    Role a{}, b{.fail_after = {5s}}, c{};
    monitor.supervise_group("g", {member(j, "a", a, quick), member(j, "b", b, quick), member(j, "c", c, quick)},
                            {.strategy = RestartStrategy::rest_for_one});
    h.runner.run_for(1min);
    CHECK(a.starts == 1);
    CHECK(b.starts == 2);
    CHECK(c.starts == 2);
    CHECK(j.of("exit ") == Names{"b", "c"});
    CHECK(j.at("start b", 1) == 6s);
    CHECK(j.at("start c", 1) == 6s);
    CHECK(monitor.get_component_stats().at("a").restart_count == 0);
    h.close(monitor);
}

TEST_CASE("groups: one_for_one members restart alone on their own backoff", "[group][one_for_one]") {
    Harness h;
    Journal j{h};
    Recorder r;
    Monitor monitor{h.io.get_executor(), RestartPolicy{}, h.logger};
    auto subscription = monitor.subscribe(r.listener());
    Role a{.fail_after = {5s}}, b{};
    monitor.supervise_group("g", {member(j, "a", a, quick), member(j, "b", b, quick)});
    h.runner.run_for(1min);
    CHECK(a.starts == 2);
    CHECK(b.starts == 1);
    CHECK(r.of(MonitorEventKind::group_restarting).empty());
    CHECK(monitor.get_group_stats().at("g").restarts_in_window == 1);
    h.close(monitor);
}

TEST_CASE("groups: close() stops a group in reverse order, each member waited for in turn", "[group][close]") {
    Harness h;
    Journal j{h};
    Recorder r;
    Monitor monitor{h.io.get_executor(), RestartPolicy{}, h.logger};
    auto subscription = monitor.subscribe(r.listener());
    Role a{}, b{.stop_delay = 2s}, c{.stop_delay = 3s};
    monitor.supervise_group("g", {member(j, "a", a, quick), member(j, "b", b, quick), member(j, "c", c, quick)});
    h.runner.run_for(10s);
    const auto took = h.close(monitor);
    CHECK(j.of("exit ") == Names{"c", "b", "a"});
    CHECK(j.at("stopping b") == j.at("exit c"));
    CHECK(j.at("exit c") - j.at("stopping c") == 3s);
    CHECK(took == 5s);
    Names stopped;
    for (const auto& e : r.of(MonitorEventKind::stopped)) {
        stopped.push_back(e.component);
    }
    CHECK(stopped == Names{"c", "b", "a"});
    CHECK(r.kinds().back() == "closed");
}

TEST_CASE("groups: a member ignoring cancellation delays a group restart only up to its shutdown_timeout",
          "[group][one_for_all]") {
    Harness h;
    Journal j{h};
    Recorder r;
    Monitor monitor{h.io.get_executor(), RestartPolicy{}, h.logger};
    auto subscription = monitor.subscribe(r.listener());
    auto stubborn = quick;
    stubborn.shutdown_timeout = 3s;
    Role a{.fail_after = {5s}}, b{.stop_delay = 1min};
    monitor.supervise_group("g", {member(j, "a", a, quick), member(j, "b", b, stubborn)},
                            {.strategy = RestartStrategy::one_for_all});
    h.runner.run_for(30s);
    // b was asked to stop at 5 s and reported at 8 s; a started again then, b waits for its old instance.
    const auto timeouts = r.of(MonitorEventKind::stop_timeout);
    REQUIRE(timeouts.size() == 1);
    CHECK(timeouts[0].component == "b");
    CHECK(j.at("start a", 1) == 8s);
    CHECK(b.starts == 1);
    CHECK(monitor.get_component_stats().at("b").state == ComponentState::unresponsive);
    h.runner.run_for(1min);
    CHECK(j.at("exit b") == 65s);
    CHECK(j.at("start b", 1) == 65s);
    CHECK(b.max_live == 1);
    CHECK(monitor.get_group_stats().at("g").state == GroupState::running);
    h.close(monitor);        // b ignores this stop too: reported at its shutdown_timeout
    h.runner.run_for(2min);  // let it exit while the journal it writes to still exists
    CHECK(b.live == 0);
}

TEST_CASE("groups: a member failing during a group restart joins it", "[group][rest_for_one]") {
    Harness h;
    Journal j{h};
    Recorder r;
    Monitor monitor{h.io.get_executor(), RestartPolicy{}, h.logger};
    auto subscription = monitor.subscribe(r.listener());
    auto slow = quick;
    slow.base_backoff = slow.max_backoff = 10s;
    Role a{.fail_after = {7s}}, b{}, c{.fail_after = {5s}};
    monitor.supervise_group("g", {member(j, "a", a, quick), member(j, "b", b, quick), member(j, "c", c, slow)},
                            {.strategy = RestartStrategy::rest_for_one});
    h.runner.run_for(1min);
    // c fails at 5 s (restart due at 15 s); a fails at 7 s while c waits: a, b and c start again at 15 s.
    CHECK(r.of(MonitorEventKind::group_restarting).size() == 2);
    CHECK(r.of(MonitorEventKind::group_restarted).size() == 1);
    CHECK(j.at("start a", 1) == 15s);
    CHECK(j.at("start c", 1) == 15s);
    for (const auto* role : {&a, &b, &c}) {
        CHECK(role->starts == 2);
        CHECK(role->max_live == 1);
    }
    h.close(monitor);
}

TEST_CASE("groups: a nested group over its limit gives up and is restarted by its parent", "[group][escalation]") {
    Harness h;
    Journal j{h};
    Recorder r;
    Monitor monitor{h.io.get_executor(), RestartPolicy{}, h.logger};
    auto subscription = monitor.subscribe(r.listener());
    Role x{}, g1{.fail_after = {1s, 1s, 1s}}, g2{};
    monitor.supervise_group("top", {member(j, "x", x, quick)}, {.max_restarts = 5, .restart_window = 1h});
    monitor.supervise_group("inner", {member(j, "g1", g1, quick), member(j, "g2", g2, quick)},
                            {.strategy = RestartStrategy::one_for_all, .max_restarts = 2, .restart_window = 1min},
                            "top");
    h.runner.run_for(1min);
    // g1 fails three times: two restarts of "inner" are allowed, the third failure gives it up, and "top"
    // restarts it as a whole; x is not touched (top is one_for_one).
    const auto gave_up = r.of(MonitorEventKind::group_gave_up);
    REQUIRE(gave_up.size() == 1);
    CHECK(gave_up[0].group == "inner");
    CHECK(gave_up[0].component == "g1");
    CHECK(gave_up[0].limit == 2);
    CHECK(h.lines_with("Group inner has exceeded its restart limit (2 restarts per minute); giving it up").size() == 1);
    const auto restarting = r.of(MonitorEventKind::group_restarting);
    REQUIRE(restarting.size() == 3);
    CHECK(restarting[2].group == "top");
    CHECK(restarting[2].component == "inner");
    CHECK(restarting[2].members == Names{"inner"});
    CHECK(g1.starts == 4);
    CHECK(g2.starts == 4);
    CHECK(x.starts == 1);
    const auto groups = monitor.get_group_stats();
    CHECK(groups.at("inner").parent == "top");
    CHECK(groups.at("inner").state == GroupState::running);
    CHECK(groups.at("inner").restart_count == 3);
    CHECK(groups.at("top").members == Names{"x", "inner"});
    CHECK(groups.at("top").restarts_in_window == 1);
    CHECK(r.of(MonitorEventKind::escalated).empty());
    h.close(monitor);
}

TEST_CASE("groups: the top of a tree over its limit stops its members and escalates to the owner",
          "[group][escalation]") {
    Harness h;
    Journal j{h};
    Recorder r;
    Monitor monitor{h.io.get_executor(), RestartPolicy{}, h.logger};
    auto subscription = monitor.subscribe(r.listener());
    Role x{}, g1{.fail_after = {1s, 1s, 1s, 1s}};
    monitor.supervise_group("top", {member(j, "x", x, quick)}, {.max_restarts = 0});
    monitor.supervise_group("inner", {member(j, "g1", g1, quick)}, {.max_restarts = 0}, "top");
    std::optional<taskmon::MonitorEvent> escalation;
    monitor.async_wait_escalation([&](std::error_code ec, taskmon::MonitorEvent e) {
        CHECK_FALSE(ec);
        escalation = std::move(e);
    });
    h.runner.run_for(1min);
    REQUIRE(escalation);
    CHECK(escalation->group == "top");
    CHECK(escalation->component.empty());
    CHECK(escalation->reason.find("group 'inner' gave up") != std::string::npos);
    Names gave_up;
    for (const auto& e : r.of(MonitorEventKind::group_gave_up)) {
        gave_up.push_back(e.group);
    }
    CHECK(gave_up == Names{"inner", "top"});
    CHECK(x.live == 0);
    CHECK(g1.starts == 1);
    const auto groups = monitor.get_group_stats();
    CHECK(groups.at("top").state == GroupState::gave_up);
    CHECK(groups.at("inner").state == GroupState::gave_up);
    CHECK(monitor.get_component_stats().at("x").state == ComponentState::stopped);
    CHECK(h.lines_with("Group top gave up; escalating to the monitor's owner group=top").size() == 1);
    h.close(monitor);
    CHECK(monitor.get_group_stats().at("top").state == GroupState::gave_up);  // close() keeps how it ended
}

TEST_CASE("groups: a member giving up under GiveUpMode::escalate gives its group up", "[group][escalation]") {
    Harness h;
    Journal j{h};
    Recorder r;
    Monitor monitor{h.io.get_executor(), RestartPolicy{}, h.logger};
    auto subscription = monitor.subscribe(r.listener());
    auto escalating = quick;
    escalating.max_restart_attempts = 0;
    escalating.give_up_mode = GiveUpMode::escalate;
    Role a{.fail_after = {1s}}, b{};
    monitor.supervise_group("g", {member(j, "a", a, escalating), member(j, "b", b, quick)});
    h.runner.run_for(10s);
    CHECK(r.of(MonitorEventKind::gave_up).size() == 1);
    const auto gave_up = r.of(MonitorEventKind::group_gave_up);
    REQUIRE(gave_up.size() == 1);
    CHECK(gave_up[0].component == "a");
    CHECK(gave_up[0].limit == 0);
    CHECK(gave_up[0].window == Duration::zero());
    CHECK(h.lines_with("Group g gives up: member a escalated group=g component=a").size() == 1);
    REQUIRE(r.of(MonitorEventKind::escalated).size() == 1);
    CHECK(r.of(MonitorEventKind::escalated)[0].group == "g");
    CHECK(b.live == 0);
    h.close(monitor);
}

TEST_CASE("groups: auto_shutdown ends a group when a significant member ends", "[group][auto_shutdown]") {
    Harness h;
    Journal j{h};
    Recorder r;
    Monitor monitor{h.io.get_executor(), RestartPolicy{}, h.logger};
    auto subscription = monitor.subscribe(r.listener());
    Role job{.complete_after = 5s}, helper{}, tail{};
    monitor.supervise_group(
        "g", {member(j, "job", job, quick, true), member(j, "helper", helper, quick), member(j, "tail", tail, quick)},
        {.strategy = RestartStrategy::one_for_all, .auto_shutdown = AutoShutdown::any_significant});
    h.runner.run_for(1min);
    const auto shutdown = r.of(MonitorEventKind::group_shutdown);
    REQUIRE(shutdown.size() == 1);
    CHECK(shutdown[0].component == "job");
    CHECK(j.of("exit ") == Names{"job", "tail", "helper"});
    CHECK(helper.starts == 1);
    CHECK(tail.starts == 1);
    CHECK(monitor.get_group_stats().at("g").state == GroupState::shut_down);
    CHECK(monitor.get_component_stats().at("helper").state == ComponentState::stopped);
    h.close(monitor);
}

TEST_CASE("groups: all_significant waits for every significant member, and shutdown cascades to a parent",
          "[group][auto_shutdown]") {
    Harness h;
    Journal j{h};
    Recorder r;
    Monitor monitor{h.io.get_executor(), RestartPolicy{}, h.logger};
    auto subscription = monitor.subscribe(r.listener());
    Role p{}, one{.complete_after = 5s}, two{.complete_after = 9s};
    monitor.supervise_group("parent", {member(j, "p", p, quick)}, {.auto_shutdown = AutoShutdown::any_significant});
    monitor.supervise_group("jobs", {member(j, "one", one, quick, true), member(j, "two", two, quick, true)},
                            {.auto_shutdown = AutoShutdown::all_significant, .significant = true}, "parent");
    h.runner.run_for(7s);
    CHECK(r.of(MonitorEventKind::group_shutdown).empty());
    h.runner.run_for(1min);
    Names shut;
    for (const auto& e : r.of(MonitorEventKind::group_shutdown)) {
        shut.push_back(e.group);
    }
    CHECK(shut == Names{"jobs", "parent"});
    CHECK(p.live == 0);
    CHECK(monitor.get_group_stats().at("parent").state == GroupState::shut_down);
    h.close(monitor);
}

TEST_CASE("groups: bad calls throw, name what was wrong and change nothing", "[group]") {
    Harness h;
    Journal j{h};
    Monitor monitor{h.io.get_executor(), RestartPolicy{}, h.logger};
    Role a{}, b{};
    monitor.supervise("solo", []() -> asio::awaitable<void> { co_await sleep_for(24h); });
    const auto fails_with = [&](const std::string& name, std::vector<GroupMember> members, GroupPolicy policy,
                                const std::string& parent, const std::string& message) {
        try {
            monitor.supervise_group(name, std::move(members), policy, parent);
            FAIL("no exception for " << message);
        } catch (const std::invalid_argument& e) {
            CHECK(std::string{e.what()}.find(message) != std::string::npos);
        }
    };
    fails_with("", {member(j, "a", a)}, {}, "", "group name must not be empty");
    fails_with("g", {member(j, "a", a), member(j, "a", b)}, {}, "", "duplicate member name 'a'");
    fails_with("g", {GroupMember{.name = "a"}}, {}, "", "needs exactly one of factory and context_factory");
    fails_with("g", {member(j, "a", a)}, {}, "nowhere", "unknown parent group 'nowhere'");
    fails_with("g", {member(j, "solo", a)}, {}, "", "member name 'solo' is already used");
    fails_with("solo", {member(j, "a", a)}, {}, "", "already used by a group or component");
    fails_with("g", {member(j, "a", a)}, {.max_restarts = -1}, "", "max_restarts must not be negative");
    fails_with("g", {member(j, "a", a, RestartPolicy{.base_backoff = -1s})}, {}, "",
               "policy of member 'a': base_backoff");
    h.runner.run_for(1s);
    CHECK(monitor.get_group_stats().empty());
    CHECK(monitor.get_component_stats().size() == 1);
    CHECK(a.starts == 0);

    monitor.supervise_group("g", {member(j, "a", a)});
    h.runner.run_for(1s);
    CHECK_THROWS_AS(monitor.supervise("g", []() -> asio::awaitable<void> { co_return; }), std::invalid_argument);
    CHECK_THROWS_WITH(monitor.remove_and_wait("a", [](std::error_code) {}),
                      "remove_and_wait: component 'a' is a member of group 'g'");
    CHECK(monitor.get_component_stats().at("a").state == ComponentState::running);
    h.close(monitor);
    CHECK_THROWS_AS(monitor.supervise_group("late", {member(j, "b", b)}), std::logic_error);
}

TEST_CASE("groups: restart() of a member restarts that member alone", "[group]") {
    Harness h;
    Journal j{h};
    Monitor monitor{h.io.get_executor(), RestartPolicy{}, h.logger};
    Role a{}, b{};
    monitor.supervise_group("g", {member(j, "a", a, quick), member(j, "b", b, quick)},
                            {.strategy = RestartStrategy::one_for_all});
    h.runner.run_for(1s);
    monitor.restart("a");
    h.runner.run_for(1s);
    CHECK(a.starts == 2);
    CHECK(b.starts == 1);
    h.close(monitor);
}

TEST_CASE("groups: close() during a group restart's backoff does not wait for it", "[group][close]") {
    Harness h;
    Journal j{h};
    Monitor monitor{h.io.get_executor(), RestartPolicy{}, h.logger};
    auto slow = quick;
    slow.base_backoff = slow.max_backoff = 1h;
    Role a{.fail_after = {1s}}, b{};
    monitor.supervise_group("g", {member(j, "a", a, slow), member(j, "b", b, quick)},
                            {.strategy = RestartStrategy::one_for_all});
    h.runner.run_for(10s);
    CHECK(monitor.get_group_stats().at("g").state == GroupState::restarting);
    CHECK(monitor.get_component_stats().at("b").state == ComponentState::restarting);
    CHECK(monitor.get_component_stats().at("b").next_restart_at.has_value());
    CHECK(h.close(monitor) == Duration::zero());
    CHECK(a.starts == 1);
    CHECK(b.starts == 1);
    CHECK(monitor.get_group_stats().at("g").state == GroupState::stopped);
    const auto before = h.time.now();
    h.runner.run();  // nothing left pending: no backoff timer keeps the context busy
    CHECK(h.io.stopped());
    CHECK(h.time.now() - before < 1min);
}

TEST_CASE("groups: a nested group cannot join a parent that has shut down", "[group][auto_shutdown]") {
    Harness h;
    Journal j{h};
    Monitor monitor{h.io.get_executor(), RestartPolicy{}, h.logger};
    Role job{.complete_after = 1s}, late{};
    monitor.supervise_group("g", {member(j, "job", job, quick, true)},
                            {.auto_shutdown = AutoShutdown::any_significant});
    h.runner.run_for(5s);
    REQUIRE(monitor.get_group_stats().at("g").state == GroupState::shut_down);
    CHECK_THROWS_WITH(monitor.supervise_group("child", {member(j, "late", late)}, {}, "g"),
                      "supervise_group: group 'child': parent group 'g' is shut_down");
    CHECK(monitor.get_group_stats().size() == 1);
    h.close(monitor);
}

TEST_CASE("groups: the group enumerations have names and fmt prints them", "[group]") {
    taskmon_test::check_enum_names(RestartStrategy::one_for_one, RestartStrategy::rest_for_one);
    taskmon_test::check_enum_names(AutoShutdown::never, AutoShutdown::all_significant);
    taskmon_test::check_enum_names(GroupState::starting, GroupState::stopped);
    CHECK(fmt::format("{}", RestartStrategy::one_for_all) == "one_for_all");
}

TEST_CASE("groups: GroupPolicy validation names the field", "[group]") {
    CHECK_NOTHROW(taskmon::validate(GroupPolicy{}));
    CHECK_THROWS_WITH(taskmon::validate(GroupPolicy{.restart_window = 0s}, "g"), "g: restart_window must be positive");
    CHECK_THROWS_WITH(taskmon::validate(GroupPolicy{.strategy = static_cast<RestartStrategy>(7)}),
                      "GroupPolicy: strategy is not a RestartStrategy");
    CHECK_THROWS_WITH(taskmon::validate(GroupPolicy{.auto_shutdown = static_cast<AutoShutdown>(7)}),
                      "GroupPolicy: auto_shutdown is not an AutoShutdown");
}

TEST_CASE("groups: the group's window counts restarts when they happen, so a shrinking backoff lets none extra",
          "[group][window]") {
    // The group allows 2 restarts per 10 s. Member a's backoff shrinks (1 s, 9 s, then reset after 1 s of running):
    // instances living 0.5, 0.5, 1, 1 s make group restarts happen at 1.5, 11 and 13 s; the failure at 14 s would
    // restart the group at 15 s, the third within (5 s, 15 s]: the group gives up instead.
    Harness h;
    Journal j{h};
    Recorder r;
    Monitor monitor{h.io.get_executor(), RestartPolicy{}, h.logger};
    auto subscription = monitor.subscribe(r.listener());
    Role a{.fail_after = {500ms, 500ms, 1s, 1s, 500ms}}, b{};
    const RestartPolicy shrinking{.max_restart_attempts = taskmon::unlimited_restart_attempts,
                                  .base_backoff = 1s,
                                  .max_backoff = 9s,
                                  .backoff_multiplier = 9.0,
                                  .reset_backoff_after = 1s};
    monitor.supervise_group("pair", {member(j, "a", a, shrinking), member(j, "b", b, shrinking)},
                            {.strategy = RestartStrategy::one_for_all, .max_restarts = 2, .restart_window = 10s});
    h.runner.run_for(1min);
    std::vector<Duration> restarted;
    for (const auto& e : r.of(MonitorEventKind::group_restarted)) {
        restarted.push_back(taskmon_test::since_first(r, e));
    }
    CHECK(restarted == std::vector<Duration>{1500ms, 11s, 13s});
    const auto gave_up = r.of(MonitorEventKind::group_gave_up);
    REQUIRE(gave_up.size() == 1);
    CHECK(taskmon_test::since_first(r, gave_up.front()) == 14s);
    CHECK(gave_up.front().limit == 2);
    CHECK(monitor.get_group_stats().at("pair").state == GroupState::gave_up);
    h.close(monitor);
}

TEST_CASE("groups: a one_for_one member restarting on its own counts against the group when its restart happens",
          "[group][window][one_for_one]") {
    // The group allows 1 restart per 10 s. Member a fails at 1 s and restarts after 5 s; member b fails at 2 s,
    // while a's restart is decided but has not happened: b's restart would be the second, and the group gives up.
    Harness h;
    Journal j{h};
    Recorder r;
    Monitor monitor{h.io.get_executor(), RestartPolicy{}, h.logger};
    auto subscription = monitor.subscribe(r.listener());
    Role a{.fail_after = {1s}}, b{.fail_after = {2s}};
    const RestartPolicy slow{.base_backoff = 5s, .max_backoff = 5s};
    const RestartPolicy fast{.base_backoff = 1s, .max_backoff = 1s};
    monitor.supervise_group("pool", {member(j, "a", a, slow), member(j, "b", b, fast)},
                            {.max_restarts = 1, .restart_window = 10s});
    h.runner.run_for(1500ms);
    CHECK(monitor.get_group_stats().at("pool").restarts_in_window == 0);  // decided, not happened
    CHECK(r.of(MonitorEventKind::group_gave_up).empty());
    h.runner.run_for(1s);
    const auto gave_up = r.of(MonitorEventKind::group_gave_up);
    REQUIRE(gave_up.size() == 1);
    CHECK(gave_up.front().component == "b");
    h.close(monitor);
}

// Tests for PolicyOverrides (taskmon/policy_overrides.hpp), RestartPolicy's presets and with(), and the TaskMonitor
// calls that take overrides: supervise() on top of the monitor's policy, update_policy() on top of the
// component's. The monitor parts run in virtual time.
#include <taskmon/policy_overrides.hpp>
#include <taskmon/restart_policy.hpp>
#include <taskmon/task_monitor.hpp>

#include "monitor_harness.hpp"

#include <chrono>
#include <exception>
#include <stdexcept>
#include <string>

using namespace std::chrono_literals;
using taskmon::ComponentContext;
using taskmon::FailureClass;
using taskmon::GiveUpMode;
using taskmon::JitterKind;
using taskmon::MonitorEventKind;
using taskmon::PolicyOverrides;
using taskmon::RestartPolicy;
using taskmon::RestartType;
using taskmon_test::Harness;
using taskmon_test::Monitor;
using taskmon_test::Recorder;
using taskmon_test::sleep_for;

namespace {

/// Every field of `a` and `b` but the classifier is equal.
bool same_fields(const RestartPolicy& a, const RestartPolicy& b) {
    return a.max_restart_attempts == b.max_restart_attempts && a.restart_window == b.restart_window &&
           a.base_backoff == b.base_backoff && a.max_backoff == b.max_backoff &&
           a.backoff_multiplier == b.backoff_multiplier && a.jitter == b.jitter && a.jitter_ratio == b.jitter_ratio &&
           a.reset_backoff_after == b.reset_backoff_after && a.restart_type == b.restart_type &&
           a.shutdown_timeout == b.shutdown_timeout && a.watchdog_timeout == b.watchdog_timeout &&
           a.idle_timeout == b.idle_timeout && a.startup_timeout == b.startup_timeout &&
           a.give_up_mode == b.give_up_mode && a.quarantine_cooldown == b.quarantine_cooldown &&
           a.max_quarantine_cooldown == b.max_quarantine_cooldown;
}

const RestartPolicy custom{.max_restart_attempts = 7,
                           .restart_window = 2min,
                           .base_backoff = 30ms,
                           .max_backoff = 3s,
                           .backoff_multiplier = 3.0,
                           .jitter = JitterKind::proportional,
                           .jitter_ratio = 0.2,
                           .reset_backoff_after = 1min,
                           .restart_type = RestartType::permanent,
                           .shutdown_timeout = 2s,
                           .watchdog_timeout = 4s,
                           .idle_timeout = 8s,
                           .startup_timeout = 5s,
                           .give_up_mode = GiveUpMode::quarantine,
                           .quarantine_cooldown = 1min,
                           .max_quarantine_cooldown = 1h,
                           .classify_failure = taskmon::classify_as<FailureClass::fatal, std::logic_error>()};

}  // namespace

TEST_CASE("policy overrides: empty ones change nothing; each field set replaces that field only",
          "[policy_overrides]") {
    CHECK(same_fields(PolicyOverrides{}.applied_to(custom), custom));
    CHECK(PolicyOverrides{}.applied_to(custom).classify_failure);  // kept
    const PolicyOverrides all{.max_restart_attempts = custom.max_restart_attempts,
                              .restart_window = custom.restart_window,
                              .base_backoff = custom.base_backoff,
                              .max_backoff = custom.max_backoff,
                              .backoff_multiplier = custom.backoff_multiplier,
                              .jitter = custom.jitter,
                              .jitter_ratio = custom.jitter_ratio,
                              .reset_backoff_after = custom.reset_backoff_after,
                              .restart_type = custom.restart_type,
                              .shutdown_timeout = custom.shutdown_timeout,
                              .watchdog_timeout = custom.watchdog_timeout,
                              .idle_timeout = custom.idle_timeout,
                              .startup_timeout = custom.startup_timeout,
                              .give_up_mode = custom.give_up_mode,
                              .quarantine_cooldown = custom.quarantine_cooldown,
                              .max_quarantine_cooldown = custom.max_quarantine_cooldown,
                              .classify_failure = custom.classify_failure};
    const auto full = all.applied_to(RestartPolicy{});  // every field reaches the policy
    CHECK(same_fields(full, custom));
    REQUIRE(full.classify_failure);
    CHECK(full.classify_failure(std::make_exception_ptr(std::logic_error{"x"})) == FailureClass::fatal);
    const auto one = PolicyOverrides{.watchdog_timeout = 1s}.applied_to(custom);
    auto expected = custom;
    expected.watchdog_timeout = 1s;
    CHECK(same_fields(one, expected));
    // An empty classifier given on purpose clears the base's.
    CHECK_FALSE(PolicyOverrides{.classify_failure = taskmon::FailureClassifier{}}.applied_to(custom).classify_failure);
}

TEST_CASE("policy overrides: presets and with()", "[policy_overrides]") {
    CHECK(same_fields(RestartPolicy::transient(), RestartPolicy{}));
    auto permanent = RestartPolicy{};
    permanent.restart_type = RestartType::permanent;
    CHECK(same_fields(RestartPolicy::permanent(), permanent));
    auto temporary = RestartPolicy{};
    temporary.restart_type = RestartType::temporary;
    CHECK(same_fields(RestartPolicy::temporary(), temporary));
    const auto connection = RestartPolicy::connection();
    CHECK(connection.max_restart_attempts == taskmon::unlimited_restart_attempts);
    CHECK(connection.restart_type == RestartType::permanent);
    CHECK(connection.base_backoff == 100ms);
    CHECK(connection.max_backoff == 30s);
    CHECK(connection.jitter == JitterKind::full);
    for (const auto& preset : {RestartPolicy::permanent(), RestartPolicy::transient(), RestartPolicy::temporary(),
                               RestartPolicy::connection()}) {
        CHECK_NOTHROW(taskmon::validate(preset));
    }
    // with() in any order of fields, on an lvalue or a temporary.
    const auto tuned = RestartPolicy::connection().with({.max_backoff = 10s, .watchdog_timeout = 30s});
    CHECK(tuned.max_backoff == 10s);
    CHECK(tuned.watchdog_timeout == 30s);
    CHECK(tuned.jitter == JitterKind::full);
    const auto copy = custom.with({.base_backoff = 1.5s});
    CHECK(copy.base_backoff == 1500ms);
    CHECK(custom.base_backoff == 30ms);  // unchanged
}

TEST_CASE("policy overrides: supervise() with a braced list keeps the monitor's other fields",
          "[policy_overrides][task_monitor]") {
    Harness h;
    Recorder recorder;
    // The monitor's policy: 2 restarts, 1 s apart; RestartPolicy's defaults would be 5 restarts from 2 s.
    Monitor monitor{h.io.get_executor(),
                    RestartPolicy{.max_restart_attempts = 2, .base_backoff = 1s, .max_backoff = 1s}, h.logger};
    auto subscription = monitor.subscribe(recorder.listener());
    int starts = 0;
    monitor.supervise("poller",
                      [&](ComponentContext ctx) -> asio::awaitable<void> {
                          ++starts;
                          ctx.ready();
                          co_await sleep_for(24h);  // never heartbeats: the watchdog fires
                      },
                      {.watchdog_timeout = 10s});
    h.runner.run_for(1min);
    // Each instance is caught at 10 s, restarted 1 s later; the third catch is one restart too many.
    CHECK(starts == 3);
    const auto gave_up = recorder.of(MonitorEventKind::gave_up);
    REQUIRE(gave_up.size() == 1);
    CHECK(gave_up[0].limit == 2);
    for (const auto& e : recorder.of(MonitorEventKind::restart_scheduled)) {
        CHECK(e.delay == 1s);
    }
    // The whole-policy form still replaces everything: the defaults' 2 s backoff.
    monitor.supervise(
        "whole",
        [&](ComponentContext ctx) -> asio::awaitable<void> {
            ctx.ready();
            co_await sleep_for(24h);
        },
        RestartPolicy{.watchdog_timeout = 10s});
    h.runner.run_for(11s);
    const auto scheduled = recorder.of(MonitorEventKind::restart_scheduled);
    REQUIRE_FALSE(scheduled.empty());
    CHECK(scheduled.back().component == "whole");
    CHECK(scheduled.back().delay == 2s);
    // The forms that took a whole policy still do: none, std::nullopt, an lvalue, a const one.
    const RestartPolicy whole{.base_backoff = 5s, .max_backoff = 5s};
    const auto idle_factory = []() -> asio::awaitable<void> { co_await sleep_for(24h); };
    monitor.supervise("none", idle_factory);
    monitor.supervise("nullopt", idle_factory, std::nullopt);
    monitor.supervise("lvalue", idle_factory, whole);
    monitor.update_policy("none", whole);
    CHECK(recorder.of(MonitorEventKind::policy_updated).size() == 1);
    // Overrides that make an invalid policy are refused, naming the field, and change nothing.
    const auto before = monitor.get_component_stats().size();
    CHECK_THROWS_WITH(monitor.supervise("bad", []() -> asio::awaitable<void> { co_return; }, {.max_backoff = 10ms}),
                      "supervise: policy of component 'bad': max_backoff must not be less than base_backoff");
    CHECK(monitor.get_component_stats().size() == before);
    h.close(monitor);
}

TEST_CASE("policy overrides: update_policy() with a braced list changes the component's own policy",
          "[policy_overrides][task_monitor]") {
    Harness h;
    Recorder recorder;
    Monitor monitor{h.io.get_executor(), RestartPolicy{}, h.logger};
    auto subscription = monitor.subscribe(recorder.listener());
    int starts = 0;
    monitor.supervise(
        "db",
        [&]() -> asio::awaitable<void> {
            ++starts;
            co_await sleep_for(1s);
            throw std::runtime_error("connection refused");
        },
        RestartPolicy{.max_restart_attempts = 100, .base_backoff = 3s, .max_backoff = 3s});
    monitor.update_policy("db", {.base_backoff = 1s, .max_backoff = 1s});  // max_restart_attempts stays 100
    CHECK(recorder.of(MonitorEventKind::policy_updated).size() == 1);
    h.runner.run_for(59s);
    CHECK(starts == 30);  // at 0, 2, ..., 58 s (1 s running, 1 s backoff): no give-up, 100 restarts are allowed
    CHECK(recorder.of(MonitorEventKind::gave_up).empty());
    for (const auto& e : recorder.of(MonitorEventKind::restart_scheduled)) {
        CHECK(e.delay == 1s);
    }
    CHECK_THROWS_WITH(monitor.update_policy("db", {.jitter_ratio = 2.0}),
                      "update_policy: policy of component 'db': jitter_ratio must be in [0, 1]");
    CHECK_THROWS_WITH(monitor.update_policy("nope", {.base_backoff = 1s}), "update_policy: unknown component 'nope'");
    CHECK(recorder.of(MonitorEventKind::policy_updated).size() == 1);
    h.close(monitor);
}

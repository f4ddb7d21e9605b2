// Tests for what taskmon/task_monitor.hpp does when a component exhausts its restarts: give-up modes (stop,
// quarantine as a circuit breaker, escalate), failure classification, reset(), the warning for policies that
// never reach their max_backoff, how long a factory's captures live, and cleaning up after the monitor's
// cancellation. Everything runs in virtual time.
#include <taskmon/task_monitor.hpp>
#include <taskmon/testing/manual_clock.hpp>

#include "asio_use_future.hpp"
#include "monitor_harness.hpp"

#include <asio/co_spawn.hpp>
#include <asio/error.hpp>
#include <asio/experimental/as_tuple.hpp>
#include <asio/this_coro.hpp>
#include <asio/use_awaitable.hpp>

#include <chrono>
#include <exception>
#include <future>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <system_error>
#include <vector>

using namespace std::chrono_literals;
using taskmon::ComponentState;
using taskmon::FailureClass;
using taskmon::GiveUpMode;
using taskmon::MonitorEvent;
using taskmon::MonitorEventKind;
using taskmon::RestartPolicy;
using taskmon_test::Duration;
using taskmon_test::factory_of;
using taskmon_test::failing_now;
using taskmon_test::Harness;
using taskmon_test::Monitor;
using taskmon_test::Recorder;
using taskmon_test::times_of;

namespace {

/// Two restarts per hour, 1 s backoff: a component failing at once gives up at 2 s (third failure).
RestartPolicy quick(GiveUpMode mode) {
    return RestartPolicy{.max_restart_attempts = 2,
                         .base_backoff = 1s,
                         .max_backoff = 1s,
                         .reset_backoff_after = 10min,
                         .give_up_mode = mode};
}

}  // namespace

TEST_CASE("recovery: quarantine opens, trials, reopens with the doubled cooldown, and closes",
          "[task_monitor][quarantine]") {
    Harness h;
    Recorder recorder;
    // Fails 4 times: 3 to exhaust the budget (t = 0, 1, 2 s), then the first trial (15 min) fails, the second
    // (30 min later) stays up.
    auto flaky = failing_now(4);
    Monitor monitor{h.io.get_executor(), quick(GiveUpMode::quarantine), h.logger};
    auto subscription = monitor.subscribe(recorder.listener());
    monitor.supervise("db", factory_of(flaky));
    h.runner.run_for(3s);
    auto stats = monitor.get_component_stats().at("db");
    CHECK(stats.state == ComponentState::quarantined);
    CHECK(stats.quarantine_cooldown == 15min);
    REQUIRE(stats.next_trial_at);
    CHECK_FALSE(stats.next_restart_at);
    CHECK(times_of(recorder, MonitorEventKind::quarantined) == std::vector<Duration>{2s});
    CHECK(recorder.of(MonitorEventKind::gave_up).empty());

    h.runner.run_for(2h);
    // Trial 1 at 2 s + 15 min fails at once: reopened with 30 min; trial 2 at +30 min runs; closed 10 min later.
    const Duration trial1 = 2s + 15min;
    const Duration trial2 = trial1 + 30min;
    CHECK(times_of(recorder, MonitorEventKind::trial_started) == std::vector<Duration>{trial1, trial2});
    CHECK(times_of(recorder, MonitorEventKind::quarantined) == std::vector<Duration>{2s, trial1});
    const auto quarantined = recorder.of(MonitorEventKind::quarantined);
    CHECK(quarantined[0].delay == 15min);
    CHECK(quarantined[1].delay == 30min);
    CHECK(quarantined[1].attempt == 1);
    CHECK(quarantined[1].reason == "std::runtime_error: Connection lost");
    CHECK(times_of(recorder, MonitorEventKind::quarantine_closed) == std::vector<Duration>{trial2 + 10min});
    stats = monitor.get_component_stats().at("db");
    CHECK(stats.state == ComponentState::running);
    CHECK_FALSE(stats.in_trial);
    CHECK(stats.restarts_in_window == 0);  // the window is cleared
    CHECK(stats.quarantine_cooldown == 0s);
    CHECK(flaky.starts == 5);
    CHECK(h.lines_with("error|Component db quarantined; one trial instance in 900.0s").size() == 1);
    h.close(monitor);
}

TEST_CASE("recovery: after the breaker closes a failure starts from a fresh budget", "[task_monitor][quarantine]") {
    Harness h;
    Recorder recorder;
    auto flaky = failing_now(3);
    Monitor monitor{h.io.get_executor(), quick(GiveUpMode::quarantine), h.logger};
    auto subscription = monitor.subscribe(recorder.listener());
    monitor.supervise("db", factory_of(flaky));
    h.runner.run_for(15min + 10min + 1min);  // quarantined at 2 s, trial at 15 min passes, closed at 25 min
    REQUIRE(recorder.of(MonitorEventKind::quarantine_closed).size() == 1);
    monitor.restart("db");  // a manual restart: the budget is untouched by it
    h.runner.run_for(1s);
    CHECK(monitor.get_component_stats().at("db").state == ComponentState::running);
    CHECK(monitor.get_component_stats().at("db").restarts_in_window == 0);
    h.close(monitor);
}

TEST_CASE("recovery: the quarantine cooldown doubles up to its cap", "[task_monitor][quarantine]") {
    Harness h;
    Recorder recorder;
    auto flaky = failing_now(1000);
    auto policy = quick(GiveUpMode::quarantine);
    policy.quarantine_cooldown = 1min;
    policy.max_quarantine_cooldown = 5min;
    Monitor monitor{h.io.get_executor(), policy, h.logger};
    auto subscription = monitor.subscribe(recorder.listener());
    monitor.supervise("db", factory_of(flaky));
    h.runner.run_for(1h);
    std::vector<Duration> cooldowns;
    for (const auto& e : recorder.of(MonitorEventKind::quarantined)) {
        cooldowns.push_back(std::chrono::duration_cast<Duration>(e.delay));
    }
    REQUIRE(cooldowns.size() >= 6);
    cooldowns.resize(6);
    CHECK(cooldowns == std::vector<Duration>{1min, 2min, 4min, 5min, 5min, 5min});
    CHECK(recorder.of(MonitorEventKind::gave_up).empty());
    h.close(monitor);
}

TEST_CASE("recovery: reset() ends a quarantine at once, without a trial", "[task_monitor][quarantine]") {
    Harness h;
    Recorder recorder;
    auto flaky = failing_now(3);
    Monitor monitor{h.io.get_executor(), quick(GiveUpMode::quarantine), h.logger};
    auto subscription = monitor.subscribe(recorder.listener());
    monitor.supervise("db", factory_of(flaky));
    h.runner.run_for(1min);
    REQUIRE(monitor.get_component_stats().at("db").state == ComponentState::quarantined);
    monitor.reset("db");
    h.runner.run_for(1s);
    auto stats = monitor.get_component_stats().at("db");
    CHECK(stats.state == ComponentState::running);
    CHECK_FALSE(stats.in_trial);
    CHECK(stats.quarantine_cooldown == 0s);
    CHECK(recorder.of(MonitorEventKind::trial_started).empty());
    CHECK(recorder.of(MonitorEventKind::reset).size() == 1);
    h.runner.run_for(1h);  // the cancelled cooldown never fires a trial
    CHECK(recorder.of(MonitorEventKind::trial_started).empty());
    CHECK(flaky.starts == 4);
    h.close(monitor);
}

TEST_CASE("recovery: reset() restarts a component that gave up, with a fresh budget", "[task_monitor]") {
    Harness h;
    Recorder recorder;
    auto flaky = failing_now(5);
    Monitor monitor{h.io.get_executor(), quick(GiveUpMode::stop), h.logger};
    auto subscription = monitor.subscribe(recorder.listener());
    monitor.supervise("db", factory_of(flaky));
    h.runner.run_for(1min);
    REQUIRE(monitor.get_component_stats().at("db").state == ComponentState::gave_up);
    monitor.reset("db");
    h.runner.run_for(1min);
    // Fresh budget: two more restarts, then a second give-up (failures 4 and 5, then 6th start runs).
    CHECK(recorder.of(MonitorEventKind::gave_up).size() == 1);
    CHECK(monitor.get_component_stats().at("db").state == ComponentState::running);
    CHECK(flaky.starts == 6);
    h.close(monitor);
}

TEST_CASE("recovery: reset() of a running component only clears its history", "[task_monitor]") {
    Harness h;
    auto flaky = failing_now(1);
    Monitor monitor{h.io.get_executor(), quick(GiveUpMode::stop), h.logger};
    monitor.supervise("db", factory_of(flaky));
    h.runner.run_for(10s);
    REQUIRE(monitor.get_component_stats().at("db").restarts_in_window == 1);
    const auto task_id = monitor.get_component_stats().at("db").task_id;
    monitor.reset("db");
    h.runner.run_for(1s);
    auto stats = monitor.get_component_stats().at("db");
    CHECK(stats.restarts_in_window == 0);
    CHECK(stats.task_id == task_id);
    CHECK_THROWS_WITH(monitor.reset("nope"), "reset: unknown component 'nope'");
    h.close(monitor);
    CHECK_THROWS_AS(monitor.reset("db"), std::logic_error);
}

TEST_CASE("recovery: escalate hands the give-up to the owner", "[task_monitor][escalate]") {
    Harness h;
    Recorder recorder;
    auto flaky = failing_now(100);
    Monitor monitor{h.io.get_executor(), quick(GiveUpMode::escalate), h.logger};
    auto subscription = monitor.subscribe(recorder.listener());
    std::optional<MonitorEvent> escalation;
    asio::co_spawn(
        h.io, [&]() -> asio::awaitable<void> { escalation = co_await monitor.async_wait_escalation(); },
        [](std::exception_ptr e) { REQUIRE_FALSE(e); });
    monitor.supervise("acceptor", factory_of(flaky));
    h.runner.run_for(1min);
    REQUIRE(escalation);
    CHECK(escalation->kind == MonitorEventKind::escalated);
    CHECK(escalation->component == "acceptor");
    CHECK(escalation->limit == 2);
    CHECK(escalation->reason == "std::runtime_error: Connection lost");
    CHECK(recorder.kinds().back() == "escalated");
    CHECK(monitor.get_component_stats().at("acceptor").state == ComponentState::gave_up);
    CHECK(h.lines_with("critical|Component acceptor gave up; escalating").size() == 1);
    h.close(monitor);
}

TEST_CASE("recovery: an escalation before anyone waits is kept for the next wait", "[task_monitor][escalate]") {
    Harness h;
    auto a = failing_now(100);
    auto b = failing_now(100);
    Monitor monitor{h.io.get_executor(), quick(GiveUpMode::escalate), h.logger};
    monitor.supervise("a", factory_of(a));
    h.runner.run_for(1min);
    monitor.supervise("b", factory_of(b));
    h.runner.run_for(1min);
    std::vector<std::string> seen;
    for (int i = 0; i < 2; ++i) {
        monitor.async_wait_escalation([&](std::error_code ec, MonitorEvent e) {
            REQUIRE_FALSE(ec);
            seen.push_back(e.component);
        });
    }
    h.runner.run_for(1s);
    CHECK(seen == std::vector<std::string>{"a", "b"});
    h.close(monitor);
}

TEST_CASE("recovery: a wait for an escalation ends with operation_aborted at close()", "[task_monitor][escalate]") {
    Harness h;
    Monitor monitor{h.io.get_executor(), quick(GiveUpMode::escalate), h.logger};
    auto healthy = failing_now(0);
    monitor.supervise("fine", factory_of(healthy));
    std::optional<std::error_code> result;
    monitor.async_wait_escalation([&](std::error_code ec, const MonitorEvent&) { result = ec; });
    h.runner.run_for(1min);
    CHECK_FALSE(result);
    h.close(monitor);
    h.runner.run_for(1s);
    REQUIRE(result);
    CHECK(*result == asio::error::operation_aborted);
    std::optional<std::error_code> late;  // after close, a wait ends at once
    monitor.async_wait_escalation([&](std::error_code ec, const MonitorEvent&) { late = ec; });
    h.runner.run_for(1s);
    CHECK(late == std::optional<std::error_code>{asio::error::operation_aborted});
}

TEST_CASE("recovery: a waiter loop with as_tuple takes every escalation and ends at close() without a throw",
          "[task_monitor][escalate]") {
    Harness h;
    auto a = failing_now(100);
    auto b = failing_now(100);
    Monitor monitor{h.io.get_executor(), quick(GiveUpMode::escalate), h.logger};
    std::vector<std::string> seen;
    std::optional<std::error_code> ended;
    // The recipe of docs/task_monitor.md ("Escalation"): the end of the monitor is a value, not an exception.
    asio::co_spawn(
        h.io,
        [&]() -> asio::awaitable<void> {
            for (;;) {
                auto [ec, e] =
                    co_await monitor.async_wait_escalation(asio::experimental::as_tuple(asio::use_awaitable));
                if (ec) {
                    ended = ec;
                    co_return;
                }
                seen.push_back(e.component);
            }
        },
        [](std::exception_ptr e) { REQUIRE_FALSE(e); });
    monitor.supervise("a", factory_of(a));
    monitor.supervise("b", factory_of(b));
    h.runner.run_for(1min);
    CHECK(seen == std::vector<std::string>{"a", "b"});
    CHECK_FALSE(ended);
    h.close(monitor);
    h.runner.run_for(1s);
    CHECK(ended == std::optional<std::error_code>{asio::error::operation_aborted});
}

TEST_CASE("recovery: escalations reach main() through use_future", "[task_monitor][escalate]") {
    Harness h;
    auto flaky = failing_now(100);
    Monitor monitor{h.io.get_executor(), quick(GiveUpMode::escalate), h.logger};
    auto escalation = monitor.async_wait_escalation(asio::use_future);
    monitor.supervise("acceptor", factory_of(flaky));
    h.runner.run_for(1min);
    // use_future completes the promise from its own executor: wait for it (at once, unless it never comes).
    REQUIRE(escalation.wait_for(60s) == std::future_status::ready);
    CHECK(escalation.get().component == "acceptor");
    h.close(monitor);
}

TEST_CASE("recovery: a fatal classification gives up at once", "[task_monitor][classify]") {
    Harness h;
    Recorder recorder;
    auto policy = quick(GiveUpMode::stop);
    policy.classify_failure = taskmon::classify_as<FailureClass::fatal, std::invalid_argument>();
    Monitor monitor{h.io.get_executor(), policy, h.logger};
    auto subscription = monitor.subscribe(recorder.listener());
    monitor.supervise("parser", []() -> asio::awaitable<void> {
        co_await asio::this_coro::executor;
        throw std::invalid_argument("bad configuration");
    });
    h.runner.run_for(1min);
    CHECK(recorder.kinds() == taskmon_test::Names{"started", "failed", "gave_up"});
    CHECK(recorder.of(MonitorEventKind::failed).at(0).failure_class == FailureClass::fatal);
    CHECK(recorder.of(MonitorEventKind::gave_up).at(0).limit == 0);
    CHECK(monitor.get_component_stats().at("parser").state == ComponentState::gave_up);
    CHECK(monitor.get_component_stats().at("parser").restart_count == 0);
    h.close(monitor);
}

TEST_CASE("recovery: a fatal failure under quarantine quarantines at once", "[task_monitor][classify]") {
    Harness h;
    Recorder recorder;
    auto policy = quick(GiveUpMode::quarantine);
    policy.classify_failure = [](const std::exception_ptr&) { return FailureClass::fatal; };
    Monitor monitor{h.io.get_executor(), policy, h.logger};
    auto subscription = monitor.subscribe(recorder.listener());
    auto flaky = failing_now(1);
    monitor.supervise("db", factory_of(flaky));
    h.runner.run_for(1s);
    CHECK(recorder.kinds() == taskmon_test::Names{"started", "failed", "quarantined"});
    h.close(monitor);
}

TEST_CASE("recovery: not_counted failures restart with backoff but never fill the window", "[task_monitor][classify]") {
    Harness h;
    Recorder recorder;
    auto policy = quick(GiveUpMode::stop);
    policy.max_backoff = 8s;
    policy.classify_failure = taskmon::classify_as<FailureClass::not_counted, std::runtime_error>();
    Monitor monitor{h.io.get_executor(), policy, h.logger};
    auto subscription = monitor.subscribe(recorder.listener());
    auto flaky = failing_now(10);
    monitor.supervise("db", factory_of(flaky));
    h.runner.run_for(1h);
    CHECK(recorder.of(MonitorEventKind::gave_up).empty());
    CHECK(flaky.starts == 11);
    auto scheduled = recorder.of(MonitorEventKind::restart_scheduled);
    REQUIRE(scheduled.size() == 10);
    CHECK(scheduled[3].delay == 8s);  // 1, 2, 4, 8: the backoff still grows
    CHECK(recorder.of(MonitorEventKind::failed).at(0).failure_class == FailureClass::not_counted);
    CHECK(monitor.get_component_stats().at("db").restarts_in_window == 0);
    h.close(monitor);
}

TEST_CASE("recovery: a classifier that throws is logged and the failure counts", "[task_monitor][classify]") {
    Harness h;
    auto policy = quick(GiveUpMode::stop);
    policy.classify_failure = [](const std::exception_ptr&) -> FailureClass { throw std::logic_error("oops"); };
    Monitor monitor{h.io.get_executor(), policy, h.logger};
    auto flaky = failing_now(1);
    monitor.supervise("db", factory_of(flaky));
    h.runner.run_for(10s);
    CHECK(monitor.get_component_stats().at("db").restarts_in_window == 1);
    CHECK(h.lines_with("error|Failure classifier of component db threw").size() == 1);
    h.close(monitor);
}

TEST_CASE("recovery: the classifier and the RandomSource run outside the monitor's lock: they may call the monitor",
          "[task_monitor][classify][jitter]") {
    // Under the lock, a call into the monitor from either would deadlock (std::mutex is not recursive).
    Harness h;
    Recorder recorder;
    std::optional<Monitor> monitor;
    std::vector<ComponentState> seen_by_classifier;
    std::vector<ComponentState> seen_by_random;
    auto policy = quick(GiveUpMode::stop);
    policy.jitter = taskmon::JitterKind::full;
    policy.classify_failure = [&](const std::exception_ptr&) {
        seen_by_classifier.push_back(monitor->get_component_stats().at("db").state);
        return FailureClass::counted;
    };
    monitor.emplace(h.io.get_executor(), policy, h.logger, [&] {
        seen_by_random.push_back(monitor->get_component_stats().at("db").state);
        return 0.5;
    });
    auto subscription = monitor->subscribe(recorder.listener());
    auto flaky = failing_now(2);
    monitor->supervise("db", factory_of(flaky));
    h.runner.run_for(1min);
    CHECK(flaky.starts == 3);
    // Called before the monitor applied the failure: the component still reads as running.
    CHECK(seen_by_classifier == std::vector<ComponentState>{ComponentState::running, ComponentState::running});
    CHECK(seen_by_random == std::vector<ComponentState>{ComponentState::running, ComponentState::running});
    const auto scheduled = recorder.of(MonitorEventKind::restart_scheduled);
    REQUIRE(scheduled.size() == 2);
    CHECK(scheduled[0].delay == 500ms);  // base 1 s, full jitter, draw 0.5
    h.close(*monitor);
}

TEST_CASE("recovery: classify_as matches derived types and leaves others counted", "[restart_policy][classify]") {
    const auto classifier = taskmon::classify_as<FailureClass::fatal, std::logic_error, std::bad_alloc>();
    CHECK(classifier(std::make_exception_ptr(std::invalid_argument{"x"})) == FailureClass::fatal);
    CHECK(classifier(std::make_exception_ptr(std::bad_alloc{})) == FailureClass::fatal);
    CHECK(classifier(std::make_exception_ptr(std::runtime_error{"x"})) == FailureClass::counted);
    CHECK(classifier(std::make_exception_ptr(42)) == FailureClass::counted);
    CHECK(classifier(nullptr) == FailureClass::counted);
}

TEST_CASE("recovery: a policy that gives up before reaching max_backoff is warned about once",
          "[task_monitor][policy]") {
    Harness h;
    {
        Monitor monitor{h.io.get_executor(), RestartPolicy{}, h.logger};  // the design's defaults
        h.close(monitor);
    }
    const auto warnings = h.lines_with("warning|Restart policy never reaches its max_backoff");
    REQUIRE(warnings.size() == 1);
    CHECK(warnings[0].find("gives up after 5 restarts per hour before any backoff reaches 60.0s") != std::string::npos);
    Monitor reaches{h.io.get_executor(), RestartPolicy{.max_restart_attempts = 6}, h.logger};
    reaches.supervise(
        "x", []() -> asio::awaitable<void> { co_return; },
        RestartPolicy{.max_restart_attempts = 2, .base_backoff = 1s, .max_backoff = 10s});
    CHECK(h.lines_with("Restart policy never reaches").size() == 2);
    CHECK(h.lines_with("the policy of component 'x'").size() == 1);
    h.close(reaches);
}

TEST_CASE("recovery: gives_up_before_max_backoff", "[restart_policy]") {
    CHECK(taskmon::gives_up_before_max_backoff(RestartPolicy{}));  // 2+4+8+16+32 s, then refused
    CHECK_FALSE(taskmon::gives_up_before_max_backoff(RestartPolicy{.max_restart_attempts = 6}));
    CHECK_FALSE(taskmon::gives_up_before_max_backoff(
        RestartPolicy{.max_restart_attempts = taskmon::unlimited_restart_attempts}));
    // The restarts do not fit in the window: old ones expire before the limit is reached.
    CHECK_FALSE(taskmon::gives_up_before_max_backoff(RestartPolicy{.restart_window = 10s}));
    CHECK_FALSE(taskmon::gives_up_before_max_backoff(RestartPolicy{.base_backoff = 60s}));
}

TEST_CASE("recovery: unlimited_restart_attempts never gives up", "[task_monitor]") {
    Harness h;
    Recorder recorder;
    Monitor monitor{
        h.io.get_executor(),
        RestartPolicy{
            .max_restart_attempts = taskmon::unlimited_restart_attempts, .base_backoff = 1s, .max_backoff = 1s},
        h.logger};
    auto subscription = monitor.subscribe(recorder.listener());
    auto flaky = failing_now(1000);
    monitor.supervise("db", factory_of(flaky));
    h.runner.run_for(10min);
    CHECK(recorder.of(MonitorEventKind::gave_up).empty());
    CHECK(flaky.starts > 500);
    // The window holds the restarts that happened (the last one scheduled is still waiting for its backoff).
    CHECK(monitor.get_component_stats().at("db").restarts_in_window ==
          static_cast<int>(recorder.of(MonitorEventKind::restarted).size()));
    CHECK(recorder.of(MonitorEventKind::restarted).size() + 1 ==
          recorder.of(MonitorEventKind::restart_scheduled).size());
    h.close(monitor);
}

TEST_CASE("recovery: new policy fields are validated", "[restart_policy]") {
    const auto message = [](const RestartPolicy& p) {
        try {
            taskmon::validate(p);
        } catch (const std::invalid_argument& e) {
            return std::string{e.what()};
        }
        return std::string{"valid"};
    };
    CHECK(message({.watchdog_timeout = -1s}) == "RestartPolicy: watchdog_timeout must not be negative");
    CHECK(message({.idle_timeout = 1s}) == "RestartPolicy: idle_timeout needs a watchdog_timeout");
    CHECK(message({.startup_timeout = -1s}) == "RestartPolicy: startup_timeout must not be negative");
    CHECK(message({.quarantine_cooldown = 0s}) == "RestartPolicy: quarantine_cooldown must be positive");
    CHECK(message({.quarantine_cooldown = 2h, .max_quarantine_cooldown = 1h}) ==
          "RestartPolicy: max_quarantine_cooldown must not be less than quarantine_cooldown");
    CHECK(message({.give_up_mode = static_cast<GiveUpMode>(7)}) == "RestartPolicy: give_up_mode is not a GiveUpMode");
    CHECK(message({.watchdog_timeout = 10s, .idle_timeout = 1min, .startup_timeout = 1min}) == "valid");
}

TEST_CASE("recovery: GiveUpMode and FailureClass have names", "[restart_policy]") {
    static_assert(taskmon::to_string(GiveUpMode::quarantine) == "quarantine");
    CHECK(taskmon::to_string(GiveUpMode::stop) == "stop");
    CHECK(taskmon::to_string(GiveUpMode::escalate) == "escalate");
    CHECK(taskmon::to_string(static_cast<GiveUpMode>(9)) == "unknown");
    CHECK(taskmon::to_string(FailureClass::counted) == "counted");
    CHECK(taskmon::to_string(FailureClass::not_counted) == "not_counted");
    CHECK(taskmon::to_string(FailureClass::fatal) == "fatal");
    CHECK(taskmon::to_string(static_cast<FailureClass>(9)) == "unknown");
}

TEST_CASE("recovery: reset() while a trial's factory runs starts it as a plain instance",
          "[task_monitor][quarantine]") {
    // The factory of the trial calls reset() (another thread could, between the start's two critical sections).
    Harness h;
    Recorder recorder;
    Monitor* self = nullptr;
    int starts = 0;
    auto script = failing_now(3);
    Monitor monitor{h.io.get_executor(), quick(GiveUpMode::quarantine), h.logger};
    self = &monitor;
    auto subscription = monitor.subscribe(recorder.listener());
    monitor.supervise("db", [&]() -> asio::awaitable<void> {
        if (++starts == 4) {
            self->reset("db");  // the first trial's factory call
        }
        return taskmon_test::scripted(script);  // fails on the first three starts
    });
    h.runner.run_for(1h);
    auto stats = monitor.get_component_stats().at("db");
    CHECK(stats.state == ComponentState::running);
    CHECK_FALSE(stats.in_trial);
    CHECK(starts == 4);
    CHECK(recorder.of(MonitorEventKind::trial_started).empty());
    h.close(monitor);
}

TEST_CASE("recovery: restart() of a running trial ends the quarantine", "[task_monitor][quarantine]") {
    Harness h;
    Recorder recorder;
    auto flaky = failing_now(3);
    Monitor monitor{h.io.get_executor(), quick(GiveUpMode::quarantine), h.logger};
    auto subscription = monitor.subscribe(recorder.listener());
    monitor.supervise("db", factory_of(flaky));
    h.runner.run_for(15min + 1min);  // quarantined at 2 s, the trial runs from 15 min 2 s
    REQUIRE(monitor.get_component_stats().at("db").in_trial);
    monitor.restart("db");
    h.runner.run_for(1s);
    auto stats = monitor.get_component_stats().at("db");
    CHECK(stats.state == ComponentState::running);
    CHECK_FALSE(stats.in_trial);
    CHECK(stats.quarantine_cooldown == 0s);
    CHECK(recorder.of(MonitorEventKind::trial_started).size() == 1);
    h.close(monitor);
}

// ---- behaviours the docs state (docs/task_monitor.md) -----------------------------------------------------------

TEST_CASE("recovery: a quarantine publishes quarantined and never gave_up, also when a trial fails",
          "[task_monitor][quarantine]") {
    Harness h;
    Recorder recorder;
    auto policy = quick(GiveUpMode::quarantine);
    policy.max_restart_attempts = 0;
    policy.quarantine_cooldown = 1min;
    Monitor monitor{h.io.get_executor(), policy, h.logger};
    auto subscription = monitor.subscribe(recorder.listener());
    auto flaky = failing_now(2);
    monitor.supervise("db", factory_of(flaky));
    h.runner.run_for(1min + 1s);
    CHECK(recorder.trace() == taskmon_test::Names{"started db", "failed db", "quarantined db", "restarted db",
                                                  "trial_started db", "failed db", "quarantined db"});
    const auto quarantined = recorder.of(MonitorEventKind::quarantined);
    CHECK(quarantined[0].reason == "std::runtime_error: Connection lost");
    CHECK(quarantined[0].delay == 1min);
    CHECK(quarantined[1].delay == 2min);
    CHECK(quarantined[1].attempt == 1);
    const auto stats = monitor.get_component_stats().at("db");
    CHECK(stats.state == ComponentState::quarantined);
    CHECK(h.lines_with("gave up").empty());
    h.close(monitor);
}

TEST_CASE(
    "recovery: reset() and a passed trial both zero quarantine_cooldown and the next quarantine starts "
    "again from the first cooldown",
    "[task_monitor][quarantine]") {
    Harness h;
    Recorder recorder;
    auto policy = quick(GiveUpMode::quarantine);
    policy.max_restart_attempts = 0;
    policy.quarantine_cooldown = 1min;
    policy.max_quarantine_cooldown = 10min;
    Monitor monitor{h.io.get_executor(), policy, h.logger};
    auto subscription = monitor.subscribe(recorder.listener());
    // Fails at once (0 s), its trial fails (1 min); after reset() it fails at once (2 min); its next trial
    // (3 min) passes at 13 min, then fails at 14 min.
    taskmon_test::Script flaky;
    flaky.lifetimes = {0s, 0s, 0s, 11min};
    monitor.supervise("db", factory_of(flaky));
    const auto cooldown = [&] { return monitor.get_component_stats().at("db").quarantine_cooldown; };
    h.runner.run_for(2min);
    CHECK(cooldown() == 2min);
    monitor.reset("db");
    CHECK(cooldown() == 0s);
    h.runner.run_for(1s);
    CHECK(cooldown() == 1min);  // not 4 min
    h.runner.run_for(1min);     // 3 min 1 s: during the trial, the cooldown it followed
    CHECK(monitor.get_component_stats().at("db").in_trial);
    CHECK(cooldown() == 1min);
    h.runner.run_for(10min);  // 13 min 1 s: the trial stayed up for reset_backoff_after
    REQUIRE(recorder.of(MonitorEventKind::quarantine_closed).size() == 1);
    CHECK(cooldown() == 0s);
    CHECK(monitor.get_component_stats().at("db").state == ComponentState::running);
    h.runner.run_for(1min);  // 14 min 1 s: failed with a fresh budget
    CHECK(cooldown() == 1min);
    std::vector<Duration> delays;
    std::vector<int> attempts;
    for (const auto& e : recorder.of(MonitorEventKind::quarantined)) {
        delays.push_back(std::chrono::duration_cast<Duration>(e.delay));
        attempts.push_back(e.attempt);
    }
    CHECK(delays == std::vector<Duration>{1min, 2min, 1min, 1min});
    CHECK(attempts == std::vector<int>{0, 1, 0, 0});
    CHECK(times_of(recorder, MonitorEventKind::quarantined) == std::vector<Duration>{0s, 1min, 2min, 14min});
    h.close(monitor);
}

TEST_CASE(
    "recovery: a factory's captures live until its last instance exited, past close() and the monitor, "
    "and what they refer to must live as long",
    "[task_monitor][lifetime]") {
    Harness h;
    Recorder recorder;
    auto token = std::make_shared<int>(7);
    const std::weak_ptr<int> alive = token;
    int touched = 0;  // captured by reference: the monitor does not keep it alive
    std::optional<Monitor> monitor{std::in_place, h.io.get_executor(), RestartPolicy{.shutdown_timeout = 1s}, h.logger};
    auto subscription = monitor->subscribe(recorder.listener());
    monitor->supervise("stubborn", [token = std::move(token), &touched]() -> asio::awaitable<void> {
        co_await taskmon_test::sleep_ignoring_cancellation(10s);  // a requested stop cannot end it
        touched = *token;                                         // uses its captures after close() completed
    });
    h.runner.run_for(1s);
    CHECK(h.close(*monitor) == 1s);
    CHECK(recorder.of(MonitorEventKind::closed).at(0).unresponsive == 1);
    CHECK(touched == 0);
    CHECK_FALSE(alive.expired());
    const auto after_close = monitor->get_component_stats().at("stubborn");
    CHECK(after_close.state == ComponentState::unresponsive);
    CHECK_FALSE(after_close.task_done);
    SECTION("monitor kept: its stopped event follows closed") {
        h.runner.run();
        CHECK(touched == 7);
        CHECK(recorder.trace() ==
              taskmon_test::Names{"started stubborn", "stop_timeout stubborn", "closed", "stopped stubborn"});
        CHECK(monitor->get_component_stats().at("stubborn").state == ComponentState::stopped);
        CHECK_FALSE(alive.expired());  // the monitor still holds the factory
        monitor.reset();
        h.runner.run();  // the destructor's own close posts once more
        CHECK(alive.expired());
    }
    SECTION("monitor destroyed: the running instance still holds its factory") {
        monitor.reset();
        h.runner.run_for(1s);
        CHECK_FALSE(alive.expired());
        CHECK(touched == 0);
        h.runner.run();
        CHECK(touched == 7);
        CHECK(alive.expired());  // released with the last callback
    }
}

TEST_CASE(
    "recovery: after the monitor cancels an instance every co_await throws at once until "
    "reset_cancellation_state()",
    "[task_monitor][cancellation]") {
    Harness h;
    Recorder recorder;
    bool reset = false;
    bool wrapped = false;  // the reset inside a nested coroutine (a helper written as asio::awaitable)
    bool helper = false;   // taskmon's name for the reset
    std::optional<std::error_code> cleanup_error;
    bool cleaned_up = false;
    Monitor monitor{h.io.get_executor(), RestartPolicy{.shutdown_timeout = 5s}, h.logger};
    auto subscription = monitor.subscribe(recorder.listener());
    const auto nested_reset = []() -> asio::awaitable<void> { co_await asio::this_coro::reset_cancellation_state(); };
    SECTION("without reset: the cleanup throws operation_aborted before it waits") {}
    SECTION("with reset: the cleanup runs") { reset = true; }
    SECTION("with taskmon::cleanup_after_cancellation(): the cleanup runs") { helper = true; }
    SECTION("reset inside a nested coroutine: co_await of that coroutine throws") { wrapped = true; }
    monitor.supervise("db", [&]() -> asio::awaitable<void> {
        taskmon::testing::ManualTimer timer{co_await asio::this_coro::executor, 1h};
        std::exception_ptr cancelled;
        try {
            co_await timer.async_wait(asio::use_awaitable);
        } catch (const std::system_error&) {
            cancelled = std::current_exception();  // no co_await inside a handler: clean up below
        }
        try {
            if (reset) {
                co_await asio::this_coro::reset_cancellation_state();
            }
            if (wrapped) {
                co_await nested_reset();
            }
            if (helper) {
                co_await taskmon::cleanup_after_cancellation();
            }
            timer.expires_after(2s);
            co_await timer.async_wait(asio::use_awaitable);  // the cleanup
            cleaned_up = true;
        } catch (const std::system_error& e) {
            cleanup_error = e.code();
        }
        std::rethrow_exception(cancelled);
    });
    h.runner.run_for(1s);
    const auto took = h.close(monitor);
    reset = reset || helper;
    CHECK(cleaned_up == reset);
    CHECK(took == (reset ? 2s : 0s));
    if (reset) {
        CHECK_FALSE(cleanup_error);
    } else {
        CHECK(cleanup_error == std::optional<std::error_code>{asio::error::operation_aborted});
    }
    CHECK(recorder.trace() == taskmon_test::Names{"started db", "stopped db", "closed"});
    CHECK(recorder.of(MonitorEventKind::stopped).at(0).reason.empty());
    CHECK(monitor.get_component_stats().at("db").task_cancelled);
}

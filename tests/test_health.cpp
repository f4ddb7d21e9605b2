// Tests for taskmon/ops/health.hpp: the health rules on a real TaskMonitor (and a Supervisor) in virtual time, and
// the renderings.
#include <taskmon/agent/supervisor.hpp>
#include <taskmon/ops/health.hpp>
#include <taskmon/task_monitor.hpp>
#include <taskmon/testing/manual_clock.hpp>

#include "monitor_harness.hpp"
#include "supervisor_harness.hpp"
#include "taskmon_catch.hpp"

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/this_coro.hpp>
#include <asio/use_awaitable.hpp>
#include <spdlog/sinks/null_sink.h>

#include <chrono>
#include <map>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>

using namespace std::chrono_literals;
using taskmon::ComponentState;
using taskmon::CriticalComponents;
using taskmon::HealthProbe;
using taskmon::RestartPolicy;
using taskmon_test::factory_of;
using taskmon_test::failing_now;
using taskmon_test::Harness;
using taskmon_test::Monitor;
using taskmon_test::Script;
using taskmon_test::Sup;

namespace {

/// Fails at once on every start: with max_restart_attempts = 2 it gives up after two restarts.
RestartPolicy quick_give_up() { return {.max_restart_attempts = 2, .base_backoff = 1s, .max_backoff = 1s}; }

taskmon::ComponentStats stats_in(ComponentState state, std::string last_error = {}, int restarts = 0) {
    taskmon::ComponentStats s;
    s.state = state;
    s.last_error = std::move(last_error);
    s.restart_count = restarts;
    s.ready = state == ComponentState::running;  // a running instance with no startup_timeout is ready
    return s;
}

bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

}  // namespace

TEST_CASE("health: the rules of one component") {
    using S = ComponentState;
    for (const auto state : {S::not_started, S::running, S::restarting, S::stopping, S::stopped, S::completed}) {
        CAPTURE(taskmon::to_string(state));
        CHECK(taskmon::component_is_live(stats_in(state)));
    }
    for (const auto state : {S::gave_up, S::failed, S::unresponsive}) {
        CAPTURE(taskmon::to_string(state));
        CHECK_FALSE(taskmon::component_is_live(stats_in(state)));
        CHECK_FALSE(taskmon::component_is_ready(stats_in(state)));
    }
    CHECK(taskmon::component_is_ready(stats_in(S::running)));
    CHECK_FALSE(taskmon::component_is_ready(stats_in(S::restarting)));
    CHECK_FALSE(taskmon::component_is_ready(stats_in(S::not_started)));

    auto starting = stats_in(S::running);
    starting.ready = false;  // under a startup_timeout, before ready()
    CHECK(taskmon::component_is_live(starting));
    CHECK_FALSE(taskmon::component_is_ready(starting));
    CHECK(taskmon::component_health_reason(starting) == "running, not ready yet");
    const auto quarantined = stats_in(S::quarantined, "std::runtime_error: x");
    CHECK(taskmon::component_is_live(quarantined));
    CHECK_FALSE(taskmon::component_is_ready(quarantined));
    CHECK(taskmon::component_health_reason(quarantined) == "quarantined until its next trial: std::runtime_error: x");

    // A state added later is live, not ready, and still gets a reason.
    const auto future = stats_in(static_cast<S>(42), "boom");
    CHECK(taskmon::component_is_live(future));
    CHECK_FALSE(taskmon::component_is_ready(future));
    CHECK(taskmon::component_health_reason(future) == "in state unknown: boom");

    CHECK(taskmon::component_health_reason(stats_in(S::running)).empty());
    CHECK(taskmon::component_health_reason(stats_in(S::gave_up, "std::runtime_error: x", 1)) ==
          "gave up after 1 restart: std::runtime_error: x");
    CHECK(taskmon::component_health_reason(stats_in(S::restarting)) == "restarting");
}

TEST_CASE("health: a monitor with nothing registered is live but not ready") {
    Harness h;
    Monitor monitor{h.io.get_executor(), {}, h.logger};
    const auto report = taskmon::check_health(monitor);
    CHECK(report.live);
    CHECK_FALSE(report.ready);
    REQUIRE(report.readiness_failures.size() == 1);
    CHECK(report.readiness_failures[0].subject == "monitor");
    CHECK(taskmon::health_summary(report) == "live, not ready: monitor: no component is registered");

    // Nothing critical: trivially live and ready.
    CHECK(taskmon::check_health(monitor, CriticalComponents::only({})).ready);
    h.close(monitor);
}

TEST_CASE("health: running components are live and ready and the renderings say so") {
    Harness h;
    Monitor monitor{h.io.get_executor(), {}, h.logger};
    Script a, b;
    monitor.supervise("a", factory_of(a));
    monitor.supervise("b", factory_of(b));
    h.runner.poll();

    const auto report = taskmon::check_health(monitor);
    CHECK(report.live);
    CHECK(report.ready);
    CHECK(report.liveness_failures.empty());
    CHECK(report.readiness_failures.empty());
    REQUIRE(report.components.size() == 2);
    CHECK(report.components[0].name == "a");
    CHECK(report.components[0].critical);
    CHECK(report.components[0].state == ComponentState::running);
    CHECK(report.components[0].reason.empty());
    CHECK(taskmon::health_summary(report) == "live, ready (2 components)");
    CHECK(taskmon::probe_summary(report, HealthProbe::liveness) == "ok");
    CHECK(taskmon::probe_summary(report, HealthProbe::readiness) == "ok");
    CHECK(taskmon::probe_details(report, HealthProbe::readiness) == "[+]a ok\n[+]b ok\nreadiness check passed\n");
    h.close(monitor);
}

TEST_CASE("health: a component under a startup_timeout is ready once it says so") {
    Harness h;
    Monitor monitor{h.io.get_executor(), {}, h.logger};
    monitor.supervise(
        "db",
        [](taskmon::ComponentContext ctx) -> asio::awaitable<void> {
            taskmon::testing::ManualTimer timer{co_await asio::this_coro::executor, 20s};
            co_await timer.async_wait(asio::use_awaitable);  // connecting
            ctx.ready();
            timer.expires_after(24h);
            co_await timer.async_wait(asio::use_awaitable);
        },
        RestartPolicy{.startup_timeout = 1min});
    h.runner.run_for(10s);
    auto report = taskmon::check_health(monitor);
    CHECK(report.live);
    CHECK_FALSE(report.ready);
    CHECK(taskmon::health_summary(report) == "live, not ready: db: running, not ready yet");
    h.runner.run_for(20s);
    CHECK(taskmon::check_health(monitor).ready);
    h.close(monitor);
}

TEST_CASE("health: a component that gives up makes the report not live with its reason") {
    Harness h;
    Monitor monitor{h.io.get_executor(), {}, h.logger};
    Script steady;
    Script crashing = failing_now(100);
    monitor.supervise("steady", factory_of(steady));
    monitor.supervise("crashing", factory_of(crashing), quick_give_up());

    // First failure: a restart is pending. Live, not ready, with the error.
    h.runner.poll();
    auto report = taskmon::check_health(monitor);
    CHECK(report.live);
    CHECK_FALSE(report.ready);
    REQUIRE(report.readiness_failures.size() == 1);
    CHECK(report.readiness_failures[0].subject == "crashing");
    CHECK(report.readiness_failures[0].reason == "restarting (last error: std::runtime_error: Connection lost)");
    CHECK(taskmon::health_summary(report) ==
          "live, not ready: crashing: restarting (last error: std::runtime_error: Connection lost)");

    // Two restarts later the limit is exceeded.
    REQUIRE(h.runner.run_until(
        [&] { return monitor.get_component_stats().at("crashing").state == ComponentState::gave_up; }, 1h));
    report = taskmon::check_health(monitor);
    CHECK_FALSE(report.live);
    CHECK_FALSE(report.ready);
    REQUIRE(report.liveness_failures.size() == 1);
    CHECK(report.liveness_failures[0].subject == "crashing");
    CHECK(report.liveness_failures[0].reason == "gave up after 2 restarts: std::runtime_error: Connection lost");
    REQUIRE(report.readiness_failures.size() == 1);  // a liveness failure is a readiness failure too
    CHECK(report.find("steady")->live);
    CHECK(report.find("steady")->ready);
    CHECK_FALSE(report.find("crashing")->live);
    CHECK(taskmon::health_summary(report) ==
          "not live: crashing: gave up after 2 restarts: std::runtime_error: Connection lost");
    CHECK(taskmon::probe_summary(report, HealthProbe::liveness) ==
          "failed: crashing: gave up after 2 restarts: std::runtime_error: Connection lost");
    CHECK(taskmon::probe_details(report, HealthProbe::liveness) ==
          "[-]crashing failed: gave up after 2 restarts: std::runtime_error: Connection lost\n"
          "[+]steady ok\n"
          "liveness check failed\n");

    // restart() after a give-up resets the budget: live again, and ready once it runs.
    crashing.lifetimes.clear();  // from now on it runs until cancelled
    monitor.restart("crashing");
    h.runner.poll();
    report = taskmon::check_health(monitor);
    CHECK(report.live);
    CHECK(report.ready);
    h.close(monitor);
}

TEST_CASE("health: a component that failed and is not restarted is not live") {
    Harness h;
    Monitor monitor{h.io.get_executor(), {}, h.logger};
    Script once = failing_now(1);
    monitor.register_task("once", taskmon_test::scripted(once));  // not enabled: never restarted
    h.runner.poll();
    const auto report = taskmon::check_health(monitor);
    CHECK_FALSE(report.live);
    REQUIRE(report.liveness_failures.size() == 1);
    CHECK(report.liveness_failures[0].reason == "failed and is not restarted: std::runtime_error: Connection lost");
    h.close(monitor);
}

TEST_CASE("health: only the critical components decide and named ones not registered yet are not ready") {
    Harness h;
    Monitor monitor{h.io.get_executor(), {}, h.logger};
    Script db;
    Script cache = failing_now(100);
    monitor.supervise("db", factory_of(db));
    monitor.supervise("cache", factory_of(cache), quick_give_up());
    REQUIRE(h.runner.run_until(
        [&] { return monitor.get_component_stats().at("cache").state == ComponentState::gave_up; }, 1h));

    const auto critical = CriticalComponents::only({"db", "http"});
    auto report = taskmon::check_health(monitor, critical);
    CHECK(report.live);  // cache gave up, but it is not critical
    CHECK_FALSE(report.ready);
    REQUIRE(report.readiness_failures.size() == 1);
    CHECK(report.readiness_failures[0].subject == "http");
    CHECK(report.readiness_failures[0].reason == "not registered");
    REQUIRE(report.components.size() == 3);  // sorted: cache, db, http
    CHECK(report.components[0].name == "cache");
    CHECK_FALSE(report.components[0].critical);
    CHECK_FALSE(report.components[0].live);
    CHECK(report.components[2].name == "http");
    CHECK_FALSE(report.components[2].known);
    CHECK(taskmon::probe_details(report, HealthProbe::readiness) ==
          "[!]cache not ready (not critical): gave up after 2 restarts: std::runtime_error: Connection lost\n"
          "[+]db ok\n"
          "[-]http failed: not registered\n"
          "readiness check failed\n");
    CHECK(taskmon::probe_details(report, HealthProbe::liveness) ==
          "[!]cache not live (not critical): gave up after 2 restarts: std::runtime_error: Connection lost\n"
          "[+]db ok\n"
          "[+]http ok\n"
          "liveness check passed\n");

    Script http;
    monitor.supervise("http", factory_of(http));
    h.runner.poll();
    report = taskmon::check_health(monitor, critical);
    CHECK(report.live);
    CHECK(report.ready);
    CHECK(taskmon::health_summary(report) == "live, ready (3 components)");
    h.close(monitor);
}

TEST_CASE("health: after close() components are stopped so live but not ready") {
    Harness h;
    Monitor monitor{h.io.get_executor(), {}, h.logger};
    Script a;
    monitor.supervise("a", factory_of(a));
    h.runner.poll();
    h.close(monitor);
    const auto report = taskmon::check_health(monitor);
    CHECK(report.live);
    CHECK_FALSE(report.ready);
    CHECK(taskmon::probe_summary(report, HealthProbe::readiness) == "failed: a: stopped");
}

TEST_CASE("health: reasons with newlines stay on one line in every rendering") {
    std::map<std::string, taskmon::ComponentStats> stats{
        {"x", stats_in(ComponentState::gave_up, "std::runtime_error: line one\nline two", 3)}};
    const auto report = taskmon::check_health(stats);
    CHECK_FALSE(contains(taskmon::health_summary(report), "\n"));
    CHECK_FALSE(contains(taskmon::probe_summary(report, HealthProbe::liveness), "\n"));
    CHECK(taskmon::probe_details(report, HealthProbe::liveness) ==
          "[-]x failed: gave up after 3 restarts: std::runtime_error: line one line two\nliveness check failed\n");
}

TEST_CASE("health: invalid UTF-8 in a name or an error is replaced in every rendering") {
    const std::string fffd = "\xEF\xBF\xBD";
    std::map<std::string, taskmon::ComponentStats> stats{{"lidar\xFF", stats_in(ComponentState::gave_up,
                                                                                "std::runtime_error: sensor \xB0"
                                                                                "C \xE2\x82",
                                                                                3)},
                                                         {"ok ü", stats_in(ComponentState::running, "", 0)}};
    const auto report = taskmon::check_health(stats);
    const std::string reason = "gave up after 3 restarts: std::runtime_error: sensor " + fffd + "C " + fffd + fffd;
    CHECK(taskmon::health_summary(report) == "not live: lidar" + fffd + ": " + reason);
    CHECK(taskmon::probe_summary(report, HealthProbe::liveness) == "failed: lidar" + fffd + ": " + reason);
    CHECK(taskmon::probe_details(report, HealthProbe::liveness) ==
          "[-]lidar" + fffd + " failed: " + reason + "\n[+]ok ü ok\nliveness check failed\n");
}

// --- Supervisor --------------------------------------------------------------------------------------------

TEST_CASE("health: a Supervisor's report follows its critical components and its run status") {
    taskmon_test::SupervisorHarness h;
    bool camera_broken = false;  // perceive() fails once set; decide() never finishes the run
    h.agent.perceive_fn = [&camera_broken](int) -> asio::awaitable<int> {
        co_await taskmon_test::sleep_for(10ms);
        if (camera_broken) throw std::runtime_error("camera unplugged");
        co_return 1;
    };
    taskmon::AgentSettings settings;
    settings.capture_interval = 100ms;
    settings.perception_timeout = 1h;  // keep the watchdog out of this
    settings.watchdog_startup_grace = 1h;
    settings.critical_restart_policy = {.max_restart_attempts = 2, .base_backoff = 100ms, .max_backoff = 1s};
    auto owned = h.make(settings);
    auto& sup = *owned;

    CHECK(Sup::critical_components().size() == 4);
    CHECK(taskmon::components::is_critical("decision_loop"));
    CHECK_FALSE(taskmon::components::is_critical("pause_handler"));

    auto report = taskmon::check_health(sup);
    CHECK(report.live);
    CHECK_FALSE(report.ready);
    CHECK(report.agent_status == taskmon::AgentStatus::pending);
    CHECK(report.readiness_failures.back().subject == "agent");
    CHECK(report.readiness_failures.back().reason == "run is pending");

    h.start(sup);
    REQUIRE(h.runner.run_until([&] { return taskmon::check_health(sup).ready; }, 1min));
    report = taskmon::check_health(sup);
    CHECK(report.live);
    CHECK(report.components.size() == 6);
    CHECK(report.find("perception")->critical);
    CHECK_FALSE(report.find("pause_handler")->critical);

    camera_broken = true;
    REQUIRE(h.finish(1h));
    report = taskmon::check_health(sup);
    CHECK_FALSE(report.live);
    CHECK(report.agent_status == taskmon::AgentStatus::failed);
    const auto summary = taskmon::health_summary(report);
    CAPTURE(summary);
    CHECK(contains(summary, "not live: "));
    CHECK(contains(summary, "perception: gave up after 2 restarts: std::runtime_error: camera unplugged"));
    CHECK(contains(summary, "agent: run is failed"));
}

TEST_CASE("health: a Supervisor waiting for an operator is live, not ready, and says what it waits for") {
    taskmon_test::SupervisorHarness h;
    std::optional<std::string> answer;  // what decide() received after the interrupt
    h.agent.decide_fn = [&answer](int, const Sup::Context& ctx) {
        if (ctx.step == 1) return Sup::DecisionType::interrupt("may I move?");
        if (ctx.interrupt_value) answer = ctx.interrupt_value;
        return Sup::DecisionType::act({"move-" + std::to_string(ctx.step)});
    };
    taskmon::AgentSettings settings;
    settings.perception_timeout = 1h;
    settings.watchdog_startup_grace = 1h;
    auto owned = h.make(settings);
    auto& sup = *owned;
    h.start(sup);
    REQUIRE(h.runner.run_until([&] { return sup.status() == taskmon::AgentStatus::waiting_for_input; }, 1min));
    auto report = taskmon::check_health(sup);
    CHECK(report.live);
    CHECK_FALSE(report.ready);
    CHECK(report.agent_status == taskmon::AgentStatus::waiting_for_input);
    REQUIRE_FALSE(report.readiness_failures.empty());
    CHECK(report.readiness_failures.back().subject == "agent");
    CHECK(report.readiness_failures.back().reason == "run is waiting_for_input: waiting for an operator (resume_with)");

    sup.resume_with("interrupt-1", "yes");
    REQUIRE(h.runner.run_until([&] { return answer.has_value(); }, 1min));
    CHECK(*answer == "yes");
    CHECK(taskmon::check_health(sup).ready);
    sup.stop();
    REQUIRE(h.finish(1h));
}

TEST_CASE("health: spawned tasks are neither counted nor listed") {
    Harness h;
    Monitor monitor{h.io.get_executor(), RestartPolicy{.shutdown_timeout = 1s}, h.logger};
    monitor.spawn("conn-1",
                  []() -> asio::awaitable<void> { co_await taskmon_test::sleep_ignoring_cancellation(1h); }());
    monitor.spawn("conn-2", []() -> asio::awaitable<void> { co_await taskmon_test::sleep_for(1h); }());
    h.runner.run_for(1s);
    REQUIRE(monitor.get_component_stats().size() == 2);

    // Connections alone are not a registered component.
    auto report = taskmon::check_health(monitor);
    CHECK(report.live);
    CHECK_FALSE(report.ready);
    REQUIRE(report.readiness_failures.size() == 1);
    CHECK(report.readiness_failures[0].subject == "monitor");
    CHECK(report.components.empty());

    Script db;
    monitor.supervise("db", factory_of(db));
    monitor.disable({"conn-1"});
    h.runner.run_for(2s);  // conn-1 ignores the stop past its shutdown_timeout
    REQUIRE(monitor.get_component_stats().at("conn-1").state == ComponentState::unresponsive);
    report = taskmon::check_health(monitor);
    CHECK(report.live);  // an unresponsive connection is not a reason to restart the process
    CHECK(report.ready);
    CHECK(report.find("conn-1") == nullptr);
    CHECK(report.find("conn-2") == nullptr);
    CHECK(report.components.size() == 1);
    CHECK(taskmon::health_summary(report) == "live, ready (1 component)");
    CHECK(taskmon::probe_details(report, HealthProbe::liveness) == "[+]db ok\nliveness check passed\n");

    // Named as critical, a spawned task is still no component: "not registered", as one that does not exist.
    report = taskmon::check_health(monitor, CriticalComponents::only({"db", "conn-2"}));
    CHECK(report.live);
    CHECK_FALSE(report.ready);
    REQUIRE(report.readiness_failures.size() == 1);
    CHECK(report.readiness_failures[0].subject == "conn-2");
    CHECK(report.readiness_failures[0].reason == "not registered");
    h.close(monitor);
}

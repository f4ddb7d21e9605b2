// Supervisor tests: bad construction, component failures and give-ups, hooks and logging that throw.
// In virtual time: every scenario runs hours of simulated time in milliseconds and is deterministic. The scripted
// agent and the run harness are in support/supervisor_harness.hpp.
#include <taskmon/agent/supervisor.hpp>
#include <taskmon/testing/manual_clock.hpp>
#include <taskmon/testing/supervisor_faults.hpp>

#include "supervisor_harness.hpp"
#include "taskmon_catch.hpp"

#include <asio/bind_cancellation_slot.hpp>
#include <asio/cancellation_signal.hpp>
#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/io_context.hpp>
#include <asio/this_coro.hpp>
#include <asio/use_awaitable.hpp>

#include <cstdint>
#include <functional>

#include <chrono>
#include <map>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

using namespace taskmon_test;  // Sup, History, Agent, SupervisorHarness, fast_settings, the common taskmon names ...

TEST_CASE("supervisor: invalid construction names the problem") {
    asio::io_context io;
    Agent agent;
    auto functions = agent.functions();
    functions.decide = nullptr;
    CHECK_THROWS_WITH(Sup(io.get_executor(), functions, fast_settings(), {}, null_logger()),
                      "AgentFunctions.decide is empty");
    AgentSettings bad = fast_settings();
    bad.max_steps = 0;
    CHECK_THROWS_WITH(Sup(io.get_executor(), agent.functions(), bad, {}, null_logger()),
                      "AgentSettings.max_steps must be > 0");
}

TEST_CASE("supervisor: hooks run in order and a throwing hook is recorded, never escapes") {
    SupervisorHarness h;
    h.agent.decide_fn = [](int, const Context& ctx) {
        return ctx.step == 2 ? Decision::done("ok") : Decision::act({"x"});
    };
    std::vector<std::string> log;
    bool components_closed_at_end = false;
    Sup* sup_ptr = nullptr;
    Sup::Hooks hooks{.on_run_start = [&] { log.push_back("run_start"); },
                     .on_step_start =
                         [&](std::uint64_t n) {
                             log.push_back("step_start " + std::to_string(n));
                             if (n == 1) throw std::runtime_error("hook bug");
                         },
                     .on_step_end = [&](const Sup::Step& s) { log.push_back("step_end " + std::to_string(s.number)); },
                     .on_run_end =
                         [&](const History& hist) {
                             log.push_back("run_end " + std::string{taskmon::to_string(hist.status)});
                             components_closed_at_end = true;
                             for (const auto& [name, stats] : sup_ptr->get_component_stats()) {
                                 if (stats.state == taskmon::ComponentState::running) components_closed_at_end = false;
                             }
                             throw std::runtime_error("end hook bug");
                         },
                     .on_status_change =
                         [&](const taskmon::StatusTransition& t) {
                             log.push_back("status " + std::string{taskmon::to_string(t.to)});
                         }};
    auto sup = h.make(fast_settings(), hooks);
    sup_ptr = sup.get();
    h.start(*sup);
    REQUIRE(h.finish());
    CHECK(log == std::vector<std::string>{"status running", "run_start", "step_start 1", "step_end 1", "step_start 2",
                                          "status completed", "step_end 2", "run_end completed"});
    CHECK(components_closed_at_end);
    CHECK(h.history->status == AgentStatus::completed);
    // Both hook errors are in the returned history: on_run_end runs before run() hands it over.
    CHECK(h.history->counters.hook_errors == 2);
    REQUIRE(count_events(*h.history, HistoryEventKind::hook_error) == 2);
    const auto hook_errors = h.history->events_of(HistoryEventKind::hook_error);
    CHECK_THAT(hook_errors[0].message, Catch::Matchers::Contains("on_step_start"));
    CHECK_THAT(hook_errors[1].message, Catch::Matchers::Contains("end hook bug"));
}

TEST_CASE("supervisor: a throwing log sink never breaks a loop or escapes run()") {
    SupervisorHarness h;
    h.agent.perceive_fn = [](int call) -> asio::awaitable<int> {
        co_await sleep_for(10ms);
        if (call == 3) throw std::runtime_error("sensor glitch");  // logged by the monitor and the Supervisor
        co_return call;
    };
    h.agent.decide_fn = [](int, const Context& ctx) {
        return ctx.step == 5 ? Decision::done("ok") : Decision::act({"x"});
    };
    h.agent.act_fn = [](const std::string&) -> asio::awaitable<ActionResult> {
        co_await sleep_for(10ms);
        co_return ActionResult::failure("slipped");  // failed steps are logged as warnings
    };
    auto logger = std::make_shared<spdlog::logger>("throwing", std::make_shared<ThrowingSink>());
    logger->set_level(spdlog::level::trace);
    auto settings = fast_settings();
    settings.max_failures = 100;
    auto sup = h.make(settings, {}, {}, logger);
    h.start(*sup);
    REQUIRE(h.finish());
    CHECK(h.history->status == AgentStatus::completed);
    CHECK(h.history->counters.restarts.at("perception") == 1);
    CHECK(h.history->counters.steps_failed == 4);
}

TEST_CASE("supervisor: a failing perception is restarted alone and no sibling is cancelled") {
    SupervisorHarness h;
    h.agent.perceive_fn = [](int call) -> asio::awaitable<int> {
        co_await sleep_for(10ms);
        if (call == 3 || call == 4) throw std::runtime_error("sensor glitch");
        co_return call;
    };
    h.agent.decide_fn = [](int, const Context& ctx) {
        return ctx.step == 4 ? Decision::done("ok") : Decision::act({"x"});
    };
    auto sup = h.make(fast_settings());
    h.start(*sup);
    REQUIRE(h.finish());
    const auto& hist = *h.history;
    CHECK(hist.status == AgentStatus::completed);
    CHECK(hist.counters.capture_failures == 2);
    CHECK(hist.counters.restarts.at("perception") == 2);
    CHECK(hist.counters.restarts.size() == 1);  // nobody else was restarted
    CHECK(count_events(hist, HistoryEventKind::component_failed) == 2);
    for (const auto& e : hist.events_of(HistoryEventKind::component_failed)) {
        CHECK(e.component == "perception");
        CHECK_THAT(e.message, Catch::Matchers::Contains("sensor glitch"));
    }
    const auto stats = sup->get_component_stats();
    CHECK(stats.at("perception").restart_count == 2);
    CHECK(stats.at("decision_loop").restart_count == 0);
    CHECK(stats.at("actuation_loop").restart_count == 0);
    CHECK(stats.at("perception_watchdog").restart_count == 0);
}

TEST_CASE("supervisor: a critical give-up fails the run with the reason") {
    SupervisorHarness h;
    h.agent.perceive_fn = [](int) -> asio::awaitable<int> {
        co_await sleep_for(10ms);
        throw std::runtime_error("camera unplugged");
    };
    auto settings = fast_settings();
    settings.critical_restart_policy = {.max_restart_attempts = 3, .base_backoff = 100ms, .max_backoff = 1s};
    settings.perception_timeout = 1h;  // keep the watchdog out of this
    settings.watchdog_startup_grace = 1h;
    auto sup = h.make(settings);
    h.start(*sup);
    REQUIRE(h.finish());
    const auto& hist = *h.history;
    CHECK(hist.status == AgentStatus::failed);
    CHECK_THAT(hist.reason, Catch::Matchers::Contains("critical component perception gave up"));
    CHECK_THAT(hist.reason, Catch::Matchers::Contains("camera unplugged"));
    CHECK(count_events(hist, HistoryEventKind::component_gave_up) == 1);
    CHECK(hist.counters.restarts.at("perception") == 3);
    CHECK(h.agent.perceive_calls == 4);
    CHECK(h.time.elapsed() < 1min);
}

TEST_CASE("supervisor: a critical component under a temporary policy fails the run at its first failure") {
    SupervisorHarness h;
    h.agent.perceive_fn = [](int call) -> asio::awaitable<int> {
        co_await sleep_for(10ms);
        if (call == 3) throw std::runtime_error("lens cracked");
        co_return call;
    };
    auto settings = fast_settings();
    settings.critical_restart_policy.restart_type = taskmon::RestartType::temporary;
    settings.max_steps = 1000;
    auto sup = h.make(settings);
    h.start(*sup);
    REQUIRE(h.finish());
    const auto& hist = *h.history;
    CHECK(hist.status == AgentStatus::failed);
    CHECK_THAT(hist.reason, Catch::Matchers::Contains("critical component perception gave up"));
    CHECK_THAT(hist.reason, Catch::Matchers::Contains("lens cracked"));
    REQUIRE(count_events(hist, HistoryEventKind::component_gave_up) == 1);
    CHECK(hist.events_of(HistoryEventKind::component_gave_up)[0].at < 1s);  // noticed at once, not polled
    CHECK(h.agent.perceive_calls == 3);
}

TEST_CASE("supervisor: an action in flight when actuation crashes is interrupted and never replayed") {
    SupervisorHarness h;
    int bad_calls = 0;
    h.agent.decide_fn = [](int, const Context& ctx) {
        return ctx.step == 3 ? Decision::done("ok") : Decision::act({"grip", "lift", "place"});
    };
    h.agent.act_fn = [&](const std::string& action) -> asio::awaitable<ActionResult> {
        co_await sleep_for(10ms);
        if (action == "lift" && ++bad_calls == 1) throw std::runtime_error("motor driver fault");
        co_return ActionResult::ok();
    };
    auto sup = h.make(fast_settings());
    h.start(*sup);
    REQUIRE(h.finish());
    const auto& hist = *h.history;
    CHECK(hist.status == AgentStatus::completed);
    const auto& step = hist.steps.at(0);
    CHECK(step.fate == DecisionFate::interrupted);
    CHECK(step.actions[0].outcome == ActionOutcome::succeeded);
    CHECK(step.actions[1].outcome == ActionOutcome::interrupted);
    CHECK(step.actions[2].outcome == ActionOutcome::skipped);
    // "lift" of step 1 ran exactly once and "place" never; step 2 ran its own actions after the restart.
    CHECK(h.agent.acted == std::vector<std::string>{"grip", "lift", "grip", "lift", "place"});
    CHECK(hist.counters.restarts.at("actuation_loop") == 1);
    CHECK(count_events(hist, HistoryEventKind::action_interrupted) == 1);
    CHECK(hist.counters.decisions_interrupted == 1);
}

TEST_CASE("supervisor: a TimeoutError thrown by act() itself is an unknown effect (interrupted), not a timeout") {
    SupervisorHarness h;
    int calls = 0;
    h.agent.decide_fn = [](int, const Context& ctx) {
        return ctx.step == 2 ? Decision::done("ok") : Decision::act({"push", "pull"});
    };
    h.agent.act_fn = [&](const std::string&) -> asio::awaitable<ActionResult> {
        co_await sleep_for(10ms);
        if (++calls == 1) throw taskmon::TimeoutError("the gripper's own timeout");
        co_return ActionResult::ok();
    };
    auto sup = h.make(fast_settings());
    h.start(*sup);
    REQUIRE(h.finish());
    const auto& hist = *h.history;
    CHECK(hist.status == AgentStatus::completed);
    const auto& step = hist.steps.at(0);
    CHECK(step.fate == DecisionFate::interrupted);
    CHECK(step.actions[0].outcome == ActionOutcome::interrupted);
    CHECK(step.actions[1].outcome == ActionOutcome::skipped);
    CHECK(hist.counters.restarts.at("actuation_loop") == 1);
}

TEST_CASE("supervisor: an auxiliary give-up degrades: the load monitor fails open") {
    SupervisorHarness h;
    int samples = 0;
    auto cpu = [&]() -> std::optional<taskmon::CpuUsage> {
        if (++samples >= 3) throw std::runtime_error("/proc vanished");
        return taskmon::CpuUsage{99.5, 1.0};
    };
    auto settings = fast_settings();
    settings.auxiliary_restart_policy = {.max_restart_attempts = 2, .base_backoff = 1s, .max_backoff = 1s};
    settings.max_steps = 10000;
    h.agent.decide_fn = [](int, const Context&) { return Decision::act({}); };
    std::vector<taskmon::SheddingChange> changes;
    Sup::Hooks hooks;
    hooks.on_shedding_change = [&](const taskmon::SheddingChange& c) { changes.push_back(c); };
    auto sup = h.make(settings, std::move(hooks), cpu);
    h.start(*sup);
    h.at(1min, [&] { sup->stop(); });
    REQUIRE(h.finish());
    const auto& hist = *h.history;
    CHECK(hist.status == AgentStatus::stopped);  // not failed: the monitor is auxiliary
    REQUIRE(count_events(hist, HistoryEventKind::component_gave_up) == 1);
    CHECK(hist.events_of(HistoryEventKind::component_gave_up)[0].component == "load_shedding_monitor");
    REQUIRE(count_events(hist, HistoryEventKind::load_shedding_left) == 1);
    CHECK_THAT(hist.events_of(HistoryEventKind::load_shedding_left)[0].message, Catch::Matchers::Contains("fail"));
    REQUIRE(changes.size() == 2);  // entered at the first sample, left when the monitor gave up (no sample)
    CHECK(changes[0].shedding);
    CHECK_FALSE(changes[1].shedding);
    CHECK_FALSE(changes[1].sampled);
    CHECK_THAT(changes[1].reason, Catch::Matchers::Contains("fail"));
}

TEST_CASE("supervisor: a pause_handler give-up degrades: pending and later pause requests are dropped") {
    SupervisorHarness h;
    h.agent.decide_fn = [](int, const Context& ctx) {
        return ctx.step == 20 ? Decision::done("ok") : Decision::act({"x"});
    };
    h.agent.act_fn = [](const std::string&) -> asio::awaitable<ActionResult> {
        co_await sleep_for(200ms);
        co_return ActionResult::ok();
    };
    auto settings = fast_settings();
    settings.auxiliary_restart_policy = {
        .max_restart_attempts = 2, .base_backoff = 1s, .max_backoff = 1s, .jitter = taskmon::JitterKind::none};
    auto sup = h.make(settings);
    int faults = 0;
    taskmon::testing::inject_instance_fault(*sup, [&](const char* component, std::uint64_t) {
        if (std::string_view{component} == "pause_handler") {
            ++faults;
            throw std::runtime_error("pause_handler fault");
        }
    });
    h.start(*sup);
    h.at(500ms, [&] { sup->pause(); });  // queued while pause_handler is in backoff: blocks new steps
    std::size_t steps_at_give_up = 0;
    h.at(2100ms, [&] { steps_at_give_up = h.agent.decided_on.size(); });
    h.at(3s, [&] { sup->pause(); });  // after the give-up: dropped, the run goes on
    REQUIRE(h.finish());
    const auto& hist = *h.history;
    CHECK(faults == 3);                            // the first instance and two restarts
    CHECK(hist.status == AgentStatus::completed);  // auxiliary: the run is degraded, not failed
    CHECK(hist.status_path() ==
          std::vector<AgentStatus>{AgentStatus::pending, AgentStatus::running, AgentStatus::completed});
    REQUIRE(count_events(hist, HistoryEventKind::component_gave_up) == 1);
    CHECK(hist.events_of(HistoryEventKind::component_gave_up)[0].component == "pause_handler");
    CHECK(hist.counters.restarts.at("pause_handler") == 2);
    CHECK(count_events(hist, HistoryEventKind::component_failed) == 3);
    // The pause queued at 0.5 s held new steps until the give-up at 2 s dropped it.
    CHECK(steps_at_give_up <= 3);
    const auto gave_up_at = hist.events_of(HistoryEventKind::component_gave_up)[0].at;
    CHECK(gave_up_at >= 2s);
    CHECK(gave_up_at < 2100ms);
    CHECK(hist.number_of_steps() == 20);
}

TEST_CASE("supervisor: an empty asio::awaitable from perceive() or act() is that call's failure, never a crash") {
    SupervisorHarness h;
    h.agent.perceive_fn = [](int call) -> asio::awaitable<int> {
        if (call == 2) return {};  // default-constructed: awaiting it would crash
        return [](int n) -> asio::awaitable<int> {
            co_await sleep_for(10ms);
            co_return n;
        }(call);
    };
    h.agent.decide_fn = [](int, const Context& ctx) {
        return ctx.step == 3 ? Decision::done("ok") : Decision::act({"grip", "lift"});
    };
    int lifts = 0;
    h.agent.act_fn = [&](const std::string& action) -> asio::awaitable<ActionResult> {
        if (action == "lift" && ++lifts == 1) return {};
        return []() -> asio::awaitable<ActionResult> { co_return ActionResult::ok(); }();
    };
    auto sup = h.make(fast_settings());
    h.start(*sup);
    REQUIRE(h.finish());
    const auto& hist = *h.history;
    CHECK(hist.status == AgentStatus::completed);
    std::map<std::string, std::string> failures;  // component: message
    for (const auto& e : hist.events_of(HistoryEventKind::component_failed)) {
        failures.emplace(e.component, e.message);
    }
    REQUIRE(failures.size() == 2);
    CHECK_THAT(failures.at("perception"), Catch::Matchers::Contains("perceive() returned an empty asio::awaitable"));
    CHECK_THAT(failures.at("actuation_loop"), Catch::Matchers::Contains("act() returned an empty asio::awaitable"));
    CHECK(hist.steps.at(0).actions.at(1).outcome == ActionOutcome::interrupted);
}

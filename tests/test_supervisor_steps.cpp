// Supervisor tests: the run loop, steps, the step timeouts and the observations decided on.
// In virtual time: every scenario runs hours of simulated time in milliseconds and is deterministic. The scripted
// agent and the run harness are in support/supervisor_harness.hpp.
#include <taskmon/agent/supervisor.hpp>
#include <taskmon/testing/manual_clock.hpp>

#include "supervisor_harness.hpp"
#include "taskmon_catch.hpp"

#include <asio/bind_cancellation_slot.hpp>
#include <asio/cancellation_signal.hpp>
#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/io_context.hpp>
#include <asio/this_coro.hpp>
#include <asio/use_awaitable.hpp>

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

using namespace taskmon_test;  // Sup, History, Agent, SupervisorHarness, fast_settings, the common taskmon names ...

TEST_CASE("supervisor: a run to completed returns the history with the result") {
    SupervisorHarness h;
    h.agent.decide_fn = [](int, const Context& ctx) {
        return ctx.step == 3 ? Decision::done("clean", {"final-sweep"}) : Decision::act({"a", "b"});
    };
    auto sup = h.make(fast_settings());
    CHECK(sup->status() == AgentStatus::pending);
    h.start(*sup);
    REQUIRE(h.finish());
    const auto& hist = *h.history;
    CHECK(hist.status == AgentStatus::completed);
    CHECK(sup->status() == AgentStatus::completed);
    CHECK(hist.is_done());
    CHECK(hist.is_successful());
    CHECK(hist.final_result() == std::optional<std::string>{"clean"});
    REQUIRE(hist.number_of_steps() == 3);
    CHECK(hist.steps[0].number == 1);
    CHECK(hist.steps[2].number == 3);
    CHECK(hist.steps[2].actions.size() == 1);
    CHECK(hist.steps[2].actions[0].outcome == ActionOutcome::succeeded);
    CHECK(h.agent.acted == std::vector<std::string>{"a", "b", "a", "b", "final-sweep"});
    CHECK(hist.status_path() ==
          std::vector<AgentStatus>{AgentStatus::pending, AgentStatus::running, AgentStatus::completed});
    CHECK(hist.counters.decisions_executed == 3);
    CHECK(hist.counters.actions_succeeded == 5);
    CHECK(hist.errors().empty());
    CHECK(hist.total_duration() > 0ns);
    CHECK(hist.reason == "step 3 said done");
    // Every observation was either decided on or counted as dropped.
    CHECK(hist.counters.observations_published == hist.counters.observations_dropped + 3);
}

TEST_CASE("supervisor: each step decides on an observation captured after the previous step finished") {
    SupervisorHarness h;
    auto sup = h.make([] {
        auto s = fast_settings();
        s.max_steps = 5;
        return s;
    }());
    h.start(*sup);
    REQUIRE(h.finish());
    const auto& steps = h.history->steps;
    REQUIRE(steps.size() == 5);
    for (std::size_t i = 1; i < steps.size(); ++i) {
        CHECK(steps[i].observation_sequence > steps[i - 1].observation_sequence);
        // captured_at = finished_at of the previous step or later: age at decide time is bounded by the gap.
        CHECK(steps[i].started_at - steps[i].observation_age >= steps[i - 1].finished_at);
    }
}

TEST_CASE("supervisor: a run without done ends as max_steps_reached") {
    SupervisorHarness h;
    auto settings = fast_settings();
    settings.max_steps = 4;
    auto sup = h.make(settings);
    h.start(*sup);
    REQUIRE(h.finish());
    CHECK(h.history->status == AgentStatus::max_steps_reached);
    CHECK(h.history->number_of_steps() == 4);
    CHECK_FALSE(h.history->is_done());
    CHECK(h.agent.decided_on.size() == 4);  // no fifth decide() was started
}

TEST_CASE("supervisor: max_history_items keeps the newest steps and counts the evicted ones") {
    SupervisorHarness h;
    std::vector<std::uint64_t> hook_steps;
    auto settings = fast_settings();
    settings.max_steps = 12;
    settings.max_history_items = 5;
    auto sup = h.make(settings, {.on_step_end = [&](const Sup::Step& s) { hook_steps.push_back(s.number); }});
    h.start(*sup);
    REQUIRE(h.finish());
    const auto& hist = *h.history;
    CHECK(hist.status == AgentStatus::max_steps_reached);  // judged on all 12 steps, not on the 5 kept
    REQUIRE(hist.steps.size() == 5);
    for (std::size_t i = 0; i < hist.steps.size(); ++i) CHECK(hist.steps[i].number == 8 + i);
    CHECK(hist.counters.steps_evicted == 7);
    CHECK(hist.counters.steps == 12);
    CHECK(hist.number_of_steps() == 12);
    CHECK(hook_steps.size() == 12);  // every step reached on_step_end before it could be evicted
    // decide() still sees the previous step after evictions.
    REQUIRE(h.agent.contexts.size() == 12);
    REQUIRE(h.agent.contexts[11].previous_step.has_value());
    CHECK(h.agent.contexts[11].previous_step->number == 11);
}

TEST_CASE("supervisor: max_failures consecutive step failures fail the run") {
    SupervisorHarness h;
    h.agent.decide_fn = [](int, const Context&) -> Decision { throw std::runtime_error("model unavailable"); };
    auto sup = h.make(fast_settings());
    h.start(*sup);
    REQUIRE(h.finish());
    const auto& hist = *h.history;
    CHECK(hist.status == AgentStatus::failed);
    CHECK(hist.number_of_steps() == 3);
    for (const auto& step : hist.steps) {
        CHECK(step.outcome == StepOutcome::failed);
        CHECK_FALSE(step.fate.has_value());
        CHECK_THAT(step.error, Catch::Matchers::Contains("model unavailable"));
    }
    CHECK_THAT(hist.reason, Catch::Matchers::Contains("3 consecutive step failures"));
    CHECK(hist.errors().size() == 4);  // three step errors and the run's reason
    // A failed decide() is a step failure, not a component failure.
    CHECK(count_events(hist, HistoryEventKind::component_failed) == 0);
}

TEST_CASE("supervisor: a success resets the consecutive failure count") {
    SupervisorHarness h;
    h.agent.decide_fn = [](int, const Context& ctx) -> Decision {
        if (ctx.step % 3 != 0) throw std::runtime_error("flaky");
        return Decision::act({"ok"});
    };
    auto settings = fast_settings();
    settings.max_steps = 9;
    auto sup = h.make(settings);
    h.start(*sup);
    REQUIRE(h.finish());
    CHECK(h.history->status == AgentStatus::max_steps_reached);
    CHECK(h.history->counters.steps_failed == 6);
    CHECK(h.agent.contexts.back().consecutive_failures == 2);
}

TEST_CASE("supervisor: decide() is bounded by decide_timeout") {
    SupervisorHarness h;
    auto settings = fast_settings();
    settings.max_failures = 1;
    settings.decide_timeout = 2s;
    h.agent.decide_time = 1h;
    h.agent.act_fn = [](const std::string&) -> asio::awaitable<ActionResult> { co_return ActionResult::ok(); };
    auto sup = h.make(settings, {}, no_cpu());
    h.start(*sup);
    REQUIRE(h.finish());
    CHECK(h.history->status == AgentStatus::failed);
    REQUIRE(h.history->number_of_steps() == 1);
    CHECK_THAT(h.history->steps[0].error, Catch::Matchers::Contains("decide() timed out after 2.0s"));
    CHECK(h.history->steps[0].finished_at - h.history->steps[0].started_at == 2s);
}

TEST_CASE("supervisor: decide_timeout runs from the decide() call, not from before on_step_start") {
    SupervisorHarness h;
    auto settings = fast_settings();
    settings.max_steps = 2;
    settings.decide_timeout = 2s;
    // A slow on_step_start hook (1.5 s of virtual time) and a decide() of 1 s: decide() must still get its full
    // 2 s.
    Sup::Hooks hooks{.on_step_start = [&](std::uint64_t) { h.time.advance(1500ms); }};
    h.agent.decide_time = 1s;
    h.agent.decide_fn = [](int, const Context&) { return Decision::act({"x"}); };
    h.agent.act_fn = [](const std::string&) -> asio::awaitable<ActionResult> { co_return ActionResult::ok(); };
    auto sup = h.make(settings, hooks, no_cpu());
    h.start(*sup);
    REQUIRE(h.finish());
    CHECK(h.history->status == AgentStatus::max_steps_reached);
    CHECK(h.history->counters.steps_failed == 0);
}

TEST_CASE("supervisor: act() is bounded by act_timeout and the actuation_loop goes on without a restart") {
    SupervisorHarness h;
    h.agent.decide_fn = [](int, const Context& ctx) {
        return ctx.step == 3 ? Decision::done("ok") : Decision::act({ctx.step == 1 ? "stuck" : "fine"});
    };
    h.agent.act_fn = [](const std::string& action) -> asio::awaitable<ActionResult> {
        co_await sleep_for(action == "stuck" ? 1h : 10ms);
        co_return ActionResult::ok();
    };
    auto settings = fast_settings();
    settings.act_timeout = 3s;
    auto sup = h.make(settings);
    h.start(*sup);
    REQUIRE(h.finish());
    const auto& hist = *h.history;
    CHECK(hist.status == AgentStatus::completed);
    REQUIRE(hist.number_of_steps() == 3);
    const auto& first = hist.steps[0].actions.at(0);
    CHECK(first.outcome == ActionOutcome::failed);
    CHECK(first.result.error == "act() timed out after 3.0s");
    CHECK(*first.finished_at - *first.started_at == 3s);
    CHECK(hist.steps[1].actions.at(0).outcome == ActionOutcome::succeeded);
    CHECK(hist.counters.restarts.empty());  // a timeout is a failed action, not a component failure
    CHECK(count_events(hist, HistoryEventKind::component_failed) == 0);
}

TEST_CASE("supervisor: perceive() is bounded by capture_timeout and a timeout is a capture failure") {
    SupervisorHarness h;
    h.agent.perceive_fn = [](int call) -> asio::awaitable<int> {
        co_await sleep_for(call == 2 ? 1h : 10ms);
        co_return call;
    };
    h.agent.decide_fn = [](int, const Context& ctx) {
        return ctx.step == 3 ? Decision::done("ok") : Decision::act({"x"});
    };
    auto settings = fast_settings();
    settings.capture_timeout = 1s;
    auto sup = h.make(settings);
    h.start(*sup);
    REQUIRE(h.finish());
    const auto& hist = *h.history;
    CHECK(hist.status == AgentStatus::completed);
    CHECK(hist.counters.capture_failures == 1);
    CHECK(hist.counters.restarts.at("perception") == 1);
    REQUIRE(count_events(hist, HistoryEventKind::component_failed) == 1);
    CHECK_THAT(hist.events_of(HistoryEventKind::component_failed)[0].message,
               Catch::Matchers::Contains("perceive() timed out after 1.0s"));
    CHECK(hist.events_of(HistoryEventKind::component_failed)[0].at < 2s);
}

TEST_CASE("supervisor: a failed action skips the rest of its decision and fails the step") {
    SupervisorHarness h;
    h.agent.decide_fn = [](int, const Context& ctx) {
        return ctx.step == 2 ? Decision::done("ok") : Decision::act({"good", "bad", "never"});
    };
    h.agent.act_fn = [](const std::string& action) -> asio::awaitable<ActionResult> {
        co_return action == "bad" ? ActionResult::failure("wall ahead") : ActionResult::ok("moved");
    };
    auto sup = h.make(fast_settings());
    h.start(*sup);
    REQUIRE(h.finish());
    const auto& step = h.history->steps.at(0);
    CHECK(step.outcome == StepOutcome::failed);
    CHECK(step.fate == DecisionFate::failed);
    CHECK(step.actions[0].outcome == ActionOutcome::succeeded);
    CHECK(step.actions[0].result.extracted_content == std::optional<std::string>{"moved"});
    CHECK(step.actions[1].outcome == ActionOutcome::failed);
    CHECK(step.actions[2].outcome == ActionOutcome::skipped);
    CHECK(h.agent.acted == std::vector<std::string>{"good", "bad"});
    CHECK(h.history->status == AgentStatus::completed);
}

TEST_CASE("supervisor: a decision with more than max_actions_per_step actions runs none of them") {
    SupervisorHarness h;
    h.agent.decide_fn = [](int, const Context& ctx) {
        return ctx.step == 2 ? Decision::done("ok") : Decision::act({"1", "2", "3"});
    };
    auto settings = fast_settings();
    settings.max_actions_per_step = 2;
    auto sup = h.make(settings);
    h.start(*sup);
    REQUIRE(h.finish());
    CHECK(h.history->steps.at(0).fate == DecisionFate::failed);
    CHECK_THAT(h.history->steps.at(0).error, Catch::Matchers::Contains("max_actions_per_step is 2"));
    CHECK(h.agent.acted.empty());
    CHECK(h.history->status == AgentStatus::completed);
}

TEST_CASE("supervisor: a decision that waits longer than max_decision_age expires and nothing runs") {
    SupervisorHarness h;
    // Perception hangs after the first capture: the watchdog holds actuation, the first decision expires.
    h.agent.perceive_fn = [](int call) -> asio::awaitable<int> {
        co_await sleep_for(call == 1 ? 10ms : 10h);
        co_return call;
    };
    h.agent.decide_fn = [](int, const Context&) { return Decision::act({"risky"}); };
    auto settings = fast_settings();
    settings.capture_timeout = 100h;
    settings.perception_timeout = 2s;
    settings.watchdog_startup_grace = 0s;
    settings.max_decision_age = 3s;
    settings.max_consecutive_stalls = 5;
    // decide() takes long enough that the first stall (at 3 s) happens while deciding.
    h.agent.decide_time = 3500ms;
    h.agent.act_fn = [](const std::string&) -> asio::awaitable<ActionResult> { co_return ActionResult::ok(); };
    auto sup = h.make(settings, {}, no_cpu());
    h.start(*sup);
    REQUIRE(h.finish());
    const auto& hist = *h.history;
    CHECK(hist.status == AgentStatus::failed);  // the stalls eventually fail it
    REQUIRE(hist.number_of_steps() == 1);
    CHECK(hist.steps[0].fate == DecisionFate::expired);
    CHECK(hist.steps[0].actions[0].outcome == ActionOutcome::skipped);
    CHECK(hist.counters.decisions_expired == 1);
    CHECK(count_events(hist, HistoryEventKind::decision_expired) == 1);
    CHECK(h.agent.acted.empty());
}

TEST_CASE("supervisor: observations older than max_observation_age are dropped, never decided on") {
    SupervisorHarness h;
    h.agent.perceive_fn = [](int call) -> asio::awaitable<int> {
        co_await sleep_for(3s);  // every observation is already 3 s old when published
        co_return call;
    };
    auto settings = fast_settings();
    settings.max_observation_age = 2s;
    settings.capture_timeout = 10s;
    settings.perception_timeout = 10s;
    auto sup = h.make(settings);
    h.start(*sup);
    h.at(1min, [&] { sup->stop(); });
    REQUIRE(h.finish());
    const auto& hist = *h.history;
    CHECK(hist.status == AgentStatus::stopped);
    CHECK(hist.number_of_steps() == 0);
    CHECK(h.agent.decided_on.empty());
    CHECK(hist.counters.observations_published >= 15);
    CHECK(hist.counters.observations_dropped == hist.counters.observations_published);
    CHECK(hist.counters.watchdog_stalls == 0);  // perception is alive, just slow
}

TEST_CASE("supervisor: a step decides on the freshest observation and counts the ones it skipped") {
    SupervisorHarness h;
    // Perception is fast (every 100 ms) and decide() slow (1 s): several observations pile up per step.
    h.agent.decide_time = 1s;
    h.agent.decide_fn = [](int, const Context&) { return Decision::act({"x"}); };
    h.agent.act_fn = [](const std::string&) -> asio::awaitable<ActionResult> { co_return ActionResult::ok(); };
    auto settings = fast_settings();
    settings.max_steps = 3;
    auto sup = h.make(settings, {}, no_cpu());
    h.start(*sup);
    REQUIRE(h.finish());
    const auto& hist = *h.history;
    REQUIRE(hist.number_of_steps() == 3);
    CHECK(hist.counters.observations_dropped > 0);
    CHECK(hist.counters.observations_published == hist.counters.observations_dropped + 3);
    for (const auto& step : hist.steps) CHECK(step.observation_age <= 100ms);
    CHECK(hist.steps[1].observation_sequence > hist.steps[0].observation_sequence + 1);  // some were skipped
}

namespace {
// Agent types without default constructors: the Supervisor only copies and moves them.
struct Reading {
    explicit Reading(int v) : value(v) {}
    int value;
};
struct Move {
    explicit Move(int s) : step(s) {}
    int step;
};
struct Verdict {
    explicit Verdict(std::uint64_t s) : steps(s) {}
    std::uint64_t steps;
};
}  // namespace

TEST_CASE("supervisor: the agent's types need no default constructor") {
    asio::io_context io;
    taskmon::AgentSettings settings;
    settings.capture_interval = 0ms;  // nothing waits for time: the steady clock is fine here
    std::vector<int> moved;
    taskmon::Supervisor<Reading, Move, Verdict> agent{
        io.get_executor(),
        {.perceive = [n = 0]() mutable -> asio::awaitable<Reading> { co_return Reading{++n}; },
         .decide = [](const Reading& seen, const auto& context) -> asio::awaitable<taskmon::Decision<Move, Verdict>> {
             CHECK(seen.value > 0);
             if (context.step == 3) co_return taskmon::Decision<Move, Verdict>::done(Verdict{context.step});
             co_return taskmon::Decision<Move, Verdict>::act({Move{static_cast<int>(context.step)}});
         },
         .act = [&moved](const Move& move) -> asio::awaitable<ActionResult> {
             moved.push_back(move.step);
             co_return ActionResult::ok();
         }},
        settings,
        {},
        null_logger()};
    std::optional<taskmon::History<Move, Verdict>> history;
    asio::co_spawn(
        io, [&]() -> asio::awaitable<void> { history = co_await agent.run(); }, asio::detached);
    io.run();
    REQUIRE(history);
    CHECK(history->status == AgentStatus::completed);
    REQUIRE(history->final_result());
    CHECK(history->final_result()->steps == 3);
    CHECK(moved == std::vector<int>{1, 2});
    REQUIRE(history->steps.size() == 3);
    CHECK(history->steps[1].actions.at(0).action.step == 2);
}

// The Supervisor end to end, in virtual time: every scenario below runs hours of simulated time in
// milliseconds and is deterministic.
#include <taskmon/testing/manual_clock.hpp>
#include <taskmon/supervisor.hpp>

#include <atomic>
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <thread>
#include <string>
#include <vector>

#include <asio/bind_cancellation_slot.hpp>
#include <asio/cancellation_signal.hpp>
#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/io_context.hpp>
#include <asio/this_coro.hpp>
#include <asio/use_awaitable.hpp>
#include <spdlog/sinks/base_sink.h>
#include <spdlog/sinks/null_sink.h>
#include <spdlog/spdlog.h>

#include "taskmon_catch.hpp"

// Fault injection for the tests: reaches the Supervisor's internal state (declared a friend by Supervisor).
namespace taskmon::detail {
struct SupervisorAccess {
    template <typename S>
    static auto& state(S& supervisor) {
        return *supervisor.state_;
    }
};
}  // namespace taskmon::detail

using namespace std::chrono_literals;
using taskmon::ActionOutcome;
using taskmon::ActionResult;
using taskmon::AgentSettings;
using taskmon::AgentStatus;
using taskmon::DecisionFate;
using taskmon::HistoryEventKind;
using taskmon::StepOutcome;
using taskmon::testing::ManualClock;
using taskmon::testing::ManualTimer;

namespace {

using Sup = taskmon::Supervisor<int, std::string, std::string, ManualClock>;
using History = Sup::HistoryType;
using Decision = Sup::DecisionType;
using Context = Sup::Context;

asio::awaitable<void> sleep_for(ManualClock::duration d) {
    ManualTimer timer{co_await asio::this_coro::executor, d};
    co_await timer.async_wait(asio::use_awaitable);
}

std::shared_ptr<spdlog::logger> quiet_logger() {
    return std::make_shared<spdlog::logger>("supervisor-test", std::make_shared<spdlog::sinks::null_sink_mt>());
}

/// Fast settings for tests: small intervals, quick restarts, long enough limits.
AgentSettings fast_settings() {
    AgentSettings s;
    s.capture_interval = 100ms;
    s.shed_capture_interval = 1s;
    s.capture_timeout = 5s;
    s.decide_timeout = 5s;
    s.act_timeout = 5s;
    s.perception_timeout = 4s;
    s.watchdog_startup_grace = 4s;
    s.critical_restart_policy = {.max_restart_attempts = 5, .base_backoff = 100ms, .max_backoff = 1s};
    s.auxiliary_restart_policy = {.max_restart_attempts = 5, .base_backoff = 1s, .max_backoff = 10s};
    return s;
}

/// A scripted agent: perceive returns 1, 2, 3 ...; decide and act are per-test functions. Records calls.
struct Agent {
    std::function<asio::awaitable<int>(int call)> perceive_fn = [](int call) -> asio::awaitable<int> {
        co_await sleep_for(10ms);
        co_return call;
    };
    std::function<Decision(int observation, const Context&)> decide_fn = [](int, const Context& ctx) {
        return Decision::act({"move-" + std::to_string(ctx.step)});
    };
    std::function<asio::awaitable<ActionResult>(const std::string&)> act_fn =
        [](const std::string&) -> asio::awaitable<ActionResult> {
        co_await sleep_for(50ms);
        co_return ActionResult::ok();
    };

    int perceive_calls = 0;
    std::vector<int> decided_on;
    std::vector<Context> contexts;
    std::vector<std::string> acted;

    Sup::Functions functions() {
        return {.perceive = [this]() { return perceive_fn(++perceive_calls); },
                .decide = [this](const int& obs, const Context& ctx) -> asio::awaitable<Decision> {
                    decided_on.push_back(obs);
                    contexts.push_back(ctx);
                    co_await sleep_for(20ms);
                    co_return decide_fn(obs, ctx);
                },
                .act = [this](const std::string& action) {
                    acted.push_back(action);
                    return act_fn(action);
                }};
    }
};

/// Virtual time, an io_context and one Supervisor run.
struct Harness {
    taskmon::testing::ManualTime time;
    asio::io_context io;
    taskmon::testing::VirtualTimeRunner runner{io, time};
    Agent agent;
    std::optional<History> history;
    std::vector<std::string> hook_log;

    std::unique_ptr<Sup> make(AgentSettings settings, Sup::Hooks hooks = {}, taskmon::CpuSource cpu = {}) {
        if (!cpu) cpu = [] { return std::optional<taskmon::CpuUsage>{taskmon::CpuUsage{10.0, 5.0}}; };
        return std::make_unique<Sup>(io.get_executor(), agent.functions(), std::move(settings), std::move(hooks),
                                     quiet_logger(), std::move(cpu));
    }

    void start(Sup& sup) {
        asio::co_spawn(
            io, [this, &sup]() -> asio::awaitable<void> { history = co_await sup.run(); }, asio::detached);
    }

    /// Drives virtual time until run() returned (or `limit` of virtual time passed).
    bool finish(ManualClock::duration limit = 24h) {
        return runner.run_until([this] { return history.has_value(); }, limit);
    }

    void at(ManualClock::duration when, std::function<void()> f) {
        asio::co_spawn(
            io,
            [when, f = std::move(f)]() -> asio::awaitable<void> {
                co_await sleep_for(when);
                f();
            },
            asio::detached);
    }
};

std::size_t count(const History& h, HistoryEventKind kind) { return h.events_of(kind).size(); }

}  // namespace

TEST_CASE("supervisor: invalid construction names the problem") {
    asio::io_context io;
    Agent agent;
    auto functions = agent.functions();
    functions.decide = nullptr;
    CHECK_THROWS_WITH(Sup(io.get_executor(), functions, fast_settings(), {}, quiet_logger()),
                      "AgentFunctions.decide is empty");
    AgentSettings bad = fast_settings();
    bad.max_steps = 0;
    CHECK_THROWS_WITH(Sup(io.get_executor(), agent.functions(), bad, {}, quiet_logger()),
                      "AgentSettings.max_steps must be > 0");
}

TEST_CASE("supervisor: a run to completed returns the history with the result") {
    Harness h;
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
    Harness h;
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
    Harness h;
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
    Harness h;
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
    Harness h;
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
    CHECK(count(hist, HistoryEventKind::component_failed) == 0);
}

TEST_CASE("supervisor: a success resets the consecutive failure count") {
    Harness h;
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
    Harness h;
    auto settings = fast_settings();
    settings.max_failures = 1;
    settings.decide_timeout = 2s;
    Agent& agent = h.agent;
    auto sup = std::make_unique<Sup>(
        h.io.get_executor(),
        Sup::Functions{.perceive = [&agent] { return agent.perceive_fn(++agent.perceive_calls); },
                       .decide = [](const int&, const Context&) -> asio::awaitable<Decision> {
                           co_await sleep_for(1h);
                           co_return Decision::act({});
                       },
                       .act = [](const std::string&) -> asio::awaitable<ActionResult> {
                           co_return ActionResult::ok();
                       }},
        settings, Sup::Hooks{}, quiet_logger(),
        [] { return std::optional<taskmon::CpuUsage>{}; });
    h.start(*sup);
    REQUIRE(h.finish());
    CHECK(h.history->status == AgentStatus::failed);
    REQUIRE(h.history->number_of_steps() == 1);
    CHECK_THAT(h.history->steps[0].error, Catch::Matchers::Contains("decide() timed out after 2.0s"));
    CHECK(h.history->steps[0].finished_at - h.history->steps[0].started_at == 2s);
}

TEST_CASE("supervisor: decide_timeout runs from the decide() call, not from before on_step_start") {
    Harness h;
    auto settings = fast_settings();
    settings.max_steps = 2;
    settings.decide_timeout = 2s;
    // A slow on_step_start hook (1.5 s of virtual time) and a decide() of 1 s (the harness's is 20 ms; the hook
    // adds the rest): decide() must still get its full 2 s.
    Sup::Hooks hooks{.on_step_start = [&](std::uint64_t) { h.time.advance(1500ms); }};
    Agent& agent = h.agent;
    auto sup = std::make_unique<Sup>(
        h.io.get_executor(),
        Sup::Functions{.perceive = [&agent] { return agent.perceive_fn(++agent.perceive_calls); },
                       .decide = [](const int&, const Context&) -> asio::awaitable<Decision> {
                           co_await sleep_for(1s);
                           co_return Decision::act({"x"});
                       },
                       .act = [](const std::string&) -> asio::awaitable<ActionResult> {
                           co_return ActionResult::ok();
                       }},
        settings, hooks, quiet_logger(), [] { return std::optional<taskmon::CpuUsage>{}; });
    h.start(*sup);
    REQUIRE(h.finish());
    CHECK(h.history->status == AgentStatus::max_steps_reached);
    CHECK(h.history->counters.steps_failed == 0);
}

TEST_CASE("supervisor: act() is bounded by act_timeout; the actuation_loop goes on without a restart") {
    Harness h;
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
    CHECK(count(hist, HistoryEventKind::component_failed) == 0);
}

TEST_CASE("supervisor: perceive() is bounded by capture_timeout; a timeout is a capture failure") {
    Harness h;
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
    REQUIRE(count(hist, HistoryEventKind::component_failed) == 1);
    CHECK_THAT(hist.events_of(HistoryEventKind::component_failed)[0].message,
               Catch::Matchers::Contains("perceive() timed out after 1.0s"));
    CHECK(hist.events_of(HistoryEventKind::component_failed)[0].at < 2s);
}

TEST_CASE("supervisor: a failed action skips the rest of its decision and fails the step") {
    Harness h;
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
    Harness h;
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

TEST_CASE("supervisor: stop() ends the run as stopped and interrupts the action in flight") {
    Harness h;
    h.agent.act_fn = [](const std::string&) -> asio::awaitable<ActionResult> {
        co_await sleep_for(1h);
        co_return ActionResult::ok();
    };
    auto settings = fast_settings();
    settings.act_timeout = 2h;
    settings.max_decision_age = 3h;
    auto sup = h.make(settings);
    h.start(*sup);
    h.at(10s, [&] { sup->stop("operator said so"); });
    REQUIRE(h.finish());
    const auto& hist = *h.history;
    CHECK(hist.status == AgentStatus::stopped);
    CHECK(hist.reason == "operator said so");
    CHECK(hist.status_path() == std::vector<AgentStatus>{AgentStatus::pending, AgentStatus::running,
                                                         AgentStatus::stopping, AgentStatus::stopped});
    REQUIRE(hist.number_of_steps() == 1);
    CHECK(hist.steps[0].fate == DecisionFate::interrupted);
    CHECK(hist.steps[0].actions[0].outcome == ActionOutcome::interrupted);
    CHECK(count(hist, HistoryEventKind::action_interrupted) == 1);
    CHECK(count(hist, HistoryEventKind::component_failed) == 0);  // closing is not a failure
    CHECK(h.time.elapsed() < 11s);
}

TEST_CASE("supervisor: stop() before run() ends the run at once as stopped") {
    Harness h;
    std::vector<std::string> hooks;
    Sup::Hooks callbacks{.on_run_start = [&] { hooks.push_back("run_start"); },
                         .on_run_end = [&](const History&) { hooks.push_back("run_end"); }};
    auto sup = h.make(fast_settings(), callbacks);
    sup->stop();
    h.start(*sup);
    REQUIRE(h.finish());
    CHECK(h.history->status == AgentStatus::stopped);
    CHECK(h.history->number_of_steps() == 0);
    CHECK(h.agent.perceive_calls == 0);
    CHECK(hooks == std::vector<std::string>{"run_end"});
}

TEST_CASE("supervisor: run() may be called only once") {
    Harness h;
    auto sup = h.make(fast_settings());
    sup->stop();
    h.start(*sup);
    REQUIRE(h.finish());
    bool threw = false;
    asio::co_spawn(
        h.io,
        [&]() -> asio::awaitable<void> {
            try {
                co_await sup->run();
            } catch (const std::logic_error&) {
                threw = true;
            }
        },
        asio::detached);
    h.runner.run_for(1s);
    CHECK(threw);
}

TEST_CASE("supervisor: terminal states absorb: a late stop() after completion changes nothing") {
    Harness h;
    h.agent.decide_fn = [](int, const Context&) { return Decision::done("quick"); };
    auto sup = h.make(fast_settings());
    h.start(*sup);
    REQUIRE(h.finish());
    sup->stop();
    sup->pause();
    sup->resume();
    h.runner.run_for(1s);
    CHECK(sup->status() == AgentStatus::completed);
    CHECK(h.history->status == AgentStatus::completed);
}

TEST_CASE("supervisor: hooks run in order and a throwing hook is recorded, never escapes") {
    Harness h;
    h.agent.decide_fn = [](int, const Context& ctx) {
        return ctx.step == 2 ? Decision::done("ok") : Decision::act({"x"});
    };
    std::vector<std::string> log;
    bool components_closed_at_end = false;
    Sup* sup_ptr = nullptr;
    Sup::Hooks hooks{
        .on_run_start = [&] { log.push_back("run_start"); },
        .on_step_start = [&](std::uint64_t n) {
            log.push_back("step_start " + std::to_string(n));
            if (n == 1) throw std::runtime_error("hook bug");
        },
        .on_step_end = [&](const Sup::Step& s) { log.push_back("step_end " + std::to_string(s.number)); },
        .on_run_end = [&](const History& hist) {
            log.push_back("run_end " + std::string{taskmon::to_string(hist.status)});
            components_closed_at_end = true;
            for (const auto& [name, stats] : sup_ptr->get_component_stats()) {
                if (stats.state == taskmon::ComponentState::running) components_closed_at_end = false;
            }
            throw std::runtime_error("end hook bug");
        },
        .on_status_change = [&](const taskmon::StatusTransition& t) {
            log.push_back("status " + std::string{taskmon::to_string(t.to)});
        }};
    auto sup = h.make(fast_settings(), hooks);
    sup_ptr = sup.get();
    h.start(*sup);
    REQUIRE(h.finish());
    CHECK(log == std::vector<std::string>{"status running", "run_start", "step_start 1", "step_end 1",
                                          "step_start 2", "status completed", "step_end 2", "run_end completed"});
    CHECK(components_closed_at_end);
    CHECK(h.history->status == AgentStatus::completed);
    // Both hook errors are in the returned history: on_run_end runs before run() hands it over.
    CHECK(h.history->counters.hook_errors == 2);
    REQUIRE(count(*h.history, HistoryEventKind::hook_error) == 2);
    const auto hook_errors = h.history->events_of(HistoryEventKind::hook_error);
    CHECK_THAT(hook_errors[0].message, Catch::Matchers::Contains("on_step_start"));
    CHECK_THAT(hook_errors[1].message, Catch::Matchers::Contains("end hook bug"));
}

TEST_CASE("supervisor: a failing perception is restarted alone and no sibling is cancelled") {
    Harness h;
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
    CHECK(count(hist, HistoryEventKind::component_failed) == 2);
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
    Harness h;
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
    CHECK(count(hist, HistoryEventKind::component_gave_up) == 1);
    CHECK(hist.counters.restarts.at("perception") == 3);
    CHECK(h.agent.perceive_calls == 4);
    CHECK(h.time.elapsed() < 1min);
}

TEST_CASE("supervisor: an action in flight when actuation crashes is interrupted and never replayed") {
    Harness h;
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
    CHECK(count(hist, HistoryEventKind::action_interrupted) == 1);
    CHECK(hist.counters.decisions_interrupted == 1);
}

TEST_CASE("supervisor: pause takes effect after the step in flight and a long pause spends no budget") {
    Harness h;
    h.agent.decide_fn = [](int, const Context& ctx) {
        return ctx.step == 4 ? Decision::done("ok") : Decision::act({"x"});
    };
    h.agent.act_fn = [](const std::string&) -> asio::awaitable<ActionResult> {
        co_await sleep_for(2s);
        co_return ActionResult::ok();
    };
    auto sup = h.make(fast_settings());
    h.start(*sup);
    std::size_t steps_at_pause = 0;
    std::optional<AgentStatus> status_right_after_pause;
    h.at(1s, [&] { sup->pause(); });
    h.at(1s + 1ms, [&] { status_right_after_pause = sup->status(); });
    h.at(1h, [&] {
        steps_at_pause = h.agent.decided_on.size();
        sup->inject_guidance("mind the cat");
        sup->resume();
    });
    REQUIRE(h.finish());
    const auto& hist = *h.history;
    CHECK(status_right_after_pause == AgentStatus::running);  // the step in flight finishes first
    CHECK(hist.status == AgentStatus::completed);
    CHECK(steps_at_pause == 1);
    CHECK(hist.steps.at(0).outcome == StepOutcome::succeeded);
    CHECK(hist.status_path() == std::vector<AgentStatus>{AgentStatus::pending, AgentStatus::running,
                                                         AgentStatus::paused, AgentStatus::running,
                                                         AgentStatus::completed});
    for (const auto& [name, stats] : sup->get_component_stats()) {
        INFO(name);
        CHECK(stats.restart_count == 0);
        CHECK(stats.failure_count == 0);
    }
    CHECK(hist.counters.watchdog_stalls == 0);
    CHECK(count(hist, HistoryEventKind::component_failed) == 0);
    // Guidance given while paused reaches the first decide() after resume.
    REQUIRE(h.agent.contexts.size() == 4);
    CHECK(h.agent.contexts[1].guidance == std::vector<std::string>{"mind the cat"});
    CHECK(h.agent.contexts[2].guidance.empty());
    CHECK(count(hist, HistoryEventKind::guidance_delivered) == 1);
    // No capture while paused: perception captured only around the running stretches.
    CHECK(h.agent.perceive_calls < 200);
}

TEST_CASE("supervisor: a perception stall restarts perception, holds actuation and recovers") {
    Harness h;
    h.agent.perceive_fn = [](int call) -> asio::awaitable<int> {
        co_await sleep_for(call == 5 ? 10h : 10ms);  // the fifth capture hangs
        co_return call;
    };
    h.agent.decide_fn = [](int, const Context& ctx) {
        return ctx.step == 6 ? Decision::done("ok") : Decision::act({"x"});
    };
    h.agent.act_fn = [](const std::string&) -> asio::awaitable<ActionResult> {
        co_await sleep_for(100ms);
        co_return ActionResult::ok();
    };
    auto settings = fast_settings();
    settings.capture_timeout = 1h;  // the capture hangs past the watchdog, not the capture timeout
    settings.capture_interval = 0ms;
    settings.shed_capture_interval = 0ms;
    auto sup = h.make(settings);
    h.start(*sup);
    REQUIRE(h.finish());
    const auto& hist = *h.history;
    CHECK(hist.status == AgentStatus::completed);
    CHECK(hist.counters.watchdog_stalls == 1);
    CHECK(count(hist, HistoryEventKind::watchdog_stall) == 1);
    CHECK(count(hist, HistoryEventKind::watchdog_recovered) == 1);
    CHECK(hist.counters.restarts.at("perception") == 1);
    CHECK(count(hist, HistoryEventKind::component_failed) == 0);  // a restart we asked for is not a failure
    const auto stall = hist.events_of(HistoryEventKind::watchdog_stall)[0].at;
    const auto recovered = hist.events_of(HistoryEventKind::watchdog_recovered)[0].at;
    CHECK(recovered > stall);
    CHECK(recovered - stall < 1s);
    CHECK(h.time.elapsed() < 1min);
}

TEST_CASE("supervisor: repeated stalls fail the run after max_consecutive_stalls") {
    Harness h;
    h.agent.perceive_fn = [](int call) -> asio::awaitable<int> {
        co_await sleep_for(call == 1 ? 10ms : 10h);
        co_return call;
    };
    auto settings = fast_settings();
    settings.capture_timeout = 100h;
    settings.max_consecutive_stalls = 3;
    auto sup = h.make(settings);
    h.start(*sup);
    REQUIRE(h.finish());
    const auto& hist = *h.history;
    CHECK(hist.status == AgentStatus::failed);
    CHECK_THAT(hist.reason, Catch::Matchers::Contains("perception stalled 3 times in a row"));
    CHECK(hist.counters.watchdog_stalls == 3);
    CHECK(hist.counters.restarts.at("perception") == 2);
}

TEST_CASE("supervisor: the watchdog grants a startup grace and is suspended while paused") {
    Harness h;
    h.agent.perceive_fn = [](int call) -> asio::awaitable<int> {
        co_await sleep_for(call == 1 ? 7s : 10ms);  // slow first capture, inside the grace
        co_return call;
    };
    h.agent.decide_fn = [](int, const Context& ctx) {
        return ctx.step == 2 ? Decision::done("ok") : Decision::act({"x"});
    };
    auto settings = fast_settings();
    settings.perception_timeout = 4s;
    settings.watchdog_startup_grace = 8s;
    settings.capture_timeout = 10s;
    auto sup = h.make(settings);
    h.start(*sup);
    h.at(1s, [&] { sup->pause(); });
    h.at(20min, [&] { sup->resume(); });
    REQUIRE(h.finish());
    CHECK(h.history->status == AgentStatus::completed);
    CHECK(h.history->counters.watchdog_stalls == 0);
}

TEST_CASE("supervisor: shedding enters and leaves with hysteresis and slows perception") {
    Harness h;
    std::vector<double> cpu_script{50, 99, 97, 97, 97, 95, 50};
    std::size_t sample = 0;
    auto cpu = [&]() -> std::optional<taskmon::CpuUsage> {
        const double value = sample < cpu_script.size() ? cpu_script[sample] : 50.0;
        ++sample;
        return taskmon::CpuUsage{value, 1.0};
    };
    auto settings = fast_settings();
    settings.load_sample_interval = 1s;
    settings.capture_interval = 100ms;
    settings.shed_capture_interval = 2s;
    settings.max_steps = 1000;
    h.agent.decide_fn = [](int, const Context&) { return Decision::act({}); };
    auto sup = h.make(settings, {}, cpu);
    h.start(*sup);
    // Samples at 1 s (50), 2 s (99: enter), 3-5 s (97: inside the band, stay), 6 s (95: leave).
    int captures_before = 0, captures_shedding = 0;
    bool shedding_seen_in_context = false;
    h.at(2500ms, [&] { captures_before = h.agent.perceive_calls; });
    h.at(5500ms, [&] {
        captures_shedding = h.agent.perceive_calls - captures_before;
        for (const auto& c : h.agent.contexts) shedding_seen_in_context |= c.shedding;
    });
    h.at(10s, [&] { sup->stop(); });
    REQUIRE(h.finish());
    const auto& hist = *h.history;
    REQUIRE(count(hist, HistoryEventKind::load_shedding_entered) == 1);
    REQUIRE(count(hist, HistoryEventKind::load_shedding_left) == 1);
    CHECK(hist.events_of(HistoryEventKind::load_shedding_entered)[0].at == 2s);
    CHECK(hist.events_of(HistoryEventKind::load_shedding_left)[0].at == 6s);
    CHECK_THAT(hist.events_of(HistoryEventKind::load_shedding_entered)[0].message,
               Catch::Matchers::Contains("cpu_percent=99.0"));
    CHECK(hist.counters.load_shedding_entries == 1);
    // 3 s of shedding at one capture per 2 s, instead of ~30 at 100 ms.
    CHECK(captures_shedding <= 3);
    CHECK(shedding_seen_in_context);
    CHECK(hist.counters.watchdog_stalls == 0);  // shedding never starves the watchdog
}

TEST_CASE("supervisor: an auxiliary give-up degrades: the load monitor fails open") {
    Harness h;
    int samples = 0;
    auto cpu = [&]() -> std::optional<taskmon::CpuUsage> {
        if (++samples >= 3) throw std::runtime_error("/proc vanished");
        return taskmon::CpuUsage{99.5, 1.0};
    };
    auto settings = fast_settings();
    settings.auxiliary_restart_policy = {.max_restart_attempts = 2, .base_backoff = 1s, .max_backoff = 1s};
    settings.max_steps = 10000;
    h.agent.decide_fn = [](int, const Context&) { return Decision::act({}); };
    auto sup = h.make(settings, {}, cpu);
    h.start(*sup);
    h.at(1min, [&] { sup->stop(); });
    REQUIRE(h.finish());
    const auto& hist = *h.history;
    CHECK(hist.status == AgentStatus::stopped);  // not failed: the monitor is auxiliary
    REQUIRE(count(hist, HistoryEventKind::component_gave_up) == 1);
    CHECK(hist.events_of(HistoryEventKind::component_gave_up)[0].component == "load_shedding_monitor");
    REQUIRE(count(hist, HistoryEventKind::load_shedding_left) == 1);
    CHECK_THAT(hist.events_of(HistoryEventKind::load_shedding_left)[0].message, Catch::Matchers::Contains("fail"));
}

TEST_CASE("supervisor: a decision that waits longer than max_decision_age expires and nothing runs") {
    Harness h;
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
    auto sup = std::make_unique<Sup>(
        h.io.get_executor(),
        Sup::Functions{.perceive = [&] { return h.agent.perceive_fn(++h.agent.perceive_calls); },
                       .decide = [](const int&, const Context&) -> asio::awaitable<Decision> {
                           co_await sleep_for(3500ms);
                           co_return Decision::act({"risky"});
                       },
                       .act = [&](const std::string& a) -> asio::awaitable<ActionResult> {
                           h.agent.acted.push_back(a);
                           co_return ActionResult::ok();
                       }},
        settings, Sup::Hooks{}, quiet_logger(), [] { return std::optional<taskmon::CpuUsage>{}; });
    h.start(*sup);
    REQUIRE(h.finish());
    const auto& hist = *h.history;
    CHECK(hist.status == AgentStatus::failed);  // the stalls eventually fail it
    REQUIRE(hist.number_of_steps() == 1);
    CHECK(hist.steps[0].fate == DecisionFate::expired);
    CHECK(hist.steps[0].actions[0].outcome == ActionOutcome::skipped);
    CHECK(hist.counters.decisions_expired == 1);
    CHECK(count(hist, HistoryEventKind::decision_expired) == 1);
    CHECK(h.agent.acted.empty());
}

TEST_CASE("supervisor: status() and control calls work from another thread") {
    Harness h;
    auto settings = fast_settings();
    settings.max_steps = 3;
    auto sup = h.make(settings);
    h.start(*sup);
    std::thread other{[&] {
        (void)sup->status();
        sup->inject_guidance("from another thread");
    }};
    other.join();
    REQUIRE(h.finish());
    CHECK(h.history->status == AgentStatus::max_steps_reached);
    CHECK(h.agent.contexts.at(0).guidance == std::vector<std::string>{"from another thread"});
}

TEST_CASE("supervisor: a run on a two-thread io_context with the steady clock (for TSan)") {
    using RealSup = taskmon::Supervisor<int, std::string>;
    asio::io_context io{2};
    std::atomic<int> perceived{0}, acted{0};
    AgentSettings settings;
    settings.max_steps = 20;
    settings.capture_interval = 1ms;
    settings.shed_capture_interval = 1ms;
    settings.load_sample_interval = 5ms;
    RealSup sup{io.get_executor(),
                {.perceive = [&]() -> asio::awaitable<int> { co_return ++perceived; },
                 .decide = [](const int& obs, const RealSup::Context&) -> asio::awaitable<RealSup::DecisionType> {
                     co_return RealSup::DecisionType::act({"a" + std::to_string(obs), "b"});
                 },
                 .act = [&](const std::string&) -> asio::awaitable<ActionResult> {
                     ++acted;
                     co_return ActionResult::ok();
                 }},
                settings, {}, quiet_logger()};
    std::optional<RealSup::HistoryType> history;
    asio::co_spawn(
        io, [&]() -> asio::awaitable<void> { history = co_await sup.run(); }, asio::detached);
    std::thread helper{[&] {
        sup.inject_guidance("hello");
        (void)sup.get_component_stats();
        io.run();
    }};
    io.run();
    helper.join();
    REQUIRE(history.has_value());
    CHECK(history->status == AgentStatus::max_steps_reached);
    CHECK(history->number_of_steps() == 20);
    CHECK(acted == 40);
    CHECK(history->counters.observations_published == static_cast<std::uint64_t>(perceived.load()));
}

TEST_CASE("supervisor: cancelling the coroutine awaiting run() stops the run and still returns the history") {
    Harness h;
    auto sup = h.make(fast_settings());
    asio::cancellation_signal cancel;
    asio::co_spawn(
        h.io, [&]() -> asio::awaitable<void> { h.history = co_await sup->run(); },
        asio::bind_cancellation_slot(cancel.slot(), asio::detached));
    h.at(5s, [&] { cancel.emit(asio::cancellation_type::terminal); });
    REQUIRE(h.finish());
    CHECK(h.history->status == AgentStatus::stopped);
    CHECK(h.history->reason == "run() was cancelled");
    CHECK(h.history->number_of_steps() > 0);
    CHECK(count(*h.history, HistoryEventKind::component_failed) == 0);
}

TEST_CASE("supervisor: observations older than max_observation_age are dropped, never decided on") {
    Harness h;
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
    Harness h;
    // Perception is fast (every 100 ms) and decide() slow (1 s): several observations pile up per step.
    Agent& agent = h.agent;
    auto settings = fast_settings();
    settings.max_steps = 3;
    auto sup = std::make_unique<Sup>(
        h.io.get_executor(),
        Sup::Functions{.perceive = [&agent] { return agent.perceive_fn(++agent.perceive_calls); },
                       .decide = [&agent](const int& obs, const Context&) -> asio::awaitable<Decision> {
                           agent.decided_on.push_back(obs);
                           co_await sleep_for(1s);
                           co_return Decision::act({"x"});
                       },
                       .act = [](const std::string&) -> asio::awaitable<ActionResult> {
                           co_return ActionResult::ok();
                       }},
        settings, Sup::Hooks{}, quiet_logger(), [] { return std::optional<taskmon::CpuUsage>{}; });
    h.start(*sup);
    REQUIRE(h.finish());
    const auto& hist = *h.history;
    REQUIRE(hist.number_of_steps() == 3);
    CHECK(hist.counters.observations_dropped > 0);
    CHECK(hist.counters.observations_published == hist.counters.observations_dropped + 3);
    for (const auto& step : hist.steps) CHECK(step.observation_age <= 100ms);
    CHECK(hist.steps[1].observation_sequence > hist.steps[0].observation_sequence + 1);  // some were skipped
}

TEST_CASE("supervisor: while shedding, the io_semaphore count is lowered and then restored") {
    Harness h;
    const std::size_t before = taskmon::get_io_semaphore_stats().capacity;
    REQUIRE(before > 1);
    std::vector<double> cpu_script{50, 99, 99, 50};
    std::size_t sample = 0;
    auto cpu = [&]() -> std::optional<taskmon::CpuUsage> {
        const double value = sample < cpu_script.size() ? cpu_script[sample] : 50.0;
        ++sample;
        return taskmon::CpuUsage{value, 1.0};
    };
    auto settings = fast_settings();
    settings.load_sample_interval = 1s;
    settings.shed_io_semaphore_count = 1;
    settings.max_steps = 1000;
    h.agent.decide_fn = [](int, const Context&) { return Decision::act({}); };
    auto sup = h.make(settings, {}, cpu);
    h.start(*sup);
    std::size_t during = 0, after_leave = 0;
    h.at(2500ms, [&] { during = taskmon::get_io_semaphore_stats().capacity; });
    h.at(4500ms, [&] { after_leave = taskmon::get_io_semaphore_stats().capacity; });
    h.at(5s, [&] { sup->stop(); });
    REQUIRE(h.finish());
    CHECK(during == 1);
    CHECK(after_leave == before);
    CHECK(taskmon::get_io_semaphore_stats().capacity == before);
    REQUIRE(count(*h.history, HistoryEventKind::load_shedding_entered) == 1);
    CHECK_THAT(h.history->events_of(HistoryEventKind::load_shedding_entered)[0].message,
               Catch::Matchers::Contains(fmt::format("io_semaphore_count={}->1", before)));
}

TEST_CASE("supervisor: a run that ends while shedding restores the io_semaphore count") {
    Harness h;
    const std::size_t before = taskmon::get_io_semaphore_stats().capacity;
    auto settings = fast_settings();
    settings.shed_io_semaphore_count = 1;
    settings.max_steps = 1000;
    h.agent.decide_fn = [](int, const Context&) { return Decision::act({}); };
    auto sup = h.make(settings, {}, [] { return std::optional<taskmon::CpuUsage>{taskmon::CpuUsage{99.9, 50.0}}; });
    h.start(*sup);
    std::size_t during = 0;
    h.at(3s, [&] { during = taskmon::get_io_semaphore_stats().capacity; });
    h.at(4s, [&] { sup->stop(); });
    REQUIRE(h.finish());
    CHECK(during == 1);
    CHECK(taskmon::get_io_semaphore_stats().capacity == before);
    REQUIRE(count(*h.history, HistoryEventKind::load_shedding_left) == 1);
    CHECK(h.history->events_of(HistoryEventKind::load_shedding_left)[0].message.rfind("the run ended", 0) == 0);
}

TEST_CASE("supervisor: destroying it right after a control call is safe: the posted call holds the state") {
    Harness h;
    std::vector<taskmon::StatusTransition> transitions;
    auto sup = h.make(fast_settings(), {.on_status_change = [&](const taskmon::StatusTransition& t) {
                                            transitions.push_back(t);
                                        }});
    sup->pause();
    sup->resume();
    sup->inject_guidance("too late");
    sup->stop("last words");
    sup.reset();  // before the executor ran any of the posted calls
    h.runner.run_for(1s);
    REQUIRE(transitions.size() == 1);
    CHECK(transitions[0].from == AgentStatus::pending);
    CHECK(transitions[0].to == AgentStatus::stopped);
    CHECK(transitions[0].reason == "last words");
}

TEST_CASE("supervisor: destroying it during run() stops the run, which still returns the history") {
    Harness h;
    bool run_end_called = false;
    auto settings = fast_settings();
    settings.max_steps = 100000;
    auto sup = h.make(settings, {.on_run_end = [&](const History&) { run_end_called = true; }});
    h.start(*sup);
    h.at(10s, [&] { sup.reset(); });
    REQUIRE(h.finish());
    const auto& hist = *h.history;
    CHECK(hist.status == AgentStatus::stopped);
    CHECK(hist.reason == "the Supervisor was destroyed");
    CHECK(hist.number_of_steps() > 10);
    CHECK(count(hist, HistoryEventKind::component_failed) == 0);
    CHECK(run_end_called);
    CHECK(h.time.elapsed() < 11s);
}

TEST_CASE("supervisor: a pause_handler give-up degrades: pending and later pause requests are dropped") {
    Harness h;
    h.agent.decide_fn = [](int, const Context& ctx) {
        return ctx.step == 20 ? Decision::done("ok") : Decision::act({"x"});
    };
    h.agent.act_fn = [](const std::string&) -> asio::awaitable<ActionResult> {
        co_await sleep_for(200ms);
        co_return ActionResult::ok();
    };
    auto settings = fast_settings();
    settings.auxiliary_restart_policy = {.max_restart_attempts = 2, .base_backoff = 1s, .max_backoff = 1s,
                                         .jitter = taskmon::JitterKind::none};
    auto sup = h.make(settings);
    int faults = 0;
    taskmon::detail::SupervisorAccess::state(*sup).set_instance_fault([&](const char* component, std::uint64_t) {
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
    CHECK(faults == 3);  // the first instance and two restarts
    CHECK(hist.status == AgentStatus::completed);  // auxiliary: the run is degraded, not failed
    CHECK(hist.status_path() == std::vector<AgentStatus>{AgentStatus::pending, AgentStatus::running,
                                                         AgentStatus::completed});
    REQUIRE(count(hist, HistoryEventKind::component_gave_up) == 1);
    CHECK(hist.events_of(HistoryEventKind::component_gave_up)[0].component == "pause_handler");
    CHECK(hist.counters.restarts.at("pause_handler") == 2);
    CHECK(count(hist, HistoryEventKind::component_failed) == 3);
    // The pause queued at 0.5 s held new steps until the give-up at 2 s dropped it.
    CHECK(steps_at_give_up <= 3);
    const auto gave_up_at = hist.events_of(HistoryEventKind::component_gave_up)[0].at;
    CHECK(gave_up_at >= 2s);
    CHECK(gave_up_at < 2100ms);
    CHECK(hist.number_of_steps() == 20);
}

namespace {
/// A sink that throws something spdlog passes on (it only catches std::exception).
class ThrowingSink final : public spdlog::sinks::base_sink<std::mutex> {
protected:
    void sink_it_(const spdlog::details::log_msg&) override { throw 42; }
    void flush_() override {}
};
}  // namespace

TEST_CASE("supervisor: a throwing log sink never breaks a loop or escapes run()") {
    Harness h;
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
    Sup sup{h.io.get_executor(), h.agent.functions(), settings, {}, logger,
            [] { return std::optional<taskmon::CpuUsage>{taskmon::CpuUsage{10.0, 5.0}}; }};
    h.start(sup);
    REQUIRE(h.finish());
    CHECK(h.history->status == AgentStatus::completed);
    CHECK(h.history->counters.restarts.at("perception") == 1);
    CHECK(h.history->counters.steps_failed == 4);
}

namespace {
/// The state of `sup`, weakly (to check that it is destroyed).
template <typename S>
auto weak_state(S& sup) {
    return taskmon::detail::SupervisorAccess::state(sup).weak_from_this();
}

/// An act() that ignores cancellation: its wait has no cancellation slot (like an uncancellable device call).
asio::awaitable<void> uncancellable_sleep(ManualClock::duration d) {
    ManualTimer timer{co_await asio::this_coro::executor, d};
    co_await timer.async_wait(asio::bind_cancellation_slot(asio::cancellation_slot{}, asio::use_awaitable));
}
}  // namespace

TEST_CASE("supervisor: the state is destroyed once run() returned and the Supervisor is gone") {
    Harness h;
    h.agent.decide_fn = [](int, const Context& ctx) {
        return ctx.step == 3 ? Decision::done("ok") : Decision::act({"x"});
    };
    auto sup = h.make(fast_settings());
    const auto weak = weak_state(*sup);
    h.start(*sup);
    REQUIRE(h.finish());
    CHECK(h.history->status == AgentStatus::completed);
    sup.reset();
    h.runner.run_for(1min);
    CHECK(weak.expired());
}

TEST_CASE("supervisor: after stop(), an action that ignores cancellation finishes but no later action starts") {
    Harness h;
    h.agent.decide_fn = [](int, const Context&) { return Decision::act({"first", "second"}); };
    h.agent.act_fn = [](const std::string&) -> asio::awaitable<ActionResult> {
        co_await uncancellable_sleep(1s);  // shorter than the shutdown_timeout (5 s)
        co_return ActionResult::ok();
    };
    auto sup = h.make(fast_settings());
    const auto weak = weak_state(*sup);
    h.start(*sup);
    h.at(500ms, [&] { sup->stop(); });  // during "first" of step 1
    REQUIRE(h.finish());
    const auto& hist = *h.history;
    CHECK(hist.status == AgentStatus::stopped);
    CHECK(h.agent.acted == std::vector<std::string>{"first"});  // "second" is never started
    REQUIRE(hist.number_of_steps() == 1);
    CHECK(hist.steps[0].fate == DecisionFate::interrupted);
    CHECK(hist.steps[0].actions[1].outcome == ActionOutcome::skipped);
    sup.reset();
    h.runner.run_for(1min);
    CHECK(h.agent.acted == std::vector<std::string>{"first"});
    CHECK(weak.expired());
}

TEST_CASE("supervisor: an action still running past the shutdown_timeout never starts another after run() returned") {
    Harness h;
    h.agent.decide_fn = [](int, const Context&) { return Decision::act({"first", "second"}); };
    h.agent.act_fn = [](const std::string&) -> asio::awaitable<ActionResult> {
        co_await uncancellable_sleep(1min);  // longer than the shutdown_timeout (5 s)
        co_return ActionResult::ok();
    };
    auto sup = h.make(fast_settings());
    const auto weak = weak_state(*sup);
    h.start(*sup);
    h.at(500ms, [&] { sup->stop(); });
    REQUIRE(h.finish());
    const auto& hist = *h.history;
    CHECK(hist.status == AgentStatus::stopped);
    REQUIRE(hist.number_of_steps() == 1);
    CHECK(hist.steps[0].actions[0].outcome == ActionOutcome::interrupted);
    CHECK(hist.steps[0].actions[1].outcome == ActionOutcome::skipped);
    sup.reset();
    h.runner.run_for(1h);  // the first action returns long after run() did
    CHECK(h.agent.acted == std::vector<std::string>{"first"});
    CHECK(weak.expired());
}
TEST_CASE("supervisor: destroying the io_context during a run frees the state") {
    std::weak_ptr<taskmon::detail::SupervisorState<int, std::string, std::string, ManualClock>> weak;
    {
        Harness h;
        auto settings = fast_settings();
        settings.max_steps = 100000;
        auto sup = h.make(settings);
        weak = weak_state(*sup);
        h.start(*sup);
        h.runner.run_for(10s);
        REQUIRE_FALSE(h.history.has_value());
        sup.reset();
    }  // the io_context is destroyed with the run suspended
    CHECK(weak.expired());
}

TEST_CASE("supervisor: destroying the io_context while shedding restores the io_semaphore count") {
    const std::size_t before = taskmon::get_io_semaphore_stats().capacity;
    std::size_t during = 0;
    {
        Harness h;
        auto settings = fast_settings();
        settings.shed_io_semaphore_count = 1;
        settings.max_steps = 100000;
        auto sup = h.make(settings, {},
                          [] { return std::optional<taskmon::CpuUsage>{taskmon::CpuUsage{99.9, 50.0}}; });
        h.start(*sup);
        h.runner.run_for(5s);
        REQUIRE_FALSE(h.history.has_value());
        during = taskmon::get_io_semaphore_stats().capacity;
        sup.reset();
    }  // the io_context is destroyed with the run suspended, shedding
    CHECK(during == 1);
    CHECK(taskmon::get_io_semaphore_stats().capacity == before);
    taskmon::set_io_semaphore_count(before);  // leave the process-wide semaphore as the other tests expect
}

TEST_CASE("supervisor: destroying the io_context while run() waits for close() frees the state") {
    std::weak_ptr<taskmon::detail::SupervisorState<int, std::string, std::string, ManualClock>> weak;
    {
        Harness h;
        h.agent.act_fn = [](const std::string&) -> asio::awaitable<ActionResult> {
            co_await uncancellable_sleep(1min);  // outlives the close() that stop() starts
            co_return ActionResult::ok();
        };
        auto sup = h.make(fast_settings());
        weak = weak_state(*sup);
        h.start(*sup);
        h.at(500ms, [&] { sup->stop(); });
        h.runner.run_for(2s);
        REQUIRE_FALSE(h.history.has_value());
        sup.reset();
    }  // the io_context is destroyed while run() waits in the TaskMonitor's close()
    CHECK(weak.expired());
}

TEST_CASE("supervisor: a TimeoutError thrown by act() itself is an unknown effect (interrupted), not a timeout") {
    Harness h;
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

TEST_CASE("supervisor: a critical component under a temporary policy fails the run at its first failure") {
    Harness h;
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
    REQUIRE(count(hist, HistoryEventKind::component_gave_up) == 1);
    CHECK(hist.events_of(HistoryEventKind::component_gave_up)[0].at < 1s);  // noticed at once, not polled
    CHECK(h.agent.perceive_calls == 3);
}

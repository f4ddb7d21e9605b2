// Supervisor tests: pause, resume and stop, other threads, and the end of a run and of its owner.
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
#include <asio/executor_work_guard.hpp>
#include <asio/io_context.hpp>
#include <asio/this_coro.hpp>
#include <asio/use_awaitable.hpp>
#include <spdlog/sinks/null_sink.h>

#include <atomic>
#include <functional>
#include <thread>

#include <chrono>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

using namespace taskmon_test;  // Sup, History, Agent, SupervisorHarness, fast_settings, the common taskmon names ...

TEST_CASE("supervisor: stop() ends the run as stopped and interrupts the action in flight") {
    SupervisorHarness h;
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
    CHECK(count_events(hist, HistoryEventKind::action_interrupted) == 1);
    CHECK(count_events(hist, HistoryEventKind::component_failed) == 0);  // closing is not a failure
    CHECK(h.time.elapsed() < 11s);
}

TEST_CASE("supervisor: stop() before run() ends the run at once as stopped") {
    SupervisorHarness h;
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
    SupervisorHarness h;
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
    SupervisorHarness h;
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

TEST_CASE("supervisor: pause takes effect after the step in flight and a long pause spends no budget") {
    SupervisorHarness h;
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
    CHECK(count_events(hist, HistoryEventKind::component_failed) == 0);
    // Guidance given while paused reaches the first decide() after resume.
    REQUIRE(h.agent.contexts.size() == 4);
    CHECK(h.agent.contexts[1].guidance == std::vector<std::string>{"mind the cat"});
    CHECK(h.agent.contexts[2].guidance.empty());
    CHECK(count_events(hist, HistoryEventKind::guidance_delivered) == 1);
    // No capture while paused: perception captured only around the running stretches.
    CHECK(h.agent.perceive_calls < 200);
}

TEST_CASE("supervisor: cancelling the coroutine awaiting run() stops the run and still returns the history") {
    SupervisorHarness h;
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
    CHECK(count_events(*h.history, HistoryEventKind::component_failed) == 0);
}

TEST_CASE("supervisor: after stop(), an action that ignores cancellation finishes but no later action starts") {
    SupervisorHarness h;
    h.agent.decide_fn = [](int, const Context&) { return Decision::act({"first", "second"}); };
    h.agent.act_fn = [](const std::string&) -> asio::awaitable<ActionResult> {
        co_await sleep_ignoring_cancellation(1s);  // shorter than the shutdown_timeout (5 s)
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
    SupervisorHarness h;
    h.agent.decide_fn = [](int, const Context&) { return Decision::act({"first", "second"}); };
    h.agent.act_fn = [](const std::string&) -> asio::awaitable<ActionResult> {
        co_await sleep_ignoring_cancellation(1min);  // longer than the shutdown_timeout (5 s)
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

TEST_CASE("supervisor: status() and control calls work from another thread") {
    SupervisorHarness h;
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
                settings,
                {},
                null_logger()};
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

TEST_CASE("supervisor: destroying it right after a control call is safe: the posted call holds the state") {
    SupervisorHarness h;
    std::vector<taskmon::StatusTransition> transitions;
    auto sup = h.make(fast_settings(),
                      {.on_status_change = [&](const taskmon::StatusTransition& t) { transitions.push_back(t); }});
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
    SupervisorHarness h;
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
    CHECK(count_events(hist, HistoryEventKind::component_failed) == 0);
    CHECK(run_end_called);
    CHECK(h.time.elapsed() < 11s);
}

TEST_CASE("supervisor: the state is destroyed once run() returned and the Supervisor is gone") {
    SupervisorHarness h;
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

TEST_CASE("supervisor: destroying the io_context during a run frees the state") {
    std::weak_ptr<taskmon::detail::SupervisorRuntime> weak;
    {
        SupervisorHarness h;
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

TEST_CASE("supervisor: destroying the io_context while run() waits for close() frees the state") {
    std::weak_ptr<taskmon::detail::SupervisorRuntime> weak;
    {
        SupervisorHarness h;
        h.agent.act_fn = [](const std::string&) -> asio::awaitable<ActionResult> {
            co_await sleep_ignoring_cancellation(1min);  // outlives the close() that stop() starts
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

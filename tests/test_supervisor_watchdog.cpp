// Supervisor tests: the perception watchdog: stalls, recovery and the startup grace.
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
#include <cstddef>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

using namespace taskmon_test;  // Sup, History, Agent, SupervisorHarness, fast_settings, the common taskmon names ...

TEST_CASE("supervisor: a perception stall restarts perception, holds actuation and recovers") {
    SupervisorHarness h;
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
    CHECK(count_events(hist, HistoryEventKind::watchdog_stall) == 1);
    CHECK(count_events(hist, HistoryEventKind::watchdog_recovered) == 1);
    CHECK(hist.counters.restarts.at("perception") == 1);
    CHECK(count_events(hist, HistoryEventKind::component_failed) == 0);  // a restart we asked for is not a failure
    const auto stall = hist.events_of(HistoryEventKind::watchdog_stall)[0].at;
    const auto recovered = hist.events_of(HistoryEventKind::watchdog_recovered)[0].at;
    CHECK(recovered > stall);
    CHECK(recovered - stall < 1s);
    CHECK(h.time.elapsed() < 1min);
}

namespace {

/// A run whose perception publishes once and then hangs: the watchdog stalls and restarts it until the third stall
/// in a row fails the run. Returns the settings it ran with.
AgentSettings run_until_three_stalls(SupervisorHarness& h) {
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
    return settings;
}

}  // namespace

TEST_CASE("supervisor: with capture_interval 0, one capture per step, and a slow step is no perception stall") {
    SupervisorHarness h;
    int captures = 0;
    h.agent.perceive_fn = [&captures](int call) -> asio::awaitable<int> {
        ++captures;
        co_await sleep_for(10ms);
        co_return call;
    };
    h.agent.decide_fn = [](int, const Context& ctx) {
        return ctx.step == 5 ? Decision::done("ok") : Decision::act({"x"});
    };
    h.agent.act_fn = [](const std::string&) -> asio::awaitable<ActionResult> {
        co_await sleep_for(1min);  // fifteen times perception_timeout: perception waits for the step, on purpose
        co_return ActionResult::ok();
    };
    auto settings = fast_settings();
    settings.act_timeout = 2min;
    settings.max_decision_age = 2min;
    settings.capture_interval = 0ms;
    settings.shed_capture_interval = 0ms;
    auto sup = h.make(settings);
    h.start(*sup);
    REQUIRE(h.finish());
    const auto& hist = *h.history;
    CHECK(hist.status == AgentStatus::completed);
    CHECK(hist.counters.watchdog_stalls == 0);
    CHECK(count_events(hist, HistoryEventKind::watchdog_stall) == 0);
    CHECK(hist.counters.observations_published == 5);  // one per step: none captured during a step
    CHECK(captures == 5);
    CHECK(hist.counters.observations_dropped == 0);
}

TEST_CASE("supervisor: repeated stalls fail the run after max_consecutive_stalls") {
    SupervisorHarness h;
    run_until_three_stalls(h);
    const auto& hist = *h.history;
    CHECK(hist.status == AgentStatus::failed);
    CHECK_THAT(hist.reason, Catch::Matchers::Contains("perception stalled 3 times in a row"));
    CHECK(hist.counters.watchdog_stalls == 3);
    CHECK(hist.counters.restarts.at("perception") == 2);
}

TEST_CASE("supervisor: stall and restart events carry their numbers in typed fields, not only in the message") {
    SupervisorHarness h;
    const auto settings = run_until_three_stalls(h);
    const auto& hist = *h.history;
    const auto stalls = hist.events_of(HistoryEventKind::watchdog_stall);
    REQUIRE(stalls.size() == 3);
    for (std::size_t i = 0; i < stalls.size(); ++i) {
        CAPTURE(i, stalls[i].message);
        CHECK(stalls[i].consecutive_stalls == i + 1);
        CHECK(stalls[i].max_consecutive_stalls == 3);
        REQUIRE(stalls[i].silent_for.has_value());
        CHECK(*stalls[i].silent_for >= settings.perception_timeout);
        CHECK_THAT(stalls[i].message, Catch::Matchers::Contains("stall=" + std::to_string(i + 1) + "/3"));
        CHECK_FALSE(stalls[i].instance);
    }
    const auto restarts = hist.events_of(HistoryEventKind::component_restarted);
    REQUIRE(restarts.size() == 2);
    for (std::size_t i = 0; i < restarts.size(); ++i) {
        CAPTURE(i);
        CHECK(restarts[i].component == "perception");
        CHECK(restarts[i].instance == i + 2);  // instance 1 started with the run
        CHECK(restarts[i].message == "instance=" + std::to_string(i + 2));
        CHECK_FALSE(restarts[i].consecutive_stalls);
        CHECK_FALSE(restarts[i].silent_for);
    }
    for (const auto& e : hist.events_of(HistoryEventKind::status_changed)) {
        CHECK_FALSE(e.instance);
        CHECK_FALSE(e.consecutive_stalls);
        CHECK_FALSE(e.max_consecutive_stalls);
        CHECK_FALSE(e.silent_for);
    }
}

TEST_CASE("supervisor: the watchdog grants a startup grace and is suspended while paused") {
    SupervisorHarness h;
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

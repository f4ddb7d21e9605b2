// Test helpers for every test that runs a Supervisor in virtual time (test_supervisor_*.cpp, test_health.cpp,
// test_history_json.cpp): a scripted agent whose perceive/decide/act are per-test functions and which records
// its calls, fast settings, and a harness that starts one run and drives virtual time until it returned.
#pragma once

#include <taskmon/agent/supervisor.hpp>
#include <taskmon/testing/manual_clock.hpp>
#include <taskmon/testing/supervisor_faults.hpp>

#include "monitor_harness.hpp"  // sleep_for, sleep_ignoring_cancellation, null_logger, ThrowingSink

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/io_context.hpp>
#include <asio/use_awaitable.hpp>

#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace taskmon_test {

// The names every Supervisor test uses, for `using namespace taskmon_test;`.
using taskmon::ActionOutcome;
using taskmon::ActionResult;
using taskmon::AgentSettings;
using taskmon::AgentStatus;
using taskmon::DecisionFate;
using taskmon::HistoryEventKind;
using taskmon::StepOutcome;

using Sup = taskmon::Supervisor<int, std::string, std::string, taskmon::testing::ManualClock>;
using History = Sup::HistoryType;
using Decision = Sup::DecisionType;
using Context = Sup::Context;

/// Fast settings for tests: small intervals, quick restarts, long enough limits.
inline taskmon::AgentSettings fast_settings() {
    using namespace std::chrono_literals;
    taskmon::AgentSettings s;
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

/// A CPU source that always reads a light load (10 % of the process, 5 % of the system).
inline taskmon::CpuSource light_cpu() {
    return [] { return std::optional<taskmon::CpuUsage>{taskmon::CpuUsage{10.0, 5.0}}; };
}

/// A CPU source that never has a reading (load shedding never starts).
inline taskmon::CpuSource no_cpu() {
    return [] { return std::optional<taskmon::CpuUsage>{}; };
}

/// A scripted agent: perceive returns 1, 2, 3 ... after 10 ms; decide takes decide_time (20 ms) and acts
/// "move-<step>"; act takes 50 ms and succeeds. Each test replaces what it needs. Records every call.
struct Agent {
    Duration decide_time = std::chrono::milliseconds{20};
    std::function<asio::awaitable<int>(int call)> perceive_fn = [](int call) -> asio::awaitable<int> {
        co_await sleep_for(std::chrono::milliseconds{10});
        co_return call;
    };
    std::function<Decision(int observation, const Context&)> decide_fn = [](int, const Context& ctx) {
        return Decision::act({"move-" + std::to_string(ctx.step)});
    };
    std::function<asio::awaitable<taskmon::ActionResult>(const std::string&)> act_fn =
        [](const std::string&) -> asio::awaitable<taskmon::ActionResult> {
        co_await sleep_for(std::chrono::milliseconds{50});
        co_return taskmon::ActionResult::ok();
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
                    co_await sleep_for(decide_time);
                    co_return decide_fn(obs, ctx);
                },
                .act =
                    [this](const std::string& action) {
                        acted.push_back(action);
                        return act_fn(action);
                    }};
    }
};

/// Virtual time, an io_context, the scripted agent and one Supervisor run.
struct SupervisorHarness {
    taskmon::testing::ManualTime time;
    asio::io_context io;
    taskmon::testing::VirtualTimeRunner runner{io, time};
    Agent agent;
    std::optional<History> history;

    /// A Supervisor over `agent`; the CPU source reads a light load and the logger drops everything unless given.
    std::unique_ptr<Sup> make(taskmon::AgentSettings settings, Sup::Hooks hooks = {}, taskmon::CpuSource cpu = {},
                              std::shared_ptr<spdlog::logger> logger = {}) {
        if (!cpu) cpu = light_cpu();
        if (!logger) logger = null_logger("supervisor-test");
        return std::make_unique<Sup>(io.get_executor(), agent.functions(), std::move(settings), std::move(hooks),
                                     std::move(logger), std::move(cpu));
    }

    /// Starts sup.run(); its History lands in `history`.
    void start(Sup& sup) {
        asio::co_spawn(
            io, [this, &sup]() -> asio::awaitable<void> { history = co_await sup.run(); }, asio::detached);
    }

    /// Drives virtual time until run() returned (or `limit` of virtual time passed).
    bool finish(Duration limit = std::chrono::hours{24}) {
        return runner.run_until([this] { return history.has_value(); }, limit);
    }

    /// Calls `f` at virtual time `when` from now (a control call: pause, resume, stop ...).
    void at(Duration when, std::function<void()> f) {
        asio::co_spawn(
            io,
            [when, f = std::move(f)]() -> asio::awaitable<void> {
                co_await sleep_for(when);
                f();
            },
            asio::detached);
    }
};

/// How many events of `kind` the history holds.
inline std::size_t count_events(const History& h, taskmon::HistoryEventKind kind) { return h.events_of(kind).size(); }

/// The state of `sup`, weakly (to check that it is destroyed).
template <typename S>
auto weak_state(S& sup) {
    return taskmon::detail::SupervisorAccess::state(sup).weak_from_this();
}

}  // namespace taskmon_test

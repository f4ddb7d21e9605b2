// Tests for taskmon/ops/run_view.hpp: a RunView follows a Supervisor run through its wrapped hooks, driven by
// hand here (a live run on the health server's page is in tests/test_health_server.cpp).
#include <taskmon/agent/supervisor.hpp>
#include <taskmon/ops/run_view.hpp>

#include "taskmon_catch.hpp"

#include <asio/awaitable.hpp>

#include <string>
#include <utility>
#include <vector>

namespace {

using Robot = taskmon::Supervisor<int, std::string>;

}  // namespace

TEST_CASE("RunView: waiting for input with its interrupt id, shedding, each change to the sink") {
    taskmon::RunView view{"robot"};
    std::vector<std::string> published;
    view.set_sink([&](std::string json) { published.push_back(std::move(json)); });
    int user_calls = 0;
    auto hooks = view.wrap(Robot::Hooks{.on_status_change = [&](const taskmon::StatusTransition&) { ++user_calls; }});
    hooks.on_status_change({taskmon::AgentStatus::pending, taskmon::AgentStatus::running, "run() called"});
    hooks.on_step_start(3);
    hooks.on_status_change({taskmon::AgentStatus::running, taskmon::AgentStatus::waiting_for_input,
                            "decide() asked for input: interrupt=interrupt-3 payload=\"which way?\"", "interrupt-3"});
    CHECK(user_calls == 2);  // the user's hook still runs, after the view
    auto state = view.state();
    CHECK(state.status == taskmon::AgentStatus::waiting_for_input);
    CHECK(state.waiting_for_input);
    CHECK(state.interrupt_id == "interrupt-3");
    CHECK(state.step == 3);
    REQUIRE(published.size() == 3);
    CHECK(published.back() == R"({"type":"run_state","run":{"name":"robot","status":"waiting_for_input","step":3,)"
                              R"("steps_finished":0,"paused":false,"shedding":false,"waiting_for_input":true,)"
                              R"("interrupt_id":"interrupt-3","reason":"decide() asked for input: )"
                              R"(interrupt=interrupt-3 payload=\"which way?\""}})");
    hooks.on_status_change({taskmon::AgentStatus::waiting_for_input, taskmon::AgentStatus::running, "answered"});
    CHECK(view.state().interrupt_id.empty());

    // Load shedding as the Supervisor reports it, published before the user's hook runs.
    int user_shedding_calls = 0;
    auto shedding_hooks = view.wrap(Robot::Hooks{.on_shedding_change = [&](const taskmon::SheddingChange& change) {
        ++user_shedding_calls;
        CHECK(published.back().find(change.shedding ? R"("shedding":true)" : R"("shedding":false)") !=
              std::string::npos);
    }});
    shedding_hooks.on_shedding_change({.shedding = true, .sampled = true, .cpu = taskmon::CpuUsage{97.0, 12.0}});
    CHECK(view.state().shedding);
    CHECK(published.size() == 5);  // running, shedding: one event each
    CHECK(user_shedding_calls == 1);
    CHECK(taskmon::run_views_json({view}).starts_with(R"([{"name":"robot","status":"running","step":3,)"));
}

// Tests for taskmon/ops/agent_metrics.hpp: the counts taken through wrapped Supervisor hooks.
#include <taskmon/agent/supervisor.hpp>
#include <taskmon/ops/agent_metrics.hpp>

#include "taskmon_catch.hpp"

#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

using taskmon::MetricFamily;

namespace {

using Hooks = taskmon::SupervisorHooks<int, std::string>;
using Step = taskmon::StepRecord<int, std::string>;

double value_of(const std::vector<MetricFamily>& families, const std::string& family, const std::string& label,
                const std::string& value) {
    for (const auto& f : families) {
        if (f.name != family) continue;
        for (const auto& s : f.samples) {
            for (const auto& l : s.labels) {
                if (l.first == label && l.second == value) return s.value;
            }
        }
    }
    FAIL("no sample " << family << "{" << label << "=\"" << value << "\"}");
    return -1;
}

Step step(taskmon::StepOutcome outcome, std::optional<taskmon::DecisionFate> fate,
          std::vector<taskmon::ActionOutcome> actions) {
    Step s;
    s.outcome = outcome;
    s.fate = fate;
    for (const auto a : actions) s.actions.push_back({1, a, {}, {}, {}});
    return s;
}

}  // namespace

TEST_CASE("AgentMetrics counts steps, decisions and actions and keeps the user's hooks") {
    taskmon::AgentMetrics metrics{{{"agent", "robot"}}};
    int user_steps = 0;
    std::vector<taskmon::AgentStatus> user_statuses;
    Hooks hooks = metrics.wrap(
        Hooks{.on_step_end = [&](const Step&) { ++user_steps; },
              .on_status_change = [&](const taskmon::StatusTransition& t) { user_statuses.push_back(t.to); }});

    using taskmon::ActionOutcome;
    using taskmon::AgentStatus;
    using taskmon::DecisionFate;
    using taskmon::StepOutcome;
    hooks.on_status_change({AgentStatus::pending, AgentStatus::running, "run() called"});
    hooks.on_step_end(
        step(StepOutcome::succeeded, DecisionFate::executed, {ActionOutcome::succeeded, ActionOutcome::succeeded}));
    hooks.on_step_end(step(StepOutcome::failed, DecisionFate::failed, {ActionOutcome::failed, ActionOutcome::skipped}));
    hooks.on_step_end(step(StepOutcome::failed, std::nullopt, {}));  // decide() failed: no decision
    hooks.on_status_change({AgentStatus::running, AgentStatus::paused, "pause()"});

    CHECK(user_steps == 3);
    CHECK(user_statuses == std::vector<AgentStatus>{AgentStatus::running, AgentStatus::paused});
    const auto m = metrics.collect();
    CHECK(value_of(m, "taskmon_agent_steps_total", "outcome", "succeeded") == 1);
    CHECK(value_of(m, "taskmon_agent_steps_total", "outcome", "failed") == 2);
    CHECK(value_of(m, "taskmon_agent_decisions_total", "fate", "executed") == 1);
    CHECK(value_of(m, "taskmon_agent_decisions_total", "fate", "failed") == 1);
    CHECK(value_of(m, "taskmon_agent_decisions_total", "fate", "expired") == 0);
    CHECK(value_of(m, "taskmon_agent_actions_total", "outcome", "succeeded") == 2);
    CHECK(value_of(m, "taskmon_agent_actions_total", "outcome", "failed") == 1);
    CHECK(value_of(m, "taskmon_agent_actions_total", "outcome", "skipped") == 1);
    CHECK(value_of(m, "taskmon_agent_actions_total", "outcome", "interrupted") == 0);
    CHECK(value_of(m, "taskmon_agent_status", "status", "paused") == 1);
    CHECK(value_of(m, "taskmon_agent_status", "status", "running") == 0);
    CHECK(value_of(m, "taskmon_agent_status", "agent", "robot") >= 0);  // the constant label is on every sample
    const auto text = taskmon::render_text_format(m);
    CHECK(text.find("taskmon_agent_steps_total{agent=\"robot\",outcome=\"failed\"} 2\n") != std::string::npos);
}

TEST_CASE("AgentMetrics shows a run waiting for an operator, and no longer once it was answered") {
    taskmon::AgentMetrics metrics{{{"agent", "robot"}}};
    Hooks hooks = metrics.wrap(Hooks{});
    using taskmon::AgentStatus;
    hooks.on_status_change({AgentStatus::pending, AgentStatus::running, "run() called"});
    hooks.on_status_change({AgentStatus::running, AgentStatus::waiting_for_input, "interrupt interrupt-2"});
    auto m = metrics.collect();
    CHECK(value_of(m, "taskmon_agent_status", "status", "waiting_for_input") == 1);
    CHECK(value_of(m, "taskmon_agent_status", "status", "running") == 0);
    CHECK(taskmon::render_text_format(m).find(
              "taskmon_agent_status{agent=\"robot\",status=\"waiting_for_input\"} 1\n") != std::string::npos);
    hooks.on_status_change({AgentStatus::waiting_for_input, AgentStatus::running, "resume_with interrupt-2"});
    m = metrics.collect();
    CHECK(value_of(m, "taskmon_agent_status", "status", "waiting_for_input") == 0);
    CHECK(value_of(m, "taskmon_agent_status", "status", "running") == 1);
}

TEST_CASE("AgentMetrics: empty user hooks are fine and reserved constant labels are rejected") {
    taskmon::AgentMetrics metrics;
    Hooks hooks = metrics.wrap(Hooks{});
    REQUIRE(hooks.on_step_end);
    hooks.on_step_end(step(taskmon::StepOutcome::succeeded, taskmon::DecisionFate::executed, {}));
    CHECK(value_of(metrics.collect(), "taskmon_agent_steps_total", "outcome", "succeeded") == 1);
    CHECK_FALSE(hooks.on_step_start);  // hooks it does not count stay as given
    CHECK_THROWS_AS(taskmon::AgentMetrics(std::vector<taskmon::MetricLabel>{{"outcome", "x"}}), std::invalid_argument);
}

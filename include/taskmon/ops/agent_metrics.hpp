// taskmon — coroutine supervision for standalone Asio.
// SPDX-License-Identifier: MIT
//
// AgentMetrics: step, decision and action counters and the status of a Supervisor run, counted live from the
// Supervisor's hooks (the same outcomes History::counters holds once run() returned). Wrap the hooks before
// constructing the Supervisor; the components' metrics come from a MonitorMetrics on the Supervisor itself.
//
//   taskmon::AgentMetrics agent_metrics;
//   Robot robot{io.get_executor(), agent, settings, agent_metrics.wrap(std::move(hooks))};
//   taskmon::MonitorMetrics component_metrics{robot};
//   auto families = agent_metrics.collect();
//   taskmon::merge_families(families, component_metrics.collect());
//
// Families:
//   taskmon_agent_steps_total{outcome}      counter  finalized steps: succeeded, failed
//   taskmon_agent_decisions_total{fate}     counter  decisions: executed, failed, interrupted, expired
//   taskmon_agent_actions_total{outcome}    counter  actions: succeeded, failed, skipped, interrupted
//   taskmon_agent_status{status}            gauge    1 for the run's current status, 0 for the others
#pragma once

#include <taskmon/agent/agent_status.hpp>
#include <taskmon/agent/history.hpp>
#include <taskmon/ops/metric_family.hpp>

#include <array>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace taskmon {

/// Counts what a Supervisor run does, through its hooks. Cheap to copy (copies share the counts); the hooks
/// returned by wrap() share them too, so they may outlive this object.
/// Thread safety: the hooks run on the Supervisor's strand; collect() may be called from any thread.
class AgentMetrics {
public:
    /// `const_labels` are added to every sample (e.g. {{"agent", "robot"}}). Throws std::invalid_argument for
    /// an invalid or reserved (outcome, fate, status) label name.
    explicit AgentMetrics(std::vector<MetricLabel> const_labels = {})
        : const_labels_{validated(std::move(const_labels))}, counts_{std::make_shared<Counts>()} {}

    /// Returns `hooks` with on_step_end and on_status_change extended: the counts are updated first, then the
    /// given hook (if any) is called. Hooks of several Supervisors may share one AgentMetrics (their counts
    /// add up; the status is the last one reported).
    template <typename Hooks>
    [[nodiscard]] Hooks wrap(Hooks hooks) const {
        hooks.on_step_end = [counts = counts_, user = std::move(hooks.on_step_end)](const auto& step) {
            counts->on_step(step);
            if (user) user(step);
        };
        hooks.on_status_change = [counts = counts_,
                                  user = std::move(hooks.on_status_change)](const StatusTransition& t) {
            counts->on_status(t.to);
            if (user) user(t);
        };
        return hooks;
    }

    /// A snapshot of the four families.
    [[nodiscard]] std::vector<MetricFamily> collect() const {
        Counts c;
        {
            std::lock_guard lock{counts_->mutex};
            c.steps = counts_->steps;
            c.decisions = counts_->decisions;
            c.actions = counts_->actions;
            c.status = counts_->status;
        }
        MetricFamily steps{
            "taskmon_agent_steps_total", "Finalized steps of the agent, by outcome.", MetricType::counter, {}};
        for (std::size_t i = 0; i < c.steps.size(); ++i) {
            steps.samples.push_back(sample("outcome", to_string(static_cast<StepOutcome>(i)), c.steps[i]));
        }
        MetricFamily decisions{
            "taskmon_agent_decisions_total", "Decisions of the agent, by fate.", MetricType::counter, {}};
        for (std::size_t i = 0; i < c.decisions.size(); ++i) {
            decisions.samples.push_back(sample("fate", to_string(static_cast<DecisionFate>(i)), c.decisions[i]));
        }
        MetricFamily actions{
            "taskmon_agent_actions_total", "Actions of the agent, by outcome.", MetricType::counter, {}};
        for (std::size_t i = 0; i < c.actions.size(); ++i) {
            actions.samples.push_back(sample("outcome", to_string(static_cast<ActionOutcome>(i)), c.actions[i]));
        }
        MetricFamily status{
            "taskmon_agent_status", "1 for the agent run's current status, 0 for the others.", MetricType::gauge, {}};
        for (std::size_t i = 0; i < agent_status_count; ++i) {
            const auto s = static_cast<AgentStatus>(i);
            status.samples.push_back(sample("status", to_string(s), s == c.status ? 1 : 0));
        }
        return {std::move(steps), std::move(decisions), std::move(actions), std::move(status)};
    }

private:
    struct Counts {
        std::mutex mutex;
        std::array<std::uint64_t, 2> steps{};      // by StepOutcome
        std::array<std::uint64_t, 4> decisions{};  // by DecisionFate
        std::array<std::uint64_t, 4> actions{};    // by ActionOutcome
        AgentStatus status = AgentStatus::pending;

        template <typename Step>
        void on_step(const Step& step) {
            std::lock_guard lock{mutex};
            bump(steps, static_cast<std::size_t>(step.outcome));
            if (step.fate) bump(decisions, static_cast<std::size_t>(*step.fate));
            for (const auto& action : step.actions) bump(actions, static_cast<std::size_t>(action.outcome));
        }
        void on_status(AgentStatus to) {
            std::lock_guard lock{mutex};
            status = to;
        }
        template <std::size_t N>
        static void bump(std::array<std::uint64_t, N>& counters, std::size_t index) {
            if (index < N) ++counters[index];  // an outcome added later is not counted until listed here
        }
    };

    MetricSample sample(const char* label, std::string_view value, double n) const {
        MetricSample out{const_labels_, n};
        out.labels.emplace_back(label, std::string{value});
        return out;
    }

    static std::vector<MetricLabel> validated(std::vector<MetricLabel> labels) {
        for (const auto& [name, value] : labels) {
            if (!is_valid_label_name(name) || name == "outcome" || name == "fate" || name == "status") {
                throw std::invalid_argument("AgentMetrics: invalid or reserved constant label name '" + name + "'");
            }
        }
        return labels;
    }

    std::vector<MetricLabel> const_labels_;
    std::shared_ptr<Counts> counts_;
};

}  // namespace taskmon

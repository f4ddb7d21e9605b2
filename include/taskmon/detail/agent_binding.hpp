// taskmon — coroutine supervision for standalone Asio.
// SPDX-License-Identifier: MIT
//
// Internal: TypedAgentBinding, the typed half of a Supervisor (see detail/supervisor_runtime.hpp): the agent's
// functions, the typed hooks, the History and its StepLedger. This is all of a Supervisor that is compiled per
// agent type: the frames of the perceive() and decide() calls, run()'s, and the step records.
#pragma once

#include <taskmon/detail/config.hpp>

#include <chrono>
#include <cstddef>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include <asio/awaitable.hpp>

#include <taskmon/agent/history.hpp>
#include <taskmon/agent/supervisor.hpp>
#include <taskmon/detail/call_deadline.hpp>
#include <taskmon/detail/step_ledger.hpp>
#include <taskmon/detail/supervisor_runtime.hpp>

namespace taskmon::detail {

/// AgentBinding for an agent of Observation, Action and Result.
///
/// Invariants: touched only on the runtime's strand until the run is sealed; `sealed_` is then final and is
/// read by run()'s awaiter alone.
template <typename Observation, typename Action, typename Result>
class TypedAgentBinding final : public AgentBinding {
public:
    using DecisionType = Decision<Action, Result>;
    using Context = DecisionContext<Action, Result>;
    using Functions = AgentFunctions<Observation, Action, Result>;
    using Hooks = SupervisorHooks<Action, Result>;
    using HistoryType = History<Action, Result>;
    using Step = StepRecord<Action, Result>;

    /// Takes the typed hooks out of `hooks` (run_hooks() takes the rest). Throws std::invalid_argument for
    /// invalid `settings` (checked first) or a missing agent function.
    TypedAgentBinding(Functions agent, const AgentSettings& settings, Hooks& hooks)
        : agent_(std::move(agent)),
          on_step_end_(std::move(hooks.on_step_end)),
          on_run_end_(std::move(hooks.on_run_end)),
          ledger_(history_, limits(settings)) {
        if (!agent_.perceive) throw std::invalid_argument("AgentFunctions.perceive is empty");
        if (!agent_.decide) throw std::invalid_argument("AgentFunctions.decide is empty");
        if (!agent_.act) throw std::invalid_argument("AgentFunctions.act is empty");
    }

    /// The runtime's share of `hooks` (the ones that do not involve the agent's types).
    static RunHooks run_hooks(Hooks& hooks) {
        return RunHooks{std::move(hooks.on_run_start), std::move(hooks.on_step_start),
                        std::move(hooks.on_status_change)};
    }

    /// Awaits the runtime's run (SupervisorRuntime::run()), then returns the History it sealed, on the
    /// awaiting coroutine's executor.
    static asio::awaitable<HistoryType> run(asio::awaitable<void> runtime_run,
                                            std::shared_ptr<TypedAgentBinding> self) {
        co_await std::move(runtime_run);
        if (!self->sealed_) throw std::logic_error("Supervisor: the run ended without sealing its history");
        co_return std::move(*self->sealed_);
    }

    std::vector<HistoryEvent>& events() noexcept override { return history_.events; }
    HistoryCounters& counters() noexcept override { return history_.counters; }

    std::shared_ptr<StepInFlight> make_step() override { return std::make_shared<TypedStep>(); }

    // perceive() and decide() are the frames of their bounded calls (await_bounded): no coroutine of their own.

    asio::awaitable<std::shared_ptr<const void>> perceive(CallDeadlineEnd& deadline, const std::string& what) override {
        return await_bounded<std::shared_ptr<const void>>(
            deadline, what, [this] { return valid(agent_.perceive(), "perceive()"); },
            [](Observation&& captured) -> std::shared_ptr<const void> {
                return std::make_shared<const Observation>(std::move(captured));
            });
    }

    asio::awaitable<DecisionShape> decide(StepInFlight& step, const std::shared_ptr<const void>& observation,
                                          DecideInput& input, CallDeadlineEnd& deadline,
                                          const std::string& what) override {
        auto& typed = static_cast<TypedStep&>(step);
        Context& context = typed.context;  // in the step: it outlives the call
        context.step = step.progress.number;
        context.observation_sequence = step.progress.observation_sequence;
        context.observation_age = step.progress.observation_age;
        context.guidance = std::move(input.guidance);
        context.consecutive_failures = ledger_.consecutive_failures();
        context.shedding = input.shedding;
        if (!history_.steps.empty()) context.previous_step = history_.steps.back();
        return await_bounded<DecisionShape>(
            deadline, what,
            [this, &typed, observation] {
                return valid(agent_.decide(*static_cast<const Observation*>(observation.get()), typed.context),
                             "decide()");
            },
            [&typed](DecisionType&& decision) {
                typed.decision = std::move(decision);
                return DecisionShape{typed.decision->is_done(), typed.decision->actions.size()};
            });
    }

    asio::awaitable<ActionResult> act(StepInFlight& step, std::size_t index) override {
        return valid(agent_.act(static_cast<TypedStep&>(step).decision->actions[index]), "act()");
    }

    /// Copies the decision's result and actions: an act() cut off by the end of the run may still read its
    /// action.
    StepVerdict record(StepInFlight& step, bool judge) override {
        const auto& typed = static_cast<const TypedStep&>(step);
        auto& p = step.progress;
        Step rec;
        rec.number = p.number;
        rec.observation_sequence = p.observation_sequence;
        rec.observation_age = p.observation_age;
        rec.outcome = p.outcome;
        rec.fate = p.fate;
        rec.done = p.done;
        rec.error = std::move(p.error);
        rec.started_at = p.started_at;
        rec.decided_at = p.decided_at;
        rec.finished_at = p.finished_at;
        if (p.decided_at) {  // the decision was accepted: typed.decision holds it
            rec.result = typed.decision->result;
            rec.actions.reserve(p.actions.size());
            for (std::size_t i = 0; i < p.actions.size(); ++i) {
                auto& a = p.actions[i];
                rec.actions.push_back(ActionRecord<Action>{typed.decision->actions[i], a.outcome, std::move(a.result),
                                                           a.started_at, a.finished_at});
            }
        }
        return ledger_.record(std::move(rec), judge);
    }

    void on_step_end() override {
        if (on_step_end_) on_step_end_(ledger_.last());
    }

    void end_run(AgentStatus status, std::string reason, std::chrono::system_clock::time_point started,
                 Offset ended_at) override {
        history_.status = status;
        history_.reason = std::move(reason);
        history_.started_wall_time = started;
        history_.ended_at = ended_at;
    }

    void on_run_end() override {
        if (on_run_end_) on_run_end_(history_);
    }

    void seal() override { sealed_ = history_; }

private:
    /// A step in flight with decide()'s context and its decision (engaged once decide() returned one).
    struct TypedStep final : StepInFlight {
        Context context;
        std::optional<DecisionType> decision;
    };

    /// `awaitable` as the agent's function `who` returned it; an empty one (default-constructed or moved from)
    /// would crash where it is awaited, so it is that call's failure instead, with a reason that says so.
    template <typename T>
    static asio::awaitable<T> valid(asio::awaitable<T> awaitable, const char* who) {
        if (!awaitable.valid()) {
            throw std::invalid_argument(std::string{who} +
                                        " returned an empty asio::awaitable (default-constructed or moved from)");
        }
        return awaitable;
    }

    static StepLimits limits(const AgentSettings& settings) {
        settings.validate();
        return StepLimits{settings.max_steps, settings.max_failures, settings.max_history_items};
    }

    Functions agent_;
    std::function<void(const Step&)> on_step_end_;
    std::function<void(const HistoryType&)> on_run_end_;
    HistoryType history_;
    StepLedger<Action, Result> ledger_;
    std::optional<HistoryType> sealed_;
};

}  // namespace taskmon::detail

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
#include <asio/this_coro.hpp>

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
class TypedAgentBinding : public AgentBinding {
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
        if (!agent_.act && !agent_.act_with_key) {
            throw std::invalid_argument("AgentFunctions.act and AgentFunctions.act_with_key are both empty");
        }
        if (agent_.act && agent_.act_with_key) {
            throw std::invalid_argument("AgentFunctions.act and AgentFunctions.act_with_key are both set (one only)");
        }
    }

    /// The runtime's share of `hooks` (the ones that do not involve the agent's types).
    static RunHooks run_hooks(Hooks& hooks) {
        return RunHooks{std::move(hooks.on_run_start), std::move(hooks.on_step_start),
                        std::move(hooks.on_status_change), std::move(hooks.on_shedding_change)};
    }

    /// Awaits the runtime's run (SupervisorRuntime::run()), then returns the History it sealed, on the
    /// awaiting coroutine's executor.
    static asio::awaitable<HistoryType> run(asio::awaitable<void> runtime_run,
                                            std::shared_ptr<TypedAgentBinding> self) {
        // A durable run is written (or resumed) before it reports started, and its end once it sealed.
        if (self->durable()) co_await self->prepare_run();
        co_await std::move(runtime_run);
        if (self->durable()) {
            // Cancelling the awaiting coroutine is a stop(): the end is still written and the History returned
            // (a co_await of a cancelled coroutine would throw operation_aborted instead).
            const bool throws = co_await asio::this_coro::throw_if_cancelled();
            co_await asio::this_coro::throw_if_cancelled(false);
            co_await self->finish_run();
            co_await asio::this_coro::throw_if_cancelled(throws);
        }
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
        context.interrupt_id = std::move(input.interrupt_id);
        context.interrupt_value = std::move(input.interrupt_value);
        if (!history_.steps.empty()) context.previous_step = history_.steps.back();
        return await_bounded<DecisionShape>(
            deadline, what,
            [this, &typed, observation] {
                return valid(agent_.decide(*static_cast<const Observation*>(observation.get()), typed.context),
                             "decide()");
            },
            [&typed](DecisionType&& decision) {
                typed.decision = std::move(decision);
                return DecisionShape{typed.decision->is_done(), typed.decision->actions.size(),
                                     typed.decision->interrupt_payload};
            });
    }

    asio::awaitable<ActionResult> act(StepInFlight& step, std::size_t index) override {
        auto& typed = static_cast<TypedStep&>(step);
        if (agent_.act) return valid(agent_.act(typed.decision->actions[index]), "act()");
        return valid(agent_.act_with_key(typed.decision->actions[index], typed.key), "act_with_key()");
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

protected:
    /// A step in flight with decide()'s context and its decision (engaged once decide() returned one).
    struct TypedStep final : StepInFlight {
        Context context;
        std::optional<DecisionType> decision;
        std::string key;  ///< the idempotency key of the action being run (durable runs; empty otherwise)
    };

    /// Before the runtime's run starts / after it sealed the History: nothing for a plain run (durable runs,
    /// detail/durable_binding.hpp, write the run and its end).
    virtual asio::awaitable<void> prepare_run() { co_return; }
    virtual asio::awaitable<void> finish_run() { co_return; }

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

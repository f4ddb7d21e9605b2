// taskmon — coroutine supervision for standalone Asio.
// SPDX-License-Identifier: MIT
//
// Internal: StepLedger, the book of a Supervisor run's finalized steps. Plain synchronous code: the Supervisor's
// agent binding (detail/agent_binding.hpp) hands it each step as the loops of detail/supervisor_state.hpp end it;
// it counts and keeps the step and returns the verdict (the terminal status the step calls for, if any), which
// the runtime applies.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>

#include <fmt/format.h>

#include <taskmon/agent/agent_status.hpp>
#include <taskmon/agent/history.hpp>

namespace taskmon::detail {

/// What a finalized step calls for: a terminal status and its reason, or nothing (the run goes on).
struct StepVerdict {
    std::optional<AgentStatus> status;  ///< completed, failed or max_steps_reached; nullopt: carry on
    std::string reason;                 ///< empty when status is nullopt
};

/// The limits a StepLedger judges by (from AgentSettings).
struct StepLimits {
    std::uint64_t max_steps = 100;      ///< finalized steps before max_steps_reached; > 0
    std::size_t max_failures = 3;       ///< consecutive failed steps before failed; > 0
    std::size_t max_history_items = 0;  ///< steps kept in History::steps; 0: all
};

/// The book of finalized steps, kept in a History's `steps` and `counters`.
///
/// Invariants (over the History it writes, provided nothing else writes these fields):
/// - every recorded step is counted once in `counters.steps`, and, when it has a fate, in exactly one of
///   decisions_executed / decisions_failed / decisions_interrupted / decisions_expired (a step without a fate is
///   one whose decide() failed); every one of its actions in exactly one actions_* counter;
/// - a step succeeded exactly when its decision was executed;
/// - steps are recorded in order of number without gaps, each once: `steps` holds
///   counters.steps_evicted + 1 … counters.steps, at most max_history_items of them when that is non-zero
///   (the oldest are evicted first, counted in steps_evicted);
/// - consecutive_failures() is the number of failed steps since the last succeeded one.
///
/// A step refused by record() (inconsistent or out of order) changes nothing.
template <typename Action, typename Result>
class StepLedger {
public:
    using HistoryType = History<Action, Result>;
    using Step = StepRecord<Action, Result>;

    /// Writes into `history`, which must outlive the ledger. Throws std::invalid_argument for a zero max_steps
    /// or max_failures.
    StepLedger(HistoryType& history, StepLimits limits) : history_(&history), limits_(limits) {
        if (limits_.max_steps == 0) throw std::invalid_argument("StepLimits.max_steps must be > 0");
        if (limits_.max_failures == 0) throw std::invalid_argument("StepLimits.max_failures must be > 0");
    }

    StepLedger(const StepLedger&) = delete;
    StepLedger& operator=(const StepLedger&) = delete;

    /// Records `step` (its outcome, fate, error, actions and times already set) and returns its verdict.
    /// `judge` is false for a step cut off by the end of the run: it is recorded but calls for nothing.
    ///
    /// The verdict, first that applies: the step succeeded and its decision said done → completed; the
    /// failures in a row reached max_failures → failed; the finalized steps reached max_steps →
    /// max_steps_reached.
    ///
    /// Throws std::logic_error, recording nothing, when the outcome contradicts the fate (succeeded without
    /// executed, or executed without succeeded) or the step's number is not the next one.
    StepVerdict record(Step step, bool judge = true) {
        auto& c = history_->counters;
        const bool executed = step.fate == DecisionFate::executed;
        if ((step.outcome == StepOutcome::succeeded) != executed) {
            throw std::logic_error(fmt::format("step {}: outcome {} contradicts fate {}", step.number,
                                               to_string(step.outcome),
                                               step.fate ? to_string(*step.fate) : "none (decide() failed)"));
        }
        if (step.number != c.steps + 1) {
            throw std::logic_error(
                fmt::format("step {} recorded out of order: the next step is {}", step.number, c.steps + 1));
        }
        ++c.steps;
        if (step.outcome == StepOutcome::failed) ++c.steps_failed;
        if (step.fate) {
            switch (*step.fate) {
                case DecisionFate::executed: ++c.decisions_executed; break;
                case DecisionFate::failed: ++c.decisions_failed; break;
                case DecisionFate::interrupted: ++c.decisions_interrupted; break;
                case DecisionFate::expired: ++c.decisions_expired; break;
            }
        }
        for (const auto& action : step.actions) {
            switch (action.outcome) {
                case ActionOutcome::succeeded: ++c.actions_succeeded; break;
                case ActionOutcome::failed: ++c.actions_failed; break;
                case ActionOutcome::skipped: ++c.actions_skipped; break;
                case ActionOutcome::interrupted: ++c.actions_interrupted; break;
            }
        }
        consecutive_failures_ = step.outcome == StepOutcome::succeeded ? 0 : consecutive_failures_ + 1;
        history_->steps.push_back(std::move(step));
        if (limits_.max_history_items != 0 && history_->steps.size() > limits_.max_history_items) {
            history_->steps.erase(history_->steps.begin());
            ++c.steps_evicted;
        }
        return judge ? verdict() : StepVerdict{};
    }

    /// The step recorded last (recorded steps are never evicted down to none). Precondition: one was recorded.
    const Step& last() const { return history_->steps.back(); }

    /// Failed steps since the last succeeded one.
    std::size_t consecutive_failures() const noexcept { return consecutive_failures_; }
    /// A resumed durable run: the History was restored from its checkpoint, and with it this count.
    void restore_consecutive_failures(std::size_t failures) noexcept { consecutive_failures_ = failures; }

    /// Steps recorded, evicted ones included.
    std::uint64_t recorded() const noexcept { return history_->counters.steps; }

    const StepLimits& limits() const noexcept { return limits_; }

private:
    StepVerdict verdict() const {
        const auto& done = last();
        if (done.outcome == StepOutcome::succeeded && done.done) {
            return {AgentStatus::completed, fmt::format("step {} said done", done.number)};
        }
        if (consecutive_failures_ >= limits_.max_failures) {
            return {AgentStatus::failed,
                    fmt::format("{} consecutive step failures; last: {}", consecutive_failures_, done.error)};
        }
        if (history_->counters.steps >= limits_.max_steps) {
            return {AgentStatus::max_steps_reached, fmt::format("max_steps={} steps finalized", limits_.max_steps)};
        }
        return {};
    }

    HistoryType* history_;
    StepLimits limits_;
    std::size_t consecutive_failures_ = 0;
};

}  // namespace taskmon::detail

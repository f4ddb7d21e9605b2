// taskmon — coroutine supervision for standalone Asio.
// SPDX-License-Identifier: MIT
//
// History: what a Supervisor run did — its steps, events, counters and final status. run() returns it.
//
// Times are offsets from the start of the run (`Offset`), measured with the Supervisor's clock, so a run in
// virtual time has exact, reproducible times; started_wall_time anchors them to the wall clock.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <taskmon/agent/agent_status.hpp>
#include <taskmon/detail/enum_formatter.hpp>

namespace taskmon {

/// What act() reports for one action. `success == false` is a failed action; `error` says why.
struct ActionResult {
    bool success = true;
    std::string error;
    std::optional<std::string> extracted_content;

    static ActionResult ok(std::optional<std::string> content = std::nullopt) { return {true, {}, std::move(content)}; }
    static ActionResult failure(std::string error) { return {false, std::move(error), std::nullopt}; }
};

/// The fate of one action of a decision.
enum class ActionOutcome : std::uint8_t {
    succeeded,    ///< act() returned success
    failed,       ///< act() returned failure, threw, or timed out
    skipped,      ///< not started: an earlier action of the step failed, or the run ended first
    interrupted,  ///< started but its actuation instance died before it finished; never replayed
};

/// The fate of one decision (every decision ends in exactly one of these; none vanishes).
enum class DecisionFate : std::uint8_t {
    executed,     ///< every action ran and succeeded
    failed,       ///< rejected (too many actions) or an action failed
    interrupted,  ///< an action was interrupted, or the run ended before it ran
    expired,      ///< waited longer than max_decision_age for actuation; nothing ran
};

/// How a step ended.
enum class StepOutcome : std::uint8_t {
    succeeded,  ///< its decision was executed
    failed,     ///< decide() failed or timed out, or its decision was not executed
};

constexpr std::string_view to_string(ActionOutcome outcome) noexcept {
    switch (outcome) {
        case ActionOutcome::succeeded: return "succeeded";
        case ActionOutcome::failed: return "failed";
        case ActionOutcome::skipped: return "skipped";
        case ActionOutcome::interrupted: return "interrupted";
    }
    return "unknown";
}

constexpr std::string_view to_string(DecisionFate fate) noexcept {
    switch (fate) {
        case DecisionFate::executed: return "executed";
        case DecisionFate::failed: return "failed";
        case DecisionFate::interrupted: return "interrupted";
        case DecisionFate::expired: return "expired";
    }
    return "unknown";
}

constexpr std::string_view to_string(StepOutcome outcome) noexcept {
    switch (outcome) {
        case StepOutcome::succeeded: return "succeeded";
        case StepOutcome::failed: return "failed";
    }
    return "unknown";
}

/// Offset from the start of the run.
using Offset = std::chrono::nanoseconds;

/// One action of a step and what became of it.
template <typename Action>
struct ActionRecord {
    Action action;
    ActionOutcome outcome = ActionOutcome::skipped;
    ActionResult result;  ///< act()'s result; for failed/interrupted/skipped, `error` says why
    std::optional<Offset> started_at;
    std::optional<Offset> finished_at;
};

/// One finalized step: the observation it decided on, its decision and each action's fate.
template <typename Action, typename Result>
struct StepRecord {
    std::uint64_t number = 0;                ///< 1-based
    std::uint64_t observation_sequence = 0;  ///< the keep-latest slot's sequence number of the observation
    Offset observation_age{};                ///< how old the observation was when decide() was called
    StepOutcome outcome = StepOutcome::failed;
    std::optional<DecisionFate> fate;  ///< nullopt when decide() itself failed
    bool done = false;                 ///< the decision said done
    std::optional<Result> result;      ///< the done result
    std::vector<ActionRecord<Action>> actions;
    std::string error;                 ///< why the step failed; empty when it succeeded
    Offset started_at{};               ///< when decide() was called
    std::optional<Offset> decided_at;  ///< when decide() returned a decision
    Offset finished_at{};              ///< when the step was finalized

    Offset duration() const noexcept { return finished_at - started_at; }
};

/// What a HistoryEvent records. (Not MonitorEventKind: these are the Supervisor run's events, kept in
/// History::events.)
enum class HistoryEventKind : std::uint8_t {
    status_changed,       ///< from → to with the reason
    component_failed,     ///< a component's instance failed (the reason is in message)
    component_restarted,  ///< the TaskMonitor restarted a component
    component_gave_up,    ///< a component exceeded its restart limit
    watchdog_stall,       ///< no publish within perception_timeout
    watchdog_recovered,   ///< perception published again after a stall
    load_shedding_entered,
    load_shedding_left,
    decision_expired,    ///< a decision waited too long for actuation
    action_interrupted,  ///< an action in flight was lost with its actuation instance
    hook_error,          ///< a hook threw; the run went on
    guidance_delivered,  ///< injected guidance reached a decide() call
    terminal_refused,    ///< a later terminal trigger lost to the first one
    // Durable runs (taskmon/agent/durable_run.hpp):
    journal_error,             ///< a journal write failed: the run fails (the reason names the error)
    action_skipped_committed,  ///< resume: an action of the step in flight at the crash had a result; not run again
    action_reconciled,         ///< resume: an UNKNOWN action went through reconcile() (or was marked interrupted)
};

constexpr std::string_view to_string(HistoryEventKind kind) noexcept {
    switch (kind) {
        case HistoryEventKind::status_changed: return "status_changed";
        case HistoryEventKind::component_failed: return "component_failed";
        case HistoryEventKind::component_restarted: return "component_restarted";
        case HistoryEventKind::component_gave_up: return "component_gave_up";
        case HistoryEventKind::watchdog_stall: return "watchdog_stall";
        case HistoryEventKind::watchdog_recovered: return "watchdog_recovered";
        case HistoryEventKind::load_shedding_entered: return "load_shedding_entered";
        case HistoryEventKind::load_shedding_left: return "load_shedding_left";
        case HistoryEventKind::decision_expired: return "decision_expired";
        case HistoryEventKind::action_interrupted: return "action_interrupted";
        case HistoryEventKind::hook_error: return "hook_error";
        case HistoryEventKind::guidance_delivered: return "guidance_delivered";
        case HistoryEventKind::terminal_refused: return "terminal_refused";
        case HistoryEventKind::journal_error: return "journal_error";
        case HistoryEventKind::action_skipped_committed: return "action_skipped_committed";
        case HistoryEventKind::action_reconciled: return "action_reconciled";
    }
    return "unknown";
}

/// One thing that happened during a Supervisor run, as kept in History::events. (A TaskMonitor's events are
/// MonitorEvent, monitor_event.hpp.)
///
/// `message` is for people (logs, tooltips); a program reads the typed fields, which are set for the kinds named
/// beside them and empty otherwise. Members are only added at the end, and every member after `kind` has a
/// default member initializer, so an aggregate initialisation that stops at `step`, or a designated one that
/// names only some members, compiles without -Wmissing-field-initializers (g++ and clang++ do not ask for
/// members that have one).
struct HistoryEvent {
    HistoryEventKind kind;
    Offset at{};
    std::string component{};              ///< the component concerned, or empty
    std::string message{};                ///< reason / details as key=value text, for people
    std::optional<AgentStatus> from{};    ///< status_changed only
    std::optional<AgentStatus> to{};      ///< status_changed only
    std::optional<std::uint64_t> step{};  ///< the step concerned, if any
    /// component_restarted: the number of the instance that started (the first instance is 1, so the first
    /// restart starts instance 2).
    std::optional<std::uint64_t> instance{};
    std::optional<std::uint64_t> consecutive_stalls{};  ///< watchdog_stall: stalls in a row, this one included
    /// watchdog_stall: AgentSettings::max_consecutive_stalls; the run fails when consecutive_stalls reaches it.
    std::optional<std::uint64_t> max_consecutive_stalls{};
    std::optional<Offset> silent_for{};  ///< watchdog_stall: how long perception had published nothing
};

/// Former names of HistoryEvent and HistoryEventKind, kept for one release.
using Event [[deprecated("use HistoryEvent")]] = HistoryEvent;
using EventKind [[deprecated("use HistoryEventKind")]] = HistoryEventKind;

/// Counters of the run. Every observation, decision and action is counted in exactly one outcome.
struct HistoryCounters {
    std::uint64_t observations_published = 0;
    std::uint64_t observations_dropped = 0;  ///< superseded before decided, or older than max_observation_age
    std::uint64_t capture_failures = 0;      ///< perceive() threw or timed out
    std::uint64_t steps = 0;                 ///< finalized, including those evicted from History::steps
    std::uint64_t steps_evicted = 0;         ///< dropped from the front of History::steps (max_history_items)
    std::uint64_t steps_failed = 0;
    std::uint64_t decisions_executed = 0;
    std::uint64_t decisions_failed = 0;
    std::uint64_t decisions_interrupted = 0;
    std::uint64_t decisions_expired = 0;
    std::uint64_t actions_succeeded = 0;
    std::uint64_t actions_failed = 0;
    std::uint64_t actions_skipped = 0;
    std::uint64_t actions_interrupted = 0;
    std::uint64_t watchdog_stalls = 0;
    std::uint64_t load_shedding_entries = 0;
    std::uint64_t hook_errors = 0;
    std::map<std::string, std::uint64_t> restarts;  ///< per component
};

/// The record of one Supervisor run.
///
/// Invariants kept by the Supervisor: steps are in order of number without gaps, from
/// counters.steps_evicted + 1 to the last finalized step (all of them unless AgentSettings::max_history_items
/// evicted the oldest); status is terminal once run() returned; the counters cover every step, evicted or not.
template <typename Action, typename Result = std::string>
class History {
public:
    using Step = StepRecord<Action, Result>;

    std::vector<Step> steps;
    std::vector<HistoryEvent> events;
    HistoryCounters counters;
    AgentStatus status = AgentStatus::pending;  ///< the final status once run() returned
    std::string reason;                         ///< why the run ended
    std::chrono::system_clock::time_point started_wall_time{};
    Offset ended_at{};  ///< when the run ended, from its start

    /// True when a decision said done.
    bool is_done() const noexcept {
        return !steps.empty() && steps.back().done && steps.back().outcome == StepOutcome::succeeded;
    }
    /// True when the run completed: done, and the done step's actions all succeeded.
    bool is_successful() const noexcept { return status == AgentStatus::completed && is_done(); }
    /// The done result, if a decision said done.
    std::optional<Result> final_result() const {
        if (!is_done()) return std::nullopt;
        return steps.back().result;
    }
    /// Every error, in order: the kept steps' errors, their failed and interrupted actions' errors, and the
    /// failure reason of a failed run.
    std::vector<std::string> errors() const {
        std::vector<std::string> out;
        for (const auto& step : steps) {
            if (!step.error.empty()) out.push_back(step.error);
            for (const auto& action : step.actions) {
                if ((action.outcome == ActionOutcome::failed || action.outcome == ActionOutcome::interrupted) &&
                    !action.result.error.empty() && action.result.error != step.error) {
                    out.push_back(action.result.error);
                }
            }
        }
        if (status == AgentStatus::failed && !reason.empty()) out.push_back(reason);
        return out;
    }
    /// Steps finalized in the run, including those evicted from `steps`.
    std::size_t number_of_steps() const noexcept { return steps.size() + counters.steps_evicted; }
    /// From the start of the run to its end (or to the last record while it is still running).
    Offset total_duration() const noexcept {
        Offset end = ended_at;
        if (!steps.empty() && steps.back().finished_at > end) end = steps.back().finished_at;
        if (!events.empty() && events.back().at > end) end = events.back().at;
        return end;
    }
    /// Events of one kind, in order.
    std::vector<HistoryEvent> events_of(HistoryEventKind kind) const {
        std::vector<HistoryEvent> out;
        for (const auto& event : events) {
            if (event.kind == kind) out.push_back(event);
        }
        return out;
    }
    /// The status sequence recorded by status_changed events, starting with pending.
    std::vector<AgentStatus> status_path() const {
        std::vector<AgentStatus> out{AgentStatus::pending};
        for (const auto& event : events) {
            if (event.kind == HistoryEventKind::status_changed && event.to) out.push_back(*event.to);
        }
        return out;
    }
};

}  // namespace taskmon

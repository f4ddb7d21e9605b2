// taskmon — coroutine supervision for standalone Asio.
// SPDX-License-Identifier: MIT
//
// AgentStatus: the lifecycle of one Supervisor run, with an explicit transition table.
//
//   pending ──► running ◄──► paused
//      │          │  │         │
//      │          │  └──► stopping ──► stopped
//      ▼          ▼            ▼
//   stopped, failed; running/paused ──► completed | max_steps_reached | failed | stopped
//   running ◄──► waiting_for_input (decide() asked for input; resume_with() answers) ──► stopping | stopped | failed
//
// completed, max_steps_reached, stopped and failed are terminal: nothing leaves them, so the first terminal
// trigger wins and later ones are refused (and can be recorded as such by the caller).
#pragma once

#include <taskmon/detail/enum_formatter.hpp>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace taskmon {

/// Where a Supervisor run is in its lifecycle.
enum class AgentStatus : std::uint8_t {
    pending,            ///< constructed, run() not called yet
    running,            ///< the six components are working
    paused,             ///< pause() took effect: no new step starts; a step in flight finishes
    stopping,           ///< stop() was requested; components are being closed
    completed,          ///< terminal: a decision said done
    max_steps_reached,  ///< terminal: max_steps steps were finalized without done
    stopped,            ///< terminal: stop() ended the run
    failed,             ///< terminal: max_failures consecutive step failures, a critical give-up, or stalls
    waiting_for_input,  ///< decide() returned an interrupt: no step starts until resume_with() answers it
};

inline constexpr std::size_t agent_status_count = 9;

/// The status's name as used in logs and history ("max_steps_reached"); fmt::format("{}", status) prints the same.
constexpr std::string_view to_string(AgentStatus status) noexcept {
    switch (status) {
        case AgentStatus::pending: return "pending";
        case AgentStatus::running: return "running";
        case AgentStatus::paused: return "paused";
        case AgentStatus::stopping: return "stopping";
        case AgentStatus::completed: return "completed";
        case AgentStatus::max_steps_reached: return "max_steps_reached";
        case AgentStatus::stopped: return "stopped";
        case AgentStatus::failed: return "failed";
        case AgentStatus::waiting_for_input: return "waiting_for_input";
    }
    return "unknown";
}

/// True for completed, max_steps_reached, stopped and failed.
constexpr bool is_terminal(AgentStatus status) noexcept {
    return status == AgentStatus::completed || status == AgentStatus::max_steps_reached ||
           status == AgentStatus::stopped || status == AgentStatus::failed;
}

/// The transition table. A transition to the same status is never allowed (it is not a change).
constexpr bool is_allowed_transition(AgentStatus from, AgentStatus to) noexcept {
    using S = AgentStatus;
    switch (from) {
        case S::pending: return to == S::running || to == S::stopped || to == S::failed;
        case S::running:
            return to == S::paused || to == S::stopping || to == S::completed || to == S::max_steps_reached ||
                   to == S::stopped || to == S::failed || to == S::waiting_for_input;
        // No step is in flight while waiting (the asking step was finalized first), so nothing can complete it.
        case S::waiting_for_input: return to == S::running || to == S::stopping || to == S::stopped || to == S::failed;
        case S::paused:
            // A step in flight when the pause took effect may still finish the run.
            return to == S::running || to == S::stopping || to == S::completed || to == S::max_steps_reached ||
                   to == S::stopped || to == S::failed;
        case S::stopping: return to == S::stopped || to == S::failed;
        case S::completed:
        case S::max_steps_reached:
        case S::stopped:
        case S::failed: return false;
    }
    return false;
}

/// One accepted status change.
struct StatusTransition {
    AgentStatus from;
    AgentStatus to;
    std::string reason;
    std::string interrupt_id{};  ///< to waiting_for_input: the interrupt resume_with() answers; empty otherwise
};

/// The status of a run plus its terminal reason. Not synchronized: the Supervisor guards it with its strand.
///
/// Invariants: status() only changes through transition(), and only along the table; once terminal it never
/// changes again, and terminal_reason() is the reason given by the first terminal transition.
class AgentStatusMachine {
public:
    AgentStatusMachine() = default;

    AgentStatus status() const noexcept { return status_; }
    bool is_terminal() const noexcept { return taskmon::is_terminal(status_); }
    /// The reason of the transition into the terminal status; empty while not terminal.
    const std::string& terminal_reason() const noexcept { return terminal_reason_; }

    /// Moves to `to` when the table allows it and returns the accepted transition; returns nullopt (and
    /// changes nothing) when it does not, e.g. any transition out of a terminal status.
    std::optional<StatusTransition> transition(AgentStatus to, std::string reason) {
        if (!is_allowed_transition(status_, to)) return std::nullopt;
        StatusTransition change{status_, to, std::move(reason)};
        status_ = to;
        if (taskmon::is_terminal(to)) terminal_reason_ = change.reason;
        return change;
    }

private:
    AgentStatus status_ = AgentStatus::pending;
    std::string terminal_reason_;
};

}  // namespace taskmon

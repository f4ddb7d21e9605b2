// taskmon — coroutine supervision for standalone Asio.
// SPDX-License-Identifier: MIT
//
// OperatorAction: what an operator may do to one component from the health server's page or API
// (POST /api/components/<name>/<action>; off unless HealthEndpoints::act and action_token are set); RunAction:
// what an operator may do to a Supervisor run (POST /api/runs/<name>/<action>; off unless
// HealthEndpoints::run_act and action_token are set).
//
//   taskmon::HealthEndpoints endpoints{
//       ...,
//       .act = [&](const std::string& name, taskmon::OperatorAction a) { taskmon::apply(monitor, name, a); },
//       .action_token = read_secret("/run/secrets/taskmon-token")};
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace taskmon {

template <typename Clock>
class BasicTaskMonitor;

enum class OperatorAction {
    restart,  ///< BasicTaskMonitor::restart(): a new instance now (after give-up, a fresh budget)
    reset,    ///< BasicTaskMonitor::reset(): restart history cleared; a gave_up or quarantined component restarts
    disable,  ///< BasicTaskMonitor::disable(): stopped, and not restarted until enabled
    enable,   ///< BasicTaskMonitor::enable(): restarted automatically again (starts nothing by itself)
};

/// The enumerator's name, as in the URL ("restart").
[[nodiscard]] constexpr std::string_view to_string(OperatorAction action) noexcept {
    switch (action) {
        case OperatorAction::restart: return "restart";
        case OperatorAction::reset: return "reset";
        case OperatorAction::disable: return "disable";
        case OperatorAction::enable: return "enable";
    }
    return "unknown";
}

/// The action named `text` exactly, or empty.
[[nodiscard]] constexpr std::optional<OperatorAction> parse_operator_action(std::string_view text) noexcept {
    for (const auto a :
         {OperatorAction::restart, OperatorAction::reset, OperatorAction::disable, OperatorAction::enable}) {
        if (to_string(a) == text) return a;
    }
    return std::nullopt;
}

/// Performs `action` on component `name` of `monitor`. Throws what the monitor's function throws:
/// std::invalid_argument (an unknown name; restart or reset without a restart factory), taskmon::MonitorClosed.
template <typename Clock>
void apply(BasicTaskMonitor<Clock>& monitor, const std::string& name, OperatorAction action) {
    switch (action) {
        case OperatorAction::restart: monitor.restart(name); return;
        case OperatorAction::reset: monitor.reset(name); return;
        case OperatorAction::disable: monitor.disable(std::vector<std::string>{name}); return;
        case OperatorAction::enable: monitor.enable(std::vector<std::string>{name}); return;
    }
}

enum class RunAction {
    pause,   ///< Supervisor::pause(): no new step starts; a step in flight finishes
    resume,  ///< Supervisor::resume()
    stop,    ///< Supervisor::stop(): the run ends (terminal)
};

[[nodiscard]] constexpr std::string_view to_string(RunAction action) noexcept {
    switch (action) {
        case RunAction::pause: return "pause";
        case RunAction::resume: return "resume";
        case RunAction::stop: return "stop";
    }
    return "unknown";
}

/// The run action named `text` exactly, or empty.
[[nodiscard]] constexpr std::optional<RunAction> parse_run_action(std::string_view text) noexcept {
    for (const auto a : {RunAction::pause, RunAction::resume, RunAction::stop}) {
        if (to_string(a) == text) return a;
    }
    return std::nullopt;
}

/// Performs `action` on `supervisor` (any type with pause(), resume() and stop(std::string), e.g. a
/// taskmon::Supervisor). Each returns at once: the run applies it on its own strand.
template <typename Run>
void apply(Run& supervisor, RunAction action) {
    switch (action) {
        case RunAction::pause: supervisor.pause(); return;
        case RunAction::resume: supervisor.resume(); return;
        case RunAction::stop: supervisor.stop("stopped by an operator through the HTTP API"); return;
    }
}

}  // namespace taskmon

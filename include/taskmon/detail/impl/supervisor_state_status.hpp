// taskmon — coroutine supervision for standalone Asio.
// SPDX-License-Identifier: MIT
//
// SupervisorState's status changes: the transition table's moves, guarded hooks, pause() and resume() (internal).
// The definitions are `inline`, as they were inside the class: GCC gives functions declared inline larger
// inlining limits.
#pragma once

#include <taskmon/detail/supervisor_state.hpp>

namespace taskmon::detail {

template <typename Clock>
template <typename Call>
inline void SupervisorState<Clock>::guarded_hook(const char* name, Call call) {
    try {
        call();
    } catch (...) {
        const auto what = describe(std::current_exception());
        ++counters_.hook_errors;
        record(HistoryEventKind::hook_error, "", fmt::format("hook={} error={}", name, quote(what)));
        log(spdlog::level::err, "Hook {} threw hook={} error={}", name, name, quote(what));
    }
}

template <typename Clock>
inline bool SupervisorState<Clock>::change_status(AgentStatus to, std::string reason) {
    const AgentStatus from = machine_.status();
    auto change = machine_.transition(to, reason);
    if (!change) {
        if (machine_.is_terminal() && is_terminal(to)) {
            record(HistoryEventKind::terminal_refused, "",
                   fmt::format("status={} refused={} reason={}", from, to, quote(reason)));
        } else {
            log(spdlog::level::debug, "Status change refused from={} to={} reason={}", from, to, quote(reason));
        }
        return false;
    }
    if (to == AgentStatus::waiting_for_input) change->interrupt_id = waiting_for_.value_or("");
    events_.push_back(
        HistoryEvent{HistoryEventKind::status_changed, now_offset(), "", change->reason, change->from, change->to, {}});
    status_.store(to, std::memory_order_release);
    const auto level = to == AgentStatus::failed ? spdlog::level::err : spdlog::level::info;
    log(level, "Agent status {} -> {} from={} to={} reason={}", change->from, change->to, change->from, change->to,
        quote(change->reason));
    call_hook("on_status_change", hooks_.on_status_change, *change);
    notify();
    return true;
}

template <typename Clock>
inline void SupervisorState<Clock>::apply_control(Control control) {
    const char* what = control == Control::pause ? "pause" : "resume";
    if (ending()) {
        log(spdlog::level::info, "{}() ignored: the run is {}", what, machine_.status());
        return;
    }
    if (const auto it = components_.find(components::pause_handler); it != components_.end() && it->second.gave_up) {
        log(spdlog::level::err, "{}() dropped: component pause_handler gave up", what);
        return;
    }
    controls_.push_back(control);
    notify();
}

template <typename Clock>
inline asio::awaitable<void> SupervisorState<Clock>::pause_handler(Deadline&) {
    for (;;) {
        co_await wait_until([this] { return !controls_.empty(); });
        const Control control = controls_.front();
        if (control == Control::pause) {
            co_await wait_until([this] { return !current_ || ending(); });  // the safe point
            if (!change_status(AgentStatus::paused, "pause() called")) {
                log(spdlog::level::info, "pause() ignored: the run is {}", machine_.status());
            }
        } else if (change_status(AgentStatus::running, "resume() called")) {
            grant_grace();
        } else {
            log(spdlog::level::info, "resume() ignored: the run is {}", machine_.status());
        }
        controls_.pop_front();
        notify();
    }
}

}  // namespace taskmon::detail

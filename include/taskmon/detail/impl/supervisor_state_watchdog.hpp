// taskmon — coroutine supervision for standalone Asio.
// SPDX-License-Identifier: MIT
//
// SupervisorState's perception watchdog: stalls, the perception restarts they ask for, and recovery (internal).
// The definitions are `inline`, as they were inside the class: GCC gives functions declared inline larger
// inlining limits.
#pragma once

#include <taskmon/detail/supervisor_state.hpp>

namespace taskmon::detail {

template <typename Clock>
inline void SupervisorState<Clock>::on_publish(TimePoint now) {
    ++counters_.observations_published;
    if (stall_watch_.on_publish(now)) {
        record(HistoryEventKind::watchdog_recovered, components::perception_watchdog,
               fmt::format("sequence={}", slot_.sequence()));
        log(spdlog::level::info, "Perception recovered component=perception sequence={}", slot_.sequence());
    }
    notify();
}

template <typename Clock>
inline asio::awaitable<void> SupervisorState<Clock>::perception_watchdog(Deadline&) {
    Timer timer{strand_};
    for (;;) {
        timer.expires_after(stall_watch_.period());
        co_await timer.async_wait(asio::use_awaitable);
        if (!running()) continue;  // suspended while paused; resume grants a fresh grace
        const auto found = stall_watch_.check(Clock::now());
        if (found.kind == StallCheckKind::quiet) continue;

        ++counters_.watchdog_stalls;
        const auto silent = seconds_text(found.silent_for);
        auto& stall =
            record(HistoryEventKind::watchdog_stall, components::perception_watchdog,
                   fmt::format("silent_for={} stall={}/{}", silent, found.stalls, settings_.max_consecutive_stalls));
        stall.consecutive_stalls = found.stalls;
        stall.max_consecutive_stalls = settings_.max_consecutive_stalls;
        stall.silent_for = std::chrono::duration_cast<Offset>(found.silent_for);
        log(spdlog::level::warn, "Perception stalled: nothing published for {} component=perception stall={}/{}",
            silent, found.stalls, settings_.max_consecutive_stalls);
        if (found.kind == StallCheckKind::give_up) {
            change_status(AgentStatus::failed, fmt::format("perception stalled {} times in a row", found.stalls));
            continue;
        }
        // The watch holds actuation and granted a fresh grace until perception publishes again.
        components_[components::perception].cancel_requested = true;
        monitor_.restart(components::perception);
        notify();
    }
}

}  // namespace taskmon::detail

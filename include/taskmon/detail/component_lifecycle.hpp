// taskmon — coroutine supervision for standalone Asio.
// SPDX-License-Identifier: MIT
//
// The lifecycle of a supervised component as the monitor drives it (internal): one value, and every change it may
// make listed in one table. ComponentState is what the monitor reports about a component (why it is down, how it
// ended); Lifecycle is what the monitor is doing with it, and decides which of its handlers may act.
#pragma once

#include <cassert>
#include <cstdint>
#include <string_view>

namespace taskmon::detail {

enum class Lifecycle : std::uint8_t {
    idle,       ///< no instance, nothing pending: never started, ended, or kept stopped (ComponentState says how)
    scheduled,  ///< a start is decided and pending (backoff, quarantine cooldown, restart(), a group unit's turn);
                ///< the timer or post that carries the component's restart_gen will start it
    starting,   ///< its factory is being called, on the monitor's strand, outside the monitor's lock
    live,       ///< an instance runs (asked to stop or not: the instance's stop cause says)
};

[[nodiscard]] constexpr std::string_view to_string(Lifecycle lifecycle) noexcept {
    switch (lifecycle) {
        case Lifecycle::idle: return "idle";
        case Lifecycle::scheduled: return "scheduled";
        case Lifecycle::starting: return "starting";
        case Lifecycle::live: return "live";
    }
    return "unknown";
}

/// Every change of Lifecycle the monitor may make. Anything else is a bug in the monitor.
[[nodiscard]] constexpr bool is_allowed_transition(Lifecycle from, Lifecycle to) noexcept {
    switch (from) {
        case Lifecycle::idle:
            // A restart decided (backoff, quarantine, restart(), a unit's turn); a first instance started at once
            // (register_task, supervise, spawn: their task or factory result is already in hand).
            return to == Lifecycle::scheduled || to == Lifecycle::live;
        case Lifecycle::scheduled:
            // Its timer or post fires; or it is cancelled (disable, remove, close) or taken over by a group unit.
            // (A restart() merged into it reschedules it without leaving it.)
            return to == Lifecycle::starting || to == Lifecycle::idle;
        case Lifecycle::starting:
            // The factory returned a task; or it threw, or the component was stopped while it ran.
            return to == Lifecycle::live || to == Lifecycle::idle;
        case Lifecycle::live:
            return to == Lifecycle::idle;  // the instance exited (on_exit), whatever follows is decided from idle
    }
    return false;
}

/// Moves `current` to `to`; an illegal change fails the assertion in debug builds (the tests run them).
inline void transition(Lifecycle& current, Lifecycle to) noexcept {
    assert(is_allowed_transition(current, to));
    current = to;
}

}  // namespace taskmon::detail

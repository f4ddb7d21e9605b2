// taskmon — coroutine supervision for standalone Asio.
// SPDX-License-Identifier: MIT
//
// The lifecycle of a supervised component as the monitor drives it (internal): two values, each with every change it
// may make listed in one table. ComponentState is what the monitor reports about a component (why it is down, how it
// ended); Lifecycle is what the monitor is doing with it, and decides which of its handlers may act; Membership says
// whether it is one of the monitor's components, and whether it is leaving.
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

/// Whether a component belongs to the monitor. A record made for a factory alone (set_restart_factories) is declared
/// until something registers or starts it.
enum class Membership : std::uint8_t {
    declared,    ///< in the monitor's map for its factory, not registered
    registered,  ///< registered (register_task, supervise, spawn, a group member, or started by restart()/reset())
    removing,    ///< remove_and_wait() was called: it leaves the map once no instance of it runs
    removed,     ///< left the map (its record lives on in callbacks that still hold it)
};

[[nodiscard]] constexpr std::string_view to_string(Membership membership) noexcept {
    switch (membership) {
        case Membership::declared: return "declared";
        case Membership::registered: return "registered";
        case Membership::removing: return "removing";
        case Membership::removed: return "removed";
    }
    return "unknown";
}

/// Every change of Membership the monitor may make. Anything else is a bug in the monitor.
[[nodiscard]] constexpr bool is_allowed_transition(Membership from, Membership to) noexcept {
    switch (from) {
        case Membership::declared:
            // Registered or started; or removed while known by its factory alone.
            return to == Membership::registered || to == Membership::removing;
        case Membership::registered:
            // remove_and_wait(); or a spawned task ended and its record leaves at once.
            return to == Membership::removing || to == Membership::removed;
        case Membership::removing:
            // Its instance exited (or none ran), or it outlived its shutdown_timeout and waits detached.
            return to == Membership::removed;
        case Membership::removed: return false;
    }
    return false;
}

/// Moves `current` to `to`; an illegal change fails the assertion in debug builds.
inline void transition(Membership& current, Membership to) noexcept {
    assert(is_allowed_transition(current, to));
    current = to;
}

/// remove_and_wait() was called on it: it is leaving, or has left, and nothing starts it again.
[[nodiscard]] constexpr bool is_leaving(Membership membership) noexcept {
    return membership == Membership::removing || membership == Membership::removed;
}

}  // namespace taskmon::detail

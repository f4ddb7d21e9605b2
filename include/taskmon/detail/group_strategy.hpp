// taskmon — coroutine supervision for standalone Asio.
// SPDX-License-Identifier: MIT
//
// What a group's restart strategy decides, as pure functions of values (internal; the monitor applies them): who
// owns a failed member's restart, which members it affects, and whether the group's restart limit allows it.
#pragma once

#include <taskmon/component_group.hpp>
#include <taskmon/detail/restart_decision.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <span>

namespace taskmon::detail {

/// The group is shutting down or has ended (shut down, or gave up at the top of its tree): it starts nothing again
/// and takes no new member group.
[[nodiscard]] constexpr bool group_has_ended(GroupState state) noexcept {
    return state == GroupState::shutting_down || state == GroupState::shut_down || state == GroupState::gave_up;
}

/// Whether the restart of a failed member is the group's to carry out. Under one_for_one a component restarts on
/// its own (still counted against the group's max_restarts), unless a unit of the group already drives it; a
/// nested group, and any member under one_for_all or rest_for_one, is restarted by the group.
[[nodiscard]] constexpr bool group_owns_restart(RestartStrategy strategy, bool is_component,
                                                bool driven_by_unit) noexcept {
    return strategy != RestartStrategy::one_for_one || !is_component || driven_by_unit;
}

/// The members, as positions [first, last) in start order, that the failure of member `failed` of `size` restarts:
/// itself (one_for_one), itself and those started after it (rest_for_one), or all of them (one_for_all).
struct MemberRange {
    std::size_t first = 0;
    std::size_t last = 0;
    friend constexpr bool operator==(const MemberRange&, const MemberRange&) = default;
};

[[nodiscard]] constexpr MemberRange affected_members(RestartStrategy strategy, std::size_t failed,
                                                     std::size_t size) noexcept {
    switch (strategy) {
        case RestartStrategy::one_for_one: return {failed, failed + 1};
        case RestartStrategy::rest_for_one: return {failed, size};
        case RestartStrategy::one_for_all: break;
    }
    return {0, size};
}

/// Whether one more counted restart of a group, decided now to happen at `at`, keeps within its max_restarts: the
/// restarts that happened within the restart_window before `at` (`window`), and the `pending` ones decided but not
/// yet happened, are fewer.
template <typename TimePoint>
[[nodiscard]] bool group_restart_allowed(std::span<const TimePoint> window, int pending, const GroupPolicy& policy,
                                         TimePoint at) {
    return restarts_within(window, policy.restart_window, at) + pending < policy.max_restarts;
}

}  // namespace taskmon::detail

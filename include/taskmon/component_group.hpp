// taskmon — coroutine supervision for standalone Asio.
// SPDX-License-Identifier: MIT
//
// Groups: components that live and die together, as in an Erlang/OTP supervision tree. A group starts its
// members in order (each once the one before is ready), stops them in reverse order, restarts them by a
// strategy, has its own restart limit, and nests: a group that exceeds its limit gives up and is restarted by
// its parent group, and the top of the tree reports to the monitor's owner (async_wait_escalation()).
//
//   monitor.supervise_group("connection", {
//       {.name = "socket", .factory = [] { return open_socket(); }, .significant = true},
//       {.name = "reader", .factory = [] { return read_loop(); }},
//       {.name = "writer", .factory = [] { return write_loop(); }},
//   }, {.strategy = taskmon::RestartStrategy::one_for_all, .max_restarts = 3, .restart_window = 1min});
//   monitor.supervise_group("telemetry", {...}, {}, "connection");   // a nested group, started last
//   auto groups = monitor.get_group_stats();
#pragma once

#include <taskmon/detail/enum_formatter.hpp>

#include <taskmon/component_context.hpp>
#include <taskmon/duration.hpp>
#include <taskmon/restart_policy.hpp>

#include <chrono>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace taskmon {

/// Which members a group restarts when one of them fails (OTP's restart strategies).
enum class RestartStrategy {
    one_for_one,   ///< only the failed member, on its own backoff (members are independent)
    one_for_all,   ///< every member: all are stopped in reverse order, then all started in order
    rest_for_one,  ///< the failed member and the members declared after it
};

/// When a group shuts itself down because a significant member ended (OTP 24's auto_shutdown).
enum class AutoShutdown {
    never,            ///< significant is ignored
    any_significant,  ///< as soon as one significant member ended
    all_significant,  ///< once every significant member ended
};

/// Where a group is in its life.
enum class GroupState {
    starting,       ///< its members are being started in order
    running,        ///< every member was started (members may still restart one by one)
    restarting,     ///< a group restart is stopping or starting members
    shutting_down,  ///< auto_shutdown: its members are being stopped in reverse order
    shut_down,      ///< auto_shutdown finished: its members stay stopped
    gave_up,        ///< a top-level group exceeded its limit: members stopped, escalated to the owner
    stopped,        ///< close() stopped it
};

[[nodiscard]] constexpr std::string_view to_string(RestartStrategy s) noexcept {
    switch (s) {
        case RestartStrategy::one_for_one: return "one_for_one";
        case RestartStrategy::one_for_all: return "one_for_all";
        case RestartStrategy::rest_for_one: return "rest_for_one";
    }
    return "unknown";
}

[[nodiscard]] constexpr std::string_view to_string(AutoShutdown a) noexcept {
    switch (a) {
        case AutoShutdown::never: return "never";
        case AutoShutdown::any_significant: return "any_significant";
        case AutoShutdown::all_significant: return "all_significant";
    }
    return "unknown";
}

[[nodiscard]] constexpr std::string_view to_string(GroupState s) noexcept {
    switch (s) {
        case GroupState::starting: return "starting";
        case GroupState::running: return "running";
        case GroupState::restarting: return "restarting";
        case GroupState::shutting_down: return "shutting_down";
        case GroupState::shut_down: return "shut_down";
        case GroupState::gave_up: return "gave_up";
        case GroupState::stopped: return "stopped";
    }
    return "unknown";
}

/// How a group restarts, limits and ends. Each member keeps its own RestartPolicy (backoff, per-member window,
/// give_up_mode, shutdown_timeout, liveness) on top of this.
struct GroupPolicy {
    RestartStrategy strategy = RestartStrategy::one_for_one;
    /// The group's intensity: restarts of its members allowed within restart_window, over the whole group (a
    /// member failing while a group restart already stops it joins that restart and is not counted again).
    /// One more gives the group up: it is escalated to its parent group, which restarts it by the parent's
    /// strategy (counted against the parent's limit) with a fresh budget, or, at the top of the tree, its
    /// members are stopped and it is escalated to the monitor's owner. unlimited_restart_attempts (the
    /// default) means no group limit.
    int max_restarts = unlimited_restart_attempts;
    Duration restart_window = std::chrono::hours{1};
    AutoShutdown auto_shutdown = AutoShutdown::never;
    /// Start each member once the one before it is ready (ComponentContext::ready(), or at once for a member
    /// whose policy has no startup_timeout); false: once it started.
    bool start_after_ready = true;
    /// This group is a significant member of its parent group (see AutoShutdown).
    bool significant = false;
};

/// One component of a group: the arguments of supervise(), plus whether its end may end the group. Exactly
/// one of `factory` and `context_factory` is set.
struct GroupMember {
    std::string name;
    RestartFactory factory{};
    ContextFactory context_factory{};
    std::optional<RestartPolicy> policy{};  ///< empty: the monitor's policy
    bool significant = false;               ///< see GroupPolicy::auto_shutdown
};

/// A group as get_group_stats() reports it.
struct GroupStats {
    GroupState state = GroupState::starting;
    RestartStrategy strategy = RestartStrategy::one_for_one;
    std::string parent;                ///< empty for a top-level group
    std::vector<std::string> members;  ///< components and nested groups, in start order
    /// Group restarts done, as many as its group_restarted events: restarts by its strategy (for a one_for_one
    /// group, each restart of a nested group it made), and restarts by its parent.
    int restart_count = 0;
    /// Restarts counted against max_restarts that happened within the last restart_window: a group restart
    /// happens when its members start again, not when it is decided (0 after a parent's restart).
    int restarts_in_window = 0;
};

/// Throws std::invalid_argument naming the first invalid field of `policy`; `context` prefixes the message.
inline void validate(const GroupPolicy& policy, std::string_view context = "GroupPolicy") {
    const auto fail = [&](std::string_view field, std::string_view why) {
        throw std::invalid_argument(std::string{context} + ": " + std::string{field} + " " + std::string{why});
    };
    switch (policy.strategy) {
        case RestartStrategy::one_for_one:
        case RestartStrategy::one_for_all:
        case RestartStrategy::rest_for_one: break;
        default: fail("strategy", "is not a RestartStrategy");
    }
    switch (policy.auto_shutdown) {
        case AutoShutdown::never:
        case AutoShutdown::any_significant:
        case AutoShutdown::all_significant: break;
        default: fail("auto_shutdown", "is not an AutoShutdown");
    }
    if (policy.max_restarts < 0) fail("max_restarts", "must not be negative");
    if (policy.restart_window <= std::chrono::nanoseconds::zero()) fail("restart_window", "must be positive");
    if (policy.restart_window > longest_duration_setting) fail("restart_window", "must not exceed 100 years");
}

}  // namespace taskmon

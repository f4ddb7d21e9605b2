// taskmon — coroutine supervision for standalone Asio.
// SPDX-License-Identifier: MIT
//
// PolicyOverrides: some fields of a RestartPolicy, applied on top of another policy (the monitor's, for supervise()).
#pragma once

#include <taskmon/restart_policy.hpp>

#include <optional>
#include <utility>

namespace taskmon {

/// Some fields of a RestartPolicy, each replacing that field of the policy it is applied to; a field left empty
/// keeps its value there. Same names, same order as RestartPolicy's (designated initializers follow it). A braced
/// list given to supervise() or update_policy() is one of these, applied to the policy in force:
///   monitor.supervise("poller", factory, {.watchdog_timeout = 10s});  // the monitor's policy, plus a watchdog
///   monitor.supervise("poller", factory, taskmon::RestartPolicy{.watchdog_timeout = 10s});  // a whole policy:
///                                                   // every other field is RestartPolicy's default, not the monitor's
///   monitor.update_policy("poller", {.max_backoff = 5min});  // the component's policy, with a longer backoff cap
struct PolicyOverrides {
    std::optional<int> max_restart_attempts{};
    std::optional<Duration> restart_window{};
    std::optional<Duration> base_backoff{};
    std::optional<Duration> max_backoff{};
    std::optional<double> backoff_multiplier{};
    std::optional<JitterKind> jitter{};
    std::optional<double> jitter_ratio{};
    std::optional<Duration> reset_backoff_after{};
    std::optional<RestartType> restart_type{};
    std::optional<Duration> shutdown_timeout{};
    std::optional<Duration> watchdog_timeout{};
    std::optional<Duration> idle_timeout{};
    std::optional<Duration> startup_timeout{};
    std::optional<GiveUpMode> give_up_mode{};
    std::optional<Duration> quarantine_cooldown{};
    std::optional<Duration> max_quarantine_cooldown{};
    std::optional<FailureClassifier> classify_failure{};  ///< an empty classifier here clears the base's

    /// `base` with every field set here replaced. Not validated: the caller validates the result (supervise()
    /// and update_policy() do, naming the field).
    [[nodiscard]] RestartPolicy applied_to(RestartPolicy base) const {
        const auto set = [](auto& field, const auto& value) {
            if (value) {
                field = *value;
            }
        };
        set(base.max_restart_attempts, max_restart_attempts);
        set(base.restart_window, restart_window);
        set(base.base_backoff, base_backoff);
        set(base.max_backoff, max_backoff);
        set(base.backoff_multiplier, backoff_multiplier);
        set(base.jitter, jitter);
        set(base.jitter_ratio, jitter_ratio);
        set(base.reset_backoff_after, reset_backoff_after);
        set(base.restart_type, restart_type);
        set(base.shutdown_timeout, shutdown_timeout);
        set(base.watchdog_timeout, watchdog_timeout);
        set(base.idle_timeout, idle_timeout);
        set(base.startup_timeout, startup_timeout);
        set(base.give_up_mode, give_up_mode);
        set(base.quarantine_cooldown, quarantine_cooldown);
        set(base.max_quarantine_cooldown, max_quarantine_cooldown);
        set(base.classify_failure, classify_failure);
        return base;
    }
};

// RestartPolicy's two members that take a PolicyOverrides, declared in restart_policy.hpp.
inline RestartPolicy RestartPolicy::with(const PolicyOverrides& overrides) const& {
    return overrides.applied_to(*this);
}

inline RestartPolicy RestartPolicy::with(const PolicyOverrides& overrides) && {
    return overrides.applied_to(std::move(*this));
}

}  // namespace taskmon

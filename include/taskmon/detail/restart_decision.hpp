// taskmon — coroutine supervision for standalone Asio.
// SPDX-License-Identifier: MIT
//
// What follows a component's failure, as pure functions of values (internal; the monitor applies them). No
// mutex, no clock read, no logging and no user code: the classification and the jitter draw are inputs, taken by
// the caller outside its lock.
#pragma once

#include <taskmon/restart_policy.hpp>

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <variant>

namespace taskmon::detail {

/// Where a failure goes (an exception, an unexpected cancellation, a factory that threw, a missed liveness
/// deadline), before any restart arithmetic.
enum class FailureRoute {
    ends_temporary,        ///< a temporary component is never restarted: it stays failed
    ends_disabled,         ///< a disabled component is not restarted automatically (`not_enabled` event)
    ends_without_factory,  ///< nothing to restart it from (`no_factory` event)
    gives_up,              ///< a fatal failure outside a quarantine trial: give up at once, whatever the window
    joins_group_restart,   ///< its group's unit is about to restart it anyway: the failure joins that restart
    restart,               ///< decide_restart(): a backoff, a give-up when the window is full, or (a failed
                           ///< quarantine trial) the breaker reopened
};

/// The facts route_failure() reads.
struct FailureFacts {
    RestartType restart_type = RestartType::transient;
    bool enabled = true;
    bool has_factory = true;
    bool in_trial = false;             ///< the failed instance was a quarantine trial
    bool joins_group_restart = false;  ///< a unit drives it to be restarted and has not started it yet
};

/// Where a failure of class `cls` goes. As OTP absorbs the exits of the children a restart is stopping, a member
/// that fails while its group's restart stops the others joins that restart and counts against no limit.
[[nodiscard]] constexpr FailureRoute route_failure(const FailureFacts& facts, FailureClass cls) noexcept {
    if (facts.restart_type == RestartType::temporary) {
        return FailureRoute::ends_temporary;
    }
    if (!facts.enabled) {
        return FailureRoute::ends_disabled;
    }
    if (!facts.has_factory) {
        return FailureRoute::ends_without_factory;
    }
    if (cls == FailureClass::fatal && !facts.in_trial) {
        return FailureRoute::gives_up;
    }
    if (facts.joins_group_restart) {
        return FailureRoute::joins_group_restart;
    }
    return FailureRoute::restart;
}

/// What the monitor remembers of a component's restarts: the state decide_restart() reads.
template <typename TimePoint>
struct RestartHistory {
    std::span<const TimePoint> window;  ///< when its counted automatic restarts happened, oldest first
    int consecutive = 0;                ///< k of the last backoff (0: none since it was last stable)
    std::chrono::nanoseconds last_delay{};
    std::chrono::nanoseconds quarantine_cooldown{};  ///< the current cooldown; zero: the breaker is closed
    bool in_trial = false;                           ///< the failed instance was a quarantine trial
};

/// Restart after `delay`, at `at`; `attempt` is the backoff's k (1 for the first restart since it was stable).
template <typename TimePoint>
struct RestartAt {
    TimePoint at;
    int attempt = 0;
    std::chrono::nanoseconds delay{};
};

/// Open the circuit breaker (or reopen it, after a failed trial): a trial instance starts at `until`.
template <typename TimePoint>
struct QuarantineUntil {
    TimePoint until;
    std::chrono::nanoseconds cooldown{};
};

/// Give up in `mode` (stop or escalate); `limit` is the max_restart_attempts that was reached, 0 for a fatal
/// failure.
struct GiveUp {
    GiveUpMode mode = GiveUpMode::stop;
    int limit = 0;
};

template <typename TimePoint>
using RestartDecision = std::variant<RestartAt<TimePoint>, QuarantineUntil<TimePoint>, GiveUp>;

/// Whether decide_restart() reads a jitter draw for `history` under `policy`: the caller calls the RandomSource
/// (user code) only then, and outside its lock.
template <typename TimePoint>
[[nodiscard]] constexpr bool needs_draw(const RestartHistory<TimePoint>& history, const RestartPolicy& policy) {
    return !history.in_trial && policy.jitter != JitterKind::none;
}

/// The breaker's next cooldown: quarantine_cooldown when it opens, doubled (up to max_quarantine_cooldown) each
/// time a trial fails.
[[nodiscard]] inline std::chrono::nanoseconds next_quarantine_cooldown(const RestartPolicy& policy,
                                                                       std::chrono::nanoseconds current) {
    if (current == std::chrono::nanoseconds::zero()) {
        return policy.quarantine_cooldown;
    }
    return std::min<std::chrono::nanoseconds>(policy.max_quarantine_cooldown, current * 2);
}

/// How many of `window`'s restarts fall within the `restart_window` that ends at `at`.
template <typename TimePoint>
[[nodiscard]] std::int64_t restarts_within(std::span<const TimePoint> window, std::chrono::nanoseconds restart_window,
                                           TimePoint at) {
    const auto from = at - std::chrono::duration_cast<typename TimePoint::duration>(restart_window);
    return std::count_if(window.begin(), window.end(), [from](const TimePoint& t) { return t > from; });
}

/// The breaker opens (or, after a failed trial, reopens) at `now`, the current cooldown being `current`.
template <typename TimePoint>
[[nodiscard]] QuarantineUntil<TimePoint> quarantine_decision(const RestartPolicy& policy,
                                                             std::chrono::nanoseconds current, TimePoint now) {
    const auto cooldown = next_quarantine_cooldown(policy, current);
    return {now + std::chrono::duration_cast<typename TimePoint::duration>(cooldown), cooldown};
}

/// The give-up of a component under `policy` at `now` (its limit reached, or `fatal`): GiveUpMode::quarantine
/// opens the breaker instead.
template <typename TimePoint>
[[nodiscard]] RestartDecision<TimePoint> give_up_decision(const RestartPolicy& policy,
                                                          std::chrono::nanoseconds quarantine_cooldown, bool fatal,
                                                          TimePoint now) {
    if (policy.give_up_mode == GiveUpMode::quarantine) {
        return quarantine_decision(policy, quarantine_cooldown, now);
    }
    return GiveUp{policy.give_up_mode, fatal ? 0 : policy.max_restart_attempts};
}

/// The restart of a failed component (FailureRoute::restart), decided at `now`: a failed quarantine trial reopens
/// the breaker; otherwise the next backoff (k = consecutive + 1, jittered with `draw`), unless the failure is
/// `counted` and max_restart_attempts counted restarts already happened within the restart_window before the
/// restart would happen. The limit holds for restarts as they happen, not as they are decided: checked against
/// `now`, a backoff that shrinks (reset_backoff_after, jitter) would let more restarts than the limit happen
/// within one window.
template <typename TimePoint>
[[nodiscard]] RestartDecision<TimePoint> decide_restart(const RestartHistory<TimePoint>& history,
                                                        const RestartPolicy& policy, bool counted, TimePoint now,
                                                        std::optional<double> draw) {
    if (history.in_trial) {
        return quarantine_decision(policy, history.quarantine_cooldown, now);
    }
    const int k = history.consecutive + 1;
    const auto delay = jittered_backoff(policy, k, history.last_delay, draw);
    const auto at = now + std::chrono::duration_cast<typename TimePoint::duration>(delay);
    if (counted && restarts_within(history.window, policy.restart_window, at) >= policy.max_restart_attempts) {
        return give_up_decision(policy, history.quarantine_cooldown, false, now);
    }
    return RestartAt<TimePoint>{at, k, delay};
}

/// The most restarts a window remembers under unlimited_restart_attempts (restarts_in_window saturates there).
inline constexpr std::size_t unlimited_window_memory = 10'000;

/// Adds a restart that happened at `now` to `window` (oldest first), forgetting the oldest past
/// unlimited_window_memory.
template <typename TimePoint, typename Vector>
void remember_restart(Vector& window, TimePoint now) {
    if (window.size() >= unlimited_window_memory) {
        window.erase(window.begin());
    }
    window.push_back(now);
}

/// Drops from `window` the restarts that no decision from `now` on can count (older than the restart_window).
template <typename TimePoint, typename Vector>
void forget_restarts_before(Vector& window, std::chrono::nanoseconds restart_window, TimePoint now) {
    const auto from = now - std::chrono::duration_cast<typename TimePoint::duration>(restart_window);
    std::erase_if(window, [from](const TimePoint& t) { return t <= from; });
}

}  // namespace taskmon::detail

// taskmon — coroutine supervision for standalone Asio.
// SPDX-License-Identifier: MIT
//
// The liveness check of a running instance as a pure function of values (internal; the monitor's watch applies
// it): which deadline passed, whether a quarantine trial's probation ended, and when to look again.
#pragma once

#include <taskmon/restart_policy.hpp>

#include <algorithm>
#include <chrono>
#include <optional>

namespace taskmon::detail {

/// What the check reads of a running instance that no one asked to stop.
template <typename TimePoint>
struct LivenessFacts {
    TimePoint started;
    std::optional<TimePoint> ready;           ///< when it last became ready; empty: not ready yet
    bool watched = false;                     ///< it has a liveness record (a context, or a liveness policy)
    TimePoint last_beat{};                    ///< its last heartbeat (watched only)
    bool idle = false;                        ///< it declared itself idle (watched only)
    std::optional<TimePoint> extended_until;  ///< a deadline extended by extend_deadline() (watched only)
    bool in_trial = false;                    ///< it is a quarantine trial
};

enum class LivenessMiss {
    none,
    startup,   ///< not ready within startup_timeout
    watchdog,  ///< no heartbeat within watchdog_timeout (idle_timeout while idle), nor an extended deadline
};

template <typename TimePoint>
struct LivenessVerdict {
    LivenessMiss missed = LivenessMiss::none;
    std::chrono::nanoseconds timeout{};  ///< the timeout it missed (the event's delay)
    bool breaker_closes = false;         ///< a trial stayed ready for reset_backoff_after: the breaker closes
    std::optional<TimePoint> next;       ///< when to look again (unless missed); empty: no deadline pending
};

/// A liveness deadline of a running instance: when, and what passing it is.
template <typename TimePoint>
struct LivenessDeadline {
    TimePoint at;
    LivenessMiss miss = LivenessMiss::none;  ///< what passing it is: startup or watchdog
    std::chrono::nanoseconds timeout{};      ///< the timeout it comes from (the event's delay)
};

/// The deadline a running instance must meet next: startup_timeout from its start while it is watched and not
/// ready; once ready, its last heartbeat plus watchdog_timeout (idle_timeout while idle), or a later deadline
/// granted by extend_deadline(). Empty when none applies (not watched, the timeout is zero, or idle with no
/// idle_timeout). The one definition of the deadlines: evaluate_liveness() and ComponentStats read it.
template <typename TimePoint>
[[nodiscard]] std::optional<LivenessDeadline<TimePoint>> liveness_deadline(const LivenessFacts<TimePoint>& facts,
                                                                           const RestartPolicy& policy) {
    using duration = typename TimePoint::duration;
    if (!facts.watched) {
        return std::nullopt;
    }
    if (!facts.ready) {
        if (policy.startup_timeout <= std::chrono::milliseconds::zero()) {
            return std::nullopt;
        }
        return LivenessDeadline<TimePoint>{facts.started + std::chrono::duration_cast<duration>(policy.startup_timeout),
                                           LivenessMiss::startup, policy.startup_timeout};
    }
    if (policy.watchdog_timeout <= std::chrono::milliseconds::zero()) {
        return std::nullopt;
    }
    const auto timeout = facts.idle ? policy.idle_timeout : policy.watchdog_timeout;
    std::optional<TimePoint> at;
    if (timeout > std::chrono::milliseconds::zero()) {
        at = facts.last_beat + std::chrono::duration_cast<duration>(timeout);
    }
    if (facts.extended_until) {
        at = std::max(at.value_or(*facts.extended_until), *facts.extended_until);
    }
    if (!at) {
        return std::nullopt;
    }
    return LivenessDeadline<TimePoint>{*at, LivenessMiss::watchdog, timeout};
}

/// The liveness check of an instance at `now` under `policy`. A missed deadline ends the check (the instance is
/// stopped). An idle instance, or one whose heartbeat has no deadline at the moment, is looked at again within one
/// watchdog_timeout: it may turn busy() at any moment without telling the monitor, and a busy instance that stops
/// heartbeating must be caught on time.
template <typename TimePoint>
[[nodiscard]] LivenessVerdict<TimePoint> evaluate_liveness(const LivenessFacts<TimePoint>& facts,
                                                           const RestartPolicy& policy, TimePoint now) {
    using duration = typename TimePoint::duration;
    LivenessVerdict<TimePoint> verdict;
    const auto sooner = [&verdict](TimePoint t) { verdict.next = verdict.next ? std::min(*verdict.next, t) : t; };
    const auto deadline = liveness_deadline(facts, policy);
    if (deadline && now >= deadline->at) {
        return {deadline->miss, deadline->timeout, false, std::nullopt};
    }
    if (deadline) {
        sooner(deadline->at);
    }
    const bool heartbeat_watched =
        facts.watched && facts.ready && policy.watchdog_timeout > std::chrono::milliseconds::zero();
    if (heartbeat_watched && (facts.idle || !deadline)) {
        sooner(now + std::chrono::duration_cast<duration>(policy.watchdog_timeout));
    }
    if (facts.in_trial && facts.ready) {
        const auto end = *facts.ready + std::chrono::duration_cast<duration>(policy.reset_backoff_after);
        if (now >= end) {
            verdict.breaker_closes = true;
        } else {
            sooner(end);
        }
    }
    return verdict;
}

}  // namespace taskmon::detail

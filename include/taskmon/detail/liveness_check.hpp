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
    if (facts.watched && !facts.ready) {
        if (policy.startup_timeout > std::chrono::milliseconds::zero()) {
            const auto deadline = facts.started + std::chrono::duration_cast<duration>(policy.startup_timeout);
            if (now >= deadline) {
                return {LivenessMiss::startup, policy.startup_timeout, false, std::nullopt};
            }
            sooner(deadline);
        }
    } else if (facts.watched && policy.watchdog_timeout > std::chrono::milliseconds::zero()) {
        const auto timeout = facts.idle ? policy.idle_timeout : policy.watchdog_timeout;
        std::optional<TimePoint> deadline;
        if (timeout > std::chrono::milliseconds::zero()) {
            deadline = facts.last_beat + std::chrono::duration_cast<duration>(timeout);
        }
        if (facts.extended_until) {
            deadline = std::max(deadline.value_or(*facts.extended_until), *facts.extended_until);
        }
        if (deadline && now >= *deadline) {
            return {LivenessMiss::watchdog, timeout, false, std::nullopt};
        }
        if (deadline) {
            sooner(*deadline);
        }
        if (facts.idle || !deadline) {
            sooner(now + std::chrono::duration_cast<duration>(policy.watchdog_timeout));
        }
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

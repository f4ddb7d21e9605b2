// taskmon — coroutine supervision for standalone Asio.
// SPDX-License-Identifier: MIT
//
// Internal: StallWatch, the state and arithmetic of a Supervisor's perception watchdog. Plain synchronous
// code over time points the caller reads: the perception_watchdog loop of detail/supervisor_state.hpp ticks
// it every period() and acts on what check() says (records the stall, restarts perception, or fails the run).
#pragma once

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <stdexcept>

namespace taskmon::detail {

/// What one watchdog tick found.
template <typename Duration>
struct StallCheck {
    enum class Kind {
        quiet,    ///< within the grace, or something was published within the timeout
        stall,    ///< silent for at least the timeout: perception is to be restarted, actuation is held
        give_up,  ///< the max_consecutive-th stall in a row: the run is to fail
    };
    Kind kind = Kind::quiet;
    Duration silent_for{};   ///< stall / give_up: since the last publish or the last grace, whichever is later
    std::size_t stalls = 0;  ///< stall / give_up: stalls in a row, this one included
};

/// The perception watchdog's state: when perception last published, the grace in force, the stalls in a row.
///
/// Invariants: a tick within the grace (until grace_until()), while perception is parked, or less than timeout()
/// after max(last publish, last grace start, last unpark) finds nothing; every other tick counts one more stall in
/// a row, until a publish resets the count; a stall below max_consecutive starts a fresh grace from its tick and
/// holds actuation until the next publish (stalled()); the max_consecutive-th gives up and changes nothing else.
template <typename Clock>
class StallWatch {
public:
    using Duration = typename Clock::duration;
    using TimePoint = typename Clock::time_point;
    using Check = StallCheck<Duration>;

    /// Throws std::invalid_argument naming the bad argument: timeout must be > 0, startup_grace >= 0,
    /// max_consecutive > 0.
    StallWatch(Duration timeout, Duration startup_grace, std::size_t max_consecutive)
        : timeout_(timeout), grace_(startup_grace), max_consecutive_(max_consecutive) {
        if (timeout_ <= Duration::zero()) throw std::invalid_argument("StallWatch timeout must be > 0");
        if (grace_ < Duration::zero()) throw std::invalid_argument("StallWatch startup_grace must be >= 0");
        if (max_consecutive_ == 0) throw std::invalid_argument("StallWatch max_consecutive must be > 0");
    }

    /// How often the watchdog ticks: half the timeout.
    Duration period() const noexcept { return timeout_ / 2; }
    Duration timeout() const noexcept { return timeout_; }
    std::size_t max_consecutive() const noexcept { return max_consecutive_; }

    /// A fresh start at `now` (the run started, resumed, or perception restarted): no stall is detected before
    /// now + startup_grace, and silence is measured from `now` at the earliest.
    void grant_grace(TimePoint now) noexcept {
        epoch_ = now;
        grace_until_ = now + grace_;
    }

    /// Perception published at `now`: the stalls in a row start again from zero and actuation is no longer
    /// held. Returns true when this publish ended a stall (perception recovered).
    bool on_publish(TimePoint now) noexcept {
        last_publish_ = now;
        consecutive_ = 0;
        const bool recovered = stalled_;
        stalled_ = false;
        return recovered;
    }

    /// Perception waits on purpose (it captures on demand and no step can use an observation now): its silence
    /// is not a stall until unpark().
    void park() noexcept { parked_ = true; }
    /// Perception captures again from `now`: silence is measured from `now` at the earliest.
    void unpark(TimePoint now) noexcept {
        if (!parked_) return;
        parked_ = false;
        epoch_ = std::max(epoch_, now);
    }
    bool parked() const noexcept { return parked_; }

    /// One tick at `now` while the run is running (the caller skips ticks otherwise).
    Check check(TimePoint now) noexcept {
        if (parked_ || now < grace_until_) return {};
        const TimePoint reference = std::max(last_publish_, epoch_);
        if (now - reference < timeout_) return {};
        ++consecutive_;
        const Duration silent = now - reference;
        if (consecutive_ >= max_consecutive_) return {Check::Kind::give_up, silent, consecutive_};
        stalled_ = true;
        grant_grace(now);
        return {Check::Kind::stall, silent, consecutive_};
    }

    /// A stall was detected and perception has not published since: actuation is held.
    bool stalled() const noexcept { return stalled_; }
    std::size_t consecutive_stalls() const noexcept { return consecutive_; }
    TimePoint grace_until() const noexcept { return grace_until_; }

private:
    Duration timeout_;
    Duration grace_;
    std::size_t max_consecutive_;
    TimePoint last_publish_{};
    TimePoint epoch_{};  ///< the last grant_grace()
    TimePoint grace_until_{};
    std::size_t consecutive_ = 0;
    bool stalled_ = false;
    bool parked_ = false;
};

}  // namespace taskmon::detail

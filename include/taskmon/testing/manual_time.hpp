// taskmon — coroutine supervision for standalone Asio.
// SPDX-License-Identifier: MIT
//
// ManualClock and ManualTime: a clock whose time only moves when a test moves it, one ManualTime per thread
// (see taskmon/testing/manual_clock.hpp for the rules, the timer and the runner).
#pragma once

#include <taskmon/detail/config.hpp>
#include <taskmon/duration.hpp>

#include <asio/wait_traits.hpp>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <limits>
#include <stdexcept>

namespace taskmon::testing {

class ManualTime;

/// A clock whose time only moves when a test moves it. Satisfies the Clock requirements of std::chrono,
/// asio::basic_waitable_timer and taskmon::BasicTaskMonitor. now() reads the calling thread's ManualTime.
struct ManualClock {
    using rep = std::int64_t;
    using period = std::nano;
    using duration = std::chrono::nanoseconds;
    using time_point = std::chrono::time_point<ManualClock, duration>;
    static constexpr bool is_steady = true;

    static time_point now() noexcept;
};

namespace detail {

inline ManualTime*& installed_manual_time() noexcept {
    thread_local ManualTime* current = nullptr;
    return current;
}

}  // namespace detail

/// One test's virtual time. Invariant: time never goes backwards. Reading and advancing are thread-safe
/// (atomics), but see the file comment for which thread's clock a ManualClock::now() call reads.
class ManualTime {
public:
    using duration = ManualClock::duration;
    using time_point = ManualClock::time_point;

    /// Starts at `start` and installs itself on the constructing thread.
    explicit ManualTime(time_point start = time_point{}) noexcept
        : now_ns_{start.time_since_epoch().count()}, start_{start}, previous_{detail::installed_manual_time()} {
        detail::installed_manual_time() = this;
    }

    ~ManualTime() {
        if (detail::installed_manual_time() == this) {
            detail::installed_manual_time() = previous_;
        }
    }

    ManualTime(const ManualTime&) = delete;
    ManualTime& operator=(const ManualTime&) = delete;

    /// Installs a ManualTime on the current thread for the lifetime of the scope, restoring the previous one.
    class Scope {
    public:
        explicit Scope(ManualTime& time) noexcept : previous_{detail::installed_manual_time()} {
            detail::installed_manual_time() = &time;
        }
        ~Scope() { detail::installed_manual_time() = previous_; }
        Scope(const Scope&) = delete;
        Scope& operator=(const Scope&) = delete;

    private:
        ManualTime* previous_;
    };

    [[nodiscard]] time_point now() const noexcept {
        return time_point{duration{now_ns_.load(std::memory_order_acquire)}};
    }

    /// Virtual time elapsed since construction.
    [[nodiscard]] duration elapsed() const noexcept { return now() - start_; }

    /// Moves time forward by `d` (any std::chrono::duration). Throws std::invalid_argument if `d` is negative.
    void advance(Duration d) {
        if (d < duration::zero()) {
            throw std::invalid_argument("ManualTime::advance: duration must not be negative");
        }
        now_ns_.fetch_add(d.count(), std::memory_order_acq_rel);
    }

    /// Moves time forward to `t`; a `t` in the past leaves the time unchanged (time never goes backwards).
    void advance_to(time_point t) noexcept {
        auto current = now_ns_.load(std::memory_order_acquire);
        const auto target = t.time_since_epoch().count();
        while (current < target && !now_ns_.compare_exchange_weak(current, target, std::memory_order_acq_rel)) {
        }
    }

    /// Earliest ManualClock deadline the reactor reported since the last forget_deadlines(), if any. The runner
    /// uses this; tests normally do not need it.
    [[nodiscard]] bool next_deadline(time_point& out) const noexcept {
        const auto ns = earliest_ns_.load(std::memory_order_acquire);
        if (ns == no_deadline) {
            return false;
        }
        out = time_point{duration{ns}};
        return true;
    }

    void forget_deadlines() noexcept { earliest_ns_.store(no_deadline, std::memory_order_release); }

    /// Called by asio::wait_traits<ManualClock> whenever the reactor computes how long to wait.
    void note_deadline(time_point t) noexcept {
        const auto ns = t.time_since_epoch().count();
        auto current = earliest_ns_.load(std::memory_order_acquire);
        while (ns < current && !earliest_ns_.compare_exchange_weak(current, ns, std::memory_order_acq_rel)) {
        }
    }

    /// The ManualTime that ManualClock::now() reads on this thread (the fallback instance if none is installed).
    static ManualTime& current() noexcept {
        if (auto* installed = detail::installed_manual_time()) {
            return *installed;
        }
        return fallback();
    }

private:
    static constexpr std::int64_t no_deadline = std::numeric_limits<std::int64_t>::max();

    struct FallbackTag {};
    explicit ManualTime(FallbackTag) noexcept : now_ns_{0}, start_{}, previous_{nullptr} {}

    static ManualTime& fallback() noexcept {
        static ManualTime instance{FallbackTag{}};
        return instance;
    }

    std::atomic<std::int64_t> now_ns_;
    std::atomic<std::int64_t> earliest_ns_{no_deadline};
    time_point start_;
    ManualTime* previous_;
};

inline ManualClock::time_point ManualClock::now() noexcept { return ManualTime::current().now(); }

}  // namespace taskmon::testing

/// A wait on a virtual deadline is never a wait in real time; the deadline is reported to the calling thread's
/// ManualTime, which is how the timer service finds its earliest deadline (ManualTimerService::next_deadline).
template <>
struct asio::wait_traits<taskmon::testing::ManualClock> {
    using clock = taskmon::testing::ManualClock;

    static clock::duration to_wait_duration(const clock::duration& d) noexcept {
        auto& time = taskmon::testing::ManualTime::current();
        const auto now = time.now();
        // Saturate: a timer at time_point::max() ("never") must not overflow, and is never jumped to.
        const bool overflows = d > clock::time_point::max() - now;
        time.note_deadline(overflows ? clock::time_point::max() : now + d);
        return clock::duration::zero();
    }

    static clock::duration to_wait_duration(const clock::time_point& t) noexcept {
        taskmon::testing::ManualTime::current().note_deadline(t);
        return clock::duration::zero();
    }
};

// taskmon — coroutine supervision for standalone Asio.
// SPDX-License-Identifier: MIT
//
// Virtual time for tests: a manual clock that Asio timers (and BasicTaskMonitor) accept as their Clock, and a
// runner that drives an io_context and jumps the clock to the next pending deadline whenever nothing is ready
// (like Tokio's paused time or Trio's autojump clock). An hour of backoff runs in microseconds and never flakes.
//
//   taskmon::testing::ManualTime time;                       // this thread's virtual time, starts at 0
//   asio::io_context io;
//   taskmon::testing::ManualTimer timer{io, 1h};
//   taskmon::testing::VirtualTimeRunner runner{io, time};
//   runner.run();                                            // returns at once; time.elapsed() == 1h
//
// Rules:
// - ManualClock::now() reads the ManualTime installed on the calling thread. A ManualTime installs itself on
//   the thread that constructs it (restoring the previous one when destroyed); ManualTime::Scope installs it on
//   another thread. Separate tests on separate threads therefore never share a clock. Calling now() on a thread
//   with no ManualTime installed reads a process-wide fallback instance that stays at time zero: do not rely on
//   it, and do not let concurrently running tests share it.
// - The runner is single-threaded: it drives the io_context with poll() on the calling thread, so a context
//   driven by it must not be run() by other threads at the same time.
// - Only timers on ManualClock are virtual. Real-clock timers (asio::steady_timer) in the same io_context still
//   wait in real time; while one is pending the runner cannot tell that the context is idle in virtual time.
// - asio::wait_traits<ManualClock> is specialised so that the reactor never sleeps on a virtual deadline. Under
//   a plain io_context::run() a pending ManualTimer therefore busy-polls: drive such contexts with the runner.
// - A timer at ManualClock::time_point::max() means "never": the runner does not jump to it.
#pragma once

#include <taskmon/detail/config.hpp>

#include <asio/basic_waitable_timer.hpp>
#include <asio/io_context.hpp>
#include <asio/wait_traits.hpp>

#include <atomic>
#include <chrono>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>

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

/// An Asio timer on virtual time.
using ManualTimer = asio::basic_waitable_timer<ManualClock>;

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

    /// Moves time forward by `d`. Throws std::invalid_argument if `d` is negative.
    void advance(duration d) {
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

/// Drives an io_context in virtual time on the calling thread: runs every ready handler (poll_one); when
/// nothing is ready, jumps the ManualTime to the earliest pending ManualClock deadline and continues.
/// Every entry point returns the number of handlers it ran. Handlers run on the calling thread, so completion
/// order is deterministic for a given program.
class VirtualTimeRunner {
public:
    using duration = ManualClock::duration;
    using time_point = ManualClock::time_point;

    struct Limits {
        /// Upper bound on the handlers run plus clock jumps made by one call. A program that never goes idle
        /// (e.g. a handler that keeps re-posting itself) makes the call throw std::runtime_error instead of
        /// hanging the test.
        std::size_t max_steps = 50'000'000;
    };

    VirtualTimeRunner(asio::io_context& io, ManualTime& time) : VirtualTimeRunner(io, time, Limits{}) {}
    VirtualTimeRunner(asio::io_context& io, ManualTime& time, Limits limits) : io_{io}, time_{time}, limits_{limits} {}

    /// Runs ready handlers without moving time.
    std::size_t poll() {
        ManualTime::Scope scope{time_};
        std::size_t steps = 0;
        return poll_ready(steps);
    }

    /// Runs until the io_context has no work left, jumping time as needed. Returns early if the context is
    /// idle but still has work that no virtual timer will complete (e.g. a real-clock timer or an external
    /// event); check io.stopped() to tell the two apart.
    std::size_t run() {
        return drive([] { return false; }, std::nullopt, false);
    }

    /// Runs until virtual time reaches `deadline` (handlers due exactly at `deadline` run too). If the context
    /// runs out of timers earlier, time still advances to `deadline`.
    std::size_t run_until(time_point deadline) {
        return drive([] { return false; }, deadline, true);
    }

    /// run_until(now + d).
    std::size_t run_for(duration d) {
        if (d < duration::zero()) {
            throw std::invalid_argument("VirtualTimeRunner::run_for: duration must not be negative");
        }
        return run_until(time_.now() + d);
    }

    /// Runs until `pred()` is true (checked after every poll round), the context has nothing left to do, or
    /// `timeout` of virtual time has passed. Returns pred().
    template <typename Predicate>
        requires std::invocable<Predicate&>
    bool run_until(Predicate&& pred, duration timeout = std::chrono::hours{24 * 365}) {
        drive(pred, time_.now() + timeout, false);
        return static_cast<bool>(pred());
    }

private:
    std::size_t poll_ready(std::size_t& steps) {
        if (io_.stopped()) {
            io_.restart();
        }
        std::size_t ran = 0;
        while (io_.poll_one() != 0) {
            ++ran;
            count_step(steps);
        }
        return ran;
    }

    void count_step(std::size_t& steps) const {
        if (++steps > limits_.max_steps) {
            throw std::runtime_error("VirtualTimeRunner: the io_context did not go idle within " +
                                     std::to_string(limits_.max_steps) + " steps");
        }
    }

    template <typename Predicate>
    std::size_t drive(Predicate&& pred, std::optional<time_point> deadline, bool advance_to_deadline) {
        ManualTime::Scope scope{time_};
        std::size_t handlers = 0;
        std::size_t steps = 0;
        for (;;) {
            time_.forget_deadlines();
            const auto ran = poll_ready(steps);
            handlers += ran;
            if (pred()) {
                return handlers;
            }
            if (ran != 0) {
                continue;
            }
            // Idle: nothing ran, so the reactor's last report is the current earliest virtual deadline.
            time_point next{};
            const bool has_timer =
                !io_.stopped() && time_.next_deadline(next) && next != time_point::max();  // max: "never"
            if (!has_timer || (deadline && next > *deadline)) {
                if (deadline && advance_to_deadline && time_.now() < *deadline) {
                    time_.advance_to(*deadline);
                    count_step(steps);
                    continue;  // anything due exactly at the deadline still runs
                }
                return handlers;
            }
            time_.advance_to(next);
            count_step(steps);
        }
    }

    asio::io_context& io_;
    ManualTime& time_;
    Limits limits_;
};

}  // namespace taskmon::testing

/// The reactor never sleeps on a virtual deadline (it would sleep in real time); it reports the deadline to the
/// calling thread's ManualTime so VirtualTimeRunner knows where to jump.
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

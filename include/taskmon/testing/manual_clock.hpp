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
// - ManualClock timers never enter the reactor (taskmon/detail/manual_timer_service.hpp): a wait fires when the
//   runner finds it due, or at once if it starts due. Nothing moves virtual time under a plain
//   io_context::run(): a pending ManualTimer then waits, without spinning, until it is cancelled.
// - A timer at ManualClock::time_point::max() means "never": the runner does not jump to it.
#pragma once

#include <taskmon/detail/config.hpp>
#include <taskmon/detail/manual_timer_service.hpp>
#include <taskmon/testing/detail/virtual_time_run.hpp>
#include <taskmon/testing/manual_time.hpp>

#include <asio/basic_waitable_timer.hpp>
#include <asio/io_context.hpp>

#include <chrono>
#include <concepts>
#include <cstddef>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>

namespace taskmon::testing {

/// An Asio timer on virtual time.
using ManualTimer = asio::basic_waitable_timer<ManualClock>;

namespace detail {

/// The service of every ManualClock timer in an execution context (taskmon/detail/manual_timer_service.hpp).
using ManualTimerService =
    asio::detail::deadline_timer_service<asio::detail::chrono_time_traits<ManualClock, asio::wait_traits<ManualClock>>>;

}  // namespace detail

/// Drives an io_context in virtual time on the calling thread: runs every ready handler (poll_one); when
/// nothing is ready, jumps the ManualTime to the earliest pending ManualClock deadline and continues.
/// Every entry point returns the number of handlers it ran. Handlers run on the calling thread, so completion
/// order is deterministic for a given program. run(), run_until() and run_for() are VirtualTimeRun's; run()
/// returns early if the context is idle but still has work that no virtual timer will complete (a real-clock
/// timer, an external event): io.stopped() tells the two apart.
class VirtualTimeRunner : public detail::VirtualTimeRun<VirtualTimeRunner> {
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
    VirtualTimeRunner(asio::io_context& io, ManualTime& time, Limits limits)
        : io_{io}, time_{time}, limits_{limits}, timers_{asio::use_service<detail::ManualTimerService>(io)} {}

    /// Runs ready handlers without moving time.
    std::size_t poll() {
        ManualTime::Scope scope{time_};
        std::size_t steps = 0;
        return poll_ready(steps);
    }

private:
    friend class detail::VirtualTimeRun<VirtualTimeRunner>;
    static constexpr const char* run_name = "VirtualTimeRunner";

    [[nodiscard]] time_point now() const noexcept { return time_.now(); }

    std::size_t poll_ready(std::size_t& steps) {
        if (io_.stopped()) {
            io_.restart();
        }
        std::size_t ran = 0;
        for (;;) {
            timers_.fire_due();  // between handlers, where the reactor would have looked
            if (io_.poll_one() == 0) {
                break;
            }
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
            const auto ran = poll_ready(steps);
            handlers += ran;
            if (pred()) {
                return handlers;
            }
            if (ran != 0) {
                continue;
            }
            // Idle: nothing ran and nothing is due.
            const auto earliest = timers_.next_deadline();
            const auto next = earliest.value_or(time_point::max());
            const bool has_timer = !io_.stopped() && earliest && next != time_point::max();  // max: "never"
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
    detail::ManualTimerService& timers_;
};

}  // namespace taskmon::testing

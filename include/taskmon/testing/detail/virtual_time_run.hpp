// taskmon — coroutine supervision for standalone Asio.
// SPDX-License-Identifier: MIT
//
// Internal: VirtualTimeRun, the run functions that VirtualTimeRunner and Simulation share over their own loop.
#pragma once

#include <taskmon/testing/manual_time.hpp>

#include <chrono>
#include <concepts>
#include <cstddef>
#include <optional>
#include <stdexcept>
#include <string>

namespace taskmon::testing::detail {

/// run(), run_until() and run_for() of a driver of virtual time (CRTP). `Derived` provides, to this base (a friend):
/// `std::size_t drive(Predicate&& pred, std::optional<time_point> deadline, bool advance_to_deadline)`, its loop
/// (runs until pred() holds, nothing is left, or the next deadline is past `deadline`, then, if asked, moves the
/// clock to `deadline`; returns the handlers it ran), `time_point now() const`, and `run_name`, its class's name
/// for messages.
template <typename Derived>
class VirtualTimeRun {
public:
    using duration = ManualClock::duration;
    using time_point = ManualClock::time_point;

    /// Runs until nothing is ready and no virtual timer is pending. Returns the handlers it ran.
    std::size_t run() {
        return self().drive([] { return false; }, std::nullopt, false);
    }

    /// Runs until virtual time reaches `deadline` (handlers due exactly then run too); time ends at `deadline`
    /// even if the program went idle earlier.
    std::size_t run_until(time_point deadline) {
        return self().drive([] { return false; }, deadline, true);
    }

    /// run_until(now() + d), `d` any std::chrono::duration. Throws std::invalid_argument if `d` is negative.
    std::size_t run_for(Duration d) {
        if (d < duration::zero()) {
            throw std::invalid_argument(std::string{Derived::run_name} + "::run_for: duration must not be negative");
        }
        return run_until(self().now() + d);
    }

    /// Runs until `pred()` holds (checked after every handler, or every poll round), the program goes idle, or `timeout` of virtual
    /// time passes. Returns pred().
    template <typename Predicate>
        requires std::invocable<Predicate&>
    bool run_until(Predicate&& pred, duration timeout = std::chrono::hours{24 * 365}) {
        self().drive(pred, self().now() + timeout, false);
        return static_cast<bool>(pred());
    }

protected:
    VirtualTimeRun() = default;
    ~VirtualTimeRun() = default;

private:
    Derived& self() noexcept { return static_cast<Derived&>(*this); }
};

}  // namespace taskmon::testing::detail

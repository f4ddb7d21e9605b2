// taskmon — coroutine supervision for standalone Asio.
// SPDX-License-Identifier: MIT
//
// TimeoutError: what a Supervisor call (perceive(), decide(), act()) that exceeded its timeout ends with.
#pragma once

#include <stdexcept>

namespace taskmon {

/// Thrown inside the Supervisor when perceive(), decide() or act() exceeds its timeout (capture_timeout,
/// decide_timeout, act_timeout), once the call exits after the cancellation its timeout emitted. A TimeoutError
/// that act() throws itself counts like any other exception from act(): the action's effect is unknown.
class TimeoutError : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

}  // namespace taskmon

// taskmon — coroutine supervision for standalone Asio.
// SPDX-License-Identifier: MIT
//
// MonitorClosed: what a TaskMonitor call that would change the monitor throws once close() started.
#pragma once

#include <stdexcept>

namespace taskmon {

/// Thrown by every mutating TaskMonitor call (spawn(), supervise(), register_task(), restart(), subscribe() …)
/// once close() started; the call changed nothing. An accept loop that spawns a task per connection catches this
/// one type to end quietly when the monitor closes:
///   try { monitor.spawn(name, serve(std::move(socket))); } catch (const taskmon::MonitorClosed&) { co_return; }
/// Catching std::logic_error instead would also swallow std::invalid_argument (a duplicate name, a bad policy),
/// which derives from it, and end the loop silently for a reason that is a bug. Derives from std::logic_error, so
/// code written for earlier versions, which threw a plain std::logic_error here, still catches it.
class MonitorClosed : public std::logic_error {
public:
    using std::logic_error::logic_error;
};

}  // namespace taskmon

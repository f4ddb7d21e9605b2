// taskmon — coroutine supervision for standalone Asio.
// SPDX-License-Identifier: MIT
//
// Internal: where the completions of BasicTaskMonitor's asynchronous calls wait. BasicTaskMonitor's
// completion-token functions (task_monitor.hpp) make the operation for their handler (WaiterList::prepare),
// where the handler's type is known; MonitorState (detail/monitor_state.hpp) parks it without a template per
// completion token. Declared apart from MonitorState so that task_monitor.hpp needs only this header, not the
// state, under TASKMON_SEPARATE_COMPILATION.
#pragma once

#include <taskmon/detail/config.hpp>

#include <memory>
#include <tuple>

#include <taskmon/detail/waiter_list.hpp>
#include <taskmon/monitor_event.hpp>

namespace taskmon::detail {

/// close() / async_close(): void().
using CloseWaiters = WaiterList<std::tuple<>>;
/// remove_and_wait(): void(error_code); the payload is the component being removed (MonitorState's Component).
using RemoveWaiters = WaiterList<std::shared_ptr<void>>;
/// async_wait_escalation(): void(error_code, MonitorEvent).
using EscalationWaiters = WaiterList<std::tuple<>, MonitorEvent>;

}  // namespace taskmon::detail

// taskmon — coroutine supervision for standalone Asio.
// SPDX-License-Identifier: MIT
//
// TaskMonitor and Supervisor on a clock of one's own, under TASKMON_SEPARATE_COMPILATION. taskmon::compiled holds
// them for std::chrono::steady_clock (taskmon::compiled_testing adds taskmon::testing::ManualClock), and
// task_monitor.hpp and supervisor.hpp then only declare them. A translation unit that uses a BasicTaskMonitor or a
// Supervisor on another clock includes this header too (without it: undefined BasicTaskMonitor members at link
// time, or an incomplete SupervisorRuntimeFactory at compile time). Header-only builds need nothing more: the public headers define
// everything.
#pragma once

#include <taskmon/agent/supervisor.hpp>
#include <taskmon/detail/supervisor_state.hpp>
#include <taskmon/detail/task_monitor_impl.hpp>
#include <taskmon/task_monitor.hpp>

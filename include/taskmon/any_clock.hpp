// taskmon — coroutine supervision for standalone Asio.
// SPDX-License-Identifier: MIT
//
// TaskMonitor and Supervisor for any clock, under TASKMON_SEPARATE_COMPILATION. taskmon::compiled holds them for
// std::chrono::steady_clock and taskmon::testing::ManualClock, and task_monitor.hpp and supervisor.hpp then only
// declare them. A translation unit that uses a BasicTaskMonitor or a Supervisor on a clock of its own includes
// this header too (without it: undefined BasicTaskMonitor members at link time, or an incomplete
// SupervisorRuntimeFactory at compile time). Header-only builds need nothing more: the public headers define
// everything.
#pragma once

#include <taskmon/detail/supervisor_state.hpp>
#include <taskmon/detail/task_monitor_impl.hpp>
#include <taskmon/supervisor.hpp>
#include <taskmon/task_monitor.hpp>

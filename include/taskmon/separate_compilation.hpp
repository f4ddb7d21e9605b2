// taskmon — coroutine supervision for standalone Asio.
// SPDX-License-Identifier: MIT
//
// The compiled part of taskmon's optional separately compiled mode, in the manner of ASIO_SEPARATE_COMPILATION:
// define TASKMON_SEPARATE_COMPILATION in every translation unit of the program (CMake: link taskmon::compiled,
// which does both) and include this header in exactly one .cpp file. Translation units that include
// task_monitor.hpp or supervisor.hpp then compile no part of TaskMonitor (BasicTaskMonitor on the steady
// clock, and the MonitorState behind it) and link it from here. Other clocks (taskmon::testing::ManualClock)
// are still instantiated where they are used. See docs/building.md, "Compile time".
#pragma once

#include <taskmon/task_monitor.hpp>

#include <chrono>

namespace taskmon {
template class BasicTaskMonitor<std::chrono::steady_clock>;
}  // namespace taskmon

// taskmon — coroutine supervision for standalone Asio.
// SPDX-License-Identifier: MIT
//
// The compiled part of taskmon's optional separately compiled mode, in the manner of ASIO_SEPARATE_COMPILATION:
// define TASKMON_SEPARATE_COMPILATION in every translation unit of the program (CMake: link taskmon::compiled,
// which does both) and include this header in exactly one .cpp file. Translation units that include
// task_monitor.hpp or supervisor.hpp then neither parse nor compile TaskMonitor's machinery (BasicTaskMonitor's
// members and the MonitorState behind them) or the Supervisor's runtime (its six loops), and link them from here,
// for the steady clock; a Supervisor's agent-typed part is still compiled where it is used. Tests in virtual time
// add taskmon/testing/separate_compilation.hpp (ManualClock; CMake: taskmon::compiled_testing); another clock
// needs taskmon/custom_clock.hpp where it is used. See docs/building.md, "Compile time".
#pragma once

#include <taskmon/custom_clock.hpp>

#include <chrono>
#include <memory>
#include <utility>

namespace taskmon {
template class BasicTaskMonitor<std::chrono::steady_clock>;

#if defined(TASKMON_SEPARATE_COMPILATION)
namespace detail {
std::shared_ptr<SupervisorRuntime> SupervisorRuntimeFactory<std::chrono::steady_clock>::make(
    asio::any_io_executor executor, AgentSettings settings, RunHooks hooks, std::shared_ptr<spdlog::logger> logger,
    CpuSource cpu_source, std::shared_ptr<AgentBinding> binding) {
    return std::make_shared<SupervisorState<std::chrono::steady_clock>>(std::move(executor), std::move(settings),
                                                                        std::move(hooks), std::move(logger),
                                                                        std::move(cpu_source), std::move(binding));
}
}  // namespace detail
#endif
}  // namespace taskmon

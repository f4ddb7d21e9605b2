// taskmon — coroutine supervision for standalone Asio.
// SPDX-License-Identifier: MIT
//
// The test clock's part of the separately compiled mode: BasicTaskMonitor<testing::ManualClock> and the Supervisor's
// runtime on it, compiled once for a test program instead of in each of its translation units. Define
// TASKMON_SEPARATE_COMPILATION_MANUAL_CLOCK beside TASKMON_SEPARATE_COMPILATION in every translation unit of the
// program and include this header in exactly one .cpp file (CMake: link taskmon::compiled_testing, which does both
// on top of taskmon::compiled). Kept apart from taskmon/separate_compilation.hpp so that a production program's
// compiled library carries no test clock.
#pragma once

#include <taskmon/custom_clock.hpp>
#include <taskmon/testing/manual_clock.hpp>

#include <memory>
#include <utility>

namespace taskmon {
template class BasicTaskMonitor<testing::ManualClock>;

#if defined(TASKMON_SEPARATE_COMPILATION) && defined(TASKMON_SEPARATE_COMPILATION_MANUAL_CLOCK)
namespace detail {
std::shared_ptr<SupervisorRuntime> SupervisorRuntimeFactory<testing::ManualClock>::make(
    asio::any_io_executor executor, AgentSettings settings, RunHooks hooks, std::shared_ptr<spdlog::logger> logger,
    CpuSource cpu_source, std::shared_ptr<AgentBinding> binding) {
    return std::make_shared<SupervisorState<testing::ManualClock>>(std::move(executor), std::move(settings),
                                                                   std::move(hooks), std::move(logger),
                                                                   std::move(cpu_source), std::move(binding));
}
}  // namespace detail
#endif
}  // namespace taskmon

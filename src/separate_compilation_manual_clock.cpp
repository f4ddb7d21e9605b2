// The taskmon::compiled_testing library: TaskMonitor and the Supervisor's runtime on taskmon::testing::ManualClock,
// compiled once for test programs built with TASKMON_SEPARATE_COMPILATION and
// TASKMON_SEPARATE_COMPILATION_MANUAL_CLOCK (see taskmon/testing/separate_compilation.hpp and docs/building.md).
#include <taskmon/testing/separate_compilation.hpp>

// The taskmon::compiled library: TaskMonitor compiled once for programs built with TASKMON_SEPARATE_COMPILATION
// (see taskmon/separate_compilation.hpp and docs/building.md, "Compile time").
#include <taskmon/separate_compilation.hpp>

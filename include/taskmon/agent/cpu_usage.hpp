// taskmon — coroutine supervision for standalone Asio.
// SPDX-License-Identifier: MIT
//
// CpuUsage: one CPU sample as the Supervisor's load_shedding_monitor sees it, and CpuSource, where it comes from.
#pragma once

#include <functional>
#include <optional>

namespace taskmon {

/// CPU use over the interval between two samples, in percent of all cores (0..100).
struct CpuUsage {
    double system_percent = 0.0;   ///< the whole machine
    double process_percent = 0.0;  ///< this process
};

/// A source of CPU samples for the load_shedding_monitor (Supervisor's constructor); nullopt: unknown. The
/// default reads /proc/self/stat and /proc/stat.
using CpuSource = std::function<std::optional<CpuUsage>()>;

}  // namespace taskmon

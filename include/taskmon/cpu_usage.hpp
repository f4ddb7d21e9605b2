// taskmon — coroutine supervision for standalone Asio.
// SPDX-License-Identifier: MIT
//
// CpuUsage: one CPU sample as the Supervisor's load_shedding_monitor sees it (see CpuSource in supervisor.hpp).
#pragma once

namespace taskmon {

/// CPU use over the interval between two samples, in percent of all cores (0..100).
struct CpuUsage {
    double system_percent = 0.0;   ///< the whole machine
    double process_percent = 0.0;  ///< this process
};

}  // namespace taskmon

// taskmon — coroutine supervision for standalone Asio.
// SPDX-License-Identifier: MIT
//
// CpuUsage: one CPU sample as the Supervisor's load_shedding_monitor sees it; CpuSource, where it comes from; and
// SheddingChange, a change of load shedding that the samples decided (SupervisorHooks::on_shedding_change).
#pragma once

#include <chrono>
#include <functional>
#include <optional>
#include <string>

namespace taskmon {

/// CPU use over the interval between two samples, in percent of all cores (0..100).
struct CpuUsage {
    double system_percent = 0.0;   ///< the whole machine
    double process_percent = 0.0;  ///< this process
};

/// A source of CPU samples for the load_shedding_monitor (Supervisor's constructor); nullopt: unknown. The
/// default reads /proc/self/stat and /proc/stat.
using CpuSource = std::function<std::optional<CpuUsage>()>;

/// Load shedding started or ended (SupervisorHooks::on_shedding_change), with the sample that decided it.
struct SheddingChange {
    bool shedding = false;  ///< true: entered; false: left
    /// Decided by a load sample (`cpu` and `loop_lag` are that sample's). False when it ended without one: the run
    /// ended, or the load_shedding_monitor gave up and shedding failed open.
    bool sampled = false;
    std::optional<CpuUsage> cpu{};        ///< the sample's CPU use; empty when unknown (or not sampled)
    std::chrono::nanoseconds loop_lag{};  ///< the sample's event-loop lag (how late its timer fired)
    std::string reason{};                 ///< the words of the History event and the log line, for people
};

}  // namespace taskmon

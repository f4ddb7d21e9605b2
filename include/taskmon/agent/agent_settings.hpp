// taskmon — coroutine supervision for standalone Asio.
// SPDX-License-Identifier: MIT
//
// AgentSettings: every number a Supervisor run uses. The defaults are those of the agent runtime taskmon ports
// (docs/origin.md), except where a comment below says otherwise.
#pragma once

#include <chrono>
#include <cstddef>
#include <initializer_list>
#include <stdexcept>
#include <string>
#include <utility>

#include <taskmon/restart_policy.hpp>

namespace taskmon {

/// Settings of one Supervisor run. An aggregate for designated initializers; durations accept any std::chrono::duration (taskmon::Duration): `2s`, `1500ms`, `1.5s`.
/// validate() is called by the Supervisor's constructor.
struct AgentSettings {
    using Duration = taskmon::Duration;

    // --- steps ---------------------------------------------------------------------------------------------
    /// Steps finalized before the run ends as max_steps_reached (when no decision said done).
    std::size_t max_steps = 100;
    /// Consecutive failed steps before the run fails.
    std::size_t max_failures = 3;
    /// A decision with more actions is a step failure (none of its actions runs).
    std::size_t max_actions_per_step = 10;
    /// Steps kept in History::steps; older ones are evicted (counted in counters.steps_evicted). 0 keeps every
    /// step (max_steps bounds them): an eviction is counted, never silent.
    std::size_t max_history_items = 0;

    // --- perception ----------------------------------------------------------------------------------------
    /// Bound on one perceive() call; a capture that takes longer is a capture failure.
    Duration capture_timeout = std::chrono::seconds{10};
    /// Minimum time between the starts of two captures while not shedding. Zero: on demand, one capture per step,
    /// started as soon as no step is in flight and no fresh observation waits for one.
    Duration capture_interval = std::chrono::milliseconds{100};
    /// Minimum time between the starts of two captures while shedding load: 2 s, a twentieth of the default
    /// capture rate (capture_interval 100 ms), so a shedding agent perceives rarely but never goes blind.
    Duration shed_capture_interval = std::chrono::seconds{2};
    /// An observation older than this when the decider takes it is dropped, not decided on.
    Duration max_observation_age = std::chrono::seconds{10};

    // --- decision and actuation ----------------------------------------------------------------------------
    /// Bound on one decide() call; a timeout is a step failure.
    Duration decide_timeout = std::chrono::seconds{60};
    /// Bound on one act() call; a timeout is a failed action.
    Duration act_timeout = std::chrono::seconds{30};
    /// Decisions waiting for actuation (the FIFO between decision_loop and actuation_loop; backpressure).
    std::size_t decision_queue_capacity = 5;
    /// A decision not started by actuation within this time after it was made expires and none of its
    /// actions runs ("stale command → brake").
    Duration max_decision_age = std::chrono::seconds{30};

    // --- perception watchdog -------------------------------------------------------------------------------
    /// A stall is no publish within this time while running; checked every half of it.
    Duration perception_timeout = std::chrono::seconds{15};
    /// No stall is declared within this time after start, resume and each perception restart.
    Duration watchdog_startup_grace = std::chrono::seconds{30};
    /// Consecutive stalls (without a publish in between) after which the run fails.
    std::size_t max_consecutive_stalls = 3;

    // --- load shedding -------------------------------------------------------------------------------------
    /// Time between two load samples.
    Duration load_sample_interval = std::chrono::seconds{1};
    /// Enter shedding when CPU use (system, percent of all cores) reaches this.
    double shed_enter_cpu_percent = 98.0;
    /// Leave shedding only when CPU use is below this (and lag is below shed_leave_lag).
    double shed_leave_cpu_percent = 96.0;
    /// Enter shedding when the event loop's timer drift reaches this.
    Duration shed_enter_lag = std::chrono::milliseconds{500};
    /// Leave shedding only when the event loop's timer drift is below this (and CPU is below its threshold).
    Duration shed_leave_lag = std::chrono::milliseconds{100};
    /// While shedding, lower the global io_semaphore's count to this (restored when shedding ends and when
    /// the run ends); 0 leaves the io_semaphore alone.
    std::size_t shed_io_semaphore_count = 0;

    // --- supervision of the six components ---------------------------------------------------------------
    /// perception, perception_watchdog, decision_loop, actuation_loop: a give-up fails the run.
    RestartPolicy critical_restart_policy{};
    /// pause_handler, load_shedding_monitor: lower priority, so a longer backoff; a give-up degrades the run.
    RestartPolicy auxiliary_restart_policy{.base_backoff = std::chrono::seconds{10},
                                           .max_backoff = std::chrono::minutes{5}};

    /// Throws std::invalid_argument naming the first invalid field ("AgentSettings.max_steps must be > 0").
    void validate() const {
        require(max_steps > 0, "max_steps", "must be > 0");
        require(max_failures > 0, "max_failures", "must be > 0");
        require(max_actions_per_step > 0, "max_actions_per_step", "must be > 0");
        require(capture_timeout > Duration::zero(), "capture_timeout", "must be > 0");
        require(capture_interval >= Duration::zero(), "capture_interval", "must be >= 0");
        require(shed_capture_interval >= capture_interval, "shed_capture_interval", "must be >= capture_interval");
        require(max_observation_age > Duration::zero(), "max_observation_age", "must be > 0");
        require(decide_timeout > Duration::zero(), "decide_timeout", "must be > 0");
        require(act_timeout > Duration::zero(), "act_timeout", "must be > 0");
        require(decision_queue_capacity > 0, "decision_queue_capacity", "must be > 0");
        require(max_decision_age > Duration::zero(), "max_decision_age", "must be > 0");
        require(perception_timeout > Duration::zero(), "perception_timeout", "must be > 0");
        require(watchdog_startup_grace >= Duration::zero(), "watchdog_startup_grace", "must be >= 0");
        require(max_consecutive_stalls > 0, "max_consecutive_stalls", "must be > 0");
        require(load_sample_interval > Duration::zero(), "load_sample_interval", "must be > 0");
        require(shed_enter_cpu_percent > 0.0 && shed_enter_cpu_percent <= 100.0, "shed_enter_cpu_percent",
                "must be in (0, 100]");
        require(shed_leave_cpu_percent >= 0.0 && shed_leave_cpu_percent < shed_enter_cpu_percent,
                "shed_leave_cpu_percent", "must be in [0, shed_enter_cpu_percent)");
        require(shed_enter_lag > Duration::zero(), "shed_enter_lag", "must be > 0");
        require(shed_leave_lag >= Duration::zero() && shed_leave_lag < shed_enter_lag, "shed_leave_lag",
                "must be in [0, shed_enter_lag)");
        // Durations are added to clock readings: bounded so that no deadline overflows.
        for (const auto& [value, field] :
             {std::pair{capture_timeout, "capture_timeout"}, std::pair{capture_interval, "capture_interval"},
              std::pair{shed_capture_interval, "shed_capture_interval"},
              std::pair{max_observation_age, "max_observation_age"}, std::pair{decide_timeout, "decide_timeout"},
              std::pair{act_timeout, "act_timeout"}, std::pair{max_decision_age, "max_decision_age"},
              std::pair{perception_timeout, "perception_timeout"},
              std::pair{watchdog_startup_grace, "watchdog_startup_grace"},
              std::pair{load_sample_interval, "load_sample_interval"}, std::pair{shed_enter_lag, "shed_enter_lag"},
              std::pair{shed_leave_lag, "shed_leave_lag"}}) {
            require(value <= longest_duration_setting, field, "must not exceed 100 years");
        }
        taskmon::validate(critical_restart_policy, "AgentSettings.critical_restart_policy");
        taskmon::validate(auxiliary_restart_policy, "AgentSettings.auxiliary_restart_policy");
    }

private:
    static void require(bool ok, const char* field, const char* what) {
        if (!ok) throw std::invalid_argument(std::string{"AgentSettings."} + field + " " + what);
    }
};

}  // namespace taskmon

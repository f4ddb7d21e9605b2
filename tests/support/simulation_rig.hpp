// Test helpers for the simulation tests (test_simulation.cpp, test_fault_injection.cpp, test_fault_plan.cpp):
// the components they run and a monitor on a Simulation whose events are recorded with their virtual time.
#pragma once

#include <taskmon/task_monitor.hpp>
#include <taskmon/testing/fault_injection.hpp>
#include <taskmon/testing/simulation.hpp>

#include "monitor_harness.hpp"
#include "taskmon_catch.hpp"

#include <asio/co_spawn.hpp>
#include <asio/this_coro.hpp>
#include <asio/use_awaitable.hpp>

#include <chrono>
#include <cstdint>
#include <exception>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace taskmon_test {

/// A component that runs for a day of virtual time unless stopped: it never fails on its own.
inline asio::awaitable<void> steady() { return sleep_for(std::chrono::hours{24}); }

/// A component that heartbeats every 10 s until stopped.
inline asio::awaitable<void> beating(taskmon::ComponentContext context) {
    taskmon::testing::ManualTimer timer{co_await asio::this_coro::executor};
    for (;;) {
        context.heartbeat();
        timer.expires_after(std::chrono::seconds{10});
        co_await timer.async_wait(asio::use_awaitable);
    }
}

/// The policy of SimulationRig's monitor unless a test gives one: never gives up, restarts after 1 s.
inline const RestartPolicy rig_policy{.max_restart_attempts = taskmon::unlimited_restart_attempts,
                                      .base_backoff = std::chrono::seconds{1},
                                      .max_backoff = std::chrono::seconds{1},
                                      .shutdown_timeout = std::chrono::seconds{5}};

/// A Simulation under `seed` with a FaultInjector (drawing faults, or replaying `plan`) and one monitor (null
/// logger, the simulation's random source) whose events are recorded with the virtual time they came at and
/// folded into the simulation's trace (kind and component).
struct SimulationRig {
    using TimedEvent = std::pair<taskmon::MonitorEvent, ManualClock::time_point>;

    explicit SimulationRig(std::uint64_t seed, const RestartPolicy& policy = rig_policy,
                           const std::optional<taskmon::testing::FaultPlan>& plan = std::nullopt)
        : sim{seed},
          faults{plan ? taskmon::testing::FaultInjector{sim, *plan} : taskmon::testing::FaultInjector{sim}},
          monitor{std::make_unique<Monitor>(sim.get_executor(), policy, null_logger(), sim.random_source())},
          subscription{monitor->subscribe([this](const taskmon::MonitorEvent& e) {
              events.emplace_back(e, sim.now());
              sim.trace().add(std::string{taskmon::to_string(e.kind)}).add(e.component);
          })} {}

    ~SimulationRig() { monitor.reset(); }

    /// close(), run to its end; returns how long it took in virtual time.
    std::chrono::nanoseconds close() {
        const auto start = sim.now();
        bool closed = false;
        asio::co_spawn(sim.get_executor(), monitor->close(), [&](std::exception_ptr) { closed = true; });
        REQUIRE(sim.run_until([&] { return closed; }));
        return sim.now() - start;
    }

    /// The recorded events of `kind`, in order.
    [[nodiscard]] std::vector<TimedEvent> of(taskmon::MonitorEventKind kind) const {
        std::vector<TimedEvent> out;
        for (const auto& e : events) {
            if (e.first.kind == kind) {
                out.push_back(e);
            }
        }
        return out;
    }

    taskmon::testing::Simulation sim;
    taskmon::testing::FaultInjector faults;
    std::unique_ptr<Monitor> monitor;
    std::vector<TimedEvent> events;
    taskmon::EventSubscription subscription;
};

}  // namespace taskmon_test

// taskmon — coroutine supervision for standalone Asio.
// SPDX-License-Identifier: MIT
//
// Fault injection into a Supervisor's own supervised loops, for tests: make an instance of perception, the
// decider, the actuator or another of the six loops fail as its own code would, to test how a run recovers.
//
//   taskmon::testing::inject_instance_fault(supervisor, [](const char* component, std::uint64_t instance) {
//       if (std::string_view{component} == "perception" && instance == 1) throw std::runtime_error("sensor");
//   });
#pragma once

#include <cstdint>
#include <functional>
#include <utility>

namespace taskmon::detail {

/// Reaches the runtime behind a Supervisor (declared a friend by Supervisor). For taskmon's testing helpers.
struct SupervisorAccess {
    template <typename Supervisor>
    static auto& state(Supervisor& supervisor) {
        return *supervisor.state_;
    }
};

}  // namespace taskmon::detail

namespace taskmon::testing {

/// Calls `fault(component, instance)` on the Supervisor's strand as each instance of one of its components starts
/// (instance numbers from 1); what it throws fails that instance as the component's own code would. Call it before
/// run(); a later call replaces the fault.
template <typename Supervisor>
void inject_instance_fault(Supervisor& supervisor,
                           std::function<void(const char* component, std::uint64_t instance)> fault) {
    taskmon::detail::SupervisorAccess::state(supervisor).set_instance_fault(std::move(fault));
}

}  // namespace taskmon::testing

// taskmon — coroutine supervision for standalone Asio.
// SPDX-License-Identifier: MIT
//
// TASKMON_MAYBE_FAIL("name"): a fault point in your own code, in the manner of FoundationDB's BUGGIFY. Under a
// seeded simulation it is true when the simulation's FaultInjector draws a fault there (at the chance you set for
// that name, recorded with the seed and time); in a build without TASKMON_SIMULATION defined it is the constant
// `false` and its argument is not even evaluated: the fault path costs nothing in production.
//
//   if (TASKMON_MAYBE_FAIL("db.commit")) {
//       throw std::runtime_error("commit lost");   // or: return early, delay, drop a message...
//   }
//
// Define TASKMON_SIMULATION (for example `target_compile_definitions(my_sim_tests PRIVATE TASKMON_SIMULATION)`)
// in the builds that run your code in simulation; a macro, so that translation units built with and without it
// can share a program.
#pragma once

#include <string_view>

namespace taskmon::detail {

/// Decides whether a fault point fires (FaultInjector implements it for the simulation on its thread).
class FaultPointHook {
public:
    virtual bool fires(std::string_view point) = 0;

protected:
    ~FaultPointHook() = default;
};

/// The hook installed on this thread, if any.
inline FaultPointHook*& installed_fault_points() noexcept {
    thread_local FaultPointHook* hook = nullptr;
    return hook;
}

inline bool fault_point_fires(std::string_view point) {
    auto* hook = installed_fault_points();
    return hook != nullptr && hook->fires(point);
}

}  // namespace taskmon::detail

#if defined(TASKMON_SIMULATION)
#define TASKMON_MAYBE_FAIL(point) (::taskmon::detail::fault_point_fires(point))
#else
#define TASKMON_MAYBE_FAIL(point) false
#endif

// TASKMON_MAYBE_FAIL in a build for simulation: a point fires at the chance the simulation's FaultInjector sets,
// each firing recorded; without a chance it never fires. (test_fault_injection.cpp, built without
// TASKMON_SIMULATION, checks that the macro is then the constant false.)
#define TASKMON_SIMULATION 1

#include <taskmon/fault_point.hpp>
#include <taskmon/testing/fault_injection.hpp>
#include <taskmon/testing/simulation.hpp>

#include "taskmon_catch.hpp"

#include <asio/post.hpp>

#include <stdexcept>
#include <string>

using taskmon::testing::FaultInjector;
using taskmon::testing::FaultKind;
using taskmon::testing::Simulation;

namespace {

/// The program's own code, with a fault point in it.
int commit(int& committed) {
    if (TASKMON_MAYBE_FAIL("db.commit")) {
        return -1;
    }
    return ++committed;
}

}  // namespace

TEST_CASE("TASKMON_MAYBE_FAIL fires at the chance set for its point, each firing recorded", "[fault_point]") {
    Simulation sim{3};
    FaultInjector faults{sim};
    int committed = 0;
    int lost = 0;
    for (int i = 0; i < 1000; ++i) {
        asio::post(sim.get_executor(), [&] { lost += commit(committed) < 0 ? 1 : 0; });
    }
    sim.run();
    CHECK(committed == 1000);  // no chance set: it never fires
    CHECK(faults.injected().empty());

    faults.set_point("db.commit", 0.25);
    for (int i = 0; i < 1000; ++i) {
        asio::post(sim.get_executor(), [&] { lost += commit(committed) < 0 ? 1 : 0; });
    }
    sim.run();
    CHECK(lost > 180);  // 250 expected
    CHECK(lost < 320);
    CHECK(faults.count(FaultKind::fault_point) == static_cast<std::size_t>(lost));
    CHECK(faults.injected().back().component == "db.commit");
    CHECK(faults.injected().front().instance > 1000);  // numbered by reach: the first 1,000 had no chance set
    CHECK(faults.injected().back().instance <= 2000);
    CHECK_THROWS_WITH(faults.set_point("db.commit", 2.0),
                      "FaultInjector::set_point: chance of point 'db.commit' is 2.000000, outside [0, 1]");
    CHECK_THROWS_WITH(faults.set_point("", 0.5), "FaultInjector::set_point: the point's name must not be empty");
}

TEST_CASE("TASKMON_MAYBE_FAIL is false with no FaultInjector on the thread", "[fault_point]") {
    int committed = 0;
    CHECK(commit(committed) == 1);
    {
        Simulation sim{1};
        FaultInjector faults{sim};
        faults.set_point("db.commit", 1.0);
        CHECK(commit(committed) == -1);
    }
    CHECK(commit(committed) == 2);  // the injector is gone: the hook with it
}

// FaultPlan: a run's faults as one line and back, bad lines refused; a plan replays its run exactly; shrink()
// keeps a smallest plan that still fails.
#include <taskmon/task_monitor.hpp>
#include <taskmon/testing/fault_injection.hpp>
#include <taskmon/testing/fault_plan.hpp>
#include <taskmon/testing/simulation.hpp>

#include "simulation_rig.hpp"
#include "taskmon_catch.hpp"

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

using namespace std::chrono_literals;
using taskmon::testing::FaultKind;
using taskmon::testing::FaultPlan;
using taskmon::testing::InjectedFault;

namespace {

struct Run {
    std::uint64_t hash = 0;
    std::vector<std::string> failed;  // "component@time" of every `failed` event
    FaultPlan plan;
};

/// Three components for two hours under drawn faults, or under `plan` when given.
Run run(std::uint64_t seed, const std::optional<FaultPlan>& plan = std::nullopt) {
    taskmon_test::SimulationRig rig{seed, taskmon_test::rig_policy, plan};
    for (const std::string name : {"a", "b", "c"}) {
        rig.faults.set_rates(name, {.throws_at_start = 0.2, .throws_later = 0.5, .slow_stop = 0.3, .max_delay = 20min});
        rig.monitor->supervise(name, rig.faults.wrap(name, taskmon::RestartFactory{taskmon_test::steady}));
    }
    rig.sim.run_for(2h);
    rig.close();
    Run out;
    for (const auto& [e, at] : rig.of(taskmon::MonitorEventKind::failed)) {
        out.failed.push_back(e.component + "@" + std::to_string(at.time_since_epoch().count()));
    }
    out.hash = rig.sim.trace_hash();
    out.plan = rig.faults.plan();
    return out;
}

}  // namespace

TEST_CASE("FaultPlan: one line and back, names with the separators in them included", "[fault_plan]") {
    FaultPlan plan{{{FaultKind::throws_later, "db", 3, {}, 120s},
                    {FaultKind::factory_throws, "odd;name#with+all:of%them", 1, {}, {}},
                    {FaultKind::fault_point, "db.commit", 7, {}, {}}}};
    const auto text = plan.to_string();
    CHECK(
        text ==
        "throws_later:db#3+120000000000;factory_throws:odd%3Bname%23with%2Ball%3Aof%25them#1;fault_point:db.commit#7");
    const auto back = FaultPlan::parse(text);
    REQUIRE(back.faults.size() == 3);
    CHECK(back.faults[0].kind == FaultKind::throws_later);
    CHECK(back.faults[0].delay == 120s);
    CHECK(back.faults[1].component == "odd;name#with+all:of%them");
    CHECK(back.faults[2].instance == 7);
    CHECK(back.to_string() == text);
    CHECK(FaultPlan::parse("").faults.empty());
}

TEST_CASE("FaultPlan: a line that does not parse is refused with the entry and the reason", "[fault_plan]") {
    CHECK_THROWS_WITH(FaultPlan::parse("hangs:db#1+5;melts:db#2"),
                      "FaultPlan::parse: entry 2 ('melts:db#2'): unknown kind 'melts'");
    CHECK_THROWS_WITH(FaultPlan::parse("hangs:db"),
                      "FaultPlan::parse: entry 1 ('hangs:db'): expected kind:component#instance");
    CHECK_THROWS_WITH(FaultPlan::parse("hangs:db#0+5"),
                      "FaultPlan::parse: entry 1 ('hangs:db#0+5'): the instance must be a positive number");
    CHECK_THROWS_WITH(FaultPlan::parse("hangs:db#2"),
                      "FaultPlan::parse: entry 1 ('hangs:db#2'): this kind needs a +delay in nanoseconds");
    CHECK_THROWS_WITH(FaultPlan::parse("throws_at_start:db#2+5"),
                      "FaultPlan::parse: entry 1 ('throws_at_start:db#2+5'): this kind takes no delay");
    CHECK_THROWS_WITH(
        FaultPlan::parse("slow_stop:db#2+-5"),
        "FaultPlan::parse: entry 1 ('slow_stop:db#2+-5'): the delay must be a positive number of nanoseconds");
    CHECK_THROWS_WITH(FaultPlan::parse("hangs:db#2+9223372036854775808"),
                      "FaultPlan::parse: entry 1 ('hangs:db#2+9223372036854775808'): the delay must be a positive "
                      "number of nanoseconds");
    CHECK_THROWS_WITH(FaultPlan::parse("hangs:#2+5"), "FaultPlan::parse: entry 1 ('hangs:#2+5'): empty component name");
}

TEST_CASE("FaultPlan: a run's plan replays the run exactly; a plan with a fault removed is another run",
          "[fault_plan]") {
    const auto drawn = run(8);
    REQUIRE(drawn.plan.faults.size() >= 3);
    REQUIRE(!drawn.failed.empty());
    const auto replayed = run(8, FaultPlan::parse(drawn.plan.to_string()));
    CHECK(replayed.hash == drawn.hash);
    CHECK(replayed.failed == drawn.failed);
    CHECK(replayed.plan.to_string() == drawn.plan.to_string());
    auto fewer = drawn.plan;
    fewer.faults.erase(fewer.faults.begin());
    CHECK(run(8, fewer).hash != drawn.hash);
}

TEST_CASE("shrink: keeps a smallest plan that still fails", "[fault_plan]") {
    FaultPlan plan;
    for (std::uint64_t i = 1; i <= 40; ++i) {
        plan.faults.push_back({i % 2 == 0 ? FaultKind::throws_at_start : FaultKind::factory_throws, "c", i, {}, {}});
    }
    // The "bug" needs both instance 7's and instance 30's faults.
    int runs = 0;
    const auto fails = [&](const FaultPlan& p) {
        ++runs;
        const auto has = [&](std::uint64_t n) {
            return std::any_of(p.faults.begin(), p.faults.end(),
                               [&](const InjectedFault& f) { return f.instance == n; });
        };
        return has(7) && has(30);
    };
    const auto smallest = shrink(plan, fails);
    REQUIRE(smallest.faults.size() == 2);
    CHECK(smallest.faults[0].instance == 7);
    CHECK(smallest.faults[1].instance == 30);
    CHECK(runs < 60);  // groups, not one fault at a time from 40
    CHECK(shrink(plan, [](const FaultPlan&) { return false; }).faults.size() == 40);  // does not fail: unchanged
    CHECK_THROWS_AS(shrink(plan, {}), std::invalid_argument);
}

TEST_CASE("shrink: a real run's failure down to the fault that causes it", "[fault_plan]") {
    const auto drawn = run(8);
    REQUIRE(!drawn.failed.empty());
    const auto first_failure = drawn.failed.front();  // "the bug": this failure, at this time
    const auto fails = [&](const FaultPlan& p) {
        const auto r = run(8, p);
        return std::find(r.failed.begin(), r.failed.end(), first_failure) != r.failed.end();
    };
    const auto smallest = shrink(drawn.plan, fails);
    CHECK(smallest.faults.size() == 1);  // one injected throw makes that one failure
    CHECK(smallest.faults.size() < drawn.plan.faults.size());
    CHECK(fails(smallest));
}

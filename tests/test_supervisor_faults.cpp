// Tests for taskmon/testing/supervisor_faults.hpp: fault injection into a Supervisor's own components.
#include <taskmon/agent/supervisor.hpp>
#include <taskmon/testing/manual_clock.hpp>
#include <taskmon/testing/supervisor_faults.hpp>

#include "supervisor_harness.hpp"
#include "taskmon_catch.hpp"

#include <algorithm>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

using namespace taskmon_test;

TEST_CASE("supervisor_faults: an injected fault fails that instance as its own code would, and the run recovers") {
    SupervisorHarness h;
    h.agent.decide_fn = [](int, const Context& ctx) {
        return ctx.step == 3 ? Decision::done("ok") : Decision::act({"x"});
    };
    auto sup = h.make(fast_settings());
    std::vector<std::pair<std::string, std::uint64_t>> started;
    taskmon::testing::inject_instance_fault(*sup, [&](const char* component, std::uint64_t instance) {
        started.emplace_back(component, instance);
        if (std::string_view{component} == "perception" && instance == 1) {
            throw std::runtime_error("injected sensor fault");
        }
    });
    h.start(*sup);
    REQUIRE(h.finish());
    const auto& hist = *h.history;
    CHECK(hist.status == AgentStatus::completed);
    CHECK(hist.counters.restarts.at("perception") == 1);  // the first instance failed, the second ran
    const auto failed = hist.events_of(HistoryEventKind::component_failed);
    REQUIRE(failed.size() == 1);
    CHECK(failed[0].component == "perception");
    CHECK(failed[0].message.find("injected sensor fault") != std::string::npos);
    // Called for every instance of every component, numbered from 1 per component.
    CHECK(std::count(started.begin(), started.end(), std::pair<std::string, std::uint64_t>{"perception", 2}) == 1);
    CHECK(std::count_if(started.begin(), started.end(), [](const auto& s) { return s.second == 1; }) == 6);
}

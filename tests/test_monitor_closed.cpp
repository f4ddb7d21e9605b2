// Tests for taskmon/monitor_closed.hpp: what a TaskMonitor call throws once close() started. That the monitor
// throws it is checked by test_task_monitor_validation.cpp ("Calls after close throw taskmon::MonitorClosed").
#include <taskmon/monitor_closed.hpp>

#include "taskmon_catch.hpp"

#include <stdexcept>
#include <string>
#include <type_traits>

TEST_CASE("MonitorClosed is a std::logic_error, and not a std::invalid_argument", "[monitor_closed]") {
    // Code that caught std::logic_error before the type existed still catches it; an accept loop that catches
    // MonitorClosed alone does not swallow a duplicate name's std::invalid_argument.
    STATIC_REQUIRE(std::is_base_of_v<std::logic_error, taskmon::MonitorClosed>);
    try {
        throw taskmon::MonitorClosed("spawn: the TaskMonitor is closed");
    } catch (const std::logic_error& e) {
        CHECK(std::string{e.what()} == "spawn: the TaskMonitor is closed");
    }
    const auto caught_as_closed = [](auto thrown) {
        try {
            throw thrown;
        } catch (const taskmon::MonitorClosed&) {
            return true;
        } catch (const std::logic_error&) {
            return false;
        }
    };
    CHECK(caught_as_closed(taskmon::MonitorClosed("closed")));
    CHECK_FALSE(caught_as_closed(std::invalid_argument("spawn: duplicate component name 'conn-1'")));
}

// Tests for taskmon/custom_clock.hpp: under TASKMON_SEPARATE_COMPILATION, taskmon::compiled holds TaskMonitor and
// the Supervisor for the steady clock only; this header defines them for a clock of one's own. Without it this
// program would not link (BasicTaskMonitor<OwnClock>'s members) or compile (the Supervisor's runtime factory).
#include <taskmon/custom_clock.hpp>

#include "own_clock.hpp"
#include "taskmon_catch.hpp"

// In this translation unit, and not only in another one of the program (the linker would take those): the
// monitor's state, which taskmon/task_monitor.hpp only declares under TASKMON_SEPARATE_COMPILATION, is defined
// here through the header. This fails to compile if it is not.
static_assert(sizeof(taskmon::detail::MonitorState<taskmon_test::OwnClock>) > 0);

#include <vector>

using taskmon_test::OwnClock;

TEST_CASE("custom_clock: a TaskMonitor on a clock of one's own restarts and closes", "[custom_clock]") {
    taskmon_test::restart_and_close_on_own_clock();
}

TEST_CASE("custom_clock: a Supervisor on a clock of one's own runs an agent to its end", "[custom_clock]") {
    asio::io_context io;
    std::vector<int> acted;
    auto agent = taskmon_test::counting_agent<OwnClock>(io, acted);
    const auto history = taskmon_test::run_agent(io, agent);
    CHECK(history.status == taskmon::AgentStatus::completed);
    CHECK(history.final_result() == "counted to 3");
    CHECK(acted == std::vector<int>{1, 2});
}

// Writes the SVG pictures of the runs in timeline_scenarios.hpp into $TASKMON_TIMELINE_SVG_DIR, for the CTest
// checks that run xmllint on them (see tests/CMakeLists.txt: timeline.svg_samples, timeline.xmllint*). A hidden
// test case of tests_ops (the tag [.svg_samples]): a plain run of the program has no directory to write to.
#include <taskmon/ops/timeline.hpp>

#include "taskmon_catch.hpp"
#include "timeline_scenarios.hpp"

#include <cstdlib>
#include <string>

TEST_CASE("timeline samples: the three runs are written as SVG files", "[.svg_samples]") {
    const char* dir = std::getenv("TASKMON_TIMELINE_SVG_DIR");
    REQUIRE(dir != nullptr);
    const std::string out = dir;
    {
        taskmon_test::MonitorRun run;
        taskmon::write_svg(out + "/monitor_run.svg", run.recorder.timeline(), {.title = "TaskMonitor run"});
    }
    {
        taskmon_test::SupervisorRun run;
        taskmon::write_svg(out + "/supervisor_run.svg", taskmon::timeline_of(*run.history),
                           {.title = "Supervisor run"});
    }
    taskmon::write_svg(out + "/hostile_text.svg", taskmon_test::hostile_timeline(),
                       {.title = "hostile <text> & \"names\"", .width = 900});
}

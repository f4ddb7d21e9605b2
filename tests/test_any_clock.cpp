// Tests for taskmon/any_clock.hpp, the former name of taskmon/custom_clock.hpp kept for one release: including it
// alone still gives a TaskMonitor on a clock of one's own its definitions.
#include <taskmon/any_clock.hpp>

#include "own_clock.hpp"
#include "taskmon_catch.hpp"

// In this translation unit, and not only in another one of the program (the linker would take those): the
// monitor's state, which taskmon/task_monitor.hpp only declares under TASKMON_SEPARATE_COMPILATION, is defined
// here through the former name. This fails to compile if it is not.
static_assert(sizeof(taskmon::detail::MonitorState<taskmon_test::OwnClock>) > 0);

TEST_CASE("any_clock: the former name still defines TaskMonitor for a clock of one's own", "[any_clock]") {
    taskmon_test::restart_and_close_on_own_clock();
}

#include <taskmon/taskmon.hpp>

#include <string>

#include "taskmon_catch.hpp"

TEST_CASE("version macros agree with each other and with taskmon::version") {
    STATIC_REQUIRE(TASKMON_VERSION ==
                   TASKMON_VERSION_MAJOR * 10000 + TASKMON_VERSION_MINOR * 100 + TASKMON_VERSION_PATCH);
    CHECK(taskmon::version.major == TASKMON_VERSION_MAJOR);
    CHECK(taskmon::version.minor == TASKMON_VERSION_MINOR);
    CHECK(taskmon::version.patch == TASKMON_VERSION_PATCH);
    const std::string expected = std::to_string(TASKMON_VERSION_MAJOR) + "." + std::to_string(TASKMON_VERSION_MINOR) +
                                 "." + std::to_string(TASKMON_VERSION_PATCH);
    CHECK(std::string{TASKMON_VERSION_STRING} == expected);
}

TEST_CASE("the build's project version is the header's version") {
    CHECK(std::string{TASKMON_VERSION_STRING} == TASKMON_EXPECTED_PROJECT_VERSION);
}

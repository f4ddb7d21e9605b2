// Tests for taskmon/agent/cpu_usage.hpp: a CPU sample as the Supervisor's load_shedding_monitor sees it.
#include <taskmon/agent/cpu_usage.hpp>
#include <taskmon/agent/supervisor.hpp>

#include "taskmon_catch.hpp"

#include <type_traits>

TEST_CASE("CpuUsage is an aggregate of two percentages that start at zero") {
    static_assert(std::is_aggregate_v<taskmon::CpuUsage>);
    const taskmon::CpuUsage idle{};
    CHECK(idle.system_percent == 0.0);
    CHECK(idle.process_percent == 0.0);
    const taskmon::CpuUsage busy{.system_percent = 80.0, .process_percent = 35.5};
    CHECK(busy.system_percent == 80.0);
    CHECK(busy.process_percent == 35.5);
}

TEST_CASE("CpuUsage is the type a Supervisor's CpuSource returns") {
    static_assert(std::is_same_v<taskmon::CpuSource::result_type, std::optional<taskmon::CpuUsage>>);
    const taskmon::CpuSource source = [] { return std::optional<taskmon::CpuUsage>{{10.0, 5.0}}; };
    REQUIRE(source());
    CHECK(source()->system_percent == 10.0);
}

// Tests for taskmon::Duration (taskmon/duration.hpp): any std::chrono::duration converts, exactly when integral,
// rounded when floating-point, saturated beyond nanoseconds' range; NaN is refused.
#include <taskmon/agent/agent_settings.hpp>
#include <taskmon/component_group.hpp>
#include <taskmon/duration.hpp>
#include <taskmon/restart_policy.hpp>

#include "taskmon_catch.hpp"

#include <fmt/format.h>

#include <chrono>
#include <cmath>
#include <cstdint>
#include <limits>
#include <ratio>
#include <stdexcept>

using namespace std::chrono_literals;
using taskmon::Duration;
using ns = std::chrono::nanoseconds;

TEST_CASE("duration: integral durations convert exactly, from hours down to nanoseconds", "[duration]") {
    CHECK(Duration{} == ns::zero());
    CHECK(Duration{2h} == ns{7'200'000'000'000});
    CHECK(Duration{500ms} == ns{500'000'000});
    CHECK(Duration{250us} == ns{250'000});
    CHECK(Duration{7ns} == ns{7});
    CHECK(Duration{-3s} == ns{-3'000'000'000});
    CHECK(Duration{std::chrono::duration<unsigned, std::milli>{5}} == 5ms);
    // A tick of a third of a second is no whole number of nanoseconds: rounded to the nearest.
    CHECK(Duration{std::chrono::duration<int, std::ratio<1, 3>>{1}} == ns{333'333'333});
    CHECK(Duration{std::chrono::duration<std::int64_t, std::pico>{1'500}} == ns{2});  // 1.5 ns rounds away
    CHECK(Duration{std::chrono::duration<std::int64_t, std::pico>{1'400}} == ns{1});
}

// Constant expressions on every compiler, floating-point ones included.
static_assert(Duration{1.5s} == 1500ms);
static_assert(Duration{std::chrono::duration<double, std::nano>{-2.5}} == ns{-3});
static_assert(Duration{2min} == 120s);

TEST_CASE("duration: floating-point durations round to the nearest nanosecond", "[duration]") {
    CHECK(Duration{1.5s} == 1500ms);
    CHECK(Duration{std::chrono::duration<double>{0.25}} == 250ms);
    CHECK(Duration{std::chrono::duration<double, std::milli>{100.0} * 1.5} == 150ms);  // a computed backoff
    CHECK(Duration{std::chrono::duration<double, std::nano>{2.5}} == ns{3});
    CHECK(Duration{std::chrono::duration<double, std::nano>{-2.4}} == ns{-2});
}

TEST_CASE("duration: beyond nanoseconds' range it saturates, and NaN is refused", "[duration]") {
    CHECK(Duration{std::chrono::hours{24 * 365 * 1000}} == ns::max());  // 1,000 years do not fit 292
    CHECK(Duration{-std::chrono::hours{24 * 365 * 1000}} == ns::min());
    CHECK(Duration{std::chrono::duration<std::uint64_t>{std::numeric_limits<std::uint64_t>::max()}} == ns::max());
    CHECK(Duration{std::chrono::duration<double>{1e300}} == ns::max());
    CHECK(Duration{std::chrono::duration<double>{-std::numeric_limits<double>::infinity()}} == ns::min());
    CHECK(Duration{ns::max()} == ns::max());
    CHECK(Duration{std::chrono::seconds{std::numeric_limits<ns::rep>::max() / 1'000'000'000}} ==
          std::chrono::seconds{std::numeric_limits<ns::rep>::max() / 1'000'000'000});  // the largest that fits
    CHECK_THROWS_WITH(Duration{std::chrono::duration<double>{std::nan("")}},
                      "taskmon::Duration: the duration is not a number (NaN)");
}

TEST_CASE("duration: it is a std::chrono::nanoseconds, and fmt prints it as one", "[duration]") {
    const Duration d = 1500ms;
    const ns base = d;
    CHECK(base.count() == 1'500'000'000);
    CHECK(d + 500ms == 2s);
    CHECK(d * 2 == 3s);
    CHECK(d < 2s);
    CHECK(std::chrono::duration_cast<std::chrono::milliseconds>(d).count() == 1500);
    CHECK(fmt::format("{}", d) == "1500000000ns");
    CHECK(fmt::format("{:>6}", Duration{12ns}) == "  12ns");  // as fmt pads a std::chrono::nanoseconds
}

TEST_CASE("duration: every setting takes any std::chrono::duration", "[duration]") {
    const taskmon::RestartPolicy policy{.base_backoff = 500us, .max_backoff = 1.5s, .watchdog_timeout = 0.25s};
    CHECK(policy.base_backoff == 500us);
    CHECK(policy.max_backoff == 1500ms);
    CHECK(policy.watchdog_timeout == 250ms);
    CHECK_NOTHROW(taskmon::validate(policy));
    const taskmon::GroupPolicy group{.restart_window = 2.5min};
    CHECK(group.restart_window == 150s);
    const taskmon::AgentSettings settings{.capture_interval = 0.05s};
    CHECK(settings.capture_interval == 50ms);
    // Saturated values are refused by the setting's validation, by name.
    const taskmon::RestartPolicy huge{.restart_window = std::chrono::hours{24 * 365 * 1000}};
    CHECK_THROWS_WITH(taskmon::validate(huge), "RestartPolicy: restart_window must not exceed 100 years");
}

// Tests for taskmon/detail/enum_formatter.hpp: one fmt::formatter for the enumerations of namespace taskmon.
// Each public enumeration's own test checks its names (tests/support/enum_names.hpp); this file checks the
// mechanism: what gets the formatter and what is left alone.
#include <taskmon/component_stats.hpp>
#include <taskmon/detail/enum_formatter.hpp>

#include "enum_names.hpp"
#include "taskmon_catch.hpp"

#include <fmt/format.h>
#include <spdlog/logger.h>
#include <spdlog/sinks/ringbuffer_sink.h>

#include <memory>
#include <string>
#include <string_view>

namespace taskmon {
// An enumeration added to namespace taskmon later: declaring to_string is all it takes.
enum class FutureKind { first, second };
constexpr std::string_view to_string(FutureKind kind) noexcept {
    switch (kind) {
        case FutureKind::first: return "first";
        case FutureKind::second: return "second";
    }
    return "unknown";
}
// A taskmon enumeration without to_string is not formatted by name.
enum class Unnamed { a, b };
}  // namespace taskmon

namespace app {
// An application's enumeration with a to_string of its own: the application decides how it is formatted.
enum class Color { red, green };
constexpr std::string_view to_string(Color c) noexcept { return c == Color::red ? "red" : "green"; }

enum class Shape { circle };
}  // namespace app

template <>
struct fmt::formatter<app::Shape> : fmt::formatter<std::string_view> {
    template <typename FormatContext>
    auto format(app::Shape, FormatContext& ctx) const {
        return fmt::formatter<std::string_view>::format("a round shape", ctx);
    }
};

static_assert(taskmon::detail::NamedTaskmonEnum<taskmon::ComponentState>);
static_assert(taskmon::detail::NamedTaskmonEnum<taskmon::FutureKind>);
static_assert(!taskmon::detail::NamedTaskmonEnum<taskmon::Unnamed>);
static_assert(!taskmon::detail::NamedTaskmonEnum<app::Color>);
static_assert(!taskmon::detail::NamedTaskmonEnum<app::Shape>);
static_assert(!taskmon::detail::NamedTaskmonEnum<int>);

TEST_CASE("enum_formatter: a new taskmon enumeration with to_string is formatted by name") {
    taskmon_test::check_enum_names(taskmon::FutureKind::first, taskmon::FutureKind::second);
}

// fmt 9 formats no scoped enumeration by default: only those with a formatter are formattable.
static_assert(fmt::is_formattable<taskmon::FutureKind>::value);
static_assert(!fmt::is_formattable<taskmon::Unnamed>::value);
static_assert(!fmt::is_formattable<app::Color>::value);

TEST_CASE("enum_formatter: enumerations of other namespaces keep their own formatter") {
    CHECK(fmt::format("{}", app::Shape::circle) == "a round shape");  // no ambiguity with ours
    CHECK(fmt::format("{:>3}", fmt::underlying(app::Color::green)) == "  1");
}

TEST_CASE("enum_formatter: spdlog log lines print the name") {
    auto sink = std::make_shared<spdlog::sinks::ringbuffer_sink_mt>(4);
    sink->set_pattern("%v");
    spdlog::logger logger{"enum_formatter", sink};
    logger.info("state={} next={:>8}", taskmon::ComponentState::gave_up, taskmon::FutureKind::second);
    const auto lines = sink->last_formatted();
    REQUIRE(lines.size() == 1);
    CHECK(lines[0].rfind("state=gave_up next=  second", 0) == 0);
}

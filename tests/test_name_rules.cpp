// Tests for taskmon/detail/name_rules.hpp: what may name a component or a group.
#include <taskmon/detail/name_rules.hpp>

#include "taskmon_catch.hpp"

#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

using taskmon::detail::check_name;
using taskmon::detail::name_problem;

TEST_CASE("A name is one line of valid UTF-8: control characters and invalid bytes are refused", "[name_rules]") {
    struct Row {
        std::string name;
        std::optional<std::string> problem;
    };
    for (const auto& [name, problem] : std::vector<Row>{
             {"perception", std::nullopt},
             {"conn 17 (from 10.0.0.1:5000)", std::nullopt},  // spaces and punctuation are fine
             {"say \"hi\" = \\", std::nullopt},
             {"Grüße-温度-🌡", std::nullopt},
             {"", "must not be empty"},
             {"evil\nforged line component=other", "contains the control character U+000A at byte 4"},
             {"tab\there", "contains the control character U+0009 at byte 3"},
             {std::string{"nul\0", 4}, "contains the control character U+0000 at byte 3"},
             {"\x1b[31m", "contains the control character U+001B at byte 0"},
             {"del\x7f", "contains the control character U+007F at byte 3"},
             {"nel\xC2\x85", "contains the control character U+0085 at byte 3"},
             {"ls\xE2\x80\xA8", "contains the control character U+2028 at byte 2"},
             {"admin\xE2\x80\xAEtxt.exe", "contains the invisible format character U+202E at byte 5"},  // bidi
             {"zero\xE2\x80\x8Bwidth", "contains the invisible format character U+200B at byte 4"},
             {"\xEF\xBB\xBF"
              "bom",
              "contains the invisible format character U+FEFF at byte 0"},
             {"bad\xFF", "is not valid UTF-8 at byte 3"},
             {"overlong\xC0\xAF", "is not valid UTF-8 at byte 8"},
             {"surrogate\xED\xA0\x80", "is not valid UTF-8 at byte 9"},
         }) {
        INFO(name);
        CHECK(name_problem(name) == problem);
    }
}

TEST_CASE("check_name throws std::invalid_argument with the name escaped, on one line", "[name_rules]") {
    try {
        check_name("evil\nforged", "supervise");
        FAIL("no exception");
    } catch (const std::invalid_argument& e) {
        CHECK(std::string{e.what()} ==
              R"(supervise: component name "evil\nforged" contains the control character U+000A at byte 4)");
    }
    try {
        check_name("", "supervise_group", "group");
        FAIL("no exception");
    } catch (const std::invalid_argument& e) {
        CHECK(std::string{e.what()} == "supervise_group: group name must not be empty");
    }
    CHECK_NOTHROW(check_name("fine name", "spawn"));
}

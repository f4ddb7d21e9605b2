// Tests for taskmon/ops/metric_family.hpp: the Prometheus text exposition format renderer.
#include <taskmon/detail/utf8.hpp>
#include <taskmon/ops/metric_family.hpp>

#include "taskmon_catch.hpp"

#include <cmath>
#include <limits>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

using taskmon::MetricFamily;
using taskmon::MetricType;

TEST_CASE("render_text_format writes HELP, TYPE and one line per sample") {
    const std::vector<MetricFamily> families{
        {"taskmon_restarts_total",
         "Restarts.",
         MetricType::counter,
         {{{{"component", "db"}, {"reason", "failed"}}, 3}, {{{"component", "web"}, {"reason", "manual"}}, 0}}},
        {"taskmon_io_semaphore_capacity", "Permits.", MetricType::gauge, {{{}, 8}}},
        {"taskmon_backoff_seconds", "Backoff.", MetricType::gauge, {{{{"component", "db"}}, 0.25}}},
        {"empty_family", "Nothing yet.", MetricType::gauge, {}},
    };
    CHECK(taskmon::render_text_format(families) ==
          "# HELP taskmon_restarts_total Restarts.\n"
          "# TYPE taskmon_restarts_total counter\n"
          "taskmon_restarts_total{component=\"db\",reason=\"failed\"} 3\n"
          "taskmon_restarts_total{component=\"web\",reason=\"manual\"} 0\n"
          "# HELP taskmon_io_semaphore_capacity Permits.\n"
          "# TYPE taskmon_io_semaphore_capacity gauge\n"
          "taskmon_io_semaphore_capacity 8\n"
          "# HELP taskmon_backoff_seconds Backoff.\n"
          "# TYPE taskmon_backoff_seconds gauge\n"
          "taskmon_backoff_seconds{component=\"db\"} 0.25\n"
          "# HELP empty_family Nothing yet.\n"
          "# TYPE empty_family gauge\n");
}

TEST_CASE("render_text_format escapes label values and help, and writes special values") {
    const std::vector<MetricFamily> families{
        {"m",
         "a \\ b\nc \"q\"",
         MetricType::gauge,
         {{{{"component", "we\"ird\\na\nme"}}, std::numeric_limits<double>::infinity()},
          {{{"component", "n"}}, std::nan("")},
          {{{"component", "neg"}}, -std::numeric_limits<double>::infinity()},
          {{{"component", "big"}}, 1e20}}},
    };
    CHECK(taskmon::render_text_format(families) ==
          "# HELP m a \\\\ b\\nc \"q\"\n"
          "# TYPE m gauge\n"
          "m{component=\"we\\\"ird\\\\na\\nme\"} +Inf\n"
          "m{component=\"n\"} NaN\n"
          "m{component=\"neg\"} -Inf\n"
          "m{component=\"big\"} 1e+20\n");
}

TEST_CASE("render_text_format writes valid UTF-8, one sample per line, whatever the label values hold") {
    const std::string fffd = "\xEF\xBF\xBD";
    const std::vector<std::string> values{
        "lidar\xFF",                          // invalid UTF-8 (an unchecked name, a device's text)
        "cut \xE2\x82",                       // a sequence cut short
        "two\nlines \"quoted\" back\\slash",  // the format's own escapes
        "carriage\rreturn",                   // control characters that line-oriented readers break at
        std::string{"nul\0byte", 8},
        "vertical\vtab\fform feed\x1b[31m",
        "next\xC2\x85line",                         // U+0085 NEL, a C1 control
        "line\xE2\x80\xA8sep para\xE2\x80\xA9sep",  // U+2028, U+2029
        "del\x7F",
        "tab\tstays ü 日本 😀",  // valid text is kept as it is
    };
    MetricFamily family{"m", "help \xFF with\rcontrols\n", MetricType::gauge, {}};
    for (const auto& v : values) family.samples.push_back({{{"component", v}}, 1});
    const auto text = taskmon::render_text_format({family});
    CHECK_FALSE(taskmon::detail::find_invalid_utf8(text).has_value());
    std::vector<std::string_view> lines;
    for (std::size_t begin = 0; begin < text.size();) {
        const auto end = text.find('\n', begin);
        REQUIRE(end != std::string::npos);  // every line ends in \n
        lines.emplace_back(text.data() + begin, end - begin);
        begin = end + 1;
    }
    REQUIRE(lines.size() == 2 + values.size());
    CHECK(lines[0] == "# HELP m help " + fffd + " with" + fffd + "controls\\n");
    for (std::size_t i = 0; i < values.size(); ++i) {
        INFO("value " << i);
        const auto line = lines[2 + i];
        CHECK(line.starts_with("m{component=\""));
        CHECK(line.ends_with("\"} 1"));
        for (const char c : line) {
            const auto u = static_cast<unsigned char>(c);
            CHECK((u >= 0x20 || u == '\t'));
            CHECK(u != 0x7F);
        }
    }
    CHECK(lines[2] == "m{component=\"lidar" + fffd + "\"} 1");
    CHECK(lines[3] == "m{component=\"cut " + fffd + fffd + "\"} 1");
    CHECK(lines[4] == "m{component=\"two\\nlines \\\"quoted\\\" back\\\\slash\"} 1");
    CHECK(lines[5] == "m{component=\"carriage" + fffd + "return\"} 1");
    CHECK(lines[6] == "m{component=\"nul" + fffd + "byte\"} 1");
    CHECK(lines[7] == "m{component=\"vertical" + fffd + "tab" + fffd + "form feed" + fffd + "[31m\"} 1");
    CHECK(lines[8] == "m{component=\"next" + fffd + "line\"} 1");
    CHECK(lines[9] == "m{component=\"line" + fffd + "sep para" + fffd + "sep\"} 1");
    CHECK(lines[10] == "m{component=\"del" + fffd + "\"} 1");
    CHECK(lines[11] == "m{component=\"tab\tstays ü 日本 😀\"} 1");
    CHECK(taskmon::detail::exposition_text("a\xFF\n\r\"\\") == "a" + fffd + "\n" + fffd + "\"\\");
}

TEST_CASE("render_text_format rejects invalid names and duplicate families") {
    CHECK_THROWS_AS(taskmon::render_text_format({{"1abc", "", MetricType::gauge, {}}}), std::invalid_argument);
    CHECK_THROWS_AS(taskmon::render_text_format({{"a-b", "", MetricType::gauge, {}}}), std::invalid_argument);
    CHECK_THROWS_AS(taskmon::render_text_format({{"ok", "", MetricType::gauge, {{{{"__x", "v"}}, 1}}}}),
                    std::invalid_argument);
    CHECK_THROWS_AS(taskmon::render_text_format({{"ok", "", MetricType::gauge, {{{{"a b", "v"}}, 1}}}}),
                    std::invalid_argument);
    CHECK_THROWS_AS(
        taskmon::render_text_format({{"dup", "", MetricType::gauge, {}}, {"dup", "", MetricType::gauge, {}}}),
        std::invalid_argument);
    CHECK(taskmon::is_valid_metric_name("taskmon:rule_total"));
    CHECK_FALSE(taskmon::is_valid_label_name("a:b"));
}

TEST_CASE("merge_families appends samples of families with the same name") {
    std::vector<MetricFamily> into{{"a", "A", MetricType::gauge, {{{{"m", "1"}}, 1}}}};
    taskmon::merge_families(
        into, {{"a", "other help", MetricType::gauge, {{{{"m", "2"}}, 2}}}, {"b", "B", MetricType::counter, {}}});
    REQUIRE(into.size() == 2);
    CHECK(into[0].help == "A");
    CHECK(into[0].samples.size() == 2);
    CHECK(into[1].name == "b");
}

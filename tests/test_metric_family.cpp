// Tests for taskmon/metric_family.hpp: the Prometheus text exposition format renderer.
#include <taskmon/metric_family.hpp>

#include "taskmon_catch.hpp"

#include <cmath>
#include <limits>
#include <stdexcept>
#include <string>

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

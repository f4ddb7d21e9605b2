// Tests for taskmon/ops/prometheus.hpp: the families reach prometheus-cpp (label values and help made valid UTF-8 on
// one line, as render_text_format() makes them), and prometheus-cpp's own text serializer renders them exactly as
// taskmon's render_text_format() does.
#include <taskmon/detail/utf8.hpp>
#include <taskmon/ops/agent_metrics.hpp>
#include <taskmon/ops/monitor_metrics.hpp>
#include <taskmon/ops/prometheus.hpp>
#include <taskmon/task_monitor.hpp>
#include <taskmon/testing/manual_clock.hpp>

#include "monitor_harness.hpp"
#include "taskmon_catch.hpp"

#include <prometheus/counter.h>
#include <prometheus/registry.h>
#include <prometheus/text_serializer.h>

#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

using namespace std::chrono_literals;

TEST_CASE("PrometheusCollectable converts names, help, types, labels and values") {
    const std::vector<taskmon::MetricFamily> families{
        {"taskmon_restarts_total",
         "Restarts.",
         taskmon::MetricType::counter,
         {{{{"component", "db"}, {"reason", "failed"}}, 3}}},
        {"taskmon_component_up", "Up.", taskmon::MetricType::gauge, {{{{"component", "db"}}, 1}}},
    };
    const taskmon::PrometheusCollectable collectable{[&] { return families; }};
    const auto out = collectable.Collect();
    REQUIRE(out.size() == 2);
    CHECK(out[0].name == "taskmon_restarts_total");
    CHECK(out[0].help == "Restarts.");
    CHECK(out[0].type == prometheus::MetricType::Counter);
    REQUIRE(out[0].metric.size() == 1);
    CHECK(out[0].metric[0].counter.value == 3);
    REQUIRE(out[0].metric[0].label.size() == 2);
    CHECK(out[0].metric[0].label[1].name == "reason");
    CHECK(out[0].metric[0].label[1].value == "failed");
    CHECK(out[1].type == prometheus::MetricType::Gauge);
    CHECK(out[1].metric[0].gauge.value == 1);
    CHECK_THROWS_AS(taskmon::PrometheusCollectable{nullptr}, std::invalid_argument);
}

TEST_CASE("prometheus-cpp serializes a monitor's metrics as render_text_format does, next to a user registry") {
    taskmon_test::Harness h;
    taskmon_test::Monitor monitor{h.io.get_executor(), {.base_backoff = 1s}, h.logger};
    taskmon::MonitorMetrics metrics{monitor};
    taskmon::AgentMetrics agent_metrics;
    auto script = taskmon_test::failing_now(1);
    monitor.supervise("db", taskmon_test::factory_of(script));
    monitor.supervise("weird \"name\"\\", taskmon_test::factory_of(script));
    h.runner.run_for(2s);

    const auto collect = [&] {
        auto families = metrics.collect();
        taskmon::merge_families(families, agent_metrics.collect());
        return families;
    };
    const auto collectable = std::make_shared<taskmon::PrometheusCollectable>(collect);
    auto registry = std::make_shared<prometheus::Registry>();  // the application's own metrics
    prometheus::BuildCounter().Name("app_requests_total").Help("Requests.").Register(*registry).Add({}).Increment();

    const prometheus::TextSerializer serializer;
    const auto ours = collectable->Collect();
    CHECK(serializer.Serialize(ours) == taskmon::render_text_format(collect()));
    auto all = registry->Collect();
    all.insert(all.end(), ours.begin(), ours.end());
    const auto text = serializer.Serialize(all);
    CHECK(text.find("app_requests_total 1\n") != std::string::npos);
    CHECK(text.find("taskmon_restarts_total{component=\"db\",reason=\"failed\"} 1\n") != std::string::npos);
    h.close(monitor);
}

TEST_CASE("PrometheusCollectable hands prometheus-cpp valid UTF-8 label values and escaped help, one line each") {
    const std::string fffd = "\xEF\xBF\xBD";
    const std::vector<taskmon::MetricFamily> families{
        {"taskmon_component_up",
         "Up \xFF\r\nhelp \\.",
         taskmon::MetricType::gauge,
         {{{{"component", "lidar\xFF"}}, 1},
          {{{"component", "cut \xE2\x82"}}, 1},
          {{{"component", "two\nlines \"q\" \\ cr\r nel\xC2\x85 ü"}}, 0}}},
    };
    const auto out = taskmon::to_prometheus(families);
    REQUIRE(out.size() == 1);
    CHECK(out[0].help == "Up " + fffd + fffd + "\\nhelp \\\\.");  // escaped: prometheus-cpp 1.0 writes help as it is
    REQUIRE(out[0].metric.size() == 3);
    CHECK(out[0].metric[0].label[0].value == "lidar" + fffd);
    CHECK(out[0].metric[1].label[0].value == "cut " + fffd + fffd);
    CHECK(out[0].metric[2].label[0].value == "two\nlines \"q\" \\ cr" + fffd + " nel" + fffd + " ü");
    const auto text = prometheus::TextSerializer{}.Serialize(out);
    CHECK_FALSE(taskmon::detail::find_invalid_utf8(text).has_value());
    CHECK(text == taskmon::render_text_format(families));
}

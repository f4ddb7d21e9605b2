// taskmon — coroutine supervision for standalone Asio.
// SPDX-License-Identifier: MIT
//
// PrometheusCollectable: taskmon's metrics (MonitorMetrics, AgentMetrics, any MetricFamily source) as a
// prometheus::Collectable of prometheus-cpp, next to the application's own prometheus::Registry. Optional:
// needs prometheus-cpp (CMake target taskmon::prometheus; Debian prometheus-cpp-dev 1.0).
//
//   taskmon::MonitorMetrics metrics{monitor};
//   auto collectable = std::make_shared<taskmon::PrometheusCollectable>([&] { return metrics.collect(); });
//   prometheus::Exposer exposer{"127.0.0.1:9464"};   // prometheus-cpp's own HTTP server (prometheus-cpp::pull)
//   exposer.RegisterCollectable(registry);          // the application's metrics
//   exposer.RegisterCollectable(collectable);       // taskmon's
//
// Without prometheus-cpp, render the same families with taskmon::render_text_format() (taskmon/ops/metric_family.hpp)
// or serve them with taskmon::HealthServer's /metrics.
#pragma once

#include <taskmon/ops/metric_family.hpp>

#include <prometheus/client_metric.h>
#include <prometheus/collectable.h>
#include <prometheus/metric_family.h>
#include <prometheus/metric_type.h>

#include <functional>
#include <stdexcept>
#include <utility>
#include <vector>

namespace taskmon {

/// Converts taskmon's families to prometheus-cpp's (counter and gauge values, labels in order), so that its
/// TextSerializer writes what render_text_format() writes: label values get the same replacements (invalid UTF-8
/// and control characters but tab and line feed become U+FFFD; prometheus-cpp 1.0 escapes backslash, quote and
/// line feed in them but passes every other byte on), and help texts are also escaped here (prometheus-cpp 1.0
/// writes them as they are, so a line feed in one would end the HELP line and start a line no scraper parses).
[[nodiscard]] inline std::vector<prometheus::MetricFamily> to_prometheus(const std::vector<MetricFamily>& families) {
    std::vector<prometheus::MetricFamily> out;
    out.reserve(families.size());
    for (const auto& family : families) {
        prometheus::MetricFamily converted;
        converted.name = family.name;
        detail::append_escaped(converted.help, family.help, false);
        converted.type =
            family.type == MetricType::counter ? prometheus::MetricType::Counter : prometheus::MetricType::Gauge;
        for (const auto& sample : family.samples) {
            prometheus::ClientMetric metric;
            for (const auto& [name, value] : sample.labels) {
                metric.label.push_back({name, detail::exposition_text(value)});
            }
            if (family.type == MetricType::counter) {
                metric.counter.value = sample.value;
            } else {
                metric.gauge.value = sample.value;
            }
            converted.metric.push_back(std::move(metric));
        }
        out.push_back(std::move(converted));
    }
    return out;
}

/// A prometheus::Collectable that calls `source` at every Collect() (on the scraping thread: the source must
/// be thread-safe, as MonitorMetrics::collect() and AgentMetrics::collect() are). Register it with an
/// Exposer (which keeps a weak pointer) and keep it, and what `source` reads, alive while it is registered.
class PrometheusCollectable : public prometheus::Collectable {
public:
    /// Throws std::invalid_argument for an empty source.
    explicit PrometheusCollectable(std::function<std::vector<MetricFamily>()> source) : source_{std::move(source)} {
        if (!source_) throw std::invalid_argument("PrometheusCollectable: source is empty");
    }

    [[nodiscard]] std::vector<prometheus::MetricFamily> Collect() const override { return to_prometheus(source_()); }

private:
    std::function<std::vector<MetricFamily>()> source_;
};

}  // namespace taskmon

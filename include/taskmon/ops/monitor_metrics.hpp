// taskmon — coroutine supervision for standalone Asio.
// SPDX-License-Identifier: MIT
//
// MonitorMetrics: Prometheus-style metrics of a TaskMonitor (or of a Supervisor's components): restarts counted
// by cause (MonitorEvent::restart_reason), each component's state, up and backoff from its stats, and the global
// io_semaphore. collect() returns MetricFamily snapshots; render them with render_text_format() or add them to
// a prometheus-cpp registry (taskmon/ops/prometheus.hpp).
//
//   taskmon::TaskMonitor monitor{io.get_executor()};
//   taskmon::MonitorMetrics metrics{monitor};          // subscribes now: count restarts from here on
//   ...
//   std::string body = taskmon::render_text_format(metrics.collect());
//
// Families (see docs/operations.md for the label values and the cardinality argument):
//   taskmon_restarts_total{component,reason}    counter  restarts performed, by what caused them
//   taskmon_component_failures_total{component} counter  exceptions, unexpected cancellations, factory throws
//   taskmon_component_up{component}             gauge    1 while an instance is running and ready
//   taskmon_component_state{component,state}    gauge    1 for the current state, 0 for the others
//   taskmon_backoff_seconds{component}          gauge    the backoff of the pending automatic restart, else 0
//   taskmon_io_semaphore_{capacity,in_use,waiting}  gauge  the global io_semaphore (optional)
//
// Bounded by the long-lived components: a spawn()ed task (MonitorEvent::spawned, ComponentStats::spawned) makes
// no series and no bookkeeping, and a removed component (remove_and_wait) takes its series and counters with it.
#pragma once

#include <taskmon/detail/config.hpp>

#include <taskmon/component_stats.hpp>
#include <taskmon/event_subscription.hpp>
#include <taskmon/io_semaphore.hpp>
#include <taskmon/monitor_event.hpp>
#include <taskmon/ops/metric_family.hpp>

#include <algorithm>
#include <array>
#include <chrono>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace taskmon {

/// The states rendered as taskmon_component_state's `state` label (0 or 1 each). A state not listed here (a
/// newer enumerator) is still rendered, by its to_string() name, while it is the current one.
inline constexpr std::array<ComponentState, 10> metric_component_states{
    ComponentState::not_started,  ComponentState::running,    ComponentState::restarting, ComponentState::stopping,
    ComponentState::stopped,      ComponentState::completed,  ComponentState::failed,     ComponentState::gave_up,
    ComponentState::unresponsive, ComponentState::quarantined};

/// taskmon_component_up: whether the component counts as up. The one place that decides it.
[[nodiscard]] inline bool is_component_up(const ComponentStats& stats) noexcept {
    return stats.state == ComponentState::running && stats.ready;
}

struct MonitorMetricsOptions {
    /// Added to every sample (e.g. {{"monitor", "ingest"}} to tell two monitors apart). Label names must be
    /// valid and must not be component, reason or state.
    std::vector<MetricLabel> const_labels{};
    /// Include the process-wide io_semaphore gauges. With several MonitorMetrics in one exposition, keep it on
    /// for one of them only.
    bool io_semaphore = true;
};

/// Metrics of one TaskMonitor or Supervisor. Counting starts at construction (subscribe()), so construct it
/// right after the monitor, before components start; a restart counts by the cause its `restarted` event carries,
/// also when the failure behind it happened before this object subscribed.
///
/// Series: one set per component of the source's stats, except spawn()ed tasks (they would make one set per
/// connection). A removed component's series leave the exposition with it, counters included (as a Prometheus
/// client's remove() does); a component added later under the same name counts from 0 again, which rate() and
/// increase() read as a counter reset. Memory: per component with a counted restart or a pending backoff, until it
/// is removed; nothing for spawned tasks.
///
/// Lifetime: `source` must outlive this object (collect() reads its stats). The subscription ends with this
/// object; destroying it waits for a listener call running on another thread (EventSubscription).
/// Thread safety: collect() may be called from any thread, concurrently with the events.
class MonitorMetrics {
public:
    /// `source` is a BasicTaskMonitor<Clock> or a Supervisor: anything with subscribe(MonitorEventListener)
    /// and get_component_stats(). Throws std::invalid_argument for an invalid or reserved constant label name,
    /// and std::logic_error if the monitor is already closed.
    template <typename Source>
        requires requires(Source& s, MonitorEventListener l) {
            { s.subscribe(std::move(l)) } -> std::same_as<EventSubscription>;
            { s.get_component_stats() } -> std::same_as<std::map<std::string, ComponentStats>>;
        }
    explicit MonitorMetrics(Source& source, MonitorMetricsOptions options = {})
        : options_{validated(std::move(options))}, counts_{std::make_shared<Counts>()}, stats_{[&source] {
              return source.get_component_stats();
          }} {
        subscription_ = source.subscribe([counts = counts_](const MonitorEvent& e) { counts->on_event(e); });
    }

    MonitorMetrics(const MonitorMetrics&) = delete;
    MonitorMetrics& operator=(const MonitorMetrics&) = delete;

    /// A snapshot of every family, in the order of the header comment. Components are those of the source's
    /// stats (sorted by name) but spawned tasks; every component gets every reason of taskmon_restarts_total
    /// (0 until seen).
    [[nodiscard]] std::vector<MetricFamily> collect() const {
        const auto stats = stats_();
        std::map<std::string, std::map<RestartReason, std::uint64_t>> restarts;
        std::map<std::string, std::chrono::nanoseconds> backoff;
        {
            std::lock_guard lock{counts_->mutex};
            for (const auto& [name, c] : counts_->components) {
                if (!c.restarts.empty()) restarts[name] = c.restarts;
                backoff[name] = c.pending_backoff;
            }
        }
        MetricFamily restarts_total{"taskmon_restarts_total",
                                    "Restarts performed (automatic and manual), by what caused them.",
                                    MetricType::counter,
                                    {}};
        MetricFamily failures{"taskmon_component_failures_total",
                              "Failures of a component: exceptions, unexpected cancellations, factory throws.",
                              MetricType::counter,
                              {}};
        MetricFamily up{
            "taskmon_component_up", "1 while an instance of the component is running, else 0.", MetricType::gauge, {}};
        MetricFamily state{
            "taskmon_component_state", "1 for the component's current state, 0 for the others.", MetricType::gauge, {}};
        MetricFamily backoff_seconds{"taskmon_backoff_seconds",
                                     "Backoff delay of the pending automatic restart in seconds; 0 when none.",
                                     MetricType::gauge,
                                     {}};
        for (const auto& [name, s] : stats) {
            if (s.spawned) continue;
            const auto seen = restarts.find(name);
            for (const auto reason : all_restart_reasons) {
                std::uint64_t n = 0;
                if (seen != restarts.end()) {
                    if (const auto it = seen->second.find(reason); it != seen->second.end()) n = it->second;
                }
                restarts_total.samples.push_back(
                    sample({{"component", name}, {"reason", std::string{to_string(reason)}}}, static_cast<double>(n)));
            }
            failures.samples.push_back(sample({{"component", name}}, s.failure_count));
            up.samples.push_back(sample({{"component", name}}, is_component_up(s) ? 1 : 0));
            bool listed = false;
            for (const auto st : metric_component_states) {
                listed = listed || st == s.state;
                state.samples.push_back(
                    sample({{"component", name}, {"state", std::string{to_string(st)}}}, st == s.state ? 1 : 0));
            }
            if (!listed) {
                state.samples.push_back(sample({{"component", name}, {"state", std::string{to_string(s.state)}}}, 1));
            }
            const auto b = backoff.find(name);
            const double seconds =
                b == backoff.end() || !s.is_restarting ? 0.0 : std::chrono::duration<double>(b->second).count();
            backoff_seconds.samples.push_back(sample({{"component", name}}, seconds));
        }
        std::vector<MetricFamily> out;
        out.push_back(std::move(restarts_total));
        out.push_back(std::move(failures));
        out.push_back(std::move(up));
        out.push_back(std::move(state));
        out.push_back(std::move(backoff_seconds));
        if (options_.io_semaphore) {
            const auto io = get_io_semaphore_stats();
            out.push_back({"taskmon_io_semaphore_capacity",
                           "Permits of the global io_semaphore.",
                           MetricType::gauge,
                           {sample({}, static_cast<double>(io.capacity))}});
            out.push_back({"taskmon_io_semaphore_in_use",
                           "Permits of the global io_semaphore held now.",
                           MetricType::gauge,
                           {sample({}, static_cast<double>(io.in_use))}});
            out.push_back({"taskmon_io_semaphore_waiting",
                           "Acquires queued on the global io_semaphore.",
                           MetricType::gauge,
                           {sample({}, static_cast<double>(io.waiting))}});
        }
        return out;
    }

    /// Restarts counted so far for one component and reason (0 if none, and after the component was removed).
    [[nodiscard]] std::uint64_t restarts(const std::string& component, RestartReason reason) const {
        std::lock_guard lock{counts_->mutex};
        const auto c = counts_->components.find(component);
        if (c == counts_->components.end()) return 0;
        const auto r = c->second.restarts.find(reason);
        return r == c->second.restarts.end() ? 0 : r->second;
    }

    /// Components this object keeps state for: those with a counted restart or a pending backoff, not removed.
    /// Never a spawned task. (What bounds its memory; for leak checks.)
    [[nodiscard]] std::size_t tracked_components() const {
        std::lock_guard lock{counts_->mutex};
        return counts_->components.size();
    }

private:
    struct ComponentCounts {
        std::chrono::nanoseconds pending_backoff{};       ///< of the restart scheduled and not yet happened
        std::map<RestartReason, std::uint64_t> restarts;  ///< counted so far, by MonitorEvent::restart_reason
        std::uint64_t last_sequence = 0;                  ///< of the latest event applied
    };

    /// Shared with the listener, which may outlive a collect() in flight. Guarded by `mutex`.
    ///
    /// Invariant: an entry of `components` has a pending backoff or a counted restart. Entries are made only by
    /// events that start a backoff or count a restart, so an event of a component that is gone (the late `stopped`
    /// of an instance that outlived its removal) makes none.
    struct Counts {
        std::mutex mutex;
        std::map<std::string, ComponentCounts> components;

        void on_event(const MonitorEvent& e) {
            if (e.component.empty() || e.spawned) return;  // closed, a group's escalation; spawned tasks
            std::lock_guard lock{mutex};
            if (makes_entry(e)) {
                apply(components[e.component], e);
                return;
            }
            const auto it = components.find(e.component);
            if (it == components.end()) return;  // nothing pending or counted: nothing to change
            if (e.kind == MonitorEventKind::removed) {
                // Events published on different threads may arrive out of order: keep the entry if events of a
                // component added again under this name already arrived.
                if (it->second.last_sequence < e.sequence) components.erase(it);
                return;
            }
            apply(it->second, e);
            if (it->second.pending_backoff == std::chrono::nanoseconds::zero() && it->second.restarts.empty()) {
                components.erase(it);
            }
        }

        /// Whether `e` counts a restart or starts a backoff.
        static bool makes_entry(const MonitorEvent& e) {
            switch (e.kind) {
                case MonitorEventKind::restarted:
                case MonitorEventKind::quarantined:
                case MonitorEventKind::restart_scheduled: return true;
                default: return false;
            }
        }

        static void apply(ComponentCounts& c, const MonitorEvent& e) {
            c.last_sequence = std::max(c.last_sequence, e.sequence);
            switch (e.kind) {
                case MonitorEventKind::quarantined:        // the cooldown until the trial
                case MonitorEventKind::restart_scheduled:  // the backoff
                    c.pending_backoff = e.delay;
                    break;
                case MonitorEventKind::restarted:
                    ++c.restarts[e.restart_reason];
                    c.pending_backoff = {};
                    break;
                case MonitorEventKind::restart_merged:  // cuts a pending backoff short
                case MonitorEventKind::gave_up:
                case MonitorEventKind::escalated:
                case MonitorEventKind::restart_cancelled:
                case MonitorEventKind::completed:
                case MonitorEventKind::not_enabled:
                case MonitorEventKind::no_factory: c.pending_backoff = {}; break;
                default: break;  // started, stopped, stop_timeout, kinds added later: no effect on the counts
            }
        }
    };

    MetricSample sample(std::vector<MetricLabel> labels, double value) const {
        labels.insert(labels.begin(), options_.const_labels.begin(), options_.const_labels.end());
        return MetricSample{std::move(labels), value};
    }

    static MonitorMetricsOptions validated(MonitorMetricsOptions options) {
        for (const auto& [name, value] : options.const_labels) {
            if (!is_valid_label_name(name) || name == "component" || name == "reason" || name == "state") {
                throw std::invalid_argument("MonitorMetricsOptions.const_labels: invalid or reserved label name '" +
                                            name + "'");
            }
        }
        return options;
    }

    MonitorMetricsOptions options_;
    std::shared_ptr<Counts> counts_;
    std::function<std::map<std::string, ComponentStats>()> stats_;
    EventSubscription subscription_;
};

}  // namespace taskmon

// taskmon — coroutine supervision for standalone Asio.
// SPDX-License-Identifier: MIT
//
// A TaskMonitor as JSON, without a JSON library: one object per MonitorEvent (the health server's GET /events
// sends each as an SSE `data:` line) and a snapshot of every component and group (GET /api/tree, and the first
// event of /events).
//
//   std::string line = taskmon::monitor_event_json(event);        // {"kind":"failed","component":"db",...}
//   std::string tree = taskmon::monitor_snapshot_json(monitor);   // {"format":"taskmon.monitor.v1",...}
//
// Format: one line, no spaces. Enums are their names ("restart_scheduled"); times are integer nanoseconds since
// the Unix epoch in keys named `*_time_ns` / `*_at_ns`, durations integer nanoseconds in `*_ns`; a time or
// duration that does not apply is null. Every key of an event is always present (a field that does not apply
// to the kind has its default, as in MonitorEvent), so a reader never tests for presence. Strings are valid
// UTF-8 whatever they came from: each byte of an exception message that is not part of valid UTF-8 becomes
// U+FFFD (as the timeline's SVG does); quotes, backslashes and controls are escaped.
#pragma once

#include <taskmon/component_group.hpp>
#include <taskmon/component_stats.hpp>
#include <taskmon/detail/json_writer.hpp>
#include <taskmon/monitor_event.hpp>
#include <taskmon/restart_policy.hpp>

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>

namespace taskmon {

template <typename Clock>
class BasicTaskMonitor;

/// The value of the "format" key of a snapshot.
inline constexpr std::string_view monitor_json_format = "taskmon.monitor.v1";

namespace detail::monitor_json {

inline std::int64_t unix_ns(std::chrono::system_clock::time_point t) {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
}

inline void optional_time(JsonWriter& w, std::string_view key,
                          const std::optional<std::chrono::system_clock::time_point>& t) {
    w.key(key);
    if (t) {
        w.value(unix_ns(*t));
    } else {
        w.null();
    }
}

/// What is left of a wait that ends at `until`, seen at `now`: 0 once past, null when there is no wait.
inline void remaining(JsonWriter& w, std::string_view key,
                      const std::optional<std::chrono::system_clock::time_point>& until,
                      std::chrono::system_clock::time_point now) {
    w.key(key);
    if (!until) {
        w.null();
        return;
    }
    const auto left = std::chrono::duration_cast<std::chrono::nanoseconds>(*until - now).count();
    w.value(static_cast<std::int64_t>(left > 0 ? left : 0));
}

inline void write_event(JsonWriter& w, const MonitorEvent& e) {
    w.begin_object();
    w.key("kind").value(to_string(e.kind));
    w.key("component").value(e.component);
    w.key("sequence").value(e.sequence);
    w.key("time_ns").value(unix_ns(e.time));
    w.key("task_id").value(e.task_id);
    w.key("attempt").value(e.attempt);
    w.key("restart_count").value(e.restart_count);
    w.key("failure_count").value(e.failure_count);
    w.key("limit").value(e.limit);
    w.key("delay_ns").value(static_cast<std::int64_t>(e.delay.count()));
    w.key("window_ns").value(static_cast<std::int64_t>(e.window.count()));
    w.key("reason").value(e.reason);
    w.key("restart_type").value(to_string(e.restart_type));
    w.key("restart_reason").value(to_string(e.restart_reason));
    w.key("failure_class").value(to_string(e.failure_class));
    w.key("count").value(static_cast<std::uint64_t>(e.count));
    w.key("unresponsive").value(static_cast<std::uint64_t>(e.unresponsive));
    w.key("group").value(e.group);
    w.key("members").begin_array();
    for (const auto& m : e.members) w.value(m);
    w.end_array();
    w.key("spawned").value(e.spawned);
    w.end_object();
}

inline void write_component(JsonWriter& w, const std::string& name, const ComponentStats& s,
                            std::chrono::system_clock::time_point now) {
    w.begin_object();
    w.key("name").value(name);
    w.key("state").value(to_string(s.state));
    w.key("group").value(s.group);
    w.key("enabled").value(s.enabled);
    w.key("restart_count").value(s.restart_count);
    w.key("restarts_in_window").value(s.restarts_in_window);
    w.key("failure_count").value(s.failure_count);
    w.key("last_error").value(s.last_error);
    optional_time(w, "last_restart_time_ns", s.last_restart_time);
    optional_time(w, "next_restart_at_ns", s.next_restart_at);
    remaining(w, "backoff_remaining_ns", s.next_restart_at, now);
    optional_time(w, "next_trial_at_ns", s.next_trial_at);
    remaining(w, "cooldown_remaining_ns", s.next_trial_at, now);
    w.key("quarantine_cooldown_ns").value(static_cast<std::int64_t>(s.quarantine_cooldown.count()));
    w.key("last_heartbeat_age_ns");
    if (s.last_heartbeat_age) {
        w.value(static_cast<std::int64_t>(s.last_heartbeat_age->count()));
    } else {
        w.null();
    }
    optional_time(w, "liveness_deadline_ns", s.liveness_deadline);
    remaining(w, "liveness_remaining_ns", s.liveness_deadline, now);
    w.key("task_id").value(s.task_id);
    w.key("generation").value(s.generation);
    w.key("is_restarting").value(s.is_restarting);
    w.key("task_done").value(s.task_done);
    w.key("task_cancelled").value(s.task_cancelled);
    w.key("ready").value(s.ready);
    w.key("idle").value(s.idle);
    w.key("in_trial").value(s.in_trial);
    w.key("spawned").value(s.spawned);
    w.end_object();
}

inline void write_group(JsonWriter& w, const std::string& name, const GroupStats& g) {
    w.begin_object();
    w.key("name").value(name);
    w.key("state").value(to_string(g.state));
    w.key("strategy").value(to_string(g.strategy));
    w.key("parent").value(g.parent);
    w.key("members").begin_array();
    for (const auto& m : g.members) w.value(m);
    w.end_array();
    w.key("restart_count").value(g.restart_count);
    w.key("restarts_in_window").value(g.restarts_in_window);
    w.end_object();
}

}  // namespace detail::monitor_json

/// One event as a JSON object (one line): every field of MonitorEvent, typed, in declaration order.
[[nodiscard]] inline std::string monitor_event_json(const MonitorEvent& event) {
    detail::JsonWriter w;
    detail::monitor_json::write_event(w, event);
    return std::move(w).str();
}

/// A snapshot as a JSON object (one line): "format", "time_ns" (`now`), "last_sequence" (the sequence of the
/// last event the snapshot reflects, 0 if unknown: a live view applies the events after it), "components" (by
/// name, each with its state, counts, last error, restart times and the backoff and quarantine cooldown left at
/// `now`, 0 once due) and "groups" (by name, each with its strategy, parent and members in start order).
/// Components and groups are sorted by name, as the maps are.
[[nodiscard]] inline std::string monitor_snapshot_json(const std::map<std::string, ComponentStats>& components,
                                                       const std::map<std::string, GroupStats>& groups,
                                                       std::chrono::system_clock::time_point now,
                                                       std::uint64_t last_sequence = 0) {
    detail::JsonWriter w;
    w.begin_object();
    w.key("format").value(monitor_json_format);
    w.key("time_ns").value(detail::monitor_json::unix_ns(now));
    w.key("last_sequence").value(last_sequence);
    w.key("components").begin_array();
    for (const auto& [name, stats] : components) detail::monitor_json::write_component(w, name, stats, now);
    w.end_array();
    w.key("groups").begin_array();
    for (const auto& [name, group] : groups) detail::monitor_json::write_group(w, name, group);
    w.end_array();
    w.end_object();
    return std::move(w).str();
}

/// The snapshot of `monitor` now (system_clock::now(): the wall clock the monitor's times are on under the steady
/// clock; under a virtual clock pass its wall time to the overload above). Groups and components are read one
/// after the other, each consistent on its own.
template <typename Clock>
[[nodiscard]] std::string monitor_snapshot_json(const BasicTaskMonitor<Clock>& monitor,
                                                std::uint64_t last_sequence = 0) {
    auto groups = monitor.get_group_stats();
    auto components = monitor.get_component_stats();
    return monitor_snapshot_json(components, groups, std::chrono::system_clock::now(), last_sequence);
}

}  // namespace taskmon

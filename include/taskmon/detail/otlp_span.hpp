// taskmon — coroutine supervision for standalone Asio.
// SPDX-License-Identifier: MIT
//
// OtlpSpan: the facts of one component incarnation that OtlpExporter keeps until it encodes them as an OTLP span
// (detail/otlp_json.hpp). Plain values only: the listener on the monitor's path fills it by copying, and the
// sender formats it later, off that path.
#pragma once

#include <taskmon/monitor_event.hpp>
#include <taskmon/restart_policy.hpp>

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace taskmon::detail {

/// OTLP's Status.code (opentelemetry/proto/trace/v1/trace.proto): 0 unset, 1 ok, 2 error.
enum class OtlpStatusCode : int { unset = 0, ok = 1, error = 2 };

/// One span event: a backoff, a give-up, a quarantine, a liveness timeout, or the exception of a failure.
struct OtlpSpanEvent {
    std::string_view name;  ///< a MonitorEventKind's name, or "exception" (static strings)
    std::chrono::system_clock::time_point time{};
    int attempt = 0;                   ///< restart_scheduled, quarantined
    std::chrono::nanoseconds delay{};  ///< restart_scheduled, quarantined: the backoff or cooldown; timeouts
    int limit = 0;                     ///< gave_up
    std::string reason{};              ///< the event's reason; for "exception" the whole "type: what"
};

/// An attribute of a span not made from a MonitorEvent (a Supervisor step's): a string, or an integer if
/// `is_int`.
struct OtlpAttribute {
    std::string_view key;  ///< static strings
    std::string string_value{};
    std::int64_t int_value = 0;
    bool is_int = false;
};

/// One incarnation (instance) of a component, from its start to its exit; or, with `component` empty, a span
/// of a Supervisor step (`name`, `parent_span_id`, `attributes`).
struct OtlpSpan {
    std::uint64_t span_id = 0;
    std::uint64_t link_span_id = 0;    ///< the previous incarnation's span; 0 for the first one seen
    std::uint64_t parent_span_id = 0;  ///< a step's span for its decide and act spans
    std::string_view name{};           ///< a step's span: "agent.step", "decide", "act" (static strings)
    std::vector<OtlpAttribute> attributes{};
    std::string component{};
    std::string group{};
    std::uint64_t task_id = 0;
    std::chrono::system_clock::time_point start{};
    std::chrono::system_clock::time_point end{};
    MonitorEventKind start_kind = MonitorEventKind::started;  ///< started, restarted
    MonitorEventKind end_kind = MonitorEventKind::started;    ///< the exit (started while the span is open)
    bool trial = false;                                       ///< a quarantine trial (trial_started)
    bool open_at_close = false;  ///< still running at OtlpExporter::close(), which ended it: no exit seen
    bool spawned = false;
    int attempt = 0;                                        ///< restarted: k of the backoff formula
    int restart_count = 0;                                  ///< at the start
    RestartReason restart_reason = RestartReason::unknown;  ///< restarted
    std::string restart_cause{};                            ///< restarted: the failure's "type: what"
    OtlpStatusCode status = OtlpStatusCode::unset;
    std::string status_message{};
    bool failure = false;  ///< the exit counts as a failure: failure_class is set
    FailureClass failure_class = FailureClass::counted;
    std::vector<OtlpSpanEvent> events{};
};

}  // namespace taskmon::detail

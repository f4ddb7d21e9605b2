// taskmon — coroutine supervision for standalone Asio.
// SPDX-License-Identifier: MIT
//
// OTLP/JSON encoding of OtlpSpan values: one ExportTraceServiceRequest, the body of POST /v1/traces. Follows the
// OTLP specification's JSON mapping of the protobuf messages: field names in lowerCamelCase, trace and span ids as
// lowercase hex (not base64), 64-bit integers (times in ns, intValue) as decimal strings, enums as integers.
#pragma once

#include <taskmon/detail/json_writer.hpp>
#include <taskmon/detail/otlp_span.hpp>
#include <taskmon/monitor_event.hpp>
#include <taskmon/restart_policy.hpp>

#include <array>
#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace taskmon::detail {

/// A trace id: 128 bits, never all zero once made by OtlpExporter.
struct OtlpTraceId {
    std::uint64_t high = 0;
    std::uint64_t low = 0;
};

/// `value` as `digits` lowercase hex digits (16 for a span id, twice that for a trace id).
inline void append_otlp_hex(std::string& out, std::uint64_t value) {
    static constexpr std::string_view digits = "0123456789abcdef";
    for (int shift = 60; shift >= 0; shift -= 4) out.push_back(digits[(value >> shift) & 0xF]);
}

/// Nanoseconds since the Unix epoch as a JSON string (fixed64 in proto3 JSON); times before 1970 as "0".
inline void append_otlp_time(std::string& out, std::chrono::system_clock::time_point t) {
    const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
    out.push_back('"');
    out += std::to_string(ns < 0 ? 0 : ns);
    out.push_back('"');
}

/// Builds the `attributes` array of KeyValue objects: {"key":k,"value":{"stringValue":s}} or {"intValue":"n"}.
class OtlpAttributes {
public:
    explicit OtlpAttributes(std::string& out) : out_{out} { out_ += "\"attributes\":["; }
    OtlpAttributes(const OtlpAttributes&) = delete;
    OtlpAttributes& operator=(const OtlpAttributes&) = delete;
    ~OtlpAttributes() { out_.push_back(']'); }

    void string(std::string_view key, std::string_view value) {
        open(key);
        out_ += "{\"stringValue\":";
        append_json_string(out_, value);
        out_ += "}}";
    }
    void integer(std::string_view key, std::int64_t value) {
        open(key);
        out_ += "{\"intValue\":\"" + std::to_string(value) + "\"}}";
    }
    void boolean(std::string_view key, bool value) {
        open(key);
        out_ += value ? "{\"boolValue\":true}}" : "{\"boolValue\":false}}";
    }

private:
    void open(std::string_view key) {
        if (!first_) out_.push_back(',');
        first_ = false;
        out_ += "{\"key\":";
        append_json_string(out_, key);
        out_ += ",\"value\":";
    }

    std::string& out_;
    bool first_ = true;
};

/// Splits a "type: what" reason (ComponentStats::last_error's form) at the first ": "; a reason without one is
/// all message, with an empty type.
[[nodiscard]] inline std::pair<std::string_view, std::string_view> split_otlp_reason(std::string_view reason) {
    const auto at = reason.find(": ");
    if (at == std::string_view::npos) return {std::string_view{}, reason};
    return {reason.substr(0, at), reason.substr(at + 2)};
}

inline void append_otlp_event_attributes(std::string& out, const OtlpSpanEvent& e) {
    OtlpAttributes attributes{out};
    if (e.name == "exception") {
        const auto [type, message] = split_otlp_reason(e.reason);
        if (!type.empty()) attributes.string("exception.type", type);
        attributes.string("exception.message", message);
        return;
    }
    if (e.attempt != 0) attributes.integer("taskmon.restart.attempt", e.attempt);
    if (e.delay != std::chrono::nanoseconds::zero()) {
        attributes.integer("taskmon.delay_ms", std::chrono::duration_cast<std::chrono::milliseconds>(e.delay).count());
    }
    if (e.limit != 0) attributes.integer("taskmon.restart.limit", e.limit);
    if (!e.reason.empty()) attributes.string("taskmon.reason", e.reason);
}

inline void append_otlp_event(std::string& out, const OtlpSpanEvent& e) {
    out += "{\"timeUnixNano\":";
    append_otlp_time(out, e.time);
    out += ",\"name\":";
    append_json_string(out, e.name);
    out.push_back(',');
    append_otlp_event_attributes(out, e);
    out.push_back('}');
}

/// The attributes of a component incarnation's span.
inline void append_otlp_component_attributes(OtlpAttributes& attributes, const OtlpSpan& span) {
    attributes.string("taskmon.component", span.component);
    attributes.integer("taskmon.task_id", static_cast<std::int64_t>(span.task_id));
    attributes.string("taskmon.start", to_string(span.start_kind));
    if (span.open_at_close) {
        attributes.boolean("taskmon.open_at_close", true);  // no exit to name: the exporter closed first
    } else {
        attributes.string("taskmon.exit", to_string(span.end_kind));
    }
    attributes.integer("taskmon.restart.count", span.restart_count);
    if (span.start_kind == MonitorEventKind::restarted) {
        attributes.string("taskmon.restart.reason", to_string(span.restart_reason));
        if (span.attempt != 0) attributes.integer("taskmon.restart.attempt", span.attempt);
        if (!span.restart_cause.empty()) attributes.string("taskmon.restart.cause", span.restart_cause);
    }
    if (span.failure) attributes.string("taskmon.failure_class", to_string(span.failure_class));
    if (!span.group.empty()) attributes.string("taskmon.group", span.group);
    if (span.trial) attributes.boolean("taskmon.quarantine.trial", true);
    if (span.spawned) attributes.boolean("taskmon.spawned", true);
}

inline void append_otlp_span(std::string& out, const OtlpTraceId& trace, const OtlpSpan& span) {
    std::string trace_hex;
    append_otlp_hex(trace_hex, trace.high);
    append_otlp_hex(trace_hex, trace.low);
    out += "{\"traceId\":\"" + trace_hex + "\",\"spanId\":\"";
    append_otlp_hex(out, span.span_id);
    out.push_back('"');
    if (span.parent_span_id != 0) {
        out += ",\"parentSpanId\":\"";
        append_otlp_hex(out, span.parent_span_id);
        out.push_back('"');
    }
    out += ",\"name\":";
    append_json_string(out, span.component.empty() ? span.name : std::string_view{span.component});
    out += ",\"kind\":1,\"startTimeUnixNano\":";  // SPAN_KIND_INTERNAL
    append_otlp_time(out, span.start);
    out += ",\"endTimeUnixNano\":";
    append_otlp_time(out, span.end);
    out.push_back(',');
    {
        OtlpAttributes attributes{out};
        for (const auto& a : span.attributes) {
            if (a.is_int) {
                attributes.integer(a.key, a.int_value);
            } else {
                attributes.string(a.key, a.string_value);
            }
        }
        if (!span.component.empty()) append_otlp_component_attributes(attributes, span);
    }
    out += ",\"events\":[";
    for (std::size_t i = 0; i < span.events.size(); ++i) {
        if (i != 0) out.push_back(',');
        append_otlp_event(out, span.events[i]);
    }
    out += "],\"links\":[";
    if (span.link_span_id != 0) {
        out += "{\"traceId\":\"" + trace_hex + "\",\"spanId\":\"";
        append_otlp_hex(out, span.link_span_id);
        out += "\"}";
    }
    out += "],\"status\":{";
    if (span.status != OtlpStatusCode::unset) {
        out += "\"code\":" + std::to_string(static_cast<int>(span.status));
        if (!span.status_message.empty()) {
            out += ",\"message\":";
            append_json_string(out, span.status_message);
        }
    }
    out += "}}";
}

/// The body of one POST /v1/traces: one resource (service.name), one scope ("taskmon", `scope_version`).
[[nodiscard]] inline std::string encode_otlp_traces(std::string_view service_name, std::string_view scope_version,
                                                    const OtlpTraceId& trace, const std::vector<OtlpSpan>& spans) {
    std::string out;
    out.reserve(512 + spans.size() * 700);  // a span with an exception event encodes to about 600 bytes
    out += "{\"resourceSpans\":[{\"resource\":{";
    {
        OtlpAttributes attributes{out};
        attributes.string("service.name", service_name);
    }
    out += "},\"scopeSpans\":[{\"scope\":{\"name\":\"taskmon\",\"version\":";
    append_json_string(out, scope_version);
    out += "},\"spans\":[";
    for (std::size_t i = 0; i < spans.size(); ++i) {
        if (i != 0) out.push_back(',');
        append_otlp_span(out, trace, spans[i]);
    }
    out += "]}]}]}";
    return out;
}

}  // namespace taskmon::detail

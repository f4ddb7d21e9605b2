// taskmon — coroutine supervision for standalone Asio.
// SPDX-License-Identifier: MIT
//
// MetricFamily: a library-neutral snapshot of metrics (name, help, type, labelled samples) and its rendering in
// the Prometheus text exposition format 0.0.4. MonitorMetrics and AgentMetrics produce families; the /metrics
// endpoint (taskmon/ops/health_server.hpp) renders them with render_text_format(), which needs no Prometheus
// library; taskmon/ops/prometheus.hpp hands the same families to a prometheus-cpp registry.
//
//   std::vector<taskmon::MetricFamily> families = metrics.collect();
//   std::string body = taskmon::render_text_format(families);   // "# HELP ...\n# TYPE ...\nname{l=\"v\"} 1\n"
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <iterator>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <fmt/format.h>

#include <taskmon/detail/utf8.hpp>

namespace taskmon {

enum class MetricType {
    counter,  ///< only goes up (reset when the process restarts); the name ends in _total
    gauge,    ///< a current value
};

[[nodiscard]] constexpr std::string_view to_string(MetricType type) noexcept {
    return type == MetricType::counter ? "counter" : "gauge";
}

/// One label: name (a Prometheus label name) and value (any text; made valid UTF-8 and escaped when rendered).
using MetricLabel = std::pair<std::string, std::string>;

/// One time series of a family.
struct MetricSample {
    std::vector<MetricLabel> labels;
    double value = 0.0;
};

/// A metric family. Invariant kept by its producers: every sample carries the same label names, and no two
/// samples carry the same label values.
struct MetricFamily {
    std::string name;  ///< [a-zA-Z_:][a-zA-Z0-9_:]*
    std::string help;
    MetricType type = MetricType::gauge;
    std::vector<MetricSample> samples;
};

/// True for a valid Prometheus metric name ([a-zA-Z_:][a-zA-Z0-9_:]*).
[[nodiscard]] constexpr bool is_valid_metric_name(std::string_view name) noexcept {
    if (name.empty()) return false;
    for (std::size_t i = 0; i < name.size(); ++i) {
        const char c = name[i];
        const bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':';
        if (!alpha && !(i > 0 && c >= '0' && c <= '9')) return false;
    }
    return true;
}

/// True for a valid Prometheus label name ([a-zA-Z_][a-zA-Z0-9_]*, not starting with "__").
[[nodiscard]] constexpr bool is_valid_label_name(std::string_view name) noexcept {
    if (name.empty() || name.starts_with("__")) return false;
    for (std::size_t i = 0; i < name.size(); ++i) {
        const char c = name[i];
        const bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
        if (!alpha && !(i > 0 && c >= '0' && c <= '9')) return false;
    }
    return true;
}

namespace detail {

/// True for a code point that some reader of the text format takes for the end of a line, or that cuts or
/// garbles it: C0 controls but tab (line feed is escaped instead), DEL, C1 controls (U+0085 is NEL), U+2028 and
/// U+2029. The format ends a line only at '\n', but line-oriented tools (Python's splitlines(), a terminal given a
/// '\r', a C reader given a NUL) also stop at these.
[[nodiscard]] constexpr bool breaks_exposition_line(std::uint32_t cp) noexcept {
    return is_control_character(cp) && cp != '\t' && cp != '\n';
}

/// Calls `put(piece)` for each piece of `text` as the text format may carry it before its own escapes: valid
/// UTF-8 is passed on, and each byte that is not part of valid UTF-8 and each character breaks_exposition_line()
/// names becomes U+FFFD (as the timeline's SVG does), so the format's required UTF-8 holds and every sample keeps
/// its one line.
template <typename Put>
void for_each_exposition_piece(std::string_view text, Put&& put) {
    for (std::size_t at = 0; at < text.size();) {
        const auto s = decode_utf8(text, at);
        if (!s.valid || breaks_exposition_line(s.code_point)) {
            put(utf8_replacement);
        } else {
            put(text.substr(at, s.length));
        }
        at += s.length;
    }
}

/// `text` as a label value or HELP text the text format can carry, before escaping (see
/// for_each_exposition_piece); what taskmon/ops/prometheus.hpp hands to prometheus-cpp, which escapes it itself.
[[nodiscard]] inline std::string exposition_text(std::string_view text) {
    std::string out;
    out.reserve(text.size());
    for_each_exposition_piece(text, [&](std::string_view piece) { out += piece; });
    return out;
}

/// Appends a label value (backslash, double quote and line feed escaped) or, with quote = false, a HELP text
/// (backslash and line feed escaped), as the text format requires, after exposition_text()'s replacements.
inline void append_escaped(std::string& out, std::string_view text, bool quote) {
    for_each_exposition_piece(text, [&](std::string_view piece) {
        if (piece == "\\") {
            out += "\\\\";
        } else if (piece == "\n") {
            out += "\\n";
        } else if (quote && piece == "\"") {
            out += "\\\"";
        } else {
            out += piece;
        }
    });
}

inline void append_value(std::string& out, double value) {
    if (std::isnan(value)) {
        out += "NaN";
    } else if (std::isinf(value)) {
        out += value > 0 ? "+Inf" : "-Inf";
    } else if (value == std::floor(value) && std::fabs(value) < 1e15) {
        fmt::format_to(std::back_inserter(out), "{}", static_cast<long long>(value));
    } else {
        fmt::format_to(std::back_inserter(out), "{}", value);  // shortest round-trip representation
    }
}

}  // namespace detail

/// Renders `families` in the Prometheus text exposition format 0.0.4 (Content-Type
/// `text/plain; version=0.0.4; charset=utf-8`): per family a HELP and a TYPE line, then one line per sample.
/// Label values and HELP texts are escaped, and in them each byte that is not part of valid UTF-8 and each
/// character breaks_exposition_line() names becomes U+FFFD: one bad component name cannot make the whole
/// exposition unparsable.
/// A family with no samples is rendered with its HELP and TYPE lines only. Throws std::invalid_argument naming
/// an invalid metric or label name, or a family name that appears twice; nothing is rendered then.
[[nodiscard]] inline std::string render_text_format(const std::vector<MetricFamily>& families) {
    std::string out;
    std::vector<std::string_view> seen;
    for (const auto& family : families) {
        if (!is_valid_metric_name(family.name)) {
            throw std::invalid_argument("render_text_format: invalid metric name '" + family.name + "'");
        }
        for (const auto name : seen) {
            if (name == family.name) {
                throw std::invalid_argument("render_text_format: metric family '" + family.name + "' appears twice");
            }
        }
        seen.push_back(family.name);
        out += "# HELP ";
        out += family.name;
        out += ' ';
        detail::append_escaped(out, family.help, false);
        out += "\n# TYPE ";
        out += family.name;
        out += ' ';
        out += to_string(family.type);
        out += '\n';
        for (const auto& sample : family.samples) {
            out += family.name;
            if (!sample.labels.empty()) {
                out += '{';
                bool first = true;
                for (const auto& [name, value] : sample.labels) {
                    if (!is_valid_label_name(name)) {
                        throw std::invalid_argument("render_text_format: invalid label name '" + name +
                                                    "' in metric '" + family.name + "'");
                    }
                    if (!first) out += ',';
                    first = false;
                    out += name;
                    out += "=\"";
                    detail::append_escaped(out, value, true);
                    out += '"';
                }
                out += '}';
            }
            out += ' ';
            detail::append_value(out, sample.value);
            out += '\n';
        }
    }
    return out;
}

/// Appends `more` to `into`, merging a family whose name is already in `into` (its samples are appended; the
/// first family's help and type are kept). Use it to render several sources (e.g. two monitors told apart by
/// a constant label) in one exposition.
inline void merge_families(std::vector<MetricFamily>& into, std::vector<MetricFamily> more) {
    for (auto& family : more) {
        auto it = std::find_if(into.begin(), into.end(), [&](const MetricFamily& f) { return f.name == family.name; });
        if (it == into.end()) {
            into.push_back(std::move(family));
        } else {
            it->samples.insert(it->samples.end(), std::make_move_iterator(family.samples.begin()),
                               std::make_move_iterator(family.samples.end()));
        }
    }
}

/// The Content-Type of render_text_format()'s output.
inline constexpr std::string_view text_format_content_type = "text/plain; version=0.0.4; charset=utf-8";

}  // namespace taskmon

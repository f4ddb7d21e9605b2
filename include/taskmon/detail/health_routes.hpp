// taskmon — coroutine supervision for standalone Asio.
// SPDX-License-Identifier: MIT
//
// HealthServer internals: answer_health_request(), the routing of the GET endpoints (also usable from another
// HTTP server; /events is streamed by HealthServerState itself), the snapshot with its runs, and the checks of
// the endpoints and settings given to the constructor.
#pragma once

#include <taskmon/ops/health_endpoints.hpp>

#include <taskmon/detail/http_request.hpp>
#include <taskmon/detail/live_page.hpp>
#include <taskmon/detail/log_text.hpp>
#include <taskmon/detail/utf8.hpp>

#include <fmt/format.h>
#include <http_parser.h>

#include <algorithm>
#include <cstdint>
#include <exception>
#include <stdexcept>
#include <string>
#include <string_view>

namespace taskmon {
namespace detail {
/// The snapshot: `tree`'s object, with the member "runs" (the array `runs` gives) added last when it is set.
[[nodiscard]] inline std::string tree_with_runs(const HealthEndpoints& endpoints, std::uint64_t last_sequence) {
    auto tree = endpoints.tree(last_sequence);
    if (!endpoints.runs) return tree;
    const auto close = tree.rfind('}');
    if (close == std::string::npos) return tree;
    const auto open = tree.find('{');
    const bool empty = tree.find_first_not_of(" \t\r\n", open + 1) == close;
    tree.insert(close, (empty ? "\"runs\":" : ",\"runs\":") + endpoints.runs());
    return tree;
}

[[nodiscard]] inline HealthEndpoints validated_endpoints(HealthEndpoints e) {
    // 16 characters: a guessing attacker needs ~95^16 tries; the check refuses a placeholder like "secret".
    if (!e.action_token.empty() &&
        (e.action_token.size() < 16 ||
         std::any_of(e.action_token.begin(), e.action_token.end(), [](char ch) { return ch <= ' ' || ch > '~'; }))) {
        throw std::invalid_argument(
            "HealthEndpoints.action_token must be at least 16 printable ASCII characters without spaces");
    }
    return e;
}

/// 2^20 kept events hold ~400 MB: more is a mistake rather than a choice.
inline constexpr std::size_t max_event_replay_capacity = std::size_t{1} << 20;

[[nodiscard]] inline HealthServerSettings validated_settings(HealthServerSettings s) {
    if (s.max_request_bytes == 0) throw std::invalid_argument("HealthServerSettings.max_request_bytes is 0");
    if (s.max_connections == 0) throw std::invalid_argument("HealthServerSettings.max_connections is 0");
    if (s.read_timeout <= std::chrono::milliseconds::zero()) {
        throw std::invalid_argument("HealthServerSettings.read_timeout must be positive");
    }
    if (s.write_timeout <= std::chrono::milliseconds::zero()) {
        throw std::invalid_argument("HealthServerSettings.write_timeout must be positive");
    }
    // Added to clock readings for the deadlines: bounded so that none overflows.
    if (s.read_timeout > longest_duration_setting) {
        throw std::invalid_argument("HealthServerSettings.read_timeout must not exceed 100 years");
    }
    if (s.write_timeout > longest_duration_setting) {
        throw std::invalid_argument("HealthServerSettings.write_timeout must not exceed 100 years");
    }
    if (s.event_queue_capacity == 0) throw std::invalid_argument("HealthServerSettings.event_queue_capacity is 0");
    if (s.event_replay_capacity > max_event_replay_capacity) {
        throw std::invalid_argument("HealthServerSettings.event_replay_capacity must not exceed 1,048,576");
    }
    if (s.event_retry < Duration::zero() || s.event_retry > longest_duration_setting) {
        throw std::invalid_argument("HealthServerSettings.event_retry must be within 0 and 100 years");
    }
    if (s.event_keepalive <= Duration::zero() || s.event_keepalive > longest_duration_setting) {
        throw std::invalid_argument("HealthServerSettings.event_keepalive must be positive and at most 100 years");
    }
    return s;
}
}  // namespace detail

inline HealthResponse answer_health_request(const HealthEndpoints& endpoints, std::string_view target,
                                            std::uint64_t last_sequence) {
    http_parser_url url;
    http_parser_url_init(&url);
    if (target.empty() || http_parser_parse_url(target.data(), target.size(), 0, &url) != 0 ||
        (url.field_set & (1 << UF_PATH)) == 0) {
        return {400, "text/plain; charset=utf-8", "bad request target\n"};
    }
    const auto field = [&](http_parser_url_fields f) {
        return (url.field_set & (1 << f)) == 0 ? std::string_view{}
                                               : target.substr(url.field_data[f].off, url.field_data[f].len);
    };
    const auto path = field(UF_PATH);
    const bool verbose = detail::query_has_verbose(field(UF_QUERY));
    try {
        if (path == "/livez" || path == "/readyz") {
            if (!endpoints.health) return {404, "text/plain; charset=utf-8", "no health endpoint configured\n"};
            const auto probe = path == "/livez" ? HealthProbe::liveness : HealthProbe::readiness;
            const auto report = endpoints.health();
            const int status = report.passes(probe) ? 200 : 503;
            std::string body = verbose ? probe_details(report, probe) : probe_summary(report, probe) + "\n";
            return {status, "text/plain; charset=utf-8", std::move(body)};
        }
        if (path == "/api/tree") {
            if (!endpoints.tree) return {404, "text/plain; charset=utf-8", "no tree endpoint configured\n"};
            return {200, "application/json", detail::tree_with_runs(endpoints, last_sequence)};
        }
        if (path == "/events") {
            if (!endpoints.tree || !endpoints.subscribe) {
                return {404, "text/plain; charset=utf-8", "no events endpoint configured\n"};
            }
            return {200, "text/event-stream", ""};
        }
        if (path == "/ui") {
            if (!endpoints.tree || !endpoints.subscribe) {
                return {404, "text/plain; charset=utf-8", "no live view configured (tree and subscribe)\n"};
            }
            return {200, "text/html; charset=utf-8",
                    detail::live_page(endpoints.act && !endpoints.action_token.empty(),
                                      endpoints.run_act && !endpoints.action_token.empty())};
        }
        if (path == "/metrics") {
            if (!endpoints.metrics) return {404, "text/plain; charset=utf-8", "no metrics endpoint configured\n"};
            return {200, std::string{text_format_content_type}, render_text_format(endpoints.metrics())};
        }
    } catch (const std::exception& e) {
        // The health source is the application's: its message may be anything (null, not UTF-8, several lines).
        return {500, "text/plain; charset=utf-8",
                fmt::format("endpoint failed: {}\n", detail::to_valid_utf8(detail::what_of(e)))};
    }
    return {404, "text/plain; charset=utf-8", "not found; try /livez, /readyz, /metrics, /api/tree or /events\n"};
}

}  // namespace taskmon

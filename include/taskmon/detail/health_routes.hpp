// taskmon — coroutine supervision for standalone Asio.
// SPDX-License-Identifier: MIT
//
// HealthServer internals: answer_health_request(), the routing of the GET endpoints (also usable from another
// HTTP server; /events is streamed by HealthServerState itself).
#pragma once

#include <taskmon/ops/health_server.hpp>

#include <taskmon/detail/http_request.hpp>
#include <taskmon/detail/live_page.hpp>
#include <taskmon/detail/log_text.hpp>
#include <taskmon/detail/utf8.hpp>

#include <fmt/format.h>
#include <http_parser.h>

#include <cstdint>
#include <exception>
#include <string>
#include <string_view>

namespace taskmon {

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
            return {200, "application/json", endpoints.tree(last_sequence)};
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
                    detail::live_page(endpoints.act && !endpoints.action_token.empty())};
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

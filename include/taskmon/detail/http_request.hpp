// taskmon — coroutine supervision for standalone Asio.
// SPDX-License-Identifier: MIT
//
// Internal: one HTTP/1.1 request as the health server reads it (http_parser 2.9): the target, the few headers it
// acts on, the body, and the refusals of request lines it does not serve.
#pragma once

#include <http_parser.h>

#include <cstddef>
#include <string>
#include <string_view>

namespace taskmon::detail {

inline std::string_view http_reason_phrase(int status) noexcept {
    switch (status) {
        case 200: return "OK";
        case 400: return "Bad Request";
        case 401: return "Unauthorized";
        case 403: return "Forbidden";
        case 404: return "Not Found";
        case 405: return "Method Not Allowed";
        case 408: return "Request Timeout";
        case 413: return "Payload Too Large";
        case 431: return "Request Header Fields Too Large";
        case 500: return "Internal Server Error";
        case 503: return "Service Unavailable";
        case 505: return "HTTP Version Not Supported";
        default: return "Unknown";
    }
}

/// True when the query string has a `verbose` parameter whose value is not "0" or "false".
inline bool query_has_verbose(std::string_view query) {
    while (!query.empty()) {
        const auto amp = query.find('&');
        const auto param = query.substr(0, amp);
        const auto eq = param.find('=');
        if (param.substr(0, eq) == "verbose") {
            const auto value = eq == std::string_view::npos ? std::string_view{} : param.substr(eq + 1);
            return value != "0" && value != "false";
        }
        query = amp == std::string_view::npos ? std::string_view{} : query.substr(amp + 1);
    }
    return false;
}

/// The path of a request target ("/readyz" of "/readyz?verbose"); empty when the target is not a valid URL.
inline std::string_view target_path(std::string_view target) {
    http_parser_url url;
    http_parser_url_init(&url);
    if (target.empty() || http_parser_parse_url(target.data(), target.size(), 0, &url) != 0 ||
        (url.field_set & (1 << UF_PATH)) == 0) {
        return {};
    }
    return target.substr(url.field_data[UF_PATH].off, url.field_data[UF_PATH].len);
}

/// The status that refuses a request line's HTTP version, or 0 when the version is served.
/// - No version (HTTP/0.9's "GET /path"): 400. RFC 9112 §3 requires a version in the request line, and an
///   HTTP/0.9 client reads neither a status line nor headers, so no answer suits it; http_parser takes such a
///   line for HTTP/0.9 and would wait for headers that never come, answering 408 only after read_timeout.
/// - Another major version than 1 (HTTP/0.9 spelled out, HTTP/2.0 without upgrade, HTTP/9.9): 505, which
///   RFC 9110 §15.6.6 defines for a major version the server does not support; 400 would tell the client its
///   message is malformed, which it may not be.
/// - HTTP/1.x with x > 1: served as HTTP/1.1, as RFC 9110 §2.5 asks of a recipient of a higher minor version.
inline int http_version_refusal(bool has_version, unsigned major) noexcept {
    if (!has_version) return 400;
    return major == 1 ? 0 : 505;
}

/// One request as http_parser reports it: the target, the headers the server acts on (the operator actions'
/// Authorization, Origin and X-Taskmon-Action; Host; the Last-Event-ID of /events), and the body's size. Other
/// headers are counted by the size limit and otherwise ignored. A header given twice keeps its values joined by
/// ", " (RFC 9110 §5.3), so a second Authorization cannot pass for the first.
struct ParsedRequest {
    std::string target;
    std::string authorization;
    std::string origin;
    std::string host;
    std::string action_header;  ///< X-Taskmon-Action
    std::string last_event_id;  ///< Last-Event-ID (an /events client resuming)
    bool has_origin = false;
    bool has_last_event_id = false;
    bool has_action_header = false;
    std::size_t body_bytes = 0;
    std::string field_;             ///< the header name being read, lower-cased
    std::string* value_ = nullptr;  ///< where its value goes; null for a header not kept
    bool in_value_ = false;
    bool headers_done = false;
    bool complete = false;
    // The request line, followed in the bytes http_parser accepted: the parser reports neither where the line
    // ends nor whether it had a version (it takes a line without one for HTTP/0.9 and waits for headers).
    bool line_started = false;  ///< past the empty lines http_parser skips before a request line
    bool line_done = false;     ///< its line feed was parsed: http_parser's version fields are final
    int line_fields = 0;        ///< space-separated: method, target and version; 2 when the version is missing
    bool in_field = false;

    void scan_request_line(std::string_view parsed) noexcept {
        for (const char ch : parsed) {
            if (line_done) return;
            if (ch == '\n') {
                line_done = line_started;
            } else if (ch != '\r') {
                line_started = true;
                if (ch == ' ') {
                    in_field = false;
                } else if (!in_field) {
                    in_field = true;
                    ++line_fields;
                }
            }
        }
    }

    static int on_url(http_parser* p, const char* at, std::size_t length) {
        static_cast<ParsedRequest*>(p->data)->target.append(at, length);
        return 0;
    }
    static int on_header_field(http_parser* p, const char* at, std::size_t length) {
        auto& r = *static_cast<ParsedRequest*>(p->data);
        if (r.in_value_) {
            r.in_value_ = false;
            r.field_.clear();
        }
        for (std::size_t i = 0; i < length; ++i) {
            const char c = at[i];
            r.field_ += (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
        }
        return 0;
    }
    static int on_header_value(http_parser* p, const char* at, std::size_t length) {
        auto& r = *static_cast<ParsedRequest*>(p->data);
        if (!r.in_value_) {
            r.in_value_ = true;
            r.value_ = r.field_ == "authorization"      ? &r.authorization
                       : r.field_ == "origin"           ? &r.origin
                       : r.field_ == "host"             ? &r.host
                       : r.field_ == "x-taskmon-action" ? &r.action_header
                       : r.field_ == "last-event-id"    ? &r.last_event_id
                                                        : nullptr;
            if (r.field_ == "origin") r.has_origin = true;
            if (r.field_ == "x-taskmon-action") r.has_action_header = true;
            if (r.field_ == "last-event-id") r.has_last_event_id = true;
            if (r.value_ && !r.value_->empty()) r.value_->append(", ");
        }
        if (r.value_) r.value_->append(at, length);
        return 0;
    }
    static int on_body(http_parser* p, const char*, std::size_t length) {
        static_cast<ParsedRequest*>(p->data)->body_bytes += length;
        return 0;
    }
    static int on_headers_complete(http_parser* p) {
        static_cast<ParsedRequest*>(p->data)->headers_done = true;
        return 0;
    }
    static int on_message_complete(http_parser* p) {
        static_cast<ParsedRequest*>(p->data)->complete = true;
        http_parser_pause(p, 1);  // one request per connection: ignore anything pipelined after it
        return 0;
    }
    static const http_parser_settings& settings() noexcept {
        static const http_parser_settings s = [] {
            http_parser_settings out{};
            out.on_url = &ParsedRequest::on_url;
            out.on_header_field = &ParsedRequest::on_header_field;
            out.on_header_value = &ParsedRequest::on_header_value;
            out.on_body = &ParsedRequest::on_body;
            out.on_headers_complete = &ParsedRequest::on_headers_complete;
            out.on_message_complete = &ParsedRequest::on_message_complete;
            return out;
        }();
        return s;
    }
};

}  // namespace taskmon::detail

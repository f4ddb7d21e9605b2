// taskmon — coroutine supervision for standalone Asio.
// SPDX-License-Identifier: MIT
//
// Internal: the health server's answer to POST /api/components/<name>/<action> and POST /api/runs/<name>/<action>,
// the operator actions, and the event each performed action publishes on /events. Checked in this order, each
// refusal answered and logged by the server: actions not enabled (403), a malformed request (400: no such
// action, a bad percent escape, a name that is empty or not valid UTF-8, a body), no bearer token (401), a wrong
// one (403, compared in constant time), no `X-Taskmon-Action: 1` header (403: a cross-site form cannot send it,
// and a cross-site fetch() with it needs a CORS preflight, which the server never grants), an Origin other than
// the server's own (403); then the action (409 when the monitor or the run_act function refuses it, e.g. an
// unknown name).
#pragma once

#include <taskmon/detail/http_request.hpp>
#include <taskmon/detail/json_writer.hpp>
#include <taskmon/detail/utf8.hpp>
#include <taskmon/ops/operator_action.hpp>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace taskmon::detail {

inline constexpr std::string_view operator_action_prefix = "/api/components/";
inline constexpr std::string_view run_action_prefix = "/api/runs/";

/// True when `given` equals `expected`, in a time that depends on expected.size() only (not on where the first
/// difference is), so that the answer's timing does not reveal a token byte by byte.
[[nodiscard]] inline bool constant_time_equal(std::string_view given, std::string_view expected) noexcept {
    unsigned diff = given.size() == expected.size() ? 0u : 1u;
    for (std::size_t i = 0; i < expected.size(); ++i) {
        const auto g = i < given.size() ? static_cast<unsigned char>(given[i]) : 0u;
        diff |= g ^ static_cast<unsigned char>(expected[i]);
    }
    return diff == 0;
}

/// `text` with each %XX replaced by its byte; empty when an escape is malformed.
[[nodiscard]] inline std::optional<std::string> percent_decode(std::string_view text) {
    const auto hex = [](char c) -> int {
        if (c >= '0' && c <= '9') return c - '0';
        if (c >= 'a' && c <= 'f') return c - 'a' + 10;
        if (c >= 'A' && c <= 'F') return c - 'A' + 10;
        return -1;
    };
    std::string out;
    for (std::size_t i = 0; i < text.size(); ++i) {
        if (text[i] != '%') {
            out += text[i];
            continue;
        }
        if (i + 2 >= text.size()) return std::nullopt;
        const int hi = hex(text[i + 1]);
        const int lo = hex(text[i + 2]);
        if (hi < 0 || lo < 0) return std::nullopt;
        out += static_cast<char>(hi * 16 + lo);
        i += 2;
    }
    return out;
}

/// A parsed action request: what to do to which component.
struct OperatorRequest {
    std::string component;  ///< the component's name, or the run's
    OperatorAction action = OperatorAction::restart;
    bool run = false;  ///< a run action (/api/runs/): `run_action`, not `action`
    RunAction run_action = RunAction::pause;

    [[nodiscard]] std::string_view verb() const noexcept { return run ? to_string(run_action) : to_string(action); }
    [[nodiscard]] std::string_view target() const noexcept { return run ? "run" : "component"; }
};

/// Why a request is refused: its status and the reason given in the body and the log.
struct OperatorRefusal {
    int status = 400;
    std::string reason;
};

/// The refusal of action request `r`, or empty when it may be performed (see the order above). `request` is
/// filled as far as it was parsed, for the log line. `runs_enabled` is for /api/runs/, `enabled` for the rest.
[[nodiscard]] inline std::optional<OperatorRefusal> check_operator_request(const ParsedRequest& r, bool enabled,
                                                                           std::string_view token,
                                                                           OperatorRequest& request,
                                                                           bool runs_enabled = false) {
    const auto path = target_path(r.target);
    request.run = path.starts_with(run_action_prefix);
    if (!(request.run ? runs_enabled : enabled)) {
        return OperatorRefusal{403, "operator actions are disabled (no action token configured)"};
    }
    const auto rest = path.substr(request.run ? run_action_prefix.size() : operator_action_prefix.size());
    const auto slash = rest.rfind('/');
    if (slash == std::string_view::npos) {
        return OperatorRefusal{
            400, request.run ? "expected /api/runs/<name>/<action>" : "expected /api/components/<name>/<action>"};
    }
    if (request.run) {
        const auto action = parse_run_action(rest.substr(slash + 1));
        if (!action) return OperatorRefusal{400, "unknown action; expected pause, resume or stop"};
        request.run_action = *action;
    } else {
        const auto action = parse_operator_action(rest.substr(slash + 1));
        if (!action) return OperatorRefusal{400, "unknown action; expected restart, reset, disable or enable"};
        request.action = *action;
    }
    auto name = percent_decode(rest.substr(0, slash));
    if (!name || name->empty() || find_invalid_utf8(*name)) {
        return OperatorRefusal{400, "the name is empty, badly escaped or not UTF-8"};
    }
    request.component = std::move(*name);
    if (r.body_bytes != 0) return OperatorRefusal{400, "an action takes no body"};
    constexpr std::string_view bearer = "Bearer ";
    if (r.authorization.empty()) return OperatorRefusal{401, "a bearer token is required"};
    if (!r.authorization.starts_with(bearer) ||
        !constant_time_equal(std::string_view{r.authorization}.substr(bearer.size()), token)) {
        return OperatorRefusal{403, "wrong token"};
    }
    if (!r.has_action_header || r.action_header != "1") {
        return OperatorRefusal{403, "the header X-Taskmon-Action: 1 is required"};
    }
    if (r.has_origin && r.origin != "http://" + r.host) {
        return OperatorRefusal{403, "cross-origin request refused"};
    }
    return std::nullopt;
}

/// The /events event of a performed action: {"type":"operator_action","target":"run"|"component","name":...,
/// "action":...,"origin":{"via":"http_api","remote_address":...},"time_ns":...}.
[[nodiscard]] inline std::string operator_action_event_json(const OperatorRequest& request, std::string_view from,
                                                            std::int64_t time_ns) {
    JsonWriter w;
    w.begin_object().key("type").value("operator_action").key("target").value(request.target());
    w.key("name").value(request.component).key("action").value(request.verb());
    w.key("origin").begin_object().key("via").value("http_api").key("remote_address").value(from).end_object();
    w.key("time_ns").value(time_ns).end_object();
    return std::move(w).str();
}

}  // namespace taskmon::detail

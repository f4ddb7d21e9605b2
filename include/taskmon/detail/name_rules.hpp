// taskmon — coroutine supervision for standalone Asio.
// SPDX-License-Identifier: MIT
//
// Internal: what may name a component or a group. A name reaches log lines, Prometheus labels, JSON, SVG and the
// systemd status, so it must be text that none of them can misread: one line of valid UTF-8.
#pragma once

#include <taskmon/detail/log_text.hpp>
#include <taskmon/detail/utf8.hpp>

#include <fmt/format.h>

#include <cstddef>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>

namespace taskmon::detail {

/// Why `name` cannot name a component or group ("must not be empty", "contains the control character U+000A at
/// byte 4", "is not valid UTF-8 at byte 2"), or nothing if it can. Refused: the empty name, bytes that are not
/// UTF-8, C0 and C1 control characters, DEL, U+2028 / U+2029 (line and paragraph separators, which some log
/// viewers break lines at), and invisible format characters (bidirectional controls, zero-width characters: a
/// name that displays as another's).
[[nodiscard]] inline std::optional<std::string> name_problem(std::string_view name) {
    if (name.empty()) {
        return "must not be empty";
    }
    for (std::size_t at = 0; at < name.size();) {
        const auto s = decode_utf8(name, at);
        if (!s.valid) {
            return fmt::format("is not valid UTF-8 at byte {}", at);
        }
        const auto cp = s.code_point;
        if (is_control_character(cp)) {
            return fmt::format("contains the control character U+{:04X} at byte {}", cp, at);
        }
        if (is_invisible_format(cp)) {
            return fmt::format("contains the invisible format character U+{:04X} at byte {}", cp, at);
        }
        at += s.length;
    }
    return std::nullopt;
}

/// Throws std::invalid_argument for a name that name_problem() refuses: "<what>: <kind> name "<escaped name>"
/// <problem>", e.g. `supervise: component name "evil\nline" contains the control character U+000A at byte 4`.
inline void check_name(std::string_view name, std::string_view what, std::string_view kind = "component") {
    if (auto problem = name_problem(name)) {
        if (name.empty()) {
            throw std::invalid_argument(fmt::format("{}: {} name {}", what, kind, *problem));
        }
        throw std::invalid_argument(fmt::format("{}: {} name {} {}", what, kind, quote(name), *problem));
    }
}

}  // namespace taskmon::detail

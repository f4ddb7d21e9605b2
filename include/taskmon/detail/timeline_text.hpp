// taskmon — coroutine supervision for standalone Asio.
// SPDX-License-Identifier: MIT
//
// Internal: text in the timeline's SVG — XML escaping of any bytes (through the one UTF-8 decoder, utf8.hpp),
// lengths in code points for the layout, shortening with an ellipsis, and state names as shown.
#pragma once

#include <algorithm>
#include <cstddef>
#include <string>
#include <string_view>

#include <taskmon/detail/utf8.hpp>

namespace taskmon::detail::timeline {

/// Text for XML: & < > " ' escaped; invalid UTF-8 and characters XML 1.0 forbids become U+FFFD.
inline std::string xml_escape(std::string_view text) {
    std::string out;
    out.reserve(text.size() + 8);
    for (std::size_t at = 0; at < text.size();) {
        const auto s = decode_utf8(text, at);  // an invalid byte is one byte long: each is replaced
        const auto cp = s.code_point;
        if (!s.valid) {
            out += utf8_replacement;
        } else if (cp < 0x80) {
            switch (cp) {
                case '&': out += "&amp;"; break;
                case '<': out += "&lt;"; break;
                case '>': out += "&gt;"; break;
                case '"': out += "&quot;"; break;
                case '\'': out += "&apos;"; break;
                default:
                    if (cp < 0x20 && cp != '\t' && cp != '\n' && cp != '\r') {
                        out += utf8_replacement;
                    } else {
                        out += static_cast<char>(cp);
                    }
            }
        } else if (cp == 0xFFFE || cp == 0xFFFF) {  // UTF-8, but not an XML 1.0 Char: one replacement
            out += utf8_replacement;
        } else {
            out.append(text.substr(at, s.length));
        }
        at += s.length;
    }
    return out;
}

/// Number of code points of valid UTF-8: the bytes that are not continuation bytes.
inline std::size_t text_length(std::string_view text) noexcept {
    return static_cast<std::size_t>(std::count_if(
        text.begin(), text.end(), [](char c) { return !is_utf8_continuation(static_cast<unsigned char>(c)); }));
}

/// At most `max` code points, ending in "…" when cut.
inline std::string shorten(std::string_view text, std::size_t max) {
    if (text_length(text) <= max) return std::string{text};
    std::size_t kept = 0;
    std::size_t i = 0;
    for (; i < text.size(); ++i) {
        if (!is_utf8_continuation(static_cast<unsigned char>(text[i])) && kept++ == max - 1) break;
    }
    return std::string{text.substr(0, i)} + "…";
}

/// A state's name as drawn: "backing_off" reads "backing off".
inline std::string display_name(std::string_view state) {
    std::string out{state};
    std::replace(out.begin(), out.end(), '_', ' ');
    return out;
}

}  // namespace taskmon::detail::timeline

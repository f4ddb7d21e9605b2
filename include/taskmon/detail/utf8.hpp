// taskmon — coroutine supervision for standalone Asio.
// SPDX-License-Identifier: MIT
//
// Internal: UTF-8 decoding for the outputs that must be valid UTF-8 whatever the text came from (an exception
// message from a device, a name): JSON, the Prometheus text format, SVG, log lines and the check of names; and the
// code points those outputs must not carry as they are.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace taskmon::detail {

/// U+FFFD REPLACEMENT CHARACTER, which stands for each byte that is not part of a valid sequence.
inline constexpr std::string_view utf8_replacement = "\xEF\xBF\xBD";

/// One decoded sequence: `length` bytes (1 for an invalid byte, which is then not `valid`).
struct Utf8Sequence {
    std::size_t length = 1;
    std::uint32_t code_point = 0;
    bool valid = false;
};

/// A continuation byte (10xxxxxx) never starts a sequence: the other bytes of valid UTF-8 are one per code point.
[[nodiscard]] constexpr bool is_utf8_continuation(unsigned char byte) noexcept { return (byte & 0xC0u) == 0x80u; }

/// Decodes the sequence at `text[at]` (at < text.size()). Overlong forms, surrogates (U+D800..U+DFFF), code points
/// beyond U+10FFFF, stray continuation bytes and truncated sequences are invalid: one byte long, so a decoder that
/// replaces them replaces each byte once (as WHATWG's decoder and Python's "replace" handler do for these cases).
[[nodiscard]] inline Utf8Sequence decode_utf8(std::string_view text, std::size_t at) noexcept {
    const auto byte = [&](std::size_t i) { return static_cast<unsigned char>(text[i]); };
    const unsigned char c = byte(at);
    if (c < 0x80) {
        return {1, c, true};
    }
    std::size_t length = 0;
    std::uint32_t cp = 0;
    if (c >= 0xC2 && c <= 0xDF) {
        length = 2;
        cp = c & 0x1Fu;
    } else if (c >= 0xE0 && c <= 0xEF) {
        length = 3;
        cp = c & 0x0Fu;
    } else if (c >= 0xF0 && c <= 0xF4) {
        length = 4;
        cp = c & 0x07u;
    } else {
        return {};
    }
    if (text.size() - at < length) {
        return {};
    }
    for (std::size_t i = 1; i < length; ++i) {
        if (!is_utf8_continuation(byte(at + i))) {
            return {};
        }
        cp = (cp << 6) | (byte(at + i) & 0x3Fu);
    }
    if ((length == 3 && cp < 0x800) || (length == 4 && cp < 0x10000) || (cp >= 0xD800 && cp <= 0xDFFF) ||
        cp > 0x10FFFF) {
        return {};
    }
    return {length, cp, true};
}

/// A control character, or a character that some reader takes for the end of a line: C0 controls, DEL, C1
/// controls (U+0085 is NEL), and U+2028 / U+2029 (line and paragraph separators). Log lines escape them, names
/// refuse them, the Prometheus text replaces them (but tab, and line feed, which it escapes).
[[nodiscard]] constexpr bool is_control_character(std::uint32_t cp) noexcept {
    return cp < 0x20 || (cp >= 0x7F && cp <= 0x9F) || cp == 0x2028 || cp == 0x2029;
}

/// A character that changes how the text around it reads without showing itself: the soft hyphen, bidirectional
/// controls (U+061C, U+200E/F, U+202A-U+202E, U+2066-U+2069: they can make a line display in another order than
/// it is stored), zero-width characters and U+FEFF, and the other invisible format characters of U+2060-U+206F
/// and U+FFF9-U+FFFB.
[[nodiscard]] constexpr bool is_invisible_format(std::uint32_t cp) noexcept {
    return cp == 0xAD || cp == 0x61C || (cp >= 0x200B && cp <= 0x200F) || (cp >= 0x202A && cp <= 0x202E) ||
           (cp >= 0x2060 && cp <= 0x206F) || cp == 0xFEFF || (cp >= 0xFFF9 && cp <= 0xFFFB);
}

/// The offset of the first byte of `text` that is not part of valid UTF-8; empty if all of it is valid.
[[nodiscard]] inline std::optional<std::size_t> find_invalid_utf8(std::string_view text) noexcept {
    for (std::size_t at = 0; at < text.size();) {
        const auto s = decode_utf8(text, at);
        if (!s.valid) {
            return at;
        }
        at += s.length;
    }
    return std::nullopt;
}

/// `text` with each byte that is not part of valid UTF-8 replaced by U+FFFD; valid text is returned unchanged.
[[nodiscard]] inline std::string to_valid_utf8(std::string_view text) {
    const auto first = find_invalid_utf8(text);
    if (!first) {
        return std::string{text};
    }
    std::string out{text.substr(0, *first)};
    out.reserve(text.size() + 8);
    for (std::size_t at = *first; at < text.size();) {
        const auto s = decode_utf8(text, at);
        if (s.valid) {
            out.append(text.substr(at, s.length));
        } else {
            out.append(utf8_replacement);
        }
        at += s.length;
    }
    return out;
}

}  // namespace taskmon::detail

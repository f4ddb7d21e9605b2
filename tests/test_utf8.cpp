// Tests for taskmon/detail/utf8.hpp: the one UTF-8 decoder behind every output that must be valid UTF-8 (History
// JSON, the Prometheus text format, the timeline's SVG, health texts, names).
#include <taskmon/detail/utf8.hpp>

#include "taskmon_catch.hpp"

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

using taskmon::detail::decode_utf8;
using taskmon::detail::find_invalid_utf8;
using taskmon::detail::to_valid_utf8;

namespace {

const std::string fffd{taskmon::detail::utf8_replacement};

/// `bytes` as hex, for CAPTURE.
std::string hex(std::string_view bytes) {
    std::string out;
    for (const char c : bytes) {
        constexpr char digits[] = "0123456789abcdef";
        const auto u = static_cast<unsigned char>(c);
        out += digits[u >> 4];
        out += digits[u & 0xF];
        out += ' ';
    }
    return out;
}

}  // namespace

TEST_CASE("utf8: valid sequences of 1 to 4 bytes decode to their code point") {
    const auto [bytes, code_point] = GENERATE(table<std::string, std::uint32_t>({
        {std::string{"\x00", 1}, 0x00},  // NUL is valid UTF-8 (the outputs decide what to do with controls)
        {"A", 0x41},
        {"\x7F", 0x7F},                  // the last 1-byte sequence
        {"\xC2\x80", 0x80},              // the first 2-byte sequence
        {"\xC3\xBC", 0xFC},              // ü
        {"\xDF\xBF", 0x7FF},             // the last 2-byte sequence
        {"\xE0\xA0\x80", 0x800},         // the first 3-byte sequence
        {"\xE6\x97\xA5", 0x65E5},        // 日
        {"\xED\x9F\xBF", 0xD7FF},        // just below the surrogates
        {"\xEE\x80\x80", 0xE000},        // just above them
        {"\xEF\xBF\xBD", 0xFFFD},        // U+FFFD itself
        {"\xEF\xBF\xBF", 0xFFFF},        // a noncharacter, but UTF-8
        {"\xF0\x90\x80\x80", 0x10000},   // the first 4-byte sequence
        {"\xF0\x9F\x98\x80", 0x1F600},   // 😀
        {"\xF4\x8F\xBF\xBF", 0x10FFFF},  // the last code point
    }));
    CAPTURE(hex(bytes));
    const auto s = decode_utf8(bytes, 0);
    CHECK(s.valid);
    CHECK(s.length == bytes.size());
    CHECK(s.code_point == code_point);
    CHECK_FALSE(find_invalid_utf8(bytes).has_value());
    CHECK(to_valid_utf8(bytes) == bytes);
}

TEST_CASE("utf8: every byte of an invalid sequence is replaced once, and nothing valid around it") {
    const auto [why, bytes, replaced] = GENERATE(table<std::string, std::string, std::string>({
        {"a lone continuation byte", "\x80", fffd},
        {"stray continuation bytes",
         "a\x80\xBF"
         "b",
         "a" + fffd + fffd + "b"},
        {"a byte that never starts a sequence", "\xFF", fffd},
        {"0xFE", "\xFE", fffd},
        {"C0: always overlong", "\xC0\xAF", fffd + fffd},
        {"C1: always overlong", "\xC1\xBF", fffd + fffd},
        {"overlong 3 bytes (U+002F)", "\xE0\x80\xAF", fffd + fffd + fffd},
        {"overlong 3 bytes (U+07FF)", "\xE0\x9F\xBF", fffd + fffd + fffd},
        {"overlong 4 bytes (U+FFFF)", "\xF0\x8F\xBF\xBF", fffd + fffd + fffd + fffd},
        {"the first surrogate", "\xED\xA0\x80", fffd + fffd + fffd},
        {"the last surrogate", "\xED\xBF\xBF", fffd + fffd + fffd},
        {"beyond U+10FFFF", "\xF4\x90\x80\x80", fffd + fffd + fffd + fffd},
        {"F5: beyond U+10FFFF", "\xF5\x80\x80\x80", fffd + fffd + fffd + fffd},
        {"a 2-byte sequence cut short at the end", "ok\xC3", "ok" + fffd},
        {"a 3-byte sequence cut short at the end", "\xE2\x82", fffd + fffd},
        {"a 4-byte sequence cut short at the end", "\xF0\x9F\x98", fffd + fffd + fffd},
        {"a lead byte followed by ASCII", "\xC3(", fffd + "("},
        {"a 3-byte sequence interrupted", "\xE2\x82x\xE2\x82\xAC", fffd + fffd + "x\xE2\x82\xAC"},
        {"a device's message",
         "sensor \xB0"
         "C: 21\xB0",
         "sensor " + fffd + "C: 21" + fffd},
    }));
    CAPTURE(why, hex(bytes));
    REQUIRE(find_invalid_utf8(bytes).has_value());
    CHECK(to_valid_utf8(bytes) == replaced);
    CHECK_FALSE(find_invalid_utf8(replaced).has_value());
    CHECK(to_valid_utf8(replaced) == replaced);  // idempotent
}

TEST_CASE("utf8: decode_utf8 reports an invalid byte as one byte long, at any position") {
    const std::string text = "a\xC3\xBC\xFF\xE6\x97\xA5\xED\xA0\x80";
    std::vector<std::size_t> lengths;
    std::vector<bool> valid;
    for (std::size_t at = 0; at < text.size();) {
        const auto s = decode_utf8(text, at);
        lengths.push_back(s.length);
        valid.push_back(s.valid);
        at += s.length;
    }
    CHECK(lengths == std::vector<std::size_t>{1, 2, 1, 3, 1, 1, 1});
    CHECK(valid == std::vector<bool>{true, true, false, true, false, false, false});
    CHECK(find_invalid_utf8(text) == std::optional<std::size_t>{3});
    CHECK(find_invalid_utf8("") == std::nullopt);
    CHECK(to_valid_utf8("") == "");
    // A sequence that is valid only with bytes past the end of the view is cut short.
    CHECK_FALSE(decode_utf8(std::string_view{"\xC3\xBC", 1}, 0).valid);
}

TEST_CASE("utf8: continuation bytes are exactly 0x80 to 0xBF") {
    using taskmon::detail::is_utf8_continuation;
    for (unsigned b = 0; b <= 0xFF; ++b) {
        CAPTURE(b);
        CHECK(is_utf8_continuation(static_cast<unsigned char>(b)) == (b >= 0x80 && b <= 0xBF));
    }
    // One non-continuation byte per code point of valid UTF-8: a, ü, 日, 😀.
    const std::string_view text = "a\xC3\xBC\xE6\x97\xA5\xF0\x9F\x98\x80";
    std::size_t starts = 0;
    for (const char c : text) starts += is_utf8_continuation(static_cast<unsigned char>(c)) ? 0 : 1;
    CHECK(starts == 4);
}

// taskmon — coroutine supervision for standalone Asio.
// SPDX-License-Identifier: MIT
//
// Internal: a small streaming JSON writer for the outputs of taskmon/ops that must not depend on a JSON library
// (the health server's /events and /api/tree).
#pragma once

#include <taskmon/detail/utf8.hpp>

#include <fmt/format.h>

#include <cstddef>
#include <cstdint>
#include <iterator>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace taskmon::detail {

/// Appends `text` as a JSON string literal: quote, backslash and C0 controls escaped (\n, \t... or \u00XX), DEL,
/// U+2028 and U+2029 as \uXXXX too (a JavaScript reader of JSONP era, or a log viewer, takes the two separators
/// for line ends), and each byte that is not part of valid UTF-8 as U+FFFD, so the output is always valid UTF-8.
inline void append_json_string(std::string& out, std::string_view text) {
    out += '"';
    for (std::size_t at = 0; at < text.size();) {
        const auto s = decode_utf8(text, at);
        if (!s.valid) {
            out.append(utf8_replacement);
        } else if (s.length > 1) {
            if (s.code_point == 0x2028 || s.code_point == 0x2029) {
                fmt::format_to(std::back_inserter(out), "\\u{:04x}", s.code_point);
            } else {
                out.append(text.substr(at, s.length));
            }
        } else {
            const char c = text[at];
            switch (c) {
                case '"': out += "\\\""; break;
                case '\\': out += "\\\\"; break;
                case '\n': out += "\\n"; break;
                case '\r': out += "\\r"; break;
                case '\t': out += "\\t"; break;
                case '\b': out += "\\b"; break;
                case '\f': out += "\\f"; break;
                default:
                    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7F) {
                        fmt::format_to(std::back_inserter(out), "\\u{:04x}", static_cast<unsigned>(c));
                    } else {
                        out += c;
                    }
            }
        }
        at += s.length;
    }
    out += '"';
}

/// Writes one JSON value into a string, placing the commas: begin/end an object or array, key() before each
/// member of an object, a value() for each scalar. No pretty printing: one line per document, as an SSE `data:`
/// field needs. Misuse (a key outside an object, unbalanced ends) is the caller's bug and is not checked.
class JsonWriter {
public:
    JsonWriter& begin_object() { return open('{'); }
    JsonWriter& end_object() { return close('}'); }
    JsonWriter& begin_array() { return open('['); }
    JsonWriter& end_array() { return close(']'); }

    JsonWriter& key(std::string_view name) {
        separate();
        append_json_string(out_, name);
        out_ += ':';
        after_key_ = true;
        return *this;
    }

    JsonWriter& value(std::string_view text) {
        separate();
        append_json_string(out_, text);
        return *this;
    }
    JsonWriter& value(const char* text) { return value(std::string_view{text}); }
    JsonWriter& value(const std::string& text) { return value(std::string_view{text}); }
    JsonWriter& value(bool b) {
        separate();
        out_ += b ? "true" : "false";
        return *this;
    }
    JsonWriter& value(std::int64_t n) {
        separate();
        fmt::format_to(std::back_inserter(out_), "{}", n);
        return *this;
    }
    JsonWriter& value(std::uint64_t n) {
        separate();
        fmt::format_to(std::back_inserter(out_), "{}", n);
        return *this;
    }
    JsonWriter& value(int n) { return value(static_cast<std::int64_t>(n)); }
    JsonWriter& null() {
        separate();
        out_ += "null";
        return *this;
    }

    /// The document so far (complete once every begin has its end).
    [[nodiscard]] const std::string& str() const& noexcept { return out_; }
    [[nodiscard]] std::string str() && noexcept { return std::move(out_); }

private:
    void separate() {
        if (after_key_) {
            after_key_ = false;
            return;
        }
        if (!first_.empty()) {
            if (!first_.back()) out_ += ',';
            first_.back() = false;
        }
    }
    JsonWriter& open(char c) {
        separate();
        out_ += c;
        first_.push_back(true);
        return *this;
    }
    JsonWriter& close(char c) {
        out_ += c;
        if (!first_.empty()) first_.pop_back();
        return *this;
    }

    std::string out_;
    std::vector<bool> first_;  ///< per open container: no member written yet
    bool after_key_ = false;
};

}  // namespace taskmon::detail

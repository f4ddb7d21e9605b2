// taskmon — coroutine supervision for standalone Asio.
// SPDX-License-Identifier: MIT
//
// Internal: the text pieces of log lines and error messages — an exception as "type: what", durations as
// seconds or in words, and quoting for key=value fields. Used by the TaskMonitor's event log lines
// (detail/monitor_event_log.hpp), its stats (last_error), and the Supervisor.
#pragma once

#include <taskmon/detail/exception_inspection.hpp>
#include <taskmon/detail/utf8.hpp>

#include <fmt/format.h>

#include <chrono>
#include <concepts>
#include <cstdlib>
#include <exception>
#include <memory>
#include <string>
#include <string_view>
#include <typeindex>
#include <typeinfo>
#include <unordered_map>
#include <vector>

#if __has_include(<cxxabi.h>)
#include <cxxabi.h>
#define TASKMON_HAS_CXXABI 1
#endif

namespace taskmon::detail {

/// Demangled dynamic type name of an exception object.
inline std::string demangle(const char* mangled) {
#ifdef TASKMON_HAS_CXXABI
    int status = 0;
    std::unique_ptr<char, void (*)(void*)> result{abi::__cxa_demangle(mangled, nullptr, nullptr, &status), std::free};
    if (status == 0 && result) {
        return result.get();
    }
#endif
    return mangled;
}

/// Demangled name of `type`, cached per thread (demangling allocates).
inline const std::string& type_name(const std::type_info& type) {
    thread_local std::unordered_map<std::type_index, std::string> cache;
    auto it = cache.find(type);
    if (it == cache.end()) {
        it = cache.emplace(type, demangle(type.name())).first;
    }
    return it->second;
}

/// e.what(), or "" when it returns a null pointer (a user's exception type may; std::string and fmt would read
/// through it).
inline const char* what_of(const std::exception& e) noexcept {
    const char* what = e.what();
    return what != nullptr ? what : "";
}

/// "type: what" of an exception object, e.g. "std::runtime_error: Connection lost".
inline std::string describe(const std::exception& e) {
    const auto& type = type_name(typeid(e));
    const char* what = what_of(e);
    std::string out;
    out.reserve(type.size() + 2 + std::char_traits<char>::length(what));
    out.append(type).append(": ").append(what);
    return out;
}

/// "type: what" of an exception, e.g. "std::runtime_error: Connection lost".
inline std::string describe(const std::exception_ptr& error) {
    if (!error) {
        return "";
    }
#ifdef TASKMON_HAS_EXCEPTION_INSPECTION
    const auto* e = caught_as<std::exception>(error);  // without a second throw (exception_inspection.hpp)
    return e != nullptr ? describe(*e) : "unknown exception";
#else
    try {
        std::rethrow_exception(error);
    } catch (const std::exception& e) {
        return describe(e);
    } catch (...) {
        return "unknown exception";
    }
#endif
}

/// Seconds with one decimal when exact to a tenth ("4.0"), else with the precision the value needs: milliseconds
/// ("0.125"), microseconds ("0.000250") or nanoseconds.
inline std::string format_seconds(std::chrono::nanoseconds d) {
    using namespace std::chrono;
    const double seconds = duration<double>(d).count();
    if (d % milliseconds{100} == nanoseconds::zero()) {
        return fmt::format("{:.1f}", seconds);
    }
    if (d % milliseconds{1} == nanoseconds::zero()) {
        return fmt::format("{:.3f}", seconds);
    }
    if (d % microseconds{1} == nanoseconds::zero()) {
        return fmt::format("{:.6f}", seconds);
    }
    return fmt::format("{:.9f}", seconds);
}

/// "hour", "10 minutes", "minute", "30 seconds", "1500 ms", "250 us": the restart window in words for the give-up line
/// ("5 attempts per hour", "per minute", "per 10 minutes").
inline std::string format_window(std::chrono::nanoseconds window) {
    using namespace std::chrono;
    const auto plural = [](long long n, std::string_view unit) {
        return n == 1 ? std::string{unit} : fmt::format("{} {}s", n, unit);
    };
    if (window % hours{1} == nanoseconds::zero()) return plural(duration_cast<hours>(window).count(), "hour");
    if (window % minutes{1} == nanoseconds::zero()) {
        return plural(duration_cast<minutes>(window).count(), "minute");
    }
    if (window % seconds{1} == nanoseconds::zero()) {
        return plural(duration_cast<seconds>(window).count(), "second");
    }
    if (window % milliseconds{1} == nanoseconds::zero()) {
        return fmt::format("{} ms", duration_cast<milliseconds>(window).count());
    }
    if (window % microseconds{1} == nanoseconds::zero()) {
        return fmt::format("{} us", duration_cast<microseconds>(window).count());
    }
    return fmt::format("{} ns", window.count());
}

/// Appends `text` to `out` so that it cannot end or forge a log line, nor break a double-quoted field: `"` and `\`
/// are escaped, newline, carriage return and tab become \n \r \t, other C0 controls and DEL \xNN (an ANSI escape
/// sequence cannot reach a terminal), C1 controls, U+2028 / U+2029 (line breaks to some viewers) and invisible format
/// characters (is_invisible_format) \uNNNN, and each byte that is not valid UTF-8 \xNN, so the line is valid UTF-8,
/// reads as it is stored, and the original bytes can be read back.
inline void append_log_escaped(std::string& out, std::string_view text) {
    constexpr std::string_view hex = "0123456789abcdef";
    for (std::size_t at = 0; at < text.size();) {
        const auto s = decode_utf8(text, at);
        const auto cp = s.code_point;
        if (!s.valid || cp < 0x20 || cp == 0x7F) {  // as bytes: the C0 controls and DEL, and invalid bytes
            const auto byte = static_cast<unsigned char>(text[at]);
            switch (s.valid ? byte : 0) {
                case '\n': out += "\\n"; break;
                case '\r': out += "\\r"; break;
                case '\t': out += "\\t"; break;
                default:
                    out += "\\x";
                    out.push_back(hex[byte >> 4U]);
                    out.push_back(hex[byte & 0xFU]);
            }
        } else if (is_control_character(cp) || is_invisible_format(cp)) {  // C1, U+2028/2029, format characters
            out += "\\u";
            for (int shift = 12; shift >= 0; shift -= 4) {
                out.push_back(hex[(cp >> static_cast<unsigned>(shift)) & 0xFU]);
            }
        } else if (cp == '"' || cp == '\\') {
            out.push_back('\\');
            out.push_back(static_cast<char>(cp));
        } else {
            out.append(text.substr(at, s.length));
        }
        at += s.length;
    }
}

/// `text` between two `mark`s, escaped as append_log_escaped() does.
inline std::string enclosed(std::string_view text, char mark) {
    std::string out;
    out.reserve(text.size() + 2);
    out.push_back(mark);
    append_log_escaped(out, text);
    out.push_back(mark);
    return out;
}

/// `text` double-quoted for a key=value field, escaped as append_log_escaped() does.
inline std::string quote(std::string_view text) { return enclosed(text, '"'); }

/// `text` in single quotes, escaped the same way (a name in an exception message: "unknown component 'ghost'").
inline std::string single_quoted(std::string_view text) { return enclosed(text, '\''); }

/// True when `text` can be a bare key=value field value: not empty, and nothing a reader would take for the end
/// of the value or of the line (a space, `"`, `=`, `\`, a control character) or that is not UTF-8.
inline bool is_bare_field_value(std::string_view text) noexcept {
    if (text.empty()) {
        return false;
    }
    for (std::size_t at = 0; at < text.size();) {
        const auto s = decode_utf8(text, at);
        const auto cp = s.code_point;
        if (!s.valid || is_control_character(cp) || is_invisible_format(cp) || cp == ' ' || cp == 0xA0 || cp == '"' ||
            cp == '=' || cp == '\\') {
            return false;
        }
        at += s.length;
    }
    return true;
}

/// A name as a key=value field value: bare when it can be (is_bare_field_value), else quoted. Formatted lazily (a
/// FieldValue costs nothing for a line the logger's level drops).
struct FieldValue {
    std::string_view text;
};

// Values of a log line that cost work to write, formatted lazily: each says its text (`text()`) only when the logger
// writes the line. quote() decodes and escapes every byte (about 1,200 instructions for a 25-byte reason), which a
// line the logger's level drops must not cost on every failure.

/// `text` as quote() writes it.
struct QuotedValue {
    std::string_view raw;
    [[nodiscard]] std::string text() const { return quote(raw); }
};

/// A duration as format_seconds() writes it.
struct SecondsValue {
    std::chrono::nanoseconds duration;
    [[nodiscard]] std::string text() const { return format_seconds(duration); }
};

/// A restart window as format_window() writes it.
struct WindowValue {
    std::chrono::nanoseconds window;
    [[nodiscard]] std::string text() const { return format_window(window); }
};

/// Names joined by ',' and quoted as quote() does.
struct QuotedList {
    const std::vector<std::string>* names;
    [[nodiscard]] std::string text() const {
        std::string joined;
        for (const auto& name : *names) {
            if (&name != names->data()) {
                joined += ',';
            }
            joined += name;
        }
        return quote(joined);
    }
};

template <typename T>
concept LazyLogValue = std::same_as<T, QuotedValue> || std::same_as<T, SecondsValue> || std::same_as<T, WindowValue> ||
    std::same_as<T, QuotedList>;

}  // namespace taskmon::detail

template <typename T>
    requires taskmon::detail::LazyLogValue<T>
struct fmt::formatter<T, char> : fmt::formatter<std::string_view, char> {
    template <typename FormatContext>
    auto format(const T& value, FormatContext& ctx) const -> decltype(ctx.out()) {
        return fmt::formatter<std::string_view, char>::format(value.text(), ctx);
    }
};

template <>
struct fmt::formatter<taskmon::detail::FieldValue> : fmt::formatter<std::string_view> {
    template <typename FormatContext>
    auto format(const taskmon::detail::FieldValue& value, FormatContext& ctx) const -> decltype(ctx.out()) {
        if (taskmon::detail::is_bare_field_value(value.text)) {
            return fmt::formatter<std::string_view>::format(value.text, ctx);
        }
        return fmt::formatter<std::string_view>::format(taskmon::detail::quote(value.text), ctx);
    }
};

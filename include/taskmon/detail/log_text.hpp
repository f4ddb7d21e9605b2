// taskmon — coroutine supervision for standalone Asio.
// SPDX-License-Identifier: MIT
//
// Internal: the text pieces of log lines and error messages — an exception as "type: what", durations as
// seconds or in words, and quoting for key=value fields. Used by the TaskMonitor's event log lines
// (detail/monitor_event_log.hpp), its stats (last_error), and the Supervisor.
#pragma once

#include <fmt/format.h>

#include <chrono>
#include <cstdlib>
#include <exception>
#include <memory>
#include <string>
#include <string_view>
#include <typeindex>
#include <typeinfo>
#include <unordered_map>

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

/// "type: what" of an exception object, e.g. "std::runtime_error: Connection lost".
inline std::string describe(const std::exception& e) {
    const auto& type = type_name(typeid(e));
    const char* what = e.what();
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
    try {
        std::rethrow_exception(error);
    } catch (const std::exception& e) {
        return describe(e);
    } catch (...) {
        return "unknown exception";
    }
}

/// Seconds with one decimal when exact to a tenth ("4.0"), else with millisecond precision ("0.125").
inline std::string format_seconds(std::chrono::nanoseconds d) {
    const double seconds = std::chrono::duration<double>(d).count();
    if (d % std::chrono::milliseconds{100} == std::chrono::nanoseconds::zero()) {
        return fmt::format("{:.1f}", seconds);
    }
    return fmt::format("{:.3f}", seconds);
}

/// "hour", "10 minutes", "minute", "30 seconds", "1500 ms": the restart window in words for the give-up line
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
    return fmt::format("{} ms", duration_cast<milliseconds>(window).count());
}

/// Makes `text` safe inside a double-quoted key=value field.
inline std::string quote(std::string_view text) {
    std::string out;
    out.reserve(text.size() + 2);
    out.push_back('"');
    for (char c : text) {
        switch (c) {
            case '"': out += "\\\""; break;
            case '\\': out += "\\\\"; break;
            case '\n': out += "\\n"; break;
            case '\r': out += "\\r"; break;
            default: out.push_back(c);
        }
    }
    out.push_back('"');
    return out;
}

}  // namespace taskmon::detail

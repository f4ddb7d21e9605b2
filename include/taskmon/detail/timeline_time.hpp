// taskmon — coroutine supervision for standalone Asio.
// SPDX-License-Identifier: MIT
//
// Internal: how the timeline writes times — short durations for labels and tooltips, the UTC date of the
// subtitle, and the time axis (its step, its one unit, its tick labels).
#pragma once

#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <iterator>
#include <string>
#include <string_view>
#include <vector>

#include <fmt/format.h>

#include <taskmon/agent/history.hpp>

namespace taskmon::detail::timeline {

/// The clock of a Timeline's origin and of every input's time.
using Clock = std::chrono::system_clock;

/// "400ms", "1.5s", "2m05s": short, for labels (at most three significant digits, no trailing zeros).
inline std::string short_duration(std::chrono::nanoseconds d) {
    using namespace std::chrono;
    const double ns = static_cast<double>(d.count());
    const double a = std::abs(ns);
    const auto number = [](double value, int decimals) {
        auto text = fmt::format("{:.{}f}", value, decimals);
        if (text.find('.') != std::string::npos) {
            while (text.back() == '0') text.pop_back();
            if (text.back() == '.') text.pop_back();
        }
        return text;
    };
    const auto scaled = [&](double unit, const char* suffix) {
        const double v = ns / unit;
        return number(v, std::abs(v) < 10 ? 2 : std::abs(v) < 100 ? 1 : 0) + suffix;
    };
    if (a < 1e3) return fmt::format("{}ns", d.count());
    if (a < 1e6) return scaled(1e3, "µs");
    if (a < 1e9) return scaled(1e6, "ms");
    if (a < 60e9) return scaled(1e9, "s");
    const auto s = duration_cast<seconds>(d).count();
    if (s < 3600) return fmt::format("{}m{:02}s", s / 60, s % 60);
    return fmt::format("{}h{:02}m", s / 3600, (s / 60) % 60);
}

/// "2026-12-02 10:25:42 UTC"
inline std::string format_utc(Clock::time_point time) {
    using namespace std::chrono;
    const auto s = floor<seconds>(time);
    const auto day = floor<days>(s);
    const year_month_day date{day};
    const hh_mm_ss hms{s - day};
    return fmt::format("{:04}-{:02}-{:02} {:02}:{:02}:{:02} UTC", static_cast<int>(date.year()),
                       static_cast<unsigned>(date.month()), static_cast<unsigned>(date.day()), hms.hours().count(),
                       hms.minutes().count(), hms.seconds().count());
}

/// How the time axis is divided and labelled: a tick every `step`, every label a number of `unit` ("ns", "µs",
/// "ms", "s", "m", "h" or "d", as short_duration() names them) with as many decimals as the step needs, so one axis
/// never mixes units.
struct AxisScale {
    Offset step{};
    Offset unit_length{};
    std::string_view unit;

    friend bool operator==(const AxisScale&, const AxisScale&) = default;
};

/// A unit of the time axis and the steps it allows.
struct AxisUnit {
    std::string_view name;
    Offset length;
    std::array<std::int32_t, 15> steps;  ///< multiples of `length`, ascending; a 0 ends the list
};

/// Up to 10 s the steps are 1, 2 or 5 × 10^k; from there on they divide the next unit evenly (15 and 30 s a
/// minute, 15 and 30 min an hour, 3, 6 and 12 h a day), so that ticks fall on whole minutes, hours and days. Days
/// go on by 1, 2 or 5 × 10^k up to 50'000 d, beyond Offset::max() (106'751 d) over ten intervals.
inline constexpr AxisUnit axis_units[] = {
    {"ns", std::chrono::nanoseconds{1}, {1, 2, 5, 10, 20, 50, 100, 200, 500}},
    {"µs", std::chrono::microseconds{1}, {1, 2, 5, 10, 20, 50, 100, 200, 500}},
    {"ms", std::chrono::milliseconds{1}, {1, 2, 5, 10, 20, 50, 100, 200, 500}},
    {"s", std::chrono::seconds{1}, {1, 2, 5, 10, 15, 30}},
    {"m", std::chrono::minutes{1}, {1, 2, 5, 10, 15, 30}},
    {"h", std::chrono::hours{1}, {1, 2, 3, 6, 12}},
    {"d", std::chrono::hours{24}, {1, 2, 5, 10, 20, 50, 100, 200, 500, 1'000, 2'000, 5'000, 10'000, 20'000, 50'000}},
};

/// The scale of a time axis over `span` with at most `max_ticks` intervals: the smallest step of axis_units that
/// gives no more. A step under a minute is labelled in the largest of ns, µs, ms and s that the span reaches (over
/// 3 s, 0.5 s steps read "0s 0.5s 1s"; over 900 ms, 100 ms steps read "0ms 100ms"), a longer one in its own unit
/// ("0m 15m 30m", "0h 12h 24h", "0d 2d 4d").
[[nodiscard]] inline AxisScale axis_scale(Offset span, int max_ticks = 10) {
    constexpr std::size_t decimal_units = 4;  // ns, µs, ms, s: each a thousand of the one before
    span = std::max(span, Offset{1});
    const Offset::rep intervals = std::max(max_ticks, 1);
    const Offset wanted{span.count() / intervals + (span.count() % intervals != 0 ? 1 : 0)};  // ceil(span / n)
    for (std::size_t u = 0; u < std::size(axis_units); ++u) {
        for (const auto n : axis_units[u].steps) {
            if (n == 0) break;
            const Offset step = axis_units[u].length * n;
            if (step < wanted) continue;
            std::size_t label = u;
            if (u < decimal_units) {
                label = 0;
                while (label + 1 < decimal_units && span >= axis_units[label + 1].length) ++label;
            }
            return AxisScale{step, axis_units[label].length, axis_units[label].name};
        }
    }
    const auto& day = axis_units[std::size(axis_units) - 1];
    return AxisScale{span, day.length, day.name};  // over 50'000 d per interval (max_ticks 1 or 2): one interval
}

/// 0, step, 2 step ... up to `end` (without overflowing near Offset::max()).
inline std::vector<Offset> tick_offsets(Offset end, Offset step) {
    std::vector<Offset> out{Offset::zero()};
    while (end - out.back() >= step) out.push_back(out.back() + step);
    return out;
}

/// The label of the tick at `at` (a multiple of scale.step): "0s", "2.5s", "90s", "135m". In integers, so that
/// 100 ms steps print "0.3s", not "0.30000000000000004s".
inline std::string tick_label(Offset at, const AxisScale& scale) {
    const Offset::rep unit = scale.unit_length.count();
    int decimals = 0;
    Offset::rep power = 1;  // 10^decimals
    while (decimals < 9 && scale.step.count() % unit * power % unit != 0) {
        ++decimals;
        power *= 10;
    }
    std::string text = fmt::format("{}", at.count() / unit);
    if (const Offset::rep rest = at.count() % unit; rest != 0 && decimals > 0) {
        auto digits = fmt::format("{:0{}}", rest * power / unit, decimals);
        while (!digits.empty() && digits.back() == '0') digits.pop_back();
        if (!digits.empty()) text += '.' + digits;
    }
    text += scale.unit;
    return text;
}

}  // namespace taskmon::detail::timeline

// taskmon — coroutine supervision for standalone Asio.
// SPDX-License-Identifier: MIT
//
// Duration: the type of every span of time a user sets (RestartPolicy, GroupPolicy, AgentSettings, the health
// server and systemd options, ComponentContext::extend_deadline): a std::chrono::nanoseconds that converts from any
// std::chrono::duration.
#pragma once

#include <fmt/format.h>

#include <chrono>
#include <cstdint>
#include <iterator>
#include <limits>
#include <ratio>
#include <stdexcept>
#include <type_traits>
#include <utility>

namespace taskmon {

/// The longest span a setting takes (RestartPolicy, GroupPolicy, AgentSettings, HealthServerSettings,
/// SystemdNotifierOptions): 100 years. Durations are added to clock readings in nanoseconds, which hold about 292
/// years, so a longer one would overflow a deadline; "forever" is not a duration.
inline constexpr std::chrono::hours longest_duration_setting{24 * 365 * 100};

/// A std::chrono::nanoseconds that converts implicitly from any std::chrono::duration, so that a setting takes what
/// the caller has: `2s`, `500ms`, `250us`, `1.5s`, a computed `base * 1.5`. Integral durations convert exactly;
/// floating-point ones round to the nearest nanosecond (halves away from zero). A value beyond what nanoseconds
/// hold (about ±292 years) saturates to nanoseconds::max() / min(), which every setting's validation refuses by
/// name (longest_duration_setting); NaN throws std::invalid_argument. Otherwise it is a std::chrono::nanoseconds:
/// compare it, add it, duration_cast it, and read its count() in nanoseconds.
class Duration : public std::chrono::nanoseconds {
public:
    /// Zero.
    constexpr Duration() noexcept : std::chrono::nanoseconds{0} {}

    template <typename Rep, typename Period>
    constexpr Duration(const std::chrono::duration<Rep, Period>& d)  // NOLINT(google-explicit-constructor)
        : std::chrono::nanoseconds{convert(d)} {}

private:
    template <typename Rep, typename Period>
    static constexpr std::chrono::nanoseconds convert(const std::chrono::duration<Rep, Period>& d) {
        using std::chrono::nanoseconds;
        using Ratio = std::ratio_divide<Period, std::nano>;  // nanoseconds per tick
        if constexpr (std::is_integral_v<Rep> && Ratio::den == 1) {
            // Exact: a whole number of nanoseconds per tick, checked against overflow before multiplying.
            constexpr auto per_tick = static_cast<std::intmax_t>(Ratio::num);
            constexpr auto highest = std::numeric_limits<nanoseconds::rep>::max() / per_tick;
            constexpr auto lowest = std::numeric_limits<nanoseconds::rep>::min() / per_tick;
            if (std::cmp_greater(d.count(), highest)) {
                return nanoseconds::max();
            }
            if (std::cmp_less(d.count(), lowest)) {
                return nanoseconds::min();
            }
            return nanoseconds{static_cast<nanoseconds::rep>(d.count()) * per_tick};
        } else {
            // Floating point, or ticks finer than a nanosecond: through long double, rounded by hand (std::llroundl
            // is not constexpr, so `constexpr Duration d = 1.5s;` would compile with one compiler only).
            const long double x = std::chrono::duration<long double, std::nano>{d}.count();
            if (x != x) {
                throw std::invalid_argument("taskmon::Duration: the duration is not a number (NaN)");
            }
            constexpr auto top = static_cast<long double>(std::numeric_limits<nanoseconds::rep>::max());
            constexpr auto bottom = static_cast<long double>(std::numeric_limits<nanoseconds::rep>::min());
            if (x >= top) {
                return nanoseconds::max();
            }
            if (x <= bottom) {
                return nanoseconds::min();
            }
            auto whole = static_cast<nanoseconds::rep>(x);  // toward zero
            const long double rest = x - static_cast<long double>(whole);
            if (rest >= 0.5L) {
                ++whole;
            } else if (rest <= -0.5L) {
                --whole;
            }
            return nanoseconds{whole};
        }
    }
};

}  // namespace taskmon

/// Formats as fmt formats a std::chrono::nanoseconds ("1500000000ns"), without needing <fmt/chrono.h>; the spec is
/// a string's, applied to the whole ("{:>12}").
template <>
struct fmt::formatter<taskmon::Duration, char> : fmt::formatter<fmt::string_view, char> {
    template <typename FormatContext>
    auto format(const taskmon::Duration& d, FormatContext& ctx) const -> decltype(ctx.out()) {
        fmt::basic_memory_buffer<char, 32> text;
        fmt::format_to(std::back_inserter(text), "{}ns", d.count());
        return fmt::formatter<fmt::string_view, char>::format(fmt::string_view{text.data(), text.size()}, ctx);
    }
};

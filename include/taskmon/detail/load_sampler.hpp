// taskmon — coroutine supervision for standalone Asio.
// SPDX-License-Identifier: MIT
//
// Load sampling for the Supervisor's load_shedding_monitor: process and system CPU use from /proc (a read of
// two small pseudo-files per sample, never a sleep: usage is the difference between successive samples), the
// event loop's lag (how late a timer fired), and a hysteresis gate that decides when to shed.
#pragma once

#include <taskmon/detail/config.hpp>
#include <taskmon/agent/cpu_usage.hpp>

#include <charconv>
#include <chrono>
#include <cstdint>
#include <fstream>
#include <functional>
#include <iterator>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include <asio/awaitable.hpp>
#include <asio/use_awaitable.hpp>
#include <fmt/format.h>

namespace taskmon::detail {

/// utime + stime (fields 14 and 15, in clock ticks) from the text of /proc/self/stat; nullopt if malformed.
/// Field 2 (comm) may contain spaces and parentheses, so fields are counted after its last ')'.
inline std::optional<std::uint64_t> parse_process_cpu_ticks(std::string_view stat) {
    const auto close = stat.rfind(')');
    if (close == std::string_view::npos) return std::nullopt;
    std::string_view rest = stat.substr(close + 1);
    // After ')': field 3 (state) is the first token; utime is field 14, stime field 15.
    std::uint64_t total = 0;
    int field = 2;
    std::size_t pos = 0;
    while (pos < rest.size() && field < 15) {
        while (pos < rest.size() && rest[pos] == ' ') ++pos;
        const std::size_t end = rest.find(' ', pos);
        const std::string_view token = rest.substr(pos, end == std::string_view::npos ? rest.size() - pos : end - pos);
        if (token.empty()) return std::nullopt;
        ++field;
        if (field == 14 || field == 15) {
            std::uint64_t value = 0;
            const auto [ptr, ec] = std::from_chars(token.data(), token.data() + token.size(), value);
            if (ec != std::errc{} || ptr != token.data() + token.size()) return std::nullopt;
            total += value;
        }
        if (end == std::string_view::npos) break;
        pos = end;
    }
    if (field < 15) return std::nullopt;
    return total;
}

/// Aggregate CPU time of all cores, in clock ticks.
struct SystemCpuTicks {
    std::uint64_t busy = 0;   ///< everything but idle and iowait
    std::uint64_t total = 0;  ///< busy + idle + iowait
};

/// The aggregate "cpu " line of /proc/stat (user nice system idle iowait irq softirq steal; guest time is
/// already included in user and nice); nullopt if malformed.
inline std::optional<SystemCpuTicks> parse_system_cpu_ticks(std::string_view stat) {
    if (stat.substr(0, 4) != "cpu ") return std::nullopt;
    const std::string_view line = stat.substr(0, stat.find('\n'));
    std::uint64_t values[8] = {};
    std::size_t pos = 4;
    for (auto& value : values) {
        while (pos < line.size() && line[pos] == ' ') ++pos;
        if (pos >= line.size()) return std::nullopt;
        const auto [ptr, ec] = std::from_chars(line.data() + pos, line.data() + line.size(), value);
        if (ec != std::errc{}) return std::nullopt;
        pos = static_cast<std::size_t>(ptr - line.data());
    }
    SystemCpuTicks ticks;
    for (int i = 0; i < 8; ++i) {
        ticks.total += values[i];
        if (i != 3 && i != 4) ticks.busy += values[i];
    }
    return ticks;
}

/// Reads a whole pseudo-file; nullopt when it cannot be read.
inline std::optional<std::string> read_proc_file(const char* path) {
    std::ifstream in{path};
    if (!in) return std::nullopt;
    std::string text{std::istreambuf_iterator<char>{in}, std::istreambuf_iterator<char>{}};
    if (in.bad()) return std::nullopt;
    return text;
}

/// Samples CPU use from /proc/self/stat and /proc/stat. Each sample() reads both files once and returns the
/// use since the previous sample (nullopt on the first call, when the files are unreadable — e.g. not Linux —
/// or when no time passed). The reader is injectable for tests.
class CpuSampler {
public:
    using Reader = std::function<std::optional<std::string>(const char* path)>;

    CpuSampler() : CpuSampler(&read_proc_file) {}
    explicit CpuSampler(Reader reader) : reader_(std::move(reader)) {}

    std::optional<CpuUsage> sample() {
        const auto self = reader_("/proc/self/stat");
        const auto system = reader_("/proc/stat");
        if (!self || !system) return std::nullopt;
        const auto process_ticks = parse_process_cpu_ticks(*self);
        const auto system_ticks = parse_system_cpu_ticks(*system);
        if (!process_ticks || !system_ticks) return std::nullopt;

        std::optional<CpuUsage> usage;
        if (previous_ && system_ticks->total > previous_->system.total &&
            system_ticks->busy >= previous_->system.busy && *process_ticks >= previous_->process) {
            const auto total = static_cast<double>(system_ticks->total - previous_->system.total);
            usage = CpuUsage{
                clamp_percent(100.0 * static_cast<double>(system_ticks->busy - previous_->system.busy) / total),
                clamp_percent(100.0 * static_cast<double>(*process_ticks - previous_->process) / total)};
        }
        previous_ = Previous{*process_ticks, *system_ticks};
        return usage;
    }

private:
    static double clamp_percent(double p) noexcept { return p < 0.0 ? 0.0 : (p > 100.0 ? 100.0 : p); }

    struct Previous {
        std::uint64_t process;
        SystemCpuTicks system;
    };
    Reader reader_;
    std::optional<Previous> previous_;
};

/// One load observation: CPU use (if known) and event-loop lag.
struct LoadSample {
    std::optional<CpuUsage> cpu;
    std::chrono::nanoseconds loop_lag{};
};

/// Thresholds of the shedding gate (see AgentSettings).
struct LoadThresholds {
    double enter_cpu_percent = 98.0;
    double leave_cpu_percent = 96.0;
    std::chrono::nanoseconds enter_lag = std::chrono::milliseconds{500};
    std::chrono::nanoseconds leave_lag = std::chrono::milliseconds{100};
};

/// Decides shedding with hysteresis: enter when system CPU reaches enter_cpu_percent or lag reaches
/// enter_lag; leave only when CPU is below leave_cpu_percent and lag below leave_lag. A sample without CPU
/// data is judged on lag alone (unknown CPU never causes shedding: the gate fails open).
class LoadShedGate {
public:
    explicit LoadShedGate(LoadThresholds thresholds) : thresholds_(thresholds) {}

    bool shedding() const noexcept { return shedding_; }

    /// Feeds one sample; returns true when the shedding state changed. reason() then explains the change.
    bool update(const LoadSample& sample) {
        const double cpu = sample.cpu ? sample.cpu->system_percent : 0.0;
        const bool cpu_high = sample.cpu && cpu >= thresholds_.enter_cpu_percent;
        const bool lag_high = sample.loop_lag >= thresholds_.enter_lag;
        const bool cpu_low = !sample.cpu || cpu < thresholds_.leave_cpu_percent;
        const bool lag_low = sample.loop_lag < thresholds_.leave_lag;
        const auto lag_ms = std::chrono::duration<double, std::milli>(sample.loop_lag).count();
        if (!shedding_ && (cpu_high || lag_high)) {
            shedding_ = true;
            reason_ = fmt::format("cpu_percent={:.1f} lag_ms={:.1f} trigger={}", cpu, lag_ms,
                                  cpu_high ? (lag_high ? "cpu+lag" : "cpu") : "lag");
            return true;
        }
        if (shedding_ && cpu_low && lag_low) {
            shedding_ = false;
            reason_ = fmt::format("cpu_percent={:.1f} lag_ms={:.1f}", cpu, lag_ms);
            return true;
        }
        return false;
    }

    /// Forces the gate open (not shedding), e.g. when the monitor gives up; returns true if it was shedding.
    bool reset(std::string reason) {
        const bool was = shedding_;
        shedding_ = false;
        if (was) reason_ = std::move(reason);
        return was;
    }

    const std::string& reason() const noexcept { return reason_; }

private:
    LoadThresholds thresholds_;
    bool shedding_ = false;
    std::string reason_;
};

/// Sleeps `interval` on `timer` and returns how late the timer fired: the event loop's lag (timer drift). A
/// loop blocked by a long handler delays the wakeup; an idle loop reports (close to) zero. Cancellation
/// propagates (operation_aborted is thrown like any timer wait).
template <typename Timer>
asio::awaitable<std::chrono::nanoseconds> sleep_and_measure_lag(Timer& timer, typename Timer::duration interval) {
    const auto due = Timer::clock_type::now() + interval;
    timer.expires_at(due);
    co_await timer.async_wait(asio::use_awaitable);
    const auto late = Timer::clock_type::now() - due;
    co_return late > Timer::duration::zero() ? std::chrono::duration_cast<std::chrono::nanoseconds>(late)
                                             : std::chrono::nanoseconds::zero();
}

}  // namespace taskmon::detail

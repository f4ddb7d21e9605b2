// taskmon — coroutine supervision for standalone Asio.
// SPDX-License-Identifier: MIT
//
// Internal: the health server's warning that max_connections was reached, rate-limited.
#pragma once

#include <taskmon/detail/config.hpp>

#include <asio/any_io_executor.hpp>
#include <asio/steady_timer.hpp>
#include <spdlog/logger.h>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>

namespace taskmon::detail {

/// At most one warning per this interval says that max_connections was reached, with the evictions and
/// rejections since the previous one: a flood of thousands of connections a second costs one line a second.
inline constexpr std::chrono::seconds health_overflow_log_interval{1};

/// The counts of evicted and rejected connections (the server's counters), logged as a warning at most once per
/// health_overflow_log_interval. Used on the server's strand only, as is its timer.
class HealthOverflowLog {
public:
    using Clock = std::chrono::steady_clock;

    HealthOverflowLog(const asio::any_io_executor& strand, std::shared_ptr<spdlog::logger> logger,
                      std::size_t max_connections, const std::atomic<std::uint64_t>& evicted,
                      const std::atomic<std::uint64_t>& rejected)
        : timer_{strand},
          logger_{std::move(logger)},
          max_connections_{max_connections},
          evicted_{evicted},
          rejected_{rejected} {}

    /// Logs the evictions and rejections since the previous such line: at once when the last line is
    /// health_overflow_log_interval old, else when it will be (a timer, which holds `owner`, the object this
    /// is a member of, until it fires; cancel() logs the rest at once).
    void note(std::shared_ptr<void> owner) {
        if (armed_) return;
        const auto now = Clock::now();
        if (now >= next_) {
            log(now);
            return;
        }
        armed_ = true;
        timer_.expires_at(next_);
        timer_.async_wait([this, owner = std::move(owner)](asio::error_code) {
            armed_ = false;
            log(Clock::now());
        });
    }

    /// At close: the pending warning, if any, is logged now.
    void cancel() { timer_.cancel(); }

private:
    void log(Clock::time_point now) {
        const auto evicted = evicted_.load();
        const auto rejected = rejected_.load();
        if (evicted == logged_evicted_ && rejected == logged_rejected_) return;
        logger_->warn(
            "health server: max_connections ({}) reached: {} connections evicted (no complete request yet), {} "
            "rejected (every slot writing a response) since the last such line",
            max_connections_, evicted - logged_evicted_, rejected - logged_rejected_);
        logged_evicted_ = evicted;
        logged_rejected_ = rejected;
        next_ = now + health_overflow_log_interval;
    }

    asio::steady_timer timer_;
    const std::shared_ptr<spdlog::logger> logger_;
    const std::size_t max_connections_;
    const std::atomic<std::uint64_t>& evicted_;
    const std::atomic<std::uint64_t>& rejected_;
    bool armed_ = false;
    Clock::time_point next_{};           ///< the earliest time of the next warning
    std::uint64_t logged_evicted_ = 0;   ///< evicted_ as of the last warning
    std::uint64_t logged_rejected_ = 0;  ///< rejected_ as of the last warning
};

}  // namespace taskmon::detail

// taskmon — coroutine supervision for standalone Asio.
// SPDX-License-Identifier: MIT
//
// JsonLinesLog: every MonitorEvent of a monitor as one line of JSON (monitor_event_json) through a spdlog logger
// the application gives, so through any spdlog sink (a file, a rotating file, stdout, syslog ...). The level of
// a line depends on the event's kind: failures and timeouts warn, give-ups error, the rest info.
//
//   auto sink = std::make_shared<spdlog::sinks::rotating_file_sink_mt>("events.jsonl", 16 << 20, 4);
//   auto logger = std::make_shared<spdlog::logger>("events", sink);
//   logger->set_pattern("%v");                           // the line is the JSON object, nothing else
//   taskmon::JsonLinesLog events{monitor, logger};       // logs until destroyed
//
// The listener logs on the monitor's thread, in the monitor's event delivery: a slow sink slows that delivery.
// For a file on a slow disk, a network sink or a pipe, give an spdlog async logger (spdlog/async.h), whose queue
// and thread take the sink's time off the monitor's path.
#pragma once

#include <taskmon/event_subscription.hpp>
#include <taskmon/monitor_event.hpp>
#include <taskmon/ops/monitor_json.hpp>

#include <spdlog/common.h>
#include <spdlog/logger.h>

#include <array>
#include <atomic>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <stdexcept>
#include <utility>
#include <vector>

namespace taskmon {

/// The level JsonLinesLog gives an event of `kind` unless JsonLinesLogSettings::levels says otherwise: error for
/// the end of automatic restarts (gave_up, quarantined, escalated, group_gave_up), warn for an instance that
/// ended badly or missed a deadline (failed, cancelled_unexpectedly, factory_failed, stop_timeout,
/// watchdog_timeout, startup_timeout, not_enabled, no_factory), info for the rest.
[[nodiscard]] constexpr spdlog::level::level_enum json_lines_level(MonitorEventKind kind) noexcept {
    switch (kind) {
        case MonitorEventKind::gave_up:
        case MonitorEventKind::quarantined:
        case MonitorEventKind::escalated:
        case MonitorEventKind::group_gave_up: return spdlog::level::err;
        case MonitorEventKind::failed:
        case MonitorEventKind::cancelled_unexpectedly:
        case MonitorEventKind::factory_failed:
        case MonitorEventKind::stop_timeout:
        case MonitorEventKind::watchdog_timeout:
        case MonitorEventKind::startup_timeout:
        case MonitorEventKind::not_enabled:
        case MonitorEventKind::no_factory: return spdlog::level::warn;
        default: return spdlog::level::info;
    }
}

struct JsonLinesLogSettings {
    /// Events whose level is below this are not formatted nor logged (the logger's own level applies as well).
    spdlog::level::level_enum min_level = spdlog::level::info;
    /// Overrides of json_lines_level(): {kind, level} pairs; spdlog::level::off leaves a kind out.
    std::vector<std::pair<MonitorEventKind, spdlog::level::level_enum>> levels{};
};

/// Counters of a JsonLinesLog.
struct JsonLinesLogStats {
    std::uint64_t lines = 0;    ///< events handed to the logger
    std::uint64_t skipped = 0;  ///< events below min_level or the logger's level, or of a kind set to off
    std::uint64_t errors = 0;   ///< lines whose logging threw (out of memory, a sink throwing a non-std exception)
};

/// Logs every event of one monitor as a JSON line until destroyed (the destructor unsubscribes, and returns once
/// a call of the listener running on another thread has returned).
///
/// Why no queue of our own: the listener's work is formatting the line and calling logger->log(), 1.4 us per
/// event with a sink that drops the line (bench/bench_json_lines_log.cpp), about the monitor's own work per event
/// (a restart of three events costs it 4.8 us). A queue here could take the formatting off the monitor's path (a
/// copy of the event, ~130 ns as EventStreamHub's), but it would need a thread or an executor of ours and a
/// second overflow policy next to spdlog's async logger (a bounded queue of 8192 messages by default, block or
/// overrun_oldest). The part that can take milliseconds is the sink (a disk, a pipe), and an async logger already
/// moves the sink to spdlog's thread; so the choice of blocking is the application's, through the logger it gives.
///
/// No lock of ours is held while the logger runs (this class has none: its counters are atomics). A sink that
/// throws a std::exception is handled by the logger's error handler (spdlog::logger::set_error_handler; by
/// default spdlog prints to stderr, at most once a second); anything else that escapes logger->log() is caught
/// here and counted in `errors`: the monitor's event delivery never sees an exception from this listener.
///
/// Lifetime: `source` must outlive this object, or be destroyed first (unsubscribing is then a no-op). The logger
/// is shared: it may outlive this object. Thread safety: stats() from any thread.
class JsonLinesLog {
public:
    /// Subscribes to `source`: a BasicTaskMonitor<Clock> or a Supervisor (anything with
    /// subscribe(MonitorEventListener)). Throws std::invalid_argument for a null logger.
    template <typename Source>
        requires requires(Source& s, MonitorEventListener l) {
            { s.subscribe(std::move(l)) } -> std::same_as<EventSubscription>;
        }
    JsonLinesLog(Source& source, std::shared_ptr<spdlog::logger> logger, JsonLinesLogSettings settings = {})
        : state_{std::make_shared<State>(validated(std::move(logger)), settings)} {
        subscription_ = source.subscribe([state = state_](const MonitorEvent& e) { state->on_event(e); });
    }

    JsonLinesLog(const JsonLinesLog&) = delete;
    JsonLinesLog& operator=(const JsonLinesLog&) = delete;

    ~JsonLinesLog() { subscription_.unsubscribe(); }

    [[nodiscard]] JsonLinesLogStats stats() const noexcept {
        JsonLinesLogStats out;
        out.lines = state_->lines.load(std::memory_order_relaxed);
        out.skipped = state_->skipped.load(std::memory_order_relaxed);
        out.errors = state_->errors.load(std::memory_order_relaxed);
        return out;
    }

    /// The level an event of `kind` is logged at (spdlog::level::off: not logged), before min_level.
    [[nodiscard]] spdlog::level::level_enum level_of(MonitorEventKind kind) const noexcept {
        return state_->levels[static_cast<std::size_t>(kind)];
    }

private:
    // MonitorEventKind's enumerators are 0 .. group_shutdown.
    static constexpr std::size_t kind_count = static_cast<std::size_t>(MonitorEventKind::group_shutdown) + 1;

    struct State {
        std::shared_ptr<spdlog::logger> logger;
        spdlog::level::level_enum min_level;
        std::array<spdlog::level::level_enum, kind_count> levels{};
        std::atomic<std::uint64_t> lines{0};
        std::atomic<std::uint64_t> skipped{0};
        std::atomic<std::uint64_t> errors{0};

        State(std::shared_ptr<spdlog::logger> l, const JsonLinesLogSettings& settings)
            : logger{std::move(l)}, min_level{settings.min_level} {
            for (std::size_t k = 0; k < kind_count; ++k) {
                levels[k] = json_lines_level(static_cast<MonitorEventKind>(k));
            }
            for (const auto& [kind, level] : settings.levels) {
                const auto k = static_cast<std::size_t>(kind);
                if (k >= kind_count) {
                    throw std::invalid_argument{"JsonLinesLogSettings::levels: unknown MonitorEventKind"};
                }
                levels[k] = level;
            }
        }

        void on_event(const MonitorEvent& e) noexcept {
            const auto k = static_cast<std::size_t>(e.kind);
            const auto level = k < kind_count ? levels[k] : spdlog::level::info;
            if (level == spdlog::level::off || level < min_level || !logger->should_log(level)) {
                skipped.fetch_add(1, std::memory_order_relaxed);
                return;
            }
            try {
                const auto line = monitor_event_json(e);
                logger->log(level, spdlog::string_view_t{line.data(), line.size()});
                lines.fetch_add(1, std::memory_order_relaxed);
            } catch (...) {
                errors.fetch_add(1, std::memory_order_relaxed);
            }
        }
    };

    static std::shared_ptr<spdlog::logger> validated(std::shared_ptr<spdlog::logger> logger) {
        if (!logger) {
            throw std::invalid_argument{"JsonLinesLog: logger is null"};
        }
        return logger;
    }

    std::shared_ptr<State> state_;
    EventSubscription subscription_;
};

}  // namespace taskmon

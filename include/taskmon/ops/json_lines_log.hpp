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
//   ...
//   events.flush();                                      // before exit: every event so far handed to the logger
//
// The listener, on the monitor's path, only filters by level and copies the event into a bounded queue of this
// object's own; a thread of its own formats the line and calls logger->log(), so neither the formatting nor the
// sink runs in the monitor's event delivery. bench/bench_json_lines_log.cpp: formatting and logging in the
// listener added 1.42 us per event to the monitor's path, about the monitor's own work per event (4.8 us per restart
// of three events); the filter, the copy and the hand-over to the queue add 0.52 us (docs/benchmarks.md).
#pragma once

#include <taskmon/event_subscription.hpp>
#include <taskmon/monitor_event.hpp>
#include <taskmon/ops/monitor_json.hpp>

#include <spdlog/common.h>
#include <spdlog/logger.h>

#include <array>
#include <atomic>
#include <chrono>
#include <concepts>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
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
    /// Events whose level is below this are not queued, formatted nor logged (the logger's own level applies as
    /// well, when the event arrives).
    spdlog::level::level_enum min_level = spdlog::level::info;
    /// Overrides of json_lines_level(): {kind, level} pairs; spdlog::level::off leaves a kind out.
    std::vector<std::pair<MonitorEventKind, spdlog::level::level_enum>> levels{};
    /// The bound of the events accepted and not yet logged (queued, or being logged by the worker thread); beyond
    /// it an event is dropped and counted (stats().dropped). 8192, as spdlog's async logger's queue: a queued
    /// event holds 232 bytes plus its component's name and reason beyond 15 characters, so about 2 MB.
    std::size_t max_queued_events = 8192;
};

/// Counters of a JsonLinesLog.
struct JsonLinesLogStats {
    std::uint64_t lines = 0;    ///< events handed to the logger
    std::uint64_t skipped = 0;  ///< events below min_level or the logger's level, or of a kind set to off
    std::uint64_t errors = 0;   ///< lines whose logging threw (out of memory, a sink throwing a non-std exception)
    std::uint64_t dropped = 0;  ///< events that arrived while max_queued_events were waiting, or not copied (memory)
    std::size_t queued = 0;     ///< now: events accepted and not yet logged
};

/// Logs every event of one monitor as a JSON line, from a thread of its own, until destroyed.
///
/// The listener filters by level (min_level, levels, the logger's level) and copies the event into a bounded
/// queue; it never formats nor calls the logger, and it waits for the worker only while the worker swaps the
/// queue out under the lock, never while it formats or logs. The worker thread takes everything queued at once,
/// formats each line and logs it, in the order the listener received the events.
///
/// Why a thread of its own and not an executor given by the application, as OtlpExporter: logger->log() is a
/// synchronous call that takes as long as the sink (a disk that stalls, a pipe nobody reads); on an executor's
/// thread it would hold up every other handler there (on a one-thread io_context, the monitor itself). The
/// exporter's work is asynchronous (a socket, a timer), which an executor suits; this work blocks, as
/// JournalWriter's disk writes do, and like JournalWriter it gets a thread. It also lets flush() and the
/// destructor wait for the worker from any thread, where waiting for a handler on the caller's own one-thread
/// executor would never return.
///
/// Overflow: when max_queued_events are accepted and not yet logged, an event is dropped and counted in
/// stats().dropped; the monitor never waits. The worker then writes one line {"dropped":N} at warn (through the
/// logger, pattern and level applied), after the lines it took from the queue with the drop: N events were
/// dropped since the previous such line, and they are the gaps in the lines' "sequence". That line is not
/// counted in `lines`.
///
/// No lock of ours is held while the logger runs (the worker takes the queue under the lock, then logs without
/// it). A sink that throws a std::exception is handled by the logger's error handler
/// (spdlog::logger::set_error_handler; by default spdlog prints to stderr, at most once a second); anything else
/// that escapes logger->log() is caught by the worker and counted in `errors`, and the next line is logged as
/// usual. The monitor's event delivery never sees an exception from this listener.
///
/// Lifetime: `source` must outlive this object, or be destroyed first (unsubscribing is then a no-op). The logger
/// is shared: it may outlive this object. The destructor unsubscribes, then lets the worker log everything
/// queued (at most max_queued_events lines: no event is accepted after unsubscribing), then joins it.
/// Thread safety: stats(), level_of() and flush() from any thread.
class JsonLinesLog {
public:
    /// Subscribes to `source`: a BasicTaskMonitor<Clock> or a Supervisor (anything with
    /// subscribe(MonitorEventListener)), and starts the worker thread. Throws std::invalid_argument for a null
    /// logger and for bad settings (naming the field), before subscribing to anything.
    template <typename Source>
        requires requires(Source& s, MonitorEventListener l) {
            { s.subscribe(std::move(l)) } -> std::same_as<EventSubscription>;
        }
    JsonLinesLog(Source& source, std::shared_ptr<spdlog::logger> logger, JsonLinesLogSettings settings = {})
        : state_{std::make_shared<State>(validated(std::move(logger)), settings)} {
        subscription_ = source.subscribe([state = state_](const MonitorEvent& e) { state->on_event(e); });
        // Started last: if subscribe() throws there is no thread to stop; if this throws, subscription_'s
        // destructor unsubscribes.
        worker_ = std::thread{[state = state_] { state->run(); }};
    }

    JsonLinesLog(const JsonLinesLog&) = delete;
    JsonLinesLog& operator=(const JsonLinesLog&) = delete;

    ~JsonLinesLog() {
        subscription_.unsubscribe();  // no listener call runs or starts after this
        state_->stop();
        worker_.join();
    }

    [[nodiscard]] JsonLinesLogStats stats() const noexcept {
        JsonLinesLogStats out;
        out.lines = state_->lines.load(std::memory_order_relaxed);
        out.skipped = state_->skipped.load(std::memory_order_relaxed);
        out.errors = state_->errors.load(std::memory_order_relaxed);
        out.dropped = state_->dropped.load(std::memory_order_relaxed);
        out.queued = state_->pending.load(std::memory_order_relaxed);
        return out;
    }

    /// The level an event of `kind` is logged at (spdlog::level::off: not logged), before min_level.
    [[nodiscard]] spdlog::level::level_enum level_of(MonitorEventKind kind) const noexcept {
        return state_->levels[static_cast<std::size_t>(kind)];
    }

    /// Waits until every event accepted before this call has been handed to the logger (its line logged, or its
    /// failure counted), and the {"dropped":N} line of any drop before it written. It does not flush the sinks'
    /// own buffers: logger->flush() does. With a sink that never returns, neither does this: see the overload.
    void flush() { state_->wait_logged(std::nullopt); }

    /// As flush(), waiting at most `timeout`: true when everything was logged in time.
    [[nodiscard]] bool flush(std::chrono::steady_clock::duration timeout) {
        return state_->wait_logged(std::chrono::steady_clock::now() + timeout);
    }

private:
    // MonitorEventKind's enumerators are 0 .. group_shutdown.
    static constexpr std::size_t kind_count = static_cast<std::size_t>(MonitorEventKind::group_shutdown) + 1;

    struct Item {
        MonitorEvent event;
        spdlog::level::level_enum level = spdlog::level::info;
    };

    struct State {
        std::shared_ptr<spdlog::logger> logger;
        spdlog::level::level_enum min_level;
        std::size_t capacity;
        std::array<spdlog::level::level_enum, kind_count> levels{};
        std::atomic<std::uint64_t> lines{0};
        std::atomic<std::uint64_t> skipped{0};
        std::atomic<std::uint64_t> errors{0};
        std::atomic<std::uint64_t> dropped{0};
        /// Accepted and not yet logged: incremented by the listener under `mutex`, decremented by the worker after
        /// each line, so that a drop depends only on what is still to log, not on when the worker took the queue.
        std::atomic<std::size_t> pending{0};

        std::mutex mutex;
        std::condition_variable wake;      ///< the worker's: items, a drop to report, or stop
        std::condition_variable settled;   ///< flush()'s: logged or reported_drops advanced
        std::vector<Item> queue;           ///< under mutex; swapped with the worker's batch, so both keep storage
        std::uint64_t accepted = 0;        ///< under mutex: items ever queued
        std::uint64_t logged = 0;          ///< under mutex: items ever logged (or failed)
        std::uint64_t drops = 0;           ///< under mutex: events ever dropped
        std::uint64_t reported_drops = 0;  ///< under mutex: drops whose {"dropped":N} line is written
        std::uint64_t taken_drops = 0;     ///< under mutex: drops the worker took to report
        bool worker_waiting = false;       ///< under mutex: the listener notifies only then (a futex wake-up costs)
        bool stopping = false;             ///< under mutex

        State(std::shared_ptr<spdlog::logger> l, const JsonLinesLogSettings& settings)
            : logger{std::move(l)}, min_level{settings.min_level}, capacity{settings.max_queued_events} {
            const auto refuse = [](const char* field, const char* why) {
                throw std::invalid_argument(std::string{"JsonLinesLogSettings."} + field + ": " + why);
            };
            if (!valid_level(settings.min_level)) refuse("min_level", "not a spdlog level");
            if (settings.max_queued_events == 0) refuse("max_queued_events", "must be at least 1");
            for (std::size_t k = 0; k < kind_count; ++k) {
                levels[k] = json_lines_level(static_cast<MonitorEventKind>(k));
            }
            for (const auto& [kind, level] : settings.levels) {
                const auto k = static_cast<std::size_t>(kind);
                if (k >= kind_count) refuse("levels", "unknown MonitorEventKind");
                if (!valid_level(level)) refuse("levels", "not a spdlog level");
                levels[k] = level;
            }
        }

        static bool valid_level(spdlog::level::level_enum level) noexcept {
            return level >= spdlog::level::trace && level <= spdlog::level::off;
        }

        /// The listener, on the monitor's path.
        void on_event(const MonitorEvent& e) noexcept {
            const auto k = static_cast<std::size_t>(e.kind);
            const auto level = k < kind_count ? levels[k] : spdlog::level::info;
            if (level == spdlog::level::off || level < min_level || !logger->should_log(level)) {
                skipped.fetch_add(1, std::memory_order_relaxed);
                return;
            }
            bool notify = false;
            try {
                std::unique_lock lock{mutex};
                if (stopping || pending.load(std::memory_order_relaxed) >= capacity) {
                    ++drops;
                    dropped.fetch_add(1, std::memory_order_relaxed);
                    notify = std::exchange(worker_waiting, false);  // to write {"dropped":N}
                } else {
                    queue.push_back(Item{e, level});  // copied under the lock: no copy made in vain when full
                    ++accepted;
                    pending.fetch_add(1, std::memory_order_relaxed);
                    notify = std::exchange(worker_waiting, false);
                }
            } catch (...) {  // out of memory copying the event
                dropped.fetch_add(1, std::memory_order_relaxed);
                return;
            }
            if (notify) wake.notify_one();
        }

        /// The worker thread: until stop(), and then until the queue is empty.
        void run() noexcept {
            std::vector<Item> batch;
            for (;;) {
                std::uint64_t new_drops = 0;
                {
                    std::unique_lock lock{mutex};
                    while (queue.empty() && drops == taken_drops && !stopping) {
                        worker_waiting = true;
                        wake.wait(lock);
                    }
                    worker_waiting = false;
                    if (queue.empty() && drops == taken_drops) return;  // stopping, and everything logged
                    batch.swap(queue);
                    new_drops = drops - taken_drops;
                    taken_drops = drops;
                }
                for (const auto& item : batch) {
                    log_line(item);
                    pending.fetch_sub(1, std::memory_order_relaxed);
                }
                if (new_drops > 0) log_drops(new_drops);
                {
                    std::lock_guard lock{mutex};
                    logged += batch.size();
                    reported_drops += new_drops;
                }
                settled.notify_all();
                batch.clear();  // the events' strings freed outside the lock; the storage stays for the next swap
            }
        }

        void log_line(const Item& item) noexcept {
            try {
                const auto line = monitor_event_json(item.event);
                logger->log(item.level, spdlog::string_view_t{line.data(), line.size()});
                lines.fetch_add(1, std::memory_order_relaxed);
            } catch (...) {
                errors.fetch_add(1, std::memory_order_relaxed);
            }
        }

        void log_drops(std::uint64_t n) noexcept {
            try {
                const auto line = "{\"dropped\":" + std::to_string(n) + "}";
                logger->log(spdlog::level::warn, spdlog::string_view_t{line.data(), line.size()});
            } catch (...) {
                errors.fetch_add(1, std::memory_order_relaxed);
            }
        }

        bool wait_logged(std::optional<std::chrono::steady_clock::time_point> until) {
            std::unique_lock lock{mutex};
            const auto target_logged = accepted;
            const auto target_drops = drops;
            const auto done = [&] { return logged >= target_logged && reported_drops >= target_drops; };
            if (!until) {
                settled.wait(lock, done);
                return true;
            }
            return settled.wait_until(lock, *until, done);
        }

        void stop() {
            {
                std::lock_guard lock{mutex};
                stopping = true;
            }
            wake.notify_one();
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
    std::thread worker_;
};

}  // namespace taskmon

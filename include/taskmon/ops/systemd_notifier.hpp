// taskmon — coroutine supervision for standalone Asio.
// SPDX-License-Identifier: MIT
//
// SystemdNotifier: tells systemd how the process is doing, from a HealthReport (taskmon/ops/health.hpp), over the
// sd_notify datagram protocol (a unix datagram socket; no libsystemd): READY=1 once ready, WATCHDOG=1 every half
// of WATCHDOG_USEC while live, STATUS= when the summary changes, STOPPING=1 on close(). After a critical
// give-up it stops pinging, so systemd's watchdog restarts the service (optionally at once with
// WATCHDOG=trigger, or the owner exits non-zero through on_not_live). Linux only; not in the umbrella header.
//
//   taskmon::SystemdNotifier notifier{io.get_executor(), [&] { return taskmon::check_health(monitor); },
//                                     taskmon::SystemdEnvironment::from_process(),
//                                     {.on_not_live = [&](const taskmon::HealthReport&) { exit_code = 1; io.stop(); }}};
//   auto refresh = monitor.subscribe([&](const taskmon::MonitorEvent&) { notifier.update(); });
//   notifier.start();
//   ...
//   co_await notifier.close();   // STOPPING=1
//   co_await monitor.close();
//
// CMake: link taskmon::systemd (defined on Linux; it adds no library to taskmon::taskmon).
#pragma once

#include <taskmon/detail/config.hpp>

#include <taskmon/duration.hpp>
#include <taskmon/ops/health.hpp>

#include <asio/any_io_executor.hpp>
#include <asio/async_result.hpp>
#include <asio/awaitable.hpp>
#include <asio/use_awaitable.hpp>
#include <spdlog/logger.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>

namespace taskmon {

/// What the service manager passed in the environment (sd_notify(3), sd_watchdog_enabled(3)).
struct SystemdEnvironment {
    /// NOTIFY_SOCKET: an absolute path, or "@name" for an abstract socket. Empty: not started by systemd with
    /// Type=notify (or NotifyAccess=none); nothing is sent.
    std::string notify_socket;
    /// WATCHDOG_USEC, if set and meant for this process (WATCHDOG_PID unset or equal to our pid).
    std::optional<std::chrono::microseconds> watchdog_interval;

    /// Parses raw values (nullptr: variable unset; an empty value counts as unset, as in sd_notify). `pid`
    /// is this process's id, compared with WATCHDOG_PID. Throws std::invalid_argument naming the variable:
    /// NOTIFY_SOCKET neither absolute nor '@'-prefixed (e.g. "vsock:…", not supported) or longer than a unix
    /// socket address allows; WATCHDOG_USEC or WATCHDOG_PID not a positive decimal integer.
    [[nodiscard]] static SystemdEnvironment parse(const char* notify_socket, const char* watchdog_usec,
                                                  const char* watchdog_pid, long pid);

    /// parse() of this process's NOTIFY_SOCKET, WATCHDOG_USEC, WATCHDOG_PID and getpid(). Reads, never
    /// modifies, the environment.
    [[nodiscard]] static SystemdEnvironment from_process();
};

/// Options of a SystemdNotifier; a plain struct for designated initializers.
struct SystemdNotifierOptions {
    /// Health is re-read on start(), on every update(), on every watchdog tick and this often (0: never on a
    /// timer of its own). Keeps STATUS and READY current when nothing calls update().
    Duration poll_interval = std::chrono::seconds{1};
    /// When liveness is lost, also send WATCHDOG=trigger: systemd applies the watchdog action (restart) at
    /// once instead of after WatchdogSec without a ping.
    bool trigger_watchdog = false;
    /// Called on the notifier's strand each time liveness is lost (live → not live), after the notification
    /// was sent, with the report. The opt-in way to exit: e.g. record exit code 1, close, stop the io_context.
    /// What it throws is logged and otherwise ignored.
    std::function<void(const HealthReport&)> on_not_live{};
    /// STATUS= text longer than this is cut (at a UTF-8 boundary, with "..."); systemd drops notification
    /// datagrams over 4096 bytes.
    std::size_t max_status_size = 1024;
};

/// What the notifier did; for tests and diagnostics.
struct SystemdNotifierStats {
    std::uint64_t messages_sent = 0;   ///< datagrams the kernel accepted
    std::uint64_t send_failures = 0;   ///< datagrams that could not be sent (each logged at warn level)
    std::uint64_t watchdog_pings = 0;  ///< WATCHDOG=1 sent
    bool ready_sent = false;           ///< READY=1 sent
    bool live = true;                  ///< liveness at the last evaluation
    std::string last_status;           ///< the last STATUS= text sent
};

namespace detail {
template <typename Clock>
class SystemdNotifierState;
}  // namespace detail

/// Drives the sd_notify protocol from a health source. Clock times the watchdog and poll timers
/// (taskmon::testing::ManualClock in tests).
///
/// Thread safety: every member function may be called from any thread. All work (reading health, sending,
/// timers, on_not_live) runs on a strand of the executor, so the health source is never called concurrently
/// with itself.
///
/// Why the datagram protocol and not libsystemd: it is a documented stable interface (sd_notify(3), "the
/// protocol is simple: a datagram with newline-separated assignments"), it adds no dependency, and it lets the
/// environment be injected (libsystemd's sd_notify reads NOTIFY_SOCKET from the process environment) and the
/// sends share the application's executor.
template <typename Clock>
class BasicSystemdNotifier {
public:
    using clock_type = Clock;
    using HealthSource = std::function<HealthReport()>;

    /// Nothing is sent before start(). Throws std::invalid_argument for an empty executor or health source or
    /// a poll_interval or max_status_size out of range (negative; max_status_size under 16). A null logger
    /// means spdlog's default logger.
    BasicSystemdNotifier(asio::any_io_executor executor, HealthSource health, SystemdEnvironment environment,
                         SystemdNotifierOptions options = {}, std::shared_ptr<spdlog::logger> logger = nullptr);

    /// Without close(): stops the timers and sends nothing more (no STOPPING=1).
    ~BasicSystemdNotifier();

    BasicSystemdNotifier(const BasicSystemdNotifier&) = delete;
    BasicSystemdNotifier& operator=(const BasicSystemdNotifier&) = delete;

    /// Reads health at once (sending READY=1, STATUS=, and the first WATCHDOG=1 as they apply) and starts the
    /// watchdog and poll timers. Returns before that work ran (it is posted). Throws std::logic_error if called
    /// twice or after close().
    void start();

    /// Re-reads health soon (posted), e.g. from a MonitorEvent listener. A no-op before start() and after
    /// close(), so a listener may keep calling it during shutdown.
    void update();

    /// Sends STOPPING=1 (with a final STATUS=) unless nothing was started, stops the timers; nothing is sent
    /// afterwards. Idempotent; concurrent and repeated calls all complete after the first one took effect.
    /// Resumes on the awaiting coroutine's executor.
    asio::awaitable<void> close() {
        return asio::async_initiate<decltype(asio::use_awaitable), void()>(
            [state = state_](auto handler) { state->async_close(std::move(handler)); }, asio::use_awaitable);
    }

    /// A copy of the counters (thread-safe).
    [[nodiscard]] SystemdNotifierStats stats() const;

    /// The watchdog ping period (half of WATCHDOG_USEC), or nullopt when there is no watchdog.
    [[nodiscard]] std::optional<std::chrono::microseconds> ping_interval() const noexcept;

private:
    std::shared_ptr<detail::SystemdNotifierState<Clock>> state_;
};

/// The notifier on the steady clock.
using SystemdNotifier = BasicSystemdNotifier<std::chrono::steady_clock>;

}  // namespace taskmon

#include <taskmon/detail/systemd_notifier_state.hpp>

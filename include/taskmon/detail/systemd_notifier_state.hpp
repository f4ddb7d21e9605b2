// taskmon — coroutine supervision for standalone Asio.
// SPDX-License-Identifier: MIT
//
// The shared state behind BasicSystemdNotifier (taskmon/ops/systemd_notifier.hpp) and SystemdEnvironment parsing.
#pragma once

#include <taskmon/detail/config.hpp>

#include <taskmon/detail/log_text.hpp>
#include <taskmon/ops/systemd_notifier.hpp>

#include <asio/any_io_executor.hpp>
#include <asio/associated_executor.hpp>
#include <asio/basic_waitable_timer.hpp>
#include <asio/bind_executor.hpp>
#include <asio/buffer.hpp>
#include <asio/dispatch.hpp>
#include <asio/error.hpp>
#include <asio/local/datagram_protocol.hpp>
#include <asio/post.hpp>
#include <asio/strand.hpp>
#include <spdlog/logger.h>
#include <spdlog/spdlog.h>

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <exception>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

namespace taskmon {

namespace detail {

/// A positive decimal integer (no sign, no spaces, no suffix), or nullopt.
inline std::optional<std::uint64_t> parse_positive(std::string_view text) {
    std::uint64_t value = 0;
    const auto* end = text.data() + text.size();
    const auto [ptr, ec] = std::from_chars(text.data(), end, value);
    if (text.empty() || ec != std::errc{} || ptr != end || value == 0) {
        return std::nullopt;
    }
    return value;
}

inline bool is_set(const char* value) { return value != nullptr && *value != '\0'; }

/// Cuts `text` to at most `limit` bytes at a UTF-8 character boundary, ending in "..." when cut.
inline std::string cut_status(std::string text, std::size_t limit) {
    if (text.size() <= limit) {
        return text;
    }
    std::size_t size = limit - 3;
    while (size > 0 && (static_cast<unsigned char>(text[size]) & 0xC0U) == 0x80U) {
        --size;  // text[size] continues a character: cut before the character
    }
    text.resize(size);
    text += "...";
    return text;
}

}  // namespace detail

inline SystemdEnvironment SystemdEnvironment::parse(const char* notify_socket, const char* watchdog_usec,
                                                    const char* watchdog_pid, long pid) {
    SystemdEnvironment env;
    if (detail::is_set(notify_socket)) {
        const std::string_view socket{notify_socket};
        if (socket.front() != '/' && socket.front() != '@') {
            throw std::invalid_argument("NOTIFY_SOCKET: \"" + std::string{socket} +
                                        "\" is neither an absolute path nor an abstract socket name ('@...')");
        }
        if (socket.size() < 2 || socket.size() >= sizeof(sockaddr_un::sun_path)) {
            throw std::invalid_argument("NOTIFY_SOCKET: \"" + std::string{socket} +
                                        "\" does not fit a unix socket address (1 to " +
                                        std::to_string(sizeof(sockaddr_un::sun_path) - 1) + " bytes)");
        }
        env.notify_socket = std::string{socket};
    }
    if (detail::is_set(watchdog_usec)) {
        const auto usec = detail::parse_positive(watchdog_usec);
        if (!usec || *usec > static_cast<std::uint64_t>(std::chrono::microseconds::max().count())) {
            throw std::invalid_argument(std::string{"WATCHDOG_USEC: \""} + watchdog_usec +
                                        "\" is not a positive number of microseconds");
        }
        bool ours = true;
        if (detail::is_set(watchdog_pid)) {
            const auto watchdog_for = detail::parse_positive(watchdog_pid);
            if (!watchdog_for) {
                throw std::invalid_argument(std::string{"WATCHDOG_PID: \""} + watchdog_pid + "\" is not a process id");
            }
            ours = pid > 0 && *watchdog_for == static_cast<std::uint64_t>(pid);
        }
        if (ours) {
            env.watchdog_interval = std::chrono::microseconds{static_cast<std::int64_t>(*usec)};
        }
    } else if (detail::is_set(watchdog_pid) && !detail::parse_positive(watchdog_pid)) {
        throw std::invalid_argument(std::string{"WATCHDOG_PID: \""} + watchdog_pid + "\" is not a process id");
    }
    return env;
}

inline SystemdEnvironment SystemdEnvironment::from_process() {
    return parse(std::getenv("NOTIFY_SOCKET"), std::getenv("WATCHDOG_USEC"), std::getenv("WATCHDOG_PID"),
                 static_cast<long>(::getpid()));
}

namespace detail {

/// All mutable state is touched only on strand_, except stats_ (guarded by stats_mutex_).
///
/// Invariants: nothing is sent before started_ or after closed_; READY=1 is sent at most once; a STATUS= is
/// sent only when it differs from the last one sent; WATCHDOG=1 only on a watchdog tick (or start) whose
/// health evaluation found the process live.
template <typename Clock>
class SystemdNotifierState : public std::enable_shared_from_this<SystemdNotifierState<Clock>> {
public:
    using HealthSource = typename BasicSystemdNotifier<Clock>::HealthSource;
    using Timer = asio::basic_waitable_timer<Clock>;
    using Strand = asio::strand<asio::any_io_executor>;
    using Protocol = asio::local::datagram_protocol;

    SystemdNotifierState(asio::any_io_executor executor, HealthSource health, SystemdEnvironment environment,
                         SystemdNotifierOptions options, std::shared_ptr<spdlog::logger> logger)
        : strand_{asio::make_strand(executor)},
          health_{std::move(health)},
          environment_{std::move(environment)},
          options_{std::move(options)},
          logger_{logger ? std::move(logger) : spdlog::default_logger()},
          socket_{strand_},
          watchdog_timer_{strand_},
          poll_timer_{strand_} {
        if (!environment_.notify_socket.empty()) {
            std::string address = environment_.notify_socket;
            if (address.front() == '@') {
                address.front() = '\0';  // abstract namespace: a leading NUL, no terminating one
            }
            endpoint_ = Protocol::endpoint{address};
            socket_.open();
            socket_.non_blocking(true);  // never block the executor on a full notify queue: count and log
        }
    }

    void start() {
        {
            std::lock_guard lock{stats_mutex_};
            if (closed_requested_) {
                throw std::logic_error("SystemdNotifier::start: called after close()");
            }
            if (start_requested_) {
                throw std::logic_error("SystemdNotifier::start: called twice");
            }
            start_requested_ = true;
        }
        asio::post(strand_, [self = this->shared_from_this()] { self->on_start(); });
    }

    void update() {
        asio::post(strand_, [self = this->shared_from_this()] {
            if (self->started_ && !self->closed_) {
                self->evaluate(false);
            }
        });
    }

    template <typename Handler>
    void async_close(Handler handler) {
        {
            std::lock_guard lock{stats_mutex_};
            closed_requested_ = true;
        }
        auto executor = asio::get_associated_executor(handler, strand_);  // before the handler is moved
        asio::post(strand_, [self = this->shared_from_this(),
                             done = asio::bind_executor(executor, std::move(handler))]() mutable {
            self->on_close(true);
            asio::dispatch(std::move(done));
        });
    }

    /// The notifier object is gone: stop without STOPPING=1.
    void detach() {
        {
            std::lock_guard lock{stats_mutex_};
            closed_requested_ = true;
        }
        asio::post(strand_, [self = this->shared_from_this()] { self->on_close(false); });
    }

    SystemdNotifierStats stats() const {
        std::lock_guard lock{stats_mutex_};
        return stats_;
    }

    std::optional<std::chrono::microseconds> ping_interval() const noexcept {
        if (environment_.notify_socket.empty() || !environment_.watchdog_interval) {
            return std::nullopt;
        }
        // Half the interval, as sd_watchdog_enabled(3) advises; at least 1 ms (no busy loop on a tiny value).
        return std::max(*environment_.watchdog_interval / 2, std::chrono::microseconds{1000});
    }

private:
    void on_start() {
        if (closed_) {
            return;  // close() overtook the posted start
        }
        started_ = true;
        logger_->info("SystemdNotifier started notify_socket={} watchdog_ping_interval={}",
                      quote(environment_.notify_socket),
                      ping_interval() ? std::to_string(ping_interval()->count()) + "us" : std::string{"none"});
        evaluate(ping_interval().has_value());
        arm_watchdog();
        arm_poll();
    }

    void arm_watchdog() {
        const auto interval = ping_interval();
        if (!interval || closed_) {
            return;
        }
        // On a fixed schedule (no drift from the time a reading takes); after a stall, from now (no burst).
        const auto period = std::chrono::duration_cast<typename Clock::duration>(*interval);
        const auto now = Clock::now();
        const auto next = watchdog_armed_ ? watchdog_timer_.expiry() + period : now + period;
        watchdog_timer_.expires_at(next > now ? next : now + period);
        watchdog_armed_ = true;
        watchdog_timer_.async_wait([weak = this->weak_from_this()](const std::error_code& ec) {
            const auto self = weak.lock();
            if (!self || ec || self->closed_) {
                return;
            }
            self->evaluate(true);
            self->arm_watchdog();
        });
    }

    void arm_poll() {
        if (options_.poll_interval <= std::chrono::milliseconds::zero() || closed_) {
            return;
        }
        poll_timer_.expires_after(std::chrono::duration_cast<typename Clock::duration>(options_.poll_interval));
        poll_timer_.async_wait([weak = this->weak_from_this()](const std::error_code& ec) {
            const auto self = weak.lock();
            if (!self || ec || self->closed_) {
                return;
            }
            self->evaluate(false);
            self->arm_poll();
        });
    }

    /// Reads health and sends what changed (plus WATCHDOG=1 on a tick while live), in one datagram.
    void evaluate(bool watchdog_tick) {
        HealthReport report;
        try {
            report = health_();
        } catch (const std::exception& e) {
            report = failed_check(detail::what_of(e));
        } catch (...) {
            report = failed_check("unknown exception");
        }
        std::string message;
        const auto add = [&](std::string_view field) {
            if (!message.empty()) {
                message += '\n';
            }
            message += field;
        };
        const bool send_ready = report.ready && !ready_sent_;
        if (send_ready) {
            add("READY=1");
        }
        const auto status = cut_status(health_summary(report), options_.max_status_size);
        const bool send_status = status != last_status_;
        if (send_status) {
            add("STATUS=" + status);
        }
        const bool lost_liveness = was_live_ && !report.live;
        if (lost_liveness) {
            logger_->error("SystemdNotifier: liveness lost, watchdog pings stop{} status={}",
                           options_.trigger_watchdog ? " and the watchdog is triggered" : "", quote(status));
            if (options_.trigger_watchdog) {
                add("WATCHDOG=trigger");
            }
        } else if (!was_live_ && report.live) {
            logger_->warn("SystemdNotifier: live again, watchdog pings resume status={}", quote(status));
        }
        const bool ping = watchdog_tick && report.live && ping_interval().has_value();
        if (ping) {
            add("WATCHDOG=1");
        }
        was_live_ = report.live;
        // What could not be sent (counted and logged by send()) is sent again by the next evaluation.
        const bool sent = !message.empty() && send(message);
        if (sent) {
            ready_sent_ = ready_sent_ || send_ready;
            if (send_status) {
                last_status_ = status;
            }
        }
        {
            std::lock_guard lock{stats_mutex_};
            stats_.live = report.live;
            stats_.ready_sent = ready_sent_;
            if (sent && ping) {
                ++stats_.watchdog_pings;
            }
            if (sent && send_status) {
                stats_.last_status = status;
            }
        }
        if (lost_liveness && options_.on_not_live) {
            try {
                options_.on_not_live(report);
            } catch (const std::exception& e) {
                logger_->error("SystemdNotifier: on_not_live threw reason={}", quote(describe(e)));
            } catch (...) {
                logger_->error("SystemdNotifier: on_not_live threw an unknown exception");
            }
        }
    }

    HealthReport failed_check(const std::string& what) {
        logger_->error("SystemdNotifier: the health source threw reason={}", quote(what));
        HealthReport report;
        report.live = false;
        report.ready = false;
        report.liveness_failures.push_back({"health check", "threw " + what});
        report.readiness_failures = report.liveness_failures;
        return report;
    }

    void on_close(bool send_stopping) {
        if (closed_) {
            return;
        }
        if (send_stopping && started_) {
            send("STOPPING=1\nSTATUS=stopping");
        }
        closed_ = true;
        watchdog_timer_.cancel();
        poll_timer_.cancel();
        std::error_code ignored;
        socket_.close(ignored);
    }

    /// Sends one datagram; false (counted, logged) if it could not be sent or nothing is listening.
    bool send(const std::string& message) {
        if (environment_.notify_socket.empty()) {
            return false;
        }
        std::error_code ec;
        const auto sent = socket_.send_to(asio::buffer(message), endpoint_, 0, ec);
        if (ec || sent != message.size()) {
            {
                std::lock_guard lock{stats_mutex_};
                ++stats_.send_failures;
            }
            // Outside stats_mutex_: a logger's sinks are the application's code. The message has one line per
            // field: quoted, it stays one log line.
            logger_->warn("SystemdNotifier: sending to NOTIFY_SOCKET failed: {} notify_socket={} message={}",
                          ec ? ec.message() : std::string{"short write"}, quote(environment_.notify_socket),
                          quote(message));
            return false;
        }
        std::lock_guard lock{stats_mutex_};
        ++stats_.messages_sent;
        return true;
    }

    Strand strand_;
    HealthSource health_;
    const SystemdEnvironment environment_;
    const SystemdNotifierOptions options_;
    std::shared_ptr<spdlog::logger> logger_;
    Protocol::socket socket_;
    Protocol::endpoint endpoint_;
    Timer watchdog_timer_;
    Timer poll_timer_;

    // On strand_ only.
    bool started_ = false;
    bool closed_ = false;
    bool ready_sent_ = false;
    bool was_live_ = true;
    bool watchdog_armed_ = false;
    std::string last_status_;

    mutable std::mutex stats_mutex_;
    SystemdNotifierStats stats_;     // guarded by stats_mutex_
    bool start_requested_ = false;   // guarded by stats_mutex_
    bool closed_requested_ = false;  // guarded by stats_mutex_
};

}  // namespace detail

template <typename Clock>
BasicSystemdNotifier<Clock>::BasicSystemdNotifier(asio::any_io_executor executor, HealthSource health,
                                                  SystemdEnvironment environment, SystemdNotifierOptions options,
                                                  std::shared_ptr<spdlog::logger> logger) {
    if (!executor) {
        throw std::invalid_argument("SystemdNotifier: executor must not be empty");
    }
    if (!health) {
        throw std::invalid_argument("SystemdNotifier: health source must not be empty");
    }
    if (options.poll_interval < std::chrono::milliseconds::zero()) {
        throw std::invalid_argument("SystemdNotifierOptions.poll_interval must not be negative");
    }
    if (options.poll_interval > longest_duration_setting) {  // added to clock readings: no overflow
        throw std::invalid_argument("SystemdNotifierOptions.poll_interval must not exceed 100 years");
    }
    if (options.max_status_size < 16) {
        throw std::invalid_argument("SystemdNotifierOptions.max_status_size must be at least 16");
    }
    state_ = std::make_shared<detail::SystemdNotifierState<Clock>>(
        std::move(executor), std::move(health), std::move(environment), std::move(options), std::move(logger));
}

template <typename Clock>
BasicSystemdNotifier<Clock>::~BasicSystemdNotifier() {
    state_->detach();
}

template <typename Clock>
void BasicSystemdNotifier<Clock>::start() {
    state_->start();
}

template <typename Clock>
void BasicSystemdNotifier<Clock>::update() {
    state_->update();
}

template <typename Clock>
SystemdNotifierStats BasicSystemdNotifier<Clock>::stats() const {
    return state_->stats();
}

template <typename Clock>
std::optional<std::chrono::microseconds> BasicSystemdNotifier<Clock>::ping_interval() const noexcept {
    return state_->ping_interval();
}

}  // namespace taskmon

// taskmon — coroutine supervision for standalone Asio.
// SPDX-License-Identifier: MIT
//
// Waits for a state of a TaskMonitor, with a timeout on the monitor's clock: for start-up ordering in main() and
// for tests, instead of a subscription or polling.
//
//   co_await taskmon::async_wait_ready(monitor, "database", 10s);          // throws on timeout or close
//   auto [ec] = co_await taskmon::async_wait_state(monitor, "job", ComponentState::completed, 1min,
//                                                  asio::experimental::as_tuple(asio::use_awaitable));
//   co_await taskmon::async_wait_group_state(monitor, "link", GroupState::running, 5s);
//
// Each completes with the signature void(std::error_code): no error once the state holds (at once if it already
// does), asio::error::timed_out once `timeout` passed on the monitor's clock (virtual time under ManualClock),
// asio::error::operation_aborted when the monitor closed first (its `closed` event) or the wait was cancelled
// (per-operation cancellation, any type). A name the monitor does not know yet is waited for: it may be added
// later. The handler is called through its associated executor (post semantics), never inside the call.
// The monitor must outlive the wait, as an I/O object outlives its operations.
#pragma once

#include <taskmon/component_group.hpp>
#include <taskmon/component_stats.hpp>
#include <taskmon/duration.hpp>
#include <taskmon/monitor_closed.hpp>
#include <taskmon/monitor_event.hpp>
#include <taskmon/task_monitor.hpp>

#include <asio/associated_cancellation_slot.hpp>
#include <asio/associated_executor.hpp>
#include <asio/async_result.hpp>
#include <asio/basic_waitable_timer.hpp>
#include <asio/bind_executor.hpp>
#include <asio/cancellation_type.hpp>
#include <asio/error.hpp>
#include <asio/post.hpp>
#include <asio/strand.hpp>
#include <asio/use_awaitable.hpp>
#include <asio/wait_traits.hpp>

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <system_error>
#include <utility>

namespace taskmon {

namespace detail {

/// Reads the monitor: true once the state waited for holds.
template <typename Clock>
using StateCheck = std::function<bool(const BasicTaskMonitor<Clock>&)>;
/// True for an event that may change the state waited for.
using EventFilter = std::function<bool(const MonitorEvent&)>;

/// One wait: the first of the state holding, the timeout, the monitor's close and a cancellation completes it.
/// Everything but the listener runs on `strand`, which serializes the timer and the completion; the listener only
/// posts there, so it never blocks a publishing thread, and the subscription is never dropped from inside it.
template <typename Clock, typename Handler>
class StateWait : public std::enable_shared_from_this<StateWait<Clock, Handler>> {
public:
    using Monitor = BasicTaskMonitor<Clock>;

    StateWait(Monitor& monitor, Handler handler)
        : monitor_{&monitor},
          fallback_{monitor.get_executor()},
          strand_{asio::make_strand(monitor.get_executor())},
          timer_{strand_},
          handler_{std::move(handler)} {}

    void start(StateCheck<Clock> check, EventFilter concerns, Duration timeout) {
        check_ = std::move(check);
        auto slot = asio::get_associated_cancellation_slot(*handler_);
        if (slot.is_connected()) {
            slot.assign([weak = this->weak_from_this()](asio::cancellation_type) {
                if (auto self = weak.lock()) {
                    asio::post(self->strand_, [self] { self->finish(asio::error::operation_aborted); });
                }
            });
        }
        try {
            subscription_ = monitor_->subscribe([weak = this->weak_from_this(),
                                                 concerns = std::move(concerns)](const MonitorEvent& e) {
                const bool closed = e.kind == MonitorEventKind::closed;
                if (!closed && !concerns(e)) {
                    return;
                }
                if (auto self = weak.lock()) {
                    asio::post(self->strand_, [self, closed] { self->on_event(closed); });
                }
            });
        } catch (const MonitorClosed&) {
            asio::post(strand_, [self = this->shared_from_this()] { self->finish(asio::error::operation_aborted); });
            return;
        }
        // Subscribed first, then looked: a change between the two is not missed.
        timer_.expires_after(timeout);
        timer_.async_wait([self = this->shared_from_this()](std::error_code ec) {
            if (!ec) {
                self->finish(asio::error::timed_out);
            }
        });
        asio::post(strand_, [self = this->shared_from_this()] { self->on_event(false); });
    }

private:
    void on_event(bool closed) {
        if (done_) {
            return;
        }
        if (check_(*monitor_)) {
            finish({});
        } else if (closed) {
            finish(asio::error::operation_aborted);
        }
    }

    void finish(std::error_code ec) {
        if (done_) {
            return;
        }
        done_ = true;
        timer_.cancel();
        subscription_.unsubscribe();  // on the strand, never inside a listener
        auto handler = std::move(*handler_);
        handler_.reset();
        asio::get_associated_cancellation_slot(handler).clear();
        auto executor = asio::get_associated_executor(handler, fallback_);
        asio::post(executor, [h = std::move(handler), ec]() mutable { std::move(h)(ec); });
    }

    Monitor* monitor_;
    asio::any_io_executor fallback_;  // the monitor's: a handler without an executor of its own completes there
    asio::strand<asio::any_io_executor> strand_;
    asio::basic_waitable_timer<Clock, asio::wait_traits<Clock>, asio::strand<asio::any_io_executor>> timer_;
    std::optional<Handler> handler_;
    StateCheck<Clock> check_;
    EventSubscription subscription_;
    bool done_ = false;  // strand_ only
};

template <typename Clock, typename CompletionToken>
auto async_wait_for_state(BasicTaskMonitor<Clock>& monitor, StateCheck<Clock> check, EventFilter concerns,
                          Duration timeout, CompletionToken&& token) {
    return asio::async_initiate<CompletionToken, void(std::error_code)>(
        [&monitor, timeout](auto handler, auto check, auto concerns) {
            using Wait = StateWait<Clock, decltype(handler)>;
            auto wait = std::make_shared<Wait>(monitor, std::move(handler));
            wait->start(std::move(check), std::move(concerns), timeout);
        },
        token, std::move(check), std::move(concerns));
}

}  // namespace detail

/// Waits until component `name` is ready (ComponentStats::ready: an instance runs, and called ready() if its
/// policy has a startup_timeout). Signature void(std::error_code); see the top of this header.
template <typename Clock, typename CompletionToken = asio::use_awaitable_t<>>
auto async_wait_ready(BasicTaskMonitor<Clock>& monitor, std::string name, Duration timeout,
                      CompletionToken&& token = {}) {
    auto concerns = [name](const MonitorEvent& e) { return e.component == name; };
    auto check = [name = std::move(name)](const BasicTaskMonitor<Clock>& m) {
        const auto stats = m.get_component_stats();
        const auto it = stats.find(name);
        return it != stats.end() && it->second.ready;
    };
    return detail::async_wait_for_state<Clock>(monitor, std::move(check), std::move(concerns), timeout,
                                        std::forward<CompletionToken>(token));
}

/// Waits until component `name` is in `state`. Signature void(std::error_code); see the top of this header.
template <typename Clock, typename CompletionToken = asio::use_awaitable_t<>>
auto async_wait_state(BasicTaskMonitor<Clock>& monitor, std::string name, ComponentState state, Duration timeout,
                      CompletionToken&& token = {}) {
    auto concerns = [name](const MonitorEvent& e) { return e.component == name; };
    auto check = [name = std::move(name), state](const BasicTaskMonitor<Clock>& m) {
        const auto stats = m.get_component_stats();
        const auto it = stats.find(name);
        return it != stats.end() && it->second.state == state;
    };
    return detail::async_wait_for_state<Clock>(monitor, std::move(check), std::move(concerns), timeout,
                                        std::forward<CompletionToken>(token));
}

/// Waits until group `name` is in `state` (GroupState::running: every member started, each ready before the
/// next with GroupPolicy::start_after_ready). Signature void(std::error_code); see the top of this header.
template <typename Clock, typename CompletionToken = asio::use_awaitable_t<>>
auto async_wait_group_state(BasicTaskMonitor<Clock>& monitor, std::string name, GroupState state, Duration timeout,
                            CompletionToken&& token = {}) {
    auto concerns = [name](const MonitorEvent& e) { return e.group == name; };
    auto check = [name = std::move(name), state](const BasicTaskMonitor<Clock>& m) {
        const auto groups = m.get_group_stats();
        const auto it = groups.find(name);
        return it != groups.end() && it->second.state == state;
    };
    return detail::async_wait_for_state<Clock>(monitor, std::move(check), std::move(concerns), timeout,
                                        std::forward<CompletionToken>(token));
}

}  // namespace taskmon

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
// asio::error::operation_aborted when the monitor closed first (its `closed` event; a wait begun after the close
// succeeds only if the state holds then) or the wait was cancelled (per-operation cancellation, any type). A name
// the monitor does not know yet is waited for: it may be added later. The handler is called through its associated
// executor (post semantics), never inside the call, and that executor has outstanding work until then. The calls
// may be made from any thread. Throws std::invalid_argument, starting nothing, for an invalid name or a negative
// timeout.
//
// The state is read from the monitor's stats after each event of that component (or group), on a strand of its
// own: a state that lasts only between two events (restarting with a zero backoff, stopping) can be missed, and a
// spawned task never shows `completed` (it leaves the monitor as it ends). The monitor object must outlive the wait.
#pragma once

#include <taskmon/component_group.hpp>
#include <taskmon/component_stats.hpp>
#include <taskmon/detail/name_rules.hpp>
#include <taskmon/detail/parked_operation.hpp>
#include <taskmon/duration.hpp>
#include <taskmon/monitor_closed.hpp>
#include <taskmon/monitor_event.hpp>
#include <taskmon/task_monitor.hpp>

#include <asio/associated_cancellation_slot.hpp>
#include <asio/associated_executor.hpp>
#include <asio/async_result.hpp>
#include <asio/basic_waitable_timer.hpp>
#include <asio/cancellation_type.hpp>
#include <asio/error.hpp>
#include <asio/execution.hpp>
#include <asio/post.hpp>
#include <asio/strand.hpp>
#include <asio/use_awaitable.hpp>
#include <asio/wait_traits.hpp>

#include <chrono>
#include <functional>
#include <memory>
#include <stdexcept>
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
/// Everything but the initiation, the listener and the cancellation handler runs on `strand_`, which owns the
/// timer, the subscription and `done_`; those three only post there, so they never block a publishing thread nor
/// touch what the strand owns, and the subscription is never dropped from inside a listener. The handler's
/// executor has outstanding work until the completion runs there (ParkedHandler).
template <typename Clock, typename Handler>
class StateWait : public std::enable_shared_from_this<StateWait<Clock, Handler>> {
public:
    using Monitor = BasicTaskMonitor<Clock>;

    StateWait(Monitor& monitor, Handler handler)
        : monitor_{&monitor},
          strand_{asio::make_strand(monitor.get_executor())},
          timer_{strand_},
          parked_{std::move(handler), monitor.get_executor()} {}

    /// On the initiating thread: connects the cancellation slot, then hands the rest to the strand.
    void start(StateCheck<Clock> check, EventFilter concerns, typename Clock::duration timeout) {
        check_ = std::move(check);
        concerns_ = std::move(concerns);
        parked_.template connect_cancellation<Cancel>(this->weak_from_this());
        asio::post(strand_, [self = this->shared_from_this(), timeout] { self->begin(timeout); });
    }

private:
    /// A cancellation (any type) of the operation, emitted on the handler's side: ends the wait on the strand.
    struct Cancel {
        explicit Cancel(std::weak_ptr<StateWait> w) noexcept : wait{std::move(w)} {}  // emplaced by the slot
        std::weak_ptr<StateWait> wait;
        void operator()(asio::cancellation_type) const {
            if (auto self = wait.lock()) {
                asio::post(self->strand_, [self] { self->finish(asio::error::operation_aborted); });
            }
        }
    };

    void begin(typename Clock::duration timeout) {
        if (done_) {
            return;  // cancelled before it began
        }
        try {
            subscription_ =
                monitor_->subscribe([weak = this->weak_from_this(), concerns = concerns_](const MonitorEvent& e) {
                    const bool closed = e.kind == MonitorEventKind::closed;
                    if (!closed && !concerns(e)) {
                        return;
                    }
                    if (auto self = weak.lock()) {
                        asio::post(self->strand_, [self, closed] { self->on_event(closed); });
                    }
                });
        } catch (const MonitorClosed&) {
            on_event(true);  // the state as the close left it
            return;
        }
        // Subscribed first, then looked: a change between the two is not missed.
        timer_.expires_after(timeout);
        timer_.async_wait([self = this->shared_from_this()](std::error_code ec) {
            if (!ec) {
                self->finish(asio::error::timed_out);
            }
        });
        on_event(false);
    }

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
        // The slot is cleared on the handler's executor, where a cancellation is emitted, just before the call.
        parked_.post([self = this->shared_from_this(), ec] {
            self->parked_.disconnect_cancellation();
            std::move(self->parked_.handler())(ec);
        });
    }

    Monitor* monitor_;
    asio::strand<asio::any_io_executor> strand_;
    asio::basic_waitable_timer<Clock, asio::wait_traits<Clock>, asio::strand<asio::any_io_executor>> timer_;
    ParkedHandler<Handler, asio::any_io_executor, asio::execution::relationship_t::fork_t> parked_;
    StateCheck<Clock> check_;
    EventFilter concerns_;
    EventSubscription subscription_;
    bool done_ = false;
};

/// Validates, then starts a StateWait for the completion token.
template <typename Clock, typename CompletionToken>
auto async_wait_for_state(BasicTaskMonitor<Clock>& monitor, const char* what, const std::string& name,
                          StateCheck<Clock> check, EventFilter concerns, Duration timeout, CompletionToken&& token) {
    check_name(name, what, "component or group");
    if (timeout < Duration::zero()) {
        throw std::invalid_argument(std::string{what} + ": the timeout must not be negative");
    }
    // Rounded up to the clock's ticks: a wait never ends before its timeout. Durations beyond the clock's range
    // saturate.
    using ClockDuration = typename Clock::duration;
    const auto ticks = std::chrono::duration<long double, typename ClockDuration::period>{timeout}.count();
    const auto longest = static_cast<long double>(ClockDuration::max().count());
    const auto clock_timeout =
        ticks >= longest ? ClockDuration::max() : std::chrono::ceil<ClockDuration>(std::chrono::nanoseconds{timeout});
    return asio::async_initiate<CompletionToken, void(std::error_code)>(
        [&monitor, clock_timeout](auto handler, auto check, auto concerns) {
            using Wait = StateWait<Clock, decltype(handler)>;
            auto wait = std::make_shared<Wait>(monitor, std::move(handler));
            wait->start(std::move(check), std::move(concerns), clock_timeout);
        },
        token, std::move(check), std::move(concerns));
}

/// A wait until `holds(stats)` for component `name`'s stats, rechecked after each event of that component.
template <typename Clock, typename Holds, typename CompletionToken>
auto async_wait_for_component(BasicTaskMonitor<Clock>& monitor, const char* what, std::string name, Holds holds,
                              Duration timeout, CompletionToken&& token) {
    auto concerns = [name](const MonitorEvent& e) { return e.component == name; };
    auto check = [name, holds](const BasicTaskMonitor<Clock>& m) {
        const auto stats = m.get_component_stats();
        const auto it = stats.find(name);
        return it != stats.end() && holds(it->second);
    };
    return async_wait_for_state<Clock>(monitor, what, name, std::move(check), std::move(concerns), timeout,
                                       std::forward<CompletionToken>(token));
}

}  // namespace detail

/// Waits until component `name` is ready (ComponentStats::ready: an instance runs, and called ready() if its
/// policy has a startup_timeout). Signature void(std::error_code); see the top of this header.
template <typename Clock, typename CompletionToken = asio::use_awaitable_t<>>
auto async_wait_ready(BasicTaskMonitor<Clock>& monitor, std::string name, Duration timeout,
                      CompletionToken&& token = {}) {
    return detail::async_wait_for_component<Clock>(
        monitor, "async_wait_ready", std::move(name), [](const ComponentStats& s) { return s.ready; }, timeout,
        std::forward<CompletionToken>(token));
}

/// Waits until component `name` is in `state`. Signature void(std::error_code); see the top of this header.
template <typename Clock, typename CompletionToken = asio::use_awaitable_t<>>
auto async_wait_state(BasicTaskMonitor<Clock>& monitor, std::string name, ComponentState state, Duration timeout,
                      CompletionToken&& token = {}) {
    return detail::async_wait_for_component<Clock>(
        monitor, "async_wait_state", std::move(name), [state](const ComponentStats& s) { return s.state == state; },
        timeout, std::forward<CompletionToken>(token));
}

/// Waits until group `name` is in `state` (GroupState::running: every member started, each ready before the
/// next with GroupPolicy::start_after_ready). Signature void(std::error_code); see the top of this header.
template <typename Clock, typename CompletionToken = asio::use_awaitable_t<>>
auto async_wait_group_state(BasicTaskMonitor<Clock>& monitor, std::string name, GroupState state, Duration timeout,
                            CompletionToken&& token = {}) {
    auto concerns = [name](const MonitorEvent& e) { return e.group == name; };
    auto check = [name, state](const BasicTaskMonitor<Clock>& m) {
        const auto groups = m.get_group_stats();
        const auto it = groups.find(name);
        return it != groups.end() && it->second.state == state;
    };
    return detail::async_wait_for_state<Clock>(monitor, "async_wait_group_state", name, std::move(check),
                                               std::move(concerns), timeout, std::forward<CompletionToken>(token));
}

}  // namespace taskmon

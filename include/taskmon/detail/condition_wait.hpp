// taskmon — coroutine supervision for standalone Asio.
// SPDX-License-Identifier: MIT
//
// Internal: ConditionWait, a predicate wait for coroutines sharing state on one strand (the Supervisor's loops in
// detail/supervisor_state.hpp): a coroutine waits until a predicate over that state holds; whoever changes the
// state calls notify(), which wakes exactly the waiters whose predicate now holds.
#pragma once

#include <taskmon/detail/config.hpp>

#include <cstddef>
#include <memory>
#include <optional>
#include <tuple>
#include <utility>

#include <asio/any_io_executor.hpp>
#include <asio/async_result.hpp>
#include <asio/awaitable.hpp>
#include <asio/basic_waitable_timer.hpp>
#include <asio/error.hpp>
#include <asio/strand.hpp>
#include <asio/use_awaitable.hpp>

#include <taskmon/detail/waiter_list.hpp>

namespace taskmon::detail {

/// A waiter's condition, checked by the notifier: a pointer to a callable living in the waiting coroutine.
struct ConditionRef {
    const void* object = nullptr;
    bool (*test)(const void*) = nullptr;
    bool operator()() const { return test(object); }
    template <typename F>
    static ConditionRef to(const F& f) noexcept {
        return {&f, [](const void* o) { return (*static_cast<const F*>(o))(); }};
    }
};

/// Coroutines on one strand waiting for predicates over state that strand guards.
///
/// Invariants: used only on its strand (waits, notify() and the cancellation of a wait); a predicate is
/// evaluated only there, when the wait starts, on notify() and when the waiter resumes, so it may read the
/// guarded state freely. A waiter resumes only with its predicate (or its deadline) holding: notify() wakes
/// exactly those, and a woken waiter checks again before it returns. Nothing wakes a waiter but notify() and
/// its own deadline: the state's owner calls notify() after every change a predicate may depend on.
/// Destroying the ConditionWait destroys parked waits without resuming them (see WaiterList).
template <typename Clock>
class ConditionWait {
public:
    using TimePoint = typename Clock::time_point;
    using Strand = asio::any_io_executor;

    explicit ConditionWait(Strand strand) : strand_(std::move(strand)) {}

    ConditionWait(const ConditionWait&) = delete;
    ConditionWait& operator=(const ConditionWait&) = delete;

    /// Wakes exactly the waiters whose predicate now holds (their resumption is posted to the strand, never
    /// run inside this call).
    void notify() {
        waiters_.complete_if([](const ConditionRef& condition) { return condition(); },
                             [](const ConditionRef&) { return std::tuple<>{}; });
    }

    /// Waits on the strand until pred() holds, or until `deadline`. Returns at once (no suspension, no timer)
    /// when it already holds; otherwise parks until a notify() finds it true, or the deadline passed. Resumes on
    /// the strand. Cancellation (any type) throws asio::system_error(operation_aborted).
    ///
    /// `owner` owns this ConditionWait (which is a member of it): the deadline's timer may fire after the wait
    /// ended, and only notifies if `owner` is still alive.
    template <typename Pred>
    asio::awaitable<void> wait_until(std::weak_ptr<const void> owner, Pred pred,
                                     std::optional<TimePoint> deadline = std::nullopt) {
        const auto done = [&] { return pred() || (deadline && Clock::now() >= *deadline); };
        if (done()) co_return;
        std::optional<asio::basic_waitable_timer<Clock>> timer;
        if (deadline) {
            timer.emplace(strand_);
            timer->expires_at(*deadline);
            timer->async_wait([owner = std::move(owner), this](asio::error_code ec) {
                if (const auto alive = owner.lock(); alive && !ec) notify();
            });
        }
        while (!done()) {
            co_await asio::async_initiate<const asio::use_awaitable_t<>, void(asio::error_code)>(
                [this](auto handler, ConditionRef condition) { waiters_.park(std::move(handler), condition, strand_); },
                asio::use_awaitable, ConditionRef::to(done));
        }
    }

    /// Waits parked now (for tests and diagnostics).
    std::size_t parked() const noexcept { return waiters_.size(); }

private:
    Strand strand_;
    WaiterList<ConditionRef> waiters_;
};

}  // namespace taskmon::detail

// taskmon — coroutine supervision for standalone Asio.
// SPDX-License-Identifier: MIT
//
// CallDeadline: timeouts for the calls a long-lived loop makes, without a co_spawn or a timer per call. The
// loop's coroutine is bound to the deadline's cancellation signal; bounded_call() runs the call directly in
// the loop's coroutine and one timer per loop, re-armed only when it fires before the current deadline,
// emits terminal cancellation on that signal when the deadline of the call in flight passes.
#pragma once

#include <taskmon/detail/config.hpp>
#include <taskmon/agent/timeout_error.hpp>

#include <chrono>
#include <cstdint>
#include <exception>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>

#include <asio/any_io_executor.hpp>
#include <asio/awaitable.hpp>
#include <asio/basic_waitable_timer.hpp>
#include <asio/cancellation_signal.hpp>
#include <asio/error.hpp>
#include <asio/this_coro.hpp>

namespace taskmon {
namespace detail {

/// What bounded_call() throws when its deadline passed: a TimeoutError the caller can tell apart from one the
/// call itself threw.
class DeadlineExceeded final : public TimeoutError {
public:
    using TimeoutError::TimeoutError;
};

/// What the end of a bounded call needs of a CallDeadline, without its clock (see await_bounded()).
class CallDeadlineEnd {
public:
    /// True once cancel() reached the loop.
    bool cancelled() const noexcept { return cancelled_; }
    /// The call ended. Returns true when its deadline passed and cancellation was emitted.
    bool disarm() noexcept {
        armed_ = false;
        return std::exchange(fired_, false);
    }

protected:
    CallDeadlineEnd() = default;
    CallDeadlineEnd(const CallDeadlineEnd&) = delete;
    CallDeadlineEnd& operator=(const CallDeadlineEnd&) = delete;
    ~CallDeadlineEnd() = default;

    bool armed_ = false;
    bool fired_ = false;
    bool cancelled_ = false;
};

/// The cancellation scope and call deadline of one loop instance.
///
/// Invariants: cancellation is emitted on signal() only on the loop's strand: by the timer (only while a call
/// is armed and its deadline has passed) or by cancel() (which the caller posts to that strand). At most one
/// timer wait is pending; while calls finish well within their timeout the timer fires about once per timeout,
/// not once per call. After finish() nothing is emitted any more. Not thread-safe: use it on the loop's strand;
/// hold it by shared_ptr (a pending timer wait keeps it alive).
template <typename Clock>
class CallDeadline final : public CallDeadlineEnd, public std::enable_shared_from_this<CallDeadline<Clock>> {
public:
    using Duration = typename Clock::duration;
    using TimePoint = typename Clock::time_point;

    /// `strand`: the executor the loop runs on (its timer's executor).
    explicit CallDeadline(asio::any_io_executor strand) : timer_(std::move(strand)) {}

    /// The slot to bind the loop's coroutine to (co_spawn with bind_cancellation_slot).
    asio::cancellation_slot slot() noexcept { return signal_.slot(); }

    /// Cancellation from outside (the loop's supervisor): forwarded to the loop unless it has finished.
    void cancel(asio::cancellation_type_t type) {
        if (finished_) return;
        cancelled_ = true;
        signal_.emit(type);
    }
    /// A call starts; it must be over by `deadline`.
    void arm(TimePoint deadline) {
        deadline_ = deadline;
        armed_ = true;
        fired_ = false;
        if (!waiting_ || timer_.expiry() > deadline) start_wait(deadline);
    }
    /// The loop ended: no emission after this; the pending timer wait is cancelled.
    void finish() {
        finished_ = true;
        armed_ = false;
        if (waiting_) timer_.cancel();
    }

    /// Timer waits started so far (for tests and benchmarks: about one per timeout, not one per call).
    std::uint64_t waits_started() const noexcept { return waits_started_; }

private:
    void start_wait(TimePoint at) {
        ++waits_started_;
        waiting_ = true;
        timer_.expires_at(at);  // cancels a pending wait; its handler sees a stale generation
        timer_.async_wait([self = this->shared_from_this(), generation = ++generation_](asio::error_code ec) {
            self->on_timer(ec, generation);
        });
    }

    void on_timer(asio::error_code ec, std::uint64_t generation) {
        if (generation != generation_) return;  // superseded by a re-arm
        waiting_ = false;
        if (ec || finished_ || !armed_) return;
        if (Clock::now() < deadline_) {  // fired for an earlier call; the call in flight ends later
            start_wait(deadline_);
            return;
        }
        fired_ = true;
        signal_.emit(asio::cancellation_type::terminal);
    }

    asio::basic_waitable_timer<Clock> timer_;
    asio::cancellation_signal signal_;
    TimePoint deadline_{};
    std::uint64_t generation_ = 0;
    std::uint64_t waits_started_ = 0;
    bool waiting_ = false;
    bool finished_ = false;
};

/// now + timeout, saturated at the clock's maximum.
template <typename TimePoint, typename Duration>
TimePoint deadline_after(TimePoint now, Duration timeout) {
    if (timeout > TimePoint::max() - now) return TimePoint::max();
    return now + timeout;
}

/// The second half of bounded_call(), for a call whose deadline is already armed (CallDeadline::arm): awaits
/// `call()` (an asio::awaitable<U>) and returns `finish(U&&)` as T, in one coroutine frame. It needs no clock, so
/// code that does not know the clock (the Supervisor's agent binding) can be the frame of a bounded call.
/// `deadline` and `what` must outlive the awaitable.
///
/// g++ 12 warns (-Wsubobject-linkage) when Call or Finish is a lambda over types from an anonymous namespace (an
/// agent's Observation, say): the coroutine frame is declared in a header and has fields of those types. The
/// function itself then has internal linkage, so no other translation unit can share the frame; the warning is
/// off for this one definition.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wsubobject-linkage"
#endif
template <typename T, typename Call, typename Finish>
asio::awaitable<T> await_bounded(CallDeadlineEnd& deadline, const std::string& what, Call call, Finish finish) {
    std::optional<T> value;
    std::exception_ptr error;
    try {
        value.emplace(finish(co_await call()));
    } catch (...) {
        error = std::current_exception();
    }
    if (deadline.disarm() && !deadline.cancelled()) {
        co_await asio::this_coro::reset_cancellation_state();
        throw DeadlineExceeded(what);
    }
    if (error) std::rethrow_exception(error);
    co_return std::move(*value);
}
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif

/// Runs `call()` (returning asio::awaitable<T>) in the current coroutine, which must be bound to
/// `deadline.slot()` and run on its strand. When `deadline_at` passes first, terminal cancellation is emitted
/// on the coroutine's slot, and once the call has exited (however it exits) DeadlineExceeded(what) is thrown and
/// the coroutine's cancellation state is reset, so the loop can go on. A cancellation from outside (cancel())
/// is never turned into a timeout. Exceptions of the call propagate unchanged.
template <typename T, typename Clock, typename Call>
asio::awaitable<T> bounded_call(CallDeadline<Clock>& deadline, typename Clock::time_point deadline_at,
                                const std::string& what, Call call) {
    deadline.arm(deadline_at);
    return await_bounded<T>(deadline, what, std::move(call), [](T&& value) -> T { return std::move(value); });
}

/// bounded_call() with a deadline of now + `timeout` (saturated).
template <typename T, typename Clock, typename Call>
asio::awaitable<T> bounded_call(CallDeadline<Clock>& deadline, typename Clock::duration timeout,
                                const std::string& what, Call call) {
    return bounded_call<T>(deadline, deadline_after(Clock::now(), timeout), what, std::move(call));
}

}  // namespace detail
}  // namespace taskmon

// taskmon — coroutine supervision for standalone Asio.
// SPDX-License-Identifier: MIT
//
// Implementation of AsyncSemaphore and SemaphorePermit (included at the end of <taskmon/async_semaphore.hpp>).
#pragma once

#include <taskmon/async_semaphore.hpp>

#include <asio/cancellation_type.hpp>
#include <asio/error.hpp>
#include <asio/execution.hpp>
#include <asio/system_executor.hpp>

#include <optional>
#include <stdexcept>
#include <utility>

namespace taskmon {

// ---- errors -----------------------------------------------------------------------------------------------

namespace detail {
class SemaphoreCategory final : public std::error_category {
public:
    const char* name() const noexcept override { return "taskmon.semaphore"; }
    std::string message(int value) const override {
        switch (static_cast<SemaphoreErrc>(value)) {
            case SemaphoreErrc::closed: return "the semaphore is closed";
        }
        return "unknown semaphore error";
    }
};
}  // namespace detail

inline const std::error_category& semaphore_category() noexcept {
    static const detail::SemaphoreCategory category;
    return category;
}

inline std::error_code make_error_code(SemaphoreErrc e) noexcept { return {static_cast<int>(e), semaphore_category()}; }

// ---- SemaphorePermit --------------------------------------------------------------------------------------

inline SemaphorePermit::SemaphorePermit(SemaphorePermit&& other) noexcept
    : semaphore_(std::exchange(other.semaphore_, nullptr)) {}

inline SemaphorePermit& SemaphorePermit::operator=(SemaphorePermit&& other) noexcept {
    if (this != &other) {
        release();
        semaphore_ = std::exchange(other.semaphore_, nullptr);
    }
    return *this;
}

inline SemaphorePermit::~SemaphorePermit() { release(); }

inline void SemaphorePermit::release() noexcept {
    if (AsyncSemaphore* s = std::exchange(semaphore_, nullptr)) {
        s->release_one();
    }
}

// ---- the pending acquire operation ------------------------------------------------------------------------

// Installed in the acquire's cancellation slot. Looks at the semaphore only while the waiter is queued, so a
// cancellation arriving after the acquire was granted or ended does nothing.
class AsyncSemaphore::CancelHandler {
public:
    CancelHandler(AsyncSemaphore* semaphore, detail::SemaphoreWaiter* waiter) noexcept
        : semaphore_(semaphore), waiter_(waiter) {}

    void operator()(asio::cancellation_type_t type) {
        if (!waiter_->dequeued.load(std::memory_order_acquire)) {
            semaphore_->cancel(waiter_, type);
        }
    }

private:
    AsyncSemaphore* semaphore_;
    detail::SemaphoreWaiter* waiter_;
};

// Owns the completion handler (detail::ParkedHandler: the handler's allocator, the work on its executor, its
// cancellation slot). The memory is freed before the handler is invoked.
template <typename Handler>
class AsyncSemaphore::AcquireOp final : public detail::SemaphoreWaiter {
public:
    // Completions go out as continuations: on an io_context thread, the cheap thread-private queue.
    using Parked =
        detail::ParkedHandler<Handler, asio::system_executor, asio::execution::relationship_t::continuation_t>;
    // A completion dropped by its executor (context shut down) clears the slot before freeing the operation.
    static constexpr bool clear_slot_when_dropped = true;

    explicit AcquireOp(Handler&& handler)
        : detail::SemaphoreWaiter(&detail::destroy_parked<AcquireOp>, &AcquireOp::do_complete),
          parked(std::move(handler), asio::system_executor()) {}

    static AcquireOp* create(Handler&& handler) { return detail::allocate_parked<AcquireOp>(std::move(handler)); }

    // Connects the handler's cancellation slot, if any, to this waiter. Called before the waiter is queued.
    void connect_cancellation(AsyncSemaphore* semaphore) {
        parked.template connect_cancellation<CancelHandler>(semaphore, this);
    }

    Parked parked;

private:
    static void do_complete(detail::SemaphoreWaiter* base, AsyncSemaphore& semaphore) noexcept {
        auto* op = static_cast<AcquireOp*>(base);
        SemaphorePermit permit = op->result ? SemaphorePermit{} : SemaphorePermit{semaphore};
        detail::post_completion(op, op->result, std::move(permit));
    }
};

struct AsyncSemaphore::Initiation {
    AsyncSemaphore* self;

    template <typename Handler>
    void operator()(Handler&& handler) const {
        self->start_acquire(std::forward<Handler>(handler));
    }
};

// ---- AsyncSemaphore ---------------------------------------------------------------------------------------

namespace detail {
inline std::size_t checked_semaphore_count(std::size_t count, const char* where) {
    if (count == 0 || count > SemaphoreWord::max_count) {
        throw std::invalid_argument(std::string(where) + ": count must be between 1 and " +
                                    std::to_string(SemaphoreWord::max_count) + ", got " + std::to_string(count));
    }
    return count;
}
}  // namespace detail

inline AsyncSemaphore::AsyncSemaphore(std::size_t count)
    : word_(detail::SemaphoreWord::make(detail::checked_semaphore_count(count, "AsyncSemaphore"), 0, false)) {}

inline AsyncSemaphore::~AsyncSemaphore() = default;

template <typename CompletionToken>
auto AsyncSemaphore::async_acquire(CompletionToken&& token) {
    return asio::async_initiate<CompletionToken, acquire_signature>(Initiation{this}, token);
}

inline asio::awaitable<SemaphorePermit> AsyncSemaphore::acquire() {
    if (auto permit = try_acquire()) {
        co_return std::move(*permit);
    }
    co_return co_await async_acquire(asio::use_awaitable);
}

template <typename Handler>
void AsyncSemaphore::start_acquire(Handler&& handler) {
    using Op = AcquireOp<std::decay_t<Handler>>;
    Op* op = Op::create(std::move(handler));
    op->connect_cancellation(this);
    bool done = false;
    {
        std::lock_guard lock(mutex_);
        done = enqueue_locked(op);
    }
    if (done) {
        op->complete(op, *this);
    }
}

inline bool AsyncSemaphore::enqueue_locked(detail::SemaphoreWaiter* waiter) {
    using W = detail::SemaphoreWord;
    if (closed_.load(std::memory_order_relaxed)) {
        waiter->result = SemaphoreErrc::closed;
        waiter->dequeued.store(true, std::memory_order_release);
        return true;
    }
    std::uint64_t word = word_.load(std::memory_order_acquire);
    if (W::has_waiters(word)) {
        // Others wait already: queue behind them. The flag is only cleared under mutex_, so no write is needed.
        waiters_.push_back(waiter);
        waiter->queued = true;
        return false;
    }
    for (;;) {
        if (!W::has_waiters(word) && W::has_free_permit(word)) {
            if (word_.compare_exchange_weak(word, word + W::in_use_one, std::memory_order_acq_rel)) {
                waiter->dequeued.store(true, std::memory_order_release);
                return true;
            }
        } else if (word_.compare_exchange_weak(word, word | W::waiters_flag, std::memory_order_acq_rel)) {
            waiters_.push_back(waiter);
            waiter->queued = true;
            return false;
        }
    }
}

inline void AsyncSemaphore::cancel(detail::SemaphoreWaiter* waiter, asio::cancellation_type_t type) {
    constexpr auto accepted =
        asio::cancellation_type::terminal | asio::cancellation_type::partial | asio::cancellation_type::total;
    if ((type & accepted) == asio::cancellation_type::none) {
        return;
    }
    {
        std::lock_guard lock(mutex_);
        if (!waiter->queued) {
            return;  // granted or closed meanwhile: that result stands
        }
        waiters_.erase(waiter);
        waiter->queued = false;
        waiter->dequeued.store(true, std::memory_order_release);
        waiter->result = asio::error::operation_aborted;
        if (waiters_.empty()) {
            word_.fetch_and(~detail::SemaphoreWord::waiters_flag, std::memory_order_acq_rel);
        }
    }
    waiter->complete(waiter, *this);
}

inline std::optional<SemaphorePermit> AsyncSemaphore::try_acquire() noexcept {
    using W = detail::SemaphoreWord;
    if (closed_.load(std::memory_order_acquire)) {
        return std::nullopt;
    }
    std::uint64_t word = word_.load(std::memory_order_relaxed);
    while (!W::has_waiters(word) && W::has_free_permit(word)) {
        if (word_.compare_exchange_weak(word, word + W::in_use_one, std::memory_order_acquire,
                                        std::memory_order_relaxed)) {
            return SemaphorePermit{*this};
        }
    }
    return std::nullopt;
}

inline void AsyncSemaphore::release_one() noexcept {
    using W = detail::SemaphoreWord;
    std::uint64_t word = word_.load(std::memory_order_relaxed);
    while (!W::has_waiters(word)) {
        if (word_.compare_exchange_weak(word, word - W::in_use_one, std::memory_order_release,
                                        std::memory_order_relaxed)) {
            return;
        }
    }
    detail::SemaphoreWaiterList granted;
    {
        std::lock_guard lock(mutex_);
        if (waiters_.empty()) {
            // The waiters left (cancelled, or closed) since the flag was seen: a plain release.
            word_.fetch_sub(W::in_use_one, std::memory_order_release);
        } else if (word = word_.load(std::memory_order_relaxed); W::in_use(word) <= W::capacity(word)) {
            // (word_ is stable: waiters queue, so the flag is set and word_ changes only under mutex_.)
            // The released permit passes straight to the first waiter; in_use stays as it is, which saves the
            // decrement and re-increment a release followed by a grant would make.
            pass_to_front_locked(granted);
            if (waiters_.empty()) {
                word_.fetch_and(~W::waiters_flag, std::memory_order_acq_rel);
            }
        } else {
            // Still over capacity after a shrink: the permit goes back, nobody is admitted.
            word_.fetch_sub(W::in_use_one, std::memory_order_acq_rel);
        }
    }
    complete_all(granted);
}

inline void AsyncSemaphore::pass_to_front_locked(detail::SemaphoreWaiterList& out) noexcept {
    detail::SemaphoreWaiter* w = waiters_.pop_front();
    w->queued = false;
    w->dequeued.store(true, std::memory_order_release);
    w->result.clear();
    out.push_back(w);
}

inline void AsyncSemaphore::grant_waiters_locked(detail::SemaphoreWaiterList& out) noexcept {
    using W = detail::SemaphoreWord;
    while (!waiters_.empty() && W::has_free_permit(word_.load(std::memory_order_acquire))) {
        word_.fetch_add(W::in_use_one, std::memory_order_acq_rel);
        pass_to_front_locked(out);
    }
    if (waiters_.empty()) {
        word_.fetch_and(~W::waiters_flag, std::memory_order_acq_rel);
    }
}

inline void AsyncSemaphore::complete_all(detail::SemaphoreWaiterList& granted) noexcept {
    // Read the next link before completing: a completed waiter may be freed on another thread at once.
    while (detail::SemaphoreWaiter* w = granted.pop_front()) {
        w->complete(w, *this);
    }
}

inline void AsyncSemaphore::set_count(std::size_t count) {
    using W = detail::SemaphoreWord;
    detail::checked_semaphore_count(count, "AsyncSemaphore::set_count");
    detail::SemaphoreWaiterList granted;
    {
        std::lock_guard lock(mutex_);
        if (closed_.load(std::memory_order_relaxed)) {
            throw std::logic_error("AsyncSemaphore::set_count: the semaphore is closed");
        }
        std::uint64_t word = word_.load(std::memory_order_relaxed);
        while (!word_.compare_exchange_weak(word, W::make(count, W::in_use(word), W::has_waiters(word)),
                                            std::memory_order_acq_rel, std::memory_order_relaxed)) {
        }
        grant_waiters_locked(granted);
    }
    complete_all(granted);
}

inline SemaphoreStats AsyncSemaphore::stats() const {
    using W = detail::SemaphoreWord;
    std::lock_guard lock(mutex_);
    const std::uint64_t word = word_.load(std::memory_order_acquire);
    SemaphoreStats s;
    s.capacity = W::capacity(word);
    s.in_use = W::in_use(word);
    s.available = s.in_use < s.capacity ? s.capacity - s.in_use : 0;
    s.waiting = waiters_.size();
    return s;
}

inline void AsyncSemaphore::close() {
    detail::SemaphoreWaiterList ended;
    {
        std::lock_guard lock(mutex_);
        if (closed_.load(std::memory_order_relaxed)) {
            return;
        }
        closed_.store(true, std::memory_order_release);
        while (detail::SemaphoreWaiter* w = waiters_.pop_front()) {
            w->queued = false;
            w->dequeued.store(true, std::memory_order_release);
            w->result = SemaphoreErrc::closed;
            ended.push_back(w);
        }
        word_.fetch_and(~detail::SemaphoreWord::waiters_flag, std::memory_order_acq_rel);
    }
    complete_all(ended);
}

}  // namespace taskmon

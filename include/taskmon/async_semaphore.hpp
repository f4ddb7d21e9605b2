// taskmon — coroutine supervision for standalone Asio.
// SPDX-License-Identifier: MIT
//
// AsyncSemaphore: a counting, FIFO, resizable, cancellable asynchronous semaphore handing out RAII permits.
#pragma once

#include <taskmon/detail/config.hpp>
#include <taskmon/detail/enum_formatter.hpp>
#include <taskmon/detail/semaphore_waiter.hpp>

#include <asio/any_io_executor.hpp>
#include <asio/async_result.hpp>
#include <asio/awaitable.hpp>
#include <asio/cancellation_type.hpp>
#include <asio/use_awaitable.hpp>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <type_traits>

namespace taskmon {

class AsyncSemaphore;

/// Errors an acquire can complete with besides asio::error::operation_aborted (cancelled).
enum class SemaphoreErrc {
    closed = 1,  ///< the semaphore was closed before a permit could be granted
};

/// The enumerator's name ("closed"); fmt::format("{}", e) prints the same. The error_code's message() is the
/// sentence for users.
[[nodiscard]] constexpr std::string_view to_string(SemaphoreErrc e) noexcept {
    switch (e) {
        case SemaphoreErrc::closed: return "closed";
    }
    return "unknown";
}

const std::error_category& semaphore_category() noexcept;
std::error_code make_error_code(SemaphoreErrc e) noexcept;

/// A snapshot of a semaphore's state, taken atomically.
/// Invariants: available == (in_use < capacity ? capacity - in_use : 0), and waiting > 0 only when
/// available == 0. After a shrink, in_use may exceed capacity until holders release.
struct SemaphoreStats {
    std::size_t capacity = 0;   ///< the current count
    std::size_t available = 0;  ///< permits that an acquire would get at once
    std::size_t in_use = 0;     ///< permits held, including ones granted to waiters not yet resumed
    std::size_t waiting = 0;    ///< queued acquires
    friend bool operator==(const SemaphoreStats&, const SemaphoreStats&) = default;
};

/// One permit of an AsyncSemaphore. Move-only; gives the permit back when destroyed or on release().
/// A default-constructed or moved-from permit is empty and releases nothing.
/// The semaphore must outlive every permit taken from it.
class SemaphorePermit {
public:
    SemaphorePermit() noexcept = default;
    SemaphorePermit(SemaphorePermit&& other) noexcept;
    SemaphorePermit& operator=(SemaphorePermit&& other) noexcept;
    SemaphorePermit(const SemaphorePermit&) = delete;
    SemaphorePermit& operator=(const SemaphorePermit&) = delete;
    ~SemaphorePermit();

    /// Gives the permit back now (the next waiter, if any, is served). No-op on an empty permit.
    void release() noexcept;

    /// True while this object holds a permit.
    [[nodiscard]] bool owns_permit() const noexcept { return semaphore_ != nullptr; }
    explicit operator bool() const noexcept { return owns_permit(); }

    /// The semaphore the permit belongs to, or nullptr when empty.
    [[nodiscard]] AsyncSemaphore* semaphore() const noexcept { return semaphore_; }

private:
    friend class AsyncSemaphore;
    explicit SemaphorePermit(AsyncSemaphore& semaphore) noexcept : semaphore_(&semaphore) {}

    AsyncSemaphore* semaphore_ = nullptr;
};

/// A counting asynchronous semaphore for Asio.
///
/// - FIFO: permits go to waiters in arrival order; while anyone waits, no newcomer gets a permit
///   (try_acquire() fails).
/// - Thread-safe: any member may be called from any thread; waiters may run on different executors and
///   io_contexts.
/// - Completion contract of an acquire that has to wait: the completion handler runs on the handler's
///   associated executor (for `acquire()` inside a coroutine: the coroutine's executor), submitted with
///   post semantics; it never runs inline inside the release(), set_count(), close() or cancellation that
///   granted or ended it. While it waits, the acquire counts as outstanding work on that executor.
/// - Cancellation: an acquire supports terminal, partial and total per-operation cancellation through the
///   handler's associated cancellation slot. A waiting acquire leaves the queue in O(1) and completes with
///   asio::error::operation_aborted. If the permit was already granted when the cancellation arrives, the
///   acquire completes successfully with the permit (nothing is lost or duplicated).
/// - Capacity is limited to max_count(). The semaphore must outlive its permits and its pending acquires'
///   executors must outlive the acquires (see docs/io_semaphore.md).
class AsyncSemaphore {
public:
    /// Completion signature of async_acquire(). On error the permit is empty.
    using acquire_signature = void(std::error_code, SemaphorePermit);

    /// Throws std::invalid_argument when count is 0 or greater than max_count().
    explicit AsyncSemaphore(std::size_t count);
    AsyncSemaphore(const AsyncSemaphore&) = delete;
    AsyncSemaphore& operator=(const AsyncSemaphore&) = delete;
    /// Precondition: no permit is held (so no acquire is waiting either); otherwise the permits' release
    /// is undefined behaviour.
    ~AsyncSemaphore();

    /// The largest count a semaphore accepts.
    static constexpr std::size_t max_count() noexcept { return detail::SemaphoreWord::max_count; }

    /// Waits for a permit. Does not suspend when a permit is free and nobody waits.
    /// Throws asio::system_error with operation_aborted when cancelled, SemaphoreErrc::closed when closed.
    asio::awaitable<SemaphorePermit> acquire();

    /// Waits for a permit; completes with acquire_signature through any Asio completion token.
    /// Never completes inline, even when a permit is free (see the completion contract above).
    template <typename CompletionToken>
    auto async_acquire(CompletionToken&& token);

    /// Takes a permit if one is free and nobody waits; never blocks. Empty when closed.
    [[nodiscard]] std::optional<SemaphorePermit> try_acquire() noexcept;

    /// Changes the count. Growing serves waiters at once, in FIFO order. Shrinking below in_use lets holders
    /// finish and admits nobody until in_use drops below the new count.
    /// Throws std::invalid_argument when count is 0 or greater than max_count(), std::logic_error after close().
    void set_count(std::size_t count);

    /// The current state, as one consistent snapshot.
    [[nodiscard]] SemaphoreStats stats() const;

    /// Completes every waiting acquire with SemaphoreErrc::closed, and every later one too; try_acquire()
    /// fails from now on. Held permits stay valid and are released as usual. Idempotent.
    void close();

    [[nodiscard]] bool is_closed() const noexcept { return closed_.load(std::memory_order_acquire); }

private:
    friend class SemaphorePermit;
    template <typename Handler>
    class AcquireOp;
    class CancelHandler;
    struct Initiation;

    template <typename Handler>
    void start_acquire(Handler&& handler);
    // Grants the waiter a permit or queues it; mutex_ held. Returns true when it is done at once (granted, or
    // failed because the semaphore is closed), false when queued.
    bool enqueue_locked(detail::SemaphoreWaiter* waiter);
    void cancel(detail::SemaphoreWaiter* waiter, asio::cancellation_type_t type);
    void release_one() noexcept;
    // Moves the first waiter to `out` as granted, without touching word_; mutex_ held, waiters_ non-empty.
    void pass_to_front_locked(detail::SemaphoreWaiterList& out) noexcept;
    // Grants permits to queued waiters while the count allows; mutex_ held. Granted waiters are moved to `out`.
    void grant_waiters_locked(detail::SemaphoreWaiterList& out) noexcept;
    // Completes (posts) every waiter in the list; mutex_ not held.
    void complete_all(detail::SemaphoreWaiterList& granted) noexcept;

    // word_ packs capacity, in_use and a "waiters queued" flag (see detail::SemaphoreWord). While the flag is
    // set, word_ changes only under mutex_; while it is clear, try_acquire() and release take/return permits
    // with a CAS, without the mutex. The flag is set exactly when waiters_ is non-empty.
    std::atomic<std::uint64_t> word_;
    mutable std::mutex mutex_;
    detail::SemaphoreWaiterList waiters_;  // guarded by mutex_
    std::atomic<bool> closed_{false};      // written under mutex_
};

}  // namespace taskmon

template <>
struct std::is_error_code_enum<taskmon::SemaphoreErrc> : std::true_type {};

#include <taskmon/detail/async_semaphore_impl.hpp>

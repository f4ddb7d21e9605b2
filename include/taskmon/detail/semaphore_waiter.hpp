// taskmon — coroutine supervision for standalone Asio.
// SPDX-License-Identifier: MIT
//
// Internals of AsyncSemaphore: the packed state word and the waiting acquire (a ParkedOperation).
#pragma once

#include <taskmon/detail/parked_operation.hpp>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <system_error>

namespace taskmon {
class AsyncSemaphore;
}

namespace taskmon::detail {

// Layout of AsyncSemaphore's state word: bit 0 = waiters queued, bits 1..31 = in_use, bits 32..63 = capacity.
// in_use never exceeds the largest capacity the semaphore had, so 31 bits suffice.
struct SemaphoreWord {
    static constexpr std::size_t max_count = 0x7fff'ffff;
    static constexpr std::uint64_t waiters_flag = 1;
    static constexpr std::uint64_t in_use_one = 2;

    static constexpr std::uint64_t make(std::size_t capacity, std::size_t in_use, bool waiters) noexcept {
        return (static_cast<std::uint64_t>(capacity) << 32) | (static_cast<std::uint64_t>(in_use) << 1) |
               (waiters ? waiters_flag : 0);
    }
    static constexpr std::size_t capacity(std::uint64_t w) noexcept { return static_cast<std::size_t>(w >> 32); }
    static constexpr std::size_t in_use(std::uint64_t w) noexcept {
        return static_cast<std::size_t>((w >> 1) & max_count);
    }
    static constexpr bool has_waiters(std::uint64_t w) noexcept { return (w & waiters_flag) != 0; }
    static constexpr bool has_free_permit(std::uint64_t w) noexcept { return in_use(w) < capacity(w); }
};

// A queued acquire. The owning operation derives from it; `complete` hands the result to the operation's
// executor and is called without the semaphore's mutex held, exactly once per started acquire.
struct SemaphoreWaiter : ParkedOperation {
    using CompleteFn = void (*)(SemaphoreWaiter* self, AsyncSemaphore& semaphore) noexcept;

    SemaphoreWaiter(DestroyFn destroy, CompleteFn fn) noexcept : ParkedOperation(destroy), complete(fn) {}

    bool queued = false;                // in the semaphore's wait list; guarded by the semaphore's mutex
    std::atomic<bool> dequeued{false};  // set once the waiter left (or never entered) the list for good
    std::error_code result;             // empty = a permit was granted; set before `complete` is called
    CompleteFn complete;
};

// The semaphore's FIFO of waiting acquires (and the local lists of ones granted or ended under the mutex).
using SemaphoreWaiterList = ParkedList<SemaphoreWaiter>;

}  // namespace taskmon::detail

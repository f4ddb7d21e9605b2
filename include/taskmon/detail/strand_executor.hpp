// taskmon — coroutine supervision for standalone Asio.
// SPDX-License-Identifier: MIT
//
// The strands the monitor makes of its executor, and the check that a handler runs on one (internal).
#pragma once

#include <taskmon/detail/config.hpp>
#include <taskmon/detail/executor_target.hpp>

#include <asio/any_io_executor.hpp>
#include <asio/io_context.hpp>
#include <asio/strand.hpp>
#include <asio/thread_pool.hpp>

#include <array>
#include <atomic>
#include <cstddef>
#include <mutex>
#include <typeinfo>

namespace taskmon::detail {

#if !defined(ASIO_NO_TYPEID)  // (without RTTI every strand is one of the type-erased executor)
/// An executor type whose strands are made of the concrete type (make_strand_executor()).
struct ConcreteStrand {
    const std::type_info* executor;                               // the executor's type
    const std::type_info* strand;                                 // the type of a strand of it
    asio::any_io_executor (*make)(const asio::any_io_executor&);  // a strand of an executor of that type
    bool (*running_in)(const asio::any_io_executor&);             // running_in_this_thread() of such a strand
};

template <typename Executor>
ConcreteStrand concrete_strand_of() noexcept {
    return {&typeid(Executor), &typeid(asio::strand<Executor>),
            [](const asio::any_io_executor& e) {
                return asio::any_io_executor{asio::make_strand(*executor_target<Executor>(e))};
            },
            [](const asio::any_io_executor& s) {
                return executor_target<asio::strand<Executor>>(s)->running_in_this_thread();
            }};
}

/// The registered types: the executors of an io_context and of a thread_pool from the start, others by
/// register_concrete_strand(). (On a thread_pool a strand of the concrete executor is 32 bytes, too large for
/// any_io_executor's 24-byte buffer, so its copies still allocate; what it saves is the blocking query through
/// the erasure at every handler: scripts/instructions' spawn_pool, a spawn() on a one-thread pool, ran 20,911
/// instructions, 16,939 with it.)
/// Invariants: entries [0, count) are written before count is raised past them (under mutex, release) and never
/// change after, so readers take count (acquire) and read without a lock, from any thread, while another
/// registers; a type is registered once. A fixed array, not a vector: a reader never sees storage move.
struct ConcreteStrands {
    static constexpr std::size_t capacity = 8;
    std::array<ConcreteStrand, capacity> types{concrete_strand_of<asio::io_context::executor_type>(),
                                               concrete_strand_of<asio::thread_pool::executor_type>()};
    std::atomic<std::size_t> count{2};
    std::mutex mutex;

    /// The entry whose `which` type is `type`; null if none.
    const ConcreteStrand* find(const std::type_info& type, const std::type_info* ConcreteStrand::*which) const {
        const auto n = count.load(std::memory_order_acquire);
        for (std::size_t i = 0; i < n; ++i) {
            if (*(types[i].*which) == type) {
                return &types[i];
            }
        }
        return nullptr;
    }
};

inline ConcreteStrands& concrete_strands() {
    static ConcreteStrands registry;
    return registry;
}
#endif

/// Makes the monitor's strands of an `Executor` strands of that type (idempotent; returns whether it is
/// registered: false only when the table is full, and then strands stay strands of the type-erased executor).
template <typename Executor>
bool register_concrete_strand() {
#if !defined(ASIO_NO_TYPEID)
    auto& r = concrete_strands();
    std::lock_guard lock{r.mutex};
    if (r.find(typeid(Executor), &ConcreteStrand::executor) != nullptr) {
        return true;
    }
    const auto n = r.count.load(std::memory_order_relaxed);
    if (n == ConcreteStrands::capacity) {
        return false;
    }
    r.types[n] = concrete_strand_of<Executor>();
    r.count.store(n + 1, std::memory_order_release);
    return true;
#else
    return false;
#endif
}

/// A strand of `executor`, type-erased. On an io_context's own executor (or a registered one) the strand is made
/// of that concrete executor: a strand<io_context::executor_type> (24 bytes) fits any_io_executor's small-object
/// buffer, so the executor copies Asio makes per coroutine and per handler (work tracking) never allocate, and
/// its blocking property is known without asking, where a strand<any_io_executor> (72 bytes) is copied to the
/// heap each time and asks its executor, through the type erasure, for a property Asio returns on the heap
/// (any_executor's query of a non-scalar result) at every handler it runs.
inline asio::any_io_executor make_strand_executor(const asio::any_io_executor& executor) {
#if !defined(ASIO_NO_TYPEID)
    if (const auto* concrete = concrete_strands().find(executor.target_type(), &ConcreteStrand::executor)) {
        return concrete->make(executor);
    }
#endif
    return asio::make_strand(executor);
}

/// Whether the calling thread runs a handler of `strand` (a strand made by make_strand_executor). For the debug
/// assertions that handlers meant for one strand run on it; an executor of another type answers true.
inline bool running_in_strand(const asio::any_io_executor& strand) noexcept {
#if !defined(ASIO_NO_TYPEID)
    if (const auto* concrete = concrete_strands().find(strand.target_type(), &ConcreteStrand::strand)) {
        return concrete->running_in(strand);
    }
#endif
    if (const auto* s = executor_target<asio::strand<asio::any_io_executor>>(strand)) {
        return s->running_in_this_thread();
    }
    return true;
}

}  // namespace taskmon::detail

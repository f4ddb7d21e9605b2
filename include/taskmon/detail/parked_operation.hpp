// taskmon — coroutine supervision for standalone Asio.
// SPDX-License-Identifier: MIT
//
// ParkedOperation: what the library's own asynchronous primitives (AsyncSemaphore, WaiterList) build a suspended
// operation from: the operation base, the intrusive FIFO list holding it, the handler it owns and the helper that
// posts the completion to the handler's executor. Locking belongs to each primitive; nothing here locks.
#pragma once

#include <taskmon/detail/config.hpp>
#include <taskmon/detail/executor_target.hpp>

#include <cstddef>
#include <memory>
#include <optional>
#include <tuple>
#include <type_traits>
#include <typeinfo>
#include <utility>

#include <asio/any_io_executor.hpp>
#include <asio/associated_allocator.hpp>
#include <asio/associated_cancellation_slot.hpp>
#include <asio/associated_executor.hpp>
#include <asio/execution.hpp>
#include <asio/executor_work_guard.hpp>
#include <asio/io_context.hpp>
#include <asio/prefer.hpp>
#include <asio/recycling_allocator.hpp>
#include <asio/require.hpp>

namespace taskmon::detail {

/// A suspended asynchronous operation: the links of the ParkedList holding it and a way to free it without
/// invoking its handler. The primitive owning the list decides what completing means (its derived type).
class ParkedOperation {
public:
    ParkedOperation(const ParkedOperation&) = delete;
    ParkedOperation& operator=(const ParkedOperation&) = delete;

    /// Frees the operation without invoking its handler. `disconnect`: clear the handler's cancellation slot
    /// first (false while the execution context shuts down: the signal may be gone already).
    void destroy(bool disconnect) noexcept { destroy_(this, disconnect); }

    ParkedOperation* prev = nullptr;  ///< links of the ParkedList holding it, guarded like that list
    ParkedOperation* next = nullptr;

protected:
    using DestroyFn = void (*)(ParkedOperation* self, bool disconnect) noexcept;
    explicit ParkedOperation(DestroyFn destroy) noexcept : destroy_(destroy) {}
    ~ParkedOperation() = default;

private:
    DestroyFn destroy_;
};

/// Intrusive doubly linked FIFO of operations of type T (derived from ParkedOperation): O(1) push_back,
/// pop_front and erase; allocates nothing. An operation is in at most one list at a time.
template <typename T>
class ParkedList {
public:
    ParkedList() = default;
    ParkedList(const ParkedList&) = delete;
    ParkedList& operator=(const ParkedList&) = delete;

    [[nodiscard]] bool empty() const noexcept { return head_ == nullptr; }
    [[nodiscard]] std::size_t size() const noexcept { return size_; }
    [[nodiscard]] T* front() const noexcept { return static_cast<T*>(head_); }

    void push_back(T* op) noexcept {
        ParkedOperation* node = op;
        node->next = nullptr;
        node->prev = tail_;
        if (tail_ != nullptr) {
            tail_->next = node;
        } else {
            head_ = node;
        }
        tail_ = node;
        ++size_;
    }

    void erase(T* op) noexcept {
        ParkedOperation* node = op;
        if (node->prev != nullptr) {
            node->prev->next = node->next;
        } else {
            head_ = node->next;
        }
        if (node->next != nullptr) {
            node->next->prev = node->prev;
        } else {
            tail_ = node->prev;
        }
        node->prev = node->next = nullptr;
        --size_;
    }

    T* pop_front() noexcept {
        T* op = front();
        if (op != nullptr) {
            erase(op);
        }
        return op;
    }

    /// The operation after `op`, or nullptr.
    static T* next(T* op) noexcept { return static_cast<T*>(static_cast<ParkedOperation*>(op)->next); }

private:
    ParkedOperation* head_ = nullptr;
    ParkedOperation* tail_ = nullptr;
    std::size_t size_ = 0;
};

/// The post helper: keeps a parked operation's executor busy (outstanding work) and submits its completion
/// there, never inline (blocking.never). Standard executors are tracked through a preferred executor and submit
/// through an executor prepared up front (so completing copies no tracked executor) with the given relationship
/// (fork: what asio::post does; continuation: on an io_context thread, its cheap thread-private queue); legacy
/// executors through executor_work_guard and post().
template <typename Executor, typename Relationship, typename = void>
class HandlerWork {
public:
    explicit HandlerWork(const Executor& ex)
        : work_(asio::prefer(ex, asio::execution::outstanding_work.tracked)),
          executor_(asio::prefer(asio::require(ex, asio::execution::blocking.never), Relationship())) {}

    template <typename Function>
    void post(Function&& function) {
        asio::execution::execute(executor_, std::forward<Function>(function));
    }

private:
    using tracked_type =
        std::decay_t<typename asio::prefer_result<Executor, asio::execution::outstanding_work_t::tracked_t>::type>;
    using never_type =
        std::decay_t<typename asio::require_result<Executor, asio::execution::blocking_t::never_t>::type>;
    using submit_type = std::decay_t<typename asio::prefer_result<never_type, Relationship>::type>;

    tracked_type work_;
    submit_type executor_;
};

template <typename Executor, typename Relationship>
class HandlerWork<Executor, Relationship, std::enable_if_t<!asio::execution::is_executor<Executor>::value>> {
public:
    explicit HandlerWork(const Executor& ex) : work_(ex) {}

    template <typename Function>
    void post(Function&& function) {
        work_.get_executor().post(std::forward<Function>(function), std::allocator<void>());
    }

private:
    asio::executor_work_guard<Executor> work_;
};

/// The common case, a coroutine on an io_context: an any_io_executor wrapping io_context::executor_type.
/// Unwrapping it saves the type-erased executor copies that tracking work and submitting would otherwise make.
template <typename Relationship>
class HandlerWork<asio::any_io_executor, Relationship, void> {
public:
    explicit HandlerWork(const asio::any_io_executor& ex) {
        if (const auto* io = executor_target<asio::io_context::executor_type>(ex)) {
            io_.emplace(*io);
        } else {
            any_.emplace(ex);
        }
    }

    template <typename Function>
    void post(Function&& function) {
        if (io_) {
            io_->post(std::forward<Function>(function));
        } else {
            any_->post(std::forward<Function>(function));
        }
    }

private:
    std::optional<HandlerWork<asio::io_context::executor_type, Relationship>> io_;
    std::optional<HandlerWork<asio::any_io_executor, Relationship, int>> any_;  // the generic primary template
};

/// The completion handler a parked operation owns, with the work on its associated executor (default:
/// `fallback`) and its cancellation slot. An operation type `Op` using it derives from ParkedOperation, has a
/// member `parked` of this type, a constructor `Op(Handler, ...)`, and says with
/// `static constexpr bool clear_slot_when_dropped` whether a completion that its executor destroys unrun (the
/// context shut down) clears the slot.
template <typename Handler, typename DefaultExecutor, typename Relationship>
class ParkedHandler {
public:
    using executor_type = asio::associated_executor_t<Handler, DefaultExecutor>;
    using allocator_type = asio::associated_allocator_t<Handler, asio::recycling_allocator<void>>;

    template <typename H>
    ParkedHandler(H&& handler, const DefaultExecutor& fallback)
        // Take the executor before moving the handler.
        : work_(asio::get_associated_executor(handler, fallback)), handler_(std::forward<H>(handler)) {}

    /// Memory for the operation comes from the handler's associated allocator (default: Asio's per-thread
    /// recycling allocator).
    static allocator_type allocator_of(const Handler& handler) noexcept {
        return asio::get_associated_allocator(handler, asio::recycling_allocator<void>());
    }
    allocator_type allocator() const noexcept { return allocator_of(handler_); }

    /// Installs CancelHandler{args...} in the handler's cancellation slot, if it has one.
    template <typename CancelHandler, typename... CancelArgs>
    void connect_cancellation(CancelArgs&&... args) {
        auto slot = asio::get_associated_cancellation_slot(handler_);
        if (slot.is_connected()) {
            slot.template emplace<CancelHandler>(std::forward<CancelArgs>(args)...);
            slot_connected_ = true;
        }
    }

    void disconnect_cancellation() noexcept {
        if (slot_connected_) {
            asio::get_associated_cancellation_slot(handler_).clear();
        }
    }

    template <typename Function>
    void post(Function&& function) {
        work_.post(std::forward<Function>(function));
    }

    Handler& handler() noexcept { return handler_; }

private:
    HandlerWork<executor_type, Relationship> work_;
    Handler handler_;
    bool slot_connected_ = false;
};

template <typename Op>
using parked_allocator_t = typename std::allocator_traits<
    typename decltype(std::declval<Op&>().parked)::allocator_type>::template rebind_alloc<Op>;

/// Allocates and constructs `Op(handler, args...)` with the handler's associated allocator.
template <typename Op, typename Handler, typename... Args>
Op* allocate_parked(Handler&& handler, Args&&... args) {
    using Parked = decltype(std::declval<Op&>().parked);
    using Traits = std::allocator_traits<parked_allocator_t<Op>>;
    parked_allocator_t<Op> alloc(Parked::allocator_of(handler));
    Op* op = Traits::allocate(alloc, 1);
    try {
        Traits::construct(alloc, op, std::forward<Handler>(handler), std::forward<Args>(args)...);
    } catch (...) {
        Traits::deallocate(alloc, op, 1);
        throw;
    }
    return op;
}

/// Destroys and frees `op` with `alloc` (taken from its handler before the handler was moved out).
template <typename Op>
void free_parked(Op* op, parked_allocator_t<Op> alloc) noexcept {
    using Traits = std::allocator_traits<parked_allocator_t<Op>>;
    Traits::destroy(alloc, op);
    Traits::deallocate(alloc, op, 1);
}

/// ParkedOperation's destroy function for `Op`.
template <typename Op>
void destroy_parked(ParkedOperation* base, bool disconnect) noexcept {
    auto* op = static_cast<Op*>(base);
    if (disconnect) {
        op->parked.disconnect_cancellation();
    }
    free_parked(op, parked_allocator_t<Op>(op->parked.allocator()));
}

/// The function a completion posts: on the handler's executor it disconnects cancellation, frees the operation,
/// then calls the handler with the values. Everything taken from the handler is taken before it is moved out.
template <typename Op, typename... Values>
class ParkedCompletion {
public:
    explicit ParkedCompletion(Op* op, Values... values) : op_(op), values_(std::move(values)...) {}
    ParkedCompletion(ParkedCompletion&& other) noexcept
        : op_(std::exchange(other.op_, nullptr)), values_(std::move(other.values_)) {}
    ParkedCompletion& operator=(ParkedCompletion&&) = delete;
    // Reached without operator() only when the executor drops the function (its context shut down).
    ~ParkedCompletion() {
        if (op_ != nullptr) {
            destroy_parked<Op>(op_, Op::clear_slot_when_dropped);
        }
    }

    void operator()() {
        Op* op = std::exchange(op_, nullptr);
        op->parked.disconnect_cancellation();
        parked_allocator_t<Op> alloc(op->parked.allocator());
        auto handler(std::move(op->parked.handler()));
        free_parked(op, alloc);
        std::apply([&](auto&... values) { std::move(handler)(std::move(values)...); }, values_);
    }

private:
    Op* op_;
    std::tuple<Values...> values_;
};

/// Completes `op` (no longer in any list): posts ParkedCompletion to the handler's executor, never inline.
template <typename Op, typename... Values>
void post_completion(Op* op, Values... values) {
    op->parked.post(ParkedCompletion<Op, Values...>(op, std::move(values)...));
}

}  // namespace taskmon::detail

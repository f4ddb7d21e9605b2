// taskmon — coroutine supervision for standalone Asio.
// SPDX-License-Identifier: MIT
//
// BoundedQueue: a FIFO with a fixed capacity and backpressure — a push waits while the queue is full, a pop
// waits while it is empty. Used between the Supervisor's decision_loop and actuation_loop.
#pragma once

#include <taskmon/detail/config.hpp>

#include <concepts>
#include <cstddef>
#include <deque>
#include <optional>
#include <stdexcept>
#include <utility>
#include <variant>
#include <vector>

#include <asio/any_io_executor.hpp>
#include <asio/async_result.hpp>
#include <asio/error.hpp>

#include <taskmon/detail/waiter_list.hpp>

namespace taskmon::detail {

/// Bounded FIFO of T.
///
/// Invariants: size() <= capacity(); items leave in push order; an item accepted by a push is either popped,
/// drained or still queued (a push whose wait was cancelled or closed was never accepted and its item is
/// discarded; the caller learns it from the error). Pop waiters exist only while the queue is empty, push
/// waiters only while it is full. Not thread-safe: use it on one strand.
template <std::default_initializable T>
class BoundedQueue {
public:
    /// Throws std::invalid_argument when capacity is 0.
    BoundedQueue(asio::any_io_executor executor, std::size_t capacity)
        : executor_(std::move(executor)), capacity_(capacity) {
        if (capacity == 0) throw std::invalid_argument("BoundedQueue capacity must be > 0");
    }

    std::size_t size() const noexcept { return items_.size(); }
    std::size_t capacity() const noexcept { return capacity_; }
    bool empty() const noexcept { return items_.empty(); }
    bool closed() const noexcept { return closed_; }
    std::size_t waiting_pushers() const noexcept { return pushers_.size(); }
    std::size_t waiting_poppers() const noexcept { return poppers_.size(); }

    /// Accepts `item` when there is room and the queue is open (handing it straight to a waiting pop);
    /// otherwise returns false and leaves `item` untouched.
    bool try_push(T& item) {
        if (closed_ || items_.size() >= capacity_) return false;
        accept(std::move(item));
        return true;
    }

    /// The oldest item, if any; admits the oldest waiting push.
    std::optional<T> try_pop() {
        if (items_.empty()) return std::nullopt;
        T item = std::move(items_.front());
        items_.pop_front();
        admit_pusher();
        return item;
    }

    /// Pushes `item`, waiting while the queue is full; completes with `void(error_code)`: success once the
    /// item is accepted; asio::error::broken_pipe when the queue is or gets closed; operation_aborted when
    /// cancelled (any type) before it was accepted. Completion is posted, never inline.
    template <typename CompletionToken>
    auto async_push(T item, CompletionToken&& token) {
        return asio::async_initiate<CompletionToken, void(asio::error_code)>(
            [this](auto handler, T value) {
                if (closed_) {
                    pushers_.complete_now(std::move(handler), executor_, asio::error::broken_pipe);
                } else if (items_.size() < capacity_) {
                    accept(std::move(value));
                    pushers_.complete_now(std::move(handler), executor_, asio::error_code{});
                } else {
                    pushers_.park(std::move(handler), std::move(value), executor_);
                }
            },
            token, std::move(item));
    }

    /// Pops the oldest item, waiting while the queue is empty; completes with `void(error_code, T)`:
    /// asio::error::eof once the queue is closed and empty; operation_aborted when cancelled (any type).
    /// Completion is posted, never inline.
    template <typename CompletionToken>
    auto async_pop(CompletionToken&& token) {
        return asio::async_initiate<CompletionToken, void(asio::error_code, T)>(
            [this](auto handler) {
                if (auto item = try_pop()) {
                    poppers_.complete_now(std::move(handler), executor_, asio::error_code{}, std::move(*item));
                } else if (closed_) {
                    poppers_.complete_now(std::move(handler), executor_, asio::error::eof, T{});
                } else {
                    poppers_.park(std::move(handler), std::monostate{}, executor_);
                }
            },
            token);
    }

    /// Refuses further pushes: waiting pushes fail with broken_pipe, waiting pops with eof. Queued items stay
    /// poppable (and drainable).
    void close() {
        closed_ = true;
        pushers_.complete_all(asio::error::broken_pipe);
        poppers_.complete_all(asio::error::eof);
    }

    /// Removes and returns every queued item, oldest first, then admits waiting pushes up to capacity.
    std::vector<T> drain() {
        std::vector<T> out;
        out.reserve(items_.size());
        for (auto& item : items_) out.push_back(std::move(item));
        items_.clear();
        while (items_.size() < capacity_ && !pushers_.empty()) admit_pusher();
        return out;
    }

private:
    void accept(T item) {
        if (!poppers_.empty()) {
            poppers_.complete_front(asio::error_code{}, std::move(item));
        } else {
            items_.push_back(std::move(item));
        }
    }
    void admit_pusher() {
        if (pushers_.empty() || closed_) return;
        items_.push_back(std::move(pushers_.front_payload()));
        pushers_.complete_front(asio::error_code{});
    }

    asio::any_io_executor executor_;
    std::size_t capacity_;
    std::deque<T> items_;
    WaiterList<T> pushers_;
    WaiterList<std::monostate, T> poppers_;
    bool closed_ = false;
};

}  // namespace taskmon::detail

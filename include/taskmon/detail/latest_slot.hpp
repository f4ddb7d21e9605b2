// taskmon — coroutine supervision for standalone Asio.
// SPDX-License-Identifier: MIT
//
// LatestSlot: a keep-latest slot (ROS KEEP_LAST 1, tokio `watch`, ZeroMQ CONFLATE). The producer overwrites;
// a consumer waits for a value newer than the one it last took and always gets the freshest.
#pragma once

#include <taskmon/detail/config.hpp>

#include <concepts>
#include <cstdint>
#include <optional>
#include <tuple>
#include <utility>

#include <asio/any_io_executor.hpp>
#include <asio/async_result.hpp>
#include <asio/error.hpp>

#include <taskmon/detail/waiter_list.hpp>

namespace taskmon::detail {

/// A published value with its sequence number (1, 2, 3 ... in publish order) and capture time.
template <typename T, typename TimePoint>
struct SlotSnapshot {
    T value{};
    std::uint64_t sequence = 0;
    TimePoint captured_at{};
};

/// Keep-latest slot. publish() never blocks and never queues: it replaces the held value.
///
/// Invariants: sequence() is the number of publishes; latest() holds the last published value; a waiter is
/// completed exactly once, with the freshest value at the time it is completed, or with an error.
/// Not thread-safe: use it on one strand.
template <std::default_initializable T, typename TimePoint>
class LatestSlot {
public:
    using Snapshot = SlotSnapshot<T, TimePoint>;

    explicit LatestSlot(asio::any_io_executor executor) : executor_(std::move(executor)) {}

    /// Replaces the held value; completes every waiter waiting past a smaller sequence with a copy of it.
    /// Returns the new sequence number. After close() it changes nothing and returns 0.
    std::uint64_t publish(T value, TimePoint captured_at) {
        if (closed_) return 0;
        latest_ = Snapshot{std::move(value), latest_ ? latest_->sequence + 1 : 1, captured_at};
        const std::uint64_t seq = latest_->sequence;
        waiters_.complete_if([seq](std::uint64_t after) { return seq > after; },
                             [this](std::uint64_t) { return std::make_tuple(*latest_); });
        return seq;
    }

    /// The sequence number of the held value; 0 before the first publish.
    std::uint64_t sequence() const noexcept { return latest_ ? latest_->sequence : 0; }
    const std::optional<Snapshot>& latest() const noexcept { return latest_; }

    /// The held value when its sequence is greater than `after`.
    std::optional<Snapshot> try_take_newer(std::uint64_t after) const {
        if (latest_ && latest_->sequence > after) return latest_;
        return std::nullopt;
    }

    /// Waits for a value with a sequence greater than `after`; completes with `void(error_code, Snapshot)`
    /// carrying the value held when the wait was completed (a consumer that needs the freshest value at the
    /// moment it resumes re-reads latest()).
    /// Completes (posted, never inline) at once when the held value is already newer. Cancellation of any
    /// type completes it with operation_aborted; after close() it completes with asio::error::eof.
    template <typename CompletionToken>
    auto async_wait_newer(std::uint64_t after, CompletionToken&& token) {
        return asio::async_initiate<CompletionToken, void(asio::error_code, Snapshot)>(
            [this](auto handler, std::uint64_t past) {
                if (closed_) {
                    waiters_.complete_now(std::move(handler), executor_, asio::error::eof, Snapshot{});
                } else if (latest_ && latest_->sequence > past) {
                    waiters_.complete_now(std::move(handler), executor_, asio::error_code{}, *latest_);
                } else {
                    waiters_.park(std::move(handler), past, executor_);
                }
            },
            token, after);
    }

    /// Completes every waiter with asio::error::eof; later waits fail the same way. The held value stays.
    void close() {
        closed_ = true;
        waiters_.complete_all(asio::error::eof);
    }
    bool closed() const noexcept { return closed_; }
    std::size_t waiting() const noexcept { return waiters_.size(); }

private:
    asio::any_io_executor executor_;
    std::optional<Snapshot> latest_;
    WaiterList<std::uint64_t, Snapshot> waiters_;
    bool closed_ = false;
};

}  // namespace taskmon::detail

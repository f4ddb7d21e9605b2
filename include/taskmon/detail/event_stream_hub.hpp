// taskmon — coroutine supervision for standalone Asio.
// SPDX-License-Identifier: MIT
//
// Internal: the queues between a monitor's listener (and HealthServer::publish) and the health server's /events
// streams.
#pragma once

#include <taskmon/monitor_event.hpp>

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

namespace taskmon::detail {

/// One event as the streams share it: the copy publish() made, and its JSON, formatted by the first writer that
/// needs it (on the server's strand, so once for all streams: ~1 us an event instead of ~1 us per stream).
struct StreamedEvent {
    MonitorEvent event;
    std::string json{};  ///< empty until formatted; used on the server's strand only
    /// False for an event of another type (a run's state, an operator action): `json` is set by publish_json(),
    /// `event` is empty, and the stream writes it without an `id:` (the ids are the monitor's sequences).
    bool monitor = true;
};

/// One log shared by every stream, filled by publish() (the monitor's listener, on any thread) and read by take()
/// (each stream's writer, on the server's strand) from the stream's own position. publish() copies the event once
/// and appends it: its cost does not depend on the number of streams (a queue per stream cost 2.6 us an event at
/// 200 streams, bench_live_view). It never waits for a stream: a stream more than `capacity` events behind is
/// overflowed (it receives nothing more, and is dropped by its writer), and the log keeps at most `capacity`
/// events. Only this class's own code runs under its mutex.
class EventStreamHub {
public:
    using EventPtr = std::shared_ptr<StreamedEvent>;

    explicit EventStreamHub(std::size_t capacity) : capacity_{capacity} {}

    /// Queues `event` for every stream. Returns true when the caller must wake the writers (the first event
    /// since the last wake_done()): one wake-up per burst, not one per event and stream.
    bool publish(const MonitorEvent& event) {
        if (streams_.load(std::memory_order_acquire) == 0) {
            // No stream to copy it for (a stream added meanwhile starts after last_sequence_ in its snapshot).
            std::lock_guard lock{mutex_};
            last_sequence_ = std::max(last_sequence_, event.sequence);
            if (positions_.empty()) return false;
        }
        auto shared = std::make_shared<StreamedEvent>(StreamedEvent{event});
        std::lock_guard lock{mutex_};
        last_sequence_ = std::max(last_sequence_, event.sequence);
        return push(std::move(shared));
    }

    /// Queues an event of another type, already formatted as one JSON object; as publish().
    bool publish_json(std::string json) {
        auto shared = std::make_shared<StreamedEvent>(StreamedEvent{MonitorEvent{}, std::move(json), false});
        std::lock_guard lock{mutex_};
        return push(std::move(shared));
    }

    /// Called by the wake-up publish() asked for, before it wakes the writers.
    void wake_done() {
        std::lock_guard lock{mutex_};
        wake_pending_ = false;
    }

    /// Opens stream `id` at the log's end; returns the sequence of the last event published so far.
    std::uint64_t add(std::uint64_t id) {
        std::lock_guard lock{mutex_};
        positions_[id] = end();
        streams_.store(positions_.size(), std::memory_order_release);
        return last_sequence_;
    }

    void remove(std::uint64_t id) {
        std::lock_guard lock{mutex_};
        positions_.erase(id);
        streams_.store(positions_.size(), std::memory_order_release);
        trim();
    }

    /// The events of stream `id` so far, oldest first, leaving out those up to `after` (already in its
    /// snapshot); `overflowed` tells that the stream fell more than capacity events behind.
    struct Taken {
        std::vector<EventPtr> events;
        bool overflowed = false;
    };
    Taken take(std::uint64_t id, std::uint64_t after = 0) {
        Taken out;
        std::lock_guard lock{mutex_};
        const auto it = positions_.find(id);
        if (it == positions_.end()) return out;
        if (behind(it->second)) {
            out.overflowed = true;
            return out;
        }
        for (auto i = it->second - base_; i < log_.size(); ++i) {
            const auto& e = log_[static_cast<std::size_t>(i)];
            if (!e->monitor || e->event.sequence > after) out.events.push_back(e);
        }
        it->second = end();
        trim();
        return out;
    }

    [[nodiscard]] bool overflowed(std::uint64_t id) const {
        std::lock_guard lock{mutex_};
        const auto it = positions_.find(id);
        return it != positions_.end() && behind(it->second);
    }

    [[nodiscard]] std::uint64_t last_sequence() const {
        std::lock_guard lock{mutex_};
        return last_sequence_;
    }

private:
    /// The absolute index one past the log's last event. Under mutex_, as every function below.
    [[nodiscard]] std::uint64_t end() const noexcept { return base_ + log_.size(); }

    /// A stream at `position` has missed events: more than capacity_ were published since it last read.
    [[nodiscard]] bool behind(std::uint64_t position) const noexcept { return end() - position > capacity_; }

    bool push(EventPtr shared) {
        if (positions_.empty()) return false;  // nobody to keep it for
        log_.push_back(std::move(shared));
        // Beyond capacity_ events, the oldest are needed only by streams that are overflowed already.
        while (log_.size() > capacity_) {
            log_.pop_front();
            ++base_;
        }
        if (wake_pending_) return false;
        wake_pending_ = true;
        return true;
    }

    /// Drops the events every stream has read (an overflowed stream needs none).
    void trim() {
        std::uint64_t needed = end();
        for (const auto& [id, position] : positions_) {
            if (!behind(position)) needed = std::min(needed, position);
        }
        while (base_ < needed) {
            log_.pop_front();
            ++base_;
        }
    }

    const std::size_t capacity_;
    mutable std::mutex mutex_;
    std::deque<EventPtr> log_;                          ///< the events from absolute index base_ on
    std::uint64_t base_ = 0;                            ///< the absolute index of log_.front()
    std::map<std::uint64_t, std::uint64_t> positions_;  ///< stream id → the absolute index of its next event
    std::atomic<std::size_t> streams_{0};               ///< positions_.size(), read without the lock by publish()
    std::uint64_t last_sequence_ = 0;
    bool wake_pending_ = false;
};

}  // namespace taskmon::detail

// taskmon — coroutine supervision for standalone Asio.
// SPDX-License-Identifier: MIT
//
// Internal: the queues between a monitor's listener (and HealthServer::publish) and the health server's /events
// streams.
#pragma once

#include <taskmon/monitor_event.hpp>

#include <algorithm>
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

/// One bounded queue per stream, filled by publish() (the monitor's listener, on any thread) and drained by
/// take() (the stream's writer, on the server's strand). publish() copies the event once and shares it among the
/// queues; it never waits for a stream: a full queue marks its stream overflowed (it stops receiving, and is
/// dropped by its writer) instead. Only this class's own code runs under its mutex.
class EventStreamHub {
public:
    using EventPtr = std::shared_ptr<StreamedEvent>;

    explicit EventStreamHub(std::size_t capacity) : capacity_{capacity} {}

    /// Queues `event` for every stream. Returns true when the caller must wake the writers (the first event
    /// since the last wake_done()): one wake-up per burst, not one per event and stream.
    bool publish(const MonitorEvent& event) {
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

    /// Opens the queue of stream `id`; returns the sequence of the last event published so far.
    std::uint64_t add(std::uint64_t id) {
        std::lock_guard lock{mutex_};
        queues_[id];
        return last_sequence_;
    }

    void remove(std::uint64_t id) {
        std::lock_guard lock{mutex_};
        queues_.erase(id);
    }

    /// The events of stream `id` so far, oldest first, leaving out those up to `after` (already in its
    /// snapshot); `overflowed` tells that the stream fell capacity events behind.
    struct Taken {
        std::vector<EventPtr> events;
        bool overflowed = false;
    };
    Taken take(std::uint64_t id, std::uint64_t after = 0) {
        Taken out;
        std::lock_guard lock{mutex_};
        const auto it = queues_.find(id);
        if (it == queues_.end()) return out;
        out.overflowed = it->second.overflowed;
        for (auto& e : it->second.events) {
            if (!e->monitor || e->event.sequence > after) out.events.push_back(std::move(e));
        }
        it->second.events.clear();
        return out;
    }

    [[nodiscard]] bool overflowed(std::uint64_t id) const {
        std::lock_guard lock{mutex_};
        const auto it = queues_.find(id);
        return it != queues_.end() && it->second.overflowed;
    }

    [[nodiscard]] std::uint64_t last_sequence() const {
        std::lock_guard lock{mutex_};
        return last_sequence_;
    }

private:
    /// Under mutex_.
    bool push(EventPtr shared) {
        for (auto& [id, queue] : queues_) {
            if (queue.overflowed) continue;
            if (queue.events.size() >= capacity_) {
                queue.overflowed = true;
                queue.events.clear();  // it will be dropped: free the memory now
                continue;
            }
            queue.events.push_back(shared);
        }
        if (wake_pending_ || queues_.empty()) return false;
        wake_pending_ = true;
        return true;
    }

    struct Queue {
        std::deque<EventPtr> events;
        bool overflowed = false;
    };

    const std::size_t capacity_;
    mutable std::mutex mutex_;
    std::map<std::uint64_t, Queue> queues_;
    std::uint64_t last_sequence_ = 0;
    bool wake_pending_ = false;
};

}  // namespace taskmon::detail

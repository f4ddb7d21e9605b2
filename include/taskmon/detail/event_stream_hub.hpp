// taskmon — coroutine supervision for standalone Asio.
// SPDX-License-Identifier: MIT
//
// Internal: the queues between a monitor's listener (and HealthServer::publish) and the health server's /events
// streams, the events they keep for a reconnecting client (Last-Event-ID), and the format of the streams' ids.
#pragma once

#include <taskmon/monitor_event.hpp>
#include <taskmon/ops/monitor_json.hpp>

#include <fmt/format.h>

#include <algorithm>
#include <atomic>
#include <charconv>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace taskmon::detail {

/// One event as the streams share it: the copy publish() made, and its JSON, formatted by the first writer that
/// needs it (on the server's strand, so once for all streams: ~1 us an event instead of ~1 us per stream).
struct StreamedEvent {
    MonitorEvent event;
    std::string json{};  ///< empty until formatted; used on the server's strand only
    /// False for an event of another type (a run's state, an operator action): `json` is set by publish_json()
    /// and `event` is empty.
    bool monitor = true;
    /// The event's absolute index in the hub's log (every event published while the log keeps events counts);
    /// its stream id is `<epoch>-<index + 1>`. Set under the hub's mutex by push().
    std::uint64_t index = 0;
};

/// The epoch of a server's stream ids: the wall clock in nanoseconds when the server was constructed, in hex,
/// and greater than any epoch issued before in this process. Ids from an earlier process (whose sequences and
/// log indexes started at 1 again) or from another server then never match: a restart takes more than a
/// nanosecond, and two servers of one process get distinct epochs.
inline std::string new_stream_epoch() {
    static std::atomic<std::uint64_t> last{0};
    const auto now = static_cast<std::uint64_t>(
        std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::system_clock::now().time_since_epoch())
            .count());
    auto previous = last.load();
    std::uint64_t epoch = 0;
    do {
        epoch = std::max(now, previous + 1);
    } while (!last.compare_exchange_weak(previous, epoch));
    return fmt::format("{:x}", epoch);
}

/// The log position a `Last-Event-ID` of `epoch` names: the number after `<epoch>-`, decimal, at most 20 digits
/// and within 64 bits. Nothing for any other value (an id of another epoch, a malformed one, two joined by ", ").
inline std::optional<std::uint64_t> parse_stream_id(std::string_view id, std::string_view epoch) {
    if (id.size() <= epoch.size() + 1 || !id.starts_with(epoch) || id[epoch.size()] != '-') return std::nullopt;
    const auto digits = id.substr(epoch.size() + 1);
    if (digits.size() > 20) return std::nullopt;
    std::uint64_t position = 0;
    const auto [end, error] = std::from_chars(digits.data(), digits.data() + digits.size(), position);
    if (error != std::errc{} || end != digits.data() + digits.size()) return std::nullopt;
    return position;
}

/// One log shared by every stream, filled by publish() (the monitor's listener, on any thread) and read by take()
/// (each stream's writer, on the server's strand) from the stream's own position. publish() copies the event once
/// and appends it: its cost does not depend on the number of streams (a queue per stream cost 2.6 us an event at
/// 200 streams, bench_live_view). It never waits for a stream: a stream more than `capacity` events behind is
/// overflowed (it receives nothing more, and is dropped by its writer). With `retain` > 0 the log also keeps
/// the last `retain` events with no stream open, so that a client reconnecting with the id of the last event it
/// read resumes after it (resume()); it then holds at most max(capacity, retain) events. Only this class's own
/// code runs under its mutex.
class EventStreamHub {
public:
    using EventPtr = std::shared_ptr<StreamedEvent>;

    explicit EventStreamHub(std::size_t capacity, std::size_t retain = 0)
        : capacity_{capacity}, retain_{retain}, epoch_{new_stream_epoch()} {}

    /// The epoch of this hub's stream ids (`<epoch>-<position>`).
    [[nodiscard]] const std::string& epoch() const noexcept { return epoch_; }

    /// Queues `event` for every stream. Returns true when the caller must wake the writers (the first event
    /// since the last wake_done()): one wake-up per burst, not one per event and stream.
    bool publish(const MonitorEvent& event) {
        if (retain_ == 0 && streams_.load(std::memory_order_acquire) == 0) {
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

    /// Where add() opened a stream: the sequence of the last event published so far (what its snapshot must
    /// reflect), and the log position, which the snapshot's id names.
    struct Opened {
        std::uint64_t last_sequence = 0;
        std::uint64_t position = 0;
    };

    /// Opens stream `id` at the log's end.
    Opened add(std::uint64_t id) {
        std::lock_guard lock{mutex_};
        positions_[id] = end();
        streams_.store(positions_.size(), std::memory_order_release);
        return {last_sequence_, end()};
    }

    /// Opens stream `id` after the event a client's `Last-Event-ID` names (`<epoch>-<position>`: it read every
    /// event before that position), so that its first take() returns the events it missed, in the order the log
    /// has them. Opens nothing, and tells why, unless the hub retains events, the id is of this hub's epoch, and
    /// every event from the position on is still in the log and within min(retain, capacity) of its end (further
    /// back, the stream would start overflowed).
    enum class Resume { resumed, disabled, foreign, not_retained };
    Resume resume(std::uint64_t id, std::string_view last_event_id) {
        if (retain_ == 0) return Resume::disabled;
        const auto position = parse_stream_id(last_event_id, epoch_);
        if (!position) return Resume::foreign;
        std::lock_guard lock{mutex_};
        if (*position < base_ || *position > end() || end() - *position > std::min(retain_, capacity_)) {
            return Resume::not_retained;
        }
        positions_[id] = *position;
        streams_.store(positions_.size(), std::memory_order_release);
        return Resume::resumed;
    }

    /// Appends `events` as a stream writes them: `id: <epoch>-<index + 1>` (every type: a client's Last-Event-ID
    /// then names exactly what it read) and one `data:` line. A MonitorEvent's JSON is formatted by the first
    /// stream that writes it; on the server's strand only.
    void append_events(std::string& text, const std::vector<EventPtr>& events) const {
        for (const auto& e : events) {
            if (e->monitor && e->json.empty()) e->json = monitor_event_json(e->event);
            fmt::format_to(std::back_inserter(text), "id: {}-{}\ndata: {}\n\n", epoch_, e->index + 1, e->json);
        }
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
        if (positions_.empty() && retain_ == 0) return false;  // nobody to keep it for
        shared->index = end();
        log_.push_back(std::move(shared));
        // Beyond capacity_ events, the oldest are needed only by streams that are overflowed already, and beyond
        // retain_ by no reconnecting client.
        const auto keep = positions_.empty() ? retain_ : std::max(capacity_, retain_);
        while (log_.size() > keep) {
            log_.pop_front();
            ++base_;
        }
        if (positions_.empty()) return false;  // retained only: no writer to wake
        if (wake_pending_) return false;
        wake_pending_ = true;
        return true;
    }

    /// Drops the events every stream has read (an overflowed stream needs none) but the last retain_.
    void trim() {
        std::uint64_t needed = end() - std::min<std::uint64_t>(retain_, log_.size());
        for (const auto& [id, position] : positions_) {
            if (!behind(position)) needed = std::min(needed, position);
        }
        while (base_ < needed) {
            log_.pop_front();
            ++base_;
        }
    }

    const std::size_t capacity_;
    const std::size_t retain_;  ///< events kept for resume() with no stream open; 0: none
    const std::string epoch_;
    mutable std::mutex mutex_;
    std::deque<EventPtr> log_;                          ///< the events from absolute index base_ on
    std::uint64_t base_ = 0;                            ///< the absolute index of log_.front()
    std::map<std::uint64_t, std::uint64_t> positions_;  ///< stream id → the absolute index of its next event
    std::atomic<std::size_t> streams_{0};               ///< positions_.size(), read without the lock by publish()
    std::uint64_t last_sequence_ = 0;
    bool wake_pending_ = false;
};

}  // namespace taskmon::detail

// taskmon — coroutine supervision for standalone Asio.
// SPDX-License-Identifier: MIT
//
// Internal: the listeners of an event stream (BasicTaskMonitor::subscribe) and their delivery.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <span>
#include <utility>
#include <vector>

namespace taskmon::detail {

/// What an EventSubscription refers back to. The subscription holds it weakly: it may outlive the stream.
class SubscriptionTarget {
public:
    /// Removes listener `id` (nothing if it is not subscribed): no call of it starts after this returns. Called
    /// outside any listener, it also waits until no call of it is running; called from inside a listener (on
    /// this thread) it does not wait.
    virtual void unsubscribe(std::uint64_t id) noexcept = 0;

    /// Whether listener `id` is still subscribed.
    [[nodiscard]] virtual bool contains(std::uint64_t id) const noexcept = 0;

    SubscriptionTarget(const SubscriptionTarget&) = delete;
    SubscriptionTarget& operator=(const SubscriptionTarget&) = delete;

protected:
    SubscriptionTarget() = default;
    ~SubscriptionTarget() = default;
};

/// Number of listener calls in progress on this thread (nested when a listener's call publishes on another
/// stream).
inline int& listener_calls_on_this_thread() noexcept {
    thread_local int depth = 0;
    return depth;
}

/// A delivery in progress on this thread: events a listener causes on the same stream are queued in it.
struct DeliveryFrameBase {
    const void* registry;
    DeliveryFrameBase* outer;
};

inline DeliveryFrameBase*& deliveries_on_this_thread() noexcept {
    thread_local DeliveryFrameBase* innermost = nullptr;
    return innermost;
}

/// The listeners of one event stream.
///
/// Invariants: `entries_` (mutex_) is an immutable list replaced on every change (copy on write), so a
/// publication delivers to a snapshot without holding mutex_; `any_` is false whenever the list is empty, so
/// a publication with no listeners costs one atomic load. An entry's `removed` flag (its own mutex) is what
/// stops calls: it is set before unsubscribe() waits, and every call checks it, so a publication holding an
/// older snapshot never calls a removed listener.
template <typename Event>
class ListenerRegistry final : public SubscriptionTarget {
public:
    using Listener = std::function<void(const Event&)>;

    ListenerRegistry() = default;
    ~ListenerRegistry() = default;

    /// Adds a listener and returns its id (never 0). Throws only what allocation throws.
    std::uint64_t add(Listener listener) {
        auto entry = std::make_shared<Entry>(std::move(listener));
        std::lock_guard lock{mutex_};
        auto next = std::make_shared<List>();
        if (entries_) {
            next->reserve(entries_->size() + 1);
            for (const auto& e : *entries_) {
                if (!e->is_removed()) {
                    next->push_back(e);  // also drops entries a failed compaction left behind
                }
            }
        }
        entry->id = ++next_id_;
        next->push_back(entry);
        entries_ = std::move(next);
        any_.store(true, std::memory_order_release);
        return entry->id;
    }

    void unsubscribe(std::uint64_t id) noexcept override {
        std::shared_ptr<Entry> entry;
        {
            std::lock_guard lock{mutex_};
            if (!entries_) {
                return;
            }
            for (const auto& e : *entries_) {
                if (e->id == id) {
                    entry = e;
                }
            }
            if (!entry) {
                return;
            }
            if (entries_->size() == 1) {
                entries_.reset();
                any_.store(false, std::memory_order_release);
            } else {
                try {
                    auto next = std::make_shared<List>();
                    next->reserve(entries_->size() - 1);
                    for (const auto& e : *entries_) {
                        if (e != entry) {
                            next->push_back(e);
                        }
                    }
                    entries_ = std::move(next);
                } catch (...) {  // NOLINT(bugprone-empty-catch): out of memory; retire() below still stops it
                }
            }
        }
        entry->retire();
    }

    [[nodiscard]] bool contains(std::uint64_t id) const noexcept override {
        std::lock_guard lock{mutex_};
        if (!entries_) {
            return false;
        }
        for (const auto& e : *entries_) {
            if (e->id == id) {
                return !e->is_removed();
            }
        }
        return false;
    }

    /// Removes every listener, waiting as unsubscribe() does.
    void clear() noexcept {
        std::shared_ptr<const List> removed;
        {
            std::lock_guard lock{mutex_};
            removed = std::exchange(entries_, nullptr);
            any_.store(false, std::memory_order_release);
        }
        if (removed) {
            for (const auto& e : *removed) {
                e->retire();
            }
        }
    }

    [[nodiscard]] bool empty() const noexcept { return !any_.load(std::memory_order_acquire); }

    /// Calls every listener with every event, in order, on the calling thread, outside any lock.
    /// `on_error(const Event&, std::exception_ptr) noexcept` is called for each exception a listener throws.
    /// Events published by a listener of this registry (on this thread) are queued and delivered after the
    /// current ones, so every listener sees one thread's events in publication order and calls never recurse.
    template <typename OnError>
    void publish(std::span<const Event> events, OnError&& on_error) noexcept {
        if (events.empty() || !any_.load(std::memory_order_acquire)) {
            return;
        }
        for (auto* frame = deliveries_on_this_thread(); frame != nullptr; frame = frame->outer) {
            if (frame->registry == this) {
                auto& pending = static_cast<DeliveryFrame&>(*frame).pending;
                try {
                    pending.insert(pending.end(), events.begin(), events.end());
                    return;
                } catch (...) {  // out of memory: deliver them now, out of order, rather than drop them
                    break;
                }
            }
        }
        DeliveryFrame frame{this};
        deliver(events, on_error);
        while (!frame.pending.empty()) {
            std::vector<Event> batch;
            batch.swap(frame.pending);
            deliver(batch, on_error);
        }
    }

private:
    struct Entry {
        explicit Entry(Listener l) : listener{std::move(l)} {}

        /// Starts a call unless the listener was removed.
        bool enter() {
            std::lock_guard lock{mutex};
            if (removed) {
                return false;
            }
            ++running;
            return true;
        }

        void leave() noexcept {
            std::lock_guard lock{mutex};
            --running;
            if (removed) {
                idle.notify_all();
            }
        }

        /// Stops further calls. Outside any listener call, then waits until no call of it is running. Inside one
        /// (on this thread) it does not wait: the call it would wait for may be waiting for this one (two
        /// listeners removing each other), and its own call is further up this very stack.
        void retire() noexcept {
            std::unique_lock lock{mutex};
            removed = true;
            if (listener_calls_on_this_thread() == 0) {
                idle.wait(lock, [&] { return running == 0; });
            }
        }

        bool is_removed() noexcept {
            std::lock_guard lock{mutex};
            return removed;
        }

        std::uint64_t id = 0;  // set once under the registry's mutex_, before the entry is published
        Listener listener;
        std::mutex mutex;
        std::condition_variable idle;
        int running = 0;       // calls in progress, on any thread (mutex)
        bool removed = false;  // (mutex)
    };

    using List = std::vector<std::shared_ptr<Entry>>;

    struct DeliveryFrame : DeliveryFrameBase {
        explicit DeliveryFrame(const ListenerRegistry* registry)
            : DeliveryFrameBase{registry, deliveries_on_this_thread()} {
            deliveries_on_this_thread() = this;
        }
        ~DeliveryFrame() { deliveries_on_this_thread() = outer; }
        DeliveryFrame(const DeliveryFrame&) = delete;
        DeliveryFrame& operator=(const DeliveryFrame&) = delete;

        std::vector<Event> pending;
    };

    template <typename OnError>
    void deliver(std::span<const Event> events, OnError& on_error) noexcept {
        std::shared_ptr<const List> snapshot;
        {
            std::lock_guard lock{mutex_};
            snapshot = entries_;
        }
        if (!snapshot) {
            return;
        }
        for (const auto& event : events) {
            for (const auto& entry : *snapshot) {
                call(*entry, event, on_error);
            }
        }
    }

    template <typename OnError>
    static void call(Entry& entry, const Event& event, OnError& on_error) noexcept {
        if (!entry.enter()) {
            return;
        }
        ++listener_calls_on_this_thread();
        try {
            entry.listener(event);
        } catch (...) {
            on_error(event, std::current_exception());
        }
        --listener_calls_on_this_thread();
        entry.leave();
    }

    mutable std::mutex mutex_;
    std::shared_ptr<const List> entries_;  // mutex_; null when empty
    std::uint64_t next_id_ = 0;            // mutex_
    std::atomic<bool> any_{false};
};

}  // namespace taskmon::detail

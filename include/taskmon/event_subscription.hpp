// taskmon — coroutine supervision for standalone Asio.
// SPDX-License-Identifier: MIT
//
// EventSubscription: the move-only handle of a listener subscribed to an event stream
// (BasicTaskMonitor::subscribe). Destroying it, or calling unsubscribe(), removes the listener.
//
//   taskmon::EventSubscription subscription = monitor.subscribe(on_event);
//   ...
//   subscription.unsubscribe();   // or let it go out of scope
#pragma once

#include <taskmon/detail/listener_registry.hpp>

#include <cstdint>
#include <memory>
#include <utility>

namespace taskmon {

template <typename Clock>
class BasicTaskMonitor;

/// Owns one subscription. Holds the stream only weakly: it may outlive the monitor (unsubscribing is then a
/// no-op). A default-constructed or moved-from handle owns nothing.
///
/// After unsubscribe() (or the destructor) returns, the listener is never called again. Called outside any
/// listener, it also waits until a call of the listener running on another thread has returned, so what the
/// listener captured may be destroyed right after. Called from inside a listener (any taskmon listener, on the
/// calling thread) it does not wait for calls on other threads, since those could be waiting for this one.
///
/// Thread safety: unsubscribing is safe concurrently with publications and with other subscriptions; one handle
/// object itself must not be used from two threads at once (as with any standard type).
class [[nodiscard]] EventSubscription {
public:
    EventSubscription() noexcept = default;

    EventSubscription(EventSubscription&& other) noexcept
        : target_{std::move(other.target_)}, id_{std::exchange(other.id_, 0)} {
        other.target_.reset();
    }

    /// Unsubscribes what this handle owned, then takes over `other`'s subscription.
    EventSubscription& operator=(EventSubscription&& other) noexcept {
        if (this != &other) {
            unsubscribe();
            target_ = std::move(other.target_);
            other.target_.reset();
            id_ = std::exchange(other.id_, 0);
        }
        return *this;
    }

    EventSubscription(const EventSubscription&) = delete;
    EventSubscription& operator=(const EventSubscription&) = delete;

    ~EventSubscription() { unsubscribe(); }

    /// Removes the listener (idempotent; a no-op if the stream is gone). See the class comment for when it
    /// waits.
    void unsubscribe() noexcept {
        const auto id = std::exchange(id_, 0);
        auto target = target_.lock();
        target_.reset();
        if (target && id != 0) {
            target->unsubscribe(id);
        }
    }

    /// True from subscribe() until unsubscribe(), a move from this handle, or the end of the stream (the
    /// monitor's destruction).
    [[nodiscard]] bool subscribed() const noexcept {
        const auto target = target_.lock();
        return target && id_ != 0 && target->contains(id_);
    }

private:
    template <typename Clock>
    friend class BasicTaskMonitor;

    EventSubscription(std::weak_ptr<detail::SubscriptionTarget> target, std::uint64_t id) noexcept
        : target_{std::move(target)}, id_{id} {}

    std::weak_ptr<detail::SubscriptionTarget> target_;
    std::uint64_t id_ = 0;
};

}  // namespace taskmon

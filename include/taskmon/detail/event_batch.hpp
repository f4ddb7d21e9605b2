// taskmon — coroutine supervision for standalone Asio.
// SPDX-License-Identifier: MIT
//
// EventBatch (internal): the events one change of the monitor queues under its lock, to publish after it.
#pragma once

#include <taskmon/monitor_event.hpp>

#include <cstddef>
#include <new>
#include <span>
#include <type_traits>
#include <utility>
#include <vector>

namespace taskmon::detail {

/// The events of one change, in order. The first `inline_capacity` are kept in place: the common changes (a
/// spawn's `started`; an exit's `completed` and `removed`; a failure's `failed` and `restart_scheduled`) then
/// queue and publish without a heap allocation, where a vector allocated at the first event and again, moving the
/// first, at the second (340 of the 11,340 instructions a spawn() of a task that returns at once cost, measured
/// with scripts/instructions). Beyond that they move to a vector. Contiguous at all times, for publish()'s span.
class EventBatch {
public:
    static constexpr std::size_t inline_capacity = 4;

    EventBatch() noexcept {}  // NOLINT(modernize-use-equals-default): storage_ stays uninitialised
    EventBatch(const EventBatch&) = delete;
    EventBatch& operator=(const EventBatch&) = delete;
    ~EventBatch() { destroy_inline(); }

    void push_back(MonitorEvent e) {
        if (heap_.empty() && inline_size_ < inline_capacity) {
            ::new (static_cast<void*>(inline_data() + inline_size_)) MonitorEvent(std::move(e));
            ++inline_size_;
            return;
        }
        if (heap_.empty()) {
            heap_.reserve(2 * inline_capacity);  // the only step that may throw, before anything moved
            for (std::size_t i = 0; i < inline_size_; ++i) {
                heap_.push_back(std::move(inline_data()[i]));
            }
            destroy_inline();
        }
        heap_.push_back(std::move(e));
    }

    [[nodiscard]] std::size_t size() const noexcept { return heap_.empty() ? inline_size_ : heap_.size(); }
    [[nodiscard]] bool empty() const noexcept { return size() == 0; }

    [[nodiscard]] MonitorEvent* begin() noexcept { return heap_.empty() ? inline_data() : heap_.data(); }
    [[nodiscard]] MonitorEvent* end() noexcept { return begin() + size(); }
    [[nodiscard]] const MonitorEvent* begin() const noexcept { return heap_.empty() ? inline_data() : heap_.data(); }
    [[nodiscard]] const MonitorEvent* end() const noexcept { return begin() + size(); }
    [[nodiscard]] MonitorEvent& front() noexcept { return *begin(); }
    [[nodiscard]] MonitorEvent& back() noexcept { return *(end() - 1); }

    void clear() noexcept {
        destroy_inline();
        heap_.clear();
    }

    operator std::span<const MonitorEvent>() const noexcept { return {begin(), size()}; }  // NOLINT: implicit

private:
    static_assert(std::is_nothrow_move_constructible_v<MonitorEvent>);

    // Laundered only where an event lives: std::launder requires an object at the address.
    MonitorEvent* inline_data() noexcept {
        auto* first = reinterpret_cast<MonitorEvent*>(storage_);
        return inline_size_ == 0 ? first : std::launder(first);
    }
    const MonitorEvent* inline_data() const noexcept {
        const auto* first = reinterpret_cast<const MonitorEvent*>(storage_);
        return inline_size_ == 0 ? first : std::launder(first);
    }

    void destroy_inline() noexcept {
        for (std::size_t i = 0; i < inline_size_; ++i) {
            inline_data()[i].~MonitorEvent();
        }
        inline_size_ = 0;
    }

    alignas(MonitorEvent) std::byte storage_[inline_capacity * sizeof(MonitorEvent)];
    std::size_t inline_size_ = 0;
    std::vector<MonitorEvent> heap_;  // empty until the batch outgrows storage_, then all of it
};

}  // namespace taskmon::detail

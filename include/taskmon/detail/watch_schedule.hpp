// taskmon — coroutine supervision for standalone Asio.
// SPDX-License-Identifier: MIT
//
// The next liveness deadline of every watched component, for the monitor's one watch timer (internal).
#pragma once

#include <taskmon/detail/config.hpp>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <utility>
#include <vector>

namespace taskmon::detail {

/// The deadlines of many items, earliest first, so that one timer can serve them all: an indexed binary
/// min-heap whose items know their own position. Each item carries a `std::uint32_t` slot that `SlotOf` returns
/// by reference (0: not scheduled; i + 1: at heap_[i]), so moving or removing an item's deadline is O(log n)
/// and leaves no stale entry behind.
///
/// One timer for all, not one per component: a timer and its pending wait cost a watched component 264 bytes
/// (the timer object, 120, and Asio's wait operation, 144); an entry here costs 24 (a time and the item).
///
/// Invariants: heap_[i].at >= heap_[(i - 1) / 2].at for every i > 0; slot_of(heap_[i].item) == i + 1; an item
/// not in the heap has slot 0, so an item is in the heap at most once. Not thread-safe: the monitor uses it on
/// its strand only.
template <typename TimePoint, typename Item, typename SlotOf>
class WatchSchedule {
public:
    explicit WatchSchedule(SlotOf slot_of = {}) : slot_of_{std::move(slot_of)} {}

    /// Sets `item`'s deadline to `at`: adds it, or moves the deadline it has. Throws std::length_error past
    /// 2^32 - 1 items (the slot's range) and changes nothing then.
    void arm(const Item& item, TimePoint at) {
        auto& slot = slot_of_(item);
        if (slot == 0) {
            if (heap_.size() >= max_items) {
                throw std::length_error("WatchSchedule: more than 2^32 - 1 deadlines");
            }
            heap_.push_back({at, item});
            slot = static_cast<std::uint32_t>(heap_.size());
            sift_up(heap_.size() - 1);
            return;
        }
        const std::size_t i = slot - 1;
        const bool earlier = at < heap_[i].at;
        heap_[i].at = at;
        if (earlier) {
            sift_up(i);
        } else {
            sift_down(i);
        }
    }

    /// Removes `item`'s deadline; nothing if it has none.
    void disarm(const Item& item) noexcept {
        auto& slot = slot_of_(item);
        if (slot == 0) {
            return;
        }
        const std::size_t i = slot - 1;
        slot = 0;
        const std::size_t last = heap_.size() - 1;
        if (i != last) {
            heap_[i] = std::move(heap_[last]);
            slot_of_(heap_[i].item) = static_cast<std::uint32_t>(i + 1);
            heap_.pop_back();
            // The moved entry may belong above or below its new place, never both.
            if (i > 0 && heap_[i].at < heap_[(i - 1) / 2].at) {
                sift_up(i);
            } else {
                sift_down(i);
            }
        } else {
            heap_.pop_back();
        }
    }

    /// Whether `item` has a deadline here.
    [[nodiscard]] bool armed(const Item& item) const noexcept { return slot_of_(item) != 0; }

    /// The earliest deadline; none when nothing is scheduled.
    [[nodiscard]] std::optional<TimePoint> next() const noexcept {
        return heap_.empty() ? std::nullopt : std::optional{heap_.front().at};
    }

    /// Removes and returns the item with the earliest deadline if that deadline is at or before `now`.
    [[nodiscard]] std::optional<Item> pop_due(TimePoint now) {
        if (heap_.empty() || now < heap_.front().at) {
            return std::nullopt;
        }
        Item item = heap_.front().item;
        disarm(item);
        return item;
    }

    /// Removes every deadline and gives the storage back.
    void clear() noexcept {
        for (auto& e : heap_) {
            slot_of_(e.item) = 0;
        }
        std::vector<Entry>{}.swap(heap_);
    }

    [[nodiscard]] std::size_t size() const noexcept { return heap_.size(); }
    [[nodiscard]] bool empty() const noexcept { return heap_.empty(); }

private:
    static constexpr std::size_t max_items = UINT32_MAX;

    struct Entry {
        TimePoint at;
        Item item;
    };

    void place(std::size_t i, Entry e) noexcept {
        slot_of_(e.item) = static_cast<std::uint32_t>(i + 1);
        heap_[i] = std::move(e);
    }

    void sift_up(std::size_t i) noexcept {
        Entry e = std::move(heap_[i]);
        while (i > 0) {
            const std::size_t parent = (i - 1) / 2;
            if (!(e.at < heap_[parent].at)) {
                break;
            }
            place(i, std::move(heap_[parent]));
            i = parent;
        }
        place(i, std::move(e));
    }

    void sift_down(std::size_t i) noexcept {
        Entry e = std::move(heap_[i]);
        const std::size_t n = heap_.size();
        for (;;) {
            std::size_t child = 2 * i + 1;
            if (child >= n) {
                break;
            }
            if (child + 1 < n && heap_[child + 1].at < heap_[child].at) {
                ++child;
            }
            if (!(heap_[child].at < e.at)) {
                break;
            }
            place(i, std::move(heap_[child]));
            i = child;
        }
        place(i, std::move(e));
    }

    SlotOf slot_of_;
    std::vector<Entry> heap_;
};

}  // namespace taskmon::detail

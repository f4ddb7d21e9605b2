// WatchSchedule: the deadlines of many items, earliest first, each item knowing its place; checked against a
// plain sorted model under a seeded random sequence of operations.
#include <taskmon/detail/watch_schedule.hpp>

#include "taskmon_catch.hpp"

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <set>
#include <utility>
#include <vector>

namespace {

struct Item {
    int id = 0;
    std::uint32_t slot = 0;
};
using ItemPtr = std::shared_ptr<Item>;

struct SlotOf {
    std::uint32_t& operator()(const ItemPtr& i) const noexcept { return i->slot; }
};

using Schedule = taskmon::detail::WatchSchedule<long, ItemPtr, SlotOf>;

std::vector<ItemPtr> make_items(int n) {
    std::vector<ItemPtr> items;
    for (int i = 0; i < n; ++i) {
        items.push_back(std::make_shared<Item>(Item{i}));
    }
    return items;
}

/// Pops every due item at `now`: (deadline order is checked by the caller) their ids.
std::vector<int> pop_all(Schedule& s, long now) {
    std::vector<int> ids;
    while (auto item = s.pop_due(now)) {
        CHECK((*item)->slot == 0);
        ids.push_back((*item)->id);
    }
    return ids;
}

}  // namespace

TEST_CASE("WatchSchedule: items come out earliest first, and only once due", "[watch_schedule]") {
    Schedule s;
    auto items = make_items(4);
    CHECK(s.empty());
    CHECK_FALSE(s.next());
    s.arm(items[0], 30);
    s.arm(items[1], 10);
    s.arm(items[2], 20);
    s.arm(items[3], 40);
    CHECK(s.size() == 4);
    CHECK(s.next() == std::optional<long>{10});
    CHECK(s.armed(items[2]));
    CHECK(pop_all(s, 9).empty());
    CHECK(pop_all(s, 25) == std::vector<int>{1, 2});
    CHECK_FALSE(s.armed(items[1]));
    CHECK(s.next() == std::optional<long>{30});
    CHECK(pop_all(s, 100) == std::vector<int>{0, 3});
    CHECK(s.empty());
    CHECK_FALSE(s.next());
}

TEST_CASE("WatchSchedule: arming again moves the deadline; an item is never in it twice", "[watch_schedule]") {
    Schedule s;
    auto items = make_items(3);
    s.arm(items[0], 10);
    s.arm(items[1], 20);
    s.arm(items[2], 30);
    s.arm(items[0], 35);  // later
    CHECK(s.size() == 3);
    CHECK(s.next() == std::optional<long>{20});
    s.arm(items[2], 5);  // earlier
    CHECK(s.next() == std::optional<long>{5});
    CHECK(pop_all(s, 100) == std::vector<int>{2, 1, 0});
}

TEST_CASE("WatchSchedule: disarming removes one item and keeps the order of the others", "[watch_schedule]") {
    Schedule s;
    auto items = make_items(5);
    for (int i = 0; i < 5; ++i) {
        s.arm(items[static_cast<std::size_t>(i)], 10 * (5 - i));  // 50, 40, 30, 20, 10
    }
    s.disarm(items[4]);  // the earliest
    s.disarm(items[1]);  // one inside
    s.disarm(items[1]);  // again: nothing
    CHECK(items[4]->slot == 0);
    CHECK(s.size() == 3);
    CHECK(pop_all(s, 100) == std::vector<int>{3, 2, 0});
}

TEST_CASE("WatchSchedule: clear() forgets every deadline and every item's place", "[watch_schedule]") {
    Schedule s;
    auto items = make_items(3);
    for (const auto& i : items) {
        s.arm(i, 1);
    }
    s.clear();
    CHECK(s.empty());
    for (const auto& i : items) {
        CHECK_FALSE(s.armed(i));
    }
    s.arm(items[1], 7);  // usable again
    CHECK(pop_all(s, 7) == std::vector<int>{1});
}

TEST_CASE("WatchSchedule: a random sequence of arm, disarm and pop agrees with a sorted model", "[watch_schedule]") {
    for (const std::uint32_t seed : {1U, 2U, 3U}) {
        CAPTURE(seed);
        std::mt19937 random{seed};
        Schedule s;
        auto items = make_items(64);
        std::map<int, long> model;  // id -> deadline
        long now = 0;
        for (int step = 0; step < 2000; ++step) {
            const auto id = static_cast<int>(random() % items.size());
            const auto& item = items[static_cast<std::size_t>(id)];
            switch (random() % 4) {
                case 0:
                case 1: {
                    const long at = now + static_cast<long>(random() % 100);
                    s.arm(item, at);
                    model[id] = at;
                    break;
                }
                case 2:
                    s.disarm(item);
                    model.erase(id);
                    break;
                default: {
                    now += static_cast<long>(random() % 20);
                    // Due items leave in deadline order; items with the same deadline in any order.
                    std::multiset<std::pair<long, int>> expected;
                    for (const auto& [i, at] : model) {
                        if (at <= now) {
                            expected.insert({at, i});
                        }
                    }
                    long last = 0;
                    std::multiset<std::pair<long, int>> got;
                    for (const int i : pop_all(s, now)) {
                        REQUIRE(model.count(i) == 1);
                        CHECK(model[i] >= last);
                        last = model[i];
                        got.insert({model[i], i});
                        model.erase(i);
                    }
                    CHECK(got == expected);
                    break;
                }
            }
            REQUIRE(s.size() == model.size());
            for (const auto& i : items) {
                REQUIRE(s.armed(i) == (model.count(i->id) == 1));
            }
            if (!model.empty()) {
                long earliest = model.begin()->second;
                for (const auto& [i, at] : model) {
                    earliest = std::min(earliest, at);
                }
                REQUIRE(s.next() == std::optional<long>{earliest});
            }
        }
    }
}

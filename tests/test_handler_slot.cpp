// HandlerSlot (testing/detail/handler_slot.hpp): a queued handler of the simulation, in place or on the heap, run
// once, moved, or destroyed unrun.
#include <taskmon/testing/detail/handler_slot.hpp>

#include "taskmon_catch.hpp"

#include <array>
#include <memory>
#include <stdexcept>
#include <utility>
#include <vector>

using taskmon::testing::detail::HandlerSlot;

TEST_CASE("HandlerSlot runs a small and a large function once, moved or not", "[handler_slot]") {
    int runs = 0;
    std::array<char, 200> big{};  // larger than the slot: kept on the heap
    big[199] = 7;
    std::vector<HandlerSlot> queue;
    queue.emplace_back([&runs] { ++runs; });
    queue.emplace_back([&runs, big] { runs += big[199]; });
    for (int i = 0; i < 50; ++i) {  // reallocations move every slot
        queue.emplace_back([&runs] { runs += 100; });
    }
    auto moved = std::move(queue[1]);
    CHECK_FALSE(queue[1]);
    queue[1] = std::move(queue.back());
    queue.pop_back();
    REQUIRE(moved);
    moved();
    CHECK(runs == 7);
    CHECK_FALSE(moved);
    for (auto& slot : queue) {
        slot();
    }
    CHECK(runs == 7 + 1 + 50 * 100);  // the last one moved into the big one's place
}

TEST_CASE("HandlerSlot destroys what it holds once, whether it ran, threw or never ran", "[handler_slot]") {
    auto held = std::make_shared<int>(0);
    {
        HandlerSlot unrun{[held] {}};
        HandlerSlot big_unrun{[held, pad = std::array<char, 128>{}] { (void)pad; }};
        CHECK(held.use_count() == 3);
    }
    CHECK(held.use_count() == 1);
    HandlerSlot throws{[held] { throw std::runtime_error("handler broke"); }};
    CHECK_THROWS_AS(throws(), std::runtime_error);
    CHECK_FALSE(throws);
    CHECK(held.use_count() == 1);
}

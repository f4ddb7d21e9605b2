// Tests for taskmon/testing/manual_time.hpp: ManualClock reads the calling thread's ManualTime, which only moves
// forward. (The timers and the runner: test_manual_clock.cpp.)
#include <taskmon/testing/manual_time.hpp>

#include "taskmon_catch.hpp"

#include <chrono>
#include <stdexcept>
#include <thread>

using namespace std::chrono_literals;
using taskmon::testing::ManualClock;
using taskmon::testing::ManualTime;

TEST_CASE("ManualClock reads the ManualTime installed on the calling thread", "[manual_time]") {
    ManualTime outer;
    CHECK(ManualClock::now() == ManualClock::time_point{});
    outer.advance(5s);
    CHECK(ManualClock::now() == ManualClock::time_point{5s});
    {
        ManualTime inner{ManualClock::time_point{1h}};
        CHECK(ManualClock::now() == ManualClock::time_point{1h});
        {
            ManualTime::Scope scope{outer};
            CHECK(ManualClock::now() == ManualClock::time_point{5s});
        }
        CHECK(ManualClock::now() == ManualClock::time_point{1h});
    }
    CHECK(ManualClock::now() == ManualClock::time_point{5s});
}

TEST_CASE("ManualTime never goes backwards and rejects negative advances", "[manual_time]") {
    ManualTime time;
    time.advance(10s);
    time.advance_to(ManualClock::time_point{3s});
    CHECK(time.elapsed() == 10s);
    CHECK_THROWS_AS(time.advance(-1s), std::invalid_argument);
    CHECK(time.elapsed() == 10s);
}

TEST_CASE("Separate threads have separate virtual times", "[manual_time]") {
    ManualTime mine;
    mine.advance(1s);
    ManualClock::time_point seen_by_other{};
    std::thread other{[&] {
        ManualTime theirs;
        theirs.advance(7h);
        seen_by_other = ManualClock::now();
    }};
    other.join();
    CHECK(seen_by_other == ManualClock::time_point{7h});
    CHECK(ManualClock::now() == ManualClock::time_point{1s});
}

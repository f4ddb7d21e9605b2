#include <taskmon/detail/stall_watch.hpp>
#include <taskmon/testing/manual_clock.hpp>

#include <chrono>
#include <stdexcept>

#include "taskmon_catch.hpp"

using namespace std::chrono_literals;
using Clock = taskmon::testing::ManualClock;
using Watch = taskmon::detail::StallWatch<Clock>;
using Kind = Watch::Check::Kind;

namespace {

// Explicit time points: the watch never reads a clock.
Clock::time_point at(Clock::duration d) { return Clock::time_point{d}; }

}  // namespace

TEST_CASE("stall_watch: ticks every half timeout") {
    const Watch watch{10s, 30s, 3};
    CHECK(watch.period() == 5s);
    CHECK(watch.timeout() == 10s);
    CHECK(watch.max_consecutive() == 3);
    CHECK_FALSE(watch.stalled());
    CHECK(watch.consecutive_stalls() == 0);
}

TEST_CASE("stall_watch: nothing is detected within the grace even after a long silence") {
    Watch watch{10s, 30s, 3};
    watch.grant_grace(at(0s));
    CHECK(watch.grace_until() == at(30s));
    CHECK(watch.check(at(29s)).kind == Kind::quiet);
    CHECK(watch.consecutive_stalls() == 0);
    const auto found = watch.check(at(30s));  // the grace has ended and 30 s passed since it began
    CHECK(found.kind == Kind::stall);
    CHECK(found.silent_for == 30s);
    CHECK(found.stalls == 1);
}

TEST_CASE("stall_watch: a publish within the timeout keeps the watch quiet") {
    Watch watch{10s, 0s, 3};
    watch.grant_grace(at(0s));
    CHECK_FALSE(watch.on_publish(at(8s)));
    CHECK(watch.check(at(17s)).kind == Kind::quiet);  // 9 s since the publish
    const auto found = watch.check(at(18s));          // exactly the timeout
    CHECK(found.kind == Kind::stall);
    CHECK(found.silent_for == 10s);
}

TEST_CASE("stall_watch: silence is measured from the later of the last publish and the last grace") {
    Watch watch{10s, 0s, 3};
    watch.grant_grace(at(0s));
    CHECK_FALSE(watch.on_publish(at(5s)));
    watch.grant_grace(at(20s));  // e.g. resume(): a publish before it does not count against it
    CHECK(watch.check(at(29s)).kind == Kind::quiet);
    CHECK(watch.check(at(30s)).silent_for == 10s);
}

TEST_CASE("stall_watch: a parked perception is never a stall; silence counts again from its unpark") {
    Watch watch{10s, 0s, 3};
    watch.grant_grace(at(0s));
    CHECK_FALSE(watch.on_publish(at(1s)));
    watch.park();
    CHECK(watch.parked());
    CHECK(watch.check(at(1h)).kind == Kind::quiet);  // a step that takes an hour: perception waits on purpose
    CHECK(watch.consecutive_stalls() == 0);
    watch.unpark(at(1h));
    CHECK_FALSE(watch.parked());
    CHECK(watch.check(at(1h + 9s)).kind == Kind::quiet);
    const auto found = watch.check(at(1h + 10s));  // the capture after the unpark hangs
    CHECK(found.kind == Kind::stall);
    CHECK(found.silent_for == 10s);
    // An unpark without a park changes nothing: silence is still measured from the stall's grace.
    watch.unpark(at(2h));
    CHECK(watch.check(at(1h + 20s)).kind == Kind::stall);
}

TEST_CASE("stall_watch: a stall holds actuation and starts a fresh grace from its tick") {
    Watch watch{10s, 4s, 3};
    watch.grant_grace(at(0s));
    const auto first = watch.check(at(10s));
    REQUIRE(first.kind == Kind::stall);
    CHECK(watch.stalled());
    CHECK(watch.grace_until() == at(14s));
    CHECK(watch.check(at(13s)).kind == Kind::quiet);  // in the new grace
    CHECK(watch.check(at(19s)).kind == Kind::quiet);  // 9 s since the stall's tick
    const auto second = watch.check(at(20s));
    CHECK(second.kind == Kind::stall);
    CHECK(second.stalls == 2);
    CHECK(second.silent_for == 10s);
    CHECK(watch.stalled());
}

TEST_CASE("stall_watch: a publish after a stall recovers and starts the count again") {
    Watch watch{10s, 0s, 3};
    watch.grant_grace(at(0s));
    REQUIRE(watch.check(at(10s)).kind == Kind::stall);
    REQUIRE(watch.check(at(20s)).kind == Kind::stall);
    CHECK(watch.on_publish(at(21s)));  // ends the stall
    CHECK_FALSE(watch.stalled());
    CHECK(watch.consecutive_stalls() == 0);
    CHECK_FALSE(watch.on_publish(at(22s)));  // nothing left to recover from
    const auto found = watch.check(at(32s));
    CHECK(found.kind == Kind::stall);
    CHECK(found.stalls == 1);
}

TEST_CASE("stall_watch: the max_consecutive-th stall in a row gives up and changes nothing else") {
    Watch watch{10s, 2s, 2};
    watch.grant_grace(at(0s));
    REQUIRE(watch.check(at(10s)).kind == Kind::stall);
    const auto grace = watch.grace_until();
    const auto found = watch.check(at(20s));
    CHECK(found.kind == Kind::give_up);
    CHECK(found.stalls == 2);
    CHECK(found.silent_for == 10s);
    CHECK(watch.grace_until() == grace);  // no fresh grace: nothing is restarted
    CHECK(watch.stalled());               // still held from the first stall
}

TEST_CASE("stall_watch: max_consecutive 1 gives up on the first stall without holding actuation") {
    Watch watch{10s, 0s, 1};
    watch.grant_grace(at(0s));
    CHECK(watch.check(at(10s)).kind == Kind::give_up);
    CHECK_FALSE(watch.stalled());
}

TEST_CASE("stall_watch: bad arguments are refused") {
    CHECK_THROWS_WITH((Watch{0s, 1s, 3}), "StallWatch timeout must be > 0");
    CHECK_THROWS_WITH((Watch{-1s, 1s, 3}), "StallWatch timeout must be > 0");
    CHECK_THROWS_WITH((Watch{10s, -1s, 3}), "StallWatch startup_grace must be >= 0");
    CHECK_THROWS_AS((Watch{10s, 1s, 0}), std::invalid_argument);
}

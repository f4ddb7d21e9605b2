// Tests for taskmon/detail/group_strategy.hpp: what a group's strategy decides, from values alone.
#include <taskmon/detail/group_strategy.hpp>

#include "taskmon_catch.hpp"

#include <chrono>
#include <vector>

using namespace std::chrono_literals;
using taskmon::GroupPolicy;
using taskmon::RestartStrategy;
using namespace taskmon::detail;

TEST_CASE("affected_members: itself, itself and those after it, or all", "[group_strategy]") {
    CHECK(affected_members(RestartStrategy::one_for_one, 2, 5) == MemberRange{2, 3});
    CHECK(affected_members(RestartStrategy::rest_for_one, 2, 5) == MemberRange{2, 5});
    CHECK(affected_members(RestartStrategy::one_for_all, 2, 5) == MemberRange{0, 5});
    CHECK(affected_members(RestartStrategy::rest_for_one, 4, 5) == MemberRange{4, 5});
    static_assert(affected_members(RestartStrategy::one_for_all, 0, 1) == MemberRange{0, 1});
}

TEST_CASE("group_owns_restart: one_for_one components restart on their own unless a unit drives them",
          "[group_strategy]") {
    CHECK_FALSE(group_owns_restart(RestartStrategy::one_for_one, true, false));
    CHECK(group_owns_restart(RestartStrategy::one_for_one, true, true));
    CHECK(group_owns_restart(RestartStrategy::one_for_one, false, false));  // a nested group
    CHECK(group_owns_restart(RestartStrategy::one_for_all, true, false));
    CHECK(group_owns_restart(RestartStrategy::rest_for_one, true, false));
}

TEST_CASE("group_restart_allowed: happened restarts within the window before `at`, plus pending ones",
          "[group_strategy]") {
    using TimePoint = std::chrono::steady_clock::time_point;
    const TimePoint t0{std::chrono::hours{1000}};
    const GroupPolicy policy{.max_restarts = 2, .restart_window = 10s};
    const std::vector<TimePoint> one{t0 - 5s};
    CHECK(group_restart_allowed<TimePoint>(one, 0, policy, t0));
    CHECK_FALSE(group_restart_allowed<TimePoint>(one, 1, policy, t0));  // one happened, one decided
    CHECK(group_restart_allowed<TimePoint>(one, 1, policy, t0 + 6s));   // the old one is out by then
    CHECK_FALSE(group_restart_allowed<TimePoint>({}, 0, GroupPolicy{.max_restarts = 0}, t0));
}

TEST_CASE("group_has_ended: shutting down, shut down and gave up; not starting, running, restarting or stopped",
          "[group_strategy]") {
    using taskmon::GroupState;
    static_assert(group_has_ended(GroupState::shutting_down));
    CHECK(group_has_ended(GroupState::shut_down));
    CHECK(group_has_ended(GroupState::gave_up));
    CHECK_FALSE(group_has_ended(GroupState::starting));
    CHECK_FALSE(group_has_ended(GroupState::running));
    CHECK_FALSE(group_has_ended(GroupState::restarting));
    CHECK_FALSE(group_has_ended(GroupState::stopped));  // close(): it ends with the monitor, not on its own
}

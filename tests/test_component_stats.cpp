#include <taskmon/component_stats.hpp>

#include <set>
#include <string>
#include <string_view>

#include "enum_names.hpp"
#include "taskmon_catch.hpp"

using taskmon::ComponentState;

TEST_CASE("every ComponentState has its own name") {
    const ComponentState all[] = {ComponentState::not_started, ComponentState::running, ComponentState::restarting,
                                  ComponentState::stopping,    ComponentState::stopped, ComponentState::completed,
                                  ComponentState::failed,      ComponentState::gave_up, ComponentState::unresponsive,
                                  ComponentState::quarantined};
    std::set<std::string_view> names;
    for (const auto state : all) {
        const auto name = taskmon::to_string(state);
        CHECK(name != "unknown");
        names.insert(name);
    }
    CHECK(names.size() == std::size(all));
    CHECK(taskmon::to_string(ComponentState::gave_up) == "gave_up");
    CHECK(taskmon::to_string(static_cast<ComponentState>(-1)) == "unknown");
}

TEST_CASE("a default ComponentStats describes a component with no live instance") {
    const taskmon::ComponentStats stats;
    CHECK_FALSE(stats.enabled);
    CHECK(stats.restart_count == 0);
    CHECK_FALSE(stats.is_restarting);
    CHECK(stats.task_done);
    CHECK_FALSE(stats.task_cancelled);
    CHECK_FALSE(stats.last_restart_time.has_value());
    CHECK(stats.state == ComponentState::not_started);
    CHECK(stats.last_error.empty());
    CHECK(stats.failure_count == 0);
    CHECK(stats.restarts_in_window == 0);
    CHECK_FALSE(stats.next_restart_at.has_value());
    CHECK(stats.generation == 0);
    CHECK_FALSE(stats.ready);
    CHECK_FALSE(stats.last_heartbeat_age.has_value());
    CHECK_FALSE(stats.liveness_deadline.has_value());
    CHECK_FALSE(stats.idle);
    CHECK_FALSE(stats.in_trial);
    CHECK_FALSE(stats.next_trial_at.has_value());
    CHECK(stats.quarantine_cooldown == std::chrono::nanoseconds::zero());
    CHECK(stats.group.empty());
    CHECK_FALSE(stats.spawned);
}

TEST_CASE("fmt formats every ComponentState as its name") {
    taskmon_test::check_enum_names(ComponentState::not_started, ComponentState::quarantined);
    CHECK(fmt::format("{:<12}|", ComponentState::gave_up) == "gave_up     |");
}

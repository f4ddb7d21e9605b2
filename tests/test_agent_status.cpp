#include <taskmon/agent/agent_status.hpp>

#include <array>
#include <set>
#include <utility>

#include <fmt/format.h>

#include "enum_names.hpp"
#include "taskmon_catch.hpp"

using taskmon::AgentStatus;
using taskmon::AgentStatusMachine;

namespace {

constexpr std::array<AgentStatus, taskmon::agent_status_count> all_statuses{
    AgentStatus::pending,  AgentStatus::running,   AgentStatus::paused,
    AgentStatus::stopping, AgentStatus::completed, AgentStatus::max_steps_reached,
    AgentStatus::stopped,  AgentStatus::failed,    AgentStatus::waiting_for_input};

}  // namespace

TEST_CASE("agent_status: names and terminal set") {
    CHECK(taskmon::to_string(AgentStatus::max_steps_reached) == "max_steps_reached");
    CHECK(fmt::format("{}", AgentStatus::paused) == "paused");
    std::set<std::string_view> names;
    for (auto s : all_statuses) names.insert(taskmon::to_string(s));
    CHECK(names.size() == taskmon::agent_status_count);
    CHECK_FALSE(taskmon::is_terminal(AgentStatus::pending));
    CHECK_FALSE(taskmon::is_terminal(AgentStatus::running));
    CHECK_FALSE(taskmon::is_terminal(AgentStatus::paused));
    CHECK_FALSE(taskmon::is_terminal(AgentStatus::stopping));
    CHECK_FALSE(taskmon::is_terminal(AgentStatus::waiting_for_input));
    CHECK(taskmon::is_terminal(AgentStatus::completed));
    CHECK(taskmon::is_terminal(AgentStatus::max_steps_reached));
    CHECK(taskmon::is_terminal(AgentStatus::stopped));
    CHECK(taskmon::is_terminal(AgentStatus::failed));
}

TEST_CASE("agent_status: the transition table, pair by pair") {
    using S = AgentStatus;
    const std::set<std::pair<S, S>> allowed{
        {S::pending, S::running},
        {S::pending, S::stopped},
        {S::pending, S::failed},
        {S::running, S::paused},
        {S::running, S::stopping},
        {S::running, S::completed},
        {S::running, S::max_steps_reached},
        {S::running, S::stopped},
        {S::running, S::failed},
        {S::running, S::waiting_for_input},
        {S::waiting_for_input, S::running},
        {S::waiting_for_input, S::stopping},
        {S::waiting_for_input, S::stopped},
        {S::waiting_for_input, S::failed},
        {S::paused, S::running},
        {S::paused, S::stopping},
        {S::paused, S::completed},
        {S::paused, S::max_steps_reached},
        {S::paused, S::stopped},
        {S::paused, S::failed},
        {S::stopping, S::stopped},
        {S::stopping, S::failed},
    };
    for (auto from : all_statuses) {
        for (auto to : all_statuses) {
            INFO(taskmon::to_string(from) << " -> " << taskmon::to_string(to));
            CHECK(taskmon::is_allowed_transition(from, to) == (allowed.count({from, to}) == 1));
        }
    }
}

TEST_CASE("agent_status: terminal states absorb every transition") {
    for (auto terminal : all_statuses) {
        if (!taskmon::is_terminal(terminal)) continue;
        for (auto to : all_statuses) CHECK_FALSE(taskmon::is_allowed_transition(terminal, to));
    }
}

TEST_CASE("agent_status: the machine follows the table and records transitions with reasons") {
    AgentStatusMachine machine;
    CHECK(machine.status() == AgentStatus::pending);
    auto t = machine.transition(AgentStatus::running, "run() called");
    REQUIRE(t.has_value());
    CHECK(t->from == AgentStatus::pending);
    CHECK(t->to == AgentStatus::running);
    CHECK(t->reason == "run() called");
    CHECK_FALSE(machine.transition(AgentStatus::running, "again").has_value());  // no self-transition
    CHECK_FALSE(machine.transition(AgentStatus::pending, "back").has_value());
    CHECK(machine.status() == AgentStatus::running);
    CHECK(machine.transition(AgentStatus::paused, "pause()").has_value());
    CHECK(machine.transition(AgentStatus::running, "resume()").has_value());
    CHECK(machine.terminal_reason().empty());
}

TEST_CASE("agent_status: the first terminal trigger wins and later ones change nothing") {
    AgentStatusMachine machine;
    REQUIRE(machine.transition(AgentStatus::running, "start"));
    REQUIRE(machine.transition(AgentStatus::completed, "done"));
    CHECK(machine.is_terminal());
    for (auto to : all_statuses) CHECK_FALSE(machine.transition(to, "late trigger").has_value());
    CHECK(machine.status() == AgentStatus::completed);
    CHECK(machine.terminal_reason() == "done");
}

TEST_CASE("agent_status: stop goes through stopping and can only end stopped or failed") {
    AgentStatusMachine machine;
    REQUIRE(machine.transition(AgentStatus::running, "start"));
    REQUIRE(machine.transition(AgentStatus::stopping, "stop()"));
    CHECK_FALSE(machine.transition(AgentStatus::running, "resume()"));
    CHECK_FALSE(machine.transition(AgentStatus::paused, "pause()"));
    CHECK_FALSE(machine.transition(AgentStatus::completed, "late done"));
    REQUIRE(machine.transition(AgentStatus::stopped, "components closed"));
    CHECK(machine.terminal_reason() == "components closed");
}

TEST_CASE("agent_status: fmt formats every status as its name") {
    taskmon_test::check_enum_names(AgentStatus::pending, AgentStatus::failed);
}
